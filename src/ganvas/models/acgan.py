"""ACGAN (Odena, Olah & Shlens, 2017): a conditional G and a D with an auxiliary classifier,
in the DCGAN-shaped form of the seeds/001 report (section 3) and seeds/003 (CIFAR-10).

Labels enter only G. The one-hot label goes through a linear layer `nn.Linear(K, z_dim)`
(the report's "fully connected layer") and the result is concatenated with z. Concatenation,
not the element-wise product z ⊙ e some ACGAN code uses: z is symmetric, so z ⊙ e has the
same distribution as z ⊙ |e| and the class would survive only as a pattern of per-dimension
scales (on a two-class toy set the product had not conditioned G after 600 steps; the
concatenation had). [z ⊕ e] [N, 2·z_dim] goes to 4×4 by a transposed conv, then stride-2 4×4
transposed convs halve the width (BN + activation; the report used LeakyReLU(0.2),
`g_activation`), then a transposed conv to the image and tanh. At 64 px: 512@4 → 256@8 →
128@16 → 64@32 → C@64, five transposed convs. The label layer's weights start N(0, 1), like
an `nn.Embedding`, so e is on z's scale; everything else starts N(0, 0.02), as in DCGAN.
D ignores the labels: 5×5 convs with stride 2 and padding 2 (each halves the side) down to
2×2, LeakyReLU(0.2), BatchNorm on every layer but the first ("so that the model can learn the
mean and the scale of the data distribution"), then flatten and two linear heads: one
real/fake logit and K class logits. At 64 px: 64@32 → 128@16 → 256@8 → 512@4 → 512@2, five
convs, as in the report. The sigmoid (real/fake) and log-softmax (classes) live in the
trainer's losses, which see logits.

`g_dropout` / `d_dropout` put Dropout2d after the first stages of G (its hidden transposed
convs) and of D (its convs), as the report tried "adding dropouts after some convolutional
layers" (Odena et al. used 0.5 after every conv of D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

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


@dataclass(frozen=True)
class ACGANConfig(DCGANConfig):
    g_activation: Literal["relu", "leaky_relu"] = "leaky_relu"  # the reports' G used LeakyReLU

    @property
    def dropout_stages(self) -> tuple[int, int]:
        """G: one stage per doubling of the side from 4×4; D: one per conv (down to 2×2)."""
        stages = int(math.log2(self.resolution)) - 2
        return stages, stages + 1


class Generator(nn.Module):
    def __init__(self, cfg: ACGANConfig) -> None:
        super().__init__()
        check_num_classes(cfg.num_classes, "acgan")
        self.z_dim, self.num_classes = cfg.z_dim, cfg.num_classes
        widths = pyramid_widths(cfg.resolution, cfg.g_width, cfg.max_width)  # 512, ... at 64 px
        self.label = nn.Linear(cfg.num_classes, cfg.z_dim)  # one-hot → e, concatenated to z
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(2 * cfg.z_dim, widths[0], 4, 1, 0, bias=False),  # [N, w0, 4, 4]
            nn.BatchNorm2d(widths[0]),
            activation(cfg.g_activation, cfg.leaky_slope),
            *stage_dropout(cfg.g_dropout, 0),
        ]
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
        nn.init.normal_(self.label.weight, 0.0, 1.0)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, z_dim], c [N] int64 → images [N, C, R, R] in [-1, 1]."""
        c = need_labels(c, "acgan", "G(z, c)")
        y = F.one_hot(c, self.num_classes).to(z.dtype)  # [N, K]
        h = torch.cat([z, self.label(y)], dim=1)  # [N, 2 · z_dim]
        return self.net(h[:, :, None, None])


class Discriminator(nn.Module):
    def __init__(self, cfg: ACGANConfig) -> None:
        super().__init__()
        check_num_classes(cfg.num_classes, "acgan")
        widths = pyramid_widths(cfg.resolution, cfg.d_width, cfg.max_width)[::-1]  # 64, ...
        widths.append(min(2 * widths[-1], cfg.max_width))  # one more conv: 4×4 → 2×2
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.channels, widths[0], 5, 2, 2, bias=False),  # [N, w0, R/2, R/2]
            nn.LeakyReLU(cfg.leaky_slope, inplace=True),  # no BatchNorm on the first layer
            *stage_dropout(cfg.d_dropout, 0),
        ]
        for i, (w_in, w_out) in enumerate(zip(widths, widths[1:]), start=1):
            layers += [
                nn.Conv2d(w_in, w_out, 5, 2, 2, bias=False),  # halves the side
                nn.BatchNorm2d(w_out),
                nn.LeakyReLU(cfg.leaky_slope, inplace=True),
                *stage_dropout(cfg.d_dropout, i),
            ]
        self.net = nn.Sequential(*layers, nn.Flatten())  # [N, w_last · 2 · 2]
        self.real_fake = nn.Linear(widths[-1] * 2 * 2, 1)
        self.classifier = nn.Linear(widths[-1] * 2 * 2, cfg.num_classes)
        init_dcgan_weights(self)

    def forward(
        self, img: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """images [N, C, R, R] → (logits [N] (positive = judged real), class logits [N, K]).
        ACGAN's D does not see the labels: c is ignored."""
        h = self.net(img)  # [N, w_last · 4]
        return self.real_fake(h).squeeze(1), self.classifier(h)


FAMILY = register_family(
    Family(
        name="acgan",
        config=ACGANConfig,
        generator=Generator,
        discriminator=Discriminator,
        paper="Odena, Olah & Shlens 2017, arXiv:1610.09585; seeds/001 and seeds/003",
        conditional=True,
    )
)
