"""DCGAN (Radford, Metz & Chintala, 2016): the all-convolutional GAN.

G: z → 4×4 by a transposed conv, then stride-2 transposed convs that double the side and
halve the width, BatchNorm + ReLU between, tanh at the end. D mirrors it with stride-2 convs,
LeakyReLU(0.2), BatchNorm on every layer but the first, and a 4×4 conv to one logit (the
sigmoid lives in the loss, which is numerically safer). Weights start from N(0, 0.02).

`g_dropout` / `d_dropout` put Dropout2d after G's and D's first stages, in order (a stage is
conv → [BN →] activation; G has log2(R) - 2 of them before its output layer, D as many before
its logit conv). With the default () the module tree is the paper's, as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ganvas.errors import check
from ganvas.models.layers import activation, init_dcgan_weights, pyramid_widths, stage_dropout
from ganvas.models.registry import Family, ModelConfig, register_family


@dataclass(frozen=True)
class DCGANConfig(ModelConfig):
    g_width: int = 64  # channels of G's last hidden layer ('ngf' in the paper's code)
    d_width: int = 64  # channels of D's first layer ('ndf')
    max_width: int = 512  # cap on channels at low resolution
    leaky_slope: float = 0.2
    g_activation: Literal["relu", "leaky_relu"] = (
        "relu"  # G's activation; LeakyReLU uses leaky_slope
    )
    g_dropout: tuple[float, ...] = ()  # Dropout2d rates after G's first stages, in order
    d_dropout: tuple[float, ...] = ()  # Dropout2d rates after D's first stages, in order

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.g_width >= 1, f"model.g_width={self.g_width} must be >= 1")
        check(self.d_width >= 1, f"model.d_width={self.d_width} must be >= 1")
        check(self.max_width >= 1, f"model.max_width={self.max_width} must be >= 1")
        check(
            self.g_activation in ("relu", "leaky_relu"),
            f"model.g_activation={self.g_activation!r} is not allowed; choose one of 'relu', 'leaky_relu'",
        )
        g_stages, d_stages = self.dropout_stages if self.resolution else (None, None)
        for name, net, stages in (("g_dropout", "G", g_stages), ("d_dropout", "D", d_stages)):
            rates = tuple(getattr(self, name))
            check(
                all(0 <= p < 1 for p in rates),
                f"model.{name}={list(rates)}: every dropout rate must lie in [0, 1)",
            )
            check(
                stages is None or len(rates) <= stages,
                f"model.{name}={list(rates)} has {len(rates)} rates, but {self.family}'s "
                f"{net} has only {stages} stages at {self.resolution} px",
            )

    @property
    def dropout_stages(self) -> tuple[int, int]:
        """Stages of (G, D) that a dropout rate can follow: one per doubling of the side from
        4×4 (G's output layer and D's logit layer are not stages)."""
        stages = int(math.log2(self.resolution)) - 2
        return stages, stages


class Generator(nn.Module):
    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        self.z_dim = cfg.z_dim
        widths = pyramid_widths(cfg.resolution, cfg.g_width, cfg.max_width)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.z_dim, widths[0], 4, 1, 0, bias=False),  # [N, w0, 4, 4]
            nn.BatchNorm2d(widths[0]),
            activation(cfg.g_activation, cfg.leaky_slope),
            *stage_dropout(cfg.g_dropout, 0),
        ]
        for i, (w_in, w_out) in enumerate(zip(widths, widths[1:]), start=1):
            layers += [
                nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(w_out),
                activation(cfg.g_activation, cfg.leaky_slope),
                *stage_dropout(cfg.g_dropout, i),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, z_dim] → images [N, C, R, R] in [-1, 1]. DCGAN is unconditional: c is ignored."""
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """Strided convs down to 4×4, then a 4×4 conv to one logit. `batchnorm=False` drops the
    BatchNorm layers (a WGAN critic option); the convs then get their own biases."""

    def __init__(self, cfg: DCGANConfig, batchnorm: bool = True) -> None:
        super().__init__()
        widths = pyramid_widths(cfg.resolution, cfg.d_width, cfg.max_width)[::-1]
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.channels, widths[0], 4, 2, 1, bias=False),  # [N, w0, R/2, R/2]
            nn.LeakyReLU(cfg.leaky_slope, inplace=True),
            *stage_dropout(cfg.d_dropout, 0),
        ]
        for i, (w_in, w_out) in enumerate(zip(widths, widths[1:]), start=1):
            layers.append(nn.Conv2d(w_in, w_out, 4, 2, 1, bias=not batchnorm))  # halves the side
            if batchnorm:
                layers.append(nn.BatchNorm2d(w_out))
            layers.append(nn.LeakyReLU(cfg.leaky_slope, inplace=True))
            layers += stage_dropout(cfg.d_dropout, i)
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False))  # [N, 1, 1, 1]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """images [N, C, R, R] → logits [N] (positive = judged real)."""
        return self.net(img).flatten()


FAMILY = register_family(
    Family(
        name="dcgan",
        config=DCGANConfig,
        generator=Generator,
        discriminator=Discriminator,
        paper="Radford, Metz & Chintala 2016, arXiv:1511.06434",
    )
)
