"""Restoration and super-resolution, the fastai way (course-v3 lesson 7, DeOldify's NoGAN): a
U-Net G maps a damaged image (`ganvas.data.crappify`) to a clean one, trained on a feature loss
and then, briefly, against a critic (`ganvas.objectives.restore`).

G: damaged image [N, C, R/f, R/f] in [-1, 1] → image [N, C, R, R] in [-1, 1], f = `factor`
(1: same size, decrappify; 2 or 4: super-resolution).
    encoder     EfficientNet-Lite0 with the offline ImageNet weights (`models.features`), cut
                at strides 2, 4, 8, 16, 32 (16, 24, 40, 112, 320 channels); frozen for the first
                `encoder_frozen_steps` steps, then fine-tuned (its BatchNorm statistics stay
                ImageNet's). `encoder: none`: a plain conv encoder of `encoder_depth` levels.
    decoder     fastai's UnetBlock per level: the deeper map upsampled ×2 by a pixel shuffle
                (1×1 conv initialised by ICNR, so it starts as nearest-neighbour upsampling,
                then a 2×2 average "blur" against checkerboards), concatenated with the
                BatchNorm'd skip, two 3×3 convs with ReLU; self-attention in the third block
                from the end (fastai's place); weight or spectral norm on every conv.
    ×factor     one more pixel-shuffle block per ×2 beyond the input's side.
    output      fastai's last cross: the input (bilinear-upsampled to R) concatenated, a
                residual block, a 1×1 conv, and a sigmoid range into [-1, 1] added to the
                upsampled input's logit; that conv starts at zero, so G starts as bilinear
                upsampling (×1: the identity) and learns the difference.
D: fastai's `gan_critic`: conv 4×4 s2, dropout p/2, a dense residual block, then `d_blocks` ×
(dropout p, conv 4×4 s2, self-attention after the first), spectral norm and LeakyReLU 0.2
everywhere, and a 4×4 conv to one logit per position (`logits`; forward gives their mean).

The run is used through `ganvas.restore` (`ganvas restore`, `ganvas upscale`), not latents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from ganvas.errors import ConfigError, check
from ganvas.models.layers import SelfAttention
from ganvas.models.registry import Family, ModelConfig, register_family
from ganvas.objectives.restore import RestoreObjective

EFFICIENTNET_CHANNELS = (16, 24, 40, 112, 320)  # at strides 2, 4, 8, 16, 32


@dataclass(frozen=True)
class RestoreConfig(ModelConfig):
    factor: int = 2  # output side / input side: 1, 2 or 4
    encoder: Literal["efficientnet_lite0", "none"] = "efficientnet_lite0"
    encoder_frozen_steps: int = 0  # steps the pretrained encoder stays frozen, then it learns
    encoder_width: int = 32  # encoder 'none': channels at stride 2, doubled per level
    encoder_depth: int = 4  # encoder 'none': levels (fewer when the input is small)
    g_width: int = 256  # most channels of a decoder block
    norm: Literal["weight", "spectral"] = "weight"  # on G's convs (fastai: weight)
    self_attention: bool = True
    shuffle_blur: bool = True  # the 2×2 average after each pixel shuffle
    d_width: int = 128  # the critic's first width (fastai's nf)
    d_blocks: int = 3
    d_dropout: float = 0.15
    # Crappify (ganvas.data.crappify.CrappifySettings, with `factor` above).
    jpeg_quality: tuple[int, int] = (10, 70)
    overlay: bool = True
    noise: float = 0.0
    blur: float = 0.0
    fade: float = 0.0
    grey: bool = False
    # The NoGAN schedule and losses (ganvas.objectives.restore).
    g_pretrain_steps: int = 1000  # G alone on the feature loss
    d_pretrain_steps: int = 500  # then the critic alone on G's outputs vs real images
    critic_threshold: float = 0.65  # GAN phase: the critic trains until its loss is below this
    gan_weights: tuple[float, float] = (1.0, 50.0)  # G's (adversarial, feature loss) weights
    pixel_weight: float = 1.0  # L1 on pixels
    feature_weights: tuple[float, ...] = (5.0, 15.0, 2.0)  # L1 on EfficientNet stages 1..3
    gram_weight: float = 200.0  # × feature weight² on their Gram matrices' L1 (fastai's 5e3 on VGG)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.factor in (1, 2, 4), f"model.factor={self.factor} must be 1, 2 or 4")
        for key in ("encoder_frozen_steps", "g_pretrain_steps", "d_pretrain_steps"):
            check(getattr(self, key) >= 0, f"model.{key}={getattr(self, key)} must be >= 0")
        for key in ("encoder_width", "encoder_depth", "g_width", "d_width", "d_blocks"):
            check(getattr(self, key) >= 1, f"model.{key}={getattr(self, key)} must be >= 1")
        check(0 <= self.d_dropout < 1, f"model.d_dropout={self.d_dropout} must lie in [0, 1)")
        check(self.critic_threshold > 0, "model.critic_threshold must be > 0")
        check(all(w >= 0 for w in self.gan_weights), "model.gan_weights must be >= 0")
        check(1 <= len(self.feature_weights) <= 4 and all(w >= 0 for w in self.feature_weights),
              "model.feature_weights: 1 to 4 weights >= 0, one per EfficientNet stage")  # fmt: skip
        check(self.pixel_weight >= 0 and self.gram_weight >= 0,
              "model.pixel_weight and model.gram_weight must be >= 0")  # fmt: skip
        self.crappify_settings()  # the damage settings fail here, with their key

    def crappify_settings(self):  # -> CrappifySettings
        from ganvas.data.crappify import CrappifySettings

        return CrappifySettings.from_model(self)

    @property
    def input_side(self) -> int:
        return int(self.resolution) // self.factor


def normed(conv: nn.Module, norm: str) -> nn.Module:
    return weight_norm(conv) if norm == "weight" else spectral_norm(conv)


def icnr_(weight: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """ICNR (Aitken et al. 2017): a pixel-shuffle conv's weight [C·s², Cin, k, k] made of one
    Kaiming-initialised sub-kernel repeated s² times, so that the shuffle starts as
    nearest-neighbour upsampling (no checkerboard)."""
    out, cin, kh, kw = weight.shape
    sub = torch.empty(out // scale**2, cin, kh, kw)
    nn.init.kaiming_normal_(sub)
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(scale**2, dim=0))
    return weight


class PixelShuffleUp(nn.Module):
    """×2: 1×1 conv (ICNR) to 4·cout channels, ReLU, pixel shuffle, optional 2×2 blur."""

    def __init__(self, cin: int, cout: int, norm: str, blur: bool) -> None:
        super().__init__()
        conv = nn.Conv2d(cin, cout * 4, 1)
        icnr_(conv.weight)
        nn.init.zeros_(conv.bias)
        self.conv = normed(conv, norm)
        self.blur = blur

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_shuffle(F.relu(self.conv(x)), 2)
        if self.blur:  # fastai: replication pad left/top, 2×2 average with stride 1
            x = F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)
        return x


def conv_relu(cin: int, cout: int, norm: str, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(normed(nn.Conv2d(cin, cout, 3, stride, 1), norm), nn.ReLU())


class UnetBlock(nn.Module):
    """Deeper map [N, up_c, h, w] and skip [N, skip_c, 2h, 2w] → [N, cout, 2h, 2w]."""

    def __init__(self, up_c: int, skip_c: int, cout: int, cfg: RestoreConfig,
                 attention: bool) -> None:  # fmt: skip
        super().__init__()
        self.up = PixelShuffleUp(up_c, up_c // 2, cfg.norm, cfg.shuffle_blur)
        self.skip_norm = nn.BatchNorm2d(skip_c)
        self.convs = nn.Sequential(conv_relu(up_c // 2 + skip_c, cout, cfg.norm),
                                   conv_relu(cout, cout, cfg.norm))  # fmt: skip
        self.attention = SelfAttention(cout, cfg.norm == "spectral") if attention else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.convs(torch.cat([self.up(x), self.skip_norm(skip)], dim=1))
        return x if self.attention is None else self.attention(x)


class ResBlock(nn.Module):
    """x + two 3×3 convs (ReLU) of x: fastai's ResBlock after the last cross."""

    def __init__(self, width: int, norm: str) -> None:
        super().__init__()
        self.convs = nn.Sequential(conv_relu(width, width, norm), conv_relu(width, width, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.convs(x)


def plain_encoder_depth(cfg: RestoreConfig) -> int:
    """Levels of the plain encoder: `encoder_depth`, fewer for inputs too small for them (the
    deepest map keeps at least 2×2 pixels)."""
    return max(1, min(cfg.encoder_depth, int(math.log2(cfg.input_side)) - 1))


class Generator(nn.Module):
    def __init__(self, cfg: RestoreConfig) -> None:
        super().__init__()
        if cfg.resolution is None or cfg.channels is None:
            raise ConfigError("model.resolution and model.channels must be set before building")
        side = cfg.input_side
        self.factor, self.channels, self.input_side = cfg.factor, cfg.channels, side
        self.z_dim = cfg.z_dim  # the registry's contract; this G takes images
        if cfg.encoder == "efficientnet_lite0":
            if side < 32 or side % 32:
                raise ConfigError(
                    f"model.encoder=efficientnet_lite0 needs an input side divisible by 32, not "
                    f"{side} (model.resolution {cfg.resolution} / model.factor {cfg.factor}); "
                    "use a larger resolution or model.encoder=none"
                )
            from ganvas.models.features import EfficientNetPyramid

            stages = EfficientNetPyramid(input_side=0).stages  # frozen, ImageNet weights
            self.encoder = nn.ModuleList([stages[0][:3], stages[0][3:], *stages[1:]])
            widths = list(EFFICIENTNET_CHANNELS)
            self.pretrained = True
        else:
            widths = [min(cfg.encoder_width * 2**i, cfg.g_width)
                      for i in range(plain_encoder_depth(cfg))]  # fmt: skip
            cins = [cfg.channels, *widths[:-1]]
            self.encoder = nn.ModuleList(
                nn.Sequential(conv_relu(cin, w, cfg.norm, stride=2), conv_relu(w, w, cfg.norm))
                for cin, w in zip(cins, widths)
            )
            self.pretrained = False
        deepest = widths[-1]
        self.middle = nn.Sequential(conv_relu(deepest, min(2 * deepest, 2 * cfg.g_width), cfg.norm),
                                    conv_relu(min(2 * deepest, 2 * cfg.g_width), deepest,
                                              cfg.norm))  # fmt: skip
        blocks, width = [], deepest
        skips = widths[-2::-1]  # shallower maps, deepest first
        for i, skip in enumerate(skips):
            final = i == len(skips) - 1
            ni = width // 2 + skip
            out = min(cfg.g_width, ni // 2 if final else ni)
            attention = cfg.self_attention and i == max(0, len(skips) - 3)
            blocks.append(UnetBlock(width, skip, out, cfg, attention))
            width = out
        self.decoder = nn.ModuleList(blocks)
        if not blocks and cfg.self_attention:  # a one-level encoder: attend at the bottom
            self.middle.append(SelfAttention(width, cfg.norm == "spectral"))
        # To the input's side (stride 2 → 1), then ×2 per factor step.
        ups = [PixelShuffleUp(width, width, cfg.norm, cfg.shuffle_blur)]
        for _ in range(int(math.log2(cfg.factor))):
            ups += [PixelShuffleUp(width, width, cfg.norm, cfg.shuffle_blur),
                    conv_relu(width, width, cfg.norm)]  # fmt: skip
        self.upscale = nn.Sequential(*ups)
        cross = width + cfg.channels
        self.cross = ResBlock(cross, cfg.norm)
        to_image = nn.Conv2d(cross, cfg.channels, 1)
        nn.init.zeros_(to_image.weight)
        nn.init.zeros_(to_image.bias)
        self.to_image = to_image
        self.set_encoder_trainable(not self.pretrained)

    def set_encoder_trainable(self, trainable: bool) -> None:
        """Freeze or unfreeze the encoder (the objective does, by step); no effect on a plain
        encoder, which always learns."""
        self.encoder.requires_grad_(trainable or not self.pretrained)

    def train(self, mode: bool = True) -> Generator:
        super().train(mode)
        if self.pretrained:  # ImageNet's BatchNorm statistics, never updated
            self.encoder.train(False)
        return self

    def forward(self, image: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """image [N, C, s, s] in [-1, 1], s divisible by 2^levels → [N, C, s·f, s·f]."""
        x = image
        if self.pretrained and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        features = []
        for level in self.encoder:
            x = level(x)
            features.append(x)
        x = self.middle(features[-1])
        for block, skip in zip(self.decoder, reversed(features[:-1])):
            x = block(x, skip)
        x = self.upscale(x)
        size = x.shape[-2:]
        base = image if self.factor == 1 else F.interpolate(image, size=size, mode="bilinear",
                                                            align_corners=False)  # fmt: skip
        x = self.cross(torch.cat([x, base], dim=1))
        # fastai's sigmoid range into [-1, 1], on top of the input's own logit: with the last
        # conv starting at zero, G starts as bilinear upsampling and learns what to change.
        start = torch.logit((base.detach() + 1) / 2, eps=1e-3)
        return torch.sigmoid(start + self.to_image(x)) * 2 - 1


def critic_conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int | None = None,
                bias: bool = True) -> nn.Module:  # fmt: skip
    padding = (kernel - 1) // 2 if padding is None else padding
    return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias))


class DenseResBlock(nn.Module):
    """fastai's res_block(dense=True): x → [x, conv(conv(x))] (channels doubled)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(critic_conv(width, width), nn.LeakyReLU(0.2),
                                   critic_conv(width, width), nn.LeakyReLU(0.2))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.convs(x)], dim=1)


class Discriminator(nn.Module):
    """fastai's gan_critic: images [N, C, R, R] → logits [N] (the mean of `logits`)."""

    def __init__(self, cfg: RestoreConfig) -> None:
        super().__init__()
        nf, p = cfg.d_width, cfg.d_dropout
        layers: list[nn.Module] = [critic_conv(cfg.channels, nf, 4, 2), nn.LeakyReLU(0.2),
                                   nn.Dropout2d(p / 2), DenseResBlock(nf)]  # fmt: skip
        nf, side = nf * 2, cfg.resolution // 2
        for i in range(cfg.d_blocks):
            layers += [nn.Dropout2d(p), critic_conv(nf, nf * 2, 4, 2), nn.LeakyReLU(0.2)]
            if i == 0:
                layers.append(SelfAttention(nf * 2))
            nf, side = nf * 2, max(1, side // 2)
        layers.append(critic_conv(nf, 1, min(4, side), padding=0, bias=False))
        self.main = nn.Sequential(*layers)

    def logits(self, images: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """One logit per position: [N, L]."""
        return self.main(images).flatten(1)

    def forward(self, images: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits(images).mean(1)


# --- The family's hooks: G's inputs, sample sheets, validation ------------------------------


def damaged_inputs(batch: dict, config: RestoreConfig, generator: torch.Generator) -> dict:
    """G's inputs for a batch of clean images: each crappified from its own draw seed."""
    from ganvas.data.crappify import crappify_batch

    return {"image": crappify_batch(batch["image"], config.crappify_settings(), batch["seed"])}


def held_out_pairs(config, dataset, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(damaged, clean) float [n', C, ...] in [-1, 1] for up to n images of `split` (the
    training images when the split is empty), spread over it, with the fixed damage of epoch
    -1. Raises ConfigError when there are none."""
    from ganvas.data.crappify import crappify_batch, draw_seed
    from ganvas.data.loader import uint8_to_float

    indices = dataset.split_indices(split)
    if len(indices) == 0:
        indices = dataset.split_indices("train")
    if len(indices) == 0:
        raise ConfigError(f"the dataset {dataset.path} has no images in split {split!r}")
    chosen = indices[np.unique(np.linspace(0, len(indices) - 1, min(n, len(indices))).round()
                               .astype(np.int64))]  # fmt: skip
    clean = uint8_to_float(dataset.images[chosen])
    seeds = [draw_seed(config.train.seed, int(i), -1) for i in chosen]
    return crappify_batch(clean, config.model.crappify_settings(), seeds), clean


@torch.no_grad()
def restore_batches(G: nn.Module, damaged: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """G's outputs for damaged [N, C, s, s], in eval mode, on G's device → CPU [N, C, R, R]."""
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    try:
        out = [G(damaged[i : i + batch_size].to(device)).float().cpu()
               for i in range(0, len(damaged), batch_size)]  # fmt: skip
    finally:
        G.train(was_training)
    return torch.cat(out).clamp_(-1, 1)


def sample_sheet(config, dataset, n: int):
    """A function of G drawing the run's sample sheet: for n fixed held-out images (the val
    split, else the training images), damaged (nearest-upsampled) | restored | clean side by
    side, as images [n, C, R, 3R] in [-1, 1]."""
    damaged, clean = held_out_pairs(config, dataset, "val", n)
    shown = F.interpolate(damaged, size=clean.shape[-2:], mode="nearest")

    def draw(G: nn.Module) -> torch.Tensor:
        return torch.cat([shown, restore_batches(G, damaged), clean], dim=3)

    return draw


def validate(G: nn.Module, config, dataset, split: str, n: int) -> dict[str, float]:
    """PSNR, SSIM and the perceptual distance of G's restorations of up to n held-out images
    (`ganvas.metrics.restoration`)."""
    from ganvas.metrics.restoration import restoration_scores

    damaged, clean = held_out_pairs(config, dataset, split, n)
    return restoration_scores(restore_batches(G, damaged), clean)


FAMILY = register_family(
    Family(
        name="restore",
        config=RestoreConfig,
        generator=Generator,
        discriminator=Discriminator,
        paper="fastai course-v3 lesson 7 (crappify, feature loss, GAN switcher); DeOldify NoGAN",
        objective=RestoreObjective,
        make_inputs=damaged_inputs,
        input_kind="image",
        sample_sheet=sample_sheet,
        validate=validate,
    )
)
