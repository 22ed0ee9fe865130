"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training"): the same random, differentiable transforms on every image D sees, reals and fakes,
in D's and G's steps alike, so D cannot tell them apart by the augmentation and G is not pushed
to imitate it.

Ops (images in [-1, 1], parameters drawn per image):
    color        brightness + U(-0.5, 0.5); saturation: the deviation from the per-pixel
                 channel mean × U(0, 2); contrast: the deviation from the image mean
                 × U(0.5, 1.5) (in this order, as in the paper's code)
    translation  an integer shift of up to 1/8 of the height and width (each drawn uniformly
                 from -round(H/8)..round(H/8)), the uncovered border zero (mid-grey)
    cutout       a zero square of half the image side, its centre uniform over the image
                 (it may hang over the border)

Only the generator given to the pipeline draws, so a resumed run draws the same parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from ganvas.augment import Identity
from ganvas.augment.pixels import gather_pixels
from ganvas.config import DIFFAUGMENT_OPS
from ganvas.training.distributed import per_sample

TRANSLATION_RATIO = 0.125  # largest shift, relative to the image side
CUTOUT_RATIO = 0.5  # side of the cut square, relative to the image side


def _uniform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """U(0, 1) per image, [N, 1, 1, 1], in the images' dtype."""
    u = per_sample(torch.rand, (len(images), 1, 1, 1), generator=generator, device=images.device)
    return u.to(images.dtype)


def color(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, saturation and contrast. [N, C, H, W] → [N, C, H, W]; values may
    leave [-1, 1], as in the paper (no clamp: it would stop gradients)."""
    images = images + (_uniform(images, generator) - 0.5)
    grey = images.mean(dim=1, keepdim=True)  # 1 channel: the image itself, a no-op
    images = (images - grey) * (2 * _uniform(images, generator)) + grey
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (_uniform(images, generator) + 0.5) + mean


def translation(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image shifted by a random whole number of pixels, zeros shifted in."""
    n, _, h, w = images.shape
    max_y, max_x = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    device = images.device
    dy = per_sample(partial(torch.randint, -max_y, max_y + 1), (n, 1, 1), generator=generator,
                    device=device)  # fmt: skip
    dx = per_sample(partial(torch.randint, -max_x, max_x + 1), (n, 1, 1), generator=generator,
                    device=device)  # fmt: skip
    rows = torch.arange(h, device=device).view(1, h, 1) - dy  # [N, H, 1]
    cols = torch.arange(w, device=device).view(1, 1, w) - dx  # [N, 1, W]
    return gather_pixels(images, rows.expand(n, h, w), cols.expand(n, h, w), "zero")


def cutout(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A square of side CUTOUT_RATIO · size set to zero in each image, anywhere, clipped by
    the border."""
    n, _, h, w = images.shape
    size_y, size_x = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    device = images.device

    def low_edges(side: int, size: int) -> torch.Tensor:
        # The square's centre is uniform over the image: a pixel for an odd `size`, a pixel
        # corner from edge to edge for an even one (as in the paper's code).
        centre = per_sample(partial(torch.randint, 0, side + 1 - size % 2), (n, 1),
                            generator=generator, device=device)  # fmt: skip
        return centre - size // 2

    top, left = low_edges(h, size_y), low_edges(w, size_x)  # [N, 1]
    rows, cols = torch.arange(h, device=device), torch.arange(w, device=device)
    cut_rows = (rows >= top) & (rows < top + size_y)  # [N, H]
    cut_cols = (cols >= left) & (cols < left + size_x)  # [N, W]
    keep = ~(cut_rows[:, :, None] & cut_cols[:, None, :])  # [N, H, W]
    return images * keep[:, None].to(images.dtype)


OPS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}
assert tuple(OPS) == DIFFAUGMENT_OPS  # config.py validates policies against those names


def parse_policy(policy: str) -> list[str]:
    """'color, translation' → ['color', 'translation'] (validated by TrainConfig)."""
    return [op.strip() for op in policy.split(",")]


class DiffAugment(Identity):
    """The D-input pipeline that applies the policy's ops, in order, to every image D sees.
    Its only state is the run's generator, which the trainer saves.

    Args:
        policy: comma-separated op names from DIFFAUGMENT_OPS, e.g. 'color,translation,cutout'.
        generator: draws every random parameter (on the images' device).
    """

    def __init__(self, policy: str, generator: torch.Generator) -> None:
        self.policy = parse_policy(policy)
        unknown = [op for op in self.policy if op not in OPS]
        if unknown:
            raise ValueError(f"unknown DiffAugment ops {unknown}; choose from {list(OPS)}")
        self.generator = generator

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] → [N, C, H, W], differentiable."""
        for op in self.policy:
            images = OPS[op](images, self.generator)
        return images
