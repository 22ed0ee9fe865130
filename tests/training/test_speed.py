"""The speed switches (docs/speed.md): train.precision, train.channels_last, train.compile and
optim.fused train real tiny runs, checkpoint and resume; penalties keep fp32 numerics."""

from __future__ import annotations

import pytest
import torch

from ganvas import checkpoint as ckpt
from ganvas.config import ConfigError, load_config
from ganvas.data.loader import BatchSampler
from ganvas.losses import zero_centred_penalty
from ganvas.training.schedules import make_optimizer
from ganvas.training.speed import MixedPrecision, optimizer_implementation
from ganvas.training.trainer import Trainer, train
from tests.conftest import (
    TINY_MODELS,
    assert_same_checkpoint,
    colour_gap,
    read_metrics,
    tiny_config,
    training_records,
)

QUIET = {"train.collapse_check": "off", "train.energy": False}


def family_config(data_path, family: str, **overrides):
    """A tiny run of `family` at 16 px (TINY_MODELS) with lazy penalties due every 2 steps."""
    settings = {"data.path": str(data_path), "model.family": family, "model.resolution": 16,
                "train.batch_size": 8, "train.steps": 8, "train.device": "cpu",
                "train.log_interval": 2, "train.sample_interval": 4,
                "train.checkpoint_interval": 4, "train.n_samples": 8, "train.tensorboard": False,
                **QUIET, **TINY_MODELS[family]}  # fmt: skip
    if family == "stylegan2":  # R1 and path length both run inside 8 steps
        settings.update({"model.r1_interval": 2, "model.pl_interval": 2})
    if family == "dcgan":  # R1 in the D phase: a double backward under autocast
        settings["loss.r1_weight"] = 1.0
    settings.update(overrides)
    return load_config(overrides=settings)


def assert_same_losses(run_a, run_b, first_tol: float = 1e-5, tol: float = 1e-3) -> None:
    """Two runs logged every step: the first step's losses agree to `first_tol` (the same
    maths on the same weights), the later ones to `tol` (rounding differences compound: a GAN
    amplifies them, and Adam's first steps move every weight by about lr whatever its
    gradient's size)."""
    a = [r for r in read_metrics(run_a) if "loss_d" in r]
    b = [r for r in read_metrics(run_b) if "loss_d" in r]
    assert len(a) == len(b) > 1
    for i, (x, y) in enumerate(zip(a, b)):
        for key in ("loss_d", "loss_g"):
            assert abs(x[key] - y[key]) <= (first_tol if i == 0 else tol), (i, key, x, y)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("family", ["dcgan", "stylegan2"])
def test_low_precision_trains_checkpoints_and_resumes_bit_for_bit(
    tiny_dataset, tmp_path, family, precision
):
    cfg = family_config(tiny_dataset.path, family, **{"train.precision": precision})
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg.replace(**{"train.steps": 4}), tmp_path / "resumed", progress=False)
    train(cfg, tmp_path / "resumed", progress=False)

    records = [r for r in read_metrics(tmp_path / "straight") if "loss_d" in r]
    assert len(records) == 4
    assert all(torch.isfinite(torch.tensor([r["loss_d"], r["loss_g"]])).all() for r in records)
    straight = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(tmp_path / "straight"))
    resumed = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(tmp_path / "resumed"))
    assert_same_checkpoint(straight, resumed)
    scaler = straight.training_state["precision"]
    if precision == "fp16":  # the loss scale is saved, so the resume continues with it
        assert scaler["scaler"]["scale"] > 0
    else:
        assert scaler == {}
    assert training_records(read_metrics(tmp_path / "straight")) == training_records(
        read_metrics(tmp_path / "resumed")
    )


def test_bf16_training_moves_toward_the_data(tiny_dataset, tmp_path):
    # test_trainer's fp32 recipe for the same check (a higher lr than DCGAN's: learns in seconds)
    cfg = tiny_config(tiny_dataset.path, **{"train.precision": "bf16", "train.steps": 400,
                                            "optim.lr_g": 1e-3, "optim.lr_d": 1e-3,
                                            "train.checkpoint_interval": 1000,
                                            "train.sample_interval": 1000, **QUIET})  # fmt: skip
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    before = colour_gap(trainer, tiny_dataset)
    trainer.fit()
    assert colour_gap(trainer, tiny_dataset) < 0.5 * before


def test_penalties_under_autocast_keep_fp32_numerics():
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.LeakyReLU(0.2),
                            torch.nn.Flatten(), torch.nn.Linear(8 * 14 * 14, 1))  # fmt: skip

    def judge(x, c):
        return D(x)

    x = torch.randn(4, 3, 16, 16)
    reference = zero_centred_penalty(judge, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert D(x).dtype == torch.bfloat16  # autocast is on for ordinary passes
        penalty = zero_centred_penalty(judge, x.bfloat16())
    assert penalty.dtype == torch.float32
    # bf16 inputs are rounded to 8 bits of mantissa; the gradient itself is taken in fp32
    assert torch.allclose(penalty, reference, rtol=2e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        exact = zero_centred_penalty(judge, x)
    assert torch.allclose(exact, reference, rtol=1e-6)


def test_channels_last_keeps_the_dataset_as_uint8_and_the_saved_keys(tiny_dataset, tmp_path):
    every_step = {"train.steps": 5, "train.log_interval": 1, **QUIET}
    for name, channels_last in (("a", False), ("b", True)):  # one after the other: both seed
        cfg = tiny_config(tiny_dataset.path, **{"train.channels_last": channels_last,
                                                **every_step})  # fmt: skip
        trainer = Trainer(cfg, tmp_path / name, progress=False)  # torch's global generator
        # the whole training set sits on the run's device as uint8
        assert trainer.sampler.images.dtype == torch.uint8
        assert trainer.sampler.images.device == trainer.device
        conv = next(p for p in trainer.D.parameters() if p.dim() == 4)
        assert conv.is_contiguous(memory_format=torch.channels_last) == channels_last
        trainer.fit()
    for channels_last in (False, True):
        sampler = BatchSampler(tiny_dataset.images, None, 8, 0, channels_last=channels_last)
        image, _ = sampler.next()
        assert image.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert torch.equal(image, BatchSampler(tiny_dataset.images, None, 8, 0).next()[0])
    assert_same_losses(tmp_path / "a", tmp_path / "b")
    a = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(tmp_path / "a"))
    b = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(tmp_path / "b"))
    assert {k: v.keys() for k, v in a.weights.items()} == {
        k: v.keys() for k, v in b.weights.items()
    }


def test_a_resume_may_change_every_speed_switch(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset.path, **QUIET), run, progress=False)
    switched = {"train.steps": 30, "train.precision": "fp16", "train.channels_last": True,
                "optim.fused": "foreach", **QUIET}  # fmt: skip
    result = train(tiny_config(tiny_dataset.path, **switched), run, progress=False)
    assert result.step == 30
    saved = ckpt.load_checkpoint(result.checkpoint)
    assert saved.training_state["precision"]["scaler"]["scale"] > 0


@pytest.mark.parametrize(
    ("name", "choice", "expected"),
    [("adam", "fused", "fused"), ("adamw", "fused", "fused"), ("rmsprop", "fused", "foreach"),
     ("adam", "foreach", "foreach"), ("adam", "off", "off"), ("adam", "auto", "default")],
)  # fmt: skip
def test_optimizer_implementation_on_the_cpu(tiny_dataset, name, choice, expected):
    cfg = tiny_config(tiny_dataset.path, **{"optim.name": name, "optim.fused": choice})
    optimizer = make_optimizer([torch.zeros(3, requires_grad=True)], cfg, 1e-3, device="cpu")
    fused, foreach = optimizer.defaults.get("fused"), optimizer.defaults.get("foreach")
    if expected == "fused":
        assert fused is True
    elif expected == "foreach":
        assert foreach is True and not fused
    elif expected == "off":
        assert foreach is False and not fused
    else:  # torch's own choice: ganvas before optim.fused existed
        assert optimizer_implementation(name, choice, torch.device("cpu")) == {}
        assert foreach is None and not fused


def test_fused_adam_trains_the_same_up_to_rounding(tiny_dataset, tmp_path):
    for choice in ("off", "fused"):
        cfg = tiny_config(tiny_dataset.path, **{"optim.fused": choice, "train.steps": 5,
                                                "train.log_interval": 1, **QUIET})  # fmt: skip
        train(cfg, tmp_path / choice, progress=False)
    assert_same_losses(tmp_path / "off", tmp_path / "fused")


@pytest.mark.slow
def test_compiled_networks_train_with_r1_and_save_plain_keys(tiny_dataset, tmp_path):
    settings = {"loss.r1_weight": 1.0, "train.steps": 4, "train.log_interval": 1, **QUIET}
    train(tiny_config(tiny_dataset.path, **settings), tmp_path / "eager", progress=False)
    compiled = tiny_config(tiny_dataset.path, **{**settings, "train.compile": True})
    train(compiled, tmp_path / "compiled", progress=False)
    assert_same_losses(tmp_path / "eager", tmp_path / "compiled")
    a = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(tmp_path / "eager"))
    b = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(tmp_path / "compiled"))
    for name in ("G", "D"):  # no '_orig_mod.' prefix: the run loads like any other
        assert a.weights[name].keys() == b.weights[name].keys()


def test_compile_refuses_a_growing_family(tmp_path, tiny_dataset):
    cfg = family_config(tiny_dataset.path, "progan", **{"train.compile": True})
    with pytest.raises(ConfigError, match="train.compile.*grows"):
        Trainer(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_bad_speed_settings_name_the_allowed_values(tiny_dataset):
    with pytest.raises(ConfigError, match="train.precision.*fp32.*bf16.*fp16"):
        tiny_config(tiny_dataset.path, **{"train.precision": "fp8"})
    with pytest.raises(ConfigError, match="optim.fused"):
        tiny_config(tiny_dataset.path, **{"optim.fused": "yes"})


def test_fp16_scaler_state_round_trips():
    precision = MixedPrecision("fp16", torch.device("cpu"))
    w = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.Adam([w], lr=0.1)
    precision.scale((w * 1e3).sum()).backward()
    precision.step(optimizer)
    state = precision.state_dict()
    fresh = MixedPrecision("fp16", torch.device("cpu"))
    fresh.load_state_dict(state)
    assert fresh.scaler.get_scale() == precision.scaler.get_scale()
    fresh.load_state_dict({})  # a checkpoint written in fp32: the scaler starts fresh
    assert MixedPrecision("bf16", torch.device("cpu")).state_dict() == {}
