"""Sweep specs of tiny runs (16 px DCGAN on blobs, a few steps, KID on a few images)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_blobs, write_dataset

ROOT = Path(__file__).resolve().parents[2]

TINY_RUN = {
    "model.family": "dcgan", "model.resolution": 16, "model.z_dim": 16, "model.g_width": 8,
    "model.d_width": 8, "train.batch_size": 8, "train.device": "cpu", "train.log_interval": 5,
    "train.sample_interval": 10, "train.checkpoint_interval": 10, "train.n_samples": 16,
    "train.tensorboard": False,
}  # fmt: skip


def needs_inception() -> None:
    """KID needs the Inception weights: skip with the way to get them when they are absent."""
    from ganvas.metrics import MetricsError, resolve_inception_weights

    try:
        resolve_inception_weights(None)
    except MetricsError as err:
        pytest.skip(f"no Inception weights for KID: {err}")


def write_spec(path: Path, data_path: Path, **fields) -> Path:
    spec = {
        "name": "tiny", "overrides": {"data.path": str(data_path), **TINY_RUN},
        "space": {"lr": {"keys": ["optim.lr_g", "optim.lr_d"], "grid": [2e-3, 2e-4]},
                  "optim.name": {"grid": ["adam", "rmsprop"]}},
        "sampler": "grid", "metric": {"name": "kid", "split": "train", "n": 16},
        "budget": {"steps": 10}, "heartbeat_s": 1,
    }  # fmt: skip
    overrides = fields.pop("overrides", {})
    spec.update(fields)
    spec["overrides"].update(overrides)
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("blobs") / "data", make_blobs(64)).path


def subprocess_env() -> dict[str, str]:
    """This worktree's code first, one thread per process (the CI machine has two cores)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


PYTHON = sys.executable
