"""Progressive growing: the schedule, growing 4 → 32 px, exact resume mid-fade, the plan."""

import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ganvas import checkpoint as ckpt
from ganvas.cli import app
from ganvas.config import ConfigError, ProgressiveConfig, load_config
from ganvas.generate import load
from ganvas.training.progressive import ProgressiveSchedule, reals_at
from ganvas.training.trainer import Trainer, train
from tests.conftest import TINY_MODELS, make_blobs, tiny_config, write_dataset


def test_schedule_resolution_alpha_and_batch_at_stage_borders():
    cfg = ProgressiveConfig(batch_sizes=(4, 4, 2), stage_kimg=0.016, fade_fraction=0.5)
    schedule = ProgressiveSchedule.build(cfg, 4, 16, dataset_size=None)
    assert [(s.resolution, s.batch_size, s.steps, s.fade_steps) for s in schedule.stages] == [
        (4, 4, 4, 0), (8, 4, 4, 2), (16, 2, 8, 4)]  # fmt: skip
    assert schedule.total_steps == 16

    def at(step):
        stage, alpha = schedule.at(step)
        return stage.resolution, alpha, stage.batch_size

    assert at(0) == (4, 1.0, 4) and at(3) == (4, 1.0, 4)
    assert at(4) == (8, 0.0, 4) and at(5) == (8, 0.5, 4) and at(6) == (8, 1.0, 4)
    assert at(8) == (16, 0.0, 2) and at(10) == (16, 0.5, 2) and at(15) == (16, 1.0, 2)


def test_schedule_in_epochs_and_repeating_last_batch_size():
    cfg = ProgressiveConfig(batch_sizes=(8,), stage_epochs=2, fade_fraction=0.25)
    schedule = ProgressiveSchedule.build(cfg, 4, 32, dataset_size=40)
    assert [s.images for s in schedule.stages] == [80] * 4
    assert [s.steps for s in schedule.stages] == [10] * 4
    assert [s.fade_steps for s in schedule.stages] == [0, 2, 2, 2]  # round(0.25 * 10)


def test_reals_fade_like_the_generator():
    img = torch.rand(2, 3, 16, 16) * 2 - 1
    sharp = reals_at(img, 8, 1.0)
    assert torch.allclose(sharp, torch.nn.functional.avg_pool2d(img, 2))
    coarse = reals_at(img, 8, 0.0)  # the 4 px version, shown at 8 px
    assert torch.allclose(coarse[:, :, ::2, ::2], torch.nn.functional.avg_pool2d(img, 4), atol=1e-6)
    half = reals_at(img, 8, 0.5)
    assert torch.allclose(half, (sharp + coarse) / 2, atol=1e-6)


def _progan_config(data, **extra):
    settings = {"data.path": str(data), "train.device": "cpu", "train.tensorboard": False,
                "train.n_samples": 16, "model.family": "progan", **TINY_MODELS["progan"],
                "model.resolution": 32,
                "loss.name": "wasserstein", "loss.gp_weight": 10.0, "loss.drift_weight": 0.001,
                "optim.betas": [0.0, 0.99], "optim.lr_g": 1e-3, "optim.lr_d": 1e-3,
                "progressive.batch_sizes": [8, 8, 4, 4], "progressive.stage_kimg": 0.048,
                "progressive.fade_fraction": 0.5, "train.sample_interval": 1000,
                "train.checkpoint_interval": 1000, "train.log_interval": 2}  # fmt: skip
    settings.update(extra)
    return load_config(overrides=settings)


@pytest.fixture
def blobs32(tmp_path):
    return write_dataset(tmp_path / "blobs32", make_blobs(48, size=32))


def test_a_tiny_progan_grows_from_4_to_32_px(blobs32, tmp_path):
    run = tmp_path / "run"
    result = train(_progan_config(blobs32.path), run, progress=False)
    assert result.step == result.total_steps == 6 + 6 + 12 + 12  # 48 images per stage
    events = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
              if r.get("event") == "stage_done"]  # fmt: skip
    assert [e["resolution"] for e in events] == [4, 8, 16, 32]
    assert [e["step"] for e in events] == [6, 12, 24, 36]
    assert all(a["time_s"] <= b["time_s"] for a, b in zip(events, events[1:]))
    sizes = {}
    for step in (6, 12, 24, 36):  # one grid at the end of every stage, at that resolution
        with Image.open(run / "samples" / f"fakes_{step:08d}.png") as grid:
            sizes[step] = grid.size
    assert sizes[6] < sizes[12] < sizes[24] < sizes[36]
    assert "reached 16×16" in (run / "log.txt").read_text()
    g = load(run)
    assert g.sample(3, seed=0).shape == (3, 3, 32, 32)
    g.set_resolution(8)
    assert g.sample(3, seed=0).shape == (3, 3, 8, 8)
    with pytest.raises(ValueError):
        g.set_resolution(64)


def test_resume_in_the_middle_of_a_fade_is_exact(blobs32, tmp_path):
    cfg = _progan_config(blobs32.path, **{"train.ema": True})
    train(cfg, tmp_path / "straight", progress=False)
    stopped = train(cfg, tmp_path / "resumed", progress=False, should_stop=lambda s: s == 15)
    state = json.loads((stopped.checkpoint / "state.json").read_text())
    # the 16 px stage starts at step 12 with a 6-step fade; the last trained step (index 14)
    # had alpha 2/6, the stage the checkpoint's weights are sampled at
    assert state["resolution"] == 16 and state["alpha"] == pytest.approx(2 / 6)
    train(cfg, tmp_path / "resumed", progress=False)
    a = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(tmp_path / "straight"))
    b = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(tmp_path / "resumed"))
    for name in ("G", "D", "G_ema"):
        for key, tensor in a.weights[name].items():
            assert torch.equal(tensor, b.weights[name][key]), f"{name}.{key}"
    assert a.training_state["sampler"] == b.training_state["sampler"]


def test_fine_tuning_starts_from_another_runs_weights(tiny_dataset, tmp_path):
    train(tiny_config(tiny_dataset.path), tmp_path / "base", progress=False)
    base = load(tmp_path / "base", ema=False).G.state_dict()
    cfg = tiny_config(tiny_dataset.path, **{"train.init_from": str(tmp_path / "base")})
    trainer = Trainer(cfg, tmp_path / "tuned", progress=False)
    assert trainer.step == 0
    for key, tensor in trainer.G.state_dict().items():
        assert torch.equal(tensor, base[key]), key
    other = tiny_config(tiny_dataset.path, **{"train.init_from": str(tmp_path / "base"),
                                               "model.g_width": 16})  # fmt: skip
    with pytest.raises(ConfigError, match="do not fit"):
        Trainer(other, tmp_path / "other", progress=False)


def test_dry_run_prints_the_full_progan_art_stage_table():
    result = CliRunner().invoke(app, ["train", "--preset", "progan-art", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("│")]
    assert len(lines) == 9  # 4, 8, ..., 1024
    batches = [int(line.split("│")[3]) for line in lines]
    assert batches == [32, 32, 32, 24, 16, 8, 8, 4, 2]
    assert lines[-1].split("│")[2].strip() == "1024" and "30 epochs" in lines[0]
    params = [int(line.split("│")[8].replace(",", "")) for line in lines]
    assert params == sorted(params)  # G grows with every stage


def test_presets_for_the_art_report():
    art = load_config(preset="progan-art")
    stable = load_config(preset="progan-art-stable")
    assert art.optim.lr_g == 1e-3 and stable.optim.lr_g == 1e-4
    assert art.model.z_dim == 256 and art.model.max_width == 256
    assert art.progressive.batch_sizes == (32, 32, 32, 24, 16, 8, 8, 4, 2)
    assert art.progressive.stage_epochs == 30
