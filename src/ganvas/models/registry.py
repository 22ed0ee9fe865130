"""Registry of GAN families: name → (config dataclass, Generator, Discriminator).

A family file defines a frozen config dataclass derived from `ModelConfig`, a `Generator`
and a `Discriminator` (both `nn.Module`s built from that config), and calls
`register_family`. The trainer and the sampler only ever go through this registry.

The contract every family keeps:
    G = Generator(cfg);  G.z_dim;  G(z [N, z_dim], c [N] int64 | None) → img [N, C, R, R] in [-1, 1]
    D = Discriminator(cfg);  D(img, c | None) → logits [N]
        or, for families with an auxiliary classifier, (logits [N], class_logits [N, K])
Unconditional families accept and ignore c; conditional ones (Family.conditional) need it.
Image-to-image families (`Family.input_kind == "image"`, restore) take G(image [N, C, r, r])
instead of latents; their runs are used through `ganvas.restore`, not `ganvas.load`.
Some G output layers are linear (ProGAN, StyleGAN2, R3GAN), trained toward [-1, 1]: the
samplers clamp (`ganvas.inference.run_generator`). Growing families (ProGAN, `Family.grows`)
also have `set_stage(resolution, alpha)` on G and D. A G with `supports_truncation = True`
takes `truncation=ψ` (StyleGAN2).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganvas.errors import ConfigError, check


@dataclass(frozen=True)
class ModelConfig:
    """Fields every family shares. `resolution` / `channels` left as None are taken from the
    dataset when training starts; the resolved values are saved with the run."""

    family: str = "dcgan"
    resolution: int | None = None  # output side in pixels, a power of two
    channels: int | None = None  # 1 (grey) or 3 (RGB)
    z_dim: int = 100
    num_classes: int = 0  # classes of a conditional family; 0 = taken from the dataset

    def __post_init__(self) -> None:
        if self.resolution is not None:
            check(
                self.resolution >= 8 and math.log2(self.resolution).is_integer(),
                f"model.resolution={self.resolution} must be a power of two >= 8",
            )
        if self.channels is not None:
            check(self.channels in (1, 3), f"model.channels={self.channels} must be 1 or 3")
        check(self.z_dim >= 1, f"model.z_dim={self.z_dim} must be >= 1")
        check(self.num_classes >= 0, f"model.num_classes={self.num_classes} must be >= 0")


Batch = dict[str, torch.Tensor]  # 'image' [N, C, H, W] in [-1, 1], 'label' [N] when labelled


def latent_inputs(
    batch: Batch, config: ModelConfig, generator: torch.Generator, conditional: bool
) -> dict[str, torch.Tensor | None]:
    """G's inputs for as many fakes as `batch` has images: z ~ N(0, I) and, for conditional
    families, class labels drawn uniformly (not the batch's: every class gets trained)."""
    n, device = len(batch["image"]), batch["image"].device
    z = torch.randn(n, config.z_dim, generator=generator, device=device)
    if not conditional:
        return {"z": z, "c": None}
    c = torch.randint(config.num_classes, (n,), generator=generator, device=device)
    return {"z": z, "c": c}


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class Family:
    """What the trainer, the planner and the sampler know of a family, and nothing more.

    `objective` builds what each training phase computes (default: the classic terms of
    `ganvas.objectives.classic`); `make_inputs` turns a real batch into G's keyword inputs;
    `parameter_count(config, resolution)` gives (G, D) parameters in use at a resolution
    (growing families use fewer at their early stages). `default_augment` is the D-input
    augmentation a run gets when `train.augment` is 'auto' (the default).
    """

    name: str
    config: type[ModelConfig]
    generator: type[nn.Module]
    discriminator: type[nn.Module]
    paper: str = ""
    conditional: bool = False  # G(z, c) and D(img, c) need class labels c
    grows: bool = False  # G and D have set_stage(resolution, alpha) (progressive growing)
    objective: Callable[..., Any] | None = None  # None: the classic objective
    make_inputs: Callable[[Batch, ModelConfig, torch.Generator], dict] | None = None
    parameter_count: Callable[[ModelConfig, int], tuple[int, int]] | None = None
    default_augment: str = "none"  # what train.augment 'auto' means: none, diffaugment, ada
    # 'latent': G(z, c) draws images from noise. 'image': G(image) maps images to images
    # (restoration); its batches carry a 'seed' per image, and the two hooks below replace
    # the fixed-noise grids and FID: sample_sheet(config, dataset, n) gives a function of G
    # that draws the sample sheet, validate(G, config, dataset, split, n) the eval scores.
    input_kind: str = "latent"
    sample_sheet: Callable[..., Callable[[nn.Module], torch.Tensor]] | None = None
    validate: Callable[..., dict[str, float]] | None = None

    @property
    def takes_images(self) -> bool:
        return self.input_kind == "image"

    def g_inputs(self, batch: Batch, config: ModelConfig, generator: torch.Generator) -> dict:
        """G's keyword inputs for the fakes of one step: G(**inputs)."""
        if self.make_inputs is not None:
            return self.make_inputs(batch, config, generator)
        return latent_inputs(batch, config, generator, self.conditional)

    def count_parameters(self, config: ModelConfig, resolution: int) -> tuple[int, int]:
        """(G, D) parameters used at `resolution` by a model built from `config`."""
        if self.parameter_count is not None:
            return self.parameter_count(config, resolution)
        G, D = self.generator(config), self.discriminator(config)
        return _numel(G), _numel(D)


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    if family.name in _FAMILIES:
        raise ValueError(f"GAN family {family.name!r} is registered twice")
    if not issubclass(family.config, ModelConfig):
        raise TypeError(f"{family.name}: config must derive from ModelConfig")
    if family.input_kind not in ("latent", "image"):
        raise ValueError(f"{family.name}: input_kind must be 'latent' or 'image'")
    if family.input_kind == "image" and (family.sample_sheet is None or family.validate is None):
        raise ValueError(f"{family.name}: an image family needs sample_sheet and validate")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Remove a family registered from outside ganvas (a plugin being unloaded, a test)."""
    _FAMILIES.pop(name, None)


def get_family(name: str) -> Family:
    _load_builtin_families()
    if name not in _FAMILIES:
        close = difflib.get_close_matches(name, list(_FAMILIES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"model.family={name!r} is not a known GAN family{hint}; "
            f"choose one of {', '.join(sorted(_FAMILIES))}"
        )
    return _FAMILIES[name]


def family_config_class(name: str) -> type[ModelConfig]:
    return get_family(name).config


def list_families() -> list[str]:
    _load_builtin_families()
    return sorted(_FAMILIES)


def build_models(config: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """Construct (G, D) for a fully resolved model config."""
    if config.resolution is None or config.channels is None:
        raise ConfigError("model.resolution and model.channels must be set before building")
    family = get_family(config.family)
    return family.generator(config), family.discriminator(config)


BUILTIN_FAMILY_MODULES = (
    "dcgan",
    "wgan",
    "wgan_gp",
    "sngan",
    "biggan",
    "cdcgan",
    "acgan",
    "projection",
    "progan",
    "r3gan",
    "stylegan2",
    "fastgan",
    "projected",
    "restore",
)


def _load_builtin_families() -> None:
    import importlib

    for name in BUILTIN_FAMILY_MODULES:  # each module registers itself on import
        importlib.import_module(f"ganvas.models.{name}")
