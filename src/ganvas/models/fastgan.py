"""FastGAN (Liu, Zhu, Song & Elgammal, ICLR 2021, arXiv:2101.04775), "Towards Faster and
Stabilized GAN Training for High-fidelity Few-shot Image Synthesis": a light generator with
skip-layer excitation and a self-supervised discriminator that learns to reconstruct the real
images it sees; trained with `ganvas.objectives.fastgan`. It trains in hours on one GPU from
under 100 images.

Every conv (and the initial transposed conv) is spectrally normalised, as in the paper's code;
weights start N(0, 0.02), BatchNorm scales N(1, 0.02).

G:
    z [N, z_dim] → a 4×4 transposed conv, BatchNorm, GLU → one up-block per doubling up to
    R → a 3×3 conv to the image → tanh. An up-block is nearest ×2 upsampling, a 3×3 conv to
    twice its width, BatchNorm and GLU (which halves the channels again). With `lite: false`
    the blocks at the sides 8, 32, 128 and 512 (log2 of the side odd) are FastGAN's
    "comp" blocks: two such convs, each followed by noise injection (a learned weight, zero
    at first, times per-pixel Gaussian noise) before its BatchNorm; `lite: true` uses the
    plain one-conv block everywhere (projected-gan's lighter FastGAN).
    Noise: fresh from torch's generator in training mode, a fixed map per layer (a buffer,
    saved with the weights) in eval mode, so a sampled seed is reproducible.
    Widths at side s: the paper's multipliers {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1,
    256: 1/2, 512: 1/4, 1024: 1/8} × `g_width` (ngf), for every resolution.
    Skip-layer excitation (SLE): a 4×4-pooled copy of the feature map at side s goes through
    a 4×4 conv, Swish, a 1×1 conv and a sigmoid, and gates, channel by channel, the map at
    side k·s. The paper's code uses k = 16 (4→64, 8→128, 16→256, 32→512, none into 1024);
    here k = min(16, R/4), from every side s ≥ 4 with k·s ≤ min(R, 512), so that small
    resolutions keep one: 16 px 4→16, 32 px 4→32, 64 px 4→64, 128 px 4→64 and 8→128, and from
    64 px on it is the paper's rule.

D (self-supervised):
    big path on the image at R: a stem to side S = min(R, 256) (a 3×3 conv when R ≤ 256, else
    stride-2 4×4 convs, BatchNorm from the second), then one down-block per halving to 8×8.
    A down-block is the mean of a 4×4 stride-2 conv, BatchNorm, LeakyReLU 0.2, 3×3 conv,
    BatchNorm, LeakyReLU and of a 2×2 average pool, 1×1 conv, BatchNorm, LeakyReLU. SLE in
    D gates the maps at sides 32, 16 and 8 by the maps at 8× their side, where the path has
    them (256 px: all three, 128 px: 16 and 8, 64 px: 8, below: none). Its head is a 1×1
    conv, BatchNorm, LeakyReLU and a 4×4 conv: a 5×5 logit map.
    small path on the image box-downsampled to min(R/2, 128) (the paper's 128): a 4×4
    stride-2 conv, then stride-2 4×4 conv + BatchNorm + LeakyReLU blocks down to 8×8 (at 16
    px the small image is 8×8 already and a 3×3 conv takes it), and a 4×4 conv: a 5×5 map.
    Widths: the paper's D multipliers {4: 16, 8: 16, 16: 8, 32: 4, 64: 2, 128: 1, 256: 1/2,
    512: 1/4, 1024: 1/8} × `d_width` (ndf), read at twice the side for the big path and at
    four times the side for the small one (as in the paper's code).
    decoders (for reals only): from D's 8×8 maps, nearest ×2 up-blocks (as G's plain ones,
    widths of G's table × d_width/2: the paper's 32 for ndf 64) and a 3×3 conv with tanh
    reconstruct (a) the whole image from the big path's last map, (b) the whole image from
    the small path's last map, and (c) one quadrant of the image from the same quadrant of
    the big path's 16×16 map. Each is made at its target's side capped at 128 (whole:
    min(R, 128), quadrant: min(R/2, 128)), which at 256 px is the paper's 128 for both.

`D(img, c)` returns logits [N]: the mean of each image's 50 logits (both maps), the registry's
contract. `D(img, c, maps=True)` gives the logit maps [N, 50] (what the objective's hinge is
taken over), and `D(img, c, part=q)` the maps with the three reconstructions and their targets
(`logits_and_reconstructions`). Unconditional: c is accepted and ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganvas.errors import check
from ganvas.models.layers import sn
from ganvas.models.registry import Family, ModelConfig, register_family
from ganvas.objectives.fastgan import FastGANObjective

G_MULTIPLIERS = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
D_MULTIPLIERS = {4: 16, 8: 16, 16: 8, 32: 4, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
MIN_RESOLUTION, MAX_RESOLUTION = 16, 1024
SLE_MAX_SIDE = 512  # G: no excitation into 1024×1024 (as in the paper's code)
D_START_MAX = 256  # D's big path works from at most 256×256 on
SMALL_MAX = 128  # side of the small path's image, and of every reconstruction, at most
LOGIT_SIDE = 8  # both paths end at 8×8 maps; their 4×4 heads give 5×5 logits
SLOPE = 0.2  # leaky ReLU
PARTS = 4  # quadrants: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right


@dataclass(frozen=True)
class FastGANConfig(ModelConfig):
    z_dim: int = 256  # the paper's nz
    g_width: int = 64  # ngf: G's widths are the paper's multipliers × this
    d_width: int = 64  # ndf: D's widths are the paper's D multipliers × this
    lite: bool = False  # projected-gan's lighter up-blocks (one conv per block, no noise)
    rec_weight: float = 1.0  # D's reconstruction loss on reals (L1; the paper: LPIPS)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("g_width", "d_width"):
            value = getattr(self, key)
            check(value >= 1, f"model.{key}={value} must be >= 1")
        check(self.rec_weight >= 0, f"model.rec_weight={self.rec_weight} must be >= 0")
        if self.resolution is None:
            return
        check(
            MIN_RESOLUTION <= self.resolution <= MAX_RESOLUTION,
            f"model.resolution={self.resolution}: fastgan works at {MIN_RESOLUTION} to "
            f"{MAX_RESOLUTION} px",
        )
        R = self.resolution
        g_need = math.ceil(1 / G_MULTIPLIERS[R])  # the last stage is the narrowest
        check(self.g_width >= g_need, f"model.g_width={self.g_width} is too small for {R} px: "
                                      f"G's {R}×{R} stage needs g_width >= {g_need}")  # fmt: skip
        d_need = math.ceil(1 / D_MULTIPLIERS[2 * (R if R <= D_START_MAX else R // 2)])
        check(self.d_width >= d_need, f"model.d_width={self.d_width} is too small for {R} px: "
                                      f"D's first stage needs d_width >= {d_need}")  # fmt: skip


# --- Sizes ---------------------------------------------------------------------------------


def sides(low: int, high: int) -> list[int]:
    """[low, 2·low, ..., high] for powers of two."""
    return [2**i for i in range(int(math.log2(low)), int(math.log2(high)) + 1)]


def g_widths(resolution: int, g_width: int) -> dict[int, int]:
    """G's channels at each side 4..resolution: {4: 16·ngf, 8: 8·ngf, ..., 256: ngf/2, ...}."""
    return {s: int(G_MULTIPLIERS[s] * g_width) for s in sides(4, resolution)}


def d_big_widths(resolution: int, d_width: int) -> dict[int, int]:
    """Channels of D's big path at each side it has, 8..min(R, 256) (and the stem's sides
    above 256): the D multiplier at twice the side × ndf."""
    top = resolution if resolution <= D_START_MAX else resolution // 2
    return {s: int(D_MULTIPLIERS[2 * s] * d_width) for s in sides(LOGIT_SIDE, top)}


def d_small_widths(small: int, d_width: int) -> dict[int, int]:
    """Channels of D's small path at each side 8..small/2 (8 when small is 8): the D
    multiplier at four times the side × ndf."""
    return {s: max(1, int(D_MULTIPLIERS[4 * s] * d_width))
            for s in sides(LOGIT_SIDE, max(LOGIT_SIDE, small // 2))}  # fmt: skip


def excitations(resolution: int) -> list[tuple[int, int]]:
    """G's skip-layer excitations as (source side, gated side): from side s to side k·s with
    k = min(16, R/4), for s ≥ 4 and k·s ≤ min(R, 512). 256 px: [(4, 64), (8, 128), (16, 256)]."""
    k = min(16, resolution // 4)
    top = min(resolution, SLE_MAX_SIDE)
    return [(s, k * s) for s in sides(4, top) if k * s <= top]


def d_excitations(start: int) -> list[tuple[int, int]]:
    """D's skip-layer excitations as (source side, gated side): the maps at 32, 16 and 8
    gated by the maps at 8× their side, where the big path (from side `start`) has them."""
    return [(8 * t, t) for t in (32, 16, 8) if 8 * t <= start]


def is_comp_block(side: int) -> bool:
    """FastGAN's G alternates two-conv blocks with noise (at 8, 32, 128, 512) and one-conv
    blocks (16, 64, 256, 1024)."""
    return int(math.log2(side)) % 2 == 1


def reconstruction_sides(resolution: int) -> tuple[int, int]:
    """(whole image, quadrant) sides of D's reconstructions: each target's own side, capped
    at 128."""
    return min(resolution, SMALL_MAX), min(resolution // 2, SMALL_MAX)


# --- Layers --------------------------------------------------------------------------------


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Module:
    """A spectrally normalised conv without bias, weights N(0, 0.02) (as the paper's code)."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False)
    nn.init.normal_(conv.weight, 0.0, 0.02)
    return sn(conv)


def _bn(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    nn.init.normal_(bn.weight, 1.0, 0.02)
    nn.init.zeros_(bn.bias)
    return bn


def _act() -> nn.LeakyReLU:
    return nn.LeakyReLU(SLOPE)


class GLU(nn.Module):
    """Gated linear unit over channels: [N, 2C, H, W] → first half · sigmoid(second half)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(x, dim=1)


class NoiseInjection(nn.Module):
    """x + weight · noise, noise one Gaussian value per pixel shared by the channels; the
    weight starts at 0. Fresh noise in training mode, the fixed map `noise_const` in eval."""

    def __init__(self, side: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.register_buffer("noise_const", torch.randn(1, 1, side, side))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, S, S] → [N, C, S, S]."""
        if self.training:
            noise = torch.randn(len(x), 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        else:
            noise = self.noise_const.to(x.dtype)
        return x + self.weight * noise


def up_block(c_in: int, c_out: int, side: int, comp: bool) -> nn.Sequential:
    """[N, c_in, S/2, S/2] → [N, c_out, S, S]: nearest ×2, 3×3 conv, (noise,) BatchNorm, GLU;
    a comp block repeats conv, noise, BatchNorm, GLU once more."""
    layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest"),
                               _conv(c_in, 2 * c_out, 3, padding=1)]  # fmt: skip
    if not comp:
        return nn.Sequential(*layers, _bn(2 * c_out), GLU())
    return nn.Sequential(*layers, NoiseInjection(side), _bn(2 * c_out), GLU(),
                         _conv(c_out, 2 * c_out, 3, padding=1), NoiseInjection(side),
                         _bn(2 * c_out), GLU())  # fmt: skip


class SkipExcitation(nn.Module):
    """Skip-layer excitation: `big` [N, C_big, H, W] times a per-channel gate in (0, 1) made
    from `small` [N, C_small, h, w]: average-pooled to 4×4, 4×4 conv, Swish, 1×1 conv, sigmoid."""

    def __init__(self, c_small: int, c_big: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(4), _conv(c_small, c_big, 4), nn.SiLU(),
                                  _conv(c_big, c_big, 1), nn.Sigmoid())  # fmt: skip

    def forward(self, small: torch.Tensor, big: torch.Tensor) -> torch.Tensor:
        return big * self.gate(small)  # gate [N, C_big, 1, 1]


# --- The generator -------------------------------------------------------------------------


class Generator(nn.Module):
    def __init__(self, cfg: FastGANConfig) -> None:
        super().__init__()
        self.z_dim, self.resolution = cfg.z_dim, cfg.resolution
        widths = g_widths(cfg.resolution, cfg.g_width)
        first = nn.ConvTranspose2d(cfg.z_dim, 2 * widths[4], 4, 1, 0, bias=False)
        nn.init.normal_(first.weight, 0.0, 0.02)
        self.init = nn.Sequential(sn(first), _bn(2 * widths[4]), GLU())  # [N, w4, 4, 4]
        self.up = nn.ModuleDict({
            str(s): up_block(widths[s // 2], widths[s], s, comp=not cfg.lite and is_comp_block(s))
            for s in sides(8, cfg.resolution)
        })  # fmt: skip
        self.excitation_sides = dict((big, small) for small, big in excitations(cfg.resolution))
        self.excite = nn.ModuleDict({
            str(big): SkipExcitation(widths[small], widths[big])
            for big, small in self.excitation_sides.items()
        })  # fmt: skip
        self.to_image = _conv(widths[cfg.resolution], cfg.channels, 3, padding=1)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, z_dim] → images [N, C, R, R] in [-1, 1]. c is ignored (unconditional)."""
        h = self.init(z[:, :, None, None])
        features = {4: h}  # the maps an excitation reads, by side
        for side in sides(8, self.resolution):
            h = self.up[str(side)](h)
            if side in self.excitation_sides:
                h = self.excite[str(side)](features[self.excitation_sides[side]], h)
            features[side] = h
        return torch.tanh(self.to_image(h))


# --- The discriminator ---------------------------------------------------------------------


class DownBlock(nn.Module):
    """[N, c_in, S, S] → [N, c_out, S/2, S/2]: 4×4 stride-2 conv, BatchNorm, LeakyReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.main = nn.Sequential(_conv(c_in, c_out, 4, 2, 1), _bn(c_out), _act())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class DownBlockComp(nn.Module):
    """[N, c_in, S, S] → [N, c_out, S/2, S/2]: the mean of a two-conv path and of an
    average-pool + 1×1 conv shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.main = nn.Sequential(_conv(c_in, c_out, 4, 2, 1), _bn(c_out), _act(),
                                  _conv(c_out, c_out, 3, 1, 1), _bn(c_out), _act())  # fmt: skip
        self.direct = nn.Sequential(nn.AvgPool2d(2), _conv(c_in, c_out, 1), _bn(c_out), _act())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.direct(x)) / 2


class Decoder(nn.Module):
    """[N, c_in, h, w] (pooled to 8×8) → an image [N, C, side, side] in [-1, 1]: nearest ×2
    up-blocks to `side`, then a 3×3 conv and tanh."""

    def __init__(self, c_in: int, channels: int, side: int, base_width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(LOGIT_SIDE)]
        width = c_in
        for s in sides(2 * LOGIT_SIDE, side) if side > LOGIT_SIDE else []:
            out = max(1, int(G_MULTIPLIERS[s] * base_width))
            layers.append(up_block(width, out, s, comp=False))
            width = out
        layers += [_conv(width, channels, 3, padding=1), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def quadrant(x: torch.Tensor, part: int) -> torch.Tensor:
    """Quadrant `part` of x [N, C, H, W] (0 top-left, 1 top-right, 2 bottom-left, 3
    bottom-right): [N, C, H/2, W/2]."""
    h, w = x.shape[2] // 2, x.shape[3] // 2
    top, left = (part // 2) * h, (part % 2) * w
    return x[:, :, top : top + h, left : left + w]


def box_resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """x [N, C, S, S] → [N, C, side, side] for side ≤ S: the mean of each (S/side)² block."""
    factor = x.shape[-1] // side
    return x if factor == 1 else F.avg_pool2d(x, factor)


class Discriminator(nn.Module):
    def __init__(self, cfg: FastGANConfig) -> None:
        super().__init__()
        R, nc, ndf = cfg.resolution, cfg.channels, cfg.d_width
        self.resolution = R
        self.start = min(R, D_START_MAX)  # side of the big path's first feature map
        self.small = min(R // 2, SMALL_MAX)  # side of the small path's image
        self.rec_whole, self.rec_part = reconstruction_sides(R)
        big = d_big_widths(R, ndf)

        # Big path: stem to `start`, then down-blocks to 8×8.
        if R <= D_START_MAX:
            stem: list[nn.Module] = [_conv(nc, big[R], 3, 1, 1), _act()]
        else:
            stem, c_in = [], nc
            for i, s in enumerate(reversed(sides(self.start, R // 2))):  # R/2, R/4, ..., 256
                stem += [_conv(c_in, big[s], 4, 2, 1), *([_bn(big[s])] if i else []), _act()]
                c_in = big[s]
        self.stem = nn.Sequential(*stem)
        self.down = nn.ModuleDict({str(s): DownBlockComp(big[2 * s], big[s])
                                   for s in sides(LOGIT_SIDE, self.start // 2)})  # fmt: skip
        self.excitation_sides = dict((t, src) for src, t in d_excitations(self.start))
        self.excite = nn.ModuleDict({str(t): SkipExcitation(big[src], big[t])
                                     for t, src in self.excitation_sides.items()})  # fmt: skip
        head = int(D_MULTIPLIERS[LOGIT_SIDE] * ndf)
        self.logits_big = nn.Sequential(_conv(big[LOGIT_SIDE], head, 1), _bn(head), _act(),
                                        _conv(head, 1, 4))  # fmt: skip

        # Small path: the image at `small`, down to 8×8.
        small = d_small_widths(self.small, ndf)
        if self.small == LOGIT_SIDE:
            layers: list[nn.Module] = [_conv(nc, small[LOGIT_SIDE], 3, 1, 1), _act()]
        else:
            layers = [_conv(nc, small[self.small // 2], 4, 2, 1), _act()]
            layers += [DownBlock(small[2 * s], small[s])
                       for s in reversed(sides(LOGIT_SIDE, self.small // 4))]  # fmt: skip
        self.small_path = nn.Sequential(*layers)
        self.logits_small = _conv(small[LOGIT_SIDE], 1, 4)

        # Decoders, trained on reals only.
        base = max(1, ndf // 2)
        self.decode_whole = Decoder(big[LOGIT_SIDE], nc, self.rec_whole, base)
        self.decode_small = Decoder(small[LOGIT_SIDE], nc, self.rec_whole, base)
        self.decode_part = Decoder(big[2 * LOGIT_SIDE], nc, self.rec_part, base)

    def _features(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The big path's 8×8 and 16×16 maps and the small path's 8×8 map of img [N, C, R, R]."""
        h = self.stem(img)
        features = {self.start: h}
        for side in reversed(sides(LOGIT_SIDE, self.start // 2)):
            h = self.down[str(side)](h)
            if side in self.excitation_sides:
                h = self.excite[str(side)](features[self.excitation_sides[side]], h)
            features[side] = h
        small = self.small_path(box_resize(img, self.small))
        return features[LOGIT_SIDE], features[2 * LOGIT_SIDE], small

    def _logits(self, last: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
        """Both heads' 5×5 maps, flattened and concatenated: [N, 50]."""
        return torch.cat([self.logits_big(last).flatten(1), self.logits_small(small).flatten(1)], 1)

    def logit_maps(self, img: torch.Tensor) -> torch.Tensor:
        """img [N, C, R, R] → every logit of both heads, [N, 50] (positive = judged real)."""
        last, _, small = self._features(img)
        return self._logits(last, small)

    def logits_and_reconstructions(
        self, img: torch.Tensor, part: int
    ) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """The logit maps [N, 50] of img [N, C, R, R] (reals, as D sees them) and D's three
        reconstructions with their targets, {name: (reconstruction, target)}:
            'whole'  the image from the big path's 8×8 map, at min(R, 128)
            'small'  the image from the small path's 8×8 map, at min(R, 128)
            'part'   quadrant `part` (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right)
                     from that quadrant of the big path's 16×16 map, at min(R/2, 128)
        The targets are img box-downsampled (detached)."""
        if part not in range(PARTS):
            raise ValueError(f"part={part} must be one of 0, 1, 2, 3 (a quadrant)")
        last, sixteen, small = self._features(img)
        target = img.detach()
        whole = box_resize(target, self.rec_whole)
        recs = {
            "whole": (self.decode_whole(last), whole),
            "small": (self.decode_small(small), whole),
            "part": (self.decode_part(quadrant(sixteen, part)),
                     box_resize(quadrant(target, part), self.rec_part)),
        }  # fmt: skip
        return self._logits(last, small), recs

    def forward(
        self,
        img: torch.Tensor,
        c: torch.Tensor | None = None,
        maps: bool = False,
        part: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """img [N, C, R, R] → logits [N], each image's mean logit (c is ignored). With
        `maps`: the logit maps [N, 50]; with `part`: `logits_and_reconstructions(img, part)`.
        (Through forward, so a wrapped D, e.g. under DDP, serves all three.)"""
        if part is not None:
            return self.logits_and_reconstructions(img, part)
        logits = self.logit_maps(img)
        return logits if maps else logits.mean(1)


FAMILY = register_family(
    Family(
        name="fastgan",
        default_augment="diffaugment",
        config=FastGANConfig,
        generator=Generator,
        discriminator=Discriminator,
        paper="Liu, Zhu, Song & Elgammal 2021, arXiv:2101.04775",
        objective=FastGANObjective,
    )
)
