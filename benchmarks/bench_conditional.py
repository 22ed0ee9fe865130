"""Does a conditional GAN draw the class it is asked for? Class accuracy per family.

Trains each class-conditional family, and an unconditional DCGAN as the control, for a short
CPU run on a test-made dataset whose four classes differ in colour (red, green, blue and
yellow blobs, 16x16). Then it asks for 100 samples of each class and lets a simple
classifier trained on the real images (nearest class-mean colour) name their class.

    python benchmarks/bench_conditional.py                 # 600 steps per family
    python benchmarks/bench_conditional.py --steps 200 --families cdcgan,acgan
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ganvas.config import load_config
from ganvas.data.store import base_manifest, save_dataset
from ganvas.generate import load
from ganvas.training.trainer import train

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (40, 60, 220),
    "yellow": (230, 210, 40),
}
TINY = {"model.g_width": 16, "model.d_width": 16, "model.z_dim": 24}
FAMILY_SETTINGS = {
    "cdcgan": {"loss.name": "nonsaturating"},
    "acgan": {"loss.name": "nonsaturating"},
    "projection": {"loss.name": "hinge", "model.embed_dim": 16},
    "biggan": {"loss.name": "hinge", "model.shared_dim": 16, "model.attention_resolution": 0,
               "model.g_width": 8, "model.d_width": 8},
    "dcgan": {"loss.name": "nonsaturating"},  # unconditional control
}  # fmt: skip


def colour_classes(folder: Path, per_class: int = 64, size: int = 16, seed: int = 0) -> Path:
    """Blobs on a dark background: the class is the blob's colour."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, colour in enumerate(COLOURS.values()):
        for _ in range(per_class):
            img = np.full((size, size, 3), 30, np.uint8)
            side = int(rng.integers(size // 3, size // 2 + 1))
            y, x = rng.integers(0, size - side, 2)
            img[y : y + side, x : x + side] = colour
            noise = rng.integers(-12, 13, img.shape)
            images.append(np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8))
            labels.append(label)
    manifest = base_manifest(size, 3, list(COLOURS))
    manifest.update(sources=["synthetic"], files=[], dropped=[], params={}, splits={"val": []})
    save_dataset(folder, np.stack(images), np.array(labels), manifest, overwrite=True)
    return folder


def blob_colour(images: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] uint8 → [N, 3]: mean colour of each image's 16 brightest pixels (inside
    the blob, which covers at least 25 pixels), so the dark background does not dilute it."""
    flat = images.reshape(len(images), -1, 3).astype(np.float32)
    brightest = np.argsort(flat.sum(2), axis=1)[:, -16:]
    return np.take_along_axis(flat, brightest[..., None], axis=1).mean(1)


class NearestColour:
    """The simple classifier: each class is the mean blob colour of its real images."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        colours = blob_colour(images)
        self.centroids = np.stack([colours[labels == k].mean(0) for k in np.unique(labels)])

    def predict(self, images: np.ndarray) -> np.ndarray:
        """images [N, H, W, 3] uint8 → class [N]."""
        colours = blob_colour(images)
        return np.argmin(((colours[:, None] - self.centroids[None]) ** 2).sum(-1), axis=1)


def class_accuracy(
    family: str, data: Path, run: Path, steps: int, per_class: int = 100
) -> tuple[float, float]:
    """Train `family` for `steps` steps; return (accuracy of its samples, training seconds)."""
    from ganvas.data.store import load_dataset

    overrides = {"model.family": family, "model.resolution": 16, **TINY, **FAMILY_SETTINGS[family],
                 "data.path": str(data), "train.steps": steps, "train.batch_size": 32,
                 "train.device": "cpu", "train.tensorboard": False, "train.log_interval": 100,
                 "train.sample_interval": steps, "train.checkpoint_interval": steps,
                 "optim.lr_g": 2e-4, "optim.lr_d": 2e-4, "train.n_samples": 16}  # fmt: skip
    started = time.perf_counter()
    train(load_config(overrides=overrides), run, new=True, progress=False)
    seconds = time.perf_counter() - started
    dataset = load_dataset(data)
    classifier = NearestColour(dataset.images[:], dataset.labels)
    # Reference labels: the real images' own classes must be recognised by the classifier.
    assert (classifier.predict(dataset.images[:]) == dataset.labels).mean() > 0.99
    g = load(run)
    wanted = torch.arange(len(COLOURS)).repeat_interleave(per_class)
    if g.conditional:
        images = g.sample(len(wanted), seed=123, labels=wanted)
    else:  # the control cannot be asked for a class: its samples get labels in turn
        images = g.sample(len(wanted), seed=123)
    predicted = classifier.predict(images.permute(0, 2, 3, 1).numpy())
    return float((predicted == wanted.numpy()).mean()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--families", default="cdcgan,acgan,projection,biggan,dcgan")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        data = colour_classes(Path(tmp) / "data")
        print(
            f"{'family':<12} {'class accuracy':>15} {'train s':>8}   (chance 0.25, {args.steps} steps)"
        )
        for family in args.families.split(","):
            accuracy, seconds = class_accuracy(family, data, Path(tmp) / family, args.steps)
            note = "  (unconditional control)" if family == "dcgan" else ""
            print(f"{family:<12} {accuracy:>15.3f} {seconds:>8.1f}{note}")


if __name__ == "__main__":
    main()
