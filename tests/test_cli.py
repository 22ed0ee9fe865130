"""The `ganvas` command as a user runs it: a real subprocess for the main path, the
in-process runner for error messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ganvas.cli import app
from tests.conftest import make_blobs

runner = CliRunner()


def ganvas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "ganvas.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _image_folder(root: Path) -> Path:
    for i, img in enumerate(make_blobs(24, size=20)):
        cls = "warm" if i % 2 else "cool"
        (root / "pics" / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "pics" / cls / f"{i:03d}.png")
    (root / "pics" / "cool" / "notes.txt").write_text("not an image")
    return root / "pics"


@pytest.mark.slow
def test_prepare_train_resume_sample_from_the_command_line(tmp_path):
    _image_folder(tmp_path)
    done = ganvas("prepare", "pics", "--out", "data/mine", "--size", "16", "--labels",
                  "subfolders", "--workers", "1", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "24 images, 2 classes" in done.stderr and "1 dropped" in done.stderr

    train_args = ["train", "--preset", "dcgan-32", "--data", "data/mine", "--out", "runs/a",
                  "--set", "model.resolution=16", "--set", "model.g_width=8",
                  "--set", "model.d_width=8", "--set", "train.batch_size=8",
                  "--set", "train.checkpoint_interval=5", "--no-progress"]  # fmt: skip
    first = ganvas(*train_args, "--steps", "6", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "starting at step 0/6" in first.stderr
    second = ganvas(*train_args, "--steps", "10", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "resuming at step 6/10" in second.stderr
    assert (tmp_path / "runs/a/checkpoints/latest").read_text().strip() == "00000010"

    for name in ("one.png", "two.png"):
        done = ganvas("sample", "runs/a", "--n", "8", "--seed", "7", "--out", name, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    one = np.asarray(Image.open(tmp_path / "one.png"))
    assert one.shape == (2 + 3 * 18, 2 + 3 * 18, 3)
    assert np.array_equal(one, np.asarray(Image.open(tmp_path / "two.png")))
    done = ganvas("sample", "runs/a", "--n", "5", "--out-dir", "each", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "each").glob("*.png"))) == 5


def test_unknown_setting_is_one_clear_line_and_exit_code_2(tiny_dataset, tmp_path):
    result = runner.invoke(app, ["train", "--preset", "dcgan-64", "--data", str(tiny_dataset.path),
                                 "--out", str(tmp_path / "r"), "--set", "train.bacth_size=3"])  # fmt: skip
    assert result.exit_code == 2
    assert "unknown config key train.bacth_size" in result.output
    assert "did you mean train.batch_size" in result.output
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_missing_dataset_and_missing_run_are_reported(tmp_path):
    result = runner.invoke(app, ["train", "--preset", "dcgan-64", "--data", str(tmp_path / "x"),
                                 "--out", str(tmp_path / "r")])  # fmt: skip
    assert result.exit_code == 2 and "ganvas prepare" in result.output
    result = runner.invoke(app, ["sample", str(tmp_path / "nothing"), "--out", "x.png"])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_prepare_of_an_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "empty" in result.output
    assert not (tmp_path / "d").exists()


def test_presets_lists_every_recipe():
    result = runner.invoke(app, ["presets"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("dcgan-32", "dcgan-64", "dcgan-128", "emoji-demo"):
        assert name in result.output


def test_prepare_background_colour_from_the_command_line(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent
    (tmp_path / "src").mkdir()
    Image.fromarray(rgba).save(tmp_path / "src" / "clear.png")
    for colour, expected in (("10,20,30", (10, 20, 30)), ("#ff0000", (255, 0, 0))):
        out = tmp_path / colour.replace(",", "_").replace("#", "")
        result = runner.invoke(app, ["prepare", str(tmp_path / "src"), "--out", str(out),
                                     "--size", "8", "--background", colour, "--workers", "1"])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert tuple(np.load(out / "images.npy")[0, 0, 0]) == expected
    result = runner.invoke(app, ["prepare", str(tmp_path / "src"), "--out", str(tmp_path / "x"),
                                 "--background", "notacolour"])  # fmt: skip
    assert result.exit_code == 2 and "background" in result.output


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_130(tiny_dataset, tmp_path):
    import signal
    import time

    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = ["train", "--preset", "dcgan-32", "--data", str(tiny_dataset.path), "--out", "run",
            "--set", "model.resolution=16", "--set", "model.g_width=8", "--set", "model.d_width=8",
            "--set", "train.batch_size=8", "--set", "train.log_interval=5",
            "--set", "train.checkpoint_interval=100000", "--steps", "100000", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "ganvas.cli", *args], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "stopped at step" in stderr
    latest = (tmp_path / "run" / "checkpoints" / "latest").read_text().strip()
    assert int(latest) >= 5


def test_sample_by_class_from_the_command_line(labelled_dataset, tmp_path):
    from ganvas.training.trainer import train
    from tests.conftest import TINY_MODELS, tiny_config

    cfg = tiny_config(labelled_dataset.path, **{"model.family": "biggan", **TINY_MODELS["biggan"],
                                                 "loss.name": "hinge", "train.steps": 2})  # fmt: skip
    train(cfg, tmp_path / "run", progress=False)
    run = str(tmp_path / "run")
    result = runner.invoke(app, ["sample", run, "--class", "all", "--n-per-class", "3",
                                 "--out-dir", str(tmp_path / "each")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "each" / "red").glob("*.png"))) == 3
    assert len(list((tmp_path / "each" / "blue").glob("*.png"))) == 3
    result = runner.invoke(app, ["sample", run, "--class-swap", "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 0 and (tmp_path / "s.png").is_file()
    result = runner.invoke(
        app, ["sample", run, "--class", "green", "--out", str(tmp_path / "g.png")]
    )
    assert result.exit_code == 2 and "no class 'green'" in result.output
    assert not (tmp_path / "g.png").exists()


def test_python_dash_m_ganvas_is_the_command(tmp_path):
    env = dict(os.environ, COLUMNS="200")
    done = subprocess.run([sys.executable, "-m", "ganvas", "presets"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name in ("dcgan-32", "cdcgan-64", "emoji-demo"):
        assert name in done.stdout


def test_steps_on_the_command_line_win_over_a_presets_epochs(labelled_dataset, tmp_path):
    # cdcgan-64 sets train.epochs: 200, which used to replace --steps silently.
    result = runner.invoke(app, ["train", "--preset", "cdcgan-64", "--data",
                                 str(labelled_dataset.path), "--out", str(tmp_path / "r"),
                                 "--set", "model.resolution=16", "--set", "model.g_width=8",
                                 "--set", "model.d_width=8", "--set", "train.batch_size=8",
                                 "--set", "train.tensorboard=false", "--device", "cpu",
                                 "--steps", "4", "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "checkpoints" / "latest").read_text().strip() == "00000004"


def test_a_value_for_a_whole_section_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["train", "--set", "model=dcgan", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "did you mean --set model.family=dcgan?" in result.output
    result = runner.invoke(app, ["train", "--set", "model.family=5", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "model.family=5 must be a family name" in result.output


def test_sampling_commands_default_to_the_auto_device(tiny_dataset, tmp_path):
    import typer.main

    from ganvas.training.trainer import train
    from tests.conftest import tiny_config

    commands = typer.main.get_command(app).commands
    with_device = {name for name, command in commands.items()
                   if any(p.name == "device" for p in command.params)}  # fmt: skip
    assert {"sample", "evaluate", "interpolate", "rank", "memorization", "diversity", "rate"} <= (
        with_device
    )
    for name in with_device - {"train"}:
        (device,) = (p for p in commands[name].params if p.name == "device")
        assert device.default == "auto", name
    train(tiny_config(tiny_dataset.path, **{"train.steps": 2}), tmp_path / "run", progress=False)
    run = str(tmp_path / "run")
    for args in (["sample", run, "--out", str(tmp_path / "s.png")],
                 ["interpolate", run, "--out", str(tmp_path / "i.png")],
                 ["rank", run, "--n", "4", "--k", "2", "--out", str(tmp_path / "r.png")]):  # fmt: skip
        result = runner.invoke(app, [*args, "--device", "auto"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["sample", run, "--device", "tpu"])
    assert result.exit_code == 2 and "device='tpu' is not a device" in result.output
