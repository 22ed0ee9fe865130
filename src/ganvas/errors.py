"""The errors a user can cause, and the one helper that raises them.

Kept apart from `config.py` so that every module (the model registry included) can validate
its settings, and `ganvas.rundir` can report a missing run, without importing the config
machinery or torch.
"""

from __future__ import annotations

import errno


class ConfigError(ValueError):
    """A configuration key or value a user gave is wrong; the message says how to fix it."""


class CheckpointError(RuntimeError):
    """A run, its checkpoint or its config.yaml is missing or incomplete, or a checkpoint
    could not be written."""


class DiskFullError(CheckpointError):
    """The disk (or the user's quota) filled up while ganvas was writing; what was complete
    before is intact and the message names the newest complete checkpoint."""


class RunBusyError(CheckpointError):
    """Another process is training in this run directory right now."""


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_full(err: BaseException) -> bool:
    """True for the OSErrors of a full disk, an exhausted quota or a file-size limit."""
    return isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS


def check(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless `condition` holds (for user-facing validation)."""
    if not condition:
        raise ConfigError(message)
