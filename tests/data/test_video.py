"""iter_frames / frame_count_estimate on a small film encoded by the test itself."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from ganvas.data.video import VIDEO_EXTENSIONS, frame_count_estimate, iter_frames

FRAMES, WIDTH, HEIGHT, FPS = 30, 64, 48, 10


def level(i: int) -> int:
    """The grey level painted on frame i: far enough apart to survive lossy encoding."""
    return 8 * i + 10


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "film.mp4"
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.gop_size = 8  # several keyframes, so seeking to `start` is exercised
        if codec == "libx264":
            stream.options = {"crf": "10", "bf": "0"}
        else:
            stream.bit_rate = 2_000_000
        for i in range(FRAMES):
            img = np.full((HEIGHT, WIDTH, 3), level(i), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decoded_index(img: np.ndarray) -> int:
    return round((float(img.mean()) - 10) / 8)


def test_every_frame_in_order(film: Path) -> None:
    frames = list(iter_frames(film))
    assert [i for i, _, _ in frames] == list(range(FRAMES))
    for i, t, img in frames:
        assert img.shape == (HEIGHT, WIDTH, 3) and img.dtype == np.uint8
        assert decoded_index(img) == i
        assert t == pytest.approx(i / FPS, abs=1e-3)


def test_every_third_frame(film: Path) -> None:
    frames = list(iter_frames(film, every=3))
    assert [i for i, _, _ in frames] == list(range(0, FRAMES, 3))
    assert [decoded_index(img) for _, _, img in frames] == list(range(0, FRAMES, 3))
    times = [t for _, t, _ in frames]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_start_end_trim(film: Path) -> None:
    frames = list(iter_frames(film, start=1.3, end=2.2))  # frames 13..21
    assert [i for i, _, _ in frames] == list(range(13, 22))
    assert [decoded_index(img) for _, _, img in frames] == list(range(13, 22))
    # The frame grid stays the film's own: every=3 after a seek still lands on multiples of 3.
    assert [i for i, _, _ in iter_frames(film, every=3, start=1.3)] == list(range(15, FRAMES, 3))


def test_frame_count_estimate(film: Path) -> None:
    assert frame_count_estimate(film) == FRAMES
    assert ".mp4" in VIDEO_EXTENSIONS


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"every": 0}, "every"),
        ({"start": 2.0, "end": 1.0}, "end"),
        ({"start": 1.0, "end": 1.0}, "end"),
    ],
)
def test_bad_arguments(film: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        iter_frames(film, **kwargs)


def test_corrupt_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a film" * 10)
    with pytest.raises(ValueError, match="broken.mp4"):
        list(iter_frames(bad))
    with pytest.raises(ValueError, match="missing.mkv"):
        frame_count_estimate(tmp_path / "missing.mkv")
