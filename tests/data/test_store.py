"""The dataset directory as a public format: dataset dirs an earlier ganvas wrote still load.

tests/fixtures/datasets_v1 holds two dataset dirs written by the ganvas before manifest
version 2 (a folder of two classes, and an LMDB read with two random crops per entry, whose
manifest named every image by its key).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ganvas.data.card import dataset_card
from ganvas.data.store import (
    FORMAT_VERSION,
    DatasetError,
    content_hash,
    file_counts,
    file_names,
    load_dataset,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "datasets_v1"


@pytest.mark.parametrize("name", ["folder_v1", "lmdb_v1"])
def test_a_version_1_dataset_dir_loads_migrated(name):
    saved = json.loads((FIXTURES / name / "manifest.json").read_text())
    assert saved["version"] == 1  # as written, untouched by loading
    data = load_dataset(FIXTURES / name)
    assert (
        data.manifest["version"] == FORMAT_VERSION and data.manifest["migrated_from_version"] == 1
    )
    assert list(data.file_names()) == saved["files"]  # its names, one per image, as they were
    assert len(data) == saved["count"] == len(saved["files"])
    assert content_hash(np.asarray(data.images), data.labels) == saved["content_hash"]
    card = dataset_card(data)
    assert card["images"] == len(data) and card["per_source"] == {saved["sources"][0]: len(data)}
    assert json.loads((FIXTURES / name / "manifest.json").read_text()) == saved


def test_the_version_1_folder_dataset_keeps_its_classes():
    data = load_dataset(FIXTURES / "folder_v1")
    assert data.classes == ["cat", "dog"] and data.labels.tolist() == [0, 0, 1, 1]
    assert list(data.file_names()) == ["0:cat/0.png", "0:cat/1.png", "0:dog/0.png", "0:dog/1.png"]


def test_a_manifest_newer_than_this_ganvas_is_refused(tmp_path):
    shutil.copytree(FIXTURES / "folder_v1", tmp_path / "ds")
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    manifest["version"] = FORMAT_VERSION + 1
    (tmp_path / "ds" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="newer ganvas"):
        load_dataset(tmp_path / "ds")


def test_container_ranges_expand_to_one_name_per_image():
    manifest = {
        "scan": {"mosaic": None, "random_crops": 2},
        "files": [
            "0:a.png#crop=0",
            "0:a.png#crop=1",
            {"container": "1:lsun", "entries": [[0, 2], [5, 6]], "outputs": 2},
            {"container": "1:lsun", "entries": [[6, 7]], "outputs": 1},  # a class cap cut it
        ],
    }
    assert list(file_names(manifest)) == [
        "0:a.png#crop=0", "0:a.png#crop=1",
        "1:lsun#entry=0#crop=0", "1:lsun#entry=0#crop=1",
        "1:lsun#entry=1#crop=0", "1:lsun#entry=1#crop=1",
        "1:lsun#entry=5#crop=0", "1:lsun#entry=5#crop=1",
        "1:lsun#entry=6#crop=0",
    ]  # fmt: skip
    assert list(file_counts(manifest)) == [
        ("0:a.png#crop=0", 1), ("0:a.png#crop=1", 1), ("1:lsun", 6), ("1:lsun", 1)
    ]  # fmt: skip
