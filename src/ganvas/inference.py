"""Running a generator outside its training step, shared by the trainer and the sampler.

    device = resolve_device("auto")                      # cuda when available, else cpu
    img = run_generator(pick_generator(G, G_ema), z, c)  # float [N, C, H, W] in [-1, 1], CPU
    pictures = to_uint8(img)                             # uint8 [N, C, H, W]
    img = run_generator(G, z, truncation=0.7)            # style-based G: w pulled toward the mean

A generator supports truncation when its class says `supports_truncation = True` and its
forward takes `truncation=ψ` (StyleGAN2: w' = w_avg + ψ·(w − w_avg); 1 = off).

Nothing here imports `ganvas.training`, so sampling code stays free of the trainer.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ganvas.errors import ConfigError

DEVICES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device for a device setting: 'auto' is cuda when a GPU is available, else
    cpu; any other name must be a device this machine has.

    Raises:
        ConfigError: an unknown name, or a GPU that is not there.
    """
    if isinstance(name, str) and name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device={name!r} is not a device; use {DEVICES}") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} but no CUDA GPU is available; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={name!r} but this machine has {torch.cuda.device_count()} CUDA GPU(s)"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={name!r} but MPS is not available; use cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device={name!r} is not supported; use {DEVICES}")
    return device


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images [N, C, H, W] in [-1, 1] → uint8 [N, C, H, W] on the same device:
    clamped, scaled by (x + 1) · 127.5 and rounded to the nearest value."""
    scaled = (images.detach().float().clamp(-1, 1) + 1) * 127.5
    return scaled.round_().to(torch.uint8)


def to_uint8_nhwc(images: torch.Tensor) -> np.ndarray:
    """Like `to_uint8`, as a CPU numpy array [N, H, W, C] (for PIL, grids and metrics)."""
    return to_uint8(images).permute(0, 2, 3, 1).cpu().numpy()


def latents(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """n latent vectors [n, z_dim] ~ N(0, I) for `seed`, drawn on the CPU so that they are
    the same on every device."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


def supports_truncation(G: nn.Module) -> bool:
    """Whether G takes `truncation=ψ` (its class sets `supports_truncation = True`)."""
    return bool(getattr(G, "supports_truncation", False))


def check_truncation(G: nn.Module, truncation: float | None) -> None:
    """Raise ValueError unless `truncation` is None or a finite ψ that G supports."""
    if truncation is None:
        return
    if not supports_truncation(G):
        raise ValueError(
            f"truncation={truncation}: {type(G).__module__}.{type(G).__name__} does not support "
            "truncation (style-based generators such as stylegan2 do); leave it unset"
        )
    if not np.isfinite(truncation):
        raise ValueError(f"truncation={truncation} must be a finite number (1 = off)")


def pick_generator(G: nn.Module, G_ema: nn.Module | None) -> nn.Module:
    """The generator to draw samples from: the moving average G_ema when one is kept."""
    return G_ema if G_ema is not None else G


@torch.no_grad()
def run_generator(
    G: nn.Module,
    z: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    truncation: float | None = None,
) -> torch.Tensor:
    """G's images for latents z [N, z_dim] (and class labels [N] for conditional G).

    G runs in eval mode (BatchNorm with its running statistics) without gradients, in
    chunks of `batch_size`, on `device` (default: where G's weights are); its training flag
    is restored afterwards.

    Args:
        truncation: ψ for generators that support it (`supports_truncation`): 1 = off,
            0 = the average image, 0.5–0.7 = typical, less varied; None = G's default call.

    Returns:
        float32 [N, C, H, W] on the CPU, clamped to [-1, 1].

    Raises:
        ValueError: labels and z differ in length, or G does not support `truncation`.
    """
    if labels is not None and len(labels) != len(z):
        raise ValueError(f"{len(labels)} labels for {len(z)} latent vectors")
    check_truncation(G, truncation)
    extra = {} if truncation is None else {"truncation": float(truncation)}
    if device is None:
        device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    try:
        outputs = []
        for start in range(0, len(z), batch_size):
            zc = z[start : start + batch_size].to(device)
            c = None if labels is None else labels[start : start + batch_size].to(device)
            outputs.append(G(zc, c, **extra).float().cpu())
    finally:
        G.train(was_training)
    return torch.cat(outputs).clamp_(-1, 1)
