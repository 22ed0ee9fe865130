"""A family written in this file alone — networks, an objective with its own lazy G
regularization phase and its own state — trains and resumes exactly: a new family is an
addition, not an edit of the loop. docs/extending.md walks through this file."""

from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganvas import checkpoint as ckpt
from ganvas.config import load_config
from ganvas.models.registry import Family, ModelConfig, register_family, unregister_family
from ganvas.objectives import Phase, TrainingParts, judge
from ganvas.training.trainer import Trainer, train
from tests.conftest import assert_same_checkpoint, read_metrics


@dataclass(frozen=True)
class ToyConfig(ModelConfig):
    z_dim: int = 8
    width: int = 32


class ToyGenerator(nn.Module):
    def __init__(self, cfg: ToyConfig) -> None:
        super().__init__()
        self.shape = (cfg.channels, cfg.resolution, cfg.resolution)
        self.net = nn.Sequential(nn.Linear(cfg.z_dim, cfg.width), nn.ReLU(),
                                 nn.Linear(cfg.width, cfg.channels * cfg.resolution**2))  # fmt: skip

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tanh(self.net(z)).view(len(z), *self.shape)


class ToyDiscriminator(nn.Module):
    def __init__(self, cfg: ToyConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(cfg.channels * cfg.resolution**2, cfg.width),
                                 nn.LeakyReLU(0.2), nn.Linear(cfg.width, 1))  # fmt: skip

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(img).squeeze(1)


class ToyObjective:
    """Non-saturating loss, plus a G regularization every 3rd step that pulls the mean
    brightness of G's images toward a running average of the reals' (its own state)."""

    def __init__(self, parts: TrainingParts) -> None:
        self.parts = parts
        self.d_main, self.g_main = Phase("D", "D"), Phase("G", "G")
        self.g_reg = Phase("Greg", "G", interval=3)
        self.real_brightness = torch.zeros(())  # running mean, saved with the checkpoint
        self.updates = 0

    def phases(self) -> list[Phase]:
        return [self.d_main, self.g_main, self.g_reg]

    def phases_due(self, step: int) -> list[Phase]:
        return [p for p in self.phases() if p.due(step)]

    def loss(self, phase: Phase) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = self.parts
        batch = p.feed.reals()
        fake = p.G(**p.feed.g_inputs(batch))
        if phase is self.d_main:
            self.real_brightness = 0.9 * self.real_brightness + 0.1 * batch["image"].mean()
            real, shown = judge(p, batch["image"], None), judge(p, fake.detach(), None)
            loss = F.softplus(-real).mean() + F.softplus(shown).mean()
            return loss, {"loss_d": loss.detach()}
        if phase is self.g_main:
            loss = F.softplus(-judge(p, fake, None)).mean()
            return loss, {"loss_g": loss.detach()}
        gap = (fake.mean() - self.real_brightness) ** 2
        return gap, {"toy_brightness_gap": gap.detach()}

    def after_phase(self, phase: Phase) -> None:
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"real_brightness": self.real_brightness, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.real_brightness, self.updates = state["real_brightness"], int(state["updates"])


@pytest.fixture
def toy_family():
    family = register_family(Family(name="toy-test", config=ToyConfig, generator=ToyGenerator,
                                    discriminator=ToyDiscriminator, objective=ToyObjective))  # fmt: skip
    yield family
    unregister_family(family.name)


def _toy_config(data_path, steps: int = 12):
    return load_config(overrides={
        "data.path": str(data_path), "model.family": "toy-test", "model.width": 16,
        "train.batch_size": 8, "train.steps": steps, "train.device": "cpu", "train.ema": True,
        "train.log_interval": 3, "train.sample_interval": 6, "train.checkpoint_interval": 1000,
        "train.n_samples": 4, "train.tensorboard": False, "optim.lr_g": 1e-3,
    })  # fmt: skip


def test_a_family_from_outside_trains_with_its_own_phase_and_state(
    toy_family, tiny_dataset, tmp_path
):
    result = train(_toy_config(tiny_dataset.path), tmp_path / "run", progress=False)
    assert result.step == 12
    records = [r for r in read_metrics(tmp_path / "run") if "event" not in r]
    assert all("toy_brightness_gap" in r and "loss_d" in r for r in records)
    state = ckpt.load_checkpoint(result.checkpoint).training_state["objective"]
    assert state["updates"] == 12 * 2 + 4  # D and G every step, Greg at steps 0, 3, 6, 9
    data_mean = float(tiny_dataset.images[:].mean()) / 127.5 - 1  # ≈ -0.2
    expected = (1 - 0.9**12) * data_mean  # 12 updates of a running mean starting at 0
    assert float(state["real_brightness"]) == pytest.approx(float(expected), abs=0.03)


def test_its_lazy_phase_gets_stylegan2_ada_adam_settings(toy_family, tiny_dataset, tmp_path):
    trainer = Trainer(_toy_config(tiny_dataset.path), tmp_path / "run", progress=False)
    group = trainer.optimizers["G"].param_groups[0]
    ratio = 3 / 4  # interval / (interval + 1)
    assert group["lr"] == pytest.approx(1e-3 * ratio)
    assert group["betas"] == pytest.approx((0.5**ratio, 0.999**ratio))
    assert trainer.optimizers["D"].param_groups[0]["lr"] == pytest.approx(2e-4)  # no lazy D phase
    trainer.train_step()  # the schedule keeps the adjusted rate
    assert group["lr"] == pytest.approx(1e-3 * ratio)


def test_it_resumes_bit_for_bit(toy_family, tiny_dataset, tmp_path):
    cfg = _toy_config(tiny_dataset.path)
    straight = train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "resumed", progress=False, should_stop=lambda step: step == 5)
    resumed = train(cfg, tmp_path / "resumed", progress=False)
    assert resumed.step == straight.step == 12
    assert_same_checkpoint(ckpt.load_checkpoint(straight.checkpoint),
                           ckpt.load_checkpoint(resumed.checkpoint))  # fmt: skip
