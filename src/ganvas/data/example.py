"""The built-in example data: 1,911 Noto emoji (Apache-2.0), shipped inside the package.

`write_example_dataset` turns the packed array into a normal dataset directory, so the demo
and the tests use the same code path as a user's own images. Labels are the 10 emoji
categories (see assets/NOTICE.md for the source and licence).
"""

from __future__ import annotations

import os
from importlib import resources

import numpy as np

from ganvas.data.store import Dataset, base_manifest, save_dataset

ASSET = "emoji64.npz"


def load_example_arrays() -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(images [N, 64, 64, 3] uint8, labels [N], class names, emoji names)."""
    with resources.files("ganvas").joinpath("assets", ASSET).open("rb") as f:
        packed = np.load(f)
        return (
            packed["images"],
            packed["labels"].astype(np.int64),
            [str(c) for c in packed["classes"]],
            [str(n) for n in packed["names"]],
        )


def write_example_dataset(
    dest: str | os.PathLike, size: int = 64, channels: int = 3, overwrite: bool = False
) -> Dataset:
    """Write the emoji as a dataset directory at `size`×`size` (resized with Lanczos)."""
    from PIL import Image

    images, labels, classes, names = load_example_arrays()
    if size != images.shape[1] or channels != 3:
        mode = "RGB" if channels == 3 else "L"
        resized = [
            Image.fromarray(img).convert(mode).resize((size, size), Image.LANCZOS) for img in images
        ]
        images = np.stack([np.asarray(im).reshape(size, size, channels) for im in resized])
    manifest = base_manifest(size, channels, classes)
    manifest.update(
        sources=["builtin:noto-emoji (emoji-datasource-google 16.0.0, Apache-2.0)"],
        files=names,
        dropped=[],
        params={"size": size, "channels": channels, "labels": "category"},
        splits={"val": []},
    )
    return save_dataset(dest, images, labels, manifest, overwrite=overwrite)
