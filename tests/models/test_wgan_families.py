import pytest
import torch
from torch import nn

import ganvas.models.wgan  # noqa: F401  (registers 'wgan' before the registry loads it)
import ganvas.models.wgan_gp  # noqa: F401  (registers 'wgan_gp')
from ganvas.config import ConfigError, load_config
from ganvas.models.registry import build_models

TINY = {"model.g_width": 8, "model.d_width": 8}
FAMILIES = ["wgan", "wgan_gp"]


def _model_config(family: str, resolution: int = 16, channels: int = 3, **extra):
    overrides = {"model.family": family, "model.resolution": resolution, "model.channels": channels}
    overrides.update(TINY)
    overrides.update(extra)
    return load_config(overrides=overrides).model


def _build(family: str, resolution: int = 16, channels: int = 3, **extra):
    torch.manual_seed(0)
    return build_models(_model_config(family, resolution, channels, **extra))


def _dropout_rates(module: nn.Module) -> list[float]:
    return [m.p for m in module.modules() if isinstance(m, nn.Dropout | nn.Dropout2d)]


def _head(D: nn.Module) -> nn.Module:
    """The critic's last weighted layer (its score comes straight out of it)."""
    return [m for m in D.modules() if isinstance(m, nn.Conv2d | nn.Linear)][-1]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("resolution", [16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_ranges(family, resolution, channels):
    G, D = _build(family, resolution, channels)
    z = torch.randn(5, G.z_dim)
    img = G(z)
    assert img.shape == (5, channels, resolution, resolution)
    assert img.min() >= -1 and img.max() <= 1
    scores = D(img)
    assert scores.shape == (5,)
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_critic_score_is_linear_not_squashed(family):
    _, D = _build(family)
    D.eval()  # fixed dropout masks and BatchNorm statistics, so two passes are comparable
    assert not any(isinstance(m, nn.Sigmoid | nn.Tanh) for m in D.modules())
    img = torch.rand(6, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        scores = D(img)
        # Scaling the last layer's weights and bias scales the scores exactly: nothing after
        # it bends them, so scores can reach any size a sigmoid or tanh output could not.
        k = 10.0 / scores.abs().max().item()
        head = _head(D)
        head.weight.mul_(k)
        if head.bias is not None:
            head.bias.mul_(k)
        scaled = D(img)
    torch.testing.assert_close(scaled, k * scores, rtol=1e-4, atol=1e-5)
    assert scaled.abs().max() > 1
    assert not ((scaled > 0) & (scaled < 1)).all()


@pytest.mark.parametrize("critic_norm", ["batch", "none"])
def test_wgan_critic_is_positively_homogeneous_at_init(critic_norm):
    # LeakyReLU, bias-free convs (biases start at 0) and BatchNorm with its initial running
    # statistics make D(k·x) = k·D(x): the score grows without bound with the input.
    _, D = _build("wgan", **{"model.critic_norm": critic_norm})
    D.eval()
    img = torch.rand(4, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        scores = D(img)
        k = 10.0 / scores.abs().max().item()
        torch.testing.assert_close(D(k * img), k * scores, rtol=1e-3, atol=1e-5)


def test_wgan_reuses_dcgan_generator_and_toggles_critic_batchnorm():
    from ganvas.models.dcgan import Generator as DCGANGenerator

    G, D = _build("wgan")
    assert type(G) is DCGANGenerator
    assert any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    _, D_plain = _build("wgan", **{"model.critic_norm": "none"})
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D_plain.modules())
    # Without BatchNorm the hidden convs carry their own bias; the score conv never does.
    convs = [m for m in D_plain.modules() if isinstance(m, nn.Conv2d)]
    assert [c.bias is not None for c in convs] == [False, True, False]


@pytest.mark.parametrize("resolution", [16, 32])
def test_wgan_gp_critic_is_layer_normalised_without_batchnorm(resolution):
    _, D = _build("wgan_gp", resolution)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())
    norms = [m for m in D.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(m.num_groups == 1 for m in norms)
    # Two norms in each down-block, one down-block per halving from R to 4.
    assert len(norms) == 2 * (resolution.bit_length() - 3)


def _scores_with_fixed_dropout(D: nn.Module, img: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(123)  # same dropout masks for batches of the same shape
    return D(img)


def test_wgan_gp_critic_scores_each_sample_independently_in_train_mode():
    _, D = _build("wgan_gp")
    D.train()
    torch.manual_seed(1)
    batch = torch.rand(4, 3, 16, 16) * 2 - 1
    other = batch.clone()
    other[1:] = torch.rand(3, 3, 16, 16) * 4 - 2  # change every sample but the first
    a = _scores_with_fixed_dropout(D, batch)
    b = _scores_with_fixed_dropout(D, other)
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[1:], b[1:])


def test_batchnorm_critic_couples_samples_in_train_mode():
    # The contrast that motivates layer norm: with batch statistics the same test fails.
    _, D = _build("wgan")
    D.train()
    torch.manual_seed(1)
    batch = torch.rand(4, 3, 16, 16) * 2 - 1
    other = batch.clone()
    other[1:] = torch.rand(3, 3, 16, 16) * 4 - 2
    assert not torch.allclose(D(batch)[0], D(other)[0])


@pytest.mark.parametrize("family", ["wgan_gp", "wgan"])
def test_critic_supports_a_gradient_penalty(family):
    # The penalty differentiates the input gradient again; in-place ops would break it.
    _, D = _build(family, **({"model.critic_norm": "none"} if family == "wgan" else {}))
    x = (torch.rand(3, 3, 16, 16) * 2 - 1).requires_grad_()
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    penalty.backward()
    # Every weight shapes the input gradient (a bias on the score alone would not).
    weights = [p for name, p in D.named_parameters() if name.endswith("weight")]
    assert all(w.grad is not None and torch.isfinite(w.grad).all() for w in weights)


@pytest.mark.parametrize(
    ("resolution", "g_rates", "d_rates", "g_expected", "d_expected"),
    [
        (16, None, None, [0.5, 0.2], [0.5, 0.5]),  # 2 stages: the first two rates
        (32, None, None, [0.5, 0.2, 0.2], [0.5, 0.5, 0.2]),  # 3 stages: all of them
        (64, [0.3], [0.1, 0.0], [0.3], [0.1, 0.0]),  # 4 stages: later ones get none
        (32, [], [], [], []),
    ],
)
def test_wgan_gp_dropout_rates_follow_the_config(
    resolution, g_rates, d_rates, g_expected, d_expected
):
    extra = {}
    if g_rates is not None:
        extra.update({"model.g_dropout": g_rates, "model.d_dropout": d_rates})
    G, D = _build("wgan_gp", resolution, **extra)
    assert _dropout_rates(G) == pytest.approx(g_expected)
    assert _dropout_rates(D) == pytest.approx(d_expected)


def test_wgan_gp_dropout_sits_between_residual_stages():
    from ganvas.models.wgan_gp import DownBlock, UpBlock

    G, D = _build("wgan_gp", 64)
    kinds = [type(m).__name__ for m in G.blocks]
    assert kinds == ["UpBlock", "Dropout2d"] * 3 + ["UpBlock"]
    assert sum(isinstance(m, UpBlock) for m in G.blocks) == 4
    kinds = [type(m).__name__ for m in D.blocks]
    assert kinds == ["DownBlock", "Dropout2d"] * 3 + ["DownBlock"]
    assert sum(isinstance(m, DownBlock) for m in D.blocks) == 4


def test_wgan_gp_defaults_and_widths_at_64px():
    cfg = load_config(overrides={"model.family": "wgan_gp"}).model
    assert cfg.z_dim == 128
    assert cfg.g_dropout == (0.5, 0.2, 0.2) and cfg.d_dropout == (0.5, 0.5, 0.2)
    assert cfg.critic_activation == "relu"
    G, D = build_models(_model_config("wgan_gp", 64, **{"model.g_width": 64, "model.d_width": 64}))
    assert G.fc.out_features == 4 * 4 * 512
    assert [b.main[3].out_channels for b in G.blocks if hasattr(b, "main")] == [256, 128, 64, 64]
    assert [b.main[5].out_channels for b in D.blocks if hasattr(b, "main")] == [64, 128, 256, 512]


def test_wgan_gp_leaky_relu_critic():
    _, D = _build("wgan_gp", **{"model.critic_activation": "leaky_relu"})
    assert any(isinstance(m, nn.LeakyReLU) for m in D.modules())
    assert not any(isinstance(m, nn.ReLU) for m in D.modules())


@pytest.mark.parametrize(
    ("family", "key", "value"),
    [
        ("wgan_gp", "model.g_dropout", [0.5, 1.0]),
        ("wgan_gp", "model.d_dropout", [-0.1]),
        ("wgan_gp", "model.critic_activation", "gelu"),
        ("wgan_gp", "model.g_width", 0),
        ("wgan_gp", "model.max_width", 0),
        ("wgan", "model.critic_norm", "layer"),
        ("wgan", "model.d_width", 0),
    ],
)
def test_config_errors_name_the_key(family, key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _model_config(family, **{key: value})
