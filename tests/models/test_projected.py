"""The projected discriminator: a frozen EfficientNet-Lite0 under fixed random projections,
small trained discriminators on top, and any unconditional generator in front."""

import pytest
import torch

from ganvas import checkpoint as ckpt
from ganvas.config import load_config
from ganvas.errors import CheckpointError, ConfigError
from ganvas.models.features import EFFICIENTNET_WEIGHTS_ENV, load_efficientnet_lite0
from ganvas.models.projected import Discriminator, ProjectedConfig
from ganvas.models.stylegan2 import Generator as StyleGAN2Generator
from ganvas.training.trainer import Trainer, train
from tests.conftest import TINY_MODELS, colour_gap, make_blobs, tiny_config, write_dataset

TINY = {"model.family": "projected", "model.resolution": 16, **TINY_MODELS["projected"],
        "train.batch_size": 8, "train.steps": 6, "train.device": "cpu", "train.ema": False,
        "train.log_interval": 2, "train.sample_interval": 1000, "train.checkpoint_interval": 1000,
        "train.n_samples": 8, "train.tensorboard": False}  # fmt: skip


def _config(data, **extra):
    return load_config(overrides={**TINY, "data.path": str(data.path), **extra})


def _model_config(**extra) -> ProjectedConfig:
    settings = {"family": "projected", "resolution": 16, "channels": 3, "z_dim": 16,
                "generator_options": {"g_width": 4}, "feature_resolution": 32,
                "projection_width": 8, "d_width": 8, **extra}  # fmt: skip
    return ProjectedConfig(**settings)


def _clone(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_the_feature_network_is_never_trained_but_carries_G_gradients(tiny_dataset, tmp_path):
    trainer = Trainer(_config(tiny_dataset), tmp_path / "run", progress=False)
    D = trainer.D
    features, projection = _clone(D.features), _clone(D.projection)
    heads, generator = _clone(D.heads), _clone(trainer.G)

    trainer.fit()

    assert all(torch.equal(v, D.features.state_dict()[k]) for k, v in features.items())
    assert all(torch.equal(v, D.projection.state_dict()[k]) for k, v in projection.items())
    assert not any(torch.equal(v, D.heads.state_dict()[k]) for k, v in heads.items()
                   if k.endswith("weight.original"))  # fmt: skip
    assert any(not torch.equal(v, trainer.G.state_dict()[k]) for k, v in generator.items())
    assert not D.features.training and D.heads.training

    # G's loss reaches G only through the frozen networks, which collect no gradient.
    trainer.G.zero_grad(set_to_none=True)
    for phase in trainer.objective.phases_due(0):
        loss, _ = trainer.objective.loss(phase)
        if phase.player == "G":
            loss.backward()
    g_grads = [p.grad for p in trainer.G.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in g_grads)
    assert sum(g.abs().sum() for g in g_grads) > 0
    assert all(p.grad is None for p in [*D.features.parameters(), *D.projection.parameters()])


def test_projections_come_from_their_seed_and_are_saved_without_the_backbone(
    tiny_dataset, tmp_path
):
    torch.manual_seed(1)
    a = Discriminator(_model_config())
    torch.manual_seed(2)  # the run's RNG does not change them ...
    b = Discriminator(_model_config())
    c = Discriminator(_model_config(projection_seed=1))  # ... their seed does
    assert all(torch.equal(v, b.projection.state_dict()[k])
               for k, v in a.projection.state_dict().items())  # fmt: skip
    assert not torch.equal(a.projection.channel_mix[0].weight, c.projection.channel_mix[0].weight)

    result = train(_config(tiny_dataset), tmp_path / "run", progress=False)
    saved = ckpt.load_checkpoint(result.checkpoint).weights["D"]
    assert not [k for k in saved if k.startswith("features.")]
    for key, value in a.projection.state_dict().items():
        assert torch.equal(saved[f"projection.{key}"], value)
    d_bytes = sum(v.numel() * v.element_size() for v in saved.values())
    assert d_bytes < 1_000_000  # the 13 MB backbone stays out


def test_resuming_on_other_backbone_weights_is_refused(tmp_path, monkeypatch):
    import timm
    from safetensors.torch import save_file

    state = Discriminator(_model_config()).state_dict()
    # The installed weights in timm's names, one tensor nudged: "other weights".
    weights = load_efficientnet_lite0().state_dict()
    first = next(iter(weights))
    weights[first] = weights[first] + 1e-3
    assert set(weights) == set(timm.create_model("tf_efficientnet_lite0").state_dict())
    path = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in weights.items()}, path)
    monkeypatch.setenv(EFFICIENTNET_WEIGHTS_ENV, str(path))
    with pytest.raises(CheckpointError, match="other EfficientNet-Lite0 weights"):
        Discriminator(_model_config()).load_state_dict(state)


def test_generator_options_are_checked_with_their_keys():
    with pytest.raises(ConfigError, match=r"generator_options.*g_widht|g_widht"):
        _model_config(generator_options={"g_widht": 4})
    with pytest.raises(ConfigError, match="set them on model"):
        _model_config(generator_options={"resolution": 32})
    with pytest.raises(ConfigError, match="unconditional"):
        _model_config(generator="cdcgan", generator_options={})
    with pytest.raises(ConfigError, match="model.generator='cgan' is not a known family"):
        _model_config(generator="cgan", generator_options={})


def test_stylegan2s_generator_trains_against_it_and_resumes_exactly(tiny_dataset, tmp_path):
    options = {k.split(".", 1)[1]: v for k, v in TINY_MODELS["stylegan2"].items()
               if k != "model.z_dim"}  # fmt: skip
    cfg = _config(tiny_dataset, **{"model.generator": "stylegan2",
                                   "model.generator_options": options})  # fmt: skip
    straight = train(cfg, tmp_path / "straight", progress=False)
    assert isinstance(Trainer(cfg, tmp_path / "straight", progress=False).G.net,
                      StyleGAN2Generator)  # fmt: skip
    train(cfg, tmp_path / "resumed", progress=False, should_stop=lambda s: s == 3)
    resumed = train(cfg, tmp_path / "resumed", progress=False)
    a, b = ckpt.load_checkpoint(straight.checkpoint), ckpt.load_checkpoint(resumed.checkpoint)
    assert all(torch.equal(a.weights["G"][k], b.weights["G"][k]) for k in a.weights["G"])


@pytest.mark.slow
def test_training_moves_sample_colours_toward_the_data(tmp_path):
    """The colour check of tests/training/test_families.py, for the projected family."""
    data = write_dataset(tmp_path / "data", make_blobs(64))
    cfg = _config(data, **{"train.steps": 150, "optim.lr_g": 2e-3, "optim.lr_d": 2e-3,
                           "optim.betas": [0.0, 0.99], "train.log_interval": 50})  # fmt: skip
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    before = colour_gap(trainer, data)
    trainer.fit()
    after = colour_gap(trainer, data)
    assert after < 0.6 * before, f"colour gap {before:.3f} → {after:.3f}"


def test_diffaugment_is_on_unless_asked_otherwise(tiny_dataset, tmp_path):
    from ganvas.augment import Identity
    from ganvas.augment.diffaugment import DiffAugment

    auto = Trainer(_config(tiny_dataset), tmp_path / "a", progress=False)
    assert isinstance(auto.d_input, DiffAugment)
    assert auto.d_input.policy == ["color", "translation", "cutout"]
    off = Trainer(_config(tiny_dataset, **{"train.augment": "none"}), tmp_path / "b",
                  progress=False)  # fmt: skip
    assert isinstance(off.d_input, Identity)
    dcgan = Trainer(tiny_config(tiny_dataset.path), tmp_path / "c", progress=False)
    assert isinstance(dcgan.d_input, Identity)
