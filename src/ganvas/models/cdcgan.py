"""cDCGAN: DCGAN conditioned on class labels by parallel input branches (Mirza & Osindero
2014's conditional GAN in DCGAN form), as in the seeds/001 report ("Conditional Generative
Model for Art Generation", section 3).

G: z [N, z, 1, 1] and the one-hot label [N, K, 1, 1] each go through their own 4×4
transposed conv (+ BN + activation) to half of the first width; the two are concatenated at
4×4 and continue as DCGAN's G: stride-2 transposed convs halving the width (BN + activation),
then a transposed conv to the image and tanh. At 64 px: (256 ⊕ 256 = 512)@4 → 256@8 → 128@16
→ 64@32 → C@64, five transposed-conv layers deep. The report used LeakyReLU(0.2) in G
(`g_activation`; DCGAN's ReLU is 'relu').
D: the image and the one-hot label expanded to image size [N, K, R, R] each go through their
own 4×4 stride-2 conv + LeakyReLU(0.2) to half of the first width; the two are concatenated
and continue as DCGAN's D: stride-2 convs + BN + LeakyReLU down to 4×4, then a 4×4 conv to
one logit (the sigmoid lives in the loss). At 64 px: (32 ⊕ 32 = 64)@32 → 128@16 → 256@8 →
512@4 → 1, five conv layers deep. Weights start from N(0, 0.02).

`g_dropout` / `d_dropout` put Dropout2d after the first stages (stage 0 is the concatenation
of the two branches), as the report tried "adding dropouts after some convolutional layers".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ganvas.errors import check
from ganvas.models.dcgan import DCGANConfig
from ganvas.models.layers import (
    activation,
    check_num_classes,
    init_dcgan_weights,
    need_labels,
    pyramid_widths,
    stage_dropout,
)
from ganvas.models.registry import Family, register_family

RESOLUTIONS = (16, 32, 64, 128)


@dataclass(frozen=True)
class CDCGANConfig(DCGANConfig):
    g_activation: Literal["relu", "leaky_relu"] = "leaky_relu"  # the reports' G used LeakyReLU

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resolution is not None:
            check(
                self.resolution in RESOLUTIONS,
                f"model.resolution={self.resolution} is not supported by cdcgan; "
                f"choose one of {', '.join(map(str, RESOLUTIONS))}",
            )


class Generator(nn.Module):
    def __init__(self, cfg: CDCGANConfig) -> None:
        super().__init__()
        check_num_classes(cfg.num_classes, "cdcgan")
        self.z_dim, self.num_classes = cfg.z_dim, cfg.num_classes
        widths = pyramid_widths(cfg.resolution, cfg.g_width, cfg.max_width)  # 512, ... at 64 px
        half = max(1, widths[0] // 2)  # each branch's width
        widths[0] = 2 * half  # the two branches concatenated

        def branch(in_channels: int) -> nn.Sequential:  # [N, in, 1, 1] → [N, half, 4, 4]
            return nn.Sequential(
                nn.ConvTranspose2d(in_channels, half, 4, 1, 0, bias=False),
                nn.BatchNorm2d(half),
                activation(cfg.g_activation, cfg.leaky_slope),
            )

        self.z_branch = branch(cfg.z_dim)
        self.label_branch = branch(cfg.num_classes)
        layers: list[nn.Module] = stage_dropout(cfg.g_dropout, 0)
        for i, (w_in, w_out) in enumerate(zip(widths, widths[1:]), start=1):
            layers += [
                nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False),  # doubles the side
                nn.BatchNorm2d(w_out),
                activation(cfg.g_activation, cfg.leaky_slope),
                *stage_dropout(cfg.g_dropout, i),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, z_dim], c [N] int64 → images [N, C, R, R] in [-1, 1]."""
        c = need_labels(c, "cdcgan", "G(z, c)")
        y = F.one_hot(c, self.num_classes).to(z.dtype)[:, :, None, None]  # [N, K, 1, 1]
        h = torch.cat([self.z_branch(z[:, :, None, None]), self.label_branch(y)], dim=1)
        return self.net(h)  # h: [N, w0, 4, 4] → [N, C, R, R]


class Discriminator(nn.Module):
    def __init__(self, cfg: CDCGANConfig) -> None:
        super().__init__()
        check_num_classes(cfg.num_classes, "cdcgan")
        self.num_classes = cfg.num_classes
        widths = pyramid_widths(cfg.resolution, cfg.d_width, cfg.max_width)[::-1]  # 64, ...
        half = max(1, widths[0] // 2)  # each branch's width
        widths[0] = 2 * half  # the two branches concatenated

        def branch(in_channels: int) -> nn.Sequential:  # [N, in, R, R] → [N, half, R/2, R/2]
            return nn.Sequential(
                nn.Conv2d(in_channels, half, 4, 2, 1, bias=False),
                nn.LeakyReLU(cfg.leaky_slope, inplace=True),
            )

        self.img_branch = branch(cfg.channels)
        self.label_branch = branch(cfg.num_classes)
        layers: list[nn.Module] = stage_dropout(cfg.d_dropout, 0)
        for i, (w_in, w_out) in enumerate(zip(widths, widths[1:]), start=1):
            layers += [
                nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False),  # halves the side
                nn.BatchNorm2d(w_out),
                nn.LeakyReLU(cfg.leaky_slope, inplace=True),
                *stage_dropout(cfg.d_dropout, i),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False))  # [N, 1, 1, 1]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """images [N, C, R, R], c [N] int64 → logits [N] (positive = judged real)."""
        c = need_labels(c, "cdcgan", "D(img, c)")
        n, _, side, _ = img.shape
        y = F.one_hot(c, self.num_classes).to(img.dtype)[:, :, None, None]  # [N, K, 1, 1]
        y = y.expand(n, self.num_classes, side, side)  # the label as K image planes
        h = torch.cat([self.img_branch(img), self.label_branch(y)], dim=1)  # [N, w0, R/2, R/2]
        return self.net(h).flatten()


FAMILY = register_family(
    Family(
        name="cdcgan",
        config=CDCGANConfig,
        generator=Generator,
        discriminator=Discriminator,
        paper="Mirza & Osindero 2014, arXiv:1411.1784; seeds/001 (cDCGAN for art, 64 px)",
        conditional=True,
    )
)
