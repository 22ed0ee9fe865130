"""Does the generator copy its training set? Nearest real image of each sample (seeds/002).

    idx, d = nearest_neighbours(samples, dataset.images)          # pixel L2, chunked
    report = memorization_report(samples, dataset.images)        # + real-vs-real reference
    save_pairs_grid(samples, dataset.images, idx, "pairs.png", distances=d)
    save_distance_histogram(report["sample_distances"], report["real_distances"], "nn.png",
                            threshold=report["threshold"])

Distances are Euclidean over all pixels with values scaled to [0, 1] (so two 64×64 RGB
images differ by at most sqrt(12288) ≈ 111), or over feature vectors when a feature
function is given. Images are uint8, either [N, H, W, C] (datasets) or [N, C, H, W]
(`GeneratorPipeline.sample`); `as_nhwc` tells them apart by where the 1 or 3 channels are.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganvas.grid import image_grid, to_pil
from ganvas.io import save_image_atomic

FeatureFn = Callable[[np.ndarray], Any]  # uint8 [B, H, W, C] → [B, F] (numpy or torch)

DEFAULT_CHUNK = 1024  # images per block: 1024 × 64² × 3 float32 is 48 MiB
DEFAULT_PERCENTILE = 1.0  # copy threshold: this percentile of real-vs-real NN distances
DEFAULT_N_REFERENCE = 1000  # reals used as queries for the real-vs-real reference


def as_nhwc(images: Any) -> np.ndarray:
    """uint8 images as a numpy [N, H, W, C] array (a view where possible: memmaps stay lazy).

    Accepts numpy arrays or torch tensors laid out [N, H, W, C] or [N, C, H, W], C in {1, 3}.

    Raises:
        ValueError: not 4-D, not uint8, or no axis that looks like 1 or 3 channels.
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images) if not isinstance(images, np.ndarray) else images
    if images.ndim != 4:
        raise ValueError(f"expected images [N, H, W, C] or [N, C, H, W], got {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (0..255), got {images.dtype}")
    if images.shape[3] in (1, 3):
        return images
    if images.shape[1] in (1, 3):
        return images.transpose(0, 2, 3, 1)
    raise ValueError(f"cannot tell the channel axis of images shaped {images.shape}")


def nearest_neighbours(
    samples: Any,
    reals: Any,
    features: FeatureFn | None = None,
    chunk: int = DEFAULT_CHUNK,
    exclude_self: bool = False,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """The nearest real image of every sample.

    Args:
        samples: uint8 [M, H, W, C] (or [M, C, H, W]) generated images.
        reals: uint8 [N, H, W, C] training images; a memory map is read block by block.
        features: optional function uint8 [B, H, W, C] → [B, F] (e.g. Inception pool
            features); distances are then taken between feature vectors. Features of all
            reals are kept in memory (N × F float32: 800 MB for 100k × 2048).
        chunk: images per block; memory is O(chunk × H·W·C), whatever N is.
        exclude_self: `samples` and `reals` are one set; image i is never its own neighbour
            (a duplicate of it elsewhere in the set still is, at distance 0).
        device: where the block distances are computed ('cuda' speeds up large N a lot);
            the winners' exact distances are recomputed on the CPU in float64.

    Returns:
        (indices int64 [M] into `reals`, distances float64 [M]). In pixel space the distance
        is the L2 norm of the difference of [0, 1]-scaled images; an exact copy gives 0.0.
    """
    samples, reals = _check_pair(samples, reals, features)
    reference = _space(reals, features, chunk)
    if exclude_self:
        if len(samples) != len(reals):
            raise ValueError(f"exclude_self needs one set, got {len(samples)} and {len(reals)}")
        return _search(reference, reference, chunk, np.arange(len(reals)), device)
    return _search(_space(samples, features, chunk), reference, chunk, device=device)


def memorization_report(
    samples: Any,
    reals: Any,
    features: FeatureFn | None = None,
    threshold: float | None = None,
    percentile: float = DEFAULT_PERCENTILE,
    n_reference: int = DEFAULT_N_REFERENCE,
    seed: int = 0,
    chunk: int = DEFAULT_CHUNK,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Nearest-neighbour distances of samples to the training set, next to the same
    distances between training images, and the share of samples that look copied.

    The reference: `n_reference` reals (a seeded random subset; all when there are fewer)
    are each matched against all the *other* reals (a real is never its own neighbour; true
    duplicates in the dataset do count, at distance 0). A sample whose nearest real is at
    most `threshold` away counts as a copy. By default the threshold is the `percentile`-th
    percentile (1st) of the real-vs-real distances: a generator whose samples sit as close to
    the training set as a fresh real image would have a copy rate near 1%; far above that,
    it reproduces training images.

    Args:
        samples: uint8 generated images [M, H, W, C] or [M, C, H, W].
        reals: uint8 training images [N, H, W, C], N >= 2.
        features: optional feature function, as in `nearest_neighbours`.
        threshold: copy distance; overrides `percentile`.
        percentile: 0-100, which real-vs-real distance is the copy threshold.
        n_reference: reals used as queries for the reference distances.
        seed: picks the reference subset.
        chunk: images per block.
        device: where the block distances are computed.

    Returns:
        A dict: `sample_indices` [M], `sample_distances` [M], `reference_indices` [R] (which
        reals were queries), `real_indices` [R] (their nearest other real),
        `real_distances` [R], `copies` (indices of the samples counted as copies), and the
        floats `threshold`, `copy_rate`, `median_sample_distance`, `median_real_distance`,
        `distance_ratio` (median sample / median real: ≈ 1 healthy, → 0 copying), plus
        `space` ('pixel' or 'features').

    Raises:
        ValueError: fewer than two reals, mismatched image shapes, or a bad percentile.
    """
    samples, reals = _check_pair(samples, reals, features)
    if len(reals) < 2:
        raise ValueError(f"the real-vs-real reference needs at least 2 reals, got {len(reals)}")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile={percentile} must be in [0, 100]")
    if n_reference < 1:
        raise ValueError(f"n_reference={n_reference} must be >= 1")
    # Features of the reals are computed once and serve both searches.
    reference = _space(reals, features, chunk)
    s_idx, s_d = _search(_space(samples, features, chunk), reference, chunk, device=device)

    rng = np.random.default_rng(seed)
    ids = np.arange(len(reals))
    if len(reals) > n_reference:
        ids = np.sort(rng.choice(len(reals), n_reference, replace=False))
    r_idx, r_d = _search(reference.subset(ids), reference, chunk, ids, device)

    if threshold is None:
        threshold = float(np.percentile(r_d, percentile))
    copies = np.flatnonzero(s_d <= threshold)
    median_s, median_r = float(np.median(s_d)), float(np.median(r_d))
    return {
        "sample_indices": s_idx,
        "sample_distances": s_d,
        "reference_indices": ids,
        "real_indices": r_idx,
        "real_distances": r_d,
        "copies": copies,
        "threshold": float(threshold),
        "copy_rate": len(copies) / len(s_d),
        "median_sample_distance": median_s,
        "median_real_distance": median_r,
        "distance_ratio": median_s / median_r if median_r > 0 else math.inf,
        "space": "pixel" if features is None else "features",
    }


def save_pairs_grid(
    samples: Any,
    reals: Any,
    indices: np.ndarray,
    path: str | os.PathLike,
    n: int = 16,
    distances: np.ndarray | None = None,
    nrow: int | None = None,
    padding: int = 2,
) -> Path:
    """Write a PNG of (sample | nearest real) pairs, each pair one tile (a 1-pixel white
    line between the two).

    Args:
        samples: uint8 generated images.
        reals: uint8 training images.
        indices: nearest real of each sample (from `nearest_neighbours`).
        path: the PNG to write.
        n: pairs to show.
        distances: when given, the n closest pairs are shown (the likeliest copies, closest
            first) with their distance written under each pair; else the first n samples.
        nrow: pairs per row; near-square by default.
        padding: pixels between pairs.
    """
    samples, reals = as_nhwc(samples), as_nhwc(reals)
    indices = np.asarray(indices)
    if len(indices) != len(samples):
        raise ValueError(f"{len(indices)} indices for {len(samples)} samples")
    order = np.arange(len(samples)) if distances is None else np.argsort(distances, kind="stable")
    order = order[:n]
    gap = np.full((len(order), samples.shape[1], 1, samples.shape[3]), 255, np.uint8)
    pairs = np.concatenate([samples[order], gap, reals[indices[order]]], axis=2)  # [n, H, 2W+1, C]
    if distances is None:
        grid = image_grid(pairs, nrow=nrow, padding=padding)
    else:
        captions = [f"{float(distances[i]):.3g}" for i in order]
        grid = captioned_grid(pairs, captions, nrow=nrow, padding=padding)
    save_image_atomic(path, to_pil(grid))
    return Path(path)


def save_distance_histogram(
    sample_d: np.ndarray,
    real_d: np.ndarray,
    path: str | os.PathLike,
    threshold: float | None = None,
    bins: int = 40,
    size: tuple[int, int] = (640, 360),
) -> Path:
    """Write a PNG histogram (drawn with Pillow) of the two nearest-neighbour distance
    distributions: generated → nearest real (orange) and real → nearest other real (blue),
    each as the share of its images per bin, with the copy threshold as a red line."""
    from PIL import Image, ImageDraw, ImageFont

    sample_d, real_d = np.asarray(sample_d, float), np.asarray(real_d, float)
    if sample_d.size == 0 or real_d.size == 0:
        raise ValueError("both distance arrays must be non-empty")
    width, height = size
    left, right, top, bottom = 56, 16, 36, 40
    lo = min(sample_d.min(), real_d.min(), threshold if threshold is not None else np.inf)
    hi = max(sample_d.max(), real_d.max(), threshold if threshold is not None else -np.inf)
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    shares = [np.histogram(d, edges)[0] / d.size for d in (real_d, sample_d)]
    top_share = max(float(s.max()) for s in shares) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_of(value: float) -> float:
        return left + (value - lo) / (hi - lo) * plot_w

    canvas = Image.new("RGBA", size, (255, 255, 255, 255))
    colours = [(52, 101, 164), (245, 121, 0)]  # real: blue, generated: orange
    for share, colour in zip(shares, colours):
        layer = Image.new("RGBA", size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        for b, s in enumerate(share):
            if s > 0:
                y = top + plot_h * (1 - s / top_share)
                draw.rectangle([x_of(edges[b]), y, x_of(edges[b + 1]), top + plot_h],
                               fill=(*colour, 120), outline=(*colour, 255))  # fmt: skip
        canvas = Image.alpha_composite(canvas, layer)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    black = (0, 0, 0, 255)
    draw.line([(left, top), (left, top + plot_h), (left + plot_w, top + plot_h)], fill=black)
    for value in np.linspace(lo, hi, 5):
        x = x_of(value)
        draw.line([(x, top + plot_h), (x, top + plot_h + 4)], fill=black)
        draw.text((x, top + plot_h + 6), f"{value:.3g}", fill=black, font=font, anchor="mt")
    draw.text((left + plot_w / 2, height - 4), "distance to nearest real image", fill=black,
              font=font, anchor="md")  # fmt: skip
    for share in (0.0, top_share):
        y = top + plot_h * (1 - share / top_share)
        draw.text((left - 4, y), f"{share:.0%}", fill=black, font=font, anchor="rm")
    if threshold is not None:
        x = x_of(threshold)
        for y in range(top, top + plot_h, 8):  # dashed
            draw.line([(x, y), (x, min(y + 4, top + plot_h))], fill=(204, 0, 0, 255), width=2)
        draw.text((x + 4, top), f"copy threshold {threshold:.3g}", fill=(204, 0, 0, 255),
                  font=font, anchor="lt")  # fmt: skip
    legend = [(f"generated to nearest real ({sample_d.size} images)", colours[1]),
              (f"real to nearest other real ({real_d.size} images)", colours[0])]  # fmt: skip
    for i, (text, colour) in enumerate(legend):
        y = 8 + i * 13
        draw.rectangle([left, y, left + 10, y + 9], fill=(*colour, 255))
        draw.text((left + 16, y + 5), text, fill=black, font=font, anchor="lm")
    save_image_atomic(path, canvas.convert("RGB"))
    return Path(path)


def captioned_grid(
    images: Any,
    captions: list[str],
    nrow: int | None = None,
    padding: int = 2,
    min_size: int = 64,
    caption_height: int = 14,
    pad_value: int = 255,
) -> np.ndarray:
    """Tile images with a line of text under each. Tiles smaller than `min_size` pixels high
    are enlarged by an integer factor (nearest neighbour) so the text fits.

    Returns:
        uint8 [H', W', 3]: with s = max(1, ceil(min_size / h)), each cell is
        (h·s + caption_height) × (w·s), laid out as `image_grid` lays out its tiles.
    """
    from PIL import Image, ImageDraw, ImageFont

    images = as_nhwc(images)
    n, h, w, c = images.shape
    if len(captions) != n:
        raise ValueError(f"{len(captions)} captions for {n} images")
    scale = max(1, math.ceil(min_size / h))
    big = images.repeat(scale, axis=1).repeat(scale, axis=2) if scale > 1 else np.asarray(images)
    if c == 1:
        big = np.repeat(big, 3, axis=3)
    tiles = np.full((n, h * scale + caption_height, w * scale, 3), pad_value, np.uint8)
    tiles[:, : h * scale] = big
    grid = image_grid(tiles, nrow=nrow, padding=padding, pad_value=pad_value)
    canvas = Image.fromarray(grid)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    ncol = min(nrow or math.ceil(math.sqrt(n)), n)  # as image_grid lays them out
    tile_h, tile_w = tiles.shape[1], tiles.shape[2]
    for i, caption in enumerate(captions):
        row, col = divmod(i, ncol)
        x = padding + col * (tile_w + padding) + tile_w / 2
        y = padding + row * (tile_h + padding) + h * scale + caption_height / 2
        draw.text((x, y), caption, fill=(0, 0, 0), font=font, anchor="mm")
    return np.asarray(canvas)


# --- Search -----------------------------------------------------------------------------------


class _Space:
    """Rows of images as float32 vectors: pixels scaled to [0, 1] and flattened, converted
    block by block; or feature vectors computed once."""

    def __init__(self, images: np.ndarray | None, vectors: np.ndarray | None) -> None:
        self.images, self.vectors = images, vectors

    def __len__(self) -> int:
        return len(self.vectors if self.vectors is not None else self.images)

    def rows(
        self, index: slice | np.ndarray, dtype: torch.dtype = torch.float32, device: Any = "cpu"
    ) -> torch.Tensor:  # [b, D]
        # np.array copies: memmap blocks are read-only, and torch wants writable memory
        if self.vectors is not None:
            return torch.from_numpy(np.array(self.vectors[index])).to(device, dtype)
        block = torch.from_numpy(np.array(self.images[index])).to(device)  # uint8
        return block.reshape(len(block), -1).to(dtype).div_(255)

    def subset(self, ids: np.ndarray) -> _Space:
        if self.vectors is not None:
            return _Space(None, self.vectors[ids])
        return _Space(self.images[ids], None)


def _space(images: np.ndarray, features: FeatureFn | None, chunk: int) -> _Space:
    if features is None:
        return _Space(images, None)
    blocks = []
    for start in range(0, len(images), chunk):
        out = features(np.array(images[start : start + chunk]))  # a writable copy
        out = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
        blocks.append(out.reshape(len(out), -1).astype(np.float32))
    return _Space(None, np.concatenate(blocks))


def _search(
    query: _Space,
    reference: _Space,
    chunk: int,
    self_index: np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Index and distance of the nearest reference row of every query row. `self_index[i]`
    (if given) is the reference row that query i is, never returned as its neighbour."""
    m, n = len(query), len(reference)
    if self_index is not None and n < 2:
        raise ValueError("excluding each image itself needs at least 2 images")
    best = torch.full((m,), math.inf, dtype=torch.float32, device=device)
    best_idx = torch.zeros(m, dtype=torch.long, device=device)
    own = None if self_index is None else torch.as_tensor(self_index, device=device)
    # Distances do not change when both sides shift; centring keeps the float32 terms of
    # the expansion below small, so their rounding errors are small next to the distances.
    center = reference.rows(slice(0, chunk), device=device).mean(0)  # [D]
    for r0 in range(0, n, chunk):
        ref = reference.rows(slice(r0, r0 + chunk), device=device).sub_(center)  # [b, D]
        ref_sq = torch.linalg.vector_norm(ref, dim=1).square()
        for q0 in range(0, m, chunk):
            q = query.rows(slice(q0, q0 + chunk), device=device).sub_(center)  # [mq, D]
            # ‖q - r‖² = ‖q‖² + ‖r‖² - 2 q·r: one matmul per block pair
            q_sq = torch.linalg.vector_norm(q, dim=1).square()
            d2 = torch.addmm(q_sq[:, None] + ref_sq, q, ref.T, alpha=-2)  # [mq, b]
            if own is not None:
                local = own[q0 : q0 + chunk] - r0
                hit = (local >= 0) & (local < len(ref))
                d2[hit.nonzero().squeeze(1), local[hit]] = math.inf
            value, index = d2.min(1)
            better = value < best[q0 : q0 + chunk]
            best[q0 : q0 + chunk][better] = value[better]
            best_idx[q0 : q0 + chunk][better] = index[better] + r0
    indices = best_idx.cpu().numpy()
    # The expanded form cancels badly near 0; recompute the winners' distances directly so
    # an exact copy measures 0.0.
    distances = np.empty(m)
    for q0 in range(0, m, chunk):
        q = query.rows(slice(q0, q0 + chunk), torch.float64)
        r = reference.rows(indices[q0 : q0 + chunk], torch.float64)
        distances[q0 : q0 + chunk] = (q - r).norm(dim=1).numpy()
    return indices, distances


def _check_pair(samples: Any, reals: Any, features: FeatureFn | None) -> tuple[np.ndarray, ...]:
    samples, reals = as_nhwc(samples), as_nhwc(reals)
    if len(samples) == 0 or len(reals) == 0:
        raise ValueError(f"need samples and reals, got {len(samples)} and {len(reals)}")
    if features is None and samples.shape[1:] != reals.shape[1:]:
        raise ValueError(
            f"samples {samples.shape[1:]} and reals {reals.shape[1:]} differ in size; "
            "pixel distances need equal [H, W, C] (or pass a feature function)"
        )
    return samples, reals
