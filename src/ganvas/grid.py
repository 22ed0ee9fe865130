"""Contact sheets: many images tiled into one, with padding between them."""

from __future__ import annotations

import math

import numpy as np


def image_grid(
    images: np.ndarray, nrow: int | None = None, padding: int = 2, pad_value: int = 255
) -> np.ndarray:
    """Tile `images` ([N, H, W, C] uint8) into one [H', W', C] uint8 picture.

    Args:
        images: the pictures, channels last.
        nrow: images per row; defaults to a near-square layout.
        padding: pixels between (and around) the tiles.
        pad_value: grey level of the padding, 0-255.
    """
    if images.ndim != 4:
        raise ValueError(f"image_grid expects [N, H, W, C], got shape {tuple(images.shape)}")
    n, h, w, c = images.shape
    if n == 0:
        raise ValueError("image_grid needs at least one image")
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = min(nrow, n)
    nrows = math.ceil(n / ncol)
    grid = np.full(
        (padding + nrows * (h + padding), padding + ncol * (w + padding), c), pad_value, np.uint8
    )
    for i in range(n):
        row, col = divmod(i, ncol)
        y = padding + row * (h + padding)
        x = padding + col * (w + padding)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def to_pil(picture: np.ndarray):
    """[H, W, C] uint8 with C in {1, 3} → PIL image (mode L or RGB)."""
    from PIL import Image

    if picture.shape[-1] == 1:
        return Image.fromarray(picture[..., 0], mode="L")
    return Image.fromarray(picture, mode="RGB")
