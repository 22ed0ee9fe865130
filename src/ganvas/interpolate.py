"""Walks through latent space: frames between the images of several seeds (seeds/001, 002).

    g = ganvas.load("runs/a")
    frames = interpolate(g, seeds=[1, 7, 3], steps=10)     # uint8 [21, C, H, W]
    save_interpolation_grid(frames, "walk.png", steps=10)   # one row per segment
    save_gif(frames, "walk.gif", fps=12)
    save_mp4(frames, "walk.mp4", fps=24)                    # needs PyAV: pip install av

Keyframe i is exactly `g.sample(1, seed=seeds[i])` (with its class, for conditional runs):
the walk starts, passes through and ends on the images each seed gives alone. A smooth
walk without sudden jumps or noise in between suggests G learned a continuous mapping
rather than memorized a few images.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ganvas.generate import GeneratorPipeline
from ganvas.grid import image_grid, to_pil
from ganvas.inference import to_uint8
from ganvas.io import atomic_path, save_image_atomic
from ganvas.metrics.memorization import as_nhwc

Mode = Literal["slerp", "lerp"]
MODES = ("slerp", "lerp")
PARALLEL_EPS = 1e-6  # below this sin(angle), slerp falls back to lerp


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Straight line a → b: a + t (b - a). `t` is a number, or a 1-D tensor of T values
    giving [T, *a.shape]."""
    t = _as_t(t, a)
    return a + t * (b - a)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the great circle from a to b (over the last axis).

    For Gaussian latents this keeps the path at the radius where the generator saw its
    training z, where a straight line would dip toward the origin (White 2016, "Sampling
    generative networks"). Two unit vectors stay on the unit sphere. When a and b are
    (nearly) parallel or opposite the circle is undefined and this is `lerp`.

    Args:
        a, b: [..., D] endpoints.
        t: a number, or a 1-D tensor of T values giving [T, *a.shape]; 0 → a, 1 → b.
    """
    t = _as_t(t, a)
    norms = a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1, keepdim=True) / norms.clamp_min(torch.finfo(a.dtype).tiny)
    omega = torch.arccos(cos.clamp(-1, 1))  # angle between a and b, [..., 1]
    sin = torch.sin(omega)
    safe = sin.abs() > PARALLEL_EPS
    sin_safe = torch.where(safe, sin, torch.ones_like(sin))
    spherical = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / sin_safe
    return torch.where(safe, spherical, a + t * (b - a))


def interpolation_path(
    keyframes: torch.Tensor, steps_per_segment: int, mode: Mode = "slerp"
) -> torch.Tensor:
    """Points through K keyframes: `steps_per_segment` points per segment (the segment's
    start and its in-between points) and the last keyframe, so (K - 1) · steps + 1 in all.
    Row i · steps is keyframe i, exactly.

    Args:
        keyframes: [K, z_dim], K >= 2 (K = 1 gives just that point).
        steps_per_segment: >= 1.
        mode: 'slerp' (default) or 'lerp'.

    Returns:
        [(K - 1) · steps_per_segment + 1, z_dim].
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; choose one of {', '.join(MODES)}")
    if steps_per_segment < 1:
        raise ValueError(f"steps_per_segment={steps_per_segment} must be >= 1")
    if keyframes.ndim != 2 or len(keyframes) < 1:
        raise ValueError(f"keyframes must be [K, z_dim] with K >= 1, got {tuple(keyframes.shape)}")
    fn = slerp if mode == "slerp" else lerp
    t = torch.arange(steps_per_segment, dtype=keyframes.dtype) / steps_per_segment  # [0, 1)
    segments = [fn(a, b, t) for a, b in zip(keyframes[:-1], keyframes[1:])]
    path = torch.cat([*segments, keyframes[-1:]])
    path[::steps_per_segment] = keyframes  # keyframes bit-exact, whatever the arithmetic
    return path


def interpolate(
    pipeline: GeneratorPipeline,
    seeds: list[int],
    steps: int = 10,
    mode: Mode = "slerp",
    labels: int | str | list[int | str] | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Frames of a walk through the latents of `seeds`, in order.

    Class-conditional runs: `labels` gives one class (name or number) for the whole walk or
    one per keyframe; class 0 by default, as `sample(1, seed)` uses. No family here takes
    soft (mixed) labels, so the class is not blended: within a segment between keyframes of
    different classes the label switches from the first to the second at the midpoint
    (t ≥ 0.5) while z moves on smoothly.

    Args:
        pipeline: a loaded generator (`ganvas.load`).
        seeds: K >= 2 seeds; keyframe i is the latent of `pipeline.sample(1, seeds[i])`.
        steps: frames per segment (its first keyframe plus steps - 1 in-between frames).
        mode: 'slerp' or 'lerp'.
        labels: class(es) for conditional runs; must be None for unconditional ones.
        batch_size: frames per forward pass.

    Returns:
        uint8 [(K - 1) · steps + 1, C, H, W] on the CPU. Frame i · steps equals
        `pipeline.sample(1, seeds[i], labels=...)[0]` exactly.

    Raises:
        ValueError: fewer than 2 seeds, a bad mode, labels for an unconditional run, or
            an unknown class.
    """
    if len(seeds) < 2:
        raise ValueError(f"interpolation needs at least 2 seeds, got {len(seeds)}")
    keyframes = torch.cat([pipeline.latents(1, s) for s in seeds])  # [K, z_dim]
    path = interpolation_path(keyframes, steps, mode)
    key_labels = _keyframe_labels(pipeline, labels, len(seeds))
    frame_labels = None
    if key_labels is not None:
        # segment j's frames: the first half carry keyframe j's class, the rest j + 1's
        t = torch.arange(len(path) - 1) % steps / steps
        segment = torch.arange(len(path) - 1) // steps
        frame_labels = torch.cat([key_labels[segment + (t >= 0.5).long()], key_labels[-1:]])
    frames = to_uint8(pipeline.generate(path, frame_labels, batch_size))
    # Keyframes rendered alone, exactly as `sample(1, seed)` does: a batch of other size may
    # pick other kernels (cuDNN, oneDNN) and differ in the last bit.
    for i, seed in enumerate(seeds):
        c = None if key_labels is None else key_labels[i : i + 1]
        frames[i * steps] = pipeline.sample(1, seed, labels=c)[0]
    return frames


def save_interpolation_grid(
    frames: Any, path: str | os.PathLike, steps: int | None = None, padding: int = 2
) -> Path:
    """Write the frames as one PNG. With `steps` (the value given to `interpolate`), each
    segment is one row from its start keyframe to its end keyframe (steps + 1 images; inner
    keyframes end one row and begin the next); without it, all frames in one row."""
    images = as_nhwc(frames)
    if steps is None:
        grid = image_grid(images, nrow=len(images), padding=padding)
    else:
        if steps < 1 or (len(images) - 1) % steps:
            raise ValueError(f"{len(images)} frames are not (K - 1) · steps + 1 for steps={steps}")
        rows = [images[j : j + steps + 1] for j in range(0, len(images) - 1, steps)]
        grid = image_grid(np.concatenate(rows) if rows else images, nrow=steps + 1,
                          padding=padding)  # fmt: skip
    save_image_atomic(path, to_pil(grid))
    return Path(path)


def save_gif(frames: Any, path: str | os.PathLike, fps: float = 10, loop: int = 0) -> Path:
    """Write the frames as an animated GIF (Pillow), `fps` frames per second, looping
    forever (`loop=0`) or that many times. Pillow merges a frame equal to the one before it
    into that one (showing it twice as long), so timing is kept but the file may hold
    fewer frames than given."""
    images = [to_pil(frame) for frame in as_nhwc(frames)]
    if not images:
        raise ValueError("no frames to write")
    if fps <= 0:
        raise ValueError(f"fps={fps} must be > 0")
    save_image_atomic(path, images[0], save_all=True, append_images=images[1:],
                      duration=round(1000 / fps), loop=loop, optimize=False)  # fmt: skip
    return Path(path)


def save_mp4(frames: Any, path: str | os.PathLike, fps: float = 24, crf: int = 18) -> Path:
    """Write the frames as an H.264 MP4 through PyAV (yuv420p, so odd sides are padded
    by one pixel to be even).

    Raises:
        ImportError: PyAV is not installed; the message says `pip install av`.
    """
    try:
        import av
    except ImportError as err:
        raise ImportError("writing MP4 needs PyAV: pip install av (or use save_gif)") from err
    images = as_nhwc(frames)
    if len(images) == 0:
        raise ValueError("no frames to write")
    if images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)
    n, h, w, _ = images.shape
    images = np.pad(images, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    rate = Fraction(fps).limit_denominator(1000)
    with atomic_path(path, suffix=".mp4") as tmp, av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = images.shape[2], images.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for picture in images:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())  # flush the encoder
    return Path(path)


def _as_t(t: float | torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    if t.ndim == 1:
        t = t.reshape(-1, *([1] * a.ndim))  # [T, 1, ..., 1] against a's [..., D]
    return t


def _keyframe_labels(
    pipeline: GeneratorPipeline, labels: int | str | list[int | str] | None, k: int
) -> torch.Tensor | None:
    if not pipeline.conditional:
        if labels is not None:
            raise ValueError("labels given, but this generator is not class-conditional")
        return None
    if labels is None:
        labels = 0
    if not isinstance(labels, list | tuple):
        labels = [labels] * k
    if len(labels) != k:
        raise ValueError(f"{len(labels)} labels for {k} keyframes; give one, or one per seed")
    return torch.tensor([pipeline.class_index(c) for c in labels], dtype=torch.long)
