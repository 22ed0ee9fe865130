"""Data: prepare image folders into dataset dirs, store them, and batch them for training."""
