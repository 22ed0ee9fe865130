"""Crappify: damage good images on the fly, so a restorer learns to undo it (fastai course-v3,
lesson 7; DeOldify).

    settings = CrappifySettings(factor=2, jpeg_quality=(10, 70))
    damaged, drawn = crappify(image, settings, seed)   # uint8 [H, W, C] → [H/2, W/2, C]

One image at a time, with Pillow, in this order:
    downscale   by `factor` (bilinear); factor 1 keeps the size (decrappify)
    blur        Gaussian, radius uniform in [0, blur]               (blur > 0)
    fade        blend toward an old photo's yellowed white by a uniform amount in [0, fade]
    grey        luminance only, kept in the image's channels      (grey: for colourisation)
    noise       Gaussian, std uniform in [0, noise] × 255          (noise > 0)
    overlay     the JPEG quality number written in white at a random place in the top-left
                quarter (fastai's crappifier)                     (overlay)
    JPEG        saved and read back in memory at a quality uniform in `jpeg_quality`

Every random choice comes from `seed`; `draw_seed(seed, index, epoch)` gives each image of
each epoch its own, so a pair is the same on every run, batch size and resume.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from ganvas.data.loader import draw_seed
from ganvas.errors import check

__all__ = ["CrappifySettings", "Drawn", "crappify", "crappify_batch", "draw_seed"]

FADE_TONE = (236, 226, 200)  # the yellowed white a faded print drifts toward
JPEG_QUALITY_RANGE = (1, 95)  # what Pillow's JPEG encoder takes sensibly


@dataclass(frozen=True)
class CrappifySettings:
    factor: int = 1  # the damaged image's side is the clean one's / factor
    jpeg_quality: tuple[int, int] = (10, 70)  # uniform integer quality, both ends included
    overlay: bool = True  # write the quality number on the image, as fastai does
    noise: float = 0.0  # max std of Gaussian noise, in [0, 1] of the pixel range
    blur: float = 0.0  # max Gaussian blur radius in pixels (of the damaged image)
    fade: float = 0.0  # max blend toward FADE_TONE, in [0, 1]
    grey: bool = False  # drop the colour (for colourisation)

    def __post_init__(self) -> None:
        check(self.factor in (1, 2, 4), f"crappify factor={self.factor} must be 1, 2 or 4")
        low, high = self.jpeg_quality
        check(JPEG_QUALITY_RANGE[0] <= low <= high <= JPEG_QUALITY_RANGE[1],
              f"model.jpeg_quality=[{low}, {high}] must satisfy 1 <= low <= high <= 95")  # fmt: skip
        check(0 <= self.noise <= 1, f"model.noise={self.noise} must lie in [0, 1]")
        check(self.blur >= 0, f"model.blur={self.blur} must be >= 0")
        check(0 <= self.fade <= 1, f"model.fade={self.fade} must lie in [0, 1]")

    @classmethod
    def from_model(cls, model: Any) -> CrappifySettings:
        """The settings of a restore family's model config (its fields of the same names)."""
        return cls(**{name: getattr(model, name) for name in asdict(cls())})


@dataclass(frozen=True)
class Drawn:
    """What one call drew: for logs and tests."""

    quality: int
    blur: float
    fade: float
    noise: float
    text_at: tuple[int, int] | None


def crappify(image: np.ndarray, settings: CrappifySettings, seed: int) -> tuple[np.ndarray, Drawn]:
    """Damage one image. `image`: uint8 [H, W, C] (C 1 or 3), H and W divisible by the factor.
    Returns the damaged uint8 [H/f, W/f, C] and what was drawn."""
    rng = np.random.default_rng(seed)
    grey_input = image.shape[2] == 1
    picture = Image.fromarray(image[..., 0] if grey_input else image).convert("RGB")
    if settings.factor > 1:
        size = (picture.width // settings.factor, picture.height // settings.factor)
        picture = picture.resize(size, Image.Resampling.BILINEAR)
    blur = float(rng.uniform(0, settings.blur)) if settings.blur else 0.0
    if blur:
        picture = picture.filter(ImageFilter.GaussianBlur(blur))
    fade = float(rng.uniform(0, settings.fade)) if settings.fade else 0.0
    if fade:
        picture = Image.blend(picture, Image.new("RGB", picture.size, FADE_TONE), fade)
    if settings.grey:
        picture = picture.convert("L").convert("RGB")
    noise = float(rng.uniform(0, settings.noise)) if settings.noise else 0.0
    if noise:
        pixels = np.asarray(picture, dtype=np.float32)
        pixels += rng.normal(0, noise * 255, pixels.shape).astype(np.float32)
        picture = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))
    quality = int(rng.integers(settings.jpeg_quality[0], settings.jpeg_quality[1] + 1))
    text_at = None
    if settings.overlay:
        text_at = (int(rng.integers(0, picture.width // 2 + 1)),
                   int(rng.integers(0, picture.height // 2 + 1)))  # fmt: skip
        ImageDraw.Draw(picture).text(text_at, str(quality), fill=(255, 255, 255))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    damaged = Image.open(buffer).convert("L" if grey_input else "RGB")
    pixels = np.asarray(damaged, dtype=np.uint8)
    if grey_input:
        pixels = pixels[..., None]
    return pixels, Drawn(quality, blur, fade, noise, text_at)


def crappify_batch(
    images: torch.Tensor, settings: CrappifySettings, seeds: list[int] | torch.Tensor
) -> torch.Tensor:
    """Float images [N, C, H, W] in [-1, 1] (exact uint8 values, as the loader makes them) →
    damaged [N, C, H/f, W/f] in [-1, 1] on the same device, image i from seeds[i]."""
    pixels = ((images.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    pixels = pixels.permute(0, 2, 3, 1).numpy()
    damaged = [crappify(p, settings, int(s))[0] for p, s in zip(pixels, seeds)]
    out = torch.from_numpy(np.stack(damaged)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1)
    return out.to(images.device)
