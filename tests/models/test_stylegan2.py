"""StyleGAN2: its blocks do what the paper says, its objective's terms match a hand computation,
truncation and style mixing work, and its running statistics survive a resume bit for bit."""

import math

import pytest
import torch

from ganvas import checkpoint as ckpt
from ganvas.config import ConfigError, load_config
from ganvas.models.layers import (
    Downsample2d,
    ScaledLinear,
    Upsample2d,
    downsample2d,
    fir_kernel,
    modulated_conv2d,
    upsample2d,
)
from ganvas.models.registry import build_models
from ganvas.objectives.stylegan2 import mix_styles, path_length_penalty, r1_gamma_auto
from ganvas.training.trainer import Trainer, train
from tests.conftest import TINY_MODELS, assert_same_checkpoint, colour_gap


def _cfg(resolution: int = 16, **extra):
    overrides = {"model.family": "stylegan2", "model.resolution": resolution,
                 "model.channels": 3, **TINY_MODELS["stylegan2"]}  # fmt: skip
    overrides.update({f"model.{k}": v for k, v in extra.items()})
    return load_config(overrides=overrides).model


def _models(**extra):
    torch.manual_seed(0)
    return build_models(_cfg(**extra))


def _run_config(data_path, steps: int = 6, **extra):
    settings = {"data.path": str(data_path), "model.family": "stylegan2",
                **TINY_MODELS["stylegan2"], "model.pl_interval": 2, "model.r1_interval": 2,
                "train.batch_size": 8, "train.steps": steps, "train.device": "cpu",
                "train.ema": True, "train.ema_kimg": 0.01, "train.ema_rampup": 0.05,
                "train.log_interval": 1, "train.sample_interval": 1000,
                "train.checkpoint_interval": 1000, "train.n_samples": 4,
                "train.tensorboard": False, "optim.lr_g": 2.5e-3, "optim.lr_d": 2.5e-3,
                "optim.betas": [0.0, 0.99]}  # fmt: skip
    settings.update(extra)
    return load_config(overrides=settings)


# --- Shapes and sizes ----------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_shapes_and_the_call_contract(resolution):
    G, D = _models(resolution=resolution)
    z = torch.randn(4, G.z_dim)
    img = G(z, None)  # positional (z, c), as the samplers call it
    assert img.shape == (4, 3, resolution, resolution)
    assert G.num_ws == 2 * int(math.log2(resolution)) - 2  # two convs per side + last toRGB
    assert D(img, None).shape == (4,)
    assert G.mapping(z).shape == (4, G.num_ws, 16)


def test_tiny_models_are_test_sized_and_widths_follow_channel_base():
    G, D = _models()
    for net in (G, D):
        assert 1e4 <= sum(p.numel() for p in net.parameters()) <= 1e5
    cfg = _cfg(channel_base=32768, channel_max=512)
    assert [cfg.width(s) for s in (4, 64, 128, 256)] == [512, 512, 256, 128]  # config F


def test_the_fir_kernel_is_a_constant_of_the_architecture_not_state():
    G, _ = _models()
    assert not any(name.endswith("kernel") for name in G.state_dict())
    assert "mapping.w_avg" in G.state_dict()  # the tracked mean w is saved with G


@pytest.mark.parametrize(("key", "value"), [("style_mixing", 1.5), ("pl_decay", 0.0),
                                            ("r1_gamma", -1.0), ("mapping_layers", 0)])  # fmt: skip
def test_bad_settings_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        _cfg(**{key: value})


# --- Blocks --------------------------------------------------------------------------------


def test_demodulation_gives_unit_variance_outputs_for_unit_variance_inputs():
    torch.manual_seed(0)
    x = torch.randn(4, 32, 40, 40)  # unit variance
    weight = torch.randn(16, 32, 3, 3) * 5
    styles = torch.randn(4, 32) * 3  # any scale per sample and input channel
    out = modulated_conv2d(x, weight, styles, padding=1)[:, :, 1:-1, 1:-1]  # away from padding
    std = out.std(dim=(2, 3))  # [N, O]: every sample and output channel
    assert std.shape == (4, 16)
    assert torch.allclose(std, torch.ones_like(std), atol=0.05)
    plain = modulated_conv2d(x, weight, styles, demodulate=False, padding=1)
    assert plain.std() > 10  # without demodulation the styles' and weights' scale comes through


def test_modulation_equals_a_per_sample_kernel():
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 5, 8, 8), torch.randn(4, 5, 3, 3), torch.randn(3, 5)
    out = modulated_conv2d(x, weight, styles, padding=1)
    for n in range(3):
        w = weight * styles[n][None, :, None, None]
        w = w / w.square().sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
        expected = torch.nn.functional.conv2d(x[n : n + 1], w, padding=1)
        assert torch.allclose(out[n : n + 1], expected, atol=1e-5)


def test_fir_up_and_down_sampling_keep_a_constant_image_constant_and_change_its_size():
    image = torch.full((2, 3, 8, 8), 0.7)
    up = upsample2d(image, fir_kernel())
    assert up.shape == (2, 3, 16, 16)
    assert torch.allclose(up[..., 1:-1, 1:-1], torch.full_like(up[..., 1:-1, 1:-1], 0.7))
    down = downsample2d(up[..., :, :], fir_kernel())
    assert down.shape == (2, 3, 8, 8)
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.full((2, 3, 6, 6), 0.7))
    big = torch.full((1, 2, 16, 16), -0.3)
    assert torch.allclose(Downsample2d()(big)[..., 1:-1, 1:-1], torch.full((1, 2, 6, 6), -0.3))
    assert Upsample2d()(big).shape == (1, 2, 32, 32)
    # Outside the image counts as 0, as in stylegan2: only the outermost pixels see it.
    assert (up[..., 0, 1:-1] < 0.7).all() and (down[..., 0, 1:-1] < 0.7).all()


def test_fir_filters_are_low_pass():
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2.0 - 1  # Nyquist
    down = downsample2d(checker.expand(1, 1, 16, 16), fir_kernel())
    assert down[..., 1:-1, 1:-1].abs().max() < 1e-6  # the highest frequency is removed


def test_the_lr_multiplier_scales_the_effective_weights_and_their_steps():
    torch.manual_seed(0)
    layer = ScaledLinear(64, 8, lr_multiplier=0.01, bias_init=0.5)
    effective = layer.weight * layer.weight_gain
    assert effective.std().item() == pytest.approx(1 / math.sqrt(64), rel=0.1)  # He's constant
    assert torch.allclose(layer.bias * layer.bias_gain, torch.full((8,), 0.5))


# --- The mapping network, truncation and style mixing --------------------------------------


def test_the_mean_w_follows_the_batches_it_is_told_to():
    G, _ = _models()
    z = torch.randn(8, G.z_dim)
    w = G.mapping(z)[:, 0]
    assert torch.equal(G.mapping.w_avg, torch.zeros(16))  # not updated unless asked
    G.mapping(z, update_w_avg=True)
    expected = (1 - 0.995) * w.mean(dim=0)  # from 0: one step of the 0.995 average
    assert torch.allclose(G.mapping.w_avg, expected, atol=1e-7)


def test_truncation_zero_gives_the_mean_image_for_every_seed():
    G, _ = _models()
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn(16))
    G.eval()
    images = [G(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(s)),
                truncation=0.0) for s in range(3)]  # fmt: skip
    for img in images:
        assert torch.allclose(img, images[0][:1].expand_as(img), atol=1e-6)
    mean_ws = G.mapping.w_avg.expand(1, G.num_ws, -1)
    assert torch.allclose(images[0][:1], G.synthesis(mean_ws, "const"), atol=1e-6)
    z = torch.randn(2, G.z_dim)
    assert torch.equal(G(z, truncation=1.0), G(z))  # ψ = 1 is no truncation
    assert not torch.allclose(G(z)[0], G(z)[1])
    half = G(z, truncation=0.5)
    assert not torch.allclose(half[0], half[1])


def test_eval_mode_is_deterministic_and_training_mode_draws_noise():
    G, _ = _models()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(1.0)
    z = torch.randn(2, G.z_dim)
    G.eval()
    assert torch.equal(G(z), G(z))
    G.train()
    first = G(z, generator=torch.Generator().manual_seed(1))
    again = G(z, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, again)  # the noise comes from the generator given
    assert not torch.equal(first, G(z, generator=torch.Generator().manual_seed(2)))
    assert torch.equal(G(z, noise_mode="none"), G(z, noise_mode="none"))


def test_style_mixing_uses_two_ws_from_a_random_layer_on():
    G, _ = _models()
    z = torch.randn(6, G.z_dim)
    w = G.mapping(z)[:, 0]  # [N, w_dim]
    crossovers = set()
    for seed in range(12):
        ws = mix_styles(G, z, 1.0, torch.Generator().manual_seed(seed), update_w_avg=False)
        same = torch.isclose(ws, w[:, None], atol=0).all(dim=2)  # [N, num_ws]: first z's w
        crossover = int(same[0].sum())
        assert 1 <= crossover < G.num_ws, "p=1 must mix: both ws in use"
        assert same[:, :crossover].all() and not same[:, crossover:].any()
        second = ws[:, crossover:]
        assert torch.equal(second, second[:, :1].expand_as(second))  # one second w per sample
        crossovers.add(crossover)
    assert len(crossovers) > 1  # the crossover layer is random
    unmixed = mix_styles(G, z, 0.0, torch.Generator().manual_seed(0), update_w_avg=False)
    assert torch.equal(unmixed, G.mapping(z))


def test_style_mixing_moves_the_mean_w_toward_the_first_latents_only():
    G, _ = _models()
    z = torch.randn(8, G.z_dim)
    w = G.mapping(z)[:, 0]
    mix_styles(G, z, 1.0, torch.Generator().manual_seed(0))
    assert torch.allclose(G.mapping.w_avg, (1 - 0.995) * w.mean(dim=0), atol=1e-7)


# --- Path length and R1 --------------------------------------------------------------------


def test_path_length_penalty_and_running_mean_match_a_hand_computation():
    torch.manual_seed(0)
    n, layers, w_dim, c, h, w = 3, 2, 4, 2, 2, 3
    A = torch.randn(layers * w_dim, c * h * w, dtype=torch.float64, requires_grad=True)
    ws = torch.randn(n, layers, w_dim, dtype=torch.float64, requires_grad=True)
    img = (ws.flatten(1) @ A).view(n, c, h, w)  # a toy, linear synthesis: J = Aᵀ
    mean0, decay = torch.tensor(0.5, dtype=torch.float64), 0.1

    penalty, mean1, lengths = path_length_penalty(img, ws, mean0, decay,
                                                  torch.Generator().manual_seed(7))  # fmt: skip

    y = torch.randn(img.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    y = y / math.sqrt(h * w)
    g = (y.flatten(1) @ A.detach().T).view(n, layers, w_dim)  # ∂(img · y)/∂ws = Aᵀ y
    by_hand = g.square().sum(dim=2).mean(dim=1).sqrt()
    assert torch.allclose(lengths, by_hand)
    mean_by_hand = 0.5 + decay * (by_hand.mean() - 0.5)
    assert torch.allclose(mean1, mean_by_hand)
    assert torch.allclose(penalty.detach(), (by_hand - mean_by_hand) ** 2)
    penalty.sum().backward()  # the penalty trains the synthesis (here: A)
    assert A.grad is not None and A.grad.abs().sum() > 0


def test_the_running_mean_of_path_lengths_accumulates_over_calls():
    torch.manual_seed(0)
    A = torch.randn(8, 12)
    mean, history = torch.zeros(()), []
    for seed in range(3):
        ws = torch.randn(4, 2, 4, requires_grad=True)
        img = (ws.flatten(1) @ A).view(4, 2, 2, 3)
        _, mean, lengths = path_length_penalty(img, ws, mean, 0.01,
                                               torch.Generator().manual_seed(seed))  # fmt: skip
        history.append(lengths.mean())
    expected = torch.zeros(())
    for batch_mean in history:
        expected = expected + 0.01 * (batch_mean - expected)
    assert torch.allclose(mean, expected)


def test_r1_gamma_auto_follows_stylegan2_ada(tiny_dataset, tmp_path):
    assert r1_gamma_auto(256, 64) == pytest.approx(0.2048)
    trainer = Trainer(_run_config(tiny_dataset.path), tmp_path / "run", progress=False)
    assert trainer.objective.r1_gamma == pytest.approx(0.0002 * 16**2 / 8)
    chosen = Trainer(_run_config(tiny_dataset.path, **{"model.r1_gamma": 1.0}), tmp_path / "b",
                     progress=False)  # fmt: skip
    assert chosen.objective.r1_gamma == 1.0


# --- Phases in the loop --------------------------------------------------------------------


def test_lazy_phases_and_their_adam_settings(tiny_dataset, tmp_path):
    cfg = _run_config(tiny_dataset.path, **{"model.pl_interval": 4, "model.r1_interval": 16})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    objective = trainer.objective
    assert [p.name for p in objective.phases()] == ["G", "Greg", "D", "Dreg"]
    assert [p.name for p in objective.phases_due(0)] == ["G", "Greg", "D", "Dreg"]
    assert [p.name for p in objective.phases_due(4)] == ["G", "Greg", "D"]
    assert [p.name for p in objective.phases_due(5)] == ["G", "D"]
    g, d = trainer.optimizers["G"].param_groups[0], trainer.optimizers["D"].param_groups[0]
    assert g["lr"] == pytest.approx(2.5e-3 * 4 / 5) and d["lr"] == pytest.approx(2.5e-3 * 16 / 17)
    assert g["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5)))
    assert d["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))


def test_interval_one_folds_the_terms_into_the_main_phases(tiny_dataset, tmp_path):
    cfg = _run_config(tiny_dataset.path, **{"model.pl_interval": 1, "model.r1_interval": 1})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    assert [p.name for p in trainer.objective.phases()] == ["G", "D"]
    stats = trainer.train_step()
    assert {"loss_g", "pl_penalty", "pl_mean", "loss_d", "r1"} <= set(stats)
    off = _run_config(tiny_dataset.path, **{"model.pl_weight": 0.0, "model.r1_interval": 0})
    plain = Trainer(off, tmp_path / "off", progress=False)
    assert [p.name for p in plain.objective.phases()] == ["G", "D"]
    assert not {"pl_penalty", "r1"} & set(plain.train_step())


def test_one_real_batch_per_step_and_real_logits_reach_the_d_input(tiny_dataset, tmp_path):
    trainer = Trainer(_run_config(tiny_dataset.path), tmp_path / "run", progress=False)
    seen = []
    trainer.d_input.observe_real_logits = lambda logits: seen.append(logits.shape)
    trainer.train_step()  # step 0: G, Greg, D, Dreg
    assert trainer.images_seen == 8
    assert seen == [torch.Size([8])]


def test_resume_restores_the_path_length_mean_and_w_average_bit_exact(tiny_dataset, tmp_path):
    cfg = _run_config(tiny_dataset.path, steps=6)
    straight = train(cfg, tmp_path / "straight", progress=False)
    first = train(cfg, tmp_path / "resumed", progress=False, should_stop=lambda s: s == 3)
    assert first.step == 3
    resumed = train(cfg, tmp_path / "resumed", progress=False)
    assert resumed.step == straight.step == 6
    a, b = ckpt.load_checkpoint(straight.checkpoint), ckpt.load_checkpoint(resumed.checkpoint)
    pl_mean = a.training_state["objective"]["pl_mean"]
    assert pl_mean > 0 and torch.equal(pl_mean, b.training_state["objective"]["pl_mean"])
    for weights in ("G", "G_ema"):
        w_avg = a.weights[weights]["mapping.w_avg"]
        assert w_avg.abs().sum() > 0
        assert torch.equal(w_avg, b.weights[weights]["mapping.w_avg"])
    assert_same_checkpoint(a, b)


@pytest.mark.slow
def test_it_moves_sample_colours_toward_the_data(tiny_dataset, tmp_path):
    """The learning check of tests/training/test_families.py, with this family's recipe: the
    mean colour gap of 8 fixed-noise samples to the (reddish) data must shrink by 40 % in 300
    steps (measured: 0.65 → 0.03)."""

    cfg = _run_config(tiny_dataset.path, steps=300, **{
        "model.pl_interval": 4, "model.r1_interval": 16, "train.ema": False,
        "train.log_interval": 100, "train.n_samples": 8})  # fmt: skip
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    before = colour_gap(trainer, tiny_dataset)
    trainer.fit()
    after = colour_gap(trainer, tiny_dataset)
    assert after < 0.6 * before, f"colour gap {before:.3f} → {after:.3f}"
