"""R3GAN (Huang, Gokaslan, Kuleshov & Tompkin, NeurIPS 2024, arXiv:2501.05441), "The GAN is
dead; long live the GAN! A Modern GAN Baseline": a ResNet-style G and D without any
normalisation, trained with the regularised relativistic loss of `ganvas.objectives.r3gan`.

Both networks are one stage per side 4, 8, ..., R, each of `blocks` residual blocks. A block
is an inverted bottleneck with a grouped conv (the paper's "ResNeXt-ify" step):
    1×1 conv (w → w·expansion) → bias + leaky ReLU 0.2 → grouped 3×3 conv (groups of
    `group_width` channels) → bias + leaky ReLU 0.2 → 1×1 conv (→ w), added to the input.
There is no BatchNorm, spectral norm or any other normalisation: the R1 + R2 penalties keep
training stable, and a fix-up initialisation (Zhang et al. 2019) keeps the signal's scale.
Every weight is drawn N(0, gain² / fan_in) (He); the two convs of a block that feed a leaky
ReLU get the leaky ReLU's gain times L^(-1/4) (L residual blocks in the network, 3 layers per
branch: L^(-1/(2·3-2))), and the last conv of every block starts at zero, so each block
starts as the identity.

G: z scales, channel by channel, a learned 4×4 basis ([w, 4, 4] · linear(z)); between stages
a 1×1 conv changes the width (when it changes) and bilinear interpolation doubles the side;
a 1×1 conv makes the image. Its output is linear (samplers clamp to [-1, 1]).
D: a 1×1 conv takes the image; between stages an anti-aliased bilinear resize halves the
side, then a 1×1 conv changes the width; at 4×4 a per-channel (depthwise) 4×4 conv and a
linear layer give one logit. Unconditional: c is accepted and ignored.
Both resamplers are the [1, 3, 3, 1] filter of the paper's code (its [1, 2, 1] convolved with
the box [1, 1]), except at the border, where interpolation repeats the edge pixel where that
code pads with zeros. Convs have no biases; the biases sit in front of each activation.

Widths: every stage of G at 32×32 and below is `g_width` channels wide (D: `d_width`), and
each doubling of the side above 32 halves it, as in the paper's configs (FFHQ-64: 768 up to
32×32, 384 at 64×64; FFHQ-256 goes on to 192, 96). The grouped conv of a stage of width w has
w·expansion / group_width groups (the paper: 768·2 / 16 = 96).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganvas.errors import check
from ganvas.models.registry import Family, ModelConfig, register_family
from ganvas.objectives.r3gan import R3GANObjective

SLOPE = 0.2  # leaky ReLU
ACTIVATION_GAIN = nn.init.calculate_gain("leaky_relu", SLOPE)  # √(2 / (1 + 0.2²))
FLAT_UNTIL = 32  # stages up to this side keep the full width; each doubling above halves it


@dataclass(frozen=True)
class R3GANConfig(ModelConfig):
    z_dim: int = 64  # the paper's noise dimension
    g_width: int = 768  # channels of G's stages at 32×32 and below (halved per doubling above)
    d_width: int = 768  # ... and of D's
    blocks: int = 2  # residual blocks per stage, in G and in D
    expansion: int = 2  # a block's 3×3 conv works on width · expansion channels
    group_width: int = 16  # channels per group of that grouped conv
    gamma_start: float = 0.05  # γ of R1 and R2 (weight γ/2) at the first step ...
    gamma_end: float = 0.005  # ... decayed along a cosine to this at the last step
    r_interval: int = 1  # R1 + R2 every N steps in a phase of their own (1: in every D step)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("g_width", "d_width", "blocks", "expansion", "group_width", "r_interval"):
            value = getattr(self, key)
            check(value >= 1, f"model.{key}={value} must be >= 1")
        for key in ("gamma_start", "gamma_end"):
            value = getattr(self, key)
            check(value >= 0, f"model.{key}={value} must be >= 0")
        if self.resolution is None:
            return
        for player, width in (("G", self.g_width), ("D", self.d_width)):
            for side, w in zip(stage_sides(self.resolution), stage_widths(self.resolution, width)):
                inner = w * self.expansion
                check(
                    inner < self.group_width or inner % self.group_width == 0,
                    f"model.group_width={self.group_width}: {player}'s stage at {side}×{side} "
                    f"has {inner} channels in its grouped conv ({w} × expansion "
                    f"{self.expansion}), which do not split into groups of {self.group_width}",
                )


def stage_sides(resolution: int) -> list[int]:
    """[4, 8, ..., resolution]."""
    return [2**i for i in range(2, int(math.log2(resolution)) + 1)]


def stage_widths(resolution: int, width: int) -> list[int]:
    """Channels of the stages at sides 4, 8, ..., `resolution`: `width` up to 32×32, halved
    for each doubling above. For resolution 128, width 768: [768, 768, 768, 768, 384, 192]."""
    return [max(1, width * FLAT_UNTIL // max(side, FLAT_UNTIL)) for side in stage_sides(resolution)]


def cardinality(channels: int, group_width: int) -> int:
    """Groups of the grouped conv over `channels` channels: groups of `group_width` (which
    must divide `channels`), or a single group when there are fewer channels than that."""
    return max(1, channels // group_width)


def _init(layer: nn.Conv2d | nn.Linear, gain: float) -> nn.Conv2d | nn.Linear:
    """He initialisation with `gain`: weight ~ N(0, gain² / fan_in); gain 0 gives zeros."""
    fan_in = layer.weight[0].numel()  # in_channels / groups · k · k
    if gain == 0:
        nn.init.zeros_(layer.weight)
    else:
        nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in))
    return layer


def _conv1x1(in_channels: int, out_channels: int, gain: float = 1.0) -> nn.Conv2d:
    return _init(nn.Conv2d(in_channels, out_channels, 1, bias=False), gain)


def upsample(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] → [N, C, 2H, 2W], bilinear."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def downsample(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] → [N, C, H/2, W/2], bilinear with anti-aliasing: each output is the
    [1, 3, 3, 1] ⊗ [1, 3, 3, 1] / 64 weighted mean of its 4×4 neighbourhood. In fp32 (the
    CPU has no anti-aliased kernel for bf16/fp16, as under train.precision)."""
    out = F.interpolate(x.float(), scale_factor=0.5, mode="bilinear", align_corners=False,
                        antialias=True)  # fmt: skip
    return out.to(x.dtype)


class BiasedLeakyReLU(nn.Module):
    """leaky_relu(x + b, 0.2) with a learned bias b per channel (it starts at 0)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] → [N, C, H, W]."""
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), SLOPE)


class InvertedBottleneck(nn.Module):
    """x + 1×1 conv(act(grouped 3×3 conv(act(1×1 conv(x))))), widened by `expansion` inside.

    `depth` is the number of such blocks in the whole network: the fix-up scaling of the
    first two convs. The last conv starts at zero, so the block starts as the identity.
    """

    def __init__(self, width: int, expansion: int, group_width: int, depth: int) -> None:
        super().__init__()
        inner = width * expansion
        gain = ACTIVATION_GAIN * depth ** (-1 / 4)  # L^(-1/(2m-2)) for m = 3 layers
        self.expand = _conv1x1(width, inner, gain)
        self.act1 = BiasedLeakyReLU(inner)
        self.spatial = _init(nn.Conv2d(inner, inner, 3, padding=1, bias=False,
                                       groups=cardinality(inner, group_width)), gain)  # fmt: skip
        self.act2 = BiasedLeakyReLU(inner)
        self.project = _conv1x1(inner, width, gain=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, w, H, W] → [N, w, H, W]."""
        return x + self.project(self.act2(self.spatial(self.act1(self.expand(x)))))


def _blocks(width: int, cfg: R3GANConfig, depth: int) -> nn.Sequential:
    return nn.Sequential(*(InvertedBottleneck(width, cfg.expansion, cfg.group_width, depth)
                           for _ in range(cfg.blocks)))  # fmt: skip


class GeneratorStage(nn.Module):
    """[1×1 conv to `width` →] [upsample ×2 →] `cfg.blocks` residual blocks. The width
    changes before the resize: the 1×1 conv then works on the smaller image (they commute)."""

    def __init__(
        self, in_width: int, width: int, grows: bool, cfg: R3GANConfig, depth: int
    ) -> None:
        super().__init__()
        self.grows = grows
        self.transition = _conv1x1(in_width, width) if in_width != width else nn.Identity()
        self.blocks = _blocks(width, cfg, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, w_in, H, W] → [N, w, 2H, 2W] (or [N, w, H, W] for the first stage)."""
        x = self.transition(x)
        return self.blocks(upsample(x) if self.grows else x)


class DiscriminatorStage(nn.Module):
    """`cfg.blocks` residual blocks [→ downsample ×2] [→ 1×1 conv to `out_width`]."""

    def __init__(
        self, width: int, out_width: int, shrinks: bool, cfg: R3GANConfig, depth: int
    ) -> None:
        super().__init__()
        self.shrinks = shrinks
        self.blocks = _blocks(width, cfg, depth)
        self.transition = _conv1x1(width, out_width) if width != out_width else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, w, H, W] → [N, w_out, H/2, W/2] (or [N, w, H, W] for the 4×4 stage)."""
        x = self.blocks(x)
        return self.transition(downsample(x) if self.shrinks else x)


class Generator(nn.Module):
    def __init__(self, cfg: R3GANConfig) -> None:
        super().__init__()
        self.z_dim = cfg.z_dim
        widths = stage_widths(cfg.resolution, cfg.g_width)
        depth = cfg.blocks * len(widths)
        self.basis = nn.Parameter(torch.randn(widths[0], 4, 4))
        self.z_to_basis = _init(nn.Linear(cfg.z_dim, widths[0], bias=False), 1.0)
        self.stages = nn.ModuleList(
            GeneratorStage(w_in, w, i > 0, cfg, depth)
            for i, (w_in, w) in enumerate(zip(widths[:1] + widths[:-1], widths))
        )
        self.to_image = _conv1x1(widths[-1], cfg.channels)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, z_dim] → images [N, C, R, R], linear (trained toward [-1, 1]). R3GAN here is
        unconditional: c is ignored."""
        h = self.basis * self.z_to_basis(z)[:, :, None, None]  # [N, w0, 4, 4]
        for stage in self.stages:
            h = stage(h)  # side doubles from the second stage on
        return self.to_image(h)


class Discriminator(nn.Module):
    def __init__(self, cfg: R3GANConfig) -> None:
        super().__init__()
        widths = stage_widths(cfg.resolution, cfg.d_width)[::-1]  # sides R, R/2, ..., 4
        depth = cfg.blocks * len(widths)
        self.from_image = _conv1x1(cfg.channels, widths[0])
        self.stages = nn.ModuleList(
            DiscriminatorStage(w, w_out, i < len(widths) - 1, cfg, depth)
            for i, (w, w_out) in enumerate(zip(widths, widths[1:] + widths[-1:]))
        )
        w = widths[-1]
        self.basis = _init(nn.Conv2d(w, w, 4, groups=w, bias=False), 1.0)  # 4×4 → 1×1
        self.head = _init(nn.Linear(w, 1, bias=False), 1.0)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """images [N, C, R, R] → logits [N] (positive = judged real). c is ignored."""
        h = self.from_image(img)
        for stage in self.stages:
            h = stage(h)  # [N, w4, 4, 4] after the last
        return self.head(self.basis(h).flatten(1)).squeeze(1)


FAMILY = register_family(
    Family(
        name="r3gan",
        config=R3GANConfig,
        generator=Generator,
        discriminator=Discriminator,
        paper="Huang, Gokaslan, Kuleshov & Tompkin 2024, arXiv:2501.05441",
        objective=R3GANObjective,
    )
)
