"""Frames per second of `ganvas prepare` on a film, versus a plain PyAV + Pillow loop.

The script encodes a synthetic film once (H.264 through PyAV): shots of a slowly panning
photo-like picture, with black frames and title cards between the shots. It then times

- **plain**: the loop a user would write: `av.open`, `container.decode(video=0)`,
  `frame.to_ndarray(format="rgb24")`, centre square, Pillow Lanczos resize, into an array;
  one process.
- **ganvas**: `prepare_dataset(film, out, size=S, workers=W)`: the film cut into stretches
  read by W worker processes, the journal, images.npy.
- **ganvas + filters**: the same with `--drop-blank --drop-text --dedupe 6`, which measure
  every frame; the table also says how many frames the filters kept.

Not a test: run it by hand on a quiet machine.

    python benchmarks/bench_prepare_film.py                  # 40 shots x 30 frames, 480x360
    python benchmarks/bench_prepare_film.py --shots 8        # quicker
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).parent))
from bench_prepare import photo_like  # noqa: E402


def title_card(width: int, height: int, text: str) -> np.ndarray:
    img = Image.new("RGB", (width, height), (0, 0, 0))
    font = ImageFont.load_default(size=height // 10)
    ImageDraw.Draw(img).text((width // 8, height // 2 - height // 20), text, fill=(240, 240, 240),
                             font=font)  # fmt: skip
    return np.asarray(img)


def write_film(path: Path, shots: int, frames_per_shot: int, width: int, height: int) -> int:
    """Encode the film; returns its frame count."""
    rng = np.random.default_rng(0)
    count = 0
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}

        def put(img: np.ndarray) -> None:
            nonlocal count
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
            count += 1

        for shot in range(shots):
            wide = np.asarray(photo_like(rng, width + frames_per_shot, height))
            for k in range(frames_per_shot):  # a pan: one pixel a frame
                put(np.ascontiguousarray(wide[:, k : k + width]))
            for _ in range(3):
                put(np.zeros((height, width, 3), np.uint8))
            if shot % 4 == 0:
                for _ in range(6):
                    put(title_card(width, height, f"Chapter {shot // 4 + 1}"))
        for packet in stream.encode():
            container.mux(packet)
    return count


def plain_loop(path: Path, size: int) -> tuple[float, int]:
    start = time.perf_counter()
    images = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            img = Image.fromarray(frame.to_ndarray(format="rgb24"))
            width, height = img.size
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            img = img.crop((left, top, left + side, top + side))
            images.append(np.asarray(img.resize((size, size), Image.Resampling.LANCZOS)))
    np.stack(images)
    return time.perf_counter() - start, len(images)


def ganvas_prepare(path: Path, out: Path, size: int, workers: int, filters: bool):
    from ganvas.data.prepare import prepare_dataset

    options = {"drop_blank": True, "drop_text": True, "dedupe": 6} if filters else {}
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    report = prepare_dataset(path, out, size=size, workers=workers, progress=False, **options)
    return time.perf_counter() - start, report.pictures, report.kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=40)
    parser.add_argument("--frames-per-shot", type=int, default=30)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print("command:", shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])))
    print(f"machine: {os.cpu_count()} CPUs; PyAV {av.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        film, out = Path(tmp) / "film.mp4", Path(tmp) / "ds"
        frames = write_film(film, args.shots, args.frames_per_shot, args.width, args.height)
        print(f"film: {frames} frames {args.width}x{args.height} H.264, "
              f"{film.stat().st_size / 1e6:.1f} MB; output {args.size} px, {args.workers} workers\n")  # fmt: skip
        plain_s, plain_n = plain_loop(film, args.size)
        ours_s, ours_n, _ = ganvas_prepare(film, out, args.size, args.workers, filters=False)
        filt_s, filt_n, kept = ganvas_prepare(film, out, args.size, args.workers, filters=True)
    print(f"{'way':<28} {'frames':>7} {'seconds':>8} {'frames/s':>9} {'ratio':>6}")
    for name, seconds, count in (
        ("plain PyAV + Pillow loop", plain_s, plain_n),
        ("ganvas prepare", ours_s, ours_n),
        ("ganvas prepare + filters", filt_s, filt_n),
    ):
        ratio = (count / seconds) / (plain_n / plain_s)
        print(f"{name:<28} {count:>7} {seconds:>8.1f} {count / seconds:>9.1f} {ratio:>6.2f}")
    print(f"\nthe filters kept {kept} of {filt_n} frames (black, title and repeated frames out)")


if __name__ == "__main__":
    main()
