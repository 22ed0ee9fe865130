"""One run, one writer: a second `ganvas train` on a run that is training refuses, naming
the other process; the lock of a process that crashed is taken over."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganvas.cli import app
from ganvas.errors import RunBusyError
from ganvas.rundir import RunDir
from ganvas.training.trainer import Trainer, train
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]
HOLD = "import sys, time; from ganvas.rundir import RunDir; lock = RunDir(sys.argv[1]).lock(); " \
       "print('locked', flush=True); time.sleep(120)"  # fmt: skip


def hold_the_lock(run: Path) -> subprocess.Popen:
    """Another process that takes the run's lock (as a training process does) and waits."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], env=env, text=True,
                            stdout=subprocess.PIPE)  # fmt: skip
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_refused_with_the_other_process_named(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    other = hold_the_lock(run)
    try:
        with pytest.raises(RunBusyError, match=f"pid {other.pid} on {socket.gethostname()}"):
            train(tiny_config(tiny_dataset.path), run, progress=False)
        result = CliRunner().invoke(app, ["train", "--data", str(tiny_dataset.path), "--out",
                                          str(run), "--steps", "2", "--no-progress",
                                          "--set", "model.family=dcgan"])  # fmt: skip
        assert result.exit_code == 2
        assert f"pid {other.pid}" in result.output and "Traceback" not in result.output
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written
    finally:
        other.kill()
        other.wait()


def test_the_lock_of_a_killed_process_is_taken_over(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    other = hold_the_lock(run)
    other.send_signal(signal.SIGKILL)
    other.wait()
    assert str(other.pid) in (run / ".lock").read_text()  # what the crash left behind
    result = train(tiny_config(tiny_dataset.path), run, progress=False)
    assert result.step == 20
    assert f"took over the lock of pid {other.pid}" in (run / "log.txt").read_text()
    assert (run / ".lock").read_text() == ""  # a clean exit leaves nothing to take over


def test_one_process_may_hold_several_trainers_on_one_run(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    first = Trainer(tiny_config(tiny_dataset.path), run, progress=False)
    second = Trainer(tiny_config(tiny_dataset.path), run, progress=False)
    assert second.fit().step == 20
    del first
    assert RunDir(run).lock().took_over == ""


def test_a_real_training_process_is_named(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(tiny_config(tiny_dataset.path).to_yaml())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]),
               GANVAS_FAULT_DELAY="30")  # it pauses at its first write: still training  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "ganvas", "train", "--config", str(config_file),
                             "--out", str(run), "--no-progress"], env=env, text=True,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stderr.readline().startswith("ganvas-fault-point")
        result = CliRunner().invoke(app, ["train", "--config", str(config_file), "--out",
                                          str(run), "--no-progress"])  # fmt: skip
        assert result.exit_code == 2
        assert f"is being trained by another process (pid {proc.pid} on" in result.output
    finally:
        proc.kill()
        proc.wait()
