"""Divergence → rollback: a NaN loss or a collapse stop reloads the last good checkpoint with
lower learning rates, at most train.max_rollbacks times; the lowered rates survive a resume."""

import pytest
import torch

from ganvas import checkpoint as ckpt
from ganvas.metrics.diversity import CollapseMonitor
from ganvas.objectives.classic import ClassicObjective
from ganvas.training.trainer import TrainingDiverged, train
from tests.conftest import assert_same, read_metrics, tiny_config, training_records

SETTINGS = {"train.steps": 60, "train.log_interval": 5, "train.checkpoint_interval": 10}


def nan_at_calls(monkeypatch, calls):
    """D's loss turns NaN on these calls (counted over the whole test, across rollbacks)."""
    original = ClassicObjective._adversarial_d_loss
    seen = {"n": 0}

    def loss(self, real, fake):
        seen["n"] += 1
        value = original(self, real, fake)
        return value * float("nan") if seen["n"] in calls else value

    monkeypatch.setattr(ClassicObjective, "_adversarial_d_loss", loss)


def training_lines(records):
    return [r for r in records if "event" not in r]


def test_a_nan_rolls_back_to_the_last_checkpoint_with_halved_learning_rates(
    tiny_dataset, tmp_path, monkeypatch
):
    nan_at_calls(monkeypatch, {23})  # step 23: caught on the metrics line of step 25
    result = train(tiny_config(tiny_dataset.path, **SETTINGS), tmp_path / "run", progress=False)
    assert result.step == 60 and not result.collapsed

    records = read_metrics(tmp_path / "run")
    events = [r for r in records if r.get("event") == "rollback"]
    assert len(events) == 1
    event = events[0]
    assert (event["step"], event["diverged_at"], event["rollback"], event["lr_scale"]) == (
        20, 25, 1, 0.5)  # fmt: skip
    assert "NaN" in event["reason"]
    steps = [r["step"] for r in training_lines(records)]
    assert steps == list(range(5, 61, 5))  # the rolled-back steps are not there twice
    lr = {r["step"]: r["lr_g"] for r in training_lines(records)}
    assert lr[25] == pytest.approx(lr[20] * 0.5) and lr[60] == lr[25]
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "rollback 1/3" in log and "checkpoint of step 20" in log

    saved = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(tmp_path / "run"))
    assert saved.training_state["rollbacks"] == {"count": 1, "lr_scale": 0.5}
    assert all(torch.isfinite(t).all() for t in saved.weights["G"].values())


def test_the_lowered_learning_rate_survives_a_resume_bit_for_bit(
    tiny_dataset, tmp_path, monkeypatch
):
    nan_at_calls(monkeypatch, {23})
    cfg = tiny_config(tiny_dataset.path, **SETTINGS)
    train(cfg, tmp_path / "straight", progress=False)

    nan_at_calls(monkeypatch, {23})  # the same fault again, in a run stopped after it
    stopped = train(cfg, tmp_path / "resumed", progress=False, should_stop=lambda s: s == 40)
    assert stopped.step == 40
    monkeypatch.undo()
    train(cfg, tmp_path / "resumed", progress=False)

    a, b = (ckpt.load_checkpoint(ckpt.find_latest_checkpoint(tmp_path / r))
            for r in ("straight", "resumed"))  # fmt: skip
    assert_same(a.weights, b.weights, "weights")
    assert_same(a.training_state, b.training_state, "training_state")

    def strip(records):
        return training_records(records)

    assert strip(read_metrics(tmp_path / "straight")) == strip(read_metrics(tmp_path / "resumed"))


def test_after_max_rollbacks_it_stops_with_the_usual_message(tiny_dataset, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = ClassicObjective._adversarial_d_loss

    def loss(self, real, fake):  # fine up to the checkpoint of step 10, NaN ever after
        calls["n"] += 1
        value = original(self, real, fake)
        return value * float("nan") if calls["n"] > 10 else value

    monkeypatch.setattr(ClassicObjective, "_adversarial_d_loss", loss)
    run = tmp_path / "run"
    cfg = tiny_config(tiny_dataset.path, **SETTINGS, **{"train.max_rollbacks": 2})
    with pytest.raises(TrainingDiverged, match="diverged before step 15.*last good checkpoint"):
        train(cfg, run, progress=False)
    events = [r for r in read_metrics(run) if r.get("event") == "rollback"]
    assert [(e["rollback"], e["lr_scale"]) for e in events] == [(1, 0.5), (2, 0.25)]
    assert ckpt.find_latest_checkpoint(run).name == "00000010"


def test_on_diverge_stop_stops_at_the_first_nan(tiny_dataset, tmp_path, monkeypatch):
    nan_at_calls(monkeypatch, {23})
    cfg = tiny_config(tiny_dataset.path, **SETTINGS, **{"train.on_diverge": "stop"})
    with pytest.raises(TrainingDiverged, match="diverged before step 25"):
        train(cfg, tmp_path / "run", progress=False)
    assert not [r for r in read_metrics(tmp_path / "run") if r.get("event") == "rollback"]


def test_a_nan_before_the_first_checkpoint_starts_over_from_step_0(
    tiny_dataset, tmp_path, monkeypatch
):
    nan_at_calls(monkeypatch, {3})
    result = train(tiny_config(tiny_dataset.path, **SETTINGS), tmp_path / "run", progress=False)
    assert result.step == 60
    events = [r for r in read_metrics(tmp_path / "run") if r.get("event") == "rollback"]
    assert [(e["step"], e["diverged_at"]) for e in events] == [(0, 5)]


def test_a_collapse_stop_rolls_back_too(tiny_dataset, tmp_path, monkeypatch):
    original = CollapseMonitor.update
    seen = {"n": 0}

    def update(self, samples):
        original(self, samples)
        seen["n"] += 1
        return "possible mode collapse (injected)" if seen["n"] == 3 else None

    monkeypatch.setattr(CollapseMonitor, "update", update)
    cfg = tiny_config(tiny_dataset.path, **SETTINGS, **{"train.collapse_check": "stop"})
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.step == 60 and not result.collapsed
    events = [r for r in read_metrics(tmp_path / "run") if r.get("event") == "rollback"]
    assert [(e["step"], e["diverged_at"]) for e in events] == [(20, 30)]
    assert events[0]["reason"] == "the generator collapsed (possible mode collapse (injected))"


def test_rollback_settings_are_validated(tiny_dataset):
    from ganvas.config import ConfigError

    with pytest.raises(ConfigError, match="rollback_lr_factor"):
        tiny_config(tiny_dataset.path, **{"train.rollback_lr_factor": 0})
    with pytest.raises(ConfigError, match="max_rollbacks"):
        tiny_config(tiny_dataset.path, **{"train.max_rollbacks": -1})
    with pytest.raises(ConfigError, match="on_diverge"):
        tiny_config(tiny_dataset.path, **{"train.on_diverge": "retry"})
