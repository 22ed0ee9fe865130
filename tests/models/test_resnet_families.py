"""SNGAN and BigGAN: shapes, spectral norm, conditioning and config errors (tiny widths, CPU)."""

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import ganvas.models.biggan  # noqa: F401  (registers itself)
import ganvas.models.sngan  # noqa: F401
from ganvas.config import ConfigError, load_config
from ganvas.models.layers import ConditionalBatchNorm2d, SelfAttention
from ganvas.models.registry import build_models

TINY = {
    "sngan": {"model.g_width": 8, "model.d_width": 8, "model.z_dim": 16},
    "biggan": {"model.g_width": 4, "model.d_width": 4, "model.shared_dim": 8,
               "model.num_classes": 4, "model.z_dim": 60, "model.attention_resolution": 8},
}  # fmt: skip


def _model_config(family: str, resolution: int = 16, channels: int = 3, **extra):
    overrides = {"model.family": family, "model.resolution": resolution, "model.channels": channels}
    overrides.update(TINY[family])
    overrides.update(extra)
    return load_config(overrides=overrides).model


def _labels(n: int, num_classes: int) -> torch.Tensor:
    return torch.arange(n) % num_classes


def _weighted(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding)]


@pytest.mark.parametrize("family", ["sngan", "biggan"])
@pytest.mark.parametrize("resolution", [16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_range(family, resolution, channels):
    torch.manual_seed(0)
    cfg = _model_config(family, resolution, channels)
    G, D = build_models(cfg)
    c = _labels(4, cfg.num_classes) if family == "biggan" else None
    img = G(torch.randn(4, G.z_dim), c)
    assert img.shape == (4, channels, resolution, resolution)
    assert img.min() >= -1 and img.max() <= 1
    logits = D(img, c)
    assert logits.shape == (4,)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("family", ["sngan", "biggan"])
@pytest.mark.parametrize("resolution", [64, 128])
def test_larger_resolutions_build_and_run(family, resolution):
    cfg = _model_config(family, resolution, 3, **{"model.g_width": 2, "model.d_width": 2})
    G, D = build_models(cfg)
    c = _labels(2, cfg.num_classes) if family == "biggan" else None
    img = G(torch.randn(2, G.z_dim), c)
    assert img.shape == (2, 3, resolution, resolution)
    assert D(img, c).shape == (2,)


def test_sngan_32px_widths_and_blocks_follow_the_paper():
    G, D = build_models(_model_config("sngan", 32, 3, **{"model.g_width": 16, "model.d_width": 8}))
    assert [b.conv2.out_channels for b in G.blocks] == [16, 16, 16]
    # D: optimized block 32 → 16, block 16 → 8, two blocks at 8×8, each 8 wide.
    assert [b.downsample for b in D.blocks] == [True, True, False, False]
    assert [b.conv2.out_channels for b in D.blocks] == [8, 8, 8, 8]
    assert not D.blocks[0].preactivation and D.blocks[1].preactivation


@pytest.mark.parametrize("channels", [1, 3])
def test_biggan_aux_classifier_returns_logits_and_class_logits(channels):
    cfg = _model_config("biggan", 16, channels, **{"model.aux_classifier": True})
    G, D = build_models(cfg)
    c = _labels(4, cfg.num_classes)
    logits, class_logits = D(G(torch.randn(4, G.z_dim), c), c)
    assert logits.shape == (4,)
    assert class_logits.shape == (4, cfg.num_classes)


def test_biggan_aux_classifier_without_projection_ignores_labels():
    cfg = _model_config("biggan", **{"model.aux_classifier": True, "model.projection": False})
    _, D = build_models(cfg)
    assert D.embed is None
    img = torch.rand(3, 3, 16, 16) * 2 - 1
    logits, class_logits = D(img)  # no labels needed
    assert logits.shape == (3,) and class_logits.shape == (3, cfg.num_classes)


def test_spectral_norm_wraps_every_layer_of_sngan_d_and_biggan_g_and_d():
    _, sngan_D = build_models(_model_config("sngan"))
    biggan_G, biggan_D = build_models(_model_config("biggan", **{"model.aux_classifier": True}))
    for net in (sngan_D, biggan_G, biggan_D):
        layers = [m for m in _weighted(net) if m is not getattr(net, "shared", None)]
        assert layers
        for m in layers:
            assert parametrize.is_parametrized(m, "weight"), m
    # The shared class embedding of BigGAN's G is a lookup table, not a layer: no SN.
    assert not parametrize.is_parametrized(biggan_G.shared, "weight")


@pytest.mark.parametrize("family", ["sngan", "biggan"])
def test_spectrally_normalised_weights_have_unit_top_singular_value(family):
    torch.manual_seed(0)
    cfg = _model_config(family, 16, 3)
    G, D = build_models(cfg)
    c = _labels(4, cfg.num_classes) if family == "biggan" else None
    for _ in range(3):  # each training-mode forward pass runs one power iteration
        D(G(torch.randn(4, G.z_dim), c), c)
    checked = 0
    for net in (G, D):
        for m in _weighted(net):
            if isinstance(m, nn.Conv2d) and parametrize.is_parametrized(m, "weight"):
                w = m.weight.detach().flatten(1)  # [out, in·k·k]
                assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1, rel=0.05)
                checked += 1
    assert checked >= 7


def test_biggan_class_label_changes_the_image():
    torch.manual_seed(0)
    G, _ = build_models(_model_config("biggan"))
    G.eval()
    z = torch.randn(1, G.z_dim).repeat(4, 1)
    img = G(z, torch.arange(4))  # same z, four classes
    for k in range(1, 4):
        assert (img[k] - img[0]).abs().max() > 1e-3


def test_biggan_self_attention_starts_as_identity():
    G, D = build_models(_model_config("biggan", 32, 3, **{"model.attention_resolution": 16}))
    assert G.attention is not None and D.attention is not None
    for attention in (G.attention, D.attention):
        assert isinstance(attention, SelfAttention)
        assert attention.gamma.item() == 0
        x = torch.randn(2, attention.query.in_channels, 16, 16)
        assert torch.equal(attention(x), x)
    # attention_resolution outside the model's sides (or 0) means none at all.
    for side in (0, 64):
        G, D = build_models(_model_config("biggan", 32, 3, **{"model.attention_resolution": side}))
        assert G.attention is None and D.attention is None


def test_biggan_conditional_bn_gains_start_near_one():
    torch.manual_seed(0)
    cfg = _model_config("biggan", 16, 3, **{"model.g_width": 16})
    G, _ = build_models(cfg)
    norms = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert len(norms) == 2 * len(G.blocks)
    z = torch.randn(64, G.z_dim).split(G.chunk, dim=1)[1]
    y = torch.cat([G.shared(_labels(64, cfg.num_classes)), z], dim=1)  # [N, shared + chunk]
    for norm in norms:
        gain = 1 + norm.gain(y)  # [N, C]
        assert gain.mean().item() == pytest.approx(1, abs=0.1)
        assert torch.equal(1 + norm.gain(torch.zeros_like(y)), torch.ones_like(gain))


def test_biggan_without_classes_raises_a_helpful_error():
    cfg = _model_config("biggan", **{"model.num_classes": 0})  # 0 = "from the dataset"
    with pytest.raises(ConfigError, match=r"num_classes=0.*labelled dataset.*--labels subfolders"):
        build_models(cfg)


def test_biggan_z_dim_must_split_into_one_chunk_per_block():
    with pytest.raises(ConfigError, match=r"model\.z_dim=100 must be a multiple of 3"):
        _model_config("biggan", 16, 3, **{"model.z_dim": 100})  # 2 up-blocks + 1
    assert _model_config("biggan", 32, 3, **{"model.z_dim": 120}).z_chunks == 4


def test_biggan_defaults_follow_the_paper():
    cfg = load_config(overrides={"model.family": "biggan"}).model
    assert (cfg.z_dim, cfg.g_width, cfg.d_width, cfg.shared_dim) == (120, 64, 64, 128)
    assert (cfg.attention_resolution, cfg.aux_classifier, cfg.projection) == (32, False, True)


def test_biggan_needs_labels():
    G, D = build_models(_model_config("biggan"))
    with pytest.raises(ValueError, match="class labels"):
        G(torch.randn(2, G.z_dim))
    with pytest.raises(ValueError, match="class labels"):
        D(torch.zeros(2, 3, 16, 16))
