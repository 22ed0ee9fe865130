"""Shared fixtures: small datasets made on the fly and a tiny DCGAN config (16 px, CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ganvas.config import Config, load_config
from ganvas.data.store import Dataset, base_manifest, save_dataset


def make_blobs(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """Reddish images with a bright square at a random place: easy to learn, easy to tell."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 3), np.uint8)
    images[..., 0] = 200
    images[..., 1] = 40
    images[..., 2] = 60
    for img in images:
        y, x = rng.integers(0, size - size // 4, 2)
        img[y : y + size // 4, x : x + size // 4] = (255, 230, 80)
    noise = rng.integers(-10, 11, images.shape)
    return np.clip(images.astype(int) + noise, 0, 255).astype(np.uint8)


def write_dataset(dest: Path, images: np.ndarray, labels=None, classes=()) -> Dataset:
    manifest = base_manifest(images.shape[1], images.shape[3], list(classes))
    manifest.update(sources=["tests"], files=[], dropped=[], params={}, splits={"val": []})
    return save_dataset(dest, images, labels, manifest)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Dataset:
    return write_dataset(tmp_path / "blobs16", make_blobs(64))


def tiny_config(data_path: Path | str, **overrides) -> Config:
    """A DCGAN small enough to train hundreds of steps in seconds on one CPU core."""
    settings = {
        "data.path": str(data_path),
        "model.family": "dcgan",
        "model.resolution": 16,
        "model.z_dim": 16,
        "model.g_width": 8,
        "model.d_width": 8,
        "train.batch_size": 8,
        "train.steps": 20,
        "train.device": "cpu",
        "train.log_interval": 10,
        "train.sample_interval": 10,
        "train.checkpoint_interval": 10,
        "train.n_samples": 16,
        "train.tensorboard": False,
    }
    settings.update(overrides)
    return load_config(overrides=settings)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Thread count changes the summation order of CPU kernels; pin it so bit-exact
    # comparisons inside one test do not depend on the machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_two_class_blobs(n: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 reddish, class 1 bluish blobs (alternating), for conditional families."""
    images = make_blobs(n, size, seed)
    labels = np.arange(n) % 2
    images[labels == 1] = images[labels == 1][..., ::-1]  # swap red and blue
    return images, labels.astype(np.int64)


@pytest.fixture
def labelled_dataset(tmp_path: Path) -> Dataset:
    images, labels = make_two_class_blobs(64)
    return write_dataset(tmp_path / "two16", images, labels, classes=("red", "blue"))


# Per-family settings that make each family tiny enough for CPU tests at 16 px.
TINY_MODELS = {
    "dcgan": {"model.g_width": 8, "model.d_width": 8, "model.z_dim": 16},
    "wgan": {"model.g_width": 8, "model.d_width": 8, "model.z_dim": 16},
    "wgan_gp": {"model.g_width": 8, "model.d_width": 8, "model.z_dim": 16},
    "sngan": {"model.g_width": 16, "model.d_width": 16, "model.z_dim": 16},
    "biggan": {"model.g_width": 8, "model.d_width": 8, "model.z_dim": 18, "model.shared_dim": 8,
               "model.attention_resolution": 8},
    "cdcgan": {"model.g_width": 8, "model.d_width": 8, "model.z_dim": 16},
    "acgan": {"model.g_width": 8, "model.d_width": 8, "model.z_dim": 16},
    "projection": {"model.g_width": 8, "model.d_width": 8, "model.z_dim": 16,
                   "model.embed_dim": 8},
    "progan": {"model.z_dim": 16, "model.max_width": 16, "model.width_base": 128,
               "model.start_resolution": 4},
    "r3gan": {"model.g_width": 16, "model.d_width": 16, "model.z_dim": 16, "model.group_width": 8},
    "stylegan2": {"model.z_dim": 16, "model.w_dim": 16, "model.mapping_layers": 2,
                  "model.channel_base": 128, "model.channel_max": 16},
    "fastgan": {"model.g_width": 4, "model.d_width": 4, "model.z_dim": 16},
    "projected": {"model.z_dim": 16, "model.generator_options": {"g_width": 4},
                  "model.feature_resolution": 32, "model.projection_width": 8,
                  "model.d_width": 8},
    # Image-to-image: a plain encoder, and every NoGAN phase within a few steps.
    "restore": {"model.encoder": "none", "model.encoder_width": 8, "model.encoder_depth": 2,
                "model.g_width": 16, "model.d_width": 4, "model.d_blocks": 2,
                "model.g_pretrain_steps": 1, "model.d_pretrain_steps": 1},
}  # fmt: skip


def assert_same(a, b, where: str = "state") -> None:
    """Nested dicts / lists of tensors and plain values are equal, bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_checkpoint(a, b) -> None:
    """Two checkpoints hold the same weights and the same training state, bit for bit."""
    assert_same(a.weights, b.weights, "weights")
    assert_same(a.training_state, b.training_state, "training_state")


# Fields of a metrics line that measure the machine (speed, energy), not the training: they
# differ between a straight and a resumed run that are otherwise bit for bit the same.
MEASURED_FIELDS = ("img_per_s", "time_s", "energy_kwh", "co2e_kg")


def training_records(records: list[dict]) -> list[dict]:
    """Metrics records without their MEASURED_FIELDS, for comparing two runs."""
    return [{k: v for k, v in r.items() if k not in MEASURED_FIELDS} for r in records]


def read_metrics(run_dir: Path) -> list[dict]:
    """The records of a run's metrics.jsonl, in order."""
    import json

    text = (Path(run_dir) / "metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def colour_gap(trainer, dataset: Dataset) -> float:
    """Mean absolute gap between the mean colour of the trainer's fixed-noise samples and of
    the dataset, in [-1, 1] units: training should shrink it."""
    data_mean = torch.from_numpy(dataset.images[:].astype(np.float32) / 127.5 - 1).mean((0, 1, 2))
    return (trainer.sample_fixed().mean((0, 2, 3)) - data_mean).abs().mean().item()
