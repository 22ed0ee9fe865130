"""What the studio's buttons do, as plain functions of a `Studio` (no gradio here), so that
tests and other front ends call the same code.

Every request is bounded (`ganvas.studio.runs`: images, walk steps, runs compared, a time
limit) and names its run by label; `Studio.run` refuses anything else.
"""

from __future__ import annotations

import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganvas.grid import to_pil
from ganvas.rundir import RunDir
from ganvas.studio.runs import (
    MAX_COMPARE,
    MAX_IMAGES,
    MAX_RESTORE_SIDE,
    MAX_WALK_SEEDS,
    MAX_WALK_STEPS,
    REQUEST_SECONDS,
    GeneratorCache,
    RequestTooLarge,
    RunCatalog,
    check_bound,
)

CHUNK = 32  # images per forward pass between two looks at the clock


def _restorer_cache() -> GeneratorCache:
    from ganvas.restore import load_restorer

    return GeneratorCache(max_items=2, loader=load_restorer)


@dataclass
class Studio:
    """The catalog of runs, the generator caches and the folder for downloads."""

    catalog: RunCatalog
    cache: GeneratorCache = field(default_factory=GeneratorCache)
    restorers: GeneratorCache = field(default_factory=_restorer_cache)
    request_seconds: float = REQUEST_SECONDS
    out_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ganvas-studio-")))

    def run(self, label: str | None) -> RunDir:
        """The run named by a request (RunRefused for anything else)."""
        return self.catalog.resolve(label)

    def pipeline(self, label: str | None) -> Any:
        return self.cache.get(self.run(label))

    def restorer(self, label: str | None) -> Any:
        return self.restorers.get(self.run(label))

    def new_file(self, suffix: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / f"{uuid.uuid4().hex}{suffix}"


class Deadline:
    """Raises TimeoutError from `check()` once `seconds` have passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.start = seconds, time.monotonic()

    def check(self) -> None:
        if time.monotonic() - self.start > self.seconds:
            raise TimeoutError(f"the request ran past its time limit of {self.seconds:g} s")


def class_labels(pipeline: Any, class_name: str | None, n: int) -> torch.Tensor | None:
    """Labels [n] for a conditional generator: one class, or image i → class i mod K."""
    if not pipeline.conditional:
        return None
    if class_name in (None, "", "all"):
        return torch.arange(n) % pipeline.num_classes
    return torch.full((n,), pipeline.class_index(class_name), dtype=torch.long)


def generate_images(
    studio: Studio,
    label: str,
    seed: int,
    count: int,
    class_name: str | None = None,
    truncation: float | None = None,
) -> np.ndarray:
    """`count` images of a run for `seed`: uint8 [count, H, W, C], exactly the images of
    `ganvas.load(run).sample(count, seed, labels=..., truncation=...)`.

    Raises:
        RunRefused, RequestTooLarge, TimeoutError, ValueError (class, truncation).
    """
    check_bound("count", count, 1, MAX_IMAGES)
    check_bound("seed", seed, 0, 2**63 - 1)
    deadline = Deadline(studio.request_seconds)
    pipeline = studio.pipeline(label)
    count, seed = int(count), int(seed)
    if truncation is not None and not pipeline.supports_truncation:
        truncation = None  # the control is hidden for such runs; an API call may still send it
    z = pipeline.latents(count, seed)
    labels = class_labels(pipeline, class_name, count)
    chunks = []
    for start in range(0, count, CHUNK):
        c = None if labels is None else labels[start : start + CHUNK]
        img = pipeline.generate(z[start : start + CHUNK], c, truncation=truncation)
        chunks.append(img)
        deadline.check()
    images = torch.cat(chunks)
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def save_png(studio: Studio, picture: np.ndarray, name: str = "image") -> Path:
    path = studio.new_file(".png")
    to_pil(picture).save(path)
    return path


def save_zip(studio: Studio, pictures: np.ndarray, seed: int) -> Path:
    """A ZIP of PNG files seed<seed>_000000.png, ... (compressed PNGs stored as they are)."""
    path = studio.new_file(".zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for i, picture in enumerate(pictures):
            buffer = _png(picture)
            archive.writestr(f"seed{seed}_{i:06d}.png", buffer)
    return path


def _png(picture: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    to_pil(picture).save(buffer, format="PNG")
    return buffer.getvalue()


def compare_runs(
    studio: Studio, labels: list[str], seed: int, count: int
) -> list[tuple[np.ndarray, str]]:
    """The same seed through 2–4 runs: [(image, caption 'run · i')] run after run."""
    if not 1 <= len(labels or []) <= MAX_COMPARE:
        raise RequestTooLarge(f"choose 1 to {MAX_COMPARE} runs to compare, got {len(labels or [])}")
    check_bound("count", count * len(labels), 1, MAX_IMAGES)
    out = []
    for label in labels:
        for i, picture in enumerate(generate_images(studio, label, seed, count)):
            out.append((picture, f"{label} · {i}"))
    return out


def parse_seeds(text: str) -> list[int]:
    """'1, 7, 3' → [1, 7, 3] (2 to MAX_WALK_SEEDS non-negative integers)."""
    try:
        seeds = [int(part) for part in str(text).replace(" ", ",").split(",") if part]
    except ValueError as err:
        raise ValueError(f"seeds {text!r}: give whole numbers separated by commas") from err
    if not 2 <= len(seeds) <= MAX_WALK_SEEDS or min(seeds) < 0:
        raise RequestTooLarge(f"a walk needs 2 to {MAX_WALK_SEEDS} seeds >= 0, got {text!r}")
    return seeds


def walk(
    studio: Studio,
    label: str,
    seeds_text: str,
    steps: int,
    mode: str = "slerp",
    class_name: str | None = None,
    fps: float = 10,
) -> tuple[Path, int]:
    """An animated GIF of the latent walk through `seeds`; returns (file, frames)."""
    from ganvas.interpolate import interpolate, save_gif

    check_bound("steps", steps, 1, MAX_WALK_STEPS)
    check_bound("fps", fps, 1, 60)
    seeds = parse_seeds(seeds_text)
    pipeline = studio.pipeline(label)
    check_bound("frames", (len(seeds) - 1) * steps + 1, 2, MAX_IMAGES * 4)
    labels = class_name if pipeline.conditional and class_name not in (None, "") else None
    frames = interpolate(pipeline, seeds, steps=int(steps), mode=mode, labels=labels)
    path = studio.new_file(".gif")
    save_gif(frames, path, fps=fps)
    return path, len(frames)


def run_choices(studio: Studio) -> tuple[list[str], list[str], list[str]]:
    """(every run, the GAN runs, the restore runs): what the Run tab, the GAN tabs (Generate,
    Walk, Rate, Copies) and the Restore tab offer."""
    labels, restorers = studio.catalog.labels(), restore_labels(studio)
    return labels, [label for label in labels if label not in restorers], restorers


def restore_labels(studio: Studio) -> list[str]:
    """The studio's runs of an image-to-image family (restore): those the Restore tab uses."""
    from ganvas.models.registry import get_family

    labels = []
    for label, run in studio.catalog.runs().items():
        try:
            if get_family(run.read_config().model.family).takes_images:
                labels.append(label)
        except Exception:  # unreadable or unknown: not offered here (the Runs tab says why)
            continue
    return labels


def restore_picture(studio: Studio, label: str, picture: Any) -> tuple[np.ndarray, np.ndarray]:
    """A picture (PIL image or uint8 [H, W, C]) cleaned and enlarged by a restore run, and
    the same picture enlarged by bicubic interpolation to compare with: uint8 [H·f, W·f, C]
    each, f the run's factor. Bigger pictures are restored in overlapping tiles.

    Raises:
        RunRefused, RequestTooLarge (a side over MAX_RESTORE_SIDE), ValueError (no picture, or
        the run is not a restore run).
    """
    from PIL import Image

    from ganvas.restore import picture_pixels

    if picture is None:
        raise ValueError("upload a picture first")
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(np.asarray(picture))
    check_bound("picture side", max(image.size), 1, MAX_RESTORE_SIDE)
    restorer = studio.restorer(label)
    pixels = picture_pixels(image, restorer.channels)
    restored = restorer.restore(pixels)
    size = (image.width * restorer.factor, image.height * restorer.factor)
    bicubic = picture_pixels(image.resize(size, Image.Resampling.BICUBIC), restorer.channels)
    return restored, bicubic
