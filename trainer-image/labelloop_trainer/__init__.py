"""labelloop_trainer: dataset export, LoRA training, evaluation and the prelabel server."""
