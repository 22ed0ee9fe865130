"""Frame filters for datasets cut from films: blank, title/credits, blurry, near-duplicate, grey.

Pure functions on uint8 RGB images [H, W, 3], numpy only (no torch, no Pillow), so they run in
`prepare`'s worker processes. Thresholds are tuned for frames of 64-256 pixels a side.

Measured on tests/data/test_filters.py's generated set (96×96: 20 colour + 6 dark + 10 grey
painterly frames, 12 black/faded/single-colour frames, 12 rendered title cards, Gaussian-blurred
copies, noisy / 1-pixel-shifted / brightened near-duplicates):
    is_blank                    60 frames    precision 1.00  recall 1.00
    is_text_frame               60 frames    precision 1.00  recall 1.00
    is_blurry(threshold=100)    60 frames    precision 1.00  recall 1.00
    group_near_duplicates(10)   120 frames   precision 1.00  recall 1.00 (frame pairs; window
                                             None and 4)
    is_grayscale                48 frames    precision 1.00  recall 1.00
Synthetic frames are easier than a real film; treat these as a sanity check, not a benchmark.
"""

from __future__ import annotations

import numpy as np

# ITU-R BT.601 luma weights, the same as Pillow's convert("L").
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _grey(img: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 → [H, W] float32 luminance 0..255."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {img.shape}")
    # A weighted sum, not `@ _LUMA`: a matrix product would call into multi-threaded BLAS,
    # which fights the other worker processes of `prepare` for the cores.
    x = img.astype(np.float32)
    return x[..., 0] * _LUMA[0] + x[..., 1] * _LUMA[1] + x[..., 2] * _LUMA[2]


def is_blank(img: np.ndarray, dark_threshold: float = 16, std_threshold: float = 4.0) -> str | None:
    """Whether a frame carries no picture: black, faded to black, or one flat colour.

    Args:
        img: uint8 RGB [H, W, 3].
        dark_threshold: mean luminance (0-255) below which a frame with little texture
            (luminance std < 2 × `std_threshold`) counts as black.
        std_threshold: per-channel standard deviation below which a frame is one colour.

    Returns:
        "near-black", "blank single colour", or None for a frame with content.
    """
    grey = _grey(img)
    # A dark painted night scene keeps its texture (std well above 8); a fade-out does not.
    if grey.mean() < dark_threshold and grey.std() < 2 * std_threshold:
        return "near-black"
    if max(float(img[..., c].std()) for c in range(3)) < std_threshold:
        return "blank single colour"
    return None


def is_text_frame(
    img: np.ndarray,
    levels: int = 8,
    min_coverage: float = 0.8,
    min_contrast: float = 96.0,
    min_edge_density: float = 0.002,
) -> bool:
    """Whether a frame is a title or credits card: flat-coloured text on a flat background.

    Heuristic: quantise each channel to `levels` steps; on a title card the two most common
    colours (background and lettering) cover at least `min_coverage` of the pixels (the rest
    is anti-aliasing), their luminances differ by at least `min_contrast`, and at least
    `min_edge_density` of the pixels sit on a sharp edge (a neighbour differing by
    `min_contrast`: the strokes of the glyphs). A painted frame spreads over many colours, and
    a blank frame has no edges. Credits rolled over moving pictures are not caught.

    Args:
        img: uint8 RGB [H, W, 3].
        levels: quantisation steps per channel (8 → 512 colours).
        min_coverage: share of pixels the two main colours must cover.
        min_contrast: luminance difference (0-255) between them, and of an edge.
        min_edge_density: share of pixels that must lie on such an edge.

    Returns:
        True for a frame that looks like text on a plain background.
    """
    step = 256 // levels
    q = (img // step).astype(np.int32).reshape(-1, 3)
    codes = (q[:, 0] * levels + q[:, 1]) * levels + q[:, 2]
    counts = np.bincount(codes, minlength=levels**3)
    top = np.argsort(counts)[::-1][:2]
    if counts[top].sum() < min_coverage * codes.size or counts[top[1]] == 0:
        return False
    # Luminance of each main colour's bin centre.
    centres = [
        ((np.array([c // levels**2, c // levels % levels, c % levels]) + 0.5) * step) for c in top
    ]
    if abs(float(centres[0] @ _LUMA) - float(centres[1] @ _LUMA)) < min_contrast:
        return False
    grey = _grey(img)
    edges = np.zeros(grey.shape, dtype=bool)
    edges[:, 1:] |= np.abs(np.diff(grey, axis=1)) >= min_contrast
    edges[1:, :] |= np.abs(np.diff(grey, axis=0)) >= min_contrast
    return float(edges.mean()) >= min_edge_density


def sharpness(img: np.ndarray) -> float:
    """Variance of the 3×3 Laplacian of the grey image (higher is sharper).

    Args:
        img: uint8 RGB [H, W, 3], at least 3×3.

    Returns:
        The variance, in squared luminance units; scale-dependent, so compare frames of the
        same size.
    """
    g = _grey(img)
    # [[0, 1, 0], [1, -4, 1], [0, 1, 0]] on the interior (no padding: borders would add edges).
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def is_blurry(img: np.ndarray, threshold: float) -> bool:
    """Whether `sharpness(img)` is below `threshold` (about 100 suits 64-256 px frames)."""
    return sharpness(img) < threshold


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] area-averaging weights: each output cell is the mean of what it covers."""
    scale = n_in / n_out
    lo = np.arange(n_out)[:, None] * scale
    px = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(px + 1, lo + scale) - np.maximum(px, lo), 0, None)
    return (overlap / scale).astype(np.float64)


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix [n, n]: row k is the k-th cosine basis vector."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def perceptual_hash(img: np.ndarray, size: int = 8) -> int:
    """DCT perceptual hash (pHash): similar pictures get hashes a few bits apart.

    The grey image is area-resized to (4·size)², transformed by a 2-D DCT, and the top-left
    size × size low-frequency coefficients except the DC term become bits: 1 where the
    coefficient is above their median.

    Args:
        img: uint8 RGB [H, W, 3].
        size: side of the kept coefficient block; the hash has size² − 1 bits (63 for 8).

    Returns:
        The hash as a non-negative int.
    """
    n = 4 * size
    g = _grey(img).astype(np.float64)
    small = _resize_matrix(g.shape[0], n) @ g @ _resize_matrix(g.shape[1], n).T  # [n, n]
    d = _dct_matrix(n)
    coeffs = (d @ small @ d.T)[:size, :size].ravel()[1:]  # drop DC: it is only brightness
    bits = coeffs > np.median(coeffs)
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def group_near_duplicates(
    hashes: list[int], max_distance: int = 6, window: int | None = None
) -> list[list[int]]:
    """Group frames whose hashes are within `max_distance` bits (single linkage).

    Args:
        hashes: `perceptual_hash` of each frame, in film order.
        max_distance: largest Hamming distance that still counts as the same picture.
        window: compare each frame only with the next `window` frames (a scene's slow drift
            still chains together); None compares all pairs, O(n²).

    Returns:
        Every index in exactly one group, each group sorted, groups ordered by first index.
    """
    n = len(hashes)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    if any(h >= 1 << 64 for h in hashes):  # hashes wider than 64 bits: plain Python
        for i in range(n - 1):
            stop = n if window is None else min(n, i + 1 + window)
            for j in range(i + 1, stop):
                if hamming(hashes[i], hashes[j]) <= max_distance:
                    join(i, j)
    else:
        arr = np.array(hashes, dtype=np.uint64)
        span = n if window is None else window
        # Compare a block of rows with everything after its first row at once: 256 × n
        # distances at a time keeps memory small and the loop count n / 256.
        block = 256
        for start in range(0, n - 1, block):
            rows = arr[start : start + block]
            stop = min(n, start + block + span)
            dist = _popcount(rows[:, None] ^ arr[None, start + 1 : stop])  # [b, stop-start-1]
            offset = (
                np.arange(start + 1, stop)[None, :] - np.arange(start, start + len(rows))[:, None]
            )
            near = (dist <= max_distance) & (offset > 0) & (offset <= span)
            for a, b in zip(*np.nonzero(near)):
                join(start + int(a), start + 1 + int(b))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _popcount(values: np.ndarray) -> np.ndarray:
    """Set bits of each uint64."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(values)
    bits = np.unpackbits(values[..., None].view(np.uint8), axis=-1)
    return bits.sum(axis=-1)


def keep_sharpest(groups: list[list[int]], sharpness_values: list[float]) -> list[int]:
    """The index of the sharpest frame of each group (the earliest on a tie), in group order."""
    return [max(group, key=lambda i: (sharpness_values[i], -i)) for group in groups]


def is_grayscale(img: np.ndarray, tolerance: int = 6) -> bool:
    """Whether a frame is black and white: channels agree within `tolerance` on 99% of pixels.

    The 1% allowance absorbs chroma noise from video compression around sharp edges.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {img.shape}")
    r, g, b = (img[..., c].astype(np.int16) for c in range(3))
    # max - min of three values is the largest pairwise difference (cheaper than max(axis=2)).
    spread = np.maximum(np.maximum(np.abs(r - g), np.abs(g - b)), np.abs(r - b))
    # The 99th percentile is <= tolerance exactly when at most 1% of pixels exceed it.
    return int(np.count_nonzero(spread > tolerance)) <= 0.01 * spread.size
