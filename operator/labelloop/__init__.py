"""labelloop: closes the loop between Label Studio annotation and LoRA fine-tuning on Kubernetes."""
