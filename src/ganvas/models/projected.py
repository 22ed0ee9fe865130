"""Projected GAN (Sauer, Chitta, Müller & Geiger, NeurIPS 2021, arXiv:2111.01007), "Projected
GANs Converge Faster": D looks at images through a frozen ImageNet network.

D: images (through the D-input pipeline; the presets use DiffAugment color, translation,
cutout, as the paper) are resized to `feature_resolution` (the paper: 224 for datasets below
224 px) and go through EfficientNet-Lite0 (`ganvas.models.features`), cut into four stages at
strides 4, 8, 16, 32. Two random projections, drawn once from `projection_seed` and never
trained, mix the features before any discriminator sees them:
    cross-channel mixing (CCM)  a 1×1 conv per scale, to projection_width × (1, 2, 4, 8)
                                channels;
    cross-scale mixing (CSM)    from the deepest scale up, each scale is added to the one
                                below it, upsampled ×2 (bilinear) and mixed by a 1×1 conv
                                that halves its channels (as in the paper's code, so the four
                                discriminators see sides 2·R/4 ... 2·R/32 of the input R).
They are buffers-and-weights of D, saved with every checkpoint, so a resumed run sees the
same projections. One small discriminator per scale: down-blocks (4×4 conv stride 2,
spectral norm, BatchNorm, leaky ReLU 0.2) to 8×8, then a 4×4 conv to one logit per position.
Widths follow the paper's table ({128: 64, 64: 64, 32: 128, 16: 256, 8: 512}), or `d_width`
everywhere when set. `separable` uses depthwise-separable convs (the paper's choice with a
StyleGAN2 G). D's logits are every position of every scale; the hinge loss of
`ganvas.objectives.projected` applies to each.

G: any unconditional family's generator, FastGAN's by default (the paper's `fastgan_lite`:
`generator_options: {lite: true}`), or `generator: stylegan2`; `generator_options` holds that
family's model settings. The pretrained backbone's weights are not written into checkpoints
(13 MB each, and the same for every run): they come from the installed package, and D keeps
their SHA-256, so resuming on other weights is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganvas.errors import CheckpointError, ConfigError, check
from ganvas.models.features import EfficientNetPyramid, weights_fingerprint
from ganvas.models.registry import (
    Family,
    ModelConfig,
    get_family,
    list_families,
    register_family,
)
from ganvas.objectives.projected import ProjectedObjective

HEAD_END_SIDE = 8  # each scale's discriminator downsamples to 8×8, then one 4×4 conv
PAPER_WIDTHS = {4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32, 512: 16, 1024: 8}
SHARED_KEYS = {f.name for f in fields(ModelConfig)}  # set by the projected config itself
BACKBONE_PREFIX = "features."


@dataclass(frozen=True)
class ProjectedConfig(ModelConfig):
    z_dim: int = 256  # FastGAN's noise dimension
    generator: str = "fastgan"  # the family whose generator G is
    generator_options: Any = None  # that family's model.* settings, e.g. {g_width: 64, lite: true}
    feature_resolution: int = 224  # side images are resized to for the feature network; 0: keep
    projection_width: int = 64  # CCM channels at the first scale (×2 per deeper scale)
    projection_seed: int = 0  # draws the fixed random projections
    d_width: int = 0  # channels of every discriminator layer; 0: the paper's table
    separable: bool = False  # depthwise-separable convs in the discriminators

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.feature_resolution == 0 or self.feature_resolution >= 32,
              f"model.feature_resolution={self.feature_resolution} must be 0 (the image size) "
              "or >= 32")  # fmt: skip
        check(self.projection_width >= 1, "model.projection_width must be >= 1")
        check(self.d_width >= 0, "model.d_width must be >= 0")
        options = self.generator_options or {}
        check(isinstance(options, dict),
              f"model.generator_options must be a mapping of {self.generator}'s settings")  # fmt: skip
        shared = sorted(set(options) & SHARED_KEYS)
        check(not shared, f"model.generator_options sets {', '.join(shared)}: set them on model "
                          "itself (they are the projected family's)")  # fmt: skip
        check(self.generator != "projected", "model.generator cannot be 'projected' itself")
        known = list_families()
        check(self.generator in known, f"model.generator={self.generator!r} is not a known "
                                       f"family; choose one of {', '.join(known)}")  # fmt: skip
        family = get_family(self.generator)
        check(not family.conditional and not family.grows,
              f"model.generator={self.generator!r}: projected pairs with an unconditional "
              "generator that does not grow")  # fmt: skip
        generator_config(self)  # unknown or ill-typed options fail here, with their key

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.generator_options or {})


def generator_config(cfg: ProjectedConfig) -> ModelConfig:
    """The config of the generator's own family, from `generator_options` and the shared keys."""
    from ganvas.config import _build

    tree = {**cfg.options, "family": cfg.generator, "resolution": cfg.resolution,
            "channels": cfg.channels, "z_dim": cfg.z_dim}  # fmt: skip
    return _build(get_family(cfg.generator).config, tree, "model.generator_options")


class Generator(nn.Module):
    """The chosen family's generator, unchanged: G(z, c=None, **options) → [N, C, R, R]."""

    def __init__(self, cfg: ProjectedConfig) -> None:
        super().__init__()
        if cfg.resolution is None or cfg.channels is None:
            raise ConfigError("model.resolution and model.channels must be set before building")
        self.net = get_family(cfg.generator).generator(generator_config(cfg))
        self.z_dim = cfg.z_dim
        self.supports_truncation = getattr(self.net, "supports_truncation", False)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, **options) -> torch.Tensor:
        return self.net(z, c, **options)


def conv(cin: int, cout: int, kernel: int, stride: int, padding: int, separable: bool) -> nn.Module:
    """A spectrally normalised conv without bias; depthwise then pointwise when separable."""
    if not separable:
        return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, padding, bias=False))
    return nn.Sequential(
        spectral_norm(nn.Conv2d(cin, cin, kernel, stride, padding, groups=cin, bias=False)),
        spectral_norm(nn.Conv2d(cin, cout, 1, bias=False)),
    )


class ScaleDiscriminator(nn.Module):
    """One scale's discriminator: features [N, cin, s, s] → logits [N, 1, h, w]."""

    def __init__(self, cin: int, side: int, width: int, separable: bool) -> None:
        super().__init__()
        nominal = min(PAPER_WIDTHS, key=lambda k: abs(k - side))  # sides like 112 count as 128
        layers: list[nn.Module] = []
        channels = cin
        while nominal > HEAD_END_SIDE:
            out = width or PAPER_WIDTHS[nominal // 2]
            layers += [conv(channels, out, 4, 2, 1, separable), nn.BatchNorm2d(out),
                       nn.LeakyReLU(0.2)]  # fmt: skip
            channels, nominal, side = out, nominal // 2, math.ceil(side / 2)
        kernel = min(4, side)  # small feature maps (small feature_resolution): one logit
        layers.append(conv(channels, 1, kernel, 1, 0, separable))
        self.main = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.main(features)


class FusionBlock(nn.Module):
    """Cross-scale mixing: (deeper + this scale) → upsample ×2 → 1×1 conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + skip
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.mix(x)


class RandomProjection(nn.Module):
    """CCM then CSM over the four scales, drawn from `seed` and frozen."""

    def __init__(self, in_channels: tuple[int, ...], width: int, seed: int) -> None:
        super().__init__()
        mixed = [width * 2**i for i in range(len(in_channels))]  # 64, 128, 256, 512
        self.channel_mix = nn.ModuleList(nn.Conv2d(c, m, 1) for c, m in zip(in_channels, mixed))
        # Deepest first; each halves its channels, except the shallowest, which keeps them.
        self.scale_mix = nn.ModuleList(
            FusionBlock(m, m if i == 0 else m // 2) for i, m in enumerate(mixed)
        )
        self.out_channels = tuple(mixed[0] if i == 0 else mixed[i] // 2 for i in range(len(mixed)))
        with torch.random.fork_rng(devices=[]):  # drawn from the seed, not the run's RNG
            torch.manual_seed(seed)
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    module.reset_parameters()
        self.requires_grad_(False)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        mixed = [ccm(f) for ccm, f in zip(self.channel_mix, features)]
        deeper = self.scale_mix[-1](mixed[-1])
        out = [deeper]
        for i in reversed(range(len(mixed) - 1)):
            deeper = self.scale_mix[i](deeper, mixed[i])
            out.insert(0, deeper)
        return out


class Discriminator(nn.Module):
    """Images [N, C, R, R] in [-1, 1] → logits [N] (the mean of `logits`, the registry's
    contract); the objective trains on every position of every scale (`logits`)."""

    def __init__(self, cfg: ProjectedConfig) -> None:
        super().__init__()
        self.features = EfficientNetPyramid(cfg.feature_resolution)
        self.projection = RandomProjection(
            self.features.channels, cfg.projection_width, cfg.projection_seed
        )
        side = self.features.side_for(cfg.resolution)
        sides = [2 * math.ceil(side / s) for s in self.features.strides]  # after CSM's ×2
        self.heads = nn.ModuleList(
            ScaleDiscriminator(c, s, cfg.d_width, cfg.separable)
            for c, s in zip(self.projection.out_channels, sides)
        )
        fingerprint = torch.tensor(list(bytes.fromhex(weights_fingerprint(self.features))),
                                   dtype=torch.uint8)  # fmt: skip
        self.register_buffer("backbone_sha256", fingerprint)
        self._register_state_dict_hook(_drop_backbone)

    def train(self, mode: bool = True) -> Discriminator:
        super().train(mode)
        self.features.train(False)
        self.projection.train(False)
        return self

    def logits(self, images: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Every logit of every scale: [N, L]. Without gradients through the frozen networks
        unless the images need them (a G phase)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and images.requires_grad):
            features = self.projection(self.features(images))
        return torch.cat([head(f).flatten(1) for head, f in zip(self.heads, features)], dim=1)

    def forward(self, images: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits(images, c).mean(1)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        saved = state_dict.get("backbone_sha256")
        if saved is not None and not torch.equal(saved.cpu(), self.backbone_sha256.cpu()):
            raise CheckpointError(
                "this run's discriminator was trained on other EfficientNet-Lite0 weights than "
                "the installed ones (SHA-256 differs); install the same weights file or point "
                "GANVAS_EFFICIENTNET_LITE0_WEIGHTS at it"
            )
        full = dict(state_dict)
        for name, value in self.features.state_dict().items():
            full.setdefault(BACKBONE_PREFIX + name, value)
        return super().load_state_dict(full, strict, assign)


def _drop_backbone(module: nn.Module, state: dict, prefix: str, local_metadata: Any) -> None:
    """The pretrained weights stay out of checkpoints (see the module docstring)."""
    for key in [k for k in state if k.startswith(prefix + BACKBONE_PREFIX)]:
        del state[key]


FAMILY = register_family(
    Family(
        name="projected",
        default_augment="diffaugment",
        config=ProjectedConfig,
        generator=Generator,
        discriminator=Discriminator,
        paper="Sauer et al. 2021, Projected GANs Converge Faster (arXiv:2111.01007)",
        objective=ProjectedObjective,
    )
)
