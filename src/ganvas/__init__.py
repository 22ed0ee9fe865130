"""ganvas: train GANs on image collections and turn them into art.

The package imports lazily so that `ganvas prepare` and its worker processes never pay for
importing torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load": ("ganvas.generate", "load"),
    "GeneratorPipeline": ("ganvas.generate", "GeneratorPipeline"),
    "prepare_dataset": ("ganvas.data.prepare", "prepare_dataset"),
    "load_dataset": ("ganvas.data.store", "load_dataset"),
    "train": ("ganvas.training.trainer", "train"),
    "load_config": ("ganvas.config", "load_config"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        return getattr(importlib.import_module(module_name), attr)
    raise AttributeError(f"module 'ganvas' has no attribute {name!r}")
