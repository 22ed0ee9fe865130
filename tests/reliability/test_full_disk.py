"""Full disk: training and prepare into a small tmpfs the test mounts. The error says what
was being written and which checkpoint is the newest complete one; that one is intact; the
run resumes (bit for bit) once space is freed; a dataset dir is never left half written.

Mounting needs root (CAP_SYS_ADMIN), as in CI's containers; elsewhere the tests are skipped
with that reason.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganvas import checkpoint as ckpt
from ganvas.data.prepare import prepare_dataset
from ganvas.data.store import DatasetError, load_dataset
from ganvas.errors import DiskFullError
from ganvas.training.trainer import train
from tests.conftest import assert_same, tiny_config

PAGE = 4096


@pytest.fixture
def small_disk(tmp_path):
    """mount(size) → a fresh tmpfs of that many bytes; remount(size) resizes it."""
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(where)], capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}): needs root")
        mounted.append(where)
        return where

    def remount(where: Path, size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)

    mount.remount = remount
    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """A file that takes all but `leave` bytes of the disk; delete it to free the space."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    filler = disk / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def weights_of(run: Path):
    return ckpt.load_checkpoint(ckpt.find_latest_checkpoint(run))


SETTINGS = {"train.steps": 40}


def test_disk_full_while_writing_a_checkpoint(tiny_dataset, tmp_path, small_disk):
    disk = small_disk(3 << 20)
    run = disk / "run"
    train(tiny_config(tiny_dataset.path), run, progress=False)  # checkpoints 10 and 20
    before = weights_of(run)
    # Room for the grid and the metrics lines of step 30, not for its 136 kB checkpoint.
    filler = fill(disk, leave=64 << 10)
    with pytest.raises(DiskFullError) as caught:
        train(tiny_config(tiny_dataset.path, **SETTINGS), run, progress=False)
    message = str(caught.value)
    assert message.startswith("disk full while writing checkpoint 30")
    assert "the newest complete checkpoint is 20" in message and "run the same command" in message
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")] == []
    assert ckpt.find_latest_checkpoint(run).name == "00000020"
    assert_same(weights_of(run).weights, before.weights)  # intact

    filler.unlink()  # space freed: the same command resumes and finishes, bit for bit
    assert train(tiny_config(tiny_dataset.path, **SETTINGS), run, progress=False).step == 40
    train(tiny_config(tiny_dataset.path, **SETTINGS), tmp_path / "straight", progress=False)
    assert_same(weights_of(run).weights, weights_of(tmp_path / "straight").weights)
    assert_same(weights_of(run).training_state, weights_of(tmp_path / "straight").training_state)


@pytest.mark.parametrize("leave", [0, 2 * PAGE])
def test_disk_full_while_writing_other_files(tiny_dataset, tmp_path, small_disk, leave):
    disk = small_disk(3 << 20)
    run = disk / "run"
    train(tiny_config(tiny_dataset.path), run, progress=False)
    filler = fill(disk, leave=leave)
    # No room at all: the config is rewritten first. Two pages: the lock and the config fit,
    # a grid does not.
    what = "config.yaml" if leave == 0 else r"(samples/fakes_00000030\.png|metrics\.jsonl)"
    with pytest.raises(DiskFullError, match=rf"disk full while writing {what}.*newest complete "
                       "checkpoint is 20"):  # fmt: skip
        train(tiny_config(tiny_dataset.path, **SETTINGS), run, progress=False)
    filler.unlink()
    assert train(tiny_config(tiny_dataset.path, **SETTINGS), run, progress=False).step == 40
    lines = (run / "metrics.jsonl").read_text().split("\n")
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in lines if line]
    assert steps == [10, 20, 30, 40]  # no torn line, none twice


def test_the_cli_says_disk_full_in_one_line(tiny_dataset, small_disk):
    from typer.testing import CliRunner

    from ganvas.cli import app

    disk = small_disk(3 << 20)
    run = disk / "run"
    train(tiny_config(tiny_dataset.path), run, progress=False)
    fill(disk, leave=64 << 10)
    result = CliRunner().invoke(app, ["train", "--out", str(run), "--steps", "40",
                                      "--no-progress"])  # fmt: skip
    assert result.exit_code == 1
    assert "error: disk full while writing checkpoint 30" in result.output
    assert "Traceback" not in result.output


def make_pictures(folder: Path, n: int, size: int = 64) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


@pytest.mark.parametrize("room", ["journal", "dataset"])
def test_prepare_into_a_full_disk_leaves_no_half_dataset(tmp_path, small_disk, room):
    pictures = make_pictures(tmp_path / "pictures", 60)  # 60 × 64 × 64 × 3 = 737 kB of pixels
    # 'journal': not even the scan's work fits; 'dataset': the scan fits, images.npy does not.
    disk = small_disk((512 << 10) if room == "journal" else (1200 << 10))
    out = disk / "data"
    with pytest.raises(DatasetError, match="disk full while writing the dataset") as caught:
        prepare_dataset(pictures, out, size=64, workers=1, progress=False)
    assert "run the same command again" in str(caught.value)
    assert not out.exists()
    assert not [p for p in disk.iterdir() if p.name.startswith(".data.tmp")]

    small_disk.remount(disk, 8 << 20)
    report = prepare_dataset(pictures, out, size=64, workers=1, progress=False)
    assert report.kept == 60
    dataset = load_dataset(out, verify=True)
    assert len(dataset) == 60
    assert not [p for p in disk.iterdir() if p.name.startswith(".")]  # work folder removed
