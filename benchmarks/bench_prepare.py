"""Prepare throughput: `ganvas prepare` versus a plain Pillow loop over the same JPEG files.

The script writes N synthetic photo-like JPEGs once (smooth gradients, soft blobs, shapes and
sensor-like noise, so the files are about as large as camera pictures of that size), then for
each output size times three ways of turning them into a [N, S, S, 3] uint8 array:

- **ganvas**: `prepare_dataset(folder, out, size=S, workers=W, progress=False)`, the whole
  call (walk, worker pool start, decode, the resumable journal, images.npy, manifest); the
  output folder is removed between repeats. **ganvas+filters** is the same call with the
  film-cleaning filters on (blank, text, blur p5, near-duplicates), which measure every
  picture.
- **plain 1-proc**: the loop a user would write by hand: `Image.open(p).convert("RGB")`,
  centre-crop to a square, `resize((S, S), Image.LANCZOS)`, `np.asarray` into a preallocated
  array.
- **plain W-proc**: the same function over a `multiprocessing.get_context("spawn").Pool(W)`
  with `imap(..., chunksize=16)`; the pool start is inside the timed window, as it is for
  ganvas. (This script imports ganvas lazily so the plain workers do not import it.)

The three run one after another, `--repeats` times, in turns; the table shows the best
run's img/s (kept images / wall seconds) with the median in brackets, and the ratio
ganvas / plain W-proc (best over best; above 1.0 = ganvas is faster). Not a test: run it by
hand on a quiet machine.

    python benchmarks/bench_prepare.py                          # 600 files 1024x768, 64 and 256 px
    python benchmarks/bench_prepare.py --quick                  # 64 files, one repeat
    python benchmarks/bench_prepare.py --n 1000 --sizes 128 --source-size 1920x1080 --workers 4
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageFilter


def photo_like(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A smooth, shaded scene with hard-edged shapes and noise: compresses like a photo."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x /= width
    y /= height
    base = rng.uniform(30, 220, 3).astype(np.float32)
    slope_x, slope_y = rng.uniform(-90, 90, (2, 3)).astype(np.float32)
    pixels = base + x[..., None] * slope_x + y[..., None] * slope_y
    # Large soft blobs: a coarse random field upsampled with bicubic interpolation.
    coarse = rng.normal(0, 35, (rng.integers(3, 7), rng.integers(4, 9), 3))
    coarse = np.clip(coarse + 128, 0, 255).astype(np.uint8)
    field = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    pixels += np.asarray(field, dtype=np.float32) - 128
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(6, 16)):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, x1 = sorted(rng.integers(-width // 4, width + width // 4, 2))
        y0, y1 = sorted(rng.integers(-height // 4, height + height // 4, 2))
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse((x0, y0, x1 + 1, y1 + 1), fill=colour)
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            points = rng.integers(0, (width, height), (int(rng.integers(3, 7)), 2))
            draw.polygon([tuple(int(v) for v in p) for p in points], fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(1.2))  # lens softness: no aliased edges

    # Fine texture plus per-pixel sensor noise keep the JPEG from being unrealistically small.
    texture = rng.normal(0, 1, (height // 4, width // 4)).astype(np.float32)
    texture_img = Image.fromarray(np.clip(texture * 40 + 128, 0, 255).astype(np.uint8))
    texture = np.asarray(texture_img.resize((width, height), Image.Resampling.BILINEAR))
    pixels = np.asarray(img, dtype=np.float32)
    pixels += (texture.astype(np.float32)[..., None] - 128) * 0.25
    pixels += rng.normal(0, 3.0, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_sources(folder: Path, count: int, width: int, height: int, quality: int) -> list[Path]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"photo_{i:05d}.jpg"
        photo_like(rng, width, height).save(path, "JPEG", quality=quality)
        paths.append(path)
    return paths


def plain_decode(path: Path, size: int) -> np.ndarray:
    """The hand-written per-file step of the plain reference."""
    img = Image.open(path).convert("RGB")
    width, height = img.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return np.asarray(img.resize((size, size), Image.LANCZOS))


def plain_one_process(paths: list[Path], size: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    images = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        images[i] = plain_decode(path, size)
    return time.perf_counter() - start, images


def plain_pool(paths: list[Path], size: int, workers: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    images = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    job = functools.partial(plain_decode, size=size)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for i, pixels in enumerate(pool.imap(job, paths, chunksize=16)):
            images[i] = pixels
    return time.perf_counter() - start, images


# The film-cleaning filters, all on: what `prepare` costs when it measures every picture.
FILTERS = {"drop_blank": True, "drop_text": True, "blur": "p5", "dedupe": 6}


def ganvas_prepare(
    folder: Path, out: Path, size: int, workers: int, filters: bool = False
) -> tuple[float, int]:
    """Seconds and pictures read (kept or filtered out) of one `prepare_dataset` call."""
    from ganvas.data.prepare import prepare_dataset  # lazily: keeps it out of plain workers

    start = time.perf_counter()
    options = FILTERS if filters else {}
    report = prepare_dataset(folder, out, size=size, workers=workers, progress=False, **options)
    return time.perf_counter() - start, report.pictures


def parse_source_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 1024x768, got {text!r}") from None
    if width < 8 or height < 8:
        raise argparse.ArgumentTypeError(f"source size too small: {text!r}")
    return width, height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="number of JPEG files (600)")
    parser.add_argument("--sizes", default="64,256", help="output sizes, comma-separated")
    parser.add_argument("--source-size", type=parse_source_size, default=(1024, 768))
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the sources")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per way (2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: --n 64 --repeats 1")
    args = parser.parse_args()
    count = args.n if args.n is not None else (64 if args.quick else 600)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 2)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    width, height = args.source_size
    workers = args.workers

    print("command:", shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])))
    print(
        f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), "
        f"{platform.machine()}, {platform.system()} {platform.release()}"
    )
    print(f"Python {platform.python_version()}, Pillow {PIL.__version__}, numpy {np.__version__}")

    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "photos", Path(tmp) / "dataset"
        start = time.perf_counter()
        paths = write_sources(folder, count, width, height, args.quality)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        print(
            f"sources: {count} JPEGs {width}x{height} q{args.quality}, "
            f"{megabytes / count * 1000:.0f} kB each on average, {megabytes:.1f} MB in all "
            f"(written in {time.perf_counter() - start:.1f} s); workers {workers}, "
            f"{repeats} repeat(s)\n"
        )

        rows = []
        for size in sizes:
            ours, filtered, one, pooled = [], [], [], []
            agreement = ""
            for repeat in range(repeats):
                shutil.rmtree(out, ignore_errors=True)
                seconds, read = ganvas_prepare(folder, out, size, workers, filters=True)
                filtered.append(read / seconds)
                shutil.rmtree(out, ignore_errors=True)
                seconds, read = ganvas_prepare(folder, out, size, workers)
                ours.append(read / seconds)
                if read != count:
                    print(f"warning: ganvas read {read} of {count} images at {size} px")
                seconds, plain_images = plain_pool(paths, size, workers)
                pooled.append(count / seconds)
                seconds, single_images = plain_one_process(paths, size)
                one.append(count / seconds)
                if repeat == 0:
                    # Same work? The mean absolute pixel difference between the two outputs.
                    assert np.array_equal(plain_images, single_images)
                    prepared = np.load(out / "images.npy")
                    if prepared.shape == plain_images.shape:
                        diff = np.abs(prepared.astype(np.int16) - plain_images).mean()
                        agreement = f"{diff:.2f}"
                    del prepared
            shutil.rmtree(out, ignore_errors=True)
            rows.append((size, ours, filtered, one, pooled, agreement))
            print(f"{size} px done: ganvas {max(ours):.1f}, plain {max(pooled):.1f} img/s")

    def cell(values: list[float]) -> str:
        return f"{max(values):7.1f} ({statistics.median(values):7.1f})"

    header = (
        f"{'size':>5} | {'ganvas img/s':>17} | {'ganvas+filters':>17} | {'plain 1-proc':>17} | "
        f"{f'plain {workers}-proc':>17} | {f'ganvas/plain-{workers}':>14} | {'|diff|':>6}"
    )
    print(f"\nimg/s: best (median) of {repeats}; |diff| = mean abs pixel difference (0-255)")
    print("between ganvas's images.npy and the plain loop's array, first repeat\n")
    print(header)
    print("-" * len(header))
    for size, ours, filtered, one, pooled, agreement in rows:
        ratio = max(ours) / max(pooled)
        print(
            f"{size:>5} | {cell(ours):>17} | {cell(filtered):>17} | {cell(one):>17} | "
            f"{cell(pooled):>17} | {ratio:>14.3f} | {agreement:>6}"
        )
    print(f"\nganvas+filters: the same call with {FILTERS} (img/s counts pictures read)")


if __name__ == "__main__":
    main()
