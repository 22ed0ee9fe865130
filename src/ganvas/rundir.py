"""The layout of a run directory, in one place.

    run/config.yaml              the fully resolved config (versioned, see ganvas.config)
    run/classes.json             class names in label order ([] for unlabelled data)
    run/metrics.jsonl            one JSON record per logged step, evaluation or event
    run/log.txt                  what the run printed
    run/samples/reals.png        real images from the training set
    run/samples/fakes_<step:08d>.png   fixed-noise grids
    run/progress.gif             the fixed-noise grids animated, written at the end
    run/tb/                      TensorBoard events
    run/checkpoints/             see ganvas.checkpoint
    run/eval/eval_<step:08d>.json      `ganvas evaluate` results
    run/ratings.jsonl            `ganvas rate` results

Only this module spells these names; everything else asks a `RunDir`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ganvas.config import Config, config_from_dict, read_config_file
from ganvas.errors import CheckpointError
from ganvas.io import write_json_atomic, write_text_atomic


class RunDir:
    """A run directory written by `ganvas train` (which need not exist yet)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config_file = self.path / "config.yaml"
        self.classes_file = self.path / "classes.json"
        self.metrics_file = self.path / "metrics.jsonl"
        self.log_file = self.path / "log.txt"
        self.samples_dir = self.path / "samples"
        self.reals_grid = self.samples_dir / "reals.png"
        self.progress_gif = self.path / "progress.gif"
        self.tensorboard_dir = self.path / "tb"
        self.checkpoints_dir = self.path / "checkpoints"
        self.eval_dir = self.path / "eval"
        self.ratings_file = self.path / "ratings.jsonl"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def fakes_grid(self, step: int) -> Path:
        """The fixed-noise grid saved at `step`."""
        return self.samples_dir / f"fakes_{step:08d}.png"

    def eval_file(self, step: int) -> Path:
        """Where `ganvas evaluate` saves the scores of the checkpoint of `step`."""
        return self.eval_dir / f"eval_{step:08d}.json"

    def read_config(self) -> Config:
        """The run's config.yaml as a validated Config, migrated from older config versions.

        Raises:
            CheckpointError: the run directory or its config.yaml does not exist.
            ConfigError: the file is not a valid config, or one written by a newer ganvas.
        """
        if not self.path.is_dir():
            raise CheckpointError(f"run directory {self.path} does not exist")
        if not self.config_file.is_file():
            raise CheckpointError(f"{self.config_file} is missing; cannot rebuild the model")
        return config_from_dict(read_config_file(self.config_file))

    def write_config(self, config: Config) -> Path:
        """Save `config` as the run's config.yaml (atomically); returns the file."""
        write_text_atomic(self.config_file, config.to_yaml())
        return self.config_file

    def class_names(self) -> list[str]:
        """The run's class names in label order; [] when it has none (or no classes.json)."""
        if not self.classes_file.is_file():
            return []
        return list(json.loads(self.classes_file.read_text()))

    def write_class_names(self, names: list[str]) -> Path:
        """Save the class names as classes.json (atomically); returns the file."""
        write_json_atomic(self.classes_file, list(names))
        return self.classes_file

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one record as a line of metrics.jsonl."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def outputs(self) -> tuple[Path, ...]:
        """What training writes, and so what `ganvas train --new` deletes. Evaluations and
        human ratings are not among them: they are kept (ratings cannot be made again)."""
        return (self.checkpoints_dir, self.samples_dir, self.tensorboard_dir, self.metrics_file,
                self.config_file, self.classes_file, self.log_file, self.progress_gif)  # fmt: skip

    def clear(self) -> None:
        """Delete the training `outputs()`, for a run started over with --new."""
        for path in self.outputs():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
