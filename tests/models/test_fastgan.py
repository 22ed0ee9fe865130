"""FastGAN: G's and D's shapes at every size, skip-layer excitation, the reconstructions, and
the objective learning on toy data (hinge falls, reconstructions improve)."""

import pytest
import torch

from ganvas.config import ConfigError, load_config
from ganvas.inference import run_generator
from ganvas.models import fastgan
from ganvas.models.registry import build_models
from ganvas.objectives.fastgan import hinge_fake, hinge_real, random_margins
from ganvas.training.trainer import Trainer
from tests.conftest import TINY_MODELS, make_blobs, read_metrics, tiny_config, write_dataset


def _models(resolution: int, channels: int = 3, **extra):
    overrides = {"model.family": "fastgan", "model.resolution": resolution,
                 "model.channels": channels, **TINY_MODELS["fastgan"], **extra}  # fmt: skip
    torch.manual_seed(0)
    return build_models(load_config(overrides=overrides).model)


@pytest.mark.parametrize("resolution", [16, 32, 64, 256])
def test_shapes_ranges_and_reconstructions(resolution):
    G, D = _models(resolution)
    z = torch.randn(3, G.z_dim)
    img = G(z)
    assert img.shape == (3, 3, resolution, resolution)
    assert img.min() >= -1 and img.max() <= 1 and torch.isfinite(img).all()
    sampled = run_generator(G, z)  # eval mode: BatchNorm statistics, fixed noise
    assert sampled.shape == img.shape and torch.equal(sampled, run_generator(G, z))
    assert D(img).shape == (3,)
    maps = D(img, None, maps=True)
    assert maps.shape == (3, 50)  # two 5×5 logit maps per image
    D.eval()  # (in training mode every call also steps spectral norm's power iteration)
    assert torch.allclose(D(img), D(img, None, maps=True).mean(1), atol=1e-6)
    D.train()
    logits, recs = D(img, None, part=2)
    assert logits.shape == (3, 50)
    whole, part = min(resolution, 128), min(resolution // 2, 128)
    assert {k: tuple(r.shape) for k, (r, _) in recs.items()} == {
        "whole": (3, 3, whole, whole), "small": (3, 3, whole, whole), "part": (3, 3, part, part)}  # fmt: skip
    for rec, target in recs.values():
        assert rec.shape == target.shape and rec.abs().max() <= 1 and not target.requires_grad


def test_grey_images_and_the_lite_generator():
    G, D = _models(32, channels=1, **{"model.lite": True})
    assert not any(isinstance(m, fastgan.NoiseInjection) for m in G.modules())
    # lite: one conv per up-block (and the excitation's two, the output conv)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in G.up.modules()) == 3
    img = G(torch.randn(2, G.z_dim))
    assert img.shape == (2, 1, 32, 32) and D(img).shape == (2,)
    G_full, _ = _models(32)
    assert sum(isinstance(m, fastgan.NoiseInjection) for m in G_full.modules()) == 4  # 8, 32


def test_targets_are_the_quadrants_of_the_image():
    _, D = _models(16)
    img = torch.arange(16.0).repeat(16, 1).expand(2, 3, 16, 16) / 16  # value = column / 16
    img = img + (torch.arange(16.0) >= 8).float()[:, None] * 10  # bottom half + 10
    for part, (bottom, right) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        target = D(img, None, part=part)[1]["part"][1]  # 8×8 (16 px: no downsampling)
        assert torch.equal(
            target, img[:, :, 8 * bottom : 8 * bottom + 8, 8 * right : 8 * right + 8]
        )
    with pytest.raises(ValueError, match="quadrant"):
        D(img, None, part=4)


@pytest.mark.parametrize(
    ("resolution", "expected"),
    [(16, [(4, 16)]), (32, [(4, 32)]), (64, [(4, 64)]), (128, [(4, 64), (8, 128)]),
     (256, [(4, 64), (8, 128), (16, 256)]), (1024, [(4, 64), (8, 128), (16, 256), (32, 512)])],
)  # fmt: skip
def test_excitation_rule(resolution, expected):
    """The paper's 4→64, 8→128, 16→256, 32→512 from 64 px on; one from 4×4 below."""
    assert fastgan.excitations(resolution) == expected


def test_skip_excitation_gates_each_channel_by_the_low_resolution_map():
    G, _ = _models(16)
    G.eval()
    excite = G.excite["16"]  # 4×4 → 16×16
    big = torch.randn(2, 16, 16, 16)
    small_a, small_b = torch.randn(2, 64, 4, 4), torch.randn(2, 64, 4, 4)
    gain_a, gain_b = excite(small_a, big) / big, excite(small_b, big) / big
    # One gain in (0, 1) per image and channel, the same at every pixel ...
    assert torch.allclose(gain_a, gain_a[:, :, :1, :1].expand_as(gain_a), atol=1e-5)
    assert (gain_a > 0).all() and (gain_a < 1).all()
    # ... set by the low-resolution map.
    assert not torch.allclose(gain_a, gain_b, atol=1e-3)

    # In G: the 4×4 map reaches the output through the excitation, not only through the
    # up-blocks. Feed the excitation another 4×4 map and the image changes.
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        before = G(z)
        handle = excite.register_forward_pre_hook(lambda m, args: (args[0] * 0 + 3.0, args[1]))
        after = G(z)
        handle.remove()
    assert not torch.allclose(before, after, atol=1e-4)


def test_noise_injection_is_random_in_training_and_fixed_in_eval():
    noise = fastgan.NoiseInjection(8)
    with torch.no_grad():
        noise.weight.fill_(1.0)
    x = torch.zeros(2, 4, 8, 8)
    assert not torch.equal(noise(x), noise(x))
    noise.eval()
    assert torch.equal(noise(x), noise(x)) and torch.equal(noise(x)[0, 0], noise.noise_const[0, 0])


def test_hinge_with_random_margins():
    margins = random_margins(torch.zeros(4, 50), torch.Generator().manual_seed(0))
    assert margins.min() >= 0.8 and margins.max() <= 1.0 and margins.std() > 0
    assert hinge_real(torch.full((4, 50), 1.0), margins) == 0
    assert hinge_fake(torch.full((4, 50), -1.0), margins) == 0
    assert torch.isclose(hinge_real(torch.zeros(4, 50), margins), margins.mean())
    assert torch.isclose(hinge_fake(torch.full((4, 50), 0.5), margins), margins.mean() + 0.5)


def test_config_checks():
    with pytest.raises(ConfigError, match="16 to 1024"):
        load_config(overrides={"model.family": "fastgan", "model.resolution": 8})
    with pytest.raises(ConfigError, match="g_width"):  # 1024 px: ngf/8 channels
        load_config(overrides={"model.family": "fastgan", "model.resolution": 1024,
                               "model.g_width": 4})  # fmt: skip
    with pytest.raises(ConfigError, match="rec_weight"):
        load_config(overrides={"model.family": "fastgan", "model.rec_weight": -1})


def test_d_loss_falls_and_reconstructions_improve(tmp_path):
    """On two-colour blobs, 60 steps: D's hinge (reals + fakes) and its reconstruction error
    fall. (Without augmentation: with DiffAugment G catches up within these steps and the
    hinge rises again, as a GAN's should.)"""
    data = write_dataset(tmp_path / "blobs", make_blobs(64))
    cfg = tiny_config(data.path, **{"model.family": "fastgan", **TINY_MODELS["fastgan"],
                                    "train.steps": 60, "train.log_interval": 10,
                                    "optim.betas": [0.5, 0.999], "train.sample_interval": 1000,
                                    "train.checkpoint_interval": 1000, "train.augment": "none"})  # fmt: skip
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    records = [r for r in read_metrics(tmp_path / "run") if "loss_d" in r]
    assert len(records) == 6
    hinge = [r["loss_d_real"] + r["loss_d_fake"] for r in records]
    rec = [r["loss_rec"] for r in records]
    assert hinge[-1] < 0.7 * hinge[0], hinge
    assert rec[-1] < 0.5 * rec[0], rec
    assert all(r["rec_part"] < records[0]["rec_part"] for r in records[2:])
