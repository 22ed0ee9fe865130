"""The dataset workshop end to end: a film encoded by the test with planted black, title,
blurred and repeated frames; crops, mosaics and borders; list files; classes; resuming.

Filter precision and recall on the planted film (21 frames, 96×96 H.264, read at 64 px):
    --drop-blank   3 planted, precision 1.00 recall 1.00
    --drop-text    3 planted, precision 1.00 recall 1.00
    --blur 100     3 planted, precision 1.00 recall 1.00
    --dedupe 6     7 planted repeats, precision 1.00 recall 1.00 (one frame of each scene kept)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import ganvas.data.prepare as prepare_module
from ganvas.data.images import decode_image
from ganvas.data.prepare import PrepareReport, prepare_dataset
from ganvas.data.settings import PrepareSettings
from ganvas.data.store import DatasetError, content_hash, load_dataset
from ganvas.errors import ConfigError
from tests.data.test_filters import blank, blur, painting, title_card

FPS = 10


def film_script() -> list[tuple[str, np.ndarray]]:
    """(kind, frame) in film order: a slowly panning shot, black frames, title cards, a still
    shot, three blurred pictures, three distinct sharp pictures."""
    shot, still = painting(1), painting(2)
    script = [("scene1", np.roll(shot, k, axis=1)) for k in range(5)]
    script += [("blank", blank(i)) for i in range(3)]
    script += [("text", title_card(i)) for i in range(3)]
    script += [("scene2", still) for _ in range(4)]
    script += [("blurry", blur(painting(3 + i), 2.5)) for i in range(3)]
    script += [("single", painting(6 + i)) for i in range(3)]
    return script


def encode(path: Path, frames: list[np.ndarray]) -> Path:
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.gop_size = 6  # several keyframes: split units seek into the middle
        if codec == "libx264":
            stream.options = {"crf": "12", "bf": "0"}
        else:
            stream.bit_rate = 4_000_000
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    script = film_script()
    path = encode(tmp_path_factory.mktemp("film") / "film.mp4", [img for _, img in script])
    return path, [kind for kind, _ in script]


def run(sources, out, **kwargs) -> PrepareReport:
    kwargs.setdefault("workers", 1)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("size", 32)
    return prepare_dataset(sources, out, **kwargs)


def frame_of(name: str) -> int:
    return int(name.split("#frame=")[1].split("#")[0])


def dropped_frames(out: Path) -> dict[int, str]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {frame_of(d["path"]): d["reason"] for d in manifest["dropped"]}


def kept_frames(out: Path) -> list[int]:
    manifest = json.loads((out / "manifest.json").read_text())
    return [frame_of(name) for name in manifest["files"]]


def precision_recall(found: set[int], truth: set[int]) -> tuple[float, float]:
    hits = len(found & truth)
    return hits / max(1, len(found)), hits / max(1, len(truth))


def test_film_filters_find_the_planted_frames(film, tmp_path):
    path, kinds = film
    out = tmp_path / "ds"
    report = run(path, out, size=64, drop_blank=True, drop_text=True, blur=100, dedupe=6)
    reasons = dropped_frames(out)
    planted = {kind: {i for i, k in enumerate(kinds) if k == kind} for kind in set(kinds)}

    def found(word: str) -> set[int]:
        return {i for i, reason in reasons.items() if reason.startswith(word)}

    blank_found = found("near-black") | found("blank single colour")
    assert precision_recall(blank_found, planted["blank"]) == (1.0, 1.0)
    assert precision_recall(found("title or text"), planted["text"]) == (1.0, 1.0)
    assert precision_recall(found("blurry"), planted["blurry"]) == (1.0, 1.0)
    # Every repeated frame of the two shots goes, one frame of each shot stays.
    repeats = planted["scene1"] | planted["scene2"]
    assert found("near-duplicate") < repeats and len(found("near-duplicate")) == len(repeats) - 2
    kept = kept_frames(out)
    assert len(kept) == report.kept == 5
    assert len(set(kept) & planted["scene1"]) == 1 and len(set(kept) & planted["scene2"]) == 1
    assert set(kept) >= planted["single"]
    # Each kind of drop is shown on a contact sheet inside the dataset.
    for sheet in report.contact_sheets.values():
        assert sheet.is_file() and sheet.parent == out / "dropped"
    assert {"near-duplicate", "blurry", "title or text frame"} <= set(report.contact_sheets)
    with Image.open(report.contact_sheets["blurry"]) as img:
        assert img.width >= 32 * 3


def test_every_and_time_range(film, tmp_path):
    path, _ = film
    run(path, tmp_path / "ds", every=3, start="0.5", end="0:01.8")
    # 10 fps: 0.5 s is frame 5, so the first multiple of 3 is 6; 1.8 s is frame 18 (excluded).
    assert kept_frames(tmp_path / "ds") == [6, 9, 12, 15]


def test_film_split_into_many_units_reads_each_frame_once(film, tmp_path, monkeypatch):
    path, kinds = film
    whole = run(path, tmp_path / "whole")
    monkeypatch.setattr(prepare_module, "_UNIT_BYTES", 4 * 32 * 32 * 3)  # 4 frames a unit
    split = run(path, tmp_path / "split", every=1)
    assert kept_frames(tmp_path / "split") == list(range(len(kinds)))
    assert whole.kept == split.kept == len(kinds)
    a = np.load(tmp_path / "whole" / "images.npy")
    b = np.load(tmp_path / "split" / "images.npy")
    assert np.array_equal(a, b)


def test_max_per_scene_spreads_the_kept_frames(film, tmp_path):
    path, kinds = film
    run(path, tmp_path / "ds", drop_blank=True, drop_text=True, max_per_scene=2)
    kept = kept_frames(tmp_path / "ds")
    # The 5-frame shot keeps its first and last frame; the 4-frame still shot likewise.
    assert [i for i in kept if kinds[i] == "scene1"] == [0, 4]
    assert [i for i in kept if kinds[i] == "scene2"] == [11, 14]
    assert len(kept) == 2 + 2 + 3 + 3


def test_mixed_bad_files_still_make_a_dataset(film, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "film.mp4").write_bytes(film[0].read_bytes())
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a film")
    Image.fromarray(painting(40)).save(src / "good.png")
    good = (src / "good.png").read_bytes()
    (src / "truncated.png").write_bytes(good[: len(good) // 2])
    (src / "notes.txt").write_text("not an image")
    report = run(src, tmp_path / "ds")
    assert report.kept == 21 + 1
    reasons = {Path(path).name: reason for path, reason in report.dropped}
    assert reasons["broken.mp4"].startswith("cannot open video")
    assert reasons["truncated.png"].startswith("corrupt or truncated")
    assert reasons["notes.txt"].startswith("not an image")


def texture(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_trim_borders_recovers_the_inner_picture(tmp_path):
    inner = texture(40, 40, 1)
    framed = np.zeros((40 + 8 + 8, 40 + 4 + 10, 3), np.uint8)  # black bars, uneven margins
    framed[:, :, :] = (200, 170, 60)  # a gold frame band outside...
    framed[3:-3, 2:-2] = 0  # ...a black mat inside it
    framed[8:48, 4:44] = inner
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(framed).save(src / "framed.png")
    run(src, tmp_path / "trimmed", size=40, trim_borders=True)
    assert np.array_equal(load_dataset(tmp_path / "trimmed").images[0], inner)
    run(src, tmp_path / "plain", size=40)
    assert not np.array_equal(load_dataset(tmp_path / "plain").images[0], inner)


def test_mosaic_and_random_crop_counts_are_exact(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.fromarray(texture(90, 120, i)).save(src / f"p{i}.png")
    assert run(src, tmp_path / "m", mosaic="3x2").kept == 3 * 6
    assert run(src, tmp_path / "r", random_crops=4).kept == 3 * 4
    both = run(src, tmp_path / "b", mosaic="2x2", random_crops=3, crop_scale=(0.5, 1.0))
    assert both.kept == 3 * 4 * 3
    names = json.loads((tmp_path / "b" / "manifest.json").read_text())["files"]
    assert names[:4] == [
        "0:p0.png#tile=0,0#crop=0",
        "0:p0.png#tile=0,0#crop=1",
        "0:p0.png#tile=0,0#crop=2",
        "0:p0.png#tile=0,1#crop=0",
    ]
    # A mosaic tile is cut from the full-resolution source: the top-left 45x60 tile,
    # centre-cropped to 45x45, is the first image (no resize at size 45).
    run(src, tmp_path / "m45", mosaic="2x2", size=45)
    source = texture(90, 120, 0)
    assert np.array_equal(load_dataset(tmp_path / "m45").images[0], source[:45, 7:52])
    # Random crops are seeded: the same seed gives the same crops, another seed others.
    again = run(src, tmp_path / "r2", random_crops=4)
    other = run(src, tmp_path / "r3", random_crops=4, seed=1)
    assert again.kept == other.kept == 12
    first = load_dataset(tmp_path / "r").images
    assert np.array_equal(first, load_dataset(tmp_path / "r2").images)
    assert not np.array_equal(first, load_dataset(tmp_path / "r3").images)


def test_list_file_source(tmp_path):
    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(3):
        Image.fromarray(texture(20, 20, i)).save(pics / f"{i}.png")
    listing = tmp_path / "list.txt"
    listing.write_text(
        f"# my picks\npics/0.png\n\n{pics / '2.png'}\npics/missing.png\n", encoding="utf-8"
    )
    report = run(listing, tmp_path / "ds")
    assert report.kept == 2
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["files"] == ["0:pics/0.png", f"0:{pics / '2.png'}"]
    assert report.dropped == [
        (str(tmp_path / "pics" / "missing.png"), "listed file not found (list.txt line 5)")
    ]


@pytest.fixture
def classes_folder(tmp_path: Path) -> Path:
    counts = {"apples": 6, "pears": 3, "plums": 2}
    for k, (name, count) in enumerate(counts.items()):
        (tmp_path / "src" / name).mkdir(parents=True)
        for i in range(count):
            img = texture(20, 20, 10 * k + i)
            Image.fromarray(img).save(tmp_path / "src" / name / f"{i}.png")
    return tmp_path / "src"


def test_class_subsets_and_balance(classes_folder, tmp_path):
    chosen = run(classes_folder, tmp_path / "a", labels="subfolders", classes=["apples,pears"])
    assert chosen.classes == ["apples", "pears"] and chosen.kept == 9
    left = run(classes_folder, tmp_path / "b", labels="subfolders", exclude_classes=["apples"])
    assert left.classes == ["pears", "plums"] and left.kept == 5
    with pytest.raises(DatasetError, match="no class named 'kiwis'.*apples, pears, plums"):
        run(classes_folder, tmp_path / "c", labels="subfolders", classes=["kiwis"])
    with pytest.raises(ConfigError, match="classes set, but labels is 'none'"):
        run(classes_folder, tmp_path / "d", labels="none", classes=["apples"])

    balanced = run(classes_folder, tmp_path / "e", labels="subfolders", max_per_class=2)
    labels = load_dataset(tmp_path / "e").labels
    assert balanced.kept == 6 and np.bincount(labels).tolist() == [2, 2, 2]
    # With crops, the cap counts dataset images, not source files: exactly 4 per class.
    run(classes_folder, tmp_path / "f", labels="subfolders", random_crops=3, max_per_class=4)
    dataset = load_dataset(tmp_path / "f")
    assert np.bincount(dataset.labels).tolist() == [4, 4, 4]
    # The hash written while streaming the rows is the hash of what is on disk.
    assert dataset.manifest["content_hash"] == content_hash(dataset.images, dataset.labels)


def test_changed_settings_start_the_scan_over(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        Image.fromarray(texture(20, 20, i)).save(src / f"{i}.png")
    import ganvas.data.scan as scan_module

    real = scan_module.open_picture

    def fail_on_third(path, *args, **kwargs):
        if path.endswith("2.png"):
            raise RuntimeError("boom")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(scan_module, "open_picture", fail_on_third)
    with pytest.raises(RuntimeError):
        run(src, tmp_path / "ds")
    monkeypatch.undo()
    assert run(src, tmp_path / "ds", size=16).resumed == 0  # other size: other pixels
    with pytest.raises(RuntimeError):
        monkeypatch.setattr(scan_module, "open_picture", fail_on_third)
        run(src, tmp_path / "ds2")
    monkeypatch.undo()
    assert run(src, tmp_path / "ds2", resume=False).resumed == 0


@pytest.mark.slow
def test_killed_prepare_resumes_without_redoing_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    count = 240
    for i in range(count):  # big noisy PNGs: slow enough to kill the run mid-way
        Image.fromarray(rng.integers(0, 256, (700, 700, 3), dtype=np.uint8)).save(
            src / f"{i:03d}.png", compress_level=1
        )
    out = tmp_path / "ds"
    command = [sys.executable, "-m", "ganvas.cli", "prepare", str(src), "--out", str(out),
               "--size", "32", "--workers", "1"]  # fmt: skip
    # Journal every finished file at once, so the kill can land right after the first one.
    env = dict(os.environ, COLUMNS="200", GANVAS_PREPARE_SYNC_SECONDS="0")
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = tmp_path / ".ds.prepare-work" / "journal.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        if journal.is_file() and journal.stat().st_size > 0:
            break
        time.sleep(0.05)
    assert first.poll() is None, "the first run finished before it could be interrupted"
    first.send_signal(signal.SIGKILL)  # no chance to tidy up: the journal must still be good
    first.wait()
    done = len(journal.read_text().splitlines())
    assert 0 < done < count

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    reused = int(second.stderr.split(" units reused")[0].rsplit(" ", 1)[-1])
    assert reused >= done
    dataset = load_dataset(out)
    assert len(dataset) == count
    assert dataset.manifest["files"] == [f"0:{i:03d}.png" for i in range(count)]
    for i in (0, done - 1, done, count - 1):
        assert np.array_equal(dataset.images[i], decode_image(src / f"{i:03d}.png", 32))
    assert not (tmp_path / ".ds.prepare-work").exists()


def test_grayscale_subset_even_for_greyscale_output(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.fromarray(painting(300 + i)).save(src / f"colour{i}.png")
        Image.fromarray(painting(400 + i, grey=True)).save(src / f"grey{i}.png")
    only = run(src, tmp_path / "bw", grayscale="only", channels=1)
    names = json.loads((tmp_path / "bw" / "manifest.json").read_text())["files"]
    assert only.kept == 3 and all("grey" in name for name in names)
    assert load_dataset(tmp_path / "bw").images.shape[-1] == 1
    dropped = run(src, tmp_path / "colour", grayscale="drop")
    names = json.loads((tmp_path / "colour" / "manifest.json").read_text())["files"]
    assert dropped.kept == 3 and all("colour" in name for name in names)


def test_command_line_film_to_dataset_card(film, tmp_path):
    from typer.testing import CliRunner

    from ganvas.cli import app

    runner = CliRunner()
    args = ["prepare", str(film[0]), "--out", str(tmp_path / "ds"), "--size", "32",
            "--every", "2", "--drop-blank", "--drop-text", "--mosaic", "2x2", "--workers", "1"]  # fmt: skip
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # Frames 0, 2, ..., 20; of those, 6 is black and 8 and 10 are title cards: 8 left, 4 tiles each.
    assert sorted(dropped_frames(tmp_path / "ds")) == [6, 8, 10]
    assert len(load_dataset(tmp_path / "ds")) == 8 * 4
    assert "contact sheet" in result.output
    info = runner.invoke(app, ["info", str(tmp_path / "ds")], env={"COLUMNS": "200"})
    assert info.exit_code == 0, info.output
    assert "title or text frame" in info.output and "dropped/" in info.output
    bad = runner.invoke(
        app, ["prepare", str(film[0]), "-o", str(tmp_path / "x"), "--mosaic", "five"]
    )
    assert bad.exit_code == 2 and "mosaic must look like RxC" in bad.output


def test_two_prepares_into_one_place_are_refused(tmp_path):
    from ganvas.data.journal import ScanJournal, work_folder

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(texture(20, 20, 0)).save(src / "a.png")
    settings = PrepareSettings(size=32).scan_settings()
    holder = ScanJournal(work_folder(tmp_path / "ds"), settings)
    try:
        with pytest.raises(DatasetError, match="another `ganvas prepare` is writing"):
            run(src, tmp_path / "ds")
    finally:
        holder.close()
    assert run(src, tmp_path / "ds").kept == 1


def test_journal_recovers_from_a_torn_write(tmp_path):
    from ganvas.data.journal import ScanJournal
    from ganvas.data.scan import UnitResult

    settings = PrepareSettings(size=8).scan_settings()
    folder = tmp_path / "work"
    journal = ScanJournal(folder, settings)
    rows = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)
    item = {"name": "", "reason": None, "rows": 2}
    journal.add(UnitResult("a", [item], rows, rows[:1]))
    journal.close()
    # A kill in the middle of the next unit: rows on disk, half its journal line.
    with open(folder / "outputs.u8", "ab") as f:
        f.write(b"\x07" * rows[0].nbytes * 3)
    with open(folder / "journal.jsonl", "a") as f:
        f.write('{"key": "b", "row0": 2, "thu')
    reopened = ScanJournal(folder, settings)
    assert list(reopened.entries) == ["a"] and reopened.rows == 2
    assert (folder / "outputs.u8").stat().st_size == rows.nbytes
    assert np.array_equal(reopened.read_rows([0, 1]), rows)
    reopened.add(UnitResult("b", [item], rows[::-1], rows[:1]))
    assert reopened.entries["b"].row0 == 2
    assert reopened.item_names(reopened.entries["a"]) == [""]  # names stay on disk
    reopened.close()
    again = ScanJournal(folder, settings)
    assert np.array_equal(again.read_rows([2, 3, 0]), rows[[1, 0, 0]])
    again.remove()
    assert not folder.exists()
