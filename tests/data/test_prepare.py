"""prepare_dataset: folders of files in, one dataset directory out."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

import ganvas.data.prepare as prepare_module
from ganvas.data.prepare import NOT_IN_CLASS_FOLDER, PrepareReport, prepare_dataset
from ganvas.data.store import DatasetError, load_dataset

GOOD = [
    "photo.jpg",
    "portrait.png",
    "grey.png",
    "rgba.png",
    "palette.png",
    "anim.gif",
    "cmyk.tif",
    "deep.png",
    "rotated.jpg",
]
BAD = {
    "corrupt.jpg": "not an image",
    "half.png": "corrupt or truncated image",
    "empty.png": "empty file",
    "readme.txt": "not an image",
    "huge.png": "too large",
}


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_good(folder: Path) -> None:
    """One file per kind of image prepare must accept."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise(24, 32, 1)).save(folder / "photo.jpg")
    Image.fromarray(noise(40, 20, 2)).save(folder / "portrait.png")
    Image.new("L", (16, 16), 90).save(folder / "grey.png")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, 8:] = (255, 0, 0, 255)
    Image.fromarray(rgba).save(folder / "rgba.png")
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette.save(folder / "palette.png", transparency=0)
    frames = [Image.new("RGB", (16, 16), c) for c in ("green", "blue")]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(folder / "cmyk.tif")
    Image.fromarray(np.full((16, 16), 65535, np.uint16)).save(folder / "deep.png")
    rotated = Image.fromarray(noise(16, 32, 3))
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(folder / "rotated.jpg", exif=exif)


def write_bad(folder: Path) -> None:
    """One file per way a candidate can fail."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corrupt.jpg").write_bytes(np.random.default_rng(4).bytes(1500))
    whole = io.BytesIO()
    Image.fromarray(noise(64, 64, 5)).save(whole, format="PNG")
    (folder / "half.png").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    (folder / "empty.png").touch()
    (folder / "readme.txt").write_text("not a picture\n")
    Image.new("RGB", (2000, 2000)).save(folder / "huge.png")


def write_hidden(folder: Path) -> None:
    (folder / ".DS_Store").write_bytes(b"\x00junk")
    (folder / ".thumbs").mkdir()
    Image.new("RGB", (16, 16)).save(folder / ".thumbs" / "thumb.png")


def write_noise_images(folder: Path, count: int, size: int = 20, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(noise(size, size + i % 3, seed + i)).save(folder / f"img{i:03d}.png")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def run(sources, out, **kwargs) -> PrepareReport:
    kwargs.setdefault("workers", 1)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("size", 16)
    return prepare_dataset(sources, out, **kwargs)


@pytest.fixture
def mixed(tmp_path) -> Path:
    src = tmp_path / "src"
    write_good(src)
    write_bad(src)
    write_hidden(src)
    return src


def test_mixed_folder(mixed, tmp_path):
    out = tmp_path / "ds"
    report = run(mixed, out, max_pixels=1_000_000)

    assert report.out == out
    assert report.kept == len(GOOD)
    assert report.classes == []
    assert report.seconds > 0
    images = np.load(out / "images.npy")
    assert images.shape == (len(GOOD), 16, 16, 3)
    assert images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    assert (out / "preview.png").is_file()
    assert not (out / "labels.npy").exists()
    assert leftovers(tmp_path) == []

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "ganvas-dataset"
    assert manifest["count"] == len(GOOD)
    assert manifest["resolution"] == 16 and manifest["channels"] == 3
    assert manifest["classes"] == []
    assert manifest["sources"] == [str(mixed.resolve())]
    assert manifest["files"] == [f"0:{name}" for name in sorted(GOOD)]
    assert manifest["splits"] == {"val": []}
    assert manifest["params"]["size"] == 16
    assert manifest["params"]["max_pixels"] == 1_000_000
    assert manifest["params"]["background"] == [255, 255, 255]
    assert manifest["content_hash"].startswith("sha256:")

    dropped = {Path(d["path"]).name: d["reason"] for d in manifest["dropped"]}
    assert set(dropped) == set(BAD)  # hidden files are neither kept nor reported
    for name, kind in BAD.items():
        assert dropped[name].startswith(kind), (name, dropped[name])
    assert all(Path(d["path"]).is_absolute() for d in manifest["dropped"])
    assert sorted(report.dropped) == sorted((d["path"], d["reason"]) for d in manifest["dropped"])

    # Spot checks of pixel content, in dataset (sorted file name) order.
    by_name = dict(zip(sorted(GOOD), images, strict=True))
    assert (by_name["grey.png"] == 90).all()
    assert (by_name["deep.png"] == 255).all()
    assert (by_name["palette.png"] == (0, 0, 255)).all()
    assert (by_name["rgba.png"][:, :4] == 255).all()  # transparent → white background
    assert (by_name["anim.gif"][..., 1] > 100).all()  # first (green) frame
    assert np.abs(by_name["cmyk.tif"].astype(int) - (255, 0, 0)).max() <= 3

    dataset = load_dataset(out)
    assert len(dataset) == len(GOOD)


def test_summary_table(mixed, tmp_path):
    report = run(mixed, tmp_path / "ds", max_pixels=1_000_000)
    assert report.dropped_by_reason() == {
        "not an image": [str(mixed.resolve() / "corrupt.jpg"), str(mixed.resolve() / "readme.txt")],
        "corrupt or truncated image": [str(mixed.resolve() / "half.png")],
        "empty file": [str(mixed.resolve() / "empty.png")],
        "too large": [str(mixed.resolve() / "huge.png")],
    }
    console = Console(file=io.StringIO(), width=200)
    console.print(report.summary_table())
    text = console.file.getvalue()
    assert "9 images kept, 5 files dropped" in text
    assert "not an image" in text and "readme.txt" in text


def test_greyscale_dataset(mixed, tmp_path):
    report = run(mixed, tmp_path / "ds", channels=1, size=8, max_pixels=1_000_000)
    images = np.load(tmp_path / "ds" / "images.npy")
    assert images.shape == (report.kept, 8, 8, 1)


def test_labels_from_subfolders(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    write_noise_images(first / "cats", 2)
    write_noise_images(first / "dogs" / "nested", 1, seed=10)
    write_noise_images(second / "birds", 1, seed=20)
    write_noise_images(second / "cats", 1, seed=30)
    (second / "cats" / "broken.png").write_bytes(b"nope")
    Image.new("RGB", (16, 16)).save(first / "loose.png")
    (second / "empty_class").mkdir()

    report = run([first, second], tmp_path / "ds", labels="subfolders")

    assert report.classes == ["birds", "cats", "dogs"]
    dataset = load_dataset(tmp_path / "ds")
    assert dataset.classes == ["birds", "cats", "dogs"]
    files = dataset.manifest["files"]
    assert files == [
        "0:cats/img000.png",
        "0:cats/img001.png",
        "0:dogs/nested/img000.png",
        "1:birds/img000.png",
        "1:cats/img000.png",
    ]
    assert dataset.labels.dtype == np.int64
    assert dataset.labels.tolist() == [1, 1, 2, 0, 1]
    dropped = dict(report.dropped)
    assert dropped[str((first / "loose.png").resolve())] == NOT_IN_CLASS_FOLDER
    assert dropped[str((second / "cats" / "broken.png").resolve())].startswith("not an image")


def test_validation_split(tmp_path):
    write_noise_images(tmp_path / "src", 10)
    run(tmp_path / "src", tmp_path / "a", val_fraction=0.2, seed=3)
    run(tmp_path / "src", tmp_path / "b", val_fraction=0.2, seed=3)
    run(tmp_path / "src", tmp_path / "c", val_fraction=0.01, seed=3)
    a, b, c = (load_dataset(tmp_path / name) for name in "abc")

    val = a.manifest["splits"]["val"]
    assert len(val) == 2
    assert val == sorted(set(val)) and all(0 <= i < 10 for i in val)
    assert b.manifest["splits"]["val"] == val  # same seed, same split
    assert len(c.manifest["splits"]["val"]) == 1  # never an empty split when asked for one
    assert len(a.split_indices("train")) == 8
    assert a.manifest["params"]["val_fraction"] == 0.2


def test_content_hash_is_stable(mixed, tmp_path):
    first = run(mixed, tmp_path / "a", max_pixels=1_000_000)
    second = run(mixed, tmp_path / "b", max_pixels=1_000_000)
    assert first.kept == second.kept
    hashes = [
        json.loads((tmp_path / name / "manifest.json").read_text())["content_hash"] for name in "ab"
    ]
    assert hashes[0] == hashes[1]
    assert (tmp_path / "a" / "images.npy").read_bytes() == (
        tmp_path / "b" / "images.npy"
    ).read_bytes()


def test_process_pool_matches_in_process(tmp_path):
    write_noise_images(tmp_path / "src", 12, size=24)
    (tmp_path / "src" / "bad.png").write_bytes(b"\x89PNG garbage")
    serial = run(tmp_path / "src", tmp_path / "serial", workers=1)
    pooled = run(tmp_path / "src", tmp_path / "pooled", workers=2)
    assert serial.kept == pooled.kept == 12
    assert serial.dropped == pooled.dropped
    assert (tmp_path / "serial" / "images.npy").read_bytes() == (
        tmp_path / "pooled" / "images.npy"
    ).read_bytes()


def exploding_decode(monkeypatch, on_call: int) -> None:
    real = prepare_module.decode_image
    calls = {"n": 0}

    def decode(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == on_call:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare_module, "decode_image", decode)


def test_crash_mid_way_leaves_nothing(tmp_path, monkeypatch):
    write_noise_images(tmp_path / "src", 5)
    exploding_decode(monkeypatch, on_call=3)
    with pytest.raises(RuntimeError, match="boom"):
        run(tmp_path / "src", tmp_path / "out" / "ds")
    assert not (tmp_path / "out" / "ds").exists()
    assert leftovers(tmp_path / "out") == []


def test_failed_overwrite_keeps_old_dataset(tmp_path, monkeypatch):
    write_noise_images(tmp_path / "src", 5)
    out = tmp_path / "ds"
    run(tmp_path / "src", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    exploding_decode(monkeypatch, on_call=3)
    with pytest.raises(RuntimeError, match="boom"):
        run(tmp_path / "src", out, overwrite=True, size=32)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert leftovers(tmp_path) == []

    monkeypatch.undo()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.txt").write_text("x")
    with pytest.raises(DatasetError, match="no usable images"):
        run(tmp_path / "empty", out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert leftovers(tmp_path) == []


def test_overwrite_replaces(tmp_path):
    write_noise_images(tmp_path / "src", 3)
    out = tmp_path / "ds"
    run(tmp_path / "src", out)
    report = run(tmp_path / "src", out, overwrite=True, size=8)
    assert report.kept == 3
    assert load_dataset(out).resolution == 8
    assert leftovers(tmp_path) == []


def test_out_inside_source_is_not_read_back(tmp_path):
    src = tmp_path / "src"
    write_noise_images(src, 3)
    run(src, src / "ds")
    report = run(src, src / "ds", overwrite=True)
    assert report.kept == 3
    assert report.dropped == []


def test_symlink_loops_are_walked_once(tmp_path):
    src = tmp_path / "src"
    write_noise_images(src / "a", 2)
    os.symlink(src, src / "a" / "loop")
    os.symlink(src / "a", src / "alias")
    report = run(src, tmp_path / "ds")
    assert report.kept == 2
    assert load_dataset(tmp_path / "ds").manifest["files"] == ["0:a/img000.png", "0:a/img001.png"]


def test_single_file_sources(tmp_path):
    write_noise_images(tmp_path / "src", 2)
    files = [tmp_path / "src" / "img001.png", tmp_path / "src" / "img000.png"]
    report = run(files, tmp_path / "ds")
    assert report.kept == 2
    assert load_dataset(tmp_path / "ds").manifest["files"] == ["0:img001.png", "1:img000.png"]


def test_missing_source(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as caught:
        run(tmp_path / "nowhere", tmp_path / "ds")
    assert str(tmp_path / "nowhere") in str(caught.value)


def test_empty_source(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_hidden(src)
    with pytest.raises(DatasetError, match="holds no files") as caught:
        run(src, tmp_path / "ds")
    assert str(src) in str(caught.value)
    assert not (tmp_path / "ds").exists()


def test_only_bad_files(tmp_path):
    write_bad(tmp_path / "src")
    with pytest.raises(DatasetError, match="no usable images") as caught:
        run(tmp_path / "src", tmp_path / "ds", max_pixels=1_000_000)
    message = str(caught.value)
    assert "all 5 files were rejected" in message
    assert "2 × not an image" in message
    assert str(tmp_path / "src") in message
    assert not (tmp_path / "ds").exists()
    assert leftovers(tmp_path) == []


def test_subfolders_without_subfolders(tmp_path):
    write_noise_images(tmp_path / "src", 2)
    with pytest.raises(DatasetError, match="not inside a class subfolder"):
        run(tmp_path / "src", tmp_path / "ds", labels="subfolders")


def test_out_exists(tmp_path):
    write_noise_images(tmp_path / "src", 1)
    (tmp_path / "ds").mkdir()
    with pytest.raises(DatasetError, match="pass --overwrite"):
        run(tmp_path / "src", tmp_path / "ds")


def test_overwrite_refuses_a_folder_that_is_not_a_dataset(tmp_path):
    write_noise_images(tmp_path / "src", 1)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "keep.jpg").write_bytes(b"precious")
    with pytest.raises(DatasetError, match="not a ganvas dataset"):
        run(tmp_path / "src", tmp_path / "photos", overwrite=True)
    assert (tmp_path / "photos" / "keep.jpg").read_bytes() == b"precious"
    with pytest.raises(DatasetError, match="inside the output"):
        run(tmp_path / "src", tmp_path, overwrite=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 4}, "size"),
        ({"size": 5000}, "size"),
        ({"channels": 2}, "channels"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"labels": "folders"}, "labels"),
        ({"background": (1, 2)}, "background"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    write_noise_images(tmp_path / "src", 1)
    with pytest.raises(DatasetError, match=match):
        run(tmp_path / "src", tmp_path / "ds", **kwargs)
    assert not (tmp_path / "ds").exists()


def test_background_spellings(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(src / "clear.png")
    for name, background in [("a", (255, 0, 0)), ("b", "#ff0000"), ("c", "red")]:
        run(src, tmp_path / name, background=background)
        assert (np.load(tmp_path / name / "images.npy") == (255, 0, 0)).all()
    run(src, tmp_path / "d", background=128)
    assert (np.load(tmp_path / "d" / "images.npy") == 128).all()
