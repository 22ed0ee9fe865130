"""Energy per run (codecarbon offline): positive, accumulating across a resume, in
metrics.jsonl, the checkpoint's state.json, the end-of-run summary and `ganvas info RUN`;
trackers: the MLflow store and the W&B offline folder hold the run's metrics and images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganvas import checkpoint as ckpt
from ganvas.cli import app
from ganvas.experiments.energy import format_energy
from ganvas.training.trainer import train
from tests.conftest import read_metrics, tiny_config


def _energy(run: Path) -> dict:
    latest = ckpt.find_latest_checkpoint(run)
    return json.loads((latest / "state.json").read_text())["energy"]


def test_energy_is_positive_and_accumulates_across_a_resume(tiny_dataset, tmp_path):
    pytest.importorskip("codecarbon")
    cfg = tiny_config(tiny_dataset.path, **{"train.steps": 40, "train.price_per_kwh": 0.5})
    run = tmp_path / "run"
    first = train(cfg, run, progress=False, should_stop=lambda step: step == 20)
    assert first.step == 20
    before = _energy(run)
    assert before["energy_kwh"] > 0 and before["co2e_kg"] > 0
    assert "TDP" in before["method"] or "RAPL" in before["method"] or "NVML" in before["method"]

    train(cfg, run, progress=False)
    after = _energy(run)
    assert after["energy_kwh"] > before["energy_kwh"] and after["co2e_kg"] > before["co2e_kg"]
    assert after["seconds"] > before["seconds"]
    logged = [r["energy_kwh"] for r in read_metrics(run) if "energy_kwh" in r]
    assert len(logged) == 4 and logged == sorted(logged) and logged[-1] <= after["energy_kwh"]
    summary = [line for line in (run / "log.txt").read_text().splitlines() if "energy:" in line]
    assert len(summary) == 2 and "kg CO2e ·" in summary[-1] and "€ at 0.50 €/kWh" in summary[-1]

    result = CliRunner().invoke(app, ["info", str(run)])
    assert result.exit_code == 0, result.output
    assert "step 40/40" in result.output and "kWh · " in result.output


def test_carbon_intensity_and_price_override_the_defaults(tiny_dataset, tmp_path):
    pytest.importorskip("codecarbon")
    cfg = tiny_config(tiny_dataset.path, **{"train.carbon_intensity": 2.0})
    train(cfg, tmp_path / "run", progress=False)
    energy = _energy(tmp_path / "run")
    assert energy["co2e_kg"] == pytest.approx(2.0 * energy["energy_kwh"], rel=1e-6)


def test_energy_off_records_nothing(tiny_dataset, tmp_path):
    train(tiny_config(tiny_dataset.path, **{"train.energy": False}), tmp_path / "run",
          progress=False)  # fmt: skip
    latest = ckpt.find_latest_checkpoint(tmp_path / "run")
    assert "energy" not in json.loads((latest / "state.json").read_text())
    assert not any("energy_kwh" in r for r in read_metrics(tmp_path / "run"))


def test_format_energy_reads_like_the_issue():
    text = format_energy({"energy_kwh": 2.31, "co2e_kg": 0.924, "cost": 0.693,
                          "price_per_kwh": 0.30})  # fmt: skip
    assert text == "2.31 kWh · 0.92 kg CO2e · 0.69 € at 0.30 €/kWh"


def test_mlflow_store_holds_params_metrics_images_and_the_checkpoint(tiny_dataset, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = tiny_config(tiny_dataset.path, **{"train.trackers": ["mlflow"], "train.mlflow_uri": uri,
                                            "train.tracker_group": "tiny-sweep"})  # fmt: skip
    train(cfg, tmp_path / "run", progress=False)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tiny-sweep")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["model.family"] == "dcgan" and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "loss_d")
    assert [m.step for m in history] == [10, 20]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"fakes", "checkpoint"} <= artifacts
    images = [a.path for a in client.list_artifacts(run.info.run_id, "fakes")]
    assert images == ["fakes/fakes_00000010.png", "fakes/fakes_00000020.png"]
    (saved,) = client.list_artifacts(run.info.run_id, "checkpoint")
    names = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, saved.path)}
    assert {"G.safetensors", "D.safetensors", "state.json"} <= names


def test_wandb_offline_folder_holds_metrics_and_images(tiny_dataset, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = tiny_config(tiny_dataset.path, **{"train.trackers": ["wandb"]})
    train(cfg, tmp_path / "run", progress=False)
    (offline,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    images = list((offline / "files" / "media" / "images").glob("fakes_*.png"))
    assert len(images) == 2
    # The run's records (protobuf): history rows keep their keys and values as JSON text.
    (records,) = offline.glob("run-*.wandb")
    data = records.read_bytes()
    assert b"loss_d" in data and b"img_per_s" in data and b"model.family" in data
