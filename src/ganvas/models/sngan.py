"""SNGAN (Miyato, Kataoka, Koyama & Yoshida, 2018): a ResNet GAN whose D is spectrally normalised.

G: a linear layer maps z to a 4×4 feature map, residual up-blocks (BatchNorm + ReLU, nearest
upsampling) double the side up to the output resolution, then BN → ReLU → conv3×3 → tanh.
G carries no spectral norm, as in the paper.
D: residual down-blocks with spectral norm on every conv and linear layer; the first is the
"optimized" block that takes the image without a ReLU in front; then ReLU, a sum over all
positions (global sum pooling) and an SN linear layer to one logit. Unconditional.

Widths: at 32 px (and 16 px) every stage of G is `g_width` channels wide and every block of
D `d_width` wide, like the paper's CIFAR-10 ResNet. Above 32 px, the stages at 32×32 and
below keep a constant width and each doubling of the side halves it, so the full-resolution
stage still has `g_width` (`d_width`) channels: at 128 px with the defaults G is
[512, 512, 512, 512, 256, 128] wide at sides 4..128 and D [128, 256, 512, 512, 512, 512].
`max_width` caps every stage. D downsamples to 8×8 up to 32 px (32 → 16 → 8 → 8 → 8, as
in the paper) and to 4×4 above, then adds one block (as in the ImageNet architecture).
Weights start Glorot-uniform, as in the paper's code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ganvas.errors import check
from ganvas.models.layers import (
    ResidualDownBlock,
    ResidualUpBlock,
    discriminator_downsampling,
    init_resnet_weights,
    resnet_width,
    sn,
)
from ganvas.models.registry import Family, ModelConfig, register_family

RESOLUTIONS = (16, 32, 64, 128)


@dataclass(frozen=True)
class SNGANConfig(ModelConfig):
    g_width: int = 128  # channels of G's full-resolution stage (all of G at 32 px)
    d_width: int = 128  # channels of D's first block (all of D at 32 px)
    max_width: int = 1024  # cap on channels at low resolution

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resolution is not None:
            check(
                self.resolution in RESOLUTIONS,
                f"model.resolution={self.resolution} is not supported by sngan; "
                f"choose one of {', '.join(map(str, RESOLUTIONS))}",
            )
        check(self.g_width >= 1, f"model.g_width={self.g_width} must be >= 1")
        check(self.d_width >= 1, f"model.d_width={self.d_width} must be >= 1")
        check(self.max_width >= 1, f"model.max_width={self.max_width} must be >= 1")


def _width(side: int, cfg: SNGANConfig, base: int) -> int:
    return resnet_width(side, cfg.resolution, base, cfg.max_width, flat_below=32)


class Generator(nn.Module):
    def __init__(self, cfg: SNGANConfig) -> None:
        super().__init__()
        self.z_dim = cfg.z_dim
        sides = [2**i for i in range(2, int(math.log2(cfg.resolution)) + 1)]  # 4, 8, ..., R
        widths = [_width(s, cfg, cfg.g_width) for s in sides]
        self.linear = nn.Linear(cfg.z_dim, widths[0] * 4 * 4)
        self.blocks = nn.ModuleList(
            ResidualUpBlock(w_in, w_out, norm=nn.BatchNorm2d)
            for w_in, w_out in zip(widths, widths[1:])
        )
        self.out = nn.Sequential(
            nn.BatchNorm2d(widths[-1]),
            nn.ReLU(),
            nn.Conv2d(widths[-1], cfg.channels, 3, padding=1),
            nn.Tanh(),
        )
        init_resnet_weights(self, "xavier")

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, z_dim] → images [N, C, R, R] in [-1, 1]. SNGAN is unconditional: c is ignored."""
        h = self.linear(z).view(z.shape[0], -1, 4, 4)  # [N, w0, 4, 4]
        for block in self.blocks:
            h = block(h)  # side doubles
        return self.out(h)


class Discriminator(nn.Module):
    def __init__(self, cfg: SNGANConfig) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        side, w_in = cfg.resolution, cfg.channels
        for i, downsample in enumerate(discriminator_downsampling(cfg.resolution)):
            w_out = _width(side, cfg, cfg.d_width)
            blocks.append(ResidualDownBlock(w_in, w_out, downsample, preactivation=i > 0))
            side, w_in = (side // 2 if downsample else side), w_out
        self.blocks = nn.Sequential(*blocks)
        self.linear = sn(nn.Linear(w_in, 1))
        init_resnet_weights(self, "xavier")

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """images [N, C, R, R] → logits [N] (positive = judged real)."""
        h = torch.relu(self.blocks(img))  # [N, w, 8, 8] up to 32 px, [N, w, 4, 4] above
        h = h.sum(dim=(2, 3))  # global sum pooling: [N, w]
        return self.linear(h).squeeze(1)


FAMILY = register_family(
    Family(
        name="sngan",
        config=SNGANConfig,
        generator=Generator,
        discriminator=Discriminator,
        paper="Miyato, Kataoka, Koyama & Yoshida 2018, arXiv:1802.05957",
    )
)
