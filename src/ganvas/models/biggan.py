"""BigGAN (Brock, Donahue & Simonyan, 2019): a class-conditional ResNet GAN.

G: z is split into one chunk per up-block plus one for the first linear layer (the
"hierarchical latent"). The first chunk is mapped to a 4×4 feature map; every residual
up-block uses class-conditional BatchNorm whose gains and biases are projected from
concat(shared class embedding, its own z chunk). One SAGAN self-attention block follows the
up-block whose output side is `attention_resolution`. The output layer is BN → ReLU →
conv3×3 → tanh.
D: residual down-blocks (the first without a ReLU in front), self-attention after the block
whose output side is `attention_resolution`, ReLU, global sum pooling, then a projection
head (Miyato & Koyama 2018): logit = linear(h) + <embed(c), h>.
Spectral norm is on every conv, linear and (in D) embedding layer of both networks, and
weights start orthogonal, as in the paper.

`aux_classifier=True` is the ACGAN + BigGAN hybrid: D also returns class logits from an SN
linear head on the pooled features; `projection=False` then drops the projection term.

Widths, with ch = g_width (d_width): at 16 and 32 px every stage is 4·ch wide (the CIFAR
architecture, 256 channels with the defaults). At 64 and 128 px the full-resolution stage
has ch channels and every halving of the side doubles that, up to 16·ch: at 128 px G is
[16, 16, 8, 4, 2, 1]·ch at sides 4..128 and D's blocks [1, 2, 4, 8, 16, 16]·ch, as in the
paper; at 64 px G is [8, 8, 4, 2, 1]·ch and D [1, 2, 4, 8, 16]·ch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ganvas.errors import check
from ganvas.models.layers import (
    ConditionalBatchNorm2d,
    ResidualDownBlock,
    ResidualUpBlock,
    SelfAttention,
    check_num_classes,
    discriminator_downsampling,
    init_resnet_weights,
    need_labels,
    resnet_width,
    sn,
)
from ganvas.models.registry import Family, ModelConfig, register_family

RESOLUTIONS = (16, 32, 64, 128)


@dataclass(frozen=True)
class BigGANConfig(ModelConfig):
    z_dim: int = 120  # split into log2(resolution) - 1 equal chunks (hierarchical latent)
    g_width: int = 64  # 'ch' of G: stages are multiples of it
    d_width: int = 64  # 'ch' of D
    shared_dim: int = 128  # size of G's shared class embedding
    attention_resolution: int = 32  # side at which G and D get self-attention; 0 = none
    aux_classifier: bool = False  # D also returns class logits (ACGAN + BigGAN hybrid)
    projection: bool = True  # the projection term <embed(c), h> in D's logit

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.g_width >= 1, f"model.g_width={self.g_width} must be >= 1")
        check(self.d_width >= 1, f"model.d_width={self.d_width} must be >= 1")
        check(self.shared_dim >= 1, f"model.shared_dim={self.shared_dim} must be >= 1")
        a = self.attention_resolution
        check(
            a == 0 or (a >= 4 and math.log2(a).is_integer()),
            f"model.attention_resolution={a} must be 0 (no attention) or a power of two >= 4",
        )
        check(
            self.projection or self.aux_classifier,
            "model.projection=false needs model.aux_classifier=true; "
            "otherwise biggan's D would ignore the class labels",
        )
        if self.resolution is not None:
            check(
                self.resolution in RESOLUTIONS,
                f"model.resolution={self.resolution} is not supported by biggan; "
                f"choose one of {', '.join(map(str, RESOLUTIONS))}",
            )
            chunks = self.z_chunks
            check(
                self.z_dim % chunks == 0,
                f"model.z_dim={self.z_dim} must be a multiple of {chunks} for biggan at "
                f"{self.resolution} px (one equal chunk per up-block plus one for the first "
                f"layer), e.g. model.z_dim={chunks * max(1, round(self.z_dim / chunks))}",
            )

    @property
    def z_chunks(self) -> int:
        """Pieces z is split into: one per up-block (log2(R) - 2) plus one."""
        return int(math.log2(self.resolution)) - 1


def _width(side: int, cfg: BigGANConfig, ch: int) -> int:
    if cfg.resolution <= 32:
        return resnet_width(side, cfg.resolution, 4 * ch, 4 * ch, flat_below=32)
    return resnet_width(side, cfg.resolution, ch, 16 * ch, flat_below=8)


class Generator(nn.Module):
    def __init__(self, cfg: BigGANConfig) -> None:
        super().__init__()
        check_num_classes(cfg.num_classes, "biggan")
        self.z_dim = cfg.z_dim
        self.chunk = cfg.z_dim // cfg.z_chunks
        sides = [2**i for i in range(2, int(math.log2(cfg.resolution)) + 1)]  # 4, 8, ..., R
        widths = [_width(s, cfg, cfg.g_width) for s in sides]

        self.shared = nn.Embedding(cfg.num_classes, cfg.shared_dim)  # one for all blocks
        self.linear = sn(nn.Linear(self.chunk, widths[0] * 4 * 4))
        norm = partial(ConditionalBatchNorm2d, cond_dim=cfg.shared_dim + self.chunk)
        self.blocks = nn.ModuleList(
            ResidualUpBlock(w_in, w_out, norm=norm, use_sn=True)
            for w_in, w_out in zip(widths, widths[1:])
        )
        # Self-attention after the block whose output side is attention_resolution, if any.
        side = cfg.attention_resolution
        self.attention_after = sides.index(side) - 1 if side in sides[1:] else -1
        self.attention = (
            SelfAttention(widths[self.attention_after + 1]) if side in sides[1:] else None
        )
        self.out = nn.Sequential(
            nn.BatchNorm2d(widths[-1]),
            nn.ReLU(),
            sn(nn.Conv2d(widths[-1], cfg.channels, 3, padding=1)),
            nn.Tanh(),
        )
        init_resnet_weights(self, "ortho")

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, z_dim], c [N] int64 → images [N, C, R, R] in [-1, 1]."""
        c = need_labels(c, "biggan", "G(z, c)")
        zs = z.split(self.chunk, dim=1)  # (num_blocks + 1) × [N, chunk]
        e = self.shared(c)  # [N, shared_dim]
        h = self.linear(zs[0]).view(z.shape[0], -1, 4, 4)  # [N, w0, 4, 4]
        for i, block in enumerate(self.blocks):
            h = block(h, torch.cat([e, zs[i + 1]], dim=1))  # side doubles
            if i == self.attention_after:
                h = self.attention(h)
        return self.out(h)


class Discriminator(nn.Module):
    def __init__(self, cfg: BigGANConfig) -> None:
        super().__init__()
        check_num_classes(cfg.num_classes, "biggan")
        self.blocks = nn.ModuleList()
        self.attention_after, self.attention = -1, None
        side, w_in = cfg.resolution, cfg.channels
        for i, downsample in enumerate(discriminator_downsampling(cfg.resolution)):
            w_out = _width(side, cfg, cfg.d_width)
            self.blocks.append(ResidualDownBlock(w_in, w_out, downsample, preactivation=i > 0))
            side, w_in = (side // 2 if downsample else side), w_out
            if side == cfg.attention_resolution and self.attention is None:
                self.attention_after, self.attention = i, SelfAttention(w_out)

        self.linear = sn(nn.Linear(w_in, 1))
        self.embed = sn(nn.Embedding(cfg.num_classes, w_in)) if cfg.projection else None
        self.classifier = sn(nn.Linear(w_in, cfg.num_classes)) if cfg.aux_classifier else None
        init_resnet_weights(self, "ortho")

    def forward(
        self, img: torch.Tensor, c: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """images [N, C, R, R], c [N] int64 → logits [N] (positive = judged real), and with
        aux_classifier also class logits [N, num_classes]."""
        h = img
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attention_after:
                h = self.attention(h)
        h = torch.relu(h).sum(dim=(2, 3))  # global sum pooling: [N, w]
        logits = self.linear(h).squeeze(1)  # [N]
        if self.embed is not None:
            logits = logits + (self.embed(need_labels(c, "biggan", "D(img, c)")) * h).sum(dim=1)
        if self.classifier is None:
            return logits
        return logits, self.classifier(h)  # [N], [N, num_classes]


FAMILY = register_family(
    Family(
        name="biggan",
        config=BigGANConfig,
        generator=Generator,
        discriminator=Discriminator,
        paper="Brock, Donahue & Simonyan 2019, arXiv:1809.11096",
        conditional=True,
    )
)
