"""Every family and every preset trains on CPU; each family learns the data's colours."""

import json
import math

import numpy as np
import pytest

from ganvas.config import load_config, preset_names
from ganvas.models.registry import list_families
from ganvas.training.trainer import Trainer, train
from tests.conftest import TINY_MODELS, colour_gap, make_blobs, write_dataset

SHRINK = {"model.resolution": 16, "train.batch_size": 8, "train.device": "cpu",
          "train.tensorboard": False, "train.log_interval": 1, "train.sample_interval": 1000,
          "train.checkpoint_interval": 1000, "train.n_samples": 8}  # fmt: skip


def test_every_family_has_tiny_test_settings():
    assert set(list_families()) == set(TINY_MODELS)


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_trains_a_few_steps_without_nan(preset, labelled_dataset, tmp_path):
    family = load_config(preset=preset).model.family
    overrides = {**SHRINK, **TINY_MODELS[family], "data.path": str(labelled_dataset.path),
                 "train.steps": 3, "train.epochs": None, "data.classes": [],
                 # growing presets: 3 stages (4, 8, 16 px) of one batch of 8 images each
                 "progressive.stage_epochs": 0, "progressive.stage_kimg": 0.008,
                 "progressive.batch_sizes": [8]}  # fmt: skip
    cfg = load_config(preset=preset, overrides=overrides)
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.step == result.total_steps == 3
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    records = [r for r in map(json.loads, lines) if "event" not in r]
    assert len(records) == 3
    for record in records:
        assert all(math.isfinite(v) for v in record.values() if isinstance(v, float))


# Recipe per family for the learning check: its own objective, a learning rate high enough
# for a 16 px toy to move in a few hundred steps.
LEARNING = {
    "dcgan": {"loss.name": "nonsaturating", "optim.lr_g": 1e-3, "optim.lr_d": 1e-3},
    "wgan": {"loss.name": "wasserstein", "loss.clip": 0.05, "optim.name": "rmsprop",
             "optim.lr_g": 1e-3, "optim.lr_d": 1e-3, "train.d_steps": 2},
    "wgan_gp": {"loss.name": "wasserstein", "loss.gp_weight": 10.0, "optim.lr_g": 1e-3,
                "optim.lr_d": 1e-3, "optim.betas": [0.0, 0.9], "train.d_steps": 2},
    "sngan": {"loss.name": "hinge", "optim.lr_g": 1e-3, "optim.lr_d": 1e-3,
              "optim.betas": [0.0, 0.9]},
    "biggan": {"loss.name": "hinge", "optim.lr_g": 1e-3, "optim.lr_d": 1e-3,
               "optim.betas": [0.0, 0.9]},
    "cdcgan": {"loss.name": "nonsaturating", "optim.lr_g": 1e-3, "optim.lr_d": 1e-3},
    "acgan": {"loss.name": "nonsaturating", "optim.lr_g": 1e-3, "optim.lr_d": 1e-3},
    "projection": {"loss.name": "hinge", "optim.lr_g": 1e-3, "optim.lr_d": 1e-3,
                   "optim.betas": [0.0, 0.9]},
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(LEARNING))
def test_each_family_moves_sample_colours_toward_the_data(family, tmp_path):
    """Measure: mean absolute gap between the per-channel mean colour of 8 fixed-noise samples
    and of the training images, in [-1, 1] units; training must shrink it by 40 %. The data
    is reddish (far from the grey an untrained G makes), labelled in two classes so that
    conditional families train on it too."""
    data = write_dataset(tmp_path / "data", make_blobs(64), np.arange(64) % 2, ("a", "b"))
    overrides = {**SHRINK, **TINY_MODELS[family], **LEARNING[family], "model.family": family,
                 "data.path": str(data.path), "train.steps": 300,
                 "train.log_interval": 100}  # fmt: skip
    trainer = Trainer(load_config(overrides=overrides), tmp_path / "run", progress=False)
    before = colour_gap(trainer, data)
    trainer.fit()
    after = colour_gap(trainer, data)
    assert after < 0.6 * before, f"{family}: colour gap {before:.3f} → {after:.3f}"
