"""Training: data, features, batches, the model, the loop, checkpoints, evaluation, the
promotion gate, the Label Studio export and the version written."""
