"""R3GAN: the modernised ResNet G and D (shapes, no normalisation, fix-up initialisation,
widths), and its objective (relativistic pairing loss, R1 and R2 through the D-input
pipeline, the γ schedule) against hand computations; it learns the test data's colours."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganvas.augment import Identity
from ganvas.config import ConfigError, load_config
from ganvas.inference import run_generator
from ganvas.models import r3gan
from ganvas.models.registry import build_models, get_family
from ganvas.objectives import Feed, TrainingParts
from ganvas.objectives.r3gan import (
    R3GANObjective,
    gamma_at,
    relativistic_d_loss,
    relativistic_g_loss,
)
from ganvas.training.trainer import Trainer
from tests.conftest import TINY_MODELS, colour_gap, make_blobs, write_dataset


def _model_config(resolution: int = 16, channels: int = 3, **extra):
    overrides = {"model.family": "r3gan", "model.resolution": resolution,
                 "model.channels": channels, **TINY_MODELS["r3gan"], **extra}  # fmt: skip
    return load_config(overrides=overrides).model


# --- The networks ------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [8, 16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_range(resolution, channels):
    torch.manual_seed(0)
    G, D = build_models(_model_config(resolution, channels))
    z = torch.randn(6, G.z_dim)
    img = G(z, None)  # positional, as the samplers call it
    assert img.shape == (6, channels, resolution, resolution)
    # A linear output of about unit scale at the start (no tanh: samplers clamp).
    assert torch.isfinite(img).all() and 0.1 < img.std() < 3
    sampled = run_generator(G, z)
    assert sampled.min() >= -1 and sampled.max() <= 1
    assert torch.equal(sampled, img.detach().clamp(-1, 1))
    logits = D(img, None)
    assert logits.shape == (6,) and torch.isfinite(logits).all()


def test_no_normalisation_anywhere():
    G, D = build_models(_model_config(32))
    norms = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
    for net in (G, D):
        assert not [m for m in net.modules() if isinstance(m, norms)]
        assert not [n for n, _ in net.named_parameters() if "parametrizations" in n]  # no SN


def test_every_block_starts_as_the_identity_with_fixup_scaled_weights():
    torch.manual_seed(0)
    cfg = _model_config(32, **{"model.g_width": 32, "model.group_width": 16})
    G, _ = build_models(cfg)
    blocks = [b for b in G.modules() if isinstance(b, r3gan.InvertedBottleneck)]
    assert len(blocks) == cfg.blocks * 4  # stages at 4, 8, 16 and 32
    x = torch.randn(2, 32, 8, 8)
    for block in blocks:
        assert torch.count_nonzero(block.project.weight) == 0
        assert torch.equal(block(x), x)
    # He's std for a leaky ReLU, times L^(-1/4) for L = 8 residual blocks (fix-up, m = 3).
    block = blocks[-1]
    expected = math.sqrt(2 / (1 + 0.2**2)) * 8 ** (-1 / 4) / math.sqrt(32)  # fan-in 32
    assert block.expand.weight.std().item() == pytest.approx(expected, rel=0.05)
    assert block.spatial.groups == 64 // 16  # width 32 · expansion 2, groups of 16


def test_widths_and_groups_follow_the_paper():
    assert r3gan.stage_widths(32, 768) == [768] * 4  # CIFAR-10
    assert r3gan.stage_widths(64, 768) == [768] * 4 + [384]  # FFHQ-64
    assert r3gan.stage_widths(256, 768) == [768] * 4 + [384, 192, 96]  # FFHQ-256
    assert r3gan.cardinality(768 * 2, 16) == 96  # 3 · 32, the paper's cardinality
    G, D = build_models(_model_config(64, **{"model.g_width": 32, "model.d_width": 64}))
    assert [s.blocks[0].expand.in_channels for s in G.stages] == [32, 32, 32, 32, 16]
    assert [s.blocks[0].expand.in_channels for s in D.stages] == [32, 64, 64, 64, 64]
    assert [s.blocks[0].spatial.groups for s in G.stages] == [8, 8, 8, 8, 4]


def test_group_width_must_split_every_stage():
    with pytest.raises(ConfigError, match=r"model.group_width=16: G's stage at 4×4 has 24"):
        _model_config(16, **{"model.g_width": 12, "model.group_width": 16})
    with pytest.raises(ConfigError, match="model.blocks=0 must be >= 1"):
        _model_config(16, **{"model.blocks": 0})
    with pytest.raises(ConfigError, match="model.gamma_end=-1"):
        _model_config(16, **{"model.gamma_end": -1.0})


# --- The objective on hand-checkable parts ----------------------------------------------------


class FixedSampler:
    """Always the same real batch."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.batch_size = images, len(images)

    def next(self, batch_size: int) -> tuple[torch.Tensor, None]:
        return self.images[:batch_size], None


class FixedG(nn.Module):
    """The same fakes whatever z is; they are its parameter, so G's phase has a gradient."""

    def __init__(self, fakes: torch.Tensor) -> None:
        super().__init__()
        self.z_dim = 4
        self.fakes = nn.Parameter(fakes.clone())

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.fakes[: len(z)]


class LinearD(nn.Module):
    """D(x) = w · x: its input gradient is w for every image."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return (img * self.w).flatten(1).sum(1)


class Doubling(Identity):
    """A D-input pipeline that doubles every image and keeps what it observes."""

    def __init__(self) -> None:
        self.seen, self.observed = 0, []

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.seen += len(images)
        return 2 * images

    def observe_real_logits(self, logits: torch.Tensor) -> None:
        self.observed.append(logits)


def _parts(steps: int = 11, **model) -> tuple[TrainingParts, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    real = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    fake = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    w = torch.randn(1, 8, 8, generator=g) / 8
    overrides = {"model.family": "r3gan", "model.resolution": 8, "model.channels": 1,
                 "model.gamma_start": 2.0, "model.gamma_end": 0.5, "train.steps": steps,
                 **{f"model.{k}": v for k, v in model.items()}}  # fmt: skip
    config = load_config(overrides=overrides)
    feed = Feed(FixedSampler(real), get_family("r3gan"), config.model, g)
    parts = TrainingParts(config, FixedG(fake), LinearD(w), Doubling(), feed, g)
    return parts, {"real": real, "fake": fake, "w": w}


def test_relativistic_losses_on_fixed_logits():
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([0.0, 1.0, 0.5])
    # softplus(-(r - f)) = log(1 + exp(f - r)), pair by pair
    d = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(2)) + math.log(2)) / 3
    g = (math.log(1 + math.exp(2)) + math.log(1 + math.exp(-2)) + math.log(2)) / 3
    assert relativistic_d_loss(real, fake).item() == pytest.approx(d, rel=1e-6)
    assert relativistic_g_loss(fake, real).item() == pytest.approx(g, rel=1e-6)
    # Only the differences count: shifting every logit changes nothing.
    assert relativistic_d_loss(real + 5, fake + 5).item() == pytest.approx(d, rel=1e-6)


def test_d_loss_is_the_pairing_loss_plus_r1_and_r2_on_a_linear_d():
    parts, t = _parts()
    objective = R3GANObjective(parts)
    d_phase, g_phase = objective.phases_due(0)
    assert (d_phase.name, g_phase.name) == ("D", "G")
    loss, stats = objective.loss(d_phase)
    w = t["w"]
    # D sees 2x (the pipeline): logits 2 w·x, and the gradient with respect to the images
    # before the pipeline is 2w for every image, so R1 = R2 = ‖2w‖².
    real_logits = 2 * (t["real"] * w).flatten(1).sum(1)
    fake_logits = 2 * (t["fake"] * w).flatten(1).sum(1)
    r = 4 * w.square().sum()
    gamma = 2.0  # gamma_start at step 0
    adversarial = F.softplus(-(real_logits - fake_logits)).mean()
    torch.testing.assert_close(stats["r1"], r)
    torch.testing.assert_close(stats["r2"], r)
    torch.testing.assert_close(loss, adversarial + gamma / 2 * (r + r))
    torch.testing.assert_close(parts.d_input.observed[0], real_logits)
    # The penalties reach D's weights: d/dw of γ/2 · 2 · 4‖w‖² is 8γw.
    loss.backward()
    grad_adversarial = torch.autograd.grad(
        F.softplus(-2 * ((t["real"] - t["fake"]) * parts.D.w).flatten(1).sum(1)).mean(),
        parts.D.w)[0]  # fmt: skip
    torch.testing.assert_close(parts.D.w.grad, grad_adversarial + 8 * gamma * parts.D.w.detach())

    loss_g, stats_g = objective.loss(g_phase)
    expected_g = F.softplus(-(fake_logits - real_logits)).mean()
    torch.testing.assert_close(loss_g, expected_g)
    assert stats_g["loss_g"] == loss_g.detach()
    assert parts.d_input.seen == 3 * 4  # reals and fakes in D's phase and in G's


def test_lazy_penalties_run_in_a_phase_of_their_own():
    parts, t = _parts(r_interval=4)
    objective = R3GANObjective(parts)
    assert [p.name for p in objective.phases_due(0)] == ["D", "Dreg", "G"]
    assert [p.name for p in objective.phases_due(1)] == ["D", "G"]
    d_phase, reg_phase, _ = objective.phases_due(4)
    loss, stats = objective.loss(d_phase)
    assert "r1" not in stats
    penalty, reg_stats = objective.loss(reg_phase)
    gamma = gamma_at(4, 11, 2.0, 0.5)
    r = 4 * t["w"].square().sum()
    torch.testing.assert_close(penalty, torch.tensor(gamma / 2 * 2 * r.item()))
    assert reg_stats["gamma"].item() == pytest.approx(gamma)
    assert reg_phase.interval == 4  # the loop scales the loss by 4


def test_gamma_follows_a_cosine_from_start_to_end_over_the_run():
    assert gamma_at(0, 101, 2.0, 0.5) == 2.0
    assert gamma_at(100, 101, 2.0, 0.5) == pytest.approx(0.5)
    assert gamma_at(50, 101, 2.0, 0.5) == pytest.approx(1.25)  # the midpoint of the cosine
    assert gamma_at(25, 101, 2.0, 0.5) == pytest.approx(0.5 + 1.5 * (1 + math.cos(math.pi / 4)) / 2)
    assert gamma_at(500, 101, 2.0, 0.5) == pytest.approx(0.5)  # held after the end
    parts, _ = _parts(steps=11)
    objective = R3GANObjective(parts)
    values = []
    for step in range(11):
        objective.phases_due(step)
        values.append(objective.gamma)
    assert values[0] == 2.0 and values[-1] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(values, values[1:]))


def test_gamma_schedule_spans_the_run_when_it_is_given_in_epochs(tiny_dataset, tmp_path):
    overrides = {"data.path": str(tiny_dataset.path), "model.family": "r3gan",
                 **TINY_MODELS["r3gan"], "train.batch_size": 8, "train.epochs": 3,
                 "train.device": "cpu", "train.tensorboard": False}  # fmt: skip
    trainer = Trainer(load_config(overrides=overrides), tmp_path / "run", progress=False)
    assert trainer.objective.total_steps == trainer.total_steps == 3 * 64 // 8


def test_after_one_update_every_parameter_learns_in_both_phases(tiny_dataset, tmp_path):
    """At the start the zero-initialised last conv of every block hides the convs before it
    from the gradient (the blocks are identities); one update opens every path. Lazy R1 + R2
    (model.r_interval=2) train too."""
    overrides = {"data.path": str(tiny_dataset.path), "model.family": "r3gan",
                 **TINY_MODELS["r3gan"], "model.r_interval": 2, "train.batch_size": 8,
                 "train.steps": 10, "train.device": "cpu", "train.tensorboard": False}  # fmt: skip
    trainer = Trainer(load_config(overrides=overrides), tmp_path / "run", progress=False)
    trainer.train_step()
    trainer.step = 1
    for phase in trainer.objective.phases_due(2):
        net = trainer.G if phase.player == "G" else trainer.D
        trainer.G.zero_grad(set_to_none=True)
        trainer.D.zero_grad(set_to_none=True)
        trainer.D.requires_grad_(phase.player == "D")
        loss, _ = trainer.objective.loss(phase)
        loss.backward()
        trainer.D.requires_grad_(True)
        still = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
        if phase.name == "Dreg":  # D is piecewise linear: its input gradient, and so the
            # penalty, does not change with the biases in front of the activations
            still = [n for n in still if not n.endswith(".bias")]
        assert not still, f"phase {phase.name}: no gradient for {still}"


# --- It learns ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_it_moves_sample_colours_toward_the_data(tmp_path):
    """As tests/training/test_families.py measures the other families: the mean absolute gap
    between the per-channel mean colour of 8 fixed-noise samples and of the training images
    (in [-1, 1] units) must shrink by 60 % in 200 steps at 16 px."""
    data = write_dataset(tmp_path / "data", make_blobs(64))
    overrides = {"data.path": str(data.path), "model.family": "r3gan", "model.resolution": 16,
                 **TINY_MODELS["r3gan"], "model.gamma_start": 1.0, "model.gamma_end": 0.1,
                 "optim.lr_g": 1e-3, "optim.lr_d": 1e-3, "optim.betas": [0.0, 0.99],
                 "train.batch_size": 8, "train.steps": 200, "train.device": "cpu",
                 "train.tensorboard": False, "train.log_interval": 100,
                 "train.sample_interval": 1000, "train.checkpoint_interval": 1000,
                 "train.n_samples": 8}  # fmt: skip
    trainer = Trainer(load_config(overrides=overrides), tmp_path / "run", progress=False)
    before = colour_gap(trainer, data)
    trainer.fit()
    after = colour_gap(trainer, data)
    assert after < 0.4 * before, f"r3gan: colour gap {before:.3f} → {after:.3f}"
