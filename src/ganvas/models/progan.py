"""ProGAN (Karras, Aila, Laine & Lehtinen, 2018): progressive growing of GANs.

Both networks are built for the final resolution at once (every block and every toRGB /
fromRGB exists from step 0, so optimizers see all parameters and checkpoints have fixed keys)
but run only up to the stage set by `set_stage(resolution, alpha)`. When a stage above the
first begins, its new layers fade in: alpha goes 0 → 1 and blends the new layers' output
with the previous stage's, upsampled (G) or taken from a downsampled input (D).

G: z, pixel-normed → 4×4 by a linear layer → conv3×3; then per doubling: nearest ×2
upsample, conv3×3, conv3×3; each conv followed by the activation and PixelNorm; a 1×1
toRGB per resolution. D mirrors it: a 1×1 fromRGB + activation per resolution; per halving:
conv3×3, conv3×3, 2×2 average pool; at 4×4: minibatch stddev, conv3×3, conv4×4 (valid),
linear → one score. Channels at side r are min(max_width, width_base // r); the paper's
Table 2 (512 up to 32 px, then halving) is width_base=16384, seeds/000's ProGAN is
max_width=256 with the default 8192. Every conv and linear layer uses the equalized learning
rate (weights N(0, 1), scaled by He's constant at run time; gain 1 for toRGB and D's score).

G's output is linear, as in the paper: unbounded, trained toward [-1, 1] by D, which sees
reals in [-1, 1]. A tanh or a clamp would flatten G's gradients for pixels beyond ±1; the
trainer's sample writer and the generate pipeline clamp what they save.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ganvas.errors import ConfigError, check
from ganvas.models.layers import EqualizedConv2d, EqualizedLinear, MinibatchStdDev, PixelNorm
from ganvas.models.registry import Family, ModelConfig, register_family

ACTIVATIONS = ("leaky_relu", "gelu", "selu")
LEAKY_SLOPE = 0.2
HE_GAIN = math.sqrt(2)


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


@dataclass(frozen=True)
class ProGANConfig(ModelConfig):
    z_dim: int = 512
    start_resolution: int = 4  # side of the first stage; `resolution` is the final one
    max_width: int = 512  # cap on channels (seeds/000: 256)
    width_base: int = 16384  # channels at side r: min(max_width, width_base // r), at least 1
    activation: Literal["leaky_relu", "gelu", "selu"] = "leaky_relu"  # LeakyReLU slope 0.2
    dilation: int = 1  # dilation of every 3×3 conv (padding matches, so sides are kept)
    equalized_lr: bool = True  # False: plain conv/linear layers with He initialisation
    pixel_norm: bool = True  # PixelNorm on the latent and after every conv of G
    mbstd_group: int = 4  # minibatch-stddev group size in D's last block; 0 = no such layer

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.start_resolution >= 4 and _is_power_of_two(self.start_resolution),
            f"model.start_resolution={self.start_resolution} must be a power of two >= 4",
        )
        check(
            self.resolution is None or self.start_resolution <= self.resolution,
            f"model.start_resolution={self.start_resolution} must be <= the final "
            f"model.resolution={self.resolution}",
        )
        check(self.max_width >= 1, f"model.max_width={self.max_width} must be >= 1")
        check(self.width_base >= 1, f"model.width_base={self.width_base} must be >= 1")
        check(
            self.activation in ACTIVATIONS,
            f"model.activation={self.activation!r} is not allowed; choose one of "
            + ", ".join(repr(a) for a in ACTIVATIONS),
        )
        check(self.dilation >= 1, f"model.dilation={self.dilation} must be >= 1")
        check(self.mbstd_group >= 0, f"model.mbstd_group={self.mbstd_group} must be >= 0")

    def width(self, side: int) -> int:
        """Channels of the layers working at `side`×`side` (the paper's channel decay)."""
        return max(1, min(self.max_width, self.width_base // side))


# --- Layers --------------------------------------------------------------------------------


def _conv(cfg: ProGANConfig, c_in: int, c_out: int, k: int, gain: float = HE_GAIN) -> nn.Module:
    """A k×k conv (3×3 ones dilated by cfg.dilation, padded to keep the side; others
    unpadded) with the equalized learning rate, or a plain He-initialised one."""
    dilation = cfg.dilation if k == 3 else 1
    padding = dilation if k == 3 else 0
    if cfg.equalized_lr:
        return EqualizedConv2d(c_in, c_out, k, padding=padding, dilation=dilation, gain=gain)
    conv = nn.Conv2d(c_in, c_out, k, padding=padding, dilation=dilation)
    nn.init.normal_(conv.weight, 0.0, gain / math.sqrt(c_in * k * k))
    nn.init.zeros_(conv.bias)
    return conv


def _linear(cfg: ProGANConfig, f_in: int, f_out: int, gain: float = HE_GAIN) -> nn.Module:
    if cfg.equalized_lr:
        return EqualizedLinear(f_in, f_out, gain=gain)
    linear = nn.Linear(f_in, f_out)
    nn.init.normal_(linear.weight, 0.0, gain / math.sqrt(f_in))
    nn.init.zeros_(linear.bias)
    return linear


def _act(cfg: ProGANConfig) -> nn.Module:
    # Not in place: WGAN-GP differentiates through D twice.
    if cfg.activation == "gelu":
        return nn.GELU()
    if cfg.activation == "selu":
        return nn.SELU()
    return nn.LeakyReLU(LEAKY_SLOPE)


def _norm(cfg: ProGANConfig) -> nn.Module:
    return PixelNorm() if cfg.pixel_norm else nn.Identity()


# --- Progressive state, shared by G and D ---------------------------------------------------


class _Growing(nn.Module):
    """`resolutions` (start..final), the current stage (`resolution`, `alpha`: plain
    attributes, not state, so checkpoints keep fixed keys) and `set_stage`."""

    def __init__(self, cfg: ProGANConfig) -> None:
        super().__init__()
        if cfg.resolution is None or cfg.channels is None:
            raise ConfigError("model.resolution and model.channels must be set before building")
        self.channels = cfg.channels
        self.start_resolution = cfg.start_resolution
        self.resolutions = [
            cfg.start_resolution * 2**i
            for i in range(int(math.log2(cfg.resolution // cfg.start_resolution)) + 1)
        ]
        self.resolution, self.alpha = self.resolutions[-1], 1.0

    def set_stage(self, resolution: int, alpha: float = 1.0) -> None:
        """Run at `resolution`×`resolution`, fading its new layers in with weight `alpha`.

        Args:
            resolution: side in pixels of the images G makes / D takes; a power of two
                from the start resolution to the final one.
            alpha: weight of the new layers while they fade in, in [0, 1]; 1 = fully in.
                Ignored at the start resolution, which has nothing to fade from.

        Raises:
            ValueError: if resolution or alpha is out of range.
        """
        if resolution not in self.resolutions:
            raise ValueError(
                f"stage resolution={resolution} is not allowed; choose one of "
                f"{', '.join(map(str, self.resolutions))} (powers of two from "
                f"{self.resolutions[0]} to {self.resolutions[-1]})"
            )
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"stage alpha={alpha} must lie in [0, 1]")
        self.resolution, self.alpha = int(resolution), float(alpha)

    @property
    def fading(self) -> bool:
        """True while the current stage's new layers are blended with the previous stage."""
        return self.alpha < 1.0 and self.resolution > self.start_resolution


# --- Generator -----------------------------------------------------------------------------


class GBlock(nn.Module):
    """Nearest ×2 upsample, conv3×3, conv3×3, each conv followed by activation + PixelNorm:
    [N, w_in, S, S] → [N, w_out, 2S, 2S]."""

    def __init__(self, cfg: ProGANConfig, w_in: int, w_out: int) -> None:
        super().__init__()
        self.conv1, self.act1, self.norm1 = _conv(cfg, w_in, w_out, 3), _act(cfg), _norm(cfg)
        self.conv2, self.act2, self.norm2 = _conv(cfg, w_out, w_out, 3), _act(cfg), _norm(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.norm1(self.act1(self.conv1(x)))
        return self.norm2(self.act2(self.conv2(x)))


class GInput(nn.Module):
    """z [N, z_dim] → PixelNorm → linear to 4×4 (a 4×4 transposed conv of a 1×1 input) →
    conv3×3: [N, w4, 4, 4]."""

    def __init__(self, cfg: ProGANConfig) -> None:
        super().__init__()
        self.width = cfg.width(4)
        self.norm_z = _norm(cfg)
        self.fc = _linear(cfg, cfg.z_dim, 16 * self.width)  # [N, 16 · w4] = [N, w4, 4, 4]
        self.act1, self.norm1 = _act(cfg), _norm(cfg)
        self.conv = _conv(cfg, self.width, self.width, 3)
        self.act2, self.norm2 = _act(cfg), _norm(cfg)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(self.norm_z(z)).view(-1, self.width, 4, 4)
        x = self.norm1(self.act1(x))
        return self.norm2(self.act2(self.conv(x)))


class Generator(_Growing):
    """G(z, c=None) → images [N, C, r, r] at the current stage's side r (see `set_stage`).

    The output is linear and unbounded (trained toward [-1, 1]; see the module docstring).
    """

    def __init__(self, cfg: ProGANConfig) -> None:
        super().__init__(cfg)
        self.z_dim = cfg.z_dim
        self.input = GInput(cfg)  # 4×4
        self.blocks = nn.ModuleDict(
            {str(r): GBlock(cfg, cfg.width(r // 2), cfg.width(r))
             for r in _sides_above_4(self.resolutions[-1])}
        )  # fmt: skip
        self.to_rgb = nn.ModuleDict(
            {str(r): _conv(cfg, cfg.width(r), cfg.channels, 1, gain=1.0) for r in self.resolutions}
        )

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, z_dim] → images [N, C, r, r], r = self.resolution. Unconditional: c is ignored."""
        x = prev = self.input(z)  # [N, w4, 4, 4]
        side = 4
        while side < self.resolution:
            side *= 2
            prev, x = x, self.blocks[str(side)](x)  # [N, w_side, side, side]
        img = self.to_rgb[str(side)](x)
        if self.fading:  # the previous stage's image, upsampled, fades out
            old = F.interpolate(self.to_rgb[str(side // 2)](prev), scale_factor=2.0, mode="nearest")
            img = torch.lerp(old, img, self.alpha)
        return img

    def stage_modules(self, resolution: int, fading: bool) -> list[nn.Module]:
        """The modules G runs at a stage of side `resolution` (with the previous toRGB if
        `fading`)."""
        used = [self.input] + [self.blocks[str(r)] for r in _sides_above_4(resolution)]
        used.append(self.to_rgb[str(resolution)])
        if fading and resolution > self.start_resolution:
            used.append(self.to_rgb[str(resolution // 2)])
        return used


# --- Discriminator -------------------------------------------------------------------------


class DBlock(nn.Module):
    """conv3×3, conv3×3 (each followed by the activation), 2×2 average pool:
    [N, w_in, S, S] → [N, w_out, S/2, S/2]."""

    def __init__(self, cfg: ProGANConfig, w_in: int, w_out: int) -> None:
        super().__init__()
        self.conv1, self.act1 = _conv(cfg, w_in, w_in, 3), _act(cfg)
        self.conv2, self.act2 = _conv(cfg, w_in, w_out, 3), _act(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return F.avg_pool2d(x, 2)


class DOutput(nn.Module):
    """D's 4×4 block: [minibatch stddev →] conv3×3 → conv4×4 (valid) → linear:
    [N, w4, 4, 4] → scores [N]."""

    def __init__(self, cfg: ProGANConfig) -> None:
        super().__init__()
        w = cfg.width(4)
        self.mbstd = MinibatchStdDev(cfg.mbstd_group) if cfg.mbstd_group else nn.Identity()
        self.conv, self.act1 = _conv(cfg, w + (1 if cfg.mbstd_group else 0), w, 3), _act(cfg)
        self.conv4, self.act2 = _conv(cfg, w, w, 4), _act(cfg)  # 4×4 → 1×1
        self.fc = _linear(cfg, w, 1, gain=1.0)  # a linear score

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.conv(self.mbstd(x)))
        x = self.act2(self.conv4(x)).flatten(1)  # [N, w4]
        return self.fc(x).squeeze(1)


class Discriminator(_Growing):
    """D(img [N, C, r, r], c=None) → scores [N], r = the current stage's side (`set_stage`)."""

    def __init__(self, cfg: ProGANConfig) -> None:
        super().__init__(cfg)
        self.from_rgb = nn.ModuleDict(
            {str(r): nn.Sequential(_conv(cfg, cfg.channels, cfg.width(r), 1), _act(cfg))
             for r in self.resolutions}
        )  # fmt: skip
        self.blocks = nn.ModuleDict(
            {str(r): DBlock(cfg, cfg.width(r), cfg.width(r // 2))
             for r in _sides_above_4(self.resolutions[-1])}
        )  # fmt: skip
        self.output = DOutput(cfg)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """images [N, C, r, r], r = self.resolution → scores [N] (linear; positive = real
        for the usual objectives). Unconditional: c is ignored.

        Raises:
            ValueError: if the images are not r×r.
        """
        side = self.resolution
        if tuple(img.shape[-2:]) != (side, side):
            raise ValueError(
                f"D is at the {side}×{side} stage but got images of {tuple(img.shape[-2:])}; "
                "downsample them or call D.set_stage"
            )
        x = self.from_rgb[str(side)](img)  # [N, w_side, side, side]
        if side > 4:
            x = self.blocks[str(side)](x)  # [N, w_{side/2}, side/2, side/2]
        if self.fading:  # the previous stage's path, on the image box-filtered to half size
            old = self.from_rgb[str(side // 2)](F.avg_pool2d(img, 2))
            x = torch.lerp(old, x, self.alpha)
        side //= 2
        while side > 4:
            x = self.blocks[str(side)](x)
            side //= 2
        return self.output(x)

    def stage_modules(self, resolution: int, fading: bool) -> list[nn.Module]:
        """The modules D runs at a stage of side `resolution` (with the previous fromRGB if
        `fading`)."""
        used = [self.from_rgb[str(resolution)]]
        if fading and resolution > self.start_resolution:
            used.append(self.from_rgb[str(resolution // 2)])
        return used + [self.blocks[str(r)] for r in _sides_above_4(resolution)] + [self.output]


def _sides_above_4(resolution: int) -> list[int]:
    """8, 16, …, resolution: the sides that have a G or D block (4×4 is the input/output)."""
    return [4 * 2**i for i in range(1, int(math.log2(resolution)) - 1)]


def parameter_count(
    cfg: ProGANConfig, resolution: int, fading: bool | None = None
) -> tuple[int, int]:
    """Parameters of G and D in use at the stage of side `resolution`.

    Args:
        cfg: a resolved ProGAN config (resolution and channels set).
        resolution: the stage's side in pixels, from cfg.start_resolution to cfg.resolution.
        fading: count the previous stage's toRGB/fromRGB too, as used while the new layers
            fade in. None (default): True above the start resolution, since a stage there
            begins with a fade; False gives the count once the fade is over.

    Returns:
        (G parameters, D parameters).

    Raises:
        ValueError: if `resolution` is not a stage of this config.
    """
    with torch.device("meta"):  # shapes only, no memory or initialisation cost
        G, D = Generator(cfg), Discriminator(cfg)
    G.set_stage(resolution)  # validates the resolution
    fading = resolution > cfg.start_resolution if fading is None else fading

    def count(modules: list[nn.Module]) -> int:
        return sum(p.numel() for m in modules for p in m.parameters())

    return count(G.stage_modules(resolution, fading)), count(D.stage_modules(resolution, fading))


FAMILY = register_family(
    Family(
        name="progan",
        config=ProGANConfig,
        generator=Generator,
        discriminator=Discriminator,
        paper="Karras, Aila, Laine & Lehtinen 2018, arXiv:1710.10196",
        grows=True,
        parameter_count=parameter_count,
    )
)
