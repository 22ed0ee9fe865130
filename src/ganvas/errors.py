"""The errors a user can cause, and the one helper that raises them.

Kept apart from `config.py` so that every module (the model registry included) can validate
its settings, and `ganvas.rundir` can report a missing run, without importing the config
machinery or torch.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration key or value a user gave is wrong; the message says how to fix it."""


class CheckpointError(RuntimeError):
    """A run, its checkpoint or its config.yaml is missing or incomplete, or a checkpoint
    could not be written."""


def check(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless `condition` holds (for user-facing validation)."""
    if not condition:
        raise ConfigError(message)
