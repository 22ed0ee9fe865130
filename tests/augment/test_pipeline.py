"""The augmentation settings, the pipeline they build, and training with it: every family,
the values in metrics.jsonl, and a resume that continues bit for bit."""

import re

import pytest
import torch

from ganvas import checkpoint as ckpt
from ganvas.augment import Chain, Identity, InstanceNoise, build_d_input
from ganvas.augment.ada import AdaptiveAugment
from ganvas.augment.diffaugment import DiffAugment
from ganvas.config import ConfigError, load_config
from ganvas.models.registry import list_families
from ganvas.training.trainer import Trainer, train
from tests.conftest import TINY_MODELS, assert_same_checkpoint, read_metrics, tiny_config


def _train_config(**settings):
    return load_config(overrides={"model.family": "dcgan", **settings}).train


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train.augment", "ada2", "choose one of 'auto', 'none', 'diffaugment', 'ada'"),
        ("train.diffaugment_policy", "color,zoom", "some of color, translation, cutout"),
        ("train.diffaugment_policy", "color,color", "each at most once"),
        ("train.diffaugment_policy", "", "train.diffaugment_policy=''"),
        ("train.ada_target", 1.0, "train.ada_target=1.0 must lie in [0, 1)"),
        ("train.ada_kimg", 0, "train.ada_kimg=0"),
        ("train.ada_interval", 0, "train.ada_interval=0 must be >= 1"),
        ("train.ada_p", -0.1, "train.ada_p=-0.1 must lie in [0, 1]"),
        ("train.ada_pipeline", "bgcf", "choose one of blit, geom, color, bg, bgc"),
    ],
)
def test_bad_settings_name_the_key_and_what_is_allowed(key, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        _train_config(**{key: value})


def test_the_settings_build_their_pipeline():
    g = torch.Generator()
    assert isinstance(build_d_input(_train_config(), g), Identity)
    assert isinstance(build_d_input(_train_config(**{"train.instance_noise": 0.1}), g),
                      InstanceNoise)  # fmt: skip
    diff = build_d_input(_train_config(**{"train.augment": "diffaugment",
                                          "train.diffaugment_policy": "cutout"}), g)  # fmt: skip
    assert isinstance(diff, DiffAugment) and diff.policy == ["cutout"]
    ada = build_d_input(_train_config(**{"train.augment": "ada", "train.ada_p": 0.3,
                                         "train.ada_pipeline": "bg", "train.ada_interval": 8,
                                         "train.ada_target": 0.5, "train.ada_kimg": 100}), g)  # fmt: skip
    assert isinstance(ada, AdaptiveAugment)
    assert (ada.p, ada.pipeline, ada.interval, ada.target, ada.kimg) == (0.3, "bg", 8, 0.5, 100)


def test_augmentation_and_instance_noise_chain_augmentation_first():
    settings = {"train.augment": "ada", "train.ada_p": 1.0, "train.instance_noise": 0.2}
    chain = build_d_input(_train_config(**settings), torch.Generator().manual_seed(4))
    assert isinstance(chain, Chain) and list(chain.parts) == ["augment", "instance_noise"]
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    g = torch.Generator().manual_seed(4)
    expected = InstanceNoise(0.2, 0, g)(AdaptiveAugment(g, p=1.0)(x))
    assert torch.equal(chain(x), expected)
    assert set(chain.log_values()) == {"ada_p", "ada_rt", "instance_noise_std"}
    state = chain.state_dict()
    assert set(state) == {"augment", "instance_noise"} and state["augment"]["p"] == 1.0
    chain.observe_real_logits(torch.ones(8))
    chain.begin_step(4)
    assert chain.parts["augment"].rt == 1.0


def _family_config(family, data_path, **extra):
    if family not in TINY_MODELS:  # tests/training/test_every_family.py fails for it already
        pytest.skip(f"{family} has no tiny settings in tests/conftest.py TINY_MODELS")
    settings = {
        "data.path": str(data_path), "model.family": family, "model.resolution": 16,
        **TINY_MODELS[family], "train.batch_size": 4, "train.steps": 2, "train.device": "cpu",
        "train.n_samples": 4, "train.tensorboard": False, "train.collapse_check": "off",
        "progressive.stage_kimg": 0.004, "progressive.batch_sizes": [4],
    }  # fmt: skip
    return load_config(overrides={**settings, **extra})


AUGMENTS = {
    "ada": {"train.augment": "ada", "train.ada_p": 1.0, "train.instance_noise": 0.05},
    "diffaugment": {"train.augment": "diffaugment", "loss.r1_weight": 1.0},
}


@pytest.mark.parametrize("augment", AUGMENTS)
@pytest.mark.parametrize("family", list_families())
def test_every_family_trains_with_each_augmentation(family, augment, labelled_dataset, tmp_path):
    cfg = _family_config(family, labelled_dataset.path, **AUGMENTS[augment])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    spy = _Spy(trainer.d_input)
    trainer.objective.parts.d_input = spy  # what the objective calls
    for _ in range(2):
        stats = trainer.train_step()
        trainer.step += 1
        assert all(torch.isfinite(v) for v in stats.values()), stats
    assert spy.changed and all(spy.changed)  # every batch D saw was augmented


class _Spy:
    """Forwards to a D-input pipeline and notes whether each call changed the images."""

    def __init__(self, inner) -> None:
        self.inner, self.changed = inner, []

    def __call__(self, images):
        out = self.inner(images)
        self.changed.append(out.shape == images.shape and not torch.equal(out, images))
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize(
    "settings",
    [
        # p moves every 3rd step (by 24/200 = 0.12), so the stop at step 10 falls between
        # two updates: the counters since the last one must be saved too.
        {"train.augment": "ada", "train.ada_kimg": 0.2, "train.ada_interval": 3,
         "train.ada_p": 0.2},
        {"train.augment": "diffaugment", "train.instance_noise": 0.1,
         "train.instance_noise_anneal": 15, "loss.r1_weight": 1.0},
    ],
    ids=["ada", "diffaugment+noise"],
)  # fmt: skip
def test_a_resumed_run_equals_a_straight_one(settings, tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset.path, **settings)
    straight = train(cfg, tmp_path / "straight", progress=False)
    first = train(cfg, tmp_path / "resumed", progress=False, should_stop=lambda s: s == 10)
    assert first.step == 10
    second = train(cfg, tmp_path / "resumed", progress=False)
    a, b = ckpt.load_checkpoint(straight.checkpoint), ckpt.load_checkpoint(second.checkpoint)
    assert_same_checkpoint(a, b)
    records = read_metrics(tmp_path / "straight")
    if settings["train.augment"] == "ada":
        logged = [(r["step"], r["ada_p"], r["ada_rt"]) for r in records]
        assert logged == [(r["step"], r["ada_p"], r["ada_rt"])
                          for r in read_metrics(tmp_path / "resumed")]  # fmt: skip
        assert [step for step, _, _ in logged] == [10, 20]
        assert logged[-1][1] == round(a.training_state["d_input"]["p"], 6) != 0.2  # p moved
    else:
        assert set(a.training_state["d_input"]) == {"augment", "instance_noise"}
