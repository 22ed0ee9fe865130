"""Training: the loop, checkpoints and the monitors it calls."""
