"""`--labels auto`, the default: class folders become labels when the layout is unmistakable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ganvas.cli import app
from ganvas.data.labels import NOT_IN_FOUND_CLASS_FOLDER
from ganvas.data.prepare import PrepareReport, prepare_dataset
from ganvas.data.store import DatasetError, load_dataset

CLASSES = {"cat": 3, "dog": 2, "fox": 1}


def picture(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 14, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def class_tree(root: Path, classes: dict[str, int] = CLASSES) -> Path:
    """root/<class>/<n>.png, a picture apiece."""
    for k, (name, count) in enumerate(classes.items()):
        for i in range(count):
            picture(root / name / f"{i}.png", seed=10 * k + i)
    return root


def run(sources, out: Path, **kwargs) -> PrepareReport:
    return prepare_dataset(sources, out, size=8, workers=1, progress=False, **kwargs)


def test_class_folders_become_labels_by_default(tmp_path):
    src = class_tree(tmp_path / "src")
    (src / "README.txt").write_text("where these came from")  # not a picture: no obstacle
    report = run(src, tmp_path / "ds")

    assert report.classes == ["cat", "dog", "fox"]
    assert report.labels_note == (
        "labels: 3 classes from subfolders (cat, dog, fox); --labels none ignores them"
    )
    dataset = load_dataset(tmp_path / "ds")
    assert dataset.classes == ["cat", "dog", "fox"]
    assert np.load(tmp_path / "ds" / "labels.npy").tolist() == [0, 0, 0, 1, 1, 2]
    assert dataset.manifest["params"]["labels"] == "auto"
    assert dict(report.dropped) == {str((src / "README.txt").resolve()): NOT_IN_FOUND_CLASS_FOLDER}


def test_labels_none_ignores_the_class_folders(tmp_path):
    report = run(class_tree(tmp_path / "src"), tmp_path / "ds", labels="none")
    assert report.classes == [] and report.labels_note == ""
    assert report.kept == 6
    assert not (tmp_path / "ds" / "labels.npy").exists()
    assert load_dataset(tmp_path / "ds").classes == []


def test_a_picture_beside_the_folders_means_no_labels_and_says_why(tmp_path):
    src = class_tree(tmp_path / "src")
    picture(src / "stray.png", seed=99)
    report = run(src, tmp_path / "ds")

    assert report.classes == [] and report.kept == 7
    assert not (tmp_path / "ds" / "labels.npy").exists()
    assert report.labels_note.startswith("labels: none, as 1 picture lies directly in ")
    assert "(e.g. stray.png), beside the subfolders (cat, dog, fox)" in report.labels_note
    assert "--labels subfolders" in report.labels_note


def test_one_folder_is_not_a_set_of_classes(tmp_path):
    src = class_tree(tmp_path / "src", {"photos": 3})
    report = run(src, tmp_path / "ds")
    assert report.classes == [] and report.kept == 3
    assert report.labels_note == "labels: none, as only one subfolder (photos) holds pictures"


def test_a_flat_folder_needs_no_note(tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        picture(src / f"{i}.png", seed=i)
    report = run(src, tmp_path / "ds")
    assert report.classes == [] and report.labels_note == ""


def test_folders_of_several_sources_are_not_guessed(tmp_path):
    first = class_tree(tmp_path / "one")
    second = class_tree(tmp_path / "two")
    report = run([first, second], tmp_path / "ds")
    assert report.classes == [] and report.kept == 12
    assert run([first, second], tmp_path / "ds2", labels="subfolders").classes == list(CLASSES)


def test_folders_holding_no_pictures_are_no_classes(tmp_path):
    src = class_tree(tmp_path / "src", {"cat": 2, "dog": 2})
    (src / "notes").mkdir()
    (src / "notes" / "todo.txt").write_text("sort the foxes")
    report = run(src, tmp_path / "ds")
    assert report.classes == ["cat", "dog"]
    assert dict(report.dropped)[str((src / "notes" / "todo.txt").resolve())].startswith(
        "not an image"
    )


def test_class_subsets_work_on_found_folders_and_explain_when_none_are(tmp_path):
    src = class_tree(tmp_path / "src")
    assert run(src, tmp_path / "a", classes=["cat,fox"]).classes == ["cat", "fox"]
    flat = tmp_path / "flat"
    picture(flat / "0.png", seed=0)
    with pytest.raises(DatasetError, match="--labels auto found no class folders"):
        run(flat, tmp_path / "b", max_per_class=2)
    with pytest.raises(DatasetError, match="only when the one source is a folder"):
        run([src, flat], tmp_path / "c", classes=["cat"])


runner = CliRunner()


def test_command_line_finds_the_classes_and_says_so(tmp_path):
    src = class_tree(tmp_path / "src")
    args = ["prepare", str(src), "--out", str(tmp_path / "ds"), "--size", "8", "--workers", "1"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "labels: 3 classes from subfolders (cat, dog, fox); --labels none ignores them" in (
        result.output
    )
    assert "6 images, 3 classes" in result.output
    assert np.load(tmp_path / "ds" / "labels.npy").tolist() == [0, 0, 0, 1, 1, 2]
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["classes"] == ["cat", "dog", "fox"]

    args = ["prepare", str(src), "--out", str(tmp_path / "plain"), "--size", "8", "--labels",
            "none", "--workers", "1"]  # fmt: skip
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "labels:" not in result.output and "classes" not in result.output
    assert not (tmp_path / "plain" / "labels.npy").exists()
