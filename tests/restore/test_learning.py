"""A restorer trained for a few CPU seconds on real pictures (the built-in emoji, 16 → 32 px)
beats bicubic enlargement on held-out ones: in PSNR when trained on pixels, in perceptual
distance with the recipe's feature loss (which trades some PSNR for it, as perceptual losses
do; docs/restore.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganvas.config import load_config
from ganvas.data.example import load_example_arrays
from ganvas.data.store import base_manifest, load_dataset, save_dataset
from ganvas.metrics.restoration import bicubic, restoration_scores
from ganvas.models.restore import held_out_pairs, restore_batches
from ganvas.training.trainer import Trainer

N_IMAGES, N_VAL = 600, 64


@pytest.fixture(scope="module")
def emoji32(tmp_path_factory):
    images = load_example_arrays()[0][:N_IMAGES]
    images = np.stack([np.asarray(Image.fromarray(i).resize((32, 32), Image.LANCZOS))
                       for i in images])  # fmt: skip
    manifest = base_manifest(32, 3, [])
    manifest.update(sources=["builtin:noto-emoji"], files=[], dropped=[], params={},
                    splits={"val": list(range(N_IMAGES - N_VAL, N_IMAGES))})  # fmt: skip
    return save_dataset(tmp_path_factory.mktemp("emoji") / "emoji32", images, None, manifest)


def _train_and_score(dataset, run: Path, **settings) -> tuple[dict, dict]:
    overrides = {"data.path": str(dataset.path), "model.family": "restore",
                 "model.encoder": "none", "model.encoder_width": 16, "model.encoder_depth": 3,
                 "model.g_width": 64, "model.d_width": 8, "model.factor": 2,
                 "model.g_pretrain_steps": 150, "model.d_pretrain_steps": 0,
                 "train.batch_size": 16, "train.steps": 150, "train.device": "cpu",
                 "train.tensorboard": False, "train.energy": False, "train.n_samples": 4,
                 "train.log_interval": 50, "train.sample_interval": 1000,
                 "optim.lr_g": 1e-3, **settings}  # fmt: skip
    trainer = Trainer(load_config(overrides=overrides), run, progress=False)
    trainer.fit()
    damaged, clean = held_out_pairs(trainer.config, load_dataset(dataset.path), "val", N_VAL)
    assert len(clean) == N_VAL  # the held-out images, not trained on
    restored = restoration_scores(restore_batches(trainer.G, damaged), clean)
    return restored, restoration_scores(bicubic(damaged, 32), clean)


@pytest.mark.slow
def test_trained_on_pixels_it_beats_bicubic_psnr_on_held_out_images(emoji32, tmp_path):
    restored, baseline = _train_and_score(
        emoji32, tmp_path / "run", **{"model.feature_weights": [0.0], "model.gram_weight": 0.0,
                                      "optim.betas": [0.9, 0.99]})  # fmt: skip
    assert restored["psnr"] > baseline["psnr"] + 0.1, (restored, baseline)
    assert restored["ssim"] > baseline["ssim"]


@pytest.mark.slow
def test_with_the_feature_loss_it_beats_bicubic_perceptually(emoji32, tmp_path):
    restored, baseline = _train_and_score(emoji32, tmp_path / "run",
                                          **{"optim.betas": [0.0, 0.99]})  # fmt: skip
    assert restored["perceptual"] < 0.9 * baseline["perceptual"], (restored, baseline)
