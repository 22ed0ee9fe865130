"""`ganvas sweep` on Optuna: a grid completes with a table, a SIGKILLed sweep resumes without
training any trial twice from scratch, two workers split a grid with no duplicate (SQLite,
and PostgreSQL where CI provides one), and the pruner stops the clearly worst trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganvas.cli import app
from ganvas.config import ConfigError
from ganvas.experiments.results import collect_runs, plot, to_csv, to_html, to_markdown
from ganvas.experiments.sweep import (
    SpuriousTrial,
    SweepSpec,
    _Objective,
    enqueue_grid,
    load_spec,
    open_study,
    parse_spec,
    run_sweep,
    trial_name,
    trial_records,
)
from tests.experiments.conftest import PYTHON, subprocess_env, write_spec


def _trial_dirs(out: Path) -> list[Path]:
    return sorted(p for p in (out / "trials").iterdir() if p.is_dir())


def _starts_from_scratch(run_dir: Path) -> int:
    return (run_dir / "log.txt").read_text().count("starting at step 0/")


def test_spec_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        parse_spec({"name": "x", "space": {"lr": [1]}, "budget": {"steps": 1}, "samplr": "grid"})
    with pytest.raises(ConfigError, match="sampler=grid needs a list"):
        parse_spec({"name": "x", "space": {"lr": {"low": 1e-4, "high": 1e-2}},
                    "sampler": "grid", "budget": {"steps": 1}})  # fmt: skip
    with pytest.raises(ConfigError, match="budget"):
        parse_spec({"name": "x", "space": {"lr": [1]}})
    spec = parse_spec({"name": "x", "space": {"a": [1, 2], "b": ["p", "q", "r"]},
                       "sampler": "grid", "budget": {"minutes": 5}, "eval_interval": 100})  # fmt: skip
    assert isinstance(spec, SweepSpec) and spec.n_trials == 6
    assert trial_name({"lr": 2e-4, "optim.name": "adam"}).startswith("lr=0.0002_name=adam-")


def test_the_reports_sweeps_parse():
    for name in ("lsun-lr-optimizer", "progan-art-tuning"):
        spec = load_spec(Path(__file__).resolve().parents[2] / "sweeps" / f"{name}.yaml")
        assert spec.n_trials >= 6


@pytest.fixture(scope="module")
def grid_sweep(blobs, tmp_path_factory):
    """A 2 × 2 grid of tiny runs, through the CLI."""
    from tests.experiments.conftest import needs_inception

    needs_inception()
    root = tmp_path_factory.mktemp("grid")
    spec = write_spec(root / "spec.yaml", blobs)
    result = CliRunner().invoke(app, ["sweep", str(spec), "--out", str(root / "sweep")])
    assert result.exit_code == 0, result.output
    return root / "sweep", result.output


@pytest.mark.slow
def test_a_grid_completes_with_a_four_row_table(grid_sweep, tmp_path):
    out, output = grid_sweep
    rows = collect_runs([out])
    assert len(rows) == 4
    assert {r.status for r in rows} == {"complete"}
    assert all(r.metric == "kid_mean" and r.value is not None and r.best_step == 10 for r in rows)
    assert all(r.energy_kwh and r.energy_kwh > 0 and r.co2e_kg > 0 and r.cost > 0 for r in rows)
    params = {(r.config["optim.lr_g"], r.config["optim.name"]) for r in rows}
    assert params == {(2e-3, "adam"), (2e-3, "rmsprop"), (2e-4, "adam"), (2e-4, "rmsprop")}
    csv_lines = to_csv(rows).strip().splitlines()
    assert len(csv_lines) == 5 and "optim.lr_g" in csv_lines[0] and "kWh" in csv_lines[0]
    assert to_markdown(rows).count("\n| lr=") == 4
    assert to_html(rows).count("<tr>") == 5
    assert (out / "results.csv").is_file() and "kid_mean" in output
    png = plot(rows, tmp_path / "metric.png")
    assert png.stat().st_size > 1000
    result = CliRunner().invoke(app, ["results", str(out), "--markdown", str(tmp_path / "r.md")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.md").read_text().count("\n| lr=") == 4


@pytest.mark.slow
def test_a_finished_sweep_run_again_trains_nothing(grid_sweep):
    out, _ = grid_sweep
    before = {p.name: (p / "log.txt").read_text() for p in _trial_dirs(out)}
    result = run_sweep(out / "spec.yaml", out)
    assert [t["state"] for t in result.trials] == ["complete"] * 4
    assert {p.name: (p / "log.txt").read_text() for p in _trial_dirs(out)} == before


@pytest.mark.slow
def test_a_killed_sweep_resumes_the_interrupted_trial(blobs, tmp_path):
    from tests.experiments.conftest import needs_inception

    needs_inception()
    spec = write_spec(tmp_path / "spec.yaml", blobs, name="killed",
                      space={"lr": {"keys": ["optim.lr_g", "optim.lr_d"], "grid": [2e-3, 2e-4]}},
                      budget={"steps": 300},
                      overrides={"train.checkpoint_interval": 20, "train.energy": False})  # fmt: skip
    out = tmp_path / "sweep"
    proc = subprocess.Popen([PYTHON, "-m", "ganvas", "sweep", str(spec), "--out", str(out)],
                            env=subprocess_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    killed_in = None
    deadline = time.time() + 240
    while killed_in is None and time.time() < deadline and proc.poll() is None:
        for trial in (out / "trials").glob("*/trial.json") if (out / "trials").is_dir() else []:
            latest = trial.parent / "checkpoints" / "latest"
            try:
                state, step = json.loads(trial.read_text())["state"], int(latest.read_text())
            except (OSError, ValueError):
                continue
            if state == "running" and 40 <= step < 300:
                os.killpg(proc.pid, signal.SIGKILL)
                killed_in = trial.parent
                break
        time.sleep(0.05)
    proc.wait()
    assert killed_in is not None, "the sweep finished or stalled before it could be killed"
    time.sleep(3.5)  # the dead worker's heartbeat goes stale (grace: 2 × 1 s + 1 s)

    result = run_sweep(spec, out)
    assert sorted(t["state"] for t in result.trials) == ["complete", "complete", "fail"]
    dirs = _trial_dirs(out)
    assert len(dirs) == 2
    assert all(_starts_from_scratch(d) == 1 for d in dirs), "a trial was trained twice"
    assert "resuming at step" in (killed_in / "log.txt").read_text()
    assert {r.status for r in collect_runs([out])} == {"complete"}


def test_a_trial_asked_of_an_empty_grid_queue_is_dropped(blobs, tmp_path):
    """Two workers race for the last queued grid point: the loser's trial never trains, and
    the sweep's records (its table, its states) do not count it."""
    from optuna.trial import TrialState

    spec = load_spec(write_spec(tmp_path / "spec.yaml", blobs))
    study = open_study(spec, f"sqlite:///{tmp_path / 'study.db'}")
    study.optimize(_Objective(spec, tmp_path), n_trials=1, catch=(SpuriousTrial,))
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL]  # optuna keeps it
    assert trial_records(study) == []
    assert not (tmp_path / "trials").exists()  # nothing trained
    assert enqueue_grid(study, spec) == 4  # the whole grid is still to run


def _two_workers(blobs, tmp_path, monkeypatch, storage: str | None) -> None:
    from tests.experiments.conftest import needs_inception

    needs_inception()
    for key, value in subprocess_env().items():
        monkeypatch.setenv(key, value)
    spec = write_spec(tmp_path / "spec.yaml", blobs, name=f"split-{uuid.uuid4().hex[:8]}",
                      space={"lr": {"keys": ["optim.lr_g", "optim.lr_d"],
                                    "grid": [2e-3, 2e-4, 2e-5]},
                             "optim.name": {"grid": ["adam", "rmsprop"]}},
                      overrides={"train.energy": False})  # fmt: skip
    out = tmp_path / "sweep"
    result = run_sweep(spec, out, workers=2, storage=storage)
    assert [t["state"] for t in result.trials] == ["complete"] * 6
    assert len({json.dumps(t["params"], sort_keys=True) for t in result.trials}) == 6
    dirs = _trial_dirs(out)
    assert len(dirs) == 6 and all(_starts_from_scratch(d) == 1 for d in dirs)
    pids = {json.loads((d / "trial.json").read_text())["pid"] for d in dirs}
    assert len(pids) == 2, "one worker ran every trial"


@pytest.mark.slow
def test_two_workers_split_a_grid_on_sqlite(blobs, tmp_path, monkeypatch):
    _two_workers(blobs, tmp_path, monkeypatch, storage=None)


@pytest.mark.slow
def test_two_workers_split_a_grid_on_postgresql(blobs, tmp_path, monkeypatch):
    url = os.environ.get("GANVAS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("GANVAS_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server "
                    "on 127.0.0.1 and sets it)")  # fmt: skip
    _two_workers(blobs, tmp_path, monkeypatch, storage=url)


@pytest.mark.slow
def test_the_pruner_stops_the_clearly_worst_trial(blobs, tmp_path):
    from tests.experiments.conftest import needs_inception

    needs_inception()
    spec = write_spec(tmp_path / "spec.yaml", blobs, name="pruned",
                      space={"lr": {"keys": ["optim.lr_g", "optim.lr_d"],
                                    "grid": [2e-3, 1e-3, 1e-9]}},
                      budget={"steps": 60}, eval_interval=20, pruner="halving",
                      overrides={"train.energy": False, "train.checkpoint_interval": 20,
                                 "train.log_interval": 10, "train.sample_interval": 20})  # fmt: skip
    result = run_sweep(spec, tmp_path / "sweep")
    states = {t["params"]["lr"]: t["state"] for t in result.trials}
    # G never learns at lr 1e-9: the worst KID once the others have trained a little
    assert states[1e-9] == "pruned" and states[2e-3] == "complete", states
    rows = collect_runs([tmp_path / "sweep"])
    worst = next(r for r in rows if r.config["optim.lr_g"] == 1e-9)
    assert worst.steps < worst.total_steps == 60
    assert "early and saved" in to_markdown(rows)
