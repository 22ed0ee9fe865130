"""What the discriminator thinks of the generator's samples (seeds/001, section 4).

    g = ganvas.load("runs/a")
    D = load_discriminator("runs/a")
    ranked = rank_samples(g, D, n=256, k=10, seed=0)
    save_ranking_grid(ranked["top"]["images"], ranked["top"]["probabilities"], "top.png")
    for name, r in ranked.get("per_class", {}).items():      # conditional runs
        save_ranking_grid(r["top"]["images"], r["top"]["scores"], f"top_{name}.png")

Scores are D's raw outputs (logits; higher = judged more real). `probabilities` is
sigmoid(score): D's "probability real" for runs trained with a BCE-type loss; for WGAN or
hinge critics only the order of the scores means something.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganvas.generate import GeneratorPipeline, load_network
from ganvas.grid import to_pil
from ganvas.inference import resolve_device, to_uint8
from ganvas.io import save_image_atomic
from ganvas.metrics.memorization import captioned_grid


def load_discriminator(
    run_dir: str | os.PathLike,
    checkpoint: str | int | None = None,
    device: str | torch.device = "auto",
) -> nn.Module:
    """Rebuild a run's discriminator from config.yaml and D.safetensors (no unpickling).

    A growing family's D is set to the stage the checkpoint had reached (resolution and
    fade-in alpha from its state.json), like `ganvas.load` does for G.

    Args:
        run_dir: a run directory written by `ganvas train`.
        checkpoint: step number or checkpoint folder; the newest by default.
        device: where D runs; 'auto' is cuda when available, else cpu.

    Returns:
        D in eval mode with gradients off.

    Raises:
        CheckpointError: no run, no such checkpoint, no config.yaml, or no D weights.
        ConfigError: an unavailable device.
    """
    device = resolve_device(device)
    D, _, _, _ = load_network(run_dir, "D", checkpoint)
    return D.to(device).eval().requires_grad_(False)


@torch.no_grad()
def score_images(
    D: nn.Module, img: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 256
) -> torch.Tensor:
    """D's score of each image: float images [N, C, H, W] in [-1, 1] (and labels [N] for
    conditional Ds) → float32 [N] on the CPU. For a D that also returns class logits
    (ACGAN), the real/fake logit is used. D is put in eval mode."""
    D.eval()
    device = next(D.parameters()).device
    scores = []
    for start in range(0, len(img), batch_size):
        x = img[start : start + batch_size].to(device)
        c = None if labels is None else labels[start : start + batch_size].to(device)
        out = D(x, c)
        if isinstance(out, tuple | list):
            out = out[0]
        scores.append(out.float().reshape(len(x)).cpu())
    return torch.cat(scores)


def rank_samples(
    pipeline: GeneratorPipeline,
    D: nn.Module,
    n: int = 256,
    k: int = 10,
    seed: int = 0,
    labels: torch.Tensor | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Draw n samples, score them with D, and pick the k most and least convincing.

    The images are `pipeline.sample(n, seed, labels=labels)`; D sees G's float output (as in
    training, clamped to [-1, 1]), not the uint8 rounding.

    Args:
        pipeline: a loaded generator (`ganvas.load`).
        D: the run's discriminator (`load_discriminator`), on any device.
        n: samples drawn in all (for conditional runs spread over the classes: by default
            image i gets class i mod num_classes, as in `sample`).
        k: images kept at each end (fewer when a class has fewer samples).
        seed: seeds the latents.
        labels: int64 [n] classes, for conditional runs.
        batch_size: images per forward pass.

    Returns:
        A dict with `scores` float64 [n] (raw D outputs), `probabilities` [n]
        (sigmoid(scores)), `labels` int64 [n] or None, `top` and `bottom`, and for
        conditional runs `per_class` = {class name: {"top": ..., "bottom": ...}}. Each
        top/bottom entry holds `indices` [k] into the n samples, `images` uint8
        [k, C, H, W], `scores` [k] and `probabilities` [k]; `top` runs from the highest
        score down, `bottom` from the lowest up.
    """
    if n < 1 or k < 1:
        raise ValueError(f"n={n} and k={k} must be >= 1")
    if pipeline.conditional and labels is None:
        labels = torch.arange(n) % pipeline.num_classes
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for n={n} samples")
    img = pipeline.generate(pipeline.latents(n, seed), labels, batch_size)  # [n, C, H, W]
    scores = score_images(D, img, labels, batch_size).double().numpy()
    probabilities = 1 / (1 + np.exp(-scores))
    images = to_uint8(img)  # exactly as `sample` rounds

    def ends(subset: np.ndarray) -> dict[str, Any]:
        order = subset[np.argsort(-scores[subset], kind="stable")]
        picks = {"top": order[:k], "bottom": np.ascontiguousarray(order[::-1][:k])}
        return {end: {"indices": idx, "images": images[torch.from_numpy(idx)],
                      "scores": scores[idx], "probabilities": probabilities[idx]}
                for end, idx in picks.items()}  # fmt: skip

    result: dict[str, Any] = {
        "scores": scores,
        "probabilities": probabilities,
        "labels": None if labels is None else labels.numpy().astype(np.int64),
        **ends(np.arange(n)),
    }
    if pipeline.conditional:
        names = pipeline.class_names
        per_class = {}
        for c in np.unique(result["labels"]):
            name = names[c] if len(names) == pipeline.num_classes else str(int(c))
            per_class[name] = ends(np.flatnonzero(result["labels"] == c))
        result["per_class"] = per_class
    return result


def save_ranking_grid(
    images: Any,
    scores: Any,
    path: str | os.PathLike,
    nrow: int | None = None,
    fmt: str = "{:.3f}",
    padding: int = 2,
    min_size: int = 64,
) -> Path:
    """Write a PNG grid with each image's score written under it.

    Args:
        images: uint8 [N, C, H, W] (or [N, H, W, C]).
        scores: N numbers (scores or probabilities), formatted with `fmt`.
        path: the PNG to write.
        nrow: images per row; near-square by default.
        padding: pixels between cells.
        min_size: images smaller than this are enlarged by an integer factor (nearest
            neighbour) so the text fits; the cell of an h×w image is then
            (h·s + 14) × (w·s) with s = max(1, ceil(min_size / h)).
    """
    scores = np.asarray(scores, dtype=float).reshape(-1)
    grid = captioned_grid(images, [fmt.format(s) for s in scores], nrow=nrow, padding=padding,
                          min_size=min_size)  # fmt: skip
    save_image_atomic(path, to_pil(grid))
    return Path(path)
