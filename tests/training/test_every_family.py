"""Every registered family with every objective it can train with: gradients reach every
parameter, a saved run samples what the live one does, and a resume continues bit for bit."""

from contextlib import nullcontext

import pytest
import torch

import ganvas
from ganvas import checkpoint as ckpt
from ganvas.config import load_config
from ganvas.inference import latents, pick_generator, run_generator, to_uint8
from ganvas.models.registry import get_family, list_families
from ganvas.training.trainer import Trainer, frozen, train
from tests.conftest import TINY_MODELS, assert_same_checkpoint

# The objectives, as the settings that select them. 'lazy-r1' adds a D regularization phase
# every 2nd step; 'wgan-gp' a double-backward penalty with two D phases per step.
OBJECTIVES = {
    "nonsaturating": {"loss.name": "nonsaturating", "loss.real_label": [0.8, 1.0],
                      "train.replay_size": 16},
    "hinge": {"loss.name": "hinge", "train.instance_noise": 0.1},
    "wgan-gp": {"loss.name": "wasserstein", "loss.gp_weight": 10.0, "train.d_steps": 2},
    "lsgan-lazy-r1": {"loss.name": "lsgan", "loss.r1_weight": 1.0, "loss.r_interval": 2},
}  # fmt: skip
# Image families (restore) have their own objective, which the loss.* settings do not change.
CASES = [(family, name) for family in list_families()
         for name in (["nonsaturating"] if get_family(family).takes_images else OBJECTIVES)]  # fmt: skip


def _config(family: str, objective: str, data_path, **extra):
    settings = {
        "data.path": str(data_path), "data.hflip": True, "model.family": family,
        "model.resolution": 16, **TINY_MODELS[family], **OBJECTIVES[objective],
        "train.batch_size": 8, "train.steps": 20, "train.ema": True, "train.device": "cpu",
        "train.log_interval": 5, "train.sample_interval": 10, "train.checkpoint_interval": 1000,
        "train.n_samples": 4, "train.tensorboard": False,
        # growing families: stages of 4, 8 and 16 px, 7 steps each (21 in all)
        "progressive.stage_kimg": 0.056, "progressive.batch_sizes": [8],
    }  # fmt: skip
    settings.update(extra)
    return load_config(overrides=settings)


def _parameters_in_use(trainer: Trainer, player: str) -> list[tuple[str, torch.nn.Parameter]]:
    net = trainer.G if player == "G" else trainer.D
    if get_family(trainer.config.model.family).grows:  # the final stage, after its fade
        used = {id(p) for m in net.stage_modules(16, fading=False) for p in m.parameters()}
        return [(n, p) for n, p in net.named_parameters() if id(p) in used]
    return list(net.named_parameters())


@pytest.mark.parametrize(("family", "objective"), CASES)
def test_every_phase_reaches_every_parameter(family, objective, labelled_dataset, tmp_path):
    trainer = Trainer(_config(family, objective, labelled_dataset.path), tmp_path / "run",
                      progress=False)  # fmt: skip
    # The last step's plan: growing families at their final stage, after its fade.
    trainer.schedule.begin_step(trainer.total_steps - 1, trainer._growing_networks())
    for phase in trainer.objective.phases_due(0):  # at step 0 every phase is due
        for net in (trainer.G, trainer.D):
            net.zero_grad(set_to_none=True)
        with frozen(trainer.D) if phase.player == "G" else nullcontext():  # as the loop does
            loss, stats = trainer.objective.loss(phase)
            assert loss.ndim == 0 and torch.isfinite(loss), (phase, loss)
            loss.backward()
        missing = [n for n, p in _parameters_in_use(trainer, phase.player)
                   if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]  # fmt: skip
        # A regularization phase may touch only part of its player's network; a main phase
        # must train all of it.
        if phase.name in ("D", "G"):
            assert not missing, f"phase {phase.name}: no gradient for {missing}"
        trainer.objective.after_phase(phase)


@pytest.mark.parametrize(("family", "objective"), CASES)
def test_resume_and_reload_are_exact(family, objective, labelled_dataset, tmp_path):
    cfg = _config(family, objective, labelled_dataset.path)
    straight = train(cfg, tmp_path / "straight", progress=False)
    assert straight.step == straight.total_steps >= 12
    half = straight.total_steps // 2  # growing families: in the middle of a fade

    first = train(cfg, tmp_path / "resumed", progress=False, should_stop=lambda s: s == half)
    assert first.step == half
    second = train(cfg, tmp_path / "resumed", progress=False)
    assert second.step == straight.step
    assert_same_checkpoint(ckpt.load_checkpoint(straight.checkpoint),
                           ckpt.load_checkpoint(second.checkpoint))  # fmt: skip

    trainer = Trainer(cfg, tmp_path / "straight", progress=False)
    if trainer.family.takes_images:  # restores as the live trainer's G; has no latents
        from ganvas.config import ConfigError
        from ganvas.restore import load_restorer

        restorer = load_restorer(tmp_path / "straight", device="cpu")
        assert torch.equal(trainer.sample_fixed(), trainer.sample_sheet(restorer.G))
        with pytest.raises(ConfigError, match="ganvas restore"):
            ganvas.load(tmp_path / "straight", device="cpu")
        return
    # What `ganvas.load` samples equals what the live trainer's generator draws.
    z = latents(4, cfg.model.z_dim, seed=0)
    labels = (
        torch.arange(4) % trainer.config.model.num_classes if trainer.family.conditional else None
    )
    live = to_uint8(run_generator(pick_generator(trainer.G, trainer.G_ema), z, labels))
    loaded = ganvas.load(tmp_path / "straight", device="cpu").sample(4, seed=0)
    assert loaded.dtype == torch.uint8 and loaded.shape == (4, 3, 16, 16)
    assert torch.equal(live, loaded)
