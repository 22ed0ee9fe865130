"""Rebuild src/ganvas/assets/emoji64.npz, the built-in example data, from the npm package.

    npm pack emoji-datasource-google && tar xzf emoji-datasource-google-*.tgz
    python scripts/build_example_data.py package/

The Noto emoji images are Apache-2.0 (see src/ganvas/assets/NOTICE.md). We keep the 64 px
base emoji (no skin-tone variants), composite them over white, and store them with their
category (a usable class label) and short name in one compressed array file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main(package_dir: str) -> None:
    package = Path(package_dir)
    entries = json.loads((package / "emoji.json").read_text())
    entries = [e for e in entries if e.get("has_img_google")]
    entries.sort(key=lambda e: e.get("sort_order", 0))
    images, categories, names = [], [], []
    for entry in entries:
        png = package / "img" / "google" / "64" / entry["image"]
        if not png.is_file():
            continue
        rgba = Image.open(png).convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        images.append(np.asarray(white.convert("RGB")))
        categories.append(entry["category"])
        names.append(entry["short_name"])
    classes = sorted(set(categories))
    labels = np.array([classes.index(c) for c in categories], dtype=np.int64)
    out = Path(__file__).resolve().parents[1] / "src" / "ganvas" / "assets" / "emoji64.npz"
    np.savez_compressed(
        out,
        images=np.stack(images),
        labels=labels,
        classes=np.array(classes),
        names=np.array(names),
    )
    print(f"wrote {out}: {len(images)} images, {len(classes)} classes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "package")
