"""What a new user tripped on in the training core, each kept from coming back."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import ganvas
from ganvas import checkpoint as ckpt
from ganvas.cli import app
from ganvas.config import ConfigError, load_config
from ganvas.training.trainer import Trainer, train
from tests.conftest import make_blobs, read_metrics, tiny_config, write_dataset

FIXTURES = Path(__file__).parent.parent / "fixtures" / "runs_v0"

GROWING = {"model.family": "progan", "model.resolution": 16, "model.z_dim": 8,
           "model.max_width": 8, "model.width_base": 64, "train.batch_size": 64,
           "progressive.batch_sizes": [8], "progressive.stage_kimg": 0.032,
           "train.device": "cpu", "train.tensorboard": False, "train.log_interval": 2,
           "train.sample_interval": 100, "train.checkpoint_interval": 100, "train.n_samples": 4}  # fmt: skip


def test_a_growing_run_with_experience_replay_crosses_its_stages(tiny_dataset, tmp_path):
    # The buffer held 4 px fakes when the 8 px stage began; D was shown them and failed.
    cfg = load_config(overrides={**GROWING, "data.path": str(tiny_dataset.path),
                                 "train.replay_size": 16})  # fmt: skip
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    result = trainer.fit()
    assert result.step == result.total_steps == 12  # 3 stages of 4 steps
    assert trainer.objective.replay.images.shape[-1] == 16  # refilled at the last stage
    assert len(trainer.objective.replay) == 16


def test_a_growing_run_logs_the_batch_it_really_uses(tiny_dataset, tmp_path):
    cfg = load_config(overrides={**GROWING, "data.path": str(tiny_dataset.path)})
    train(cfg, tmp_path / "run", progress=False, should_stop=lambda step: True)
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "batch 8)" in log and "batch 64" not in log  # progressive.batch_sizes, not train's


def test_the_collapse_monitor_compares_with_the_whole_training_set(tmp_path):
    # 300 images: the first 256 one and the same picture, the rest varied. A reference taken
    # from the first 256 has no diversity at all, and the monitor could never warn.
    images = make_blobs(300)
    images[:256] = images[0]
    dataset = write_dataset(tmp_path / "data", images)
    trainer = Trainer(tiny_config(dataset.path), tmp_path / "run", progress=False)
    assert trainer.collapse.reference > 0.05
    chosen = trainer._monitor_reals()
    assert len(chosen) == 256 and (chosen != images[0]).any(axis=(1, 2, 3)).sum() >= 20


def test_a_collapse_stop_does_not_tell_the_user_to_resume(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset.path, **{"train.steps": 40, "train.sample_interval": 5,
                                             "train.collapse_check": "stop"})  # fmt: skip
    trainer = Trainer(cfg, tmp_path / "run", progress=False)

    def collapse_after_step_10(module, args, output):
        if module.training:  # only the sample grids (G in inference mode) collapse
            return output
        if trainer.step <= 10:
            return (
                torch.rand(output.shape, generator=torch.Generator().manual_seed(trainer.step)) * 2
                - 1
            )
        return output[:1].expand_as(output).clone()

    trainer.G.register_forward_hook(collapse_after_step_10)
    result = trainer.fit()
    assert result.collapsed and result.step < 40
    last_line = (tmp_path / "run" / "log.txt").read_text().splitlines()[-1]
    assert "collapsed generator" in last_line and "--new" in last_line
    assert "run the same command again to resume" not in last_line
    # The monitor's history is saved: a resume continues it instead of starting blind.
    saved = ckpt.load_checkpoint(result.checkpoint).training_state["collapse"]
    assert saved["collapsed"] and len(saved["history"]) == result.step // 5


def test_dry_run_counts_the_training_split(tmp_path):
    # 64 images, half of them held out for validation: an epoch is 32 images = 4 batches of 8.
    dataset = write_dataset(tmp_path / "data", make_blobs(64))
    manifest = dataset.path / "manifest.json"
    import json

    card = json.loads(manifest.read_text())
    card["splits"] = {"val": list(range(32))}
    manifest.write_text(json.dumps(card))
    args = ["train", "--preset", "dcgan-64", "--data", str(dataset.path), "--dry-run",
            "--set", "model.resolution=16", "--set", "train.batch_size=8",
            "--set", "train.epochs=3"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "12 steps in all" in result.output  # 3 epochs × 4 batches
    cfg = load_config("dcgan-64", overrides={"data.path": str(dataset.path),
                                             "model.resolution": 16, "train.batch_size": 8,
                                             "train.epochs": 3, "train.device": "cpu"})  # fmt: skip
    assert Trainer(cfg, tmp_path / "run", progress=False).total_steps == 12  # the same plan


def test_python_and_cli_resume_a_run_with_its_saved_settings(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset.path, **{"train.steps": 10}), run, progress=False)
    # No config given: the run's own settings, with the overrides on top, as the CLI does.
    result = train(None, run, progress=False, overrides=["train.steps=14"])
    assert result.step == 14
    cli = CliRunner().invoke(app, ["train", "--out", str(run), "--steps", "18", "--no-progress"])
    assert cli.exit_code == 0, cli.output
    assert ckpt.load_checkpoint(ckpt.find_latest_checkpoint(run)).step == 18
    with pytest.raises(ValueError, match="pass overrides to ganvas.load_config"):
        train(tiny_config(tiny_dataset.path), run, overrides=["train.steps=20"])
    with pytest.raises(ConfigError, match="no saved settings"):
        train(None, tmp_path / "empty", progress=False)


@pytest.mark.parametrize("name", ["dcgan", "acgan", "progan"])
def test_a_run_from_before_the_training_core_change_resumes(name, tmp_path):
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run)
    images, labels, classes = make_blobs(32), None, ()
    if name == "acgan":
        from tests.conftest import make_two_class_blobs

        images, labels = make_two_class_blobs(32)
        classes = ("red", "blue")
    dataset = write_dataset(tmp_path / "data", images, labels, classes)
    before = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(run))
    saved_steps = before.step
    result = train(None, run, progress=False,
                   overrides=[f"data.path={dataset.path}", f"train.steps={saved_steps + 2}"])  # fmt: skip
    if name == "progan":  # a growing run's length is its schedule's: it was finished
        assert result.step == saved_steps
    else:
        assert result.step == saved_steps + 2
        after = ckpt.load_checkpoint(result.checkpoint)
        assert set(after.training_state) >= {"rng", "optim_G", "optim_D", "sampler"}
        assert not torch.equal(after.weights["G"][next(iter(after.weights["G"]))],
                               before.weights["G"][next(iter(before.weights["G"]))])  # fmt: skip
    assert "version: 1" in (run / "config.yaml").read_text()
    steps = [r["step"] for r in read_metrics(run) if "event" not in r]
    assert steps == sorted(steps) and len(steps) == len(set(steps))
    picture = ganvas.load(run, device="cpu").sample(2, seed=0)
    assert picture.dtype == torch.uint8 and picture.shape == (2, 3, 16, 16)
    assert np.ptp(picture.numpy()) > 0
