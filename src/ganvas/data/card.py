"""A dataset card: what a prepared dataset holds, in numbers and contact sheets
(`ganvas info DATA`)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ganvas.data.store import Dataset, file_counts, load_dataset, write_preview
from ganvas.grid import labelled_grid, to_pil
from ganvas.io import save_image_atomic


def dataset_card(dataset: Dataset | str | os.PathLike) -> dict[str, Any]:
    """Counts per class, per source and per reason for dropping, plus size and splits."""
    if not isinstance(dataset, Dataset):
        dataset = load_dataset(dataset)
    manifest = dataset.manifest
    card: dict[str, Any] = {
        "path": str(dataset.path),
        "images": len(dataset),
        "resolution": dataset.resolution,
        "channels": dataset.channels,
        "val_images": len(dataset.split_indices("val")),
        "content_hash": manifest.get("content_hash", ""),
    }
    if dataset.labels is not None and dataset.classes:
        counts = np.bincount(dataset.labels, minlength=len(dataset.classes))
        card["per_class"] = {name: int(c) for name, c in zip(dataset.classes, counts)}
    sources = manifest.get("sources") or []
    per_source: Counter[str] = Counter()
    for name, count in file_counts(manifest):  # container ranges count their entries
        index, _, _ = name.partition(":")
        if index.isdigit() and int(index) < len(sources):
            per_source[sources[int(index)]] += count
    if per_source:
        card["per_source"] = dict(per_source)
    dropped = manifest.get("dropped") or []
    card["dropped"] = len(dropped)
    reasons: Counter[str] = Counter()
    for entry in dropped:
        reason = str(entry.get("reason", "")) if isinstance(entry, dict) else str(entry)
        reasons[reason.split(" (")[0]] += 1  # group "not an image (...)" and the like
    if reasons:
        card["dropped_per_reason"] = dict(reasons.most_common())
    sheets = sorted((dataset.path / "dropped").glob("*.png"))
    if sheets:
        card["dropped_sheets"] = [str(sheet) for sheet in sheets]
    return card


def write_card_previews(
    dataset: Dataset, out_dir: str | os.PathLike, per_sheet: int = 64
) -> list[Path]:
    """preview.png of the whole set (a seeded random choice) and, for labelled data,
    classes.png with one labelled row per class."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(len(dataset), min(per_sheet, len(dataset)), replace=False))
    written = [out_dir / "preview.png"]
    write_preview(np.asarray(dataset.images[chosen]), written[0], count=per_sheet)
    if dataset.labels is not None and dataset.classes:
        per_row = 8
        rows, names = [], []
        for label, name in enumerate(dataset.classes):
            members = np.flatnonzero(dataset.labels == label)
            if len(members) == 0:
                continue
            picked = rng.choice(members, min(per_row, len(members)), replace=False)
            row = np.asarray(dataset.images[np.sort(picked)])
            if len(row) < per_row:  # pad short classes with blank tiles
                blank = np.full((per_row - len(row), *row.shape[1:]), 255, np.uint8)
                row = np.concatenate([row, blank])
            rows.append(row)
            names.append(f"{name} ({len(members)})")
        sheet = labelled_grid(np.concatenate(rows), names)
        written.append(out_dir / "classes.png")
        save_image_atomic(written[-1], to_pil(sheet))
    return written
