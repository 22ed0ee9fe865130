"""Each stabilisation trick does what it says."""

import math

import pytest
import torch

from ganvas.augment import instance_noise_std
from ganvas.config import ConfigError, load_config
from ganvas.losses import build_loss
from ganvas.objectives.tricks import ReplayBuffer, d_targets
from ganvas.training.schedules import lr_factor
from ganvas.training.trainer import Trainer, train
from tests.conftest import tiny_config


def _targets(real_range, fake_range, flip, n=4000):
    g = torch.Generator().manual_seed(0)
    return d_targets(n, real_range, fake_range, flip, g, torch.device("cpu"))


def test_two_sided_label_smoothing_targets_lie_in_their_ranges():
    real_t, fake_t = _targets((0.8, 1.0), (0.0, 0.2), 0.0)
    assert real_t.min() >= 0.8 and real_t.max() <= 1.0 and real_t.std() > 0.05
    assert fake_t.min() >= 0.0 and fake_t.max() <= 0.2
    one_sided_real, one_sided_fake = _targets((0.9, 0.9), (0.0, 0.0), 0.0)
    assert torch.all(one_sided_real == 0.9) and torch.all(one_sided_fake == 0)


def test_label_flipping_swaps_about_p_of_the_targets():
    real_t, fake_t = _targets((1.0, 1.0), (0.0, 0.0), 0.25)
    assert (real_t == 0).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert (fake_t == 1).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert set(real_t.unique().tolist()) == {0.0, 1.0}


def test_smoothed_bce_uses_the_targets():
    loss = build_loss("nonsaturating")
    real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    t_real, t_fake = torch.tensor([0.9]), torch.tensor([0.1])
    expected = -(0.9 * math.log(torch.sigmoid(real)) + 0.1 * math.log(1 - torch.sigmoid(real)))
    expected += -(0.1 * math.log(torch.sigmoid(fake)) + 0.9 * math.log(1 - torch.sigmoid(fake)))
    assert loss.d_loss(real, fake, t_real, t_fake).item() == pytest.approx(expected, rel=1e-5)
    hard = loss.d_loss(real, fake, torch.ones(1), torch.zeros(1))
    assert hard.item() == pytest.approx(loss.d_loss(real, fake).item(), rel=1e-6)


def test_smoothing_is_refused_for_non_bce_objectives():
    with pytest.raises(ConfigError, match="needs a BCE objective"):
        load_config(overrides={"loss.name": "hinge", "loss.real_label": [0.8, 1.0]})


def test_instance_noise_anneals_linearly_to_zero():
    assert instance_noise_std(0.1, 0, 10**6) == 0.1
    assert [instance_noise_std(0.2, 100, s) for s in (0, 50, 100, 200)] == [0.2, 0.1, 0.0, 0.0]


def test_d_sees_noisy_images_with_instance_noise(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset.path, **{"train.instance_noise": 0.5})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    seen = []
    trainer.D.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    trainer.train_step()
    # Real and fake batches leave [-1, 1] only through the added noise.
    assert seen[0].abs().max() > 1.2 and seen[1].abs().max() > 1.2


def test_replayed_fakes_come_from_the_buffer(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset.path, **{"train.replay_size": 16, "train.replay_every": 2,
                                             "train.replay_fraction": 0.5})  # fmt: skip
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    for _ in range(3):
        trainer.train_step()
    stored = trainer.objective.replay.images[: len(trainer.objective.replay)].clone()
    seen = []
    trainer.D.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    trainer.step = 4  # a replay step
    trainer.train_step()
    fake_batch = seen[1]  # D(real), then D(fakes), then the G step's D(fakes)
    from_buffer = [any(torch.equal(img, old) for old in stored) for img in fake_batch]
    assert from_buffer == [True] * 4 + [False] * 4
    assert len(trainer.objective.replay) == 16  # 4 steps × 8 fakes, capped at the capacity


def test_replay_buffer_is_a_ring():
    buffer = ReplayBuffer(3)
    buffer.push(torch.arange(2.0).reshape(2, 1, 1, 1), torch.arange(2))
    buffer.push(torch.arange(2.0, 4.0).reshape(2, 1, 1, 1), torch.arange(2, 4))
    assert len(buffer) == 3
    assert buffer.images.flatten().tolist() == [3.0, 1.0, 2.0]  # 0, the oldest, overwritten
    buffer.push(torch.arange(10.0, 15.0).reshape(5, 1, 1, 1), torch.arange(10, 15))
    assert sorted(buffer.images.flatten().tolist()) == [12.0, 13.0, 14.0]  # the newest 3
    buffer = ReplayBuffer(3)
    buffer.push(torch.arange(2.0, 5.0).reshape(3, 1, 1, 1), torch.arange(2, 5))
    images, labels = buffer.sample(10, torch.Generator().manual_seed(0))
    assert set(images.flatten().tolist()) <= {2.0, 3.0, 4.0}
    assert torch.equal(images.flatten().long(), labels)


def test_resume_with_replay_and_noise_is_bit_identical(tiny_dataset, tmp_path):
    settings = {"train.steps": 30, "train.checkpoint_interval": 1000, "train.replay_size": 12,
                "train.replay_every": 3, "train.instance_noise": 0.1,
                "train.instance_noise_anneal": 25, "loss.real_label": [0.8, 1.0],
                "loss.fake_label": [0.0, 0.2], "loss.flip_prob": 0.05}  # fmt: skip
    train(tiny_config(tiny_dataset.path, **settings), tmp_path / "a", progress=False)
    train(tiny_config(tiny_dataset.path, **settings), tmp_path / "b", progress=False,
          should_stop=lambda step: step == 13)  # fmt: skip
    train(tiny_config(tiny_dataset.path, **settings), tmp_path / "b", progress=False)
    from ganvas import checkpoint as ckpt

    a = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(tmp_path / "a"))
    b = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(tmp_path / "b"))
    for key, tensor in a.weights["G"].items():
        assert torch.equal(tensor, b.weights["G"][key]), key
    assert torch.equal(
        a.training_state["objective"]["replay"]["images"],
        b.training_state["objective"]["replay"]["images"],
    )


@pytest.mark.parametrize(
    "settings, checks",
    [
        ({"scheduler": "step", "step_size": 10, "gamma": 0.5}, {0: 1.0, 9: 1.0, 10: 0.5, 25: 0.25}),
        ({"scheduler": "step", "step_size": 2, "gamma": 0.75, "schedule_unit": "epochs"},
         {0: 1.0, 19: 1.0, 20: 0.75, 40: 0.5625}),
        ({"scheduler": "cosine", "min_factor": 0.0}, {0: 1.0, 50: 0.5 * (1 + math.cos(math.pi * 50 / 100)), 100: 0.0}),
        ({"scheduler": "linear", "decay_start": 50, "min_factor": 0.0}, {0: 1.0, 50: 1.0, 75: 0.5, 100: 0.0}),
        ({"lr_schedule": [[30, 0.5]]}, {29: 1.0, 30: 0.5}),
    ],
)  # fmt: skip
def test_learning_rate_schedules(settings, checks):
    optim = load_config(overrides={f"optim.{k}": v for k, v in settings.items()}).optim
    for step, expected in checks.items():  # a run of 101 steps, 10 steps per epoch
        assert lr_factor(optim, step, 101, 10) == pytest.approx(expected, abs=1e-6), step


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                        ("rmsprop", torch.optim.RMSprop)])  # fmt: skip
def test_optimizer_choice_and_ttur(tiny_dataset, tmp_path, name, cls):
    cfg = tiny_config(
        tiny_dataset.path, **{"optim.name": name, "optim.lr_g": 1e-4, "optim.lr_d": 4e-4}
    )
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    assert type(trainer.optimizers["G"]) is cls and type(trainer.optimizers["D"]) is cls
    trainer.train_step()
    assert (
        trainer.optimizers["G"].param_groups[0]["lr"] == 1e-4
        and trainer.optimizers["D"].param_groups[0]["lr"] == 4e-4
    )
