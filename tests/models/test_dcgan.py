import pytest
import torch

from ganvas.config import load_config
from ganvas.models.registry import build_models


def _model_config(family: str, resolution: int, channels: int, **extra):
    overrides = {"model.family": family, "model.resolution": resolution, "model.channels": channels}
    overrides.update(extra)
    return load_config(overrides=overrides).model


@pytest.mark.parametrize("resolution", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes_for_each_resolution(resolution, channels):
    cfg = _model_config("dcgan", resolution, channels, **{"model.g_width": 8, "model.d_width": 8})
    G, D = build_models(cfg)
    G.eval()
    img = G(torch.randn(2, cfg.z_dim))
    assert img.shape == (2, channels, resolution, resolution)
    assert D(img).shape == (2,)


def test_dcgan_widths_follow_the_paper_for_64px():
    G, D = build_models(_model_config("dcgan", 64, 3))
    convs = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 3]
    dconvs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in dconvs] == [64, 128, 256, 512, 1]
    # No BatchNorm on D's first layer, as in the paper.
    assert isinstance(D.net[1], torch.nn.LeakyReLU)


def test_dcgan_initialisation_is_normal_0_002():
    torch.manual_seed(0)
    G, _ = build_models(_model_config("dcgan", 64, 3))
    weights = torch.cat(
        [m.weight.flatten() for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    )
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
