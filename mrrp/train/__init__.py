"""Training, cross-validation, evaluation and ablations."""
