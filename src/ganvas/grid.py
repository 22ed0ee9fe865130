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


def labelled_grid(
    images: np.ndarray, row_labels: list[str], padding: int = 2, pad_value: int = 255
) -> np.ndarray:
    """Tile `images` ([rows·cols, H, W, C] uint8) with one row per label, the label written
    in a margin on the left. Returns [H', W', 3] uint8 (grey images are shown as RGB)."""
    from PIL import Image, ImageDraw, ImageFont

    rows = len(row_labels)
    if rows == 0 or len(images) % rows:
        raise ValueError(f"{len(images)} images do not fill {rows} labelled rows")
    cols = len(images) // rows
    grid = image_grid(images, nrow=cols, padding=padding, pad_value=pad_value)
    if grid.shape[2] == 1:
        grid = np.repeat(grid, 3, axis=2)
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = 8 + max(int(measure.textlength(label, font=font)) for label in row_labels)
    canvas = Image.new("RGB", (margin + grid.shape[1], grid.shape[0]), (pad_value,) * 3)
    canvas.paste(Image.fromarray(grid), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    tile = images.shape[1] + padding
    for row, label in enumerate(row_labels):
        y = padding + row * tile + images.shape[1] // 2
        draw.text((4, y), label, fill=(0, 0, 0), font=font, anchor="lm")
    return np.asarray(canvas)
