"""The restore family: U-Net shapes and range, the frozen-then-trained encoder, the NoGAN
phases in order with fastai's switcher, and exact resumes inside every phase."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganvas import checkpoint as ckpt
from ganvas.config import ConfigError, load_config
from ganvas.data.store import base_manifest, save_dataset
from ganvas.models.registry import build_models
from ganvas.training.trainer import Trainer, train
from tests.conftest import TINY_MODELS, assert_same_checkpoint, make_blobs, read_metrics


def restore_model(**settings):
    overrides = {"model.family": "restore", "model.channels": 3, **TINY_MODELS["restore"],
                 **settings}  # fmt: skip
    return load_config(overrides=overrides).model


@pytest.mark.parametrize(("factor", "resolution"), [(1, 16), (2, 16), (4, 16), (4, 32)])
def test_unet_with_a_plain_encoder_enlarges_by_its_factor(factor, resolution):
    G, D = build_models(restore_model(**{"model.factor": factor,
                                         "model.resolution": resolution}))  # fmt: skip
    side = resolution // factor
    x = torch.rand(2, 3, side, side) * 2 - 1
    out = G(x)
    assert out.shape == (2, 3, resolution, resolution)
    assert out.min() >= -1 and out.max() <= 1
    assert D(out).shape == (2,) and D.logits(out).ndim == 2


@pytest.mark.parametrize(("factor", "resolution"), [(1, 32), (2, 64), (4, 128)])
def test_unet_on_the_pretrained_encoder_enlarges_by_its_factor(factor, resolution):
    cfg = restore_model(**{"model.factor": factor, "model.resolution": resolution,
                           "model.encoder": "efficientnet_lite0"})  # fmt: skip
    G, _ = build_models(cfg)
    assert all(not p.requires_grad for p in G.encoder.parameters())  # frozen at first
    out = G(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert out.shape == (1, 3, resolution, resolution)


def test_the_pretrained_encoder_needs_an_input_side_divisible_by_32():
    cfg = restore_model(**{"model.factor": 2, "model.resolution": 32,
                           "model.encoder": "efficientnet_lite0"})  # fmt: skip
    with pytest.raises(ConfigError, match="model.encoder=none"):
        build_models(cfg)


def write_pairs_dataset(dest, n: int = 32, size: int = 16, val: int = 8):
    images = make_blobs(n, size)
    manifest = base_manifest(size, 3, [])
    manifest.update(sources=["tests"], files=[], dropped=[], params={},
                    splits={"val": list(range(n - val, n))})  # fmt: skip
    return save_dataset(dest, images, None, manifest)


def nogan_config(data_path, **settings):
    overrides = {"data.path": str(data_path), "model.family": "restore", **TINY_MODELS["restore"],
                 "model.resolution": 16, "model.factor": 2, "model.g_pretrain_steps": 4,
                 "model.d_pretrain_steps": 4, "model.critic_threshold": 0.7,
                 "optim.betas": [0.0, 0.99], "train.batch_size": 4, "train.steps": 16,
                 "train.device": "cpu", "train.log_interval": 1, "train.sample_interval": 8,
                 "train.checkpoint_interval": 1000, "train.n_samples": 4,
                 "train.tensorboard": False, "train.energy": False, **settings}  # fmt: skip
    return load_config(overrides=overrides)


def test_phases_run_in_order_and_the_switcher_follows_the_critic_loss(tmp_path):
    data = write_pairs_dataset(tmp_path / "data")
    train(nogan_config(data.path), tmp_path / "run", progress=False)
    records = [r for r in read_metrics(tmp_path / "run") if "event" not in r]
    assert [r["step"] for r in records] == list(range(1, 17))
    kinds = ["G" if "loss_g_gan" in r else "Gpre" if "loss_g" in r else "D" for r in records]
    assert kinds[:4] == ["Gpre"] * 4 and kinds[4:8] == ["D"] * 4  # then the critic alone
    gan = list(zip(records[8:], kinds[8:]))
    assert gan[0][1] == "D"  # the GAN phase opens with the critic
    for (record, kind), (_, following) in zip(gan, gan[1:]):
        if kind == "G":
            assert following == "D"  # one G step, then the critic again
        else:  # the critic until its loss is below the threshold
            assert following == ("G" if record["loss_d"] < 0.7 else "D"), (record, following)
    assert "G" in kinds[8:]


def test_the_pretrained_encoder_learns_only_after_its_frozen_steps(tmp_path):
    images = make_blobs(16, size=32)
    manifest = base_manifest(32, 3, [])
    manifest.update(sources=["tests"], files=[], dropped=[], params={}, splits={"val": []})
    data = save_dataset(tmp_path / "data32", images, None, manifest)
    cfg = nogan_config(data.path, **{"model.resolution": 32, "model.factor": 1,
                                     "model.encoder": "efficientnet_lite0",
                                     "model.encoder_frozen_steps": 2, "train.steps": 8})  # fmt: skip
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    encoder = lambda: {k: v.clone() for k, v in trainer.G.encoder.state_dict().items()}  # noqa: E731
    start = encoder()
    for _ in range(2):
        trainer.train_step()
        trainer.step += 1
    frozen = encoder()
    assert all(torch.equal(start[k], frozen[k]) for k in start)
    trainer.train_step()
    trained = encoder()
    changed = [k for k in start if not torch.equal(start[k], trained[k])]
    assert changed and all("running" not in k for k in changed)  # ImageNet's BN statistics stay


@pytest.mark.slow
def test_a_resume_inside_each_phase_is_exact(tmp_path):
    data = write_pairs_dataset(tmp_path / "data")
    cfg = nogan_config(data.path)
    straight = train(cfg, tmp_path / "straight", progress=False)
    for stop in (2, 6, 11):  # inside Gpre, Dpre and the GAN phase
        part = train(
            cfg, tmp_path / "resumed", progress=False, should_stop=lambda s, at=stop: s == at
        )
        assert part.step == stop
    resumed = train(cfg, tmp_path / "resumed", progress=False)
    assert resumed.step == straight.step == 16
    assert_same_checkpoint(ckpt.load_checkpoint(straight.checkpoint),
                           ckpt.load_checkpoint(resumed.checkpoint))  # fmt: skip
    assert ckpt.load_checkpoint(straight.checkpoint).training_state["objective"]["gen_mode"] in (
        True, False)  # fmt: skip


def test_pretraining_longer_than_the_run_is_refused(tmp_path):
    data = write_pairs_dataset(tmp_path / "data")
    cfg = nogan_config(data.path, **{"model.g_pretrain_steps": 20})
    with pytest.raises(ConfigError, match="g_pretrain_steps"):
        Trainer(cfg, tmp_path / "run", progress=False)


def test_a_latent_metric_on_a_restore_run_is_refused(tmp_path):
    data = write_pairs_dataset(tmp_path / "data")
    cfg = nogan_config(data.path, **{"train.eval_interval": 4, "train.eval_metric": "fid"})
    with pytest.raises(ConfigError, match="psnr"):
        Trainer(cfg, tmp_path / "run", progress=False)


def test_sample_sheets_show_damaged_restored_and_clean_held_out_images(tmp_path):
    data = write_pairs_dataset(tmp_path / "data")
    trainer = Trainer(nogan_config(data.path), tmp_path / "run", progress=False)
    sheet = trainer.sample_fixed()
    assert sheet.shape == (4, 3, 16, 48)
    clean = torch.from_numpy(np.array(data.images[24:32])).permute(0, 3, 1, 2).float()
    clean = clean / 127.5 - 1
    shown = sheet[..., 32:]  # the right third: held-out (val) images, as they are
    assert all(any(torch.equal(s, c) for c in clean) for s in shown)
    assert torch.equal(sheet, trainer.sample_fixed())  # fixed inputs


def test_psnr_evaluation_marks_the_best_checkpoint(tmp_path):
    data = write_pairs_dataset(tmp_path / "data")
    cfg = nogan_config(data.path, **{"train.eval_interval": 4, "train.eval_metric": "psnr",
                                     "train.eval_split": "val", "train.eval_n": 8})  # fmt: skip
    train(cfg, tmp_path / "run", progress=False)
    evals = [r for r in read_metrics(tmp_path / "run") if r.get("event") == "eval"]
    assert [r["step"] for r in evals] == [4, 8, 12, 16]
    assert all({"psnr", "ssim", "perceptual"} <= set(r) for r in evals)
    best = max(evals, key=lambda r: r["psnr"])  # higher PSNR is better
    assert ckpt.best_checkpoint(tmp_path / "run").name == f"{best['step']:08d}"
    assert [r["step"] for r in evals if r.get("best")][-1] == best["step"]
