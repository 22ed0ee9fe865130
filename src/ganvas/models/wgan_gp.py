"""WGAN-GP (Gulrajani et al., 2017): a residual generator and a layer-normalised critic.

The layout follows Kaddech (2019, "GANs learning to draw oil paintings", section 2.1), a
WGAN-GP for 64 px paintings; one residual stage per doubling from 4×4, so any power-of-two
resolution works (16 to 128 are tested). Widths are DCGAN's pyramid (`pyramid_widths`).

G: linear z → [N, w0, 4, 4], then up-blocks (BN-ReLU-upsample-conv3×3-BN-ReLU-conv3×3, with a
nearest-upsampled skip), then BN-ReLU-conv3×3-tanh. At 64 px: 512@4 → 256@8 → 128@16 →
64@32 → 64@64 → C@64.
Critic: conv3×3 stem, then down-blocks (LN-act-conv3×3-LN-act-conv3×3 stride 2, with an
avg-pooled skip), then act-linear to one unbounded score. At 64 px: 64@64 → 64@32 → 128@16 →
256@8 → 512@4 → 1. The critic has no BatchNorm: the gradient penalty is a per-sample
quantity, and batch statistics would couple each sample's score to the rest of the batch.
Layer norm (`GroupNorm(1, C)`: mean and variance over [C, H, W] of each sample, per-channel
affine) keeps samples independent.

Dropout after the first stages of both networks is Kaddech's remedy for a critic that
memorises a small data set: (0.5, 0.2, 0.2) in G, (0.5, 0.5, 0.2) in the critic. The loss
(Wasserstein + gradient penalty, λ = 10), Adam(1e-4, β = (0, 0.9)) and 5 critic updates per
G update are training settings, not model settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ganvas.errors import check
from ganvas.models.layers import pyramid_widths, stage_dropout
from ganvas.models.registry import Family, ModelConfig, register_family

LEAKY_SLOPE = 0.2  # for critic_activation='leaky_relu'


@dataclass(frozen=True)
class WGANGPConfig(ModelConfig):
    z_dim: int = 128
    g_width: int = 64  # channels of G's last stages (at R/2 and R)
    d_width: int = 64  # channels of the critic's first stages (at R and R/2)
    max_width: int = 512  # cap on channels at low resolution
    g_dropout: tuple[float, ...] = (0.5, 0.2, 0.2)  # after G's first up-blocks, in order
    d_dropout: tuple[float, ...] = (0.5, 0.5, 0.2)  # after the critic's first down-blocks
    critic_activation: Literal["relu", "leaky_relu"] = "relu"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.g_width >= 1, f"model.g_width={self.g_width} must be >= 1")
        check(self.d_width >= 1, f"model.d_width={self.d_width} must be >= 1")
        check(self.max_width >= 1, f"model.max_width={self.max_width} must be >= 1")
        for name in ("g_dropout", "d_dropout"):
            rates = tuple(getattr(self, name))
            check(
                all(0 <= p < 1 for p in rates),
                f"model.{name}={list(rates)}: every dropout rate must lie in [0, 1)",
            )
        check(
            self.critic_activation in ("relu", "leaky_relu"),
            f"model.critic_activation={self.critic_activation!r} is not allowed; "
            "choose one of 'relu', 'leaky_relu'",
        )


# --- Generator -----------------------------------------------------------------------------


class UpBlock(nn.Module):
    """Pre-activation residual block, doubling the side: [N, w_in, S, S] → [N, w_out, 2S, 2S]."""

    def __init__(self, w_in: int, w_out: int) -> None:
        super().__init__()
        # Every conv here feeds a BatchNorm (this block's or the next one's), so no biases.
        self.main = nn.Sequential(
            nn.BatchNorm2d(w_in),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(w_in, w_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(w_out),
            nn.ReLU(),
            nn.Conv2d(w_out, w_out, 3, 1, 1, bias=False),
        )
        self.skip = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Identity() if w_in == w_out else nn.Conv2d(w_in, w_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.skip(x)


class Generator(nn.Module):
    def __init__(self, cfg: WGANGPConfig) -> None:
        super().__init__()
        self.z_dim = cfg.z_dim
        widths = pyramid_widths(cfg.resolution, cfg.g_width, cfg.max_width)  # at 4, 8, …, R/2
        outs = widths[1:] + widths[-1:]  # each up-block's output; the last keeps its width
        self.w0 = widths[0]
        self.fc = nn.Linear(cfg.z_dim, 4 * 4 * widths[0], bias=False)
        stages: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(zip(widths, outs)):
            stages += [UpBlock(w_in, w_out), *stage_dropout(cfg.g_dropout, i)]
        self.blocks = nn.Sequential(*stages)
        self.to_img = nn.Sequential(
            nn.BatchNorm2d(widths[-1]),
            nn.ReLU(),
            nn.Conv2d(widths[-1], cfg.channels, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, z_dim] → images [N, C, R, R] in [-1, 1]. Unconditional: c is ignored."""
        x = self.fc(z).view(-1, self.w0, 4, 4)  # [N, w0, 4, 4]
        x = self.blocks(x)  # [N, g_width, R, R]
        return self.to_img(x)


# --- Critic --------------------------------------------------------------------------------


def _activation(name: str) -> nn.Module:
    # Not in-place: the gradient penalty differentiates through the critic twice.
    return nn.ReLU() if name == "relu" else nn.LeakyReLU(LEAKY_SLOPE)


class DownBlock(nn.Module):
    """Pre-activation residual block, halving the side: [N, w_in, S, S] → [N, w_out, S/2, S/2]."""

    def __init__(self, w_in: int, w_out: int, activation: str) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.GroupNorm(1, w_in),  # layer norm over [C, H, W] of each sample
            _activation(activation),
            nn.Conv2d(w_in, w_out, 3, 1, 1),
            nn.GroupNorm(1, w_out),
            _activation(activation),
            nn.Conv2d(w_out, w_out, 3, 2, 1),  # strided: halves the side
        )
        # Average-pool before the 1×1 conv rather than a strided 1×1, which would only keep
        # every fourth pixel of the skip.
        self.skip = nn.Sequential(
            nn.AvgPool2d(2),
            nn.Identity() if w_in == w_out else nn.Conv2d(w_in, w_out, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.skip(x)


class Critic(nn.Module):
    def __init__(self, cfg: WGANGPConfig) -> None:
        super().__init__()
        widths = pyramid_widths(cfg.resolution, cfg.d_width, cfg.max_width)[::-1]  # R/2, …, 4
        ins = widths[:1] + widths[:-1]  # the first down-block keeps the stem's width
        self.stem = nn.Conv2d(cfg.channels, widths[0], 3, 1, 1)  # [N, d_width, R, R]
        stages: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(zip(ins, widths)):
            stages += [DownBlock(w_in, w_out, cfg.critic_activation)]
            stages += stage_dropout(cfg.d_dropout, i)
        self.blocks = nn.Sequential(*stages)
        self.act = _activation(cfg.critic_activation)
        self.head = nn.Linear(4 * 4 * widths[-1], 1)  # linear score: no sigmoid

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """images [N, C, R, R] → scores [N] (higher = judged more real). c is ignored."""
        x = self.blocks(self.stem(img))  # [N, w, 4, 4]
        return self.head(self.act(x).flatten(1)).flatten()


FAMILY = register_family(
    Family(
        name="wgan_gp",
        config=WGANGPConfig,
        generator=Generator,
        discriminator=Critic,
        paper=(
            "Gulrajani et al. 2017, arXiv:1704.00028; layer-norm critic and dropout "
            "recipe after Kaddech 2019 (TUM bachelor's thesis, GANs learning to draw oil "
            "paintings)"
        ),
    )
)
