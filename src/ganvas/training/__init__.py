"""Training: the loop, checkpoints and the monitors it calls (the function is ganvas.train)."""
