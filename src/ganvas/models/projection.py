"""Projection discriminator (Miyato & Koyama, 2018, "cGANs with Projection Discriminator"):
the modern class-conditional baseline, here in DCGAN shape.

G: DCGAN's G (z → 4×4 by a transposed conv, then stride-2 transposed convs halving the width,
ReLU, tanh at the end) whose BatchNorms are class-conditional: each normalises without its
own affine and scales and shifts by gain = 1 + W_g·e, bias = W_b·e, with e = embed(c) from one
`nn.Embedding(K, embed_dim)` shared by all stages. At 64 px: 512@4 → 256@8 → 128@16 → 64@32 →
C@64. The embedding starts N(0, 1/embed_dim), so |e| ≈ 1, and W_g, W_b start N(0, 0.02) like
every DCGAN weight: each class's gains then start ≈ N(1, 0.02), DCGAN's BatchNorm init.
D: DCGAN's D without BatchNorm and with spectral norm on every conv: stride-2 4×4 convs +
LeakyReLU down to 4×4, a sum over the 4×4 positions (global sum pooling) to h [N, w], and
the projection head logit = linear(h) + <embed(c), h>, linear and embedding spectrally
normalised. The inner product asks "does h look like class c?"; the paper shows it is the
form the optimal D takes when the class posteriors are log-linear in h. LeakyReLU slope 0.1
as in Miyato et al.'s standard CNN; D's weights start Glorot-uniform, as in their code.

`g_dropout` / `d_dropout` put Dropout2d after the first stages (as in dcgan).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ganvas.errors import check
from ganvas.models.dcgan import DCGANConfig
from ganvas.models.layers import (
    ConditionalBatchNorm2d,
    activation,
    check_num_classes,
    init_dcgan_weights,
    init_resnet_weights,
    need_labels,
    pyramid_widths,
    sn,
    stage_dropout,
)
from ganvas.models.registry import Family, register_family


@dataclass(frozen=True)
class ProjectionConfig(DCGANConfig):
    leaky_slope: float = 0.1  # D's LeakyReLU, as in Miyato et al.'s standard CNN
    embed_dim: int = 128  # size of G's class embedding (the input of every conditional BN)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.embed_dim >= 1, f"model.embed_dim={self.embed_dim} must be >= 1")


class UpStage(nn.Module):
    """One stage of G: transposed conv → class-conditional BN → activation [→ Dropout2d].
    The first stage maps [N, z, 1, 1] to 4×4; the others double the side."""

    def __init__(
        self,
        w_in: int,
        w_out: int,
        first: bool,
        embed_dim: int,
        dropout: list[nn.Module],
        act: nn.Module,
    ) -> None:
        super().__init__()
        stride, padding = (1, 0) if first else (2, 1)
        self.conv = nn.ConvTranspose2d(w_in, w_out, 4, stride, padding, bias=False)
        self.norm = ConditionalBatchNorm2d(w_out, embed_dim, use_sn=False)
        self.act = act  # no parameters: the state_dict keys are the same for any choice
        self.dropout = nn.Sequential(*dropout)  # empty: the identity

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x [N, w_in, S, S], e [N, embed_dim] → [N, w_out, 2S, 2S] (4×4 for the first)."""
        return self.dropout(self.act(self.norm(self.conv(x), e)))


class Generator(nn.Module):
    def __init__(self, cfg: ProjectionConfig) -> None:
        super().__init__()
        check_num_classes(cfg.num_classes, "projection")
        self.z_dim = cfg.z_dim
        widths = pyramid_widths(cfg.resolution, cfg.g_width, cfg.max_width)  # 512, ... at 64 px
        self.embed = nn.Embedding(cfg.num_classes, cfg.embed_dim)  # shared by all stages
        self.stages = nn.ModuleList(
            UpStage(
                w_in,
                w_out,
                i == 0,
                cfg.embed_dim,
                stage_dropout(cfg.g_dropout, i),
                activation(cfg.g_activation, cfg.leaky_slope),
            )  # fmt: skip
            for i, (w_in, w_out) in enumerate(zip([cfg.z_dim, *widths], widths))
        )
        self.out = nn.Sequential(
            nn.ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1, bias=False), nn.Tanh()
        )
        for m in self.modules():  # init_dcgan_weights(self) would trip on the affine-free BNs
            if isinstance(m, nn.ConvTranspose2d | nn.Linear):
                init_dcgan_weights(m)
        nn.init.normal_(self.embed.weight, 0.0, cfg.embed_dim**-0.5)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, z_dim], c [N] int64 → images [N, C, R, R] in [-1, 1]."""
        e = self.embed(need_labels(c, "projection", "G(z, c)"))  # [N, embed_dim]
        h = z[:, :, None, None]  # [N, z_dim, 1, 1]
        for stage in self.stages:
            h = stage(h, e)  # [N, w0, 4, 4], then the side doubles
        return self.out(h)


class Discriminator(nn.Module):
    def __init__(self, cfg: ProjectionConfig) -> None:
        super().__init__()
        check_num_classes(cfg.num_classes, "projection")
        widths = pyramid_widths(cfg.resolution, cfg.d_width, cfg.max_width)[::-1]  # 64, ...
        layers: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(zip([cfg.channels, *widths], widths)):
            layers += [
                sn(nn.Conv2d(w_in, w_out, 4, 2, 1)),  # halves the side
                nn.LeakyReLU(cfg.leaky_slope, inplace=True),
                *stage_dropout(cfg.d_dropout, i),
            ]
        self.net = nn.Sequential(*layers)  # [N, w_last, 4, 4]
        self.linear = sn(nn.Linear(widths[-1], 1))
        self.embed = sn(nn.Embedding(cfg.num_classes, widths[-1]))
        init_resnet_weights(self, "xavier")

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """images [N, C, R, R], c [N] int64 → logits [N] (positive = judged real)."""
        c = need_labels(c, "projection", "D(img, c)")
        h = self.net(img).sum(dim=(2, 3))  # global sum pooling: [N, w_last]
        return self.linear(h).squeeze(1) + (self.embed(c) * h).sum(dim=1)


FAMILY = register_family(
    Family(
        name="projection",
        config=ProjectionConfig,
        generator=Generator,
        discriminator=Discriminator,
        paper="Miyato & Koyama 2018, arXiv:1802.05637",
        conditional=True,
    )
)
