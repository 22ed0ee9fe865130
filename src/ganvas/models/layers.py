"""Building blocks shared by several GAN families."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ganvas.errors import ConfigError


def init_dcgan_weights(module: nn.Module, std: float = 0.02) -> None:
    """Radford et al. (2016) initialisation: conv weights ~ N(0, std), norm scales ~ N(1, std)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def pyramid_widths(resolution: int, base_width: int, max_width: int) -> list[int]:
    """Channel widths from the 4×4 stage up to `resolution`, halving as resolution doubles.

    For resolution 64, base 64, max 512: [512, 256, 128, 64] at sizes [4, 8, 16, 32].
    The last entry is the width just below full resolution.
    """
    stages = int(math.log2(resolution)) - 2  # number of doublings from 4×4
    return [min(base_width * 2 ** (stages - 1 - i), max_width) for i in range(stages)]


# --- Residual GAN blocks (SNGAN, BigGAN) ---------------------------------------------------


def sn(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Spectrally normalise `module.weight` (Miyato et al. 2018): the weight, reshaped to
    [out, -1], is divided by its top singular value, estimated by one power iteration per
    training forward pass. Uses torch's parametrization API; returns `module` unchanged
    when `enabled` is False."""
    return spectral_norm(module) if enabled else module


def init_resnet_weights(module: nn.Module, scheme: Literal["ortho", "xavier"]) -> None:
    """Re-initialise every conv, linear and embedding weight under `module`.

    'ortho' is BigGAN's orthogonal initialisation; 'xavier' is the Glorot-uniform one of
    Miyato et al.'s code. Biases start at 0; norm layers and SelfAttention.gamma are left
    alone. A spectrally normalised weight is unwrapped, initialised and wrapped again, so
    the power-iteration vectors match the new weight.
    """
    init = nn.init.orthogonal_ if scheme == "ortho" else nn.init.xavier_uniform_
    for m in list(module.modules()):
        if not isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding):
            continue
        wrapped = parametrize.is_parametrized(m, "weight")
        if wrapped:  # the only parametrization these blocks use is spectral norm
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
        init(m.weight)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
        if wrapped:
            spectral_norm(m)


def resnet_width(
    side: int, resolution: int, base_width: int, max_width: int, flat_below: int
) -> int:
    """Channels of a residual stage working at `side`×`side` in a model of output `resolution`.

    `base_width` at full resolution, doubled for every halving of the side down to
    `flat_below`, constant from there on, and capped at `max_width`. With flat_below=32 a
    32-px model is `base_width` wide everywhere (SNGAN's CIFAR ResNet); with flat_below=8 a
    128-px model gets [16, 16, 8, 4, 2, 1]·base at sides 4..128 (BigGAN's ImageNet G).
    """
    return min(max_width, base_width * max(resolution, flat_below) // max(side, flat_below))


def discriminator_downsampling(resolution: int) -> list[bool]:
    """Which blocks of a residual D halve the side, as in the SNGAN and BigGAN papers.

    Up to 32 px D downsamples to 8×8 and adds two blocks there (the CIFAR architecture:
    32 → 16 → 8 → 8 → 8); above, it downsamples to 4×4 and adds one (the ImageNet one).
    """
    if resolution <= 32:
        return [True] * (int(math.log2(resolution)) - 3) + [False, False]
    return [True] * (int(math.log2(resolution)) - 2) + [False]


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine, scaled and shifted per sample from a vector y:
    out = BN(x) · (1 + W_g y) + W_b y. The gain is written as 1 + ... so it starts near 1
    (BigGAN's class-conditional BN; y = shared class embedding ⊕ z chunk)."""

    def __init__(self, num_features: int, cond_dim: int, use_sn: bool = True) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = sn(nn.Linear(cond_dim, num_features, bias=False), use_sn)
        self.bias = sn(nn.Linear(cond_dim, num_features, bias=False), use_sn)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W], y [N, cond_dim] → [N, C, H, W]."""
        gain = 1 + self.gain(y)[:, :, None, None]  # [N, C, 1, 1]
        bias = self.bias(y)[:, :, None, None]
        return self.bn(x) * gain + bias


class SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019) as used in BigGAN: x + gamma · attention(x).

    Queries use C/8 channels, keys C/8 and values C/2, keys and values max-pooled 2×2 to cut
    the cost 4×; all 1×1 convs are spectrally normalised. gamma starts at 0, so the block is
    the identity at initialisation and the network learns how much to use it.
    """

    def __init__(self, channels: int, use_sn: bool = True) -> None:
        super().__init__()
        inner, value = max(1, channels // 8), max(1, channels // 2)
        self.query = sn(nn.Conv2d(channels, inner, 1, bias=False), use_sn)
        self.key = sn(nn.Conv2d(channels, inner, 1, bias=False), use_sn)
        self.value = sn(nn.Conv2d(channels, value, 1, bias=False), use_sn)
        self.out = sn(nn.Conv2d(value, channels, 1, bias=False), use_sn)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] → [N, C, H, W]."""
        n, _, h, w = x.shape
        q = self.query(x).flatten(2)  # [N, C/8, HW]
        k, v = self.key(x), self.value(x)  # [N, C/8, H, W], [N, C/2, H, W]
        if h % 2 == 0 and w % 2 == 0:  # keys and values on a 2× coarser grid: [.., HW/4]
            k, v = F.max_pool2d(k, 2), F.max_pool2d(v, 2)
        k, v = k.flatten(2), v.flatten(2)
        attn = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # [N, HW, HW/4]: rows sum to 1
        o = (v @ attn.transpose(1, 2)).view(n, -1, h, w)  # [N, C/2, H, W]
        return x + self.gamma * self.out(o)


class ResidualUpBlock(nn.Module):
    """G's residual block that doubles the side (SNGAN/BigGAN):
    main: norm → ReLU → upsample ×2 → conv3×3 → norm → ReLU → conv3×3;
    shortcut: upsample ×2 → conv1×1.

    `norm(channels)` builds the norm layers: plain BatchNorm2d (SNGAN) or a
    ConditionalBatchNorm2d (BigGAN), which then gets the conditioning vector y in forward.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm: Callable[[int], nn.Module],
        use_sn: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = norm(in_channels)
        self.conv1 = sn(nn.Conv2d(in_channels, out_channels, 3, padding=1), use_sn)
        self.norm2 = norm(out_channels)
        self.conv2 = sn(nn.Conv2d(out_channels, out_channels, 3, padding=1), use_sn)
        self.shortcut = sn(nn.Conv2d(in_channels, out_channels, 1), use_sn)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x [N, C_in, H, W] (+ y [N, cond_dim] for conditional norms) → [N, C_out, 2H, 2W]."""
        h = F.relu(self.norm1(x) if y is None else self.norm1(x, y))
        h = self.conv1(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = F.relu(self.norm2(h) if y is None else self.norm2(h, y))
        h = self.conv2(h)
        return h + self.shortcut(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResidualDownBlock(nn.Module):
    """D's residual block, optionally halving the side by 2×2 average pooling (SNGAN/BigGAN).

    main: [ReLU →] conv3×3 → ReLU → conv3×3 [→ avgpool];
    shortcut: [avgpool →] conv1×1, or the identity when channels and side are unchanged.
    The first block of D takes the image itself and uses preactivation=False (no ReLU on the
    input): SNGAN's "optimized" block. Spectral norm is on by default, as D needs it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        downsample: bool = True,
        preactivation: bool = True,
        use_sn: bool = True,
    ) -> None:
        super().__init__()
        self.downsample = downsample
        self.preactivation = preactivation
        self.conv1 = sn(nn.Conv2d(in_channels, out_channels, 3, padding=1), use_sn)
        self.conv2 = sn(nn.Conv2d(out_channels, out_channels, 3, padding=1), use_sn)
        learnable = downsample or in_channels != out_channels
        self.shortcut = sn(nn.Conv2d(in_channels, out_channels, 1), use_sn) if learnable else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C_in, H, W] → [N, C_out, H/2, W/2] (or [N, C_out, H, W] without downsampling)."""
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        skip = x
        if self.downsample:
            h = F.avg_pool2d(h, 2)
            skip = F.avg_pool2d(skip, 2)  # pooling and a 1×1 conv commute; pool first is cheaper
        if self.shortcut is not None:
            skip = self.shortcut(skip)
        return h + skip


# --- DCGAN-shaped conditional families (cDCGAN, ACGAN, projection) -------------------------


def stage_dropout(rates: Sequence[float], stage: int) -> list[nn.Module]:
    """`[nn.Dropout2d(rates[stage])]` if a rate is configured for `stage`, else `[]`: splice it
    into a layer list right after that stage (a model with `rates=()` keeps its module tree).

    Dropout2d zeroes whole feature maps: neighbouring activations of a conv map are strongly
    correlated, so element-wise dropout would be mostly undone by the next conv.
    """
    return [nn.Dropout2d(rates[stage])] if stage < len(rates) else []


def activation(kind: Literal["relu", "leaky_relu"], slope: float = 0.2) -> nn.Module:
    """ReLU or LeakyReLU(`slope`), in place (every caller applies it right after a norm)."""
    return nn.LeakyReLU(slope, inplace=True) if kind == "leaky_relu" else nn.ReLU(inplace=True)


def check_num_classes(num_classes: int, family: str) -> None:
    """Raise ConfigError unless a class-conditional family has classes to condition on."""
    if num_classes < 1:
        raise ConfigError(
            f"model.num_classes={num_classes}: {family} is class-conditional and needs a "
            "labelled dataset (e.g. `ganvas prepare --labels subfolders`) or model.num_classes >= 1"
        )


def need_labels(c: torch.Tensor | None, family: str, who: str) -> torch.Tensor:
    """`c` itself, or a ValueError saying that `who` (e.g. 'G(z, c)') needs class labels."""
    if c is None:
        raise ValueError(f"{family} is class-conditional: {who} needs class labels c [N] (int64)")
    return c


# --- Progressive-growing blocks (ProGAN; the StyleGAN family reuses the same ones) ----------


class EqualizedConv2d(nn.Module):
    """Conv2d with the equalized learning rate of Karras et al. (2018, section 4.1).

    The weight is stored N(0, 1) and multiplied at run time by He's constant
    `gain / sqrt(fan_in)`, fan_in = in_channels · k · k. Adam normalises each update by the
    gradient's running scale, so a stored weight of unit scale gets the same relative step
    in every layer, whatever its fan-in. gain √2 suits a (leaky) ReLU after the layer, 1 a
    linear output. Biases start at 0 and are not scaled.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = True,
        gain: float = math.sqrt(2),
    ) -> None:
        super().__init__()
        self.padding, self.dilation = padding, dilation
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)  # a float, not state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C_in, H, W] → [N, C_out, H', W']."""
        return F.conv2d(
            x, self.weight * self.scale, self.bias, padding=self.padding, dilation=self.dilation
        )

    def extra_repr(self) -> str:
        out_c, in_c, k, _ = self.weight.shape
        return (
            f"{in_c}, {out_c}, kernel_size={k}, padding={self.padding}, "
            f"dilation={self.dilation}, scale={self.scale:.4g}, bias={self.bias is not None}"
        )


class EqualizedLinear(nn.Module):
    """Linear layer with the equalized learning rate (see `EqualizedConv2d`): weight stored
    N(0, 1), scaled by `gain / sqrt(in_features)` in forward; bias starts at 0."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, gain: float = math.sqrt(2)
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, in_features] → [N, out_features]."""
        return F.linear(x, self.weight * self.scale, self.bias)

    def extra_repr(self) -> str:
        out_f, in_f = self.weight.shape
        return f"{in_f}, {out_f}, scale={self.scale:.4g}, bias={self.bias is not None}"


class PixelNorm(nn.Module):
    """Normalise each pixel's feature vector to unit mean square over channels (Karras et al.
    2018, section 4.2): x / sqrt(mean_c(x²) + eps). Works on [N, C] latents and [N, C, H, W]
    maps alike; keeps G's activations from escalating when G and D compete."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


def mbstd_group_size(batch: int, group_size: int) -> int:
    """The largest divisor of `batch` that is <= `group_size` (at least 1)."""
    return next(g for g in range(min(group_size, batch), 0, -1) if batch % g == 0)


class MinibatchStdDev(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, section 3): append one feature map
    holding how much the samples of each group differ, so D can tell a batch of near-copies
    (mode collapse) from a varied one.

    Samples n, n + M, n + 2M, … (M = N / G) form a group of G = min(group_size, N), or the
    largest divisor of N below that; the std over the group, averaged over channels and
    pixels, is one number per group, broadcast over that group's [1, H, W] map.
    [N, C, H, W] → [N, C + 1, H, W].
    """

    def __init__(self, group_size: int = 4, eps: float = 1e-8) -> None:
        super().__init__()
        self.group_size, self.eps = group_size, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = mbstd_group_size(n, self.group_size)
        y = x.view(g, n // g, c, h, w)  # [G, M, C, H, W]
        y = (y.var(dim=0, unbiased=False) + self.eps).sqrt()  # [M, C, H, W]
        y = y.mean(dim=(1, 2, 3)).view(1, -1, 1, 1, 1)  # [1, M, 1, 1, 1]
        y = y.expand(g, -1, 1, h, w).reshape(n, 1, h, w)  # sample n gets its group's value
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


# --- Style-based blocks (StyleGAN2) ----------------------------------------------------------

FIR_TAPS = (1.0, 3.0, 3.0, 1.0)  # StyleGAN2's low-pass filter: the binomial of order 3


def fir_kernel(taps: Sequence[float] = FIR_TAPS) -> torch.Tensor:
    """The separable 2-D filter [k, k] of 1-D `taps` (an even number of them), normalised to
    sum to 1."""
    if len(taps) % 2 or len(taps) < 2:
        raise ValueError(f"FIR taps {list(taps)}: need an even number of them, at least 2")
    t = torch.tensor(taps, dtype=torch.float32)
    kernel = torch.outer(t, t)
    return kernel / kernel.sum()


def _depthwise(kernel: torch.Tensor, channels: int, like: torch.Tensor) -> torch.Tensor:
    k = kernel.shape[-1]
    # int(): the channel count is a constant of the layer; traced as a size, ONNX export
    # would see a kernel of unknown shape
    return kernel.to(like.dtype).reshape(1, 1, k, k).repeat(int(channels), 1, 1, 1)  # [C,1,k,k]


def _constant_sizes(kernel: torch.Tensor, x: torch.Tensor) -> tuple[int, int]:
    # Plain ints: traced for export, sizes are tensors, and torch 2.4's conv refuses a
    # padding computed from one ("expected padding to be a single integer value ...").
    return int(kernel.shape[-1]), int(x.shape[1])


def upsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """x [N, C, H, W] → [N, C, 2H, 2W]: zeros inserted after every pixel, then low-pass
    filtered with `kernel` [k, k] (from `fir_kernel`) × 4, which keeps a constant image
    constant. One depthwise transposed conv, so it runs anywhere and exports to ONNX. Outside
    the image the input counts as 0, as in stylegan2: the outermost output pixels are darker."""
    k, channels = _constant_sizes(kernel, x)
    weight = _depthwise(kernel * 4, channels, x)
    return F.conv_transpose2d(x, weight, stride=2, padding=(k - 2) // 2, groups=channels)


def downsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """x [N, C, H, W] → [N, C, H/2, W/2]: low-pass filtered with `kernel` [k, k], then every
    second pixel kept (anti-aliased, unlike strided pooling of high frequencies). One
    depthwise strided conv; zero padding outside the image, as in stylegan2."""
    k, channels = _constant_sizes(kernel, x)
    weight = _depthwise(kernel, channels, x)
    return F.conv2d(x, weight, stride=2, padding=(k - 2) // 2, groups=channels)


class Upsample2d(nn.Module):
    """`upsample2d` with the FIR filter of `taps`: [N, C, H, W] → [N, C, 2H, 2W]."""

    def __init__(self, taps: Sequence[float] = FIR_TAPS) -> None:
        super().__init__()
        # A constant of the architecture, not state: kept out of checkpoints.
        self.register_buffer("kernel", fir_kernel(taps), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample2d(x, self.kernel)


class Downsample2d(nn.Module):
    """`downsample2d` with the FIR filter of `taps`: [N, C, H, W] → [N, C, H/2, W/2]."""

    def __init__(self, taps: Sequence[float] = FIR_TAPS) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return downsample2d(x, self.kernel)


class ScaledLinear(nn.Module):
    """Linear layer with the equalized learning rate, a learning-rate multiplier and a chosen
    initial bias (StyleGAN's fully connected layer; `EqualizedLinear` folds an activation
    gain into the weight instead).

    The weight is stored N(0, 1 / lr_multiplier²) and used × lr_multiplier / sqrt(in_features);
    the bias is used × lr_multiplier and starts at `bias_init`. Adam moves a stored parameter by
    about the learning rate whatever its scale, so the used one moves lr_multiplier times as
    fast: StyleGAN's mapping network learns with lr × 0.01. The style affines start their bias
    at 1, so every style starts as the identity scale.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = (
            nn.Parameter(torch.full((out_features,), bias_init / lr_multiplier)) if bias else None
        )
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, in_features] → [N, out_features]."""
        bias = None if self.bias is None else self.bias * self.bias_gain
        return F.linear(x, self.weight * self.weight_gain, bias)

    def extra_repr(self) -> str:
        out_f, in_f = self.weight.shape
        return f"{in_f}, {out_f}, lr_multiplier={self.bias_gain:g}, bias={self.bias is not None}"


def demodulation(weight: torch.Tensor, styles: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 / ‖s ⊙ w_o‖ for every sample and output channel: [N, O] from weight [O, I, k, k] and
    styles [N, I]. Σ_{i,k} (s_i w_oik)² = Σ_i s_i² Σ_k w_oik², so no per-sample weights are made."""
    return torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).t() + eps)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    padding: int = 0,
    resample: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """StyleGAN2's modulated convolution (Karras et al. 2020, section 2.2).

    Each sample's kernel is `weight` [O, I, k, k] scaled per input channel by its styles
    [N, I]; with `demodulate`, each output channel of it is rescaled to unit L2 norm, so inputs
    of unit variance give outputs of about unit variance, whatever the styles. Computed as
    scale the input, one shared conv, scale the output: the same numbers as per-sample kernels,
    with an ordinary conv. `resample` (e.g. `Upsample2d`) runs on the modulated input, before
    the conv.

    Args:
        x: [N, I, H, W].
    Returns:
        [N, O, H', W'].
    """
    x = x * styles[:, :, None, None]
    if resample is not None:
        x = resample(x)
    x = F.conv2d(x, weight, padding=padding)
    if demodulate:
        x = x * demodulation(weight, styles)[:, :, None, None]
    return x
