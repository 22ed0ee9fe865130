"""Building blocks shared by several GAN families."""

from __future__ import annotations

import math

from torch import nn


def init_dcgan_weights(module: nn.Module, std: float = 0.02) -> None:
    """Radford et al. (2016) initialisation: conv weights ~ N(0, std), norm scales ~ N(1, std)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def pyramid_widths(resolution: int, base_width: int, max_width: int) -> list[int]:
    """Channel widths from the 4×4 stage up to `resolution`, halving as resolution doubles.

    For resolution 64, base 64, max 512: [512, 256, 128, 64] at sizes [4, 8, 16, 32].
    The last entry is the width just below full resolution.
    """
    stages = int(math.log2(resolution)) - 2  # number of doublings from 4×4
    return [min(base_width * 2 ** (stages - 1 - i), max_width) for i in range(stages)]
