"""Using a trained restorer (the `restore` family): clean pictures, and enlarge GAN samples.

    r = ganvas.restore.load_restorer("runs/restore-x2")   # newest checkpoint (G_ema if kept)
    big = r.restore(picture)                  # uint8 [H, W, C] of any size → [H·f, W·f, C]
    report = restore_files("runs/restore-x2", ["old.jpg", "b.png"], "clean/")
    images = upscale_samples("runs/restore-x2", "runs/dcgan-32", n=64, factor=4)

Pictures larger than the side the restorer was trained on are cut into tiles of that side
that overlap by a quarter; each tile is restored and the tiles are blended with weights that
fall off linearly across the overlaps, so no seams show. Smaller pictures are padded (edge
pixels repeated) to one tile and cropped back. `upscale` applies a ×2 restorer twice for ×4.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganvas.checkpoint import best_checkpoint
from ganvas.config import Config
from ganvas.errors import CheckpointError, ConfigError
from ganvas.grid import image_grid, to_pil
from ganvas.inference import resolve_device
from ganvas.io import save_image_atomic
from ganvas.models.registry import get_family

TILE_BATCH = 16  # tiles per forward pass


@dataclass
class Restorer:
    """A restore run's generator: damaged pictures of side s → clean ones of side s · factor."""

    G: nn.Module
    config: Config
    step: int
    weights: str  # 'G_ema' or 'G'
    device: torch.device

    @property
    def factor(self) -> int:
        return int(self.config.model.factor)

    @property
    def tile(self) -> int:
        """The input side G was trained on: pictures are restored in tiles of this side."""
        return int(self.config.model.input_side)

    @property
    def channels(self) -> int:
        return int(self.config.model.channels)

    @torch.no_grad()
    def _run(self, tiles: np.ndarray) -> np.ndarray:
        """uint8 tiles [N, t, t, C] → float [N, t·f, t·f, C] in [-1, 1]."""
        out = []
        for start in range(0, len(tiles), TILE_BATCH):
            x = torch.from_numpy(tiles[start : start + TILE_BATCH]).permute(0, 3, 1, 2)
            x = x.float().div(127.5).sub(1).to(self.device)
            out.append(self.G(x).float().clamp(-1, 1).permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out)

    def restore(self, picture: np.ndarray) -> np.ndarray:
        """One picture, uint8 [H, W, C] (C = the run's channels), any size → uint8
        [H·f, W·f, C], tiled with overlap when larger than a tile."""
        picture = self._check(picture)
        h, w = picture.shape[:2]
        t, f = self.tile, self.factor
        padded = np.pad(picture, ((0, max(0, t - h)), (0, max(0, t - w)), (0, 0)), mode="edge")
        ph, pw = padded.shape[:2]
        ys, xs = tile_starts(ph, t), tile_starts(pw, t)
        corners = [(y, x) for y in ys for x in xs]
        tiles = np.stack([padded[y : y + t, x : x + t] for y, x in corners])
        restored = self._run(tiles)  # [N, t·f, t·f, C]
        weight = blend_window(t * f, max(1, (t // 4) * f))[..., None]
        total = np.zeros((ph * f, pw * f, picture.shape[2]), np.float64)
        weights = np.zeros((ph * f, pw * f, 1), np.float64)
        for (y, x), tile in zip(corners, restored):
            total[y * f : (y + t) * f, x * f : (x + t) * f] += tile * weight
            weights[y * f : (y + t) * f, x * f : (x + t) * f] += weight
        image = (total / weights)[: h * f, : w * f]
        return ((image + 1) * 127.5).round().clip(0, 255).astype(np.uint8)

    def restore_many(self, pictures: np.ndarray) -> np.ndarray:
        """uint8 [N, h, w, C] → uint8 [N, h·f, w·f, C]; pictures of the tile's side go
        through G in batches."""
        pictures = np.asarray(pictures)
        if pictures.ndim == 4 and pictures.shape[1:3] == (self.tile, self.tile):
            self._check(pictures[0])
            restored = self._run(np.ascontiguousarray(pictures))
            return ((restored + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        return np.stack([self.restore(p) for p in pictures])

    def upscale(self, pictures: np.ndarray, factor: int | None = None) -> np.ndarray:
        """Enlarge uint8 [N, h, w, C] by `factor` (a power of the restorer's factor: a ×2
        restorer runs twice for ×4; default its own factor).

        Raises:
            ValueError: the restorer does not enlarge (×1), or `factor` is not a power of its.
        """
        factor = factor or self.factor
        if self.factor == 1:
            raise ValueError("this restorer is ×1 (decrappify): it cleans pictures but does not "
                             "enlarge them; train one with model.factor=2 or 4")  # fmt: skip
        passes, reached = 0, 1
        while reached < factor:
            reached, passes = reached * self.factor, passes + 1
        if reached != factor:
            raise ValueError(f"--factor {factor} is not a power of this restorer's ×{self.factor}")
        for _ in range(passes):
            pictures = self.restore_many(pictures)
        return pictures

    def _check(self, picture: np.ndarray) -> np.ndarray:
        if picture.ndim != 3 or picture.shape[2] != self.channels or picture.dtype != np.uint8:
            raise ValueError(f"a picture must be uint8 [H, W, {self.channels}], not "
                             f"{picture.dtype} {list(picture.shape)}")  # fmt: skip
        return picture


def tile_starts(length: int, tile: int) -> list[int]:
    """Starts of tiles of side `tile` covering `length` (>= tile), overlapping by ≥ tile/4."""
    step = max(1, tile - tile // 4)
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def blend_window(side: int, ramp: int) -> np.ndarray:
    """[side, side] weights: 1 inside, falling linearly to 1/(ramp+1) over `ramp` pixels at
    each edge (a tile's pixels near its border count less where tiles overlap)."""
    edge = np.minimum(np.arange(side) + 1, np.arange(side)[::-1] + 1) / (ramp + 1)
    line = np.minimum(edge, 1.0)
    return np.outer(line, line)


def load_restorer(
    run_dir: str | os.PathLike,
    checkpoint: str | int | None = None,
    device: str | torch.device = "auto",
    ema: bool = True,
) -> Restorer:
    """Load a restore run's generator (no code from the checkpoint runs).

    Args:
        checkpoint: step number, 'best' (the checkpoint with the best eval score, when the run
            evaluated), or None for the newest.

    Raises:
        CheckpointError: the run or the checkpoint does not exist.
        ConfigError: the run is not of an image family, or the device is unavailable.
    """
    from ganvas.generate import load_network

    device = resolve_device(device)
    if checkpoint == "best":
        checkpoint = best_checkpoint(run_dir)
        if checkpoint is None:
            raise CheckpointError(f"{run_dir} has no best checkpoint: it marks one only when it "
                                  "evaluates (train.eval_interval > 0)")  # fmt: skip
    G, config, saved, name = load_network(run_dir, "G", checkpoint, ema)
    if not get_family(config.model.family).takes_images:
        raise ConfigError(f"{run_dir} is a {config.model.family} run: `ganvas restore` and "
                          "`--upscale` need a restore run (train one with --preset "
                          "restore-x2-32to64)")  # fmt: skip
    G = G.to(device).eval().requires_grad_(False)
    return Restorer(G=G, config=config, step=saved.step, weights=name, device=device)


@dataclass
class RestoreReport:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (file, why)


def read_picture(path: Path, channels: int) -> np.ndarray:
    """A picture file as uint8 [H, W, channels]; OSError/ValueError when it cannot be read."""
    from PIL import Image

    with Image.open(path) as picture:
        picture.load()
        return picture_pixels(picture, channels)


def picture_pixels(picture: Any, channels: int) -> np.ndarray:
    """A PIL image of any mode as uint8 [H, W, channels] (grey for 1 channel, else RGB)."""
    pixels = np.asarray(picture.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return pixels[..., None] if channels == 1 else pixels


def restore_files(
    run_dir: str | os.PathLike | Restorer,
    paths: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    checkpoint: str | int | None = None,
    device: str | torch.device = "auto",
) -> RestoreReport:
    """Restore picture files into `out_dir` as <name>.png (written to a temporary name, then
    renamed). A file that cannot be read is reported in `failed` and the others go on.

    Raises:
        ConfigError: `out_dir` is a file, or no picture was given.
    """
    restorer = run_dir if isinstance(run_dir, Restorer) else load_restorer(run_dir, checkpoint,
                                                                            device)  # fmt: skip
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; name a folder for the restored pictures")
    if not paths:
        raise ConfigError("no pictures given: name the files to restore")
    report, used = RestoreReport(), set()
    for path in map(Path, paths):
        try:
            picture = read_picture(path, restorer.channels)
        except (OSError, ValueError) as err:  # missing, not a picture, truncated
            report.failed.append((path, str(err).splitlines()[0] or type(err).__name__))
            continue
        name = path.stem
        while name in used:
            name += "_"
        used.add(name)
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{name}.png"
        save_image_atomic(target, to_pil(restorer.restore(picture)))
        report.written.append(target)
    return report


def upscale_samples(
    restore_run: str | os.PathLike | Restorer,
    gan_run: str | os.PathLike,
    n: int = 64,
    seed: int = 0,
    factor: int | None = None,
    device: str | torch.device = "auto",
    truncation: float | None = None,
) -> np.ndarray:
    """`n` samples of `gan_run` (seeded as `ganvas sample`), enlarged by `factor` by the
    restorer: uint8 [n, H·factor, W·factor, C].

    Raises:
        ValueError: channels differ, or the factor does not suit the restorer.
    """
    from ganvas.generate import load

    restorer = (restore_run if isinstance(restore_run, Restorer)
                else load_restorer(restore_run, device=device))  # fmt: skip
    pipeline = load(gan_run, device=device)
    if pipeline.config.model.channels != restorer.channels:
        raise ValueError(f"{gan_run} makes {pipeline.config.model.channels}-channel images; the "
                         f"restorer takes {restorer.channels}")  # fmt: skip
    return restorer.upscale(pipeline.sample_numpy(n, seed, truncation=truncation), factor)


def save_pictures_grid(path: str | os.PathLike, pictures: np.ndarray,
                       nrow: int | None = None) -> Path:  # fmt: skip
    """A contact sheet of uint8 [N, H, W, C] pictures, written atomically."""
    save_image_atomic(path, to_pil(image_grid(pictures, nrow=nrow)))
    return Path(path)
