"""cDCGAN, ACGAN and the projection GAN: shapes, the layouts of seeds/001, conditioning,
spectral norm, dropout and config errors (widths 8, CPU)."""

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from ganvas.config import ConfigError, load_config
from ganvas.models.registry import build_models

FAMILIES = ("cdcgan", "acgan", "projection")
TINY = {"model.g_width": 8, "model.d_width": 8, "model.z_dim": 16, "model.num_classes": 3}

# DCGAN's state_dict keys at 16 px, captured before g_dropout/d_dropout existed: checkpoints
# saved then must still load.
DCGAN_16PX_G_KEYS = [
    "net.0.weight",
    "net.1.weight", "net.1.bias", "net.1.running_mean", "net.1.running_var",
    "net.1.num_batches_tracked",
    "net.3.weight",
    "net.4.weight", "net.4.bias", "net.4.running_mean", "net.4.running_var",
    "net.4.num_batches_tracked",
    "net.6.weight",
]  # fmt: skip
DCGAN_16PX_D_KEYS = [
    "net.0.weight",
    "net.2.weight",
    "net.3.weight", "net.3.bias", "net.3.running_mean", "net.3.running_var",
    "net.3.num_batches_tracked",
    "net.5.weight",
]  # fmt: skip


def _model_config(family: str, resolution: int = 16, channels: int = 3, **extra):
    overrides = {"model.family": family, "model.resolution": resolution, "model.channels": channels}
    overrides.update(TINY if family != "projection" else {**TINY, "model.embed_dim": 8})
    overrides.update(extra)
    return load_config(overrides=overrides).model


def _logits(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("resolution", [16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_range(family, resolution, channels):
    torch.manual_seed(0)
    G, D = build_models(_model_config(family, resolution, channels))
    c = torch.tensor([0, 1, 2, 1])
    img = G(torch.randn(4, G.z_dim), c)
    assert img.shape == (4, channels, resolution, resolution)
    assert img.min() >= -1 and img.max() <= 1
    logits = _logits(D(img, c))
    assert logits.shape == (4,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_labels_are_required(family):
    G, D = build_models(_model_config(family))
    with pytest.raises(ValueError, match="class-conditional"):
        G(torch.randn(2, G.z_dim), None)
    if family != "acgan":  # ACGAN's D does not see labels
        with pytest.raises(ValueError, match="class-conditional"):
            D(torch.zeros(2, 3, 16, 16), None)


@pytest.mark.parametrize("family", FAMILIES)
def test_num_classes_0_asks_for_a_labelled_dataset(family):
    with pytest.raises(ConfigError, match="--labels subfolders"):
        build_models(_model_config(family, **{"model.num_classes": 0}))


# --- cDCGAN --------------------------------------------------------------------------------


def test_cdcgan_64px_is_five_layers_deep_as_in_the_report():
    G, D = build_models(_model_config("cdcgan", 64, 3, **{"model.g_width": 64}))
    # G: z and label branches (one transposed conv each, 256 + 256 = 512 at 4×4), then
    # 512 → 256 → 128 → 64 → C: five transposed-conv layers in all.
    for branch in (G.z_branch, G.label_branch):
        (conv,) = [m for m in branch if isinstance(m, nn.ConvTranspose2d)]
        assert (conv.out_channels, conv.kernel_size, conv.stride) == (256, (4, 4), (1, 1))
    convs = [m for m in G.net if isinstance(m, nn.ConvTranspose2d)]
    assert 1 + len(convs) == 5
    assert [c.out_channels for c in convs] == [256, 128, 64, 3]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    assert isinstance(G.net[-1], nn.Tanh)
    assert sum(isinstance(m, nn.LeakyReLU) for m in G.modules()) == 5  # g_activation default

    # D: image and label branches (one 4×4/s2 conv + LeakyReLU each, no BN), then stride-2
    # convs with BN down to 4×4 and a 4×4 conv to one logit: five conv layers in all.
    for branch in (D.img_branch, D.label_branch):
        assert [type(m) for m in branch] == [nn.Conv2d, nn.LeakyReLU]
        assert branch[0].stride == (2, 2) and branch[0].out_channels == 4  # half of 8
    assert D.label_branch[0].in_channels == 3  # one plane per class
    convs = [m for m in D.net if isinstance(m, nn.Conv2d)]
    assert 1 + len(convs) == 5
    assert [c.out_channels for c in convs] == [16, 32, 64, 1]
    assert all(c.kernel_size == (4, 4) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.net) == 3


def test_cdcgan_relu_option():
    G, _ = build_models(_model_config("cdcgan", **{"model.g_activation": "relu"}))
    assert not any(isinstance(m, nn.LeakyReLU) for m in G.modules())
    with pytest.raises(ConfigError, match="g_activation"):
        _model_config("cdcgan", **{"model.g_activation": "gelu"})


def test_cdcgan_resolutions_are_16_to_128():
    with pytest.raises(ConfigError, match="not supported by cdcgan"):
        _model_config("cdcgan", 256)


def test_cdcgan_label_changes_both_networks():
    torch.manual_seed(0)
    G, D = build_models(_model_config("cdcgan"))
    G.eval(), D.eval()
    z, img = torch.randn(2, G.z_dim), torch.rand(2, 3, 16, 16) * 2 - 1
    a, b = torch.tensor([0, 1]), torch.tensor([2, 0])
    assert not torch.allclose(D(img, a), D(img, b))
    assert not torch.allclose(G(z, a), G(z, b))


# --- ACGAN ---------------------------------------------------------------------------------


def test_acgan_discriminator_returns_logits_and_class_logits():
    G, D = build_models(_model_config("acgan", 32, 1))
    img = G(torch.randn(4, G.z_dim), torch.tensor([0, 1, 2, 0]))
    logits, class_logits = D(img, None)  # D ignores the labels
    assert logits.shape == (4,) and class_logits.shape == (4, 3)
    D.eval()
    assert torch.equal(_logits(D(img, torch.tensor([0, 0, 0, 0]))), _logits(D(img, None)))


def test_acgan_discriminator_layout_follows_the_report():
    _, D = build_models(_model_config("acgan", 64, 3))
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5  # 64 → 32 → 16 → 8 → 4 → 2
    assert all((c.kernel_size, c.stride, c.padding) == ((5, 5), (2, 2), (2, 2)) for c in convs)
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 128]
    # No BatchNorm right after the first conv; BN after every other one.
    assert D.net[0] is convs[0] and isinstance(D.net[1], nn.LeakyReLU)
    for conv in convs[1:]:
        i = list(D.net).index(conv)
        assert isinstance(D.net[i + 1], nn.BatchNorm2d)
    assert D.real_fake.in_features == D.classifier.in_features == 128 * 2 * 2


def test_acgan_labels_enter_g_through_a_linear_layer():
    torch.manual_seed(0)
    G, _ = build_models(_model_config("acgan"))
    assert isinstance(G.label, nn.Linear)
    assert (G.label.in_features, G.label.out_features) == (3, 16)
    G.eval()
    z = torch.randn(2, G.z_dim)
    assert not torch.allclose(G(z, torch.tensor([0, 1])), G(z, torch.tensor([2, 0])))


# --- Projection ----------------------------------------------------------------------------


def test_projection_label_changes_the_logit():
    torch.manual_seed(0)
    G, D = build_models(_model_config("projection"))
    img = torch.rand(2, 3, 16, 16) * 2 - 1
    D.eval()
    assert not torch.allclose(D(img, torch.tensor([0, 1])), D(img, torch.tensor([2, 0])))


def test_projection_generator_has_conditional_bn_with_gains_near_1():
    from ganvas.models.layers import ConditionalBatchNorm2d

    torch.manual_seed(0)
    G, _ = build_models(_model_config("projection"))
    norms = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert len(norms) == 2  # one per hidden stage at 16 px
    assert not any(isinstance(m, nn.BatchNorm2d) and m.affine for m in G.modules())
    with torch.no_grad():
        for norm in norms:
            gain = 1 + norm.gain(G.embed.weight)  # [K, C]: every class's gains
            assert (gain - 1).abs().max() < 0.1
            assert norm.bias(G.embed.weight).abs().max() < 0.1


def test_projection_discriminator_is_spectrally_normalised_without_bn():
    _, D = build_models(_model_config("projection", 32))
    weighted = [m for m in D.modules() if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding)]
    assert sum(isinstance(m, nn.Conv2d) for m in weighted) == 3  # 32 → 16 → 8 → 4
    assert all(parametrize.is_parametrized(m, "weight") for m in weighted)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())


# --- Dropout -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["dcgan", *FAMILIES])
def test_dropout_rates_appear_in_order(family):
    cfg = _model_config(
        family, 32, **{"model.g_dropout": [0.5, 0.25], "model.d_dropout": [0.3, 0.0, 0.1]}
    )
    G, D = build_models(cfg)
    assert [m.p for m in G.modules() if isinstance(m, nn.Dropout2d)] == [0.5, 0.25]
    assert [m.p for m in D.modules() if isinstance(m, nn.Dropout2d)] == [0.3, 0.0, 0.1]
    _, D0 = build_models(_model_config(family, 32))
    assert not any(isinstance(m, nn.Dropout | nn.Dropout2d) for m in D0.modules())


@pytest.mark.parametrize("family", ["dcgan", *FAMILIES])
def test_dropout_rates_are_validated(family):
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        _model_config(family, **{"model.d_dropout": [1.0]})
    with pytest.raises(ConfigError, match="stages"):
        _model_config(family, **{"model.g_dropout": [0.1, 0.1, 0.1]})  # 2 stages at 16 px


def test_dcgan_default_state_dict_keys_are_unchanged():
    G, D = build_models(_model_config("dcgan"))
    assert list(G.state_dict()) == DCGAN_16PX_G_KEYS
    assert list(D.state_dict()) == DCGAN_16PX_D_KEYS
