"""prepare_dataset: folders of files in, one dataset directory out."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

import ganvas.data.scan as scan_module
from ganvas.data.prepare import (
    IS_LABEL_FILE,
    NOT_IN_CLASS_FOLDER,
    PrepareReport,
    prepare_dataset,
    read_label_mapping,
)
from ganvas.data.store import DatasetError, load_dataset
from ganvas.errors import ConfigError

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
    real = scan_module.open_picture
    calls = {"n": 0}

    def decode(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == on_call:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(scan_module, "open_picture", decode)


def test_crash_mid_way_leaves_no_dataset_and_resumes(tmp_path, monkeypatch):
    write_noise_images(tmp_path / "src", 5)
    exploding_decode(monkeypatch, on_call=3)
    with pytest.raises(RuntimeError, match="boom"):
        run(tmp_path / "src", tmp_path / "out" / "ds")
    assert not (tmp_path / "out" / "ds").exists()
    # Only the resumable work is left behind; no half-written dataset.
    assert leftovers(tmp_path / "out") == [".ds.prepare-work"]

    monkeypatch.undo()
    resumed = run(tmp_path / "src", tmp_path / "out" / "ds")
    assert resumed.kept == 5 and resumed.resumed == 2
    assert leftovers(tmp_path / "out") == []
    run(tmp_path / "src", tmp_path / "clean")
    assert (tmp_path / "out" / "ds" / "images.npy").read_bytes() == (
        tmp_path / "clean" / "images.npy"
    ).read_bytes()


def test_failed_overwrite_keeps_old_dataset(tmp_path, monkeypatch):
    write_noise_images(tmp_path / "src", 5)
    out = tmp_path / "ds"
    run(tmp_path / "src", out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    exploding_decode(monkeypatch, on_call=3)
    with pytest.raises(RuntimeError, match="boom"):
        run(tmp_path / "src", out, overwrite=True, size=32)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert leftovers(tmp_path) == [".ds.prepare-work"]

    monkeypatch.undo()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.txt").write_text("x")
    with pytest.raises(DatasetError, match="no usable images"):
        run(tmp_path / "empty", out, overwrite=True, resume=False)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


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
    with pytest.raises(ConfigError, match=match):
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


# --- labels from a mapping file -----------------------------------------------------------


def solid(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 12), (value, value, value)).save(path)


@pytest.fixture
def paintings(tmp_path) -> Path:
    """a.png … e.png, each a solid grey whose level says which file it is."""
    src = tmp_path / "paintings"
    for n, name in enumerate("abcde"):
        solid(src / f"{name}.png", 40 * n)
    return src


def grey_levels(out: Path) -> list[int]:
    return [int(image[0, 0, 0]) for image in np.load(out / "images.npy")]


def test_labels_csv_with_named_columns(paintings, tmp_path):
    mapping = tmp_path / "labels.csv"
    mapping.write_text(
        "id,FileName,Genre,year\n"
        "1,a.png,portrait,1890\n"
        "2,b.png,landscape,1901\n"
        "3,c.png,portrait,1875\n"
        "4,e.png,still life,1920\n"
    )
    out = tmp_path / "ds"
    report = run(paintings, out, labels=str(mapping))

    assert report.classes == ["landscape", "portrait", "still life"]
    dataset = load_dataset(out)
    assert dataset.classes == report.classes
    assert dataset.manifest["files"] == ["0:a.png", "0:b.png", "0:c.png", "0:e.png"]
    assert grey_levels(out) == [0, 40, 80, 160]
    assert dataset.labels.dtype == np.int64
    assert dataset.labels.tolist() == [1, 0, 1, 2]
    assert dict(report.dropped) == {str(paintings.resolve() / "d.png"): "no label in labels.csv"}
    params = dataset.manifest["params"]
    assert params["labels"] == str(mapping.resolve())
    assert params["labels_sha256"] == hashlib.sha256(mapping.read_bytes()).hexdigest()
    assert dataset.manifest["unmatched_labels"] == 0
    assert dataset.manifest["unmatched_label_examples"] == []
    assert report.dropped_by_reason() == {
        "no label in labels.csv": [str(paintings.resolve() / "d.png")]
    }


def test_labels_csv_with_two_unnamed_columns(paintings, tmp_path, monkeypatch):
    (tmp_path / "map.csv").write_text("a,b\nb.png,x\nd.png,y\n\n")
    monkeypatch.chdir(tmp_path)
    report = run(paintings, tmp_path / "ds", labels="map.csv")  # relative to the cwd
    dataset = load_dataset(tmp_path / "ds")
    assert report.classes == ["x", "y"]
    assert grey_levels(tmp_path / "ds") == [40, 120]
    assert dataset.labels.tolist() == [0, 1]
    assert dataset.manifest["params"]["labels"] == str((tmp_path / "map.csv").resolve())
    reasons = {Path(path).name: reason for path, reason in report.dropped}
    assert reasons == {name: "no label in map.csv" for name in ("a.png", "c.png", "e.png")}


def test_labels_csv_semicolons_and_one_named_column(paintings, tmp_path):
    (tmp_path / "map.csv").write_text("Style;whatever\nrococo;c.png\nbaroque;a.png\n")
    report = run(paintings, tmp_path / "ds", labels=tmp_path / "map.csv")
    assert report.classes == ["baroque", "rococo"]
    assert load_dataset(tmp_path / "ds").labels.tolist() == [0, 1]


def test_labels_json_object(paintings, tmp_path):
    mapping = tmp_path / "labels.json"
    mapping.write_text(json.dumps({"e.png": "b", "a.png": "a", "c.png": "b"}))
    report = run(paintings, tmp_path / "ds", labels=str(mapping))
    dataset = load_dataset(tmp_path / "ds")
    assert report.classes == dataset.classes == ["a", "b"]
    assert grey_levels(tmp_path / "ds") == [0, 80, 160]
    assert dataset.labels.tolist() == [0, 1, 1]
    assert dataset.manifest["params"]["labels_sha256"] == (
        hashlib.sha256(mapping.read_bytes()).hexdigest()
    )


def test_labels_json_list(paintings, tmp_path):
    mapping = tmp_path / "labels.json"
    rows = [
        {"Image": "d.png", "Category": "dark", "note": "x"},
        {"Image": "b.png", "Category": "bright"},
        {"Image": "c.png", "Category": None},  # no class: not labelled
        {"Category": "orphan"},
    ]
    mapping.write_text(json.dumps(rows))
    report = run(paintings, tmp_path / "ds", labels=str(mapping))
    assert report.classes == ["bright", "dark"]
    assert grey_levels(tmp_path / "ds") == [40, 120]
    assert load_dataset(tmp_path / "ds").labels.tolist() == [0, 1]
    assert report.kept == 2 and len(report.dropped) == 3


def test_labels_match_relative_paths_before_bare_names(tmp_path):
    src = tmp_path / "src"
    solid(src / "1880" / "img.png", 10)
    solid(src / "1920" / "img.png", 20)
    solid(src / "1920" / "deep" / "other.png", 30)
    solid(src / "only_here.png", 40)
    mapping = tmp_path / "labels.csv"
    mapping.write_text(
        "path,label\n"
        "1920/img.png,modern\n"
        "1880\\img.png,old\n"  # Windows separators work too
        "./deep/other.png,modern\n"  # bare-name fallback (only one other.png)
        "only_here.png,old\n"
    )
    report = run(src, tmp_path / "ds", labels=str(mapping))
    dataset = load_dataset(tmp_path / "ds")
    assert report.dropped == []
    assert dataset.manifest["files"] == [
        "0:1880/img.png",
        "0:1920/deep/other.png",
        "0:1920/img.png",
        "0:only_here.png",
    ]
    assert report.classes == ["modern", "old"]
    assert dataset.labels.tolist() == [1, 0, 0, 1]
    assert grey_levels(tmp_path / "ds") == [10, 30, 20, 40]


def test_labels_exact_match_does_not_lend_its_row_to_a_namesake(tmp_path):
    src = tmp_path / "src"
    solid(src / "a" / "img.png", 10)
    solid(src / "b" / "img.png", 20)
    (tmp_path / "labels.csv").write_text("file,label\na/img.png,x\n")
    report = run(src, tmp_path / "ds", labels=str(tmp_path / "labels.csv"))
    assert report.kept == 1
    assert report.dropped == [(str(src.resolve() / "b" / "img.png"), "no label in labels.csv")]


def test_labels_ambiguous_bare_name_in_files(tmp_path):
    src = tmp_path / "src"
    solid(src / "a" / "img.png", 10)
    solid(src / "b" / "img.png", 20)
    solid(src / "c.png", 30)
    (tmp_path / "labels.csv").write_text("file,label\nimg.png,x\nc.png,y\n")
    with pytest.raises(DatasetError, match="ambiguous") as caught:
        run(src, tmp_path / "ds", labels=str(tmp_path / "labels.csv"))
    message = str(caught.value)
    assert "img.png" in message and "0:a/img.png" in message and "0:b/img.png" in message
    assert str(tmp_path / "labels.csv") in message
    assert not (tmp_path / "ds").exists()


def test_labels_ambiguous_bare_name_in_rows(tmp_path):
    src = tmp_path / "src"
    solid(src / "img.png", 10)
    (tmp_path / "labels.json").write_text(json.dumps({"x/img.png": "p", "y/img.png": "q"}))
    with pytest.raises(DatasetError, match="1 bare file name is ambiguous") as caught:
        run(src, tmp_path / "ds", labels=str(tmp_path / "labels.json"))
    assert "'x/img.png', 'y/img.png'" in str(caught.value)


def test_labels_unmatched_rows_are_counted(paintings, tmp_path):
    lines = ["file,class", "a.png,kept"] + [f"gone/{n:03d}.png,lost" for n in range(25)]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    report = run(paintings, tmp_path / "ds", labels=str(tmp_path / "labels.csv"))
    manifest = load_dataset(tmp_path / "ds").manifest
    assert report.kept == 1
    assert report.classes == manifest["classes"] == ["kept"]  # classes of kept images only
    assert manifest["unmatched_labels"] == report.unmatched_labels == 25
    assert manifest["unmatched_label_examples"] == [f"gone/{n:03d}.png" for n in range(20)]
    console = Console(file=io.StringIO(), width=200)
    console.print(report.summary_table())
    assert "25 labelled files were not found" in console.file.getvalue()


def test_labels_file_inside_the_source(paintings, tmp_path):
    mapping = paintings / "labels.csv"
    mapping.write_text("file,label\na.png,x\nb.png,y\nc.png,x\nd.png,y\ne.png,x\n")
    report = run(paintings, tmp_path / "ds", labels=str(mapping))
    assert report.kept == 5
    assert report.dropped == [(str(mapping.resolve()), IS_LABEL_FILE)]


def test_labels_matching_nothing(paintings, tmp_path):
    (tmp_path / "labels.csv").write_text("file,label\nimages/zz.png,x\n")
    with pytest.raises(DatasetError, match="no usable images") as caught:
        run(paintings, tmp_path / "ds", labels=str(tmp_path / "labels.csv"))
    assert "images/zz.png" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("l.csv", "name,genre,year\na.png,x,1\n", r"columns 'name', 'genre', 'year'"),
        ("l.csv", "", "empty"),
        ("l.csv", "file,label\n", "maps no files"),
        ("l.csv", "file,label\na.png,x\n./a.png,y\n", "two classes"),
        ("l.json", "{not json", "not valid JSON"),
        ("l.json", "[1, 2]", "JSON object"),
        ("l.json", '{"a.png": ["x"]}', "expected a name"),
        ("l.json", '[{"a": 1, "b": 2, "c": 3}]', "columns 'a', 'b', 'c'"),
    ],
)
def test_bad_label_files(paintings, tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(DatasetError, match=match) as caught:
        run(paintings, tmp_path / "ds", labels=str(tmp_path / name))
    assert str(tmp_path / name) in str(caught.value)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("labels", ["folders", "missing.csv", "notes.txt", ""])
def test_bad_labels_argument(tmp_path, labels, monkeypatch):
    write_noise_images(tmp_path / "src", 1)
    (tmp_path / "notes.txt").write_text("file,label\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        run(tmp_path / "src", tmp_path / "ds", labels=labels)
    message = str(caught.value)
    assert "'auto'" in message and "'none'" in message and "'subfolders'" in message
    assert ".csv/.json" in message
    assert not (tmp_path / "ds").exists()


def test_read_label_mapping_integers_and_bom(tmp_path):
    (tmp_path / "l.csv").write_bytes("\ufeffFile,Label\n1.png,3\n".encode())
    mapping = read_label_mapping(tmp_path / "l.csv")
    assert mapping.classes == {"1.png": "3"}
    (tmp_path / "l.json").write_text('{"1.png": 3}')
    assert read_label_mapping(tmp_path / "l.json").classes == {"1.png": "3"}
