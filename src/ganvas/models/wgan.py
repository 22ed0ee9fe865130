"""WGAN (Arjovsky, Chintala & Bottou, 2017): DCGAN's networks trained as a Wasserstein critic.

The architecture is DCGAN's: G is `ganvas.models.dcgan.Generator` unchanged. The critic has
DCGAN's discriminator shape (stride-2 4×4 convs, LeakyReLU(0.2), no norm on the first layer)
with a linear output: its score is an unbounded estimate of how real an image is, not a
probability, so nothing squashes it. The paper's DCGAN critic kept BatchNorm
(`critic_norm='batch'`); `critic_norm='none'` removes it, e.g. to pair with a gradient
penalty, which is computed per sample and breaks under batch statistics.

What makes it a WGAN is not in this file: weight clipping (every critic parameter into
[-0.01, 0.01] after each update), RMSProp at lr 5e-5 and 5 critic updates per G update are
training settings (loss, optim and train sections of the config), not model settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ganvas.config import check
from ganvas.models.dcgan import DCGANConfig, Generator
from ganvas.models.layers import init_dcgan_weights, pyramid_widths
from ganvas.models.registry import Family, register_family


@dataclass(frozen=True)
class WGANConfig(DCGANConfig):
    critic_norm: Literal["batch", "none"] = "batch"  # BatchNorm in the critic, as in the paper

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.critic_norm in ("batch", "none"),
            f"model.critic_norm={self.critic_norm!r} is not allowed; choose one of 'batch', 'none'",
        )


class Critic(nn.Module):
    """DCGAN's discriminator with an optional BatchNorm and a linear score [N]."""

    def __init__(self, cfg: WGANConfig) -> None:
        super().__init__()
        widths = pyramid_widths(cfg.resolution, cfg.d_width, cfg.max_width)[::-1]
        use_bn = cfg.critic_norm == "batch"
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.channels, widths[0], 4, 2, 1, bias=False),  # [N, w0, R/2, R/2]
            nn.LeakyReLU(cfg.leaky_slope, inplace=True),
        ]
        for w_in, w_out in zip(widths, widths[1:]):
            # Without BatchNorm nothing absorbs a bias, so the conv gets its own.
            layers.append(nn.Conv2d(w_in, w_out, 4, 2, 1, bias=not use_bn))  # halves the side
            if use_bn:
                layers.append(nn.BatchNorm2d(w_out))
            layers.append(nn.LeakyReLU(cfg.leaky_slope, inplace=True))
        # A bias on the score would cancel in E[D(real)] - E[D(fake)], so none.
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False))  # [N, 1, 1, 1]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """images [N, C, R, R] → scores [N] (higher = judged more real). c is ignored."""
        return self.net(img).flatten()


FAMILY = register_family(
    Family(
        name="wgan",
        config=WGANConfig,
        generator=Generator,
        discriminator=Critic,
        paper="Arjovsky, Chintala & Bottou 2017, arXiv:1701.07875",
    )
)
