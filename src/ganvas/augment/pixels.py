"""Pixel moves shared by the augmentations: every output pixel copied from one input pixel.

Copying (a gather) is exact and differentiable: the gradient of an output pixel goes back to
the input pixel it came from, and nothing is resampled.
"""

from __future__ import annotations

from typing import Literal

import torch


def mirror_index(index: torch.Tensor, size: int) -> torch.Tensor:
    """Indices outside [0, size) reflected back inside, the edge pixel repeated (-1 → 0,
    size → size - 1), as grid_sample's 'reflection' padding does; any distance."""
    period = index.remainder(2 * size)
    return torch.where(period < size, period, 2 * size - 1 - period)


def gather_pixels(
    images: torch.Tensor,
    src_y: torch.Tensor,
    src_x: torch.Tensor,
    outside: Literal["zero", "mirror"],
) -> torch.Tensor:
    """out[n, :, i, j] = images[n, :, src_y[n, i, j], src_x[n, i, j]].

    Args:
        images: [N, C, H, W].
        src_y, src_x: [N, H, W] integer (int64) source rows and columns; any value.
        outside: a source outside the image reads 0 ('zero') or its mirror image ('mirror').

    Returns:
        [N, C, H, W], the same dtype and device.
    """
    n, c, h, w = images.shape
    if outside == "mirror":
        inside = None
        src_y, src_x = mirror_index(src_y, h), mirror_index(src_x, w)
    else:
        inside = (src_y >= 0) & (src_y < h) & (src_x >= 0) & (src_x < w)  # [N, H, W]
        src_y, src_x = src_y.clamp(0, h - 1), src_x.clamp(0, w - 1)
    index = (src_y * w + src_x).reshape(n, 1, h * w).expand(n, c, h * w)
    out = images.reshape(n, c, h * w).gather(2, index).view(n, c, h, w)
    if inside is not None:
        out = torch.where(inside[:, None], out, torch.zeros((), dtype=out.dtype, device=out.device))
    return out
