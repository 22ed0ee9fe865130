import pytest
import torch

from ganvas.config import ConfigError, load_config
from ganvas.inference import run_generator
from ganvas.models.registry import build_models, get_family, list_families, register_family
from tests.conftest import TINY_MODELS

LATENT_FAMILIES = [f for f in list_families() if not get_family(f).takes_images]
IMAGE_FAMILIES = [f for f in list_families() if get_family(f).takes_images]


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_every_image_family_maps_images_to_images_and_images_to_logits(family):
    overrides = {"model.family": family, "model.resolution": 16, "model.channels": 3,
                 **TINY_MODELS[family]}  # fmt: skip
    torch.manual_seed(0)
    cfg = load_config(overrides=overrides).model
    G, D = build_models(cfg)
    side = 16 // getattr(cfg, "factor", 1)
    img = G(torch.rand(4, 3, side, side) * 2 - 1)
    assert img.shape == (4, 3, 16, 16) and img.min() >= -1 and img.max() <= 1
    logits = D(img, None)
    assert logits.shape == (4,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("family", LATENT_FAMILIES)
def test_every_family_maps_noise_to_images_and_images_to_logits(family):
    overrides = {"model.family": family, "model.resolution": 16, "model.channels": 3,
                 **TINY_MODELS[family]}  # fmt: skip
    conditional = get_family(family).conditional
    if conditional:
        overrides["model.num_classes"] = 3
    torch.manual_seed(0)
    G, D = build_models(load_config(overrides=overrides).model)
    c = torch.tensor([0, 1, 2, 1]) if conditional else None
    z = torch.randn(4, G.z_dim)
    img = G(z, c)
    assert img.shape == (4, 3, 16, 16) and torch.isfinite(img).all()
    # Some output layers are linear (ProGAN, StyleGAN2, R3GAN: trained toward [-1, 1]); what
    # the samplers hand out is always in range.
    sampled = run_generator(G, z, c)
    assert sampled.min() >= -1 and sampled.max() <= 1
    out = D(img, c)
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (4,) and torch.isfinite(logits).all()


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        get_family("dcgann")
    assert "did you mean 'dcgan'" in str(err.value)
    for name in list_families():
        assert name in str(err.value)


def test_a_family_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="registered twice"):
        register_family(get_family("dcgan"))
