"""A trained generator as a file that runs without ganvas: ONNX (onnxruntime, any language)
or TorchScript (libtorch, C++).

    export_generator("runs/a", "g.onnx")                    # G_ema when kept, else G
    g = OnnxGenerator("g.onnx")                             # onnxruntime on the CPU
    img = g.generate(z, labels, truncation=0.7)             # float [N, C, H, W] in [-1, 1]

The exported graph takes `z` float32 [N, z_dim], `c` int64 [N] (class-conditional families
only) and `truncation` float32 [] (families with truncation, stylegan2: ψ, 1 = off), and gives
`images` float32 [N, C, H, W] clamped to [-1, 1], as `run_generator` does. N is free (dynamic
batch). The network runs in eval mode: BatchNorm with its running statistics, dropout off,
StyleGAN2 with its constant noise maps, spectral norms folded into the weights. A growing
family (ProGAN) exports the stage and fade-in α its checkpoint had reached.

ONNX uses torch's TorchScript-based exporter (`torch.onnx.export(..., dynamo=False)`): it is
in every torch ganvas supports (2.4 on) and needs no extra package; the dynamo-based one needs
`onnxscript` and is the default only from torch 2.9. Every family's generator traces.
"""

from __future__ import annotations

import copy
import inspect
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ganvas.errors import ConfigError
from ganvas.inference import supports_truncation
from ganvas.io import atomic_path

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17  # onnxruntime >= 1.16 runs it; torch 2.4's exporter writes it
EXPORT_BATCH = 2  # the example batch the graph is traced with (any N runs afterwards)


class ExportError(ConfigError):
    """The generator cannot be exported as asked (format, destination, an operator)."""


@dataclass
class ExportResult:
    path: Path
    format: str
    step: int
    weights: str  # 'G_ema' or 'G'
    inputs: list[str]  # the graph's input names, in order
    note: str = ""  # e.g. the stage a growing family was exported at


class ExportableGenerator(nn.Module):
    """G with the exported signature: (z, c?, truncation?) → images clamped to [-1, 1]."""

    def __init__(self, G: nn.Module, conditional: bool) -> None:
        super().__init__()
        self.G, self.conditional = G, conditional
        self.truncation = supports_truncation(G)

    def input_names(self) -> list[str]:
        return ["z", *(["c"] if self.conditional else []),
                *(["truncation"] if self.truncation else [])]  # fmt: skip

    def forward(self, z: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        c = rest[0] if self.conditional else None
        extra = {"truncation": rest[-1]} if self.truncation else {}
        return self.G(z, c, **extra).clamp(-1, 1)

    def example_inputs(self, z_dim: int, num_classes: int) -> tuple[torch.Tensor, ...]:
        inputs = [torch.randn(EXPORT_BATCH, z_dim, generator=torch.Generator().manual_seed(0))]
        if self.conditional:
            inputs.append(torch.arange(EXPORT_BATCH) % max(1, num_classes))
        if self.truncation:
            inputs.append(torch.tensor(0.7))
        return tuple(inputs)


def prepare_for_export(G: nn.Module) -> nn.Module:
    """A copy of G in eval mode without gradients, its parametrizations (spectral norm)
    folded into plain weights: their power iteration has no ONNX counterpart, and in eval
    mode it does not change the weights anyway."""
    G = copy.deepcopy(G).cpu().eval().requires_grad_(False)
    for module in G.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return G


def export_generator(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    format: str = "onnx",
    checkpoint: str | int | None = None,
    ema: bool = True,
) -> ExportResult:
    """Write a run's generator to `out` (to a temporary name beside it, then renamed).

    Args:
        run_dir: a run directory written by `ganvas train`.
        out: the file to write (.onnx for ONNX, .pt for TorchScript, by convention).
        format: 'onnx' or 'torchscript'.
        checkpoint: step number or checkpoint folder; the newest by default.
        ema: the moving-average weights (G_ema) when the run kept them.

    Returns:
        Where it went, which weights, and the graph's inputs.

    Raises:
        ExportError: an unknown format, an unwritable destination, or an operator the
            exporter cannot translate (the message names it).
        CheckpointError: no run, no such checkpoint.
    """
    if format not in FORMATS:
        raise ExportError(f"--format {format!r} is not known; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    check_writable(out)
    from ganvas.generate import load_network
    from ganvas.models.registry import get_family

    G, config, saved, weights = load_network(run_dir, "G", checkpoint, ema)
    family = get_family(config.model.family)
    if getattr(family, "takes_images", False):
        raise ExportError(f"{run_dir} is a {config.model.family} run: its generator takes "
                          "images, not latents, and `ganvas export` writes latent generators "
                          "only; use `ganvas restore` / `ganvas upscale` with the run")  # fmt: skip
    model = ExportableGenerator(prepare_for_export(G), family.conditional)
    inputs = model.example_inputs(config.model.z_dim, config.model.num_classes)
    note = ""
    if family.grows:
        note = (f"{config.model.family} exported at the stage its checkpoint had reached: "
                f"{int(saved.state.get('resolution', config.model.resolution))} px, α "
                f"{float(saved.state.get('alpha', 1.0)):g}")  # fmt: skip
    try:
        with atomic_path(out, suffix=out.suffix) as tmp:
            if format == "onnx":
                _export_onnx(model, inputs, tmp, config, saved.step, weights)
            else:
                _export_torchscript(model, inputs, tmp)
    except PermissionError as err:
        raise ExportError(f"cannot write {out}: {err.strerror}; choose another --out") from err
    except RuntimeError as err:  # torch.onnx's errors (an unsupported operator) are these
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"the {config.model.family} generator cannot be exported as "
                          f"{format}: {first}") from err  # fmt: skip
    return ExportResult(out, format, saved.step, weights, model.input_names(), note)


def check_writable(out: Path) -> None:
    """Raise ExportError unless `out` can be written as a file."""
    if out.is_dir():
        raise ExportError(f"--out {out} is a directory; give a file name such as {out / 'g.onnx'}")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {out}: {parent} is not a writable directory; "
                          "choose another --out")  # fmt: skip


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ExportError(f"ONNX needs the {name} package: pip install 'ganvas[export]'") from err


def _export_onnx(
    model: ExportableGenerator, inputs: tuple, path: Path, config: Any, step: int, weights: str
) -> None:
    onnx = _import("onnx")

    names = model.input_names()
    dynamic = {name: {0: "batch"} for name in names if name != "truncation"}
    options = (
        {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    )
    with warnings.catch_warnings():  # tracer notes on sizes that are constants of the network
        warnings.simplefilter("ignore")
        torch.onnx.export(model, inputs, str(path), input_names=names, output_names=["images"],
                          dynamic_axes={**dynamic, "images": {0: "batch"}},
                          opset_version=ONNX_OPSET, **options)  # fmt: skip
    graph = onnx.load(str(path))
    metadata = {"producer": "ganvas", "family": config.model.family, "step": str(step),
                "weights": weights, "z_dim": str(config.model.z_dim),
                "num_classes": str(config.model.num_classes)}  # fmt: skip
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


def _export_torchscript(model: ExportableGenerator, inputs: tuple, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, inputs, check_trace=False)
    torch.jit.save(traced, str(path))


class OnnxGenerator:
    """An exported generator run by onnxruntime: the same `generate` as the PyTorch path."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        ort = _import("onnxruntime")

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(f"--onnx-model {path} does not exist; write one with "
                              "`ganvas export RUN --out g.onnx`")  # fmt: skip
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.metadata = self.session.get_modelmeta().custom_metadata_map

    def check_matches(self, z_dim: int, conditional: bool, truncation: bool) -> None:
        """Raise ExportError when the model was exported from a different kind of generator."""
        saved = self.metadata.get("z_dim")
        if saved is not None and int(saved) != z_dim:
            raise ExportError(f"{self.path} takes z of size {saved}, this run's is {z_dim}")
        if ("c" in self.inputs) != conditional or ("truncation" in self.inputs) != truncation:
            raise ExportError(f"{self.path} has inputs {self.inputs}, which do not fit this run")

    def generate(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        batch_size: int = 256,
        truncation: float | None = None,
    ) -> torch.Tensor:
        """float32 [N, C, H, W] in [-1, 1] on the CPU, for z [N, z_dim] (and labels [N])."""
        if "c" in self.inputs and (labels is None or len(labels) != len(z)):
            raise ValueError(f"{self.path} is class-conditional: pass one label per latent")
        outputs = []
        for start in range(0, len(z), batch_size):
            feeds = {"z": z[start : start + batch_size].float().numpy()}
            if "c" in self.inputs:
                feeds["c"] = labels[start : start + batch_size].long().numpy()
            if "truncation" in self.inputs:
                psi = 1.0 if truncation is None else float(truncation)
                feeds["truncation"] = np.asarray(psi, dtype=np.float32)
            outputs.append(torch.from_numpy(self.session.run(["images"], feeds)[0]))
        return torch.cat(outputs)
