"""Evaluate a run: the metrics and checks of `ganvas.metrics` applied to a run directory,
with results written next to the run (run/eval/*.json, run/metrics.jsonl, pictures)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ganvas.data.store import load_dataset
from ganvas.generate import load
from ganvas.inference import resolve_device
from ganvas.io import write_json_atomic
from ganvas.rundir import RunDir


def evaluate_run(
    run_dir: str | os.PathLike,
    data: str | os.PathLike,
    metrics: tuple[str, ...] = ("fid", "kid", "pr"),
    n: int = 10_000,
    split: str = "train",
    weights: str | None = None,
    per_class: bool = False,
    checkpoint: str | None = None,
    batch_size: int = 64,
    device: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Score a run's generator against a dataset; returns and saves the result dict.

    The result (the scores, and under "protocol" how they were computed: see
    `ganvas.metrics.protocol`) goes to run/eval/eval_<step>.json and, as an `"event": "eval"`
    record, to run/metrics.jsonl. `per_class` adds FID per class for conditional runs (with
    its own "fid_per_class_protocol"). `device` runs the generator and the Inception network;
    'auto' is cuda when available, else cpu.

    Warns (`ProtocolMismatchWarning`) when the run's other eval files were computed under
    another protocol (or record none), since they sit side by side and invite comparison.
    """
    from ganvas.metrics import evaluate, per_class_fid

    run = RunDir(run_dir)
    device = resolve_device(device)
    pipeline = load(run.path, checkpoint=checkpoint, device=device)
    dataset = load_dataset(data)
    scores = evaluate(pipeline, dataset, metrics=metrics, n=n, split=split, weights=weights,
                      batch_size=batch_size, device=device, seed=seed)  # fmt: skip
    result: dict[str, Any] = {"step": pipeline.step, "event": "eval", "n": n, "split": split,
                              "data": str(data), **scores}  # fmt: skip
    if per_class and pipeline.conditional:
        per, per_protocol = per_class_fid(pipeline, dataset, n=max(2, n // pipeline.num_classes),
                                          split=split, weights=weights, batch_size=batch_size,
                                          device=device, seed=seed, with_protocol=True)  # fmt: skip
        result["fid_per_class"] = per
        result["fid_per_class_protocol"] = per_protocol
    warn_about_other_protocols(run, result)
    write_json_atomic(run.eval_file(pipeline.step), result)
    run.append_metrics(result)
    return result


def evaluate_sets(
    real: str | os.PathLike,
    fake: str | os.PathLike,
    metrics: tuple[str, ...] = ("fid", "kid", "pr"),
    n: int = 10_000,
    size: int | None = None,
    split: str = "train",
    weights: str | None = None,
    batch_size: int = 64,
    device: str = "auto",
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score one set of images against another: FID / KID / PR between any two datasets.

    Each set is a ganvas dataset directory, or anything `ganvas prepare` reads (a folder, a
    zip or tar, a CIFAR tarball, an LMDB, a Hugging Face folder …), prepared on the fly into
    a temporary dataset at `size` (centre crop, Lanczos resize) and removed afterwards. The
    real set's statistics are cached by content hash as for `evaluate_run`, so a second
    comparison with the same real images reads them from the cache.

    Args:
        real: the reference images.
        fake: the images to score (used as fixed images: at most `n`, a fixed subset).
        metrics: names `ganvas.metrics.evaluate` accepts ('fid', 'kid', 'pr', …).
        n: at most this many images of each set.
        size: side the sources are prepared at; defaults to the resolution of whichever
            set is already a dataset directory.
        split: the part of a real dataset directory compared with ('train', 'val', 'all').
        weights, batch_size, device, seed: as for `ganvas.metrics.evaluate`.
        workers: reading processes of the on-the-fly prepare (None: one per core).
        progress: show the prepare's progress bar on stderr.

    Returns:
        The dict of `ganvas.metrics.evaluate`, with "real" and "fake" naming the sources.

    Raises:
        ConfigError: `size` is needed (neither set is a dataset) or mismatches a dataset.
        DatasetError: a source cannot be read.
        MetricsError: as `ganvas.metrics.evaluate`.
    """
    import tempfile

    from ganvas.errors import ConfigError
    from ganvas.metrics import evaluate
    from ganvas.metrics.fidelity import select_reference

    sources = {"real": Path(real), "fake": Path(fake)}
    ready = {role: _dataset_or_none(path) for role, path in sources.items()}
    sizes = {d.resolution for d in ready.values() if d is not None}
    if size is None:
        if not sizes:
            raise ConfigError(
                f"--size is needed: neither {real} nor {fake} is a prepared dataset, so say at"
                " which side (pixels) both are compared"
            )
        size = min(sizes)
    for role, dataset in ready.items():
        if dataset is not None and dataset.resolution != size:
            raise ConfigError(
                f"{sources[role]} is a {dataset.resolution}px dataset but --size is {size};"
                " compare images of one resolution"
            )
    device = resolve_device(device)
    with tempfile.TemporaryDirectory(prefix="ganvas-evaluate-") as tmp:
        for role, path in sources.items():
            if ready[role] is None:
                from ganvas.data.prepare import prepare_dataset

                out = Path(tmp) / role / (path.name or role)
                out.parent.mkdir()
                prepare_dataset(path, out, size=size, workers=workers, progress=progress,
                                resume=False)  # fmt: skip
                ready[role] = load_dataset(out)
        real_data, fake_data = ready["real"], ready["fake"]
        chosen = select_reference(fake_data, n, "all")
        images = np.asarray(fake_data.images[chosen])  # [n, H, W, C] uint8
        info = {"source": "fixed images", "data": str(sources["fake"]),
                "content_hash": fake_data.manifest.get("content_hash")}  # fmt: skip
        scores = evaluate(images, real_data, metrics=metrics, n=n, split=split,
                          weights=weights, batch_size=batch_size, device=device, seed=seed,
                          generator_info=info)  # fmt: skip
    protocol = scores.get("protocol") or {}
    if isinstance(protocol.get("real"), dict):  # the source, not the temporary dataset
        protocol["real"]["data"] = str(sources["real"])
    return {"real": str(sources["real"]), "fake": str(sources["fake"]), "n": n, **scores}


def _dataset_or_none(path: Path):
    """The dataset at `path` when it is a ganvas dataset directory, else None."""
    if not (path / "manifest.json").is_file():
        return None
    return load_dataset(path)


def warn_about_other_protocols(run: RunDir, result: dict[str, Any]) -> list[Path]:
    """Warn once (`ProtocolMismatchWarning`) naming the run's other eval files whose
    protocol differs from `result`'s (or that record none); returns those files."""
    import warnings

    from ganvas.metrics.protocol import KEY_PROTOCOL, ProtocolMismatchWarning, protocol_differences

    own = run.eval_file(result["step"])
    differing: list[tuple[Path, list[str]]] = []
    for path in sorted(run.eval_dir.glob("eval_*.json")) if run.eval_dir.is_dir() else []:
        if path == own:  # re-evaluating a step replaces its file
            continue
        try:
            other = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        found = protocol_differences(other.get(KEY_PROTOCOL), result.get(KEY_PROTOCOL))
        if found:
            differing.append((path, found))
    if differing:
        path, found = differing[0]
        more = f" and {len(differing) - 1} more" if len(differing) > 1 else ""
        warnings.warn(
            f"{path.name}{more} in {run.eval_dir} were computed under another FID/KID protocol "
            f"than this result ({'; '.join(found)}): do not compare their scores with these",
            ProtocolMismatchWarning,
            stacklevel=3,
        )
    return [path for path, _ in differing]


def memorization_run(
    run_dir: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    n: int = 256,
    space: str = "pixel",
    weights: str | None = None,
    seed: int = 0,
    device: str = "auto",
) -> dict[str, Any]:
    """Nearest training images of n samples (pixel or Inception space): a grid of pairs, a
    histogram against real-vs-real distances, and a JSON report with the copy rate (which
    is also returned). 'auto' `device` is cuda when available, else cpu."""
    from ganvas.metrics.memorization import (
        memorization_report,
        save_distance_histogram,
        save_pairs_grid,
    )

    device = resolve_device(device)
    pipeline = load(run_dir, device=device)
    reals = np.asarray(load_dataset(data).images)
    samples = pipeline.sample_numpy(n, seed)
    features = None
    if space == "inception":
        from ganvas.metrics import FeatureExtractor

        extractor = FeatureExtractor.inception(weights, device=device)
        features = extractor.features
    elif space != "pixel":
        raise ValueError(f"space={space!r}: choose 'pixel' or 'inception'")
    report = memorization_report(samples, reals, features=features, seed=seed, device=device)
    out_dir = Path(out_dir)
    save_pairs_grid(samples, reals, report["sample_indices"], out_dir / "nearest_pairs.png",
                    distances=report["sample_distances"])  # fmt: skip
    save_distance_histogram(report["sample_distances"], report["real_distances"],
                            out_dir / "distances.png", threshold=report["threshold"])  # fmt: skip
    scalars = {k: (float(v) if isinstance(v, np.floating | float) else v) for k, v in report.items()
               if np.isscalar(v) or isinstance(v, str)}  # fmt: skip
    scalars.update(step=pipeline.step, n=n)
    write_json_atomic(out_dir / "memorization.json", scalars)
    return scalars
