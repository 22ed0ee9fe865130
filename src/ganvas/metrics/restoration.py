"""How close restored images are to the clean ones: PSNR, SSIM (torchmetrics) and a
perceptual distance.

    scores = restoration_scores(restored, clean)   # float [N, C, H, W] in [-1, 1] each
    # {'psnr': dB, higher is better; 'ssim': 0..1, higher is better; 'perceptual': lower is better}

PSNR and SSIM are computed per image on the pictures as a user sees them (rounded to uint8,
then in [0, 1]) and averaged. The perceptual distance is LPIPS's recipe on the offline
EfficientNet-Lite0 (no LPIPS/VGG weights install here, and no learned linear heads): at each
of the network's four stages, features unit-normalised over channels, squared differences
averaged over positions, summed over stages; images below 32 px are upsampled to 32 first.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ganvas.errors import ConfigError

INSTALL_HINT = 'install torchmetrics with `pip install "ganvas[restore]"`'
MIN_SIDE = 32


def _unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → the uint8 levels a saved picture has, in [0, 1]."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round() / 255


def psnr(restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean over images of 10·log10(1 / MSE) in dB: [N, C, H, W] and [N, C, H, W] → scalar."""
    try:
        from torchmetrics.functional.image import peak_signal_noise_ratio
    except ImportError:
        raise ConfigError(f"PSNR needs torchmetrics: {INSTALL_HINT}") from None
    return peak_signal_noise_ratio(_unit(restored), _unit(clean), data_range=1.0,
                                   dim=(1, 2, 3), reduction="elementwise_mean")  # fmt: skip


def ssim(restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean SSIM (Gaussian window 11, σ 1.5; smaller for tiny images) over images."""
    try:
        from torchmetrics.functional.image import structural_similarity_index_measure
    except ImportError:
        raise ConfigError(f"SSIM needs torchmetrics: {INSTALL_HINT}") from None
    side = min(clean.shape[-2:])
    kernel = 11 if side >= 11 else max(3, side - (1 - side % 2))  # odd, at most the side
    return structural_similarity_index_measure(_unit(restored), _unit(clean), data_range=1.0,
                                               kernel_size=kernel)  # fmt: skip


@functools.lru_cache(maxsize=2)
def _feature_network(device: str):
    from ganvas.models.features import EfficientNetPyramid

    return EfficientNetPyramid(input_side=0).to(device)


@torch.no_grad()
def perceptual_distance(restored: torch.Tensor, clean: torch.Tensor,
                        batch_size: int = 64) -> torch.Tensor:  # fmt: skip
    """LPIPS-style distance on EfficientNet-Lite0 features (module docstring), mean over images."""
    network = _feature_network(str(restored.device))
    total = torch.zeros((), device=restored.device)
    for start in range(0, len(clean), batch_size):
        pair = torch.cat([restored[start : start + batch_size], clean[start : start + batch_size]])
        if pair.shape[1] == 1:
            pair = pair.expand(-1, 3, -1, -1)
        if min(pair.shape[-2:]) < MIN_SIDE:
            pair = F.interpolate(pair, size=(MIN_SIDE, MIN_SIDE), mode="bilinear",
                                 align_corners=False)  # fmt: skip
        for features in network(pair.float()):
            a, b = F.normalize(features, dim=1).chunk(2)
            total += (a - b).square().sum(1).mean((1, 2)).sum()
    return total / len(clean)


def restoration_scores(restored: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """{'psnr', 'ssim', 'perceptual'} of restored vs clean, float [N, C, H, W] in [-1, 1]."""
    if restored.shape != clean.shape:
        raise ValueError(f"restored images {tuple(restored.shape)} and clean ones "
                         f"{tuple(clean.shape)} differ in shape")  # fmt: skip
    return {"psnr": float(psnr(restored, clean)), "ssim": float(ssim(restored, clean)),
            "perceptual": float(perceptual_distance(restored, clean))}  # fmt: skip


def bicubic(damaged: torch.Tensor, side: int) -> torch.Tensor:
    """The baseline: damaged [N, C, s, s] resized to `side` by bicubic interpolation, in [-1, 1]."""
    if damaged.shape[-1] == side:
        return damaged.clone()
    resized = F.interpolate(damaged, size=(side, side), mode="bicubic", align_corners=False)
    return resized.clamp(-1, 1)
