"""Mode collapse: are the samples as varied as the training images?

    diversity_score(samples, dataset.images)     # ≈ 1 healthy, → 0 collapsed
    near_duplicate_rate(samples, reals=dataset.images)
    monitor = CollapseMonitor(reals=dataset.images[:256])
    warning = monitor.update(fixed_noise_samples)   # on each sample step; None or a message

Distances are Euclidean over all pixels scaled to [0, 1], as in `metrics.memorization`.
A collapsed generator draws the same few images whatever z is, so its samples are much
closer to each other than real images are to each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganvas.metrics.memorization import DEFAULT_CHUNK, as_nhwc, nearest_neighbours

DEFAULT_MAX_PAIRS = 2000  # random pairs averaged; all pairs when there are fewer
DEFAULT_RELATIVE = 0.1  # near-duplicate: closer than this share of the reals' mean distance
DEFAULT_MONITOR_REALS = 256  # reals kept by CollapseMonitor for its reference


def mean_pairwise_distance(images: Any, max_pairs: int = DEFAULT_MAX_PAIRS, seed: int = 0) -> float:
    """Mean L2 distance between two different images of the set ([0, 1] pixels): over all
    pairs when there are at most `max_pairs`, else over `max_pairs` random pairs (seeded).

    Raises:
        ValueError: fewer than two images.
    """
    images = as_nhwc(images)
    i, j = _pairs(len(images), max_pairs, np.random.default_rng(seed))
    return float(_pair_distances(images, i, j).mean())


def diversity_score(
    samples: Any, reals: Any, max_pairs: int = DEFAULT_MAX_PAIRS, seed: int = 0
) -> float:
    """Mean pairwise distance among samples ÷ mean pairwise distance among reals.

    Both sets are cut to the same count m = min(M, N) (random subsets, seeded) and measured
    on the same index pairs, so the two means are directly comparable. ≈ 1 for a healthy
    generator, → 0 as it collapses; well above 1 means samples vary more than the data
    (e.g. noise).

    Args:
        samples: uint8 generated images [M, H, W, C] or [M, C, H, W], M >= 2.
        reals: uint8 real images [N, H, W, C] of the same size, N >= 2.
        max_pairs: pairs averaged (all pairs when m(m-1)/2 is smaller).
        seed: picks the subsets and the pairs.

    Raises:
        ValueError: fewer than two images in either set, or different image sizes.
    """
    samples, reals = as_nhwc(samples), as_nhwc(reals)
    if samples.shape[1:] != reals.shape[1:]:
        raise ValueError(f"samples {samples.shape[1:]} and reals {reals.shape[1:]} differ in size")
    m = min(len(samples), len(reals))
    rng = np.random.default_rng(seed)
    # subsets as index maps: only the images a pair touches are ever read
    s_ids, r_ids = (
        np.arange(m) if len(images) == m else np.sort(rng.choice(len(images), m, False))
        for images in (samples, reals)
    )
    i, j = _pairs(m, max_pairs, rng)
    real_mean = _pair_distances(reals, r_ids[i], r_ids[j]).mean()
    if real_mean == 0:
        raise ValueError("the real images are all identical; diversity is undefined")
    return float(_pair_distances(samples, s_ids[i], s_ids[j]).mean() / real_mean)


def near_duplicate_rate(
    samples: Any,
    threshold: float | None = None,
    reals: Any | None = None,
    relative: float = DEFAULT_RELATIVE,
    seed: int = 0,
    chunk: int = DEFAULT_CHUNK,
) -> float:
    """Share of samples that have another sample at most `threshold` away.

    Args:
        samples: uint8 generated images, at least 2.
        threshold: distance ([0, 1] pixels, L2); 0 counts exact duplicates only. By default
            `relative` × the mean pairwise distance of `reals` (0.1: images that differ
            by a tenth of what two typical training images differ by).
        reals: real images, needed only for the default threshold.
        relative: share of the reals' mean pairwise distance used as the default threshold.
        seed: picks the pairs of reals measured.
        chunk: images per block of the all-pairs search.

    Raises:
        ValueError: fewer than two samples, or neither a threshold nor reals.
    """
    samples = as_nhwc(samples)
    if len(samples) < 2:
        raise ValueError(f"need at least 2 samples, got {len(samples)}")
    if threshold is None:
        if reals is None:
            raise ValueError("pass a threshold, or reals to derive one from")
        threshold = relative * mean_pairwise_distance(reals, seed=seed)
    _, distances = nearest_neighbours(samples, samples, chunk=chunk, exclude_self=True)
    return float(np.mean(distances <= threshold))


class CollapseMonitor:
    """Watches the fixed-noise samples a trainer draws on its sample steps and warns when
    they stop varying.

    Each `update` measures the samples' mean pairwise distance and divides it by a baseline:
    the reals' mean pairwise distance when `reals` are given (preferred: an absolute
    reference), else the highest diversity these samples have shown so far (starting with
    the first update's). The monitor only arms once the ratio has reached `threshold` (an
    untrained generator's near-uniform output is not a collapse), then warns when the ratio
    stays below `threshold` for `patience` consecutive updates. It warns once per episode
    and again only after diversity recovered and fell again.

    Args:
        threshold: ratio below which the samples count as collapsed (0.2: samples five times
            closer together than the reference).
        patience: consecutive low updates before warning (2: one odd step is not a trend).
        reals: optional uint8 real images; at most 256 (a seeded subset) are kept.
        max_pairs: pairs measured per update.
    """

    def __init__(
        self,
        threshold: float = 0.2,
        patience: int = 2,
        reals: Any | None = None,
        max_pairs: int = DEFAULT_MAX_PAIRS,
    ) -> None:
        if not 0 < threshold < 1:
            raise ValueError(f"threshold={threshold} must be in (0, 1)")
        if patience < 1:
            raise ValueError(f"patience={patience} must be >= 1")
        self.threshold, self.patience, self.max_pairs = threshold, patience, max_pairs
        self.reference: float | None = None  # from the reals, fixed
        if reals is not None:
            reals = as_nhwc(reals)
            if len(reals) > DEFAULT_MONITOR_REALS:
                ids = np.random.default_rng(0).choice(len(reals), DEFAULT_MONITOR_REALS, False)
                reals = reals[np.sort(ids)]
            self.reference = mean_pairwise_distance(reals, max_pairs)
        self.best = 0.0  # highest sample diversity seen
        self.history: list[float] = []  # ratio of each update
        self.armed = False
        self.streak = 0
        self.collapsed = False

    def update(self, samples: Any) -> str | None:
        """Measure the samples (uint8 [N, C, H, W] or [N, H, W, C], N >= 2, the same noise
        every time); returns a warning message when collapse is detected, else None."""
        distance = mean_pairwise_distance(samples, self.max_pairs)
        self.best = max(self.best, distance)
        baseline = self.reference if self.reference is not None else self.best
        ratio = distance / baseline if baseline > 0 else 0.0
        self.history.append(ratio)
        if ratio >= self.threshold:
            self.armed, self.streak, self.collapsed = True, 0, False
            return None
        if not self.armed:
            return None
        self.streak += 1
        if self.streak < self.patience or self.collapsed:
            return None
        self.collapsed = True
        against = "the real images'" if self.reference is not None else "their best so far"
        return (
            f"possible mode collapse: the fixed-noise samples' diversity is {ratio:.2f} of "
            f"{against} (below {self.threshold}) for {self.streak} sample steps in a row"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "best": self.best, "history": list(self.history),
                "armed": self.armed, "streak": self.streak, "collapsed": self.collapsed}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reference = state["reference"]
        self.best = float(state["best"])
        self.history = [float(r) for r in state["history"]]
        self.armed, self.collapsed = bool(state["armed"]), bool(state["collapsed"])
        self.streak = int(state["streak"])


def _pairs(m: int, max_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i != j: all of them when there are at most max_pairs."""
    if m < 2:
        raise ValueError(f"pairwise distances need at least 2 images, got {m}")
    if m * (m - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(m, k=1)
        return i, j
    i = rng.integers(0, m, max_pairs)
    j = (i + rng.integers(1, m, max_pairs)) % m  # never i itself
    return i, j


def _pair_distances(images: np.ndarray, i: np.ndarray, j: np.ndarray, block: int = 256):
    out = np.empty(len(i))
    for start in range(0, len(i), block):
        a = torch.from_numpy(np.ascontiguousarray(images[i[start : start + block]]))
        b = torch.from_numpy(np.ascontiguousarray(images[j[start : start + block]]))
        diff = (a.float() - b.float()).div_(255).reshape(len(a), -1)
        out[start : start + block] = diff.norm(dim=1).numpy()
    return out
