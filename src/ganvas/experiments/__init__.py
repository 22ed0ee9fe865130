"""Experiments: sweeps on Optuna, energy with codecarbon, trackers (W&B, MLflow), results."""
