import math

import pytest
import torch
from torch import nn

from ganvas.config import ConfigError, load_config
from ganvas.models.layers import (
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    PixelNorm,
    mbstd_group_size,
)
from ganvas.models.progan import parameter_count
from ganvas.models.registry import build_models
from tests.conftest import TINY_MODELS

STAGES = [4, 8, 16, 32]


def _cfg(resolution: int = 32, channels: int = 3, **extra):
    overrides = {"model.family": "progan", "model.resolution": resolution,
                 "model.channels": channels, **TINY_MODELS["progan"]}  # fmt: skip
    overrides.update({f"model.{k}": v for k, v in extra.items()})
    return load_config(overrides=overrides).model


def _models(**extra):
    torch.manual_seed(0)
    return build_models(_cfg(**extra))


def _perturb(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p))


# --- Shapes and the fade-in ----------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_every_stage_makes_and_takes_images_of_its_side(channels):
    G, D = _models(channels=channels)
    assert G.resolutions == D.resolutions == STAGES
    assert (G.resolution, G.alpha, D.resolution, D.alpha) == (32, 1.0, 32, 1.0)  # defaults
    z = torch.randn(6, G.z_dim)
    for r in STAGES:
        for alpha in (0.0, 0.5, 1.0):
            G.set_stage(r, alpha)
            D.set_stage(r, alpha)
            img = G(z)
            assert img.shape == (6, channels, r, r)
            scores = D(img)
            assert scores.shape == (6,) and torch.isfinite(scores).all()


def test_d_rejects_images_of_another_stage():
    _, D = _models()
    D.set_stage(16, 1.0)
    with pytest.raises(ValueError, match="16×16 stage"):
        D(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("r", [8, 16, 32])
def test_g_fade_in_blends_the_previous_and_new_layers(r):
    G, _ = _models()
    z = torch.randn(4, G.z_dim)
    G.set_stage(r, 1.0)
    full = G(z)
    _perturb(G.to_rgb[str(r // 2)])  # alpha = 1: the previous toRGB plays no part
    assert torch.equal(G(z), full)

    G.set_stage(r, 0.0)
    old = G(z)
    _perturb(G.blocks[str(r)])  # alpha = 0: neither does the new block (nor its toRGB)
    _perturb(G.to_rgb[str(r)])
    assert torch.equal(G(z), old)
    # ... the old path alone: the previous stage's image, nearest-upsampled
    G.set_stage(r // 2, 1.0)
    assert torch.equal(old, G(z).repeat_interleave(2, 2).repeat_interleave(2, 3))

    G.set_stage(r, 0.5)  # halfway, both matter
    half = G(z)
    _perturb(G.to_rgb[str(r // 2)])
    assert not torch.allclose(G(z), half)


@pytest.mark.parametrize("r", [8, 16, 32])
def test_d_fade_in_blends_the_previous_and_new_layers(r):
    _, D = _models()
    img = torch.randn(4, 3, r, r)
    D.set_stage(r, 1.0)
    full = D(img)
    _perturb(D.from_rgb[str(r // 2)])  # alpha = 1: the previous fromRGB plays no part
    assert torch.equal(D(img), full)

    D.set_stage(r, 0.0)
    old = D(img)
    _perturb(D.from_rgb[str(r)])  # alpha = 0: nor do the new fromRGB and block
    _perturb(D.blocks[str(r)])
    assert torch.equal(D(img), old)
    # ... the old path alone: the previous stage on the 2×2-average-pooled image
    D.set_stage(r // 2, 1.0)
    assert torch.allclose(old, D(torch.nn.functional.avg_pool2d(img, 2)))

    D.set_stage(r, 0.5)
    half = D(img)
    _perturb(D.from_rgb[str(r // 2)])
    assert not torch.allclose(D(img), half)


def test_start_resolution_above_4_has_no_earlier_stages():
    G, D = _models(start_resolution=8)
    assert G.resolutions == [8, 16, 32] and sorted(map(int, G.to_rgb)) == [8, 16, 32]
    assert sorted(map(int, D.from_rgb)) == [8, 16, 32]
    for net in (G, D):
        net.set_stage(8, 0.0)  # nothing to fade from at the first stage: alpha is ignored
        assert not net.fading
    img = G(torch.randn(2, G.z_dim))
    assert img.shape == (2, 3, 8, 8) and D(img).shape == (2,)
    with pytest.raises(ValueError, match="choose one of 8, 16, 32"):
        G.set_stage(4, 1.0)


def test_set_stage_rejects_bad_resolutions_and_alphas():
    G, D = _models()
    for net in (G, D):
        for bad in (2, 12, 64):
            with pytest.raises(ValueError, match=r"resolution=\d+ is not allowed.*4, 8, 16, 32"):
                net.set_stage(bad, 1.0)
        for alpha in (-0.1, 1.5):
            with pytest.raises(ValueError, match="alpha=.* must lie in"):
                net.set_stage(8, alpha)
        assert (net.resolution, net.alpha) == (32, 1.0)  # a rejected stage changes nothing


def test_state_dict_keys_do_not_depend_on_the_stage():
    G, D = _models()
    for net in (G, D):
        keys = list(net.state_dict())
        assert not any("alpha" in k or k.endswith("resolution") for k in keys)
        assert not list(net.buffers())
        for r in STAGES:
            net.set_stage(r, 0.3)
            assert list(net.state_dict()) == keys
    # A checkpoint taken at one stage loads into a network at another.
    G2, _ = _models()
    G2.set_stage(8, 0.5)
    G2.load_state_dict(G.state_dict())


def test_gradients_reach_the_used_layers_and_the_gradient_penalty_works():
    G, D = _models()
    for net in (G, D):
        net.set_stage(16, 0.5)
    fake = G(torch.randn(4, G.z_dim))
    scores = D(fake)
    (grad,) = torch.autograd.grad(scores.sum(), fake, create_graph=True)  # WGAN-GP's ∇D
    (scores.mean() + ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()).backward()
    for net in (G, D):
        for m in net.stage_modules(16, fading=True):
            assert all(p.grad is not None for p in m.parameters())
        unused = net.blocks["32"]
        assert all(p.grad is None for p in unused.parameters())


# --- Layers --------------------------------------------------------------------------------


def test_equalized_layers_store_unit_weights_and_keep_he_variance():
    torch.manual_seed(0)
    conv = EqualizedConv2d(64, 64, 3, padding=1)
    linear = EqualizedLinear(512, 256)
    assert conv.weight.std().item() == pytest.approx(1.0, rel=0.05)
    assert linear.weight.std().item() == pytest.approx(1.0, rel=0.05)
    assert list(conv.state_dict()) == ["weight", "bias"]  # the scale is not state
    with torch.no_grad():
        y_conv = conv(torch.randn(16, 64, 16, 16))[:, :, 1:-1, 1:-1]  # no zero padding
        y_linear = linear(torch.randn(2048, 512))
        y_rgb = EqualizedConv2d(64, 3, 1, gain=1.0)(torch.randn(64, 64, 8, 8))
    assert y_conv.var().item() == pytest.approx(2.0, rel=0.2)  # He: Var = 2 · Var(x)
    assert y_linear.var().item() == pytest.approx(2.0, rel=0.2)
    assert y_rgb.var().item() == pytest.approx(1.0, rel=0.2)  # toRGB: gain 1


def test_models_use_equalized_layers_or_he_initialised_plain_ones():
    G, D = _models(max_width=64, width_base=1024)
    eq = [m for net in (G, D) for m in net.modules() if isinstance(m, EqualizedConv2d)]
    assert eq and not any(type(m) is nn.Conv2d for net in (G, D) for m in net.modules())
    weights = torch.cat([m.weight.flatten() for m in eq])
    assert weights.std().item() == pytest.approx(1.0, rel=0.05)

    G, D = _models(max_width=64, width_base=1024, equalized_lr=False)
    assert not any(isinstance(m, EqualizedConv2d | EqualizedLinear) for m in G.modules())
    conv = G.blocks["8"].conv1  # 64 → 64, 3×3
    assert type(conv) is nn.Conv2d
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.1)
    rgb = G.to_rgb["8"]
    assert rgb.weight.std().item() == pytest.approx(math.sqrt(1 / 64), rel=0.2)


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = torch.randn(4, 8, 5, 5) * 3 + 1
    y = PixelNorm()(x)
    assert torch.allclose(y.pow(2).mean(dim=1), torch.ones(4, 5, 5), atol=1e-5)
    z = PixelNorm()(torch.randn(7, 16) * 10)  # latents [N, z_dim] too
    assert torch.allclose(z.pow(2).mean(dim=1), torch.ones(7), atol=1e-5)


def test_g_features_are_pixel_normed():
    G, _ = _models()
    features = G.blocks["8"](G.input(torch.randn(3, G.z_dim)))
    assert torch.allclose(features.pow(2).mean(dim=1), torch.ones(3, 8, 8), atol=1e-4)


def test_minibatch_stddev_adds_one_channel_that_is_zero_for_identical_images():
    layer = MinibatchStdDev(4)
    x = torch.randn(8, 5, 4, 4)
    assert layer(x).shape == (8, 6, 4, 4)
    assert torch.equal(layer(x)[:, :5], x)
    same = layer(torch.randn(1, 5, 4, 4).expand(8, -1, -1, -1).contiguous())
    assert same[:, 5].abs().max().item() < 1e-3  # sqrt(0 + eps) with eps = 1e-8

    # Groups are samples n, n + M, …: with N = 8, G = 4 → M = 2 groups, {0, 2, 4, 6}, {1, 3, 5, 7}.
    out = layer(x)[:, 5]
    for members in ([0, 2, 4, 6], [1, 3, 5, 7]):
        expected = (x[members].var(0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(out[members], expected.expand(4, 4, 4), atol=1e-6)


@pytest.mark.parametrize(("batch", "group", "expected"), [(8, 4, 4), (6, 4, 3), (5, 4, 1), (2, 4, 2), (1, 4, 1), (12, 8, 6)])  # fmt: skip
def test_minibatch_stddev_group_is_the_largest_divisor_of_the_batch(batch, group, expected):
    assert mbstd_group_size(batch, group) == expected
    assert MinibatchStdDev(group)(torch.randn(batch, 3, 4, 4)).shape == (batch, 4, 4, 4)


# --- Options -------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["leaky_relu", "gelu", "selu"])
@pytest.mark.parametrize("dilation", [1, 2])
def test_activation_and_dilation_options_build_and_run(activation, dilation):
    G, D = _models(activation=activation, dilation=dilation)
    kind = {"leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "selu": nn.SELU}[activation]
    assert any(isinstance(m, kind) for m in G.modules())
    assert any(isinstance(m, kind) for m in D.modules())
    assert G.blocks["16"].conv1.dilation == D.blocks["16"].conv2.dilation == dilation
    for r, alpha in ((32, 1.0), (16, 0.5), (4, 1.0)):
        G.set_stage(r, alpha)
        D.set_stage(r, alpha)
        img = G(torch.randn(4, G.z_dim))
        assert img.shape == (4, 3, r, r) and torch.isfinite(D(img)).all()


def test_pixel_norm_and_minibatch_stddev_can_be_switched_off():
    G, D = _models(pixel_norm=False, mbstd_group=0)
    assert not any(isinstance(m, PixelNorm) for m in G.modules())
    assert not any(isinstance(m, MinibatchStdDev) for m in D.modules())
    img = G(torch.randn(3, G.z_dim))
    assert D(img).shape == (3,)


def test_config_defaults():
    cfg = _cfg(resolution=128, **{"z_dim": 512, "max_width": 512, "width_base": 8192})
    assert (cfg.start_resolution, cfg.activation, cfg.dilation) == (4, "leaky_relu", 1)
    assert (cfg.equalized_lr, cfg.pixel_norm, cfg.mbstd_group) == (True, True, 4)
    assert [cfg.width(r) for r in (4, 8, 16, 32, 64, 128)] == [512, 512, 512, 256, 128, 64]
    default = load_config(overrides={"model.family": "progan"}).model
    assert (default.z_dim, default.max_width, default.width_base) == (512, 512, 16384)
    # the paper's widths: 512 up to 32 px, then halving
    assert [default.width(r) for r in (4, 32, 64, 128)] == [512, 512, 256, 128]


@pytest.mark.parametrize(
    ("key", "value"),
    [("start_resolution", 64), ("start_resolution", 6), ("start_resolution", 2),
     ("activation", "swish"), ("mbstd_group", -1), ("dilation", 0), ("max_width", 0)],
)  # fmt: skip
def test_config_errors_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        _cfg(**{key: value})


# --- Parameter counts ----------------------------------------------------------------------


def test_parameter_count_at_4px_is_the_sum_of_the_used_layers():
    cfg = _cfg()  # z 16, 16 channels at 4×4, RGB
    g_expected = (16 * 256 + 256) + (16 * 16 * 9 + 16) + (16 * 3 + 3)  # fc, conv3×3, toRGB
    d_expected = (3 * 16 + 16) + (17 * 16 * 9 + 16) + (16 * 16 * 16 + 16) + (16 + 1)
    # fromRGB, conv3×3 on 16 + 1 (mbstd) channels, conv4×4, linear → 1
    assert parameter_count(cfg, 4) == (g_expected, d_expected) == (6723, 6657)


def test_parameter_count_grows_with_the_stage_and_counts_the_fade():
    cfg = _cfg()
    counts = [parameter_count(cfg, r) for r in STAGES]
    for (g0, d0), (g1, d1) in zip(counts, counts[1:]):
        assert g1 > g0 and d1 > d0
    G, D = _models()
    g_total, d_total = (sum(p.numel() for p in net.parameters()) for net in (G, D))
    # At the final stage, once faded in, every layer but the earlier toRGB/fromRGBs is used.
    earlier_g = sum(p.numel() for r in STAGES[:-1] for p in G.to_rgb[str(r)].parameters())
    earlier_d = sum(p.numel() for r in STAGES[:-1] for p in D.from_rgb[str(r)].parameters())
    assert parameter_count(cfg, 32, fading=False) == (g_total - earlier_g, d_total - earlier_d)
    g_fade, d_fade = parameter_count(cfg, 32)  # the stage begins with a fade: + 16 px toRGB/fromRGB
    assert g_fade - (g_total - earlier_g) == 8 * 3 + 3
    assert d_fade - (d_total - earlier_d) == 3 * 8 + 8
    with pytest.raises(ValueError, match="not allowed"):
        parameter_count(cfg, 64)
