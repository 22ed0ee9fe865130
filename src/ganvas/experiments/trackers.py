"""Experiment trackers beside metrics.jsonl: Weights & Biases and MLflow (TensorBoard is built
into `MetricsLog`). Each gets the config as parameters, every numeric metric, the fixed-noise
grids as images, and MLflow the final checkpoint as an artifact.

    train.trackers: [tensorboard, wandb, mlflow]

Both run without a network: W&B in offline mode unless WANDB_MODE says otherwise (its files
go to RUN/wandb/; `wandb sync` uploads them later), MLflow into a local store (
`train.mlflow_uri` / $MLFLOW_TRACKING_URI: `sqlite:///path.db` (default ./mlflow.db, artifacts
in ./mlartifacts) or a `file:/path` store). A resumed
run continues the same W&B / MLflow run: their ids are kept in RUN/trackers.json.
A sweep sets `train.tracker_group` to its name: one W&B group, one MLflow experiment.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ganvas.config import Config, ConfigError
from ganvas.io import write_json_atomic

IDS_FILE = "trackers.json"


class Tracker(Protocol):
    def log_metrics(self, record: dict[str, Any]) -> None: ...

    def log_image(self, tag: str, grid: np.ndarray, step: int) -> None: ...

    def finish(self, checkpoint: Path | None) -> None: ...


def numeric(record: dict[str, Any]) -> dict[str, float]:
    """The record's numbers (not its step, events, protocols or flags)."""
    return {k: float(v) for k, v in record.items()
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)}  # fmt: skip


def flat_params(config: Config) -> dict[str, str]:
    """The config as flat 'section.key' → text pairs (how trackers store parameters)."""
    out: dict[str, str] = {}

    def walk(tree: Any, prefix: str) -> None:
        if isinstance(tree, dict):
            for key, value in tree.items():
                walk(value, f"{prefix}{key}." if not isinstance(value, dict) else f"{prefix}{key}.")
        else:
            out[prefix.rstrip(".")] = json.dumps(tree) if not isinstance(tree, str) else tree

    walk(config.to_dict(), "")
    return out


class _Ids:
    """RUN/trackers.json: the W&B / MLflow run ids of this run dir, for resumes."""

    def __init__(self, run_dir: Path) -> None:
        self.file = run_dir / IDS_FILE
        self.ids = json.loads(self.file.read_text()) if self.file.is_file() else {}

    def get(self, name: str) -> str | None:
        return self.ids.get(name)

    def set(self, name: str, value: str) -> None:
        self.ids[name] = value
        write_json_atomic(self.file, self.ids)


class WandbTracker:
    def __init__(self, config: Config, run_dir: Path, group: str) -> None:
        import wandb

        self.wandb = wandb
        ids = _Ids(run_dir)
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(
            project=config.train.tracker_project, group=group, name=run_dir.name,
            dir=str(run_dir), mode=os.environ.get("WANDB_MODE", "offline"),
            id=ids.get("wandb"), resume="allow", config=flat_params(config),
            settings=wandb.Settings(console="off", x_disable_stats=True),
            reinit="create_new",
        )  # fmt: skip
        ids.set("wandb", self.run.id)

    def log_metrics(self, record: dict[str, Any]) -> None:
        values = numeric(record)
        if values:
            self.run.log(values, step=int(record["step"]))

    def log_image(self, tag: str, grid: np.ndarray, step: int) -> None:
        self.run.log({tag: self.wandb.Image(grid)}, step=step)

    def finish(self, checkpoint: Path | None) -> None:
        self.run.finish()


class MlflowTracker:
    def __init__(self, config: Config, run_dir: Path, group: str) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = (config.train.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
               or f"sqlite:///{Path('mlflow.db').resolve()}")  # fmt: skip
        artifacts = None
        if uri.startswith("sqlite:///"):  # artifacts beside the database, not in the cwd
            artifacts = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts" / group).as_uri()
        elif uri.startswith("file:"):  # MLflow 3 keeps its file store behind a switch
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(group)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else self.client.create_experiment(group, artifact_location=artifacts))  # fmt: skip
        ids = _Ids(run_dir)
        self.run_id = ids.get("mlflow")
        if self.run_id is None:
            run = self.client.create_run(experiment_id, run_name=run_dir.name,
                                         tags={"ganvas.run_dir": str(run_dir.resolve())})  # fmt: skip
            self.run_id = run.info.run_id
            ids.set("mlflow", self.run_id)
            params = [Param(k, v[:6000]) for k, v in flat_params(config).items()]
            for i in range(0, len(params), 100):  # log_batch takes at most 100 params
                self.client.log_batch(self.run_id, params=params[i : i + 100])
        else:
            self.client.update_run(self.run_id, status="RUNNING")

    def log_metrics(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        stamp, step = int(time.time() * 1000), int(record["step"])
        metrics = [Metric(k, v, stamp, step) for k, v in numeric(record).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_image(self, tag: str, grid: np.ndarray, step: int) -> None:
        self.client.log_image(self.run_id, grid, artifact_file=f"{tag}/{tag}_{step:08d}.png")

    def finish(self, checkpoint: Path | None) -> None:
        if checkpoint is not None:
            self.client.log_artifacts(self.run_id, str(checkpoint), f"checkpoint/{checkpoint.name}")
        self.client.set_terminated(self.run_id)


def build_trackers(config: Config, run_dir: Path) -> list[Tracker]:
    """The W&B / MLflow trackers `train.trackers` names ('tensorboard' is MetricsLog's own).

    Raises:
        ConfigError: a tracker is named whose package is not installed.
    """
    group = config.train.tracker_group or Path(run_dir).resolve().name
    made: list[Tracker] = []
    for name, cls, extra in (("wandb", WandbTracker, "wandb"),
                             ("mlflow", MlflowTracker, "mlflow")):  # fmt: skip
        if name not in config.train.trackers:
            continue
        try:
            made.append(cls(config, Path(run_dir), group))
        except ImportError as err:
            raise ConfigError(f"train.trackers names {name}, which is not installed: "
                              f"pip install 'ganvas[{extra}]' ({err})") from err  # fmt: skip
    return made
