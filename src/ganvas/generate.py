"""Sampling from a trained run: seeded, reproducible, as tensors, grids or PNG files.

g = ganvas.load("runs/a")              # newest checkpoint, G_ema when the run kept one
imgs = g.sample(16, seed=0)            # uint8 [16, C, H, W], values 0..255
imgs = g.sample(16, seed=0, dtype=torch.float32)   # float in [0, 1]
g.save_grid("grid.png", n=64, seed=7)
imgs = g.sample(16, seed=0, truncation=0.7)       # StyleGAN2: typical, less varied images
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganvas.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_newest_checkpoint,
    resolve_checkpoint,
)
from ganvas.config import Config, ConfigError
from ganvas.grid import image_grid, labelled_grid, to_pil
from ganvas.inference import (
    latents,
    resolve_device,
    run_generator,
    supports_truncation,
    to_uint8,
    to_uint8_nhwc,
)
from ganvas.io import save_image_atomic
from ganvas.models.registry import build_models, get_family
from ganvas.rundir import RunDir


@dataclass
class GeneratorPipeline:
    """A trained generator plus what is needed to draw reproducible samples from it."""

    G: nn.Module
    config: Config
    step: int
    weights: str  # 'G_ema' or 'G'
    device: torch.device
    class_names: list[str] = field(default_factory=list)  # the run's classes, in label order
    onnx: Any = None  # an export.OnnxGenerator: sample through onnxruntime (backend='onnx')

    @property
    def backend(self) -> str:
        return "torch" if self.onnx is None else "onnx"

    @property
    def z_dim(self) -> int:
        return self.config.model.z_dim

    def set_resolution(self, resolution: int) -> None:
        """Growing GANs (ProGAN): sample at any finished resolution up to the reached one."""
        if not get_family(self.config.model.family).grows:
            raise ValueError(f"{self.config.model.family} does not grow; it samples at one size")
        if self.onnx is not None:
            raise ValueError("an exported (onnx) generator has one resolution; sample other "
                             "stages with the torch backend")  # fmt: skip
        self.G.set_stage(resolution, 1.0)

    def latents(self, n: int, seed: int = 0) -> torch.Tensor:
        """The z vectors [n, z_dim] `sample(n, seed)` uses: drawn on the CPU, so equal on
        every device."""
        return latents(n, self.z_dim, seed)

    @property
    def num_classes(self) -> int:
        """Classes of a conditional generator; 0 when unconditional."""
        return self.config.model.num_classes if self.conditional else 0

    @property
    def conditional(self) -> bool:
        return get_family(self.config.model.family).conditional

    @property
    def supports_truncation(self) -> bool:
        """Whether `truncation=ψ` may be passed (style-based generators: stylegan2)."""
        return supports_truncation(self.G)

    def check_truncation(self, truncation: float | None) -> None:
        """Raise ValueError if `truncation` is set and this generator cannot use it."""
        if truncation is not None and not self.supports_truncation:
            raise ValueError(
                f"truncation={truncation}: the {self.config.model.family} family does not "
                "support truncation (stylegan2 does); leave it unset"
            )

    def generate(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        batch_size: int = 256,
        truncation: float | None = None,
    ) -> torch.Tensor:
        """z [N, z_dim] (and class labels [N] if conditional) → float images [N, C, H, W] in
        [-1, 1], the generator's raw range, on the CPU. `truncation`: see `sample`."""
        if self.conditional and labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        self.check_truncation(truncation)
        if self.onnx is not None:
            return self.onnx.generate(z, labels, batch_size, truncation)
        return run_generator(self.G, z, labels, batch_size, self.device, truncation)

    def sample(
        self,
        n: int,
        seed: int = 0,
        dtype: torch.dtype = torch.uint8,
        batch_size: int = 256,
        labels: torch.Tensor | None = None,
        truncation: float | None = None,
    ) -> torch.Tensor:
        """Draw `n` images; the same `seed` always gives the same images.

        Args:
            n: number of images.
            seed: seeds the latent vectors.
            dtype: torch.uint8 (default) for values 0..255, or a float dtype for values in [0, 1].
            batch_size: images per forward pass; does not change the result.
            labels: class of each image (int64 [n]) for conditional generators; by default
                image i gets class i mod num_classes.
            truncation: ψ, for generators that support it (`supports_truncation`): each w is
                pulled toward the average w, w_avg + ψ·(w − w_avg). 1 = off, 0 = the average
                image for every seed; 0.5–0.7 trades variety for typical, cleaner images.
                None (default): the generator's own call (no truncation).

        Returns:
            A CPU tensor [n, C, H, W].

        Raises:
            ValueError: n < 1, or `truncation` for a generator without truncation.
        """
        if n < 1:
            raise ValueError(f"n={n} must be >= 1")
        if self.conditional and labels is None:
            labels = torch.arange(n) % self.num_classes
        img = self.generate(self.latents(n, seed), labels, batch_size, truncation)
        if dtype == torch.uint8:
            return to_uint8(img)
        return ((img + 1) / 2).to(dtype)

    def sample_numpy(
        self,
        n: int,
        seed: int = 0,
        labels: torch.Tensor | None = None,
        truncation: float | None = None,
    ) -> np.ndarray:
        """Like `sample` but uint8 [n, H, W, C] numpy, ready for PIL or a contact sheet."""
        images = self.sample(n, seed, labels=labels, truncation=truncation)
        return images.permute(0, 2, 3, 1).numpy()

    def class_index(self, name: str | int) -> int:
        """The label of a class given by name or number.

        Raises:
            ValueError: no such class; the message lists the run's classes.
        """
        if not self.conditional:
            raise ValueError("this generator is not class-conditional")
        if isinstance(name, int) or str(name).isdigit():
            index = int(name)
            if 0 <= index < self.num_classes:
                return index
        elif name in self.class_names:
            return self.class_names.index(name)
        raise ValueError(f"no class {name!r}; classes: {', '.join(self.class_names)}")

    def save_grid(
        self,
        path: str | os.PathLike,
        n: int = 64,
        seed: int = 0,
        nrow: int | None = None,
        padding: int = 2,
        classes: list[str | int] | None = None,
        truncation: float | None = None,
    ) -> Path:
        """Write a PNG contact sheet of `n` samples. For a conditional generator each row is
        one class (all, or those in `classes`), labelled with its name; n is rounded up to
        fill the rows. `truncation`: see `sample`."""
        if not self.conditional:
            pictures = self.sample_numpy(n, seed, truncation=truncation)
            grid = image_grid(pictures, nrow=nrow, padding=padding)
        else:
            chosen = [self.class_index(c) for c in (classes or range(self.num_classes))]
            per_class = -(-n // len(chosen))
            labels = torch.tensor(chosen).repeat_interleave(per_class)
            images = self.sample_numpy(len(labels), seed, labels=labels, truncation=truncation)
            names = [self._row_names()[i] for i in chosen]
            grid = labelled_grid(images, names, padding=padding)
        save_image_atomic(path, to_pil(grid))
        return Path(path)

    def class_swap(self, n: int = 8, seed: int = 0, truncation: float | None = None) -> np.ndarray:
        """The same n latent vectors (columns) rendered as every class (rows): uint8
        [num_classes · n, H, W, C] in row order (seeds/001's class-swap figure)."""
        if not self.conditional:
            raise ValueError("class swap needs a class-conditional generator")
        z = self.latents(n, seed).repeat(self.num_classes, 1)
        labels = torch.arange(self.num_classes).repeat_interleave(n)
        return to_uint8_nhwc(self.generate(z, labels, truncation=truncation))

    def save_class_swap(
        self,
        path: str | os.PathLike,
        n: int = 8,
        seed: int = 0,
        truncation: float | None = None,
    ) -> Path:
        grid = labelled_grid(self.class_swap(n, seed, truncation), self._row_names())
        save_image_atomic(path, to_pil(grid))
        return Path(path)

    def save_per_class(
        self,
        folder: str | os.PathLike,
        n_per_class: int,
        seed: int = 0,
        classes: list[str | int] | None = None,
        truncation: float | None = None,
    ) -> dict[str, list[Path]]:
        """Write folder/<class name>/000000.png ... for each class (all by default).

        Every class uses the same latent vectors, so file i of each class shows the same
        z drawn as that class."""
        folder = Path(folder)
        chosen = [self.class_index(c) for c in (classes or range(self.num_classes))]
        written = {}
        for index in chosen:
            name = self._row_names()[index]
            labels = torch.full((n_per_class,), index, dtype=torch.long)
            pictures = self.sample_numpy(n_per_class, seed, labels=labels, truncation=truncation)
            target = folder / _safe_folder_name(name)
            target.mkdir(parents=True, exist_ok=True)
            written[name] = []
            for i, picture in enumerate(pictures):
                path = target / f"{i:06d}.png"
                save_image_atomic(path, to_pil(picture))
                written[name].append(path)
        return written

    def _row_names(self) -> list[str]:
        if len(self.class_names) == self.num_classes:
            return self.class_names
        return [str(i) for i in range(self.num_classes)]

    def save_images(
        self, folder: str | os.PathLike, n: int, seed: int = 0, truncation: float | None = None
    ) -> list[Path]:
        """Write `n` samples as folder/000000.png, 000001.png, ... (`truncation`: see `sample`)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, picture in enumerate(self.sample_numpy(n, seed, truncation=truncation)):
            path = folder / f"{i:06d}.png"
            save_image_atomic(path, to_pil(picture))
            paths.append(path)
        return paths


def load_network(
    run_dir: str | os.PathLike,
    part: str = "G",
    checkpoint: str | int | None = None,
    ema: bool = True,
) -> tuple[nn.Module, Config, Any, str]:
    """Rebuild one network of a run through the registry and load its safetensors weights
    (never unpickling). Growing families are set to the stage the checkpoint had reached.

    Args:
        part: "G" (G_ema when `ema` and the run kept it) or "D".

    Returns:
        (network on the CPU, the run's config, the loaded checkpoint, the weights' name).

    Raises:
        CheckpointError: no run, no such checkpoint, no config.yaml, or no such weights.
        ConfigError: config.yaml is invalid or was written by a newer ganvas.
    """
    folder = resolve_checkpoint(run_dir, checkpoint)
    config = RunDir(run_dir).read_config()
    G, D = build_models(config.model)
    names = ("D",) if part == "D" else ("G_ema", "G") if ema else ("G",)
    if checkpoint is None:  # the newest that loads: a damaged one is skipped with a warning
        saved = load_newest_checkpoint(run_dir, device="cpu", names=names)
        folder = saved.path
    else:
        saved = load_checkpoint(folder, device="cpu", names=names)
    name = next((n for n in names if n in saved.weights), names[-1])
    if name not in saved.weights:
        raise CheckpointError(f"{folder} has no {name}.safetensors")
    network = D if part == "D" else G
    network.load_state_dict(saved.weights[name])
    if get_family(config.model.family).grows:  # it works at the stage it had reached
        network.set_stage(int(saved.state.get("resolution", config.model.resolution)),
                          float(saved.state.get("alpha", 1.0)))  # fmt: skip
    return network, config, saved, name


def load(
    run_dir: str | os.PathLike,
    checkpoint: str | int | None = None,
    device: str | torch.device = "auto",
    ema: bool = True,
    backend: str = "torch",
    onnx_model: str | os.PathLike | None = None,
) -> GeneratorPipeline:
    """Load a run's generator for sampling, without running any code from the checkpoint.

    Args:
        run_dir: a run directory written by `ganvas train`.
        checkpoint: step number or checkpoint folder; the newest by default.
        device: where the generator runs; 'auto' is cuda when available, else cpu.
        ema: use the moving-average weights (G_ema) when the run kept them.
        backend: 'torch', or 'onnx' to sample through onnxruntime (CPU) with the same
            latents: from `onnx_model` (written by `ganvas export`) when given, else
            exported now to a temporary file (docs/speed.md).

    Returns:
        The generator, ready to sample.

    Raises:
        CheckpointError: the run or the checkpoint does not exist or is incomplete.
        ConfigError: an unavailable device, a config.yaml this ganvas cannot read, or a run of
            an image family (restore: see `ganvas.restore`).
    """
    if backend not in ("torch", "onnx"):
        raise ConfigError(f"backend={backend!r} is not known; choose torch or onnx")
    if onnx_model is not None and backend != "onnx":
        raise ConfigError("an onnx model is given but the backend is torch: pass --backend onnx")
    device = resolve_device(device)
    G, config, saved, name = load_network(run_dir, "G", checkpoint, ema)
    if get_family(config.model.family).takes_images:
        raise ConfigError(
            f"{run_dir} is a {config.model.family} run: its generator takes images, not latent "
            f"vectors; use `ganvas restore {run_dir} IMAGES... --out DIR`, `ganvas upscale --with "
            f"{run_dir} GAN_RUN` or ganvas.restore.load_restorer"
        )
    G = G.to(device).eval().requires_grad_(False)
    pipeline = GeneratorPipeline(G=G, config=config, step=saved.step, weights=name,
                                 device=device, class_names=RunDir(run_dir).class_names())  # fmt: skip
    if backend == "onnx":
        pipeline.onnx = _onnx_generator(run_dir, checkpoint, ema, onnx_model)
        pipeline.onnx.check_matches(config.model.z_dim, pipeline.conditional,
                                    pipeline.supports_truncation)  # fmt: skip
    return pipeline


def _onnx_generator(
    run_dir: str | os.PathLike,
    checkpoint: str | int | None,
    ema: bool,
    onnx_model: str | os.PathLike | None,
) -> Any:
    """An OnnxGenerator from `onnx_model`, or from an export of the run made now (into a
    temporary folder: onnxruntime keeps the model in memory, nothing is left behind)."""
    import tempfile

    from ganvas.export import OnnxGenerator, export_generator

    if onnx_model is not None:
        return OnnxGenerator(onnx_model)
    with tempfile.TemporaryDirectory(prefix="ganvas-onnx-") as folder:
        exported = export_generator(run_dir, Path(folder) / "G.onnx", "onnx", checkpoint, ema)
        return OnnxGenerator(exported.path)


def _safe_folder_name(name: str) -> str:
    """A class name as a folder name: path separators and control characters replaced."""
    cleaned = re.sub(r"[\\/\x00-\x1f:*?\"<>|]", "_", name).strip(". ")
    return cleaned or "_"
