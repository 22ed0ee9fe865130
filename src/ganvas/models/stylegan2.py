"""StyleGAN2, config F (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"), with the training setup of stylegan2-ada (Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data"), in plain PyTorch.

G = synthesis ∘ mapping.
  mapping: z [N, z_dim], normalised to unit mean square, through `mapping_layers` fully
    connected layers (LeakyReLU 0.2, learning rate × `mapping_lr_mul`) to w [N, w_dim],
    broadcast to one w per synthesis layer: ws [N, num_ws, w_dim]. During training the
    objective has it track the mean w (`w_avg`, a buffer, so it is saved with G); truncation ψ
    pulls every w toward it: w' = w_avg + ψ·(w − w_avg).
  synthesis: a learned constant 4×4 input, then per side 4, 8, ..., R: (from 8 on) a modulated
    3×3 conv that upsamples ×2, and a modulated 3×3 conv, each followed by per-pixel noise
    (learned strength per layer), a bias and LeakyReLU; a toRGB (modulated 1×1, not
    demodulated) whose image is added to the previous side's, upsampled (the 'skip'
    architecture). The output is linear, trained toward [-1, 1] (samplers clamp).
D ('resnet' architecture): fromRGB at full resolution; per halving a residual block
  (conv3×3 → downsample → conv3×3, plus downsample → conv1×1, the sum × √½); at 4×4 minibatch
  stddev, conv3×3, two fully connected layers → one logit.

Channels at side r are min(channel_base // r, channel_max) in both networks (config F: 32768
and 512; stylegan2-ada below 512 px: 16384 and 512). Every layer uses the equalized learning
rate: weights stored N(0, 1), scaled at run time. Resampling uses the [1, 3, 3, 1] FIR filter as
depthwise convs (`layers.upsample2d`, `layers.downsample2d`) and modulation an ordinary conv
between two scalings (`layers.modulated_conv2d`): no custom ops, so it runs on CPU and GPU,
and every op has an ONNX counterpart (export is not tested yet). Up- and downsampling convs filter first and then convolve at the new size
(stylegan2-ada fuses the two into a strided or transposed conv).

Noise: `noise_mode` 'random' draws fresh noise (from the `generator` given, else torch's
global one), 'const' uses a fixed map per layer (a buffer), 'none' adds none. By default G
uses 'random' in training mode and 'const' in eval mode, so sampling a seed is reproducible.

Not here (yet): class conditioning, mixed precision and conv clamping, the 'orig'/'resnet' G and
'orig'/'skip' D variants. Training: `ganvas.objectives.stylegan2` (non-saturating loss, style
mixing, lazy R1, path-length regularization).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ganvas.errors import ConfigError, check
from ganvas.models.layers import (
    Downsample2d,
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    ScaledLinear,
    Upsample2d,
    modulated_conv2d,
)
from ganvas.models.registry import Family, ModelConfig, register_family
from ganvas.training.distributed import per_sample

NoiseMode = Literal["random", "const", "none"]
NOISE_MODES = ("random", "const", "none")
SQRT2, SQRT_HALF = math.sqrt(2), math.sqrt(0.5)


@dataclass(frozen=True)
class StyleGAN2Config(ModelConfig):
    z_dim: int = 512
    w_dim: int = 512  # width of w and of the mapping layers
    mapping_layers: int = 8  # config F: 8; stylegan2-ada's 'auto' setup: 2
    mapping_lr_mul: float = 0.01  # learning-rate multiplier of the mapping layers
    w_avg_beta: float = 0.995  # decay of the tracked mean w (truncation's centre)
    channel_base: int = 32768  # channels at side r: min(channel_base // r, channel_max)
    channel_max: int = 512
    mbstd_group: int = 4  # minibatch-stddev group size in D's last block; 0 = no such layer
    style_mixing: float = 0.9  # chance that a training batch mixes two w's at a random layer
    r1_gamma: float = 0.0  # R1 weight γ; 0 = stylegan2-ada's auto rule 0.0002·R²/batch
    r1_interval: int = 16  # R1 every N steps (lazy); 1 = in every D step; 0 = no R1
    pl_weight: float = 2.0  # path-length regularization weight; 0 = off
    pl_interval: int = 4  # path-length regularization every N steps (lazy); 1 = every G step
    pl_decay: float = 0.01  # the path-length mean moves this share of the way each time
    pl_batch_shrink: int = 2  # the path-length phase uses batch // this fakes

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.w_dim >= 1, f"model.w_dim={self.w_dim} must be >= 1")
        check(self.mapping_layers >= 1, f"model.mapping_layers={self.mapping_layers} must be >= 1")
        check(self.mapping_lr_mul > 0, f"model.mapping_lr_mul={self.mapping_lr_mul} must be > 0")
        check(0 <= self.w_avg_beta < 1, f"model.w_avg_beta={self.w_avg_beta} must lie in [0, 1)")
        check(self.channel_base >= 1, f"model.channel_base={self.channel_base} must be >= 1")
        check(self.channel_max >= 1, f"model.channel_max={self.channel_max} must be >= 1")
        check(self.mbstd_group >= 0, f"model.mbstd_group={self.mbstd_group} must be >= 0")
        check(0 <= self.style_mixing <= 1,
              f"model.style_mixing={self.style_mixing} must lie in [0, 1]")  # fmt: skip
        check(self.r1_gamma >= 0, f"model.r1_gamma={self.r1_gamma} must be >= 0 (0 = auto)")
        check(self.r1_interval >= 0,
              f"model.r1_interval={self.r1_interval} must be >= 0 (0 = no R1)")  # fmt: skip
        check(self.pl_weight >= 0, f"model.pl_weight={self.pl_weight} must be >= 0 (0 = off)")
        check(self.pl_interval >= 1, f"model.pl_interval={self.pl_interval} must be >= 1")
        check(0 < self.pl_decay <= 1, f"model.pl_decay={self.pl_decay} must lie in (0, 1]")
        check(self.pl_batch_shrink >= 1,
              f"model.pl_batch_shrink={self.pl_batch_shrink} must be >= 1")  # fmt: skip

    def width(self, side: int) -> int:
        """Channels of the layers working at `side`×`side`."""
        return max(1, min(self.channel_max, self.channel_base // side))


def _sides(cfg: StyleGAN2Config) -> list[int]:
    """4, 8, ..., R."""
    if cfg.resolution is None or cfg.channels is None:
        raise ConfigError("model.resolution and model.channels must be set before building")
    return [2**i for i in range(2, int(math.log2(cfg.resolution)) + 1)]


def _act(x: torch.Tensor) -> torch.Tensor:
    # The gain √2 keeps the activations' scale through LeakyReLU (He et al.), as in stylegan2.
    return F.leaky_relu(x, 0.2) * SQRT2


# --- Generator -----------------------------------------------------------------------------


class MappingNetwork(nn.Module):
    """z [N, z_dim] → ws [N, num_ws, w_dim], and the tracked mean w (`w_avg`) for truncation."""

    def __init__(self, cfg: StyleGAN2Config, num_ws: int) -> None:
        super().__init__()
        self.num_ws, self.w_avg_beta = num_ws, cfg.w_avg_beta
        dims = [cfg.z_dim] + [cfg.w_dim] * cfg.mapping_layers
        self.fcs = nn.ModuleList(
            ScaledLinear(a, b, lr_multiplier=cfg.mapping_lr_mul) for a, b in zip(dims, dims[1:])
        )
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))

    def forward(
        self, z: torch.Tensor, truncation: float | torch.Tensor = 1.0, update_w_avg: bool = False
    ) -> torch.Tensor:
        """z [N, z_dim] → ws [N, num_ws, w_dim] (one w, repeated for every synthesis layer).

        Args:
            truncation: ψ; 1 = off, 0 = every w is the mean w.
            update_w_avg: move `w_avg` toward this batch's mean w (training only).
        """
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for fc in self.fcs:
            x = _act(fc(x))
        if update_w_avg:
            with torch.no_grad():
                batch_mean = x.detach().float().mean(dim=0)  # fp32 under autocast too
                self.w_avg.copy_(torch.lerp(batch_mean, self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).expand(-1, self.num_ws, -1)
        if isinstance(truncation, torch.Tensor) or truncation != 1:  # a tensor ψ: exported G
            ws = torch.lerp(self.w_avg.to(ws.dtype), ws, truncation)
        return ws


class SynthesisLayer(nn.Module):
    """Modulated (and demodulated) 3×3 conv, optionally upsampling ×2 first, then noise, bias
    and LeakyReLU: x [N, I, S, S] (S = side, or side/2 with `up`), w [N, w_dim] → [N, O, side,
    side]."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, side: int, up: bool = False) -> None:
        super().__init__()
        self.affine = ScaledLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
        self.weight_gain = 1 / math.sqrt(c_in * 9)
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(side, side))
        self.up = Upsample2d() if up else None
        self.side = side

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: NoiseMode = "random",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        styles = self.affine(w)  # [N, I]
        x = modulated_conv2d(x, self.weight * self.weight_gain, styles, padding=1,
                             resample=self.up)  # fmt: skip
        if noise_mode == "random":
            noise = per_sample(torch.randn, (len(x), 1, self.side, self.side),
                               generator=generator, device=x.device, dtype=x.dtype)  # fmt: skip
            x = x + noise * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return _act(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    """Modulated 1×1 conv to image channels, not demodulated, linear: [N, C, S, S] → [N, 3, S, S]."""

    def __init__(self, c_in: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = ScaledLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, c_in, 1, 1))
        self.weight_gain = 1 / math.sqrt(c_in)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return x + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One side of the synthesis network: the 4×4 constant or an upsampling conv, a conv and a
    toRGB. Takes the previous block's features and image (None for the first) and
    `num_conv + 1` ws [N, num_conv + 1, w_dim]; the toRGB's w is the next block's first."""

    def __init__(self, c_in: int, c_out: int, cfg: StyleGAN2Config, side: int) -> None:
        super().__init__()
        if c_in == 0:
            self.const = nn.Parameter(torch.randn(c_out, side, side))
        else:
            self.conv0 = SynthesisLayer(c_in, c_out, cfg.w_dim, side, up=True)
            self.up = Upsample2d()
        self.conv1 = SynthesisLayer(c_out, c_out, cfg.w_dim, side)
        self.torgb = ToRGB(c_out, cfg.channels, cfg.w_dim)
        self.num_conv = 1 if c_in == 0 else 2

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        noise_mode: NoiseMode,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w = ws.unbind(dim=1)
        if x is None:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)  # shape, not len: traces
            x = self.conv1(x, w[0], noise_mode, generator)
        else:
            x = self.conv0(x, w[0], noise_mode, generator)
            x = self.conv1(x, w[1], noise_mode, generator)
        rgb = self.torgb(x, w[self.num_conv])
        return x, rgb if img is None else self.up(img) + rgb


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] → images [N, C, R, R]."""

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__()
        sides = _sides(cfg)
        self.blocks = nn.ModuleDict()
        for side in sides:
            c_in = 0 if side == 4 else cfg.width(side // 2)
            self.blocks[str(side)] = SynthesisBlock(c_in, cfg.width(side), cfg, side)
        self.num_ws = sum(b.num_conv for b in self.blocks.values()) + 1

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: NoiseMode = "random",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode={noise_mode!r}; choose one of {', '.join(NOISE_MODES)}")
        x = img = None
        first = 0
        for block in self.blocks.values():
            block_ws = ws[:, first : first + block.num_conv + 1]
            x, img = block(x, img, block_ws, noise_mode, generator)
            first += block.num_conv
        return img


class Generator(nn.Module):
    """z [N, z_dim] (c ignored) → images [N, C, R, R], linear, about [-1, 1]."""

    supports_truncation = True  # forward takes truncation=ψ (see ganvas.inference)

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__()
        self.z_dim, self.w_dim = cfg.z_dim, cfg.w_dim
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg, self.num_ws)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation: float = 1.0,
        noise_mode: NoiseMode | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Images for latents z [N, z_dim]: [N, C, R, R].

        Args:
            c: ignored (unconditional).
            truncation: ψ; 1 = off, 0 = the mean image for every z.
            noise_mode: 'random', 'const' or 'none'; None = 'random' in training mode,
                'const' in eval mode.
            generator: the random noise's generator (None: torch's global one).
        """
        if noise_mode is None:
            noise_mode = "random" if self.training else "const"
        return self.synthesis(self.mapping(z, truncation), noise_mode, generator)


# --- Discriminator -------------------------------------------------------------------------


class DiscriminatorBlock(nn.Module):
    """Residual block that halves the side: x [N, C, S, S] → [N, C', S/2, S/2]."""

    def __init__(self, c: int, c_out: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(c, c, 3, padding=1, gain=1.0)
        self.conv1 = EqualizedConv2d(c, c_out, 3, padding=1, gain=1.0)
        self.skip = EqualizedConv2d(c, c_out, 1, bias=False, gain=1.0)
        self.down = Downsample2d()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(self.down(x))
        x = _act(self.conv1(self.down(_act(self.conv0(x)))))
        return (x + skip) * SQRT_HALF  # keeps the sum of two unit-variance paths at unit variance


class Discriminator(nn.Module):
    """img [N, C, R, R] (c ignored) → logits [N]."""

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__()
        sides = _sides(cfg)
        top, c4 = sides[-1], cfg.width(4)
        self.fromrgb = EqualizedConv2d(cfg.channels, cfg.width(top), 1, gain=1.0)
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(cfg.width(side), cfg.width(side // 2)) for side in sides[:0:-1]
        )
        self.mbstd = MinibatchStdDev(cfg.mbstd_group) if cfg.mbstd_group else None
        self.conv = EqualizedConv2d(c4 + (1 if self.mbstd else 0), c4, 3, padding=1, gain=1.0)
        self.fc = EqualizedLinear(c4 * 16, c4, gain=1.0)
        self.out = EqualizedLinear(c4, 1, gain=1.0)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = _act(self.fromrgb(img))
        for block in self.blocks:
            x = block(x)
        if self.mbstd is not None:
            x = self.mbstd(x)  # [N, C4 + 1, 4, 4]
        x = _act(self.conv(x))
        x = _act(self.fc(x.flatten(1)))
        return self.out(x).squeeze(1)


def _objective(parts: Any) -> Any:
    """The family's objective (imported here: `ganvas.objectives` imports the registry)."""
    from ganvas.objectives.stylegan2 import StyleGAN2Objective

    return StyleGAN2Objective(parts)


FAMILY = register_family(
    Family(
        name="stylegan2",
        config=StyleGAN2Config,
        generator=Generator,
        discriminator=Discriminator,
        paper="Karras et al. 2020, Analyzing and Improving the Image Quality of StyleGAN; "
        "training as in Karras et al. 2020, Training GANs with Limited Data (stylegan2-ada)",
        objective=_objective,
    )
)
