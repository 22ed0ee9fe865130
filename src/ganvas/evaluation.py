"""Evaluate a run: the metrics and checks of `ganvas.metrics` applied to a run directory,
with results written next to the run (run/eval/*.json, run/metrics.jsonl, pictures)."""

from __future__ import annotations

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
    """Score a run's generator against a dataset; returns and saves the flat result dict.

    The result goes to run/eval/eval_<step>.json and, as an `"event": "eval"` record, to
    run/metrics.jsonl. `per_class` adds FID per class for conditional runs. `device` runs
    the generator and the Inception network; 'auto' is cuda when available, else cpu.
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
        per = per_class_fid(pipeline, dataset, n=max(2, n // pipeline.num_classes), split=split,
                            weights=weights, batch_size=batch_size, device=device, seed=seed)  # fmt: skip
        result["fid_per_class"] = per
    write_json_atomic(run.eval_file(pipeline.step), result)
    run.append_metrics(result)
    return result


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
