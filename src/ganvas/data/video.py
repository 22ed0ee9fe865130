"""Decode the frames of a film one at a time, for building a dataset from video.

PyAV (FFmpeg) does the decoding. `iter_frames` holds one decoded frame at a time, so a feature
film never has to fit in memory. Like images.py this imports no torch, so it can run inside
`prepare`'s worker processes.

Frame indices are positions on the film's own frame grid (0 is the first frame of the film),
so `every=3` yields frames 0, 3, 6, ... whether or not `start` seeks into the middle.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np

from ganvas.data.sources import VIDEO_EXTENSIONS

__all__ = ["VIDEO_EXTENSIONS", "frame_count_estimate", "frame_rate", "iter_frames"]


def iter_frames(
    path: str | os.PathLike,
    every: int = 1,
    start: float = 0.0,
    end: float | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield the frames of the first video stream of `path`, in display order.

    Args:
        path: the video file.
        every: keep only frames whose index is a multiple of `every` (3 keeps 0, 3, 6, ...).
        start: first time to yield, in seconds from the start of the stream; the decoder seeks
            to the keyframe before it and skips the frames in between.
        end: stop before this time in seconds (exclusive); None runs to the end of the film.

    Returns:
        An iterator of (frame index, time in seconds, RGB uint8 array [H, W, 3]).

    Raises:
        ValueError: `every` < 1, `start` < 0, `end` <= `start`, or PyAV cannot open or decode
            the file (the message names the file).
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if start < 0:
        raise ValueError(f"start must be >= 0 seconds, got {start}")
    if end is not None and end <= start:
        raise ValueError(f"end={end} must be greater than start={start} (seconds)")
    # Validate eagerly: a generator would only complain at the first next().
    container, stream = _open(path)
    return _frames(path, container, stream, every, start, end)


def _frames(
    path: str | os.PathLike,
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    every: int,
    start: float,
    end: float | None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    # Half a frame of slack so a frame stamped 0.99999 s still counts as "at 1 s".
    slack = 0.5 / fps if fps else 1e-6
    origin = _seconds(stream.start_time, stream.time_base) or 0.0
    index: int | None = None if start > 0 else 0
    try:
        with container:
            if start > 0:
                target = int((start + origin) / stream.time_base) if stream.time_base else 0
                container.seek(target, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                time = frame.time - origin if frame.time is not None else None
                if index is None:
                    # First frame after a seek: place it on the film's frame grid by its time.
                    index = round(time * fps) if time is not None and fps else 0
                if time is None:
                    time = index / fps if fps else float(index)
                if time < start - slack:
                    index += 1
                    continue
                if end is not None and time >= end - slack:
                    break
                if index % every == 0:
                    yield index, float(time), frame.to_ndarray(format="rgb24")
                index += 1
    except av.FFmpegError as err:
        raise ValueError(f"cannot decode video {os.fspath(path)!r}: {err}") from err


def frame_rate(path: str | os.PathLike) -> float | None:
    """Frames per second of the first video stream of `path` (None when the file does not say).

    Raises:
        ValueError: PyAV cannot open the file or it has no video stream.
    """
    container, stream = _open(path)
    with container:
        rate = stream.average_rate or stream.guessed_rate
        return float(rate) if rate else None


def frame_count_estimate(path: str | os.PathLike) -> int | None:
    """How many frames the first video stream of `path` holds, from its metadata.

    Args:
        path: the video file.

    Returns:
        The container's frame count, else duration × frame rate rounded, else None when the
        file says neither (some streamed formats).

    Raises:
        ValueError: PyAV cannot open the file or it has no video stream.
    """
    container, stream = _open(path)
    with container:
        if stream.frames:
            return int(stream.frames)
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            return None
        seconds = _seconds(stream.duration, stream.time_base)
        if seconds is None and container.duration is not None:
            seconds = container.duration / av.time_base  # container duration is in µs
        if seconds is None:
            return None
        return round(seconds * float(rate))


def _open(
    path: str | os.PathLike,
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    name = os.fspath(path)
    try:
        container = av.open(name, mode="r")
    except (av.FFmpegError, OSError) as err:
        raise ValueError(f"cannot open video {name!r}: {err}") from err
    if not container.streams.video:
        container.close()
        raise ValueError(f"no video stream in {name!r}")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame + slice threads: several times faster on HD films
    return container, stream


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)
