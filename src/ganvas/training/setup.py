"""Everything the trainer decides before its first step: the settings, which
images to train on, the model's shape from the data, whether an existing run may resume,
and the signal handler that turns Ctrl-C / SIGTERM into a clean stop."""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ganvas.config import Config, ConfigError, config_differences, load_config
from ganvas.models.registry import get_family
from ganvas.rundir import RunDir

# Settings that may change when a run resumes; anything else must match the saved config.
RESUMABLE_KEYS = (
    "description",
    "data.path",
    "train.steps",
    "train.epochs",
    "train.device",
    "train.sync_bn",
    "train.log_interval",
    "train.sample_interval",
    "train.checkpoint_interval",
    "train.keep_checkpoints",
    "train.tensorboard",
    "train.init_from",
    "train.on_diverge",
    "train.rollback_lr_factor",
    "train.max_rollbacks",
    # records, not training: energy accounting and trackers may change on a resume
    "train.energy",
    "train.energy_country",
    "train.carbon_intensity",
    "train.price_per_kwh",
    "train.trackers",
    "train.tracker_project",
    "train.tracker_group",
    "train.mlflow_uri",
    # speed switches: the same maths up to rounding (docs/speed.md)
    "train.precision",
    "train.channels_last",
    "train.compile",
    "optim.fused",
)


def select_training_images(
    dataset: Any, data: Any
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Indices and labels of the images to train on, and the class names.

    `data.split` leaves out the validation split; `data.classes` keeps only the named
    classes (seeds/001 trained on 5 of 14 genres) and renumbers them 0..k-1 in that order.
    """
    indices = dataset.split_indices(data.split)
    labels = None if dataset.labels is None else np.asarray(dataset.labels[indices])
    names = dataset.classes
    if not data.classes:
        return indices, labels, names
    if labels is None:
        raise ConfigError(f"data.classes is set but the dataset {data.path} has no labels")
    unknown = [c for c in data.classes if c not in names]
    if unknown:
        raise ConfigError(
            f"data.classes: {', '.join(unknown)} not in the dataset; its classes: {', '.join(names)}"
        )
    old_ids = np.array([names.index(c) for c in data.classes])
    keep = np.isin(labels, old_ids)
    new_id = {old: new for new, old in enumerate(old_ids.tolist())}
    relabelled = np.array([new_id[int(v)] for v in labels[keep]], dtype=np.int64)
    return indices[keep], relabelled, list(data.classes)


def resolve_model_shape(config: Config, dataset: Any, num_classes: int) -> Config:
    """Fill the model's resolution, channels (and, if conditional, classes) from the data."""
    m = config.model
    have = {"resolution": dataset.resolution, "channels": dataset.channels}
    for key, wanted in (("resolution", m.resolution), ("channels", m.channels)):
        if wanted is not None and wanted != have[key]:
            raise ConfigError(
                f"model.{key}={wanted} but the dataset {config.data.path} has {key} {have[key]}; "
                f"prepare it again with --{'size' if key == 'resolution' else 'channels'} "
                f"{wanted}, or pass --set model.{key}={have[key]}"
            )
    conditional = get_family(m.family).conditional
    if conditional and num_classes == 0:
        raise ConfigError(
            f"model.family={m.family!r} is class-conditional but the dataset "
            f"{config.data.path} has no labels; prepare it with --labels subfolders"
        )
    if conditional and m.num_classes not in (0, num_classes):
        raise ConfigError(
            f"model.num_classes={m.num_classes} but the data has {num_classes} classes"
        )
    model = dataclasses.replace(
        m, num_classes=num_classes if conditional else m.num_classes, **have
    )
    return dataclasses.replace(config, model=model)


def resolve_run_config(
    run_dir: str | Path,
    config: Config | None,
    overrides: list[str] | dict[str, Any] | None = None,
    new: bool = False,
) -> Config:
    """The settings a run trains with: `config` as given, or, when None, the run's own saved
    settings with `overrides` on top (the CLI without --preset/--config resumes this way)."""
    if config is not None:
        if overrides:
            raise ValueError("pass overrides to ganvas.load_config, or pass config=None to "
                             "resume a run with its saved settings plus overrides")  # fmt: skip
        return config
    saved = RunDir(run_dir).config_file
    if new or not saved.is_file():
        raise ConfigError(
            f"{run_dir} holds no saved settings to resume ({saved} is missing or --new was "
            "given): choose a recipe with --preset or --config"
        )
    return load_config(config_file=saved, overrides=overrides)


def check_resumable(run_dir: Path, config: Config) -> None:
    run = RunDir(run_dir)
    if not run.config_file.is_file():
        return
    saved = run.read_config()
    changed = {
        k: v for k, v in config_differences(saved, config).items() if k not in RESUMABLE_KEYS
    }
    if changed:
        lines = "; ".join(
            f"{k}: {a!r} → {b!r}" for k, a, b in ((k, *v) for k, v in changed.items())
        )
        raise ConfigError(
            f"{run_dir} holds a run with other settings ({lines}). Resume with the same "
            f"settings, choose another --out, or pass --new to start this run over."
        )


def freeze_discriminator_blocks(D: Any, count: int, family: str) -> None:
    """FreezeD (Mo, Cho & Shin 2020): when fine-tuning on a small set, D's input layer and
    its first `count` blocks (the highest resolutions) keep the weights they came with.

    Raises:
        ConfigError: the family's D has no `blocks` list, or fewer blocks than `count`.
    """
    import torch.nn as nn

    blocks = getattr(D, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise ConfigError(f"train.freeze_d={count}: the {family} discriminator has no list of "
                          "blocks to freeze (stylegan2's has)")  # fmt: skip
    if count > len(blocks):
        raise ConfigError(f"train.freeze_d={count} but the {family} discriminator has "
                          f"{len(blocks)} blocks at this resolution")  # fmt: skip
    for module in [getattr(D, "fromrgb", None), *blocks[:count]]:
        if module is not None:
            module.requires_grad_(False)


class StopOnSignal:
    """First Ctrl-C (or SIGTERM, e.g. a scheduler's preemption): finish the current step,
    checkpoint, stop. A second one stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, flag: threading.Event, log: Callable[[str], None]) -> None:
        self.flag, self.log, self.previous = flag, log, None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.flag.is_set():
            raise KeyboardInterrupt
        self.flag.set()
        self.log("interrupted: saving a checkpoint after this step (Ctrl-C again to abort)")

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._handler) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in (self.previous or {}).items():
            signal.signal(sig, handler)
