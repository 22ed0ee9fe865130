"""kill -9 anywhere: a training subprocess is SIGKILLed at 20 seeded random moments (between
steps, while writing a checkpoint, a sample grid, a metrics line, TensorBoard events, the
`latest` pointer, while deleting an old checkpoint) and started again each time; the run it
finishes is the uninterrupted run, bit for bit, and its records hold no torn or repeated line.

The moments are found with ganvas' test hook (`GANVAS_FAULT_DELAY`, see ganvas.io): each
write announces itself on stderr and pauses there, and the test kills during the pause.
Set GANVAS_RELIABILITY_REPORT=FILE to get the figures of docs/reliability.md as JSON.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganvas import checkpoint as ckpt
from tests.conftest import assert_same, tiny_config, training_records

KILLS = 20
SEED = 19
STEPS = 200
SETTINGS = {
    "train.steps": STEPS,
    "train.log_interval": 5,
    "train.sample_interval": 10,
    "train.checkpoint_interval": 10,
    "train.keep_checkpoints": 2,
    "train.tensorboard": True,
    "train.ema": True,
}
# What a kill interrupts: a pattern of the fault point announced on stderr.
MOMENTS = {
    "between steps": r"metrics ",  # killed a random moment after a metrics line, mid-compute
    "checkpoint weights": r"checkpoint \d+ (G|G_ema|D)$",
    "checkpoint rename": r"checkpoint \d+ rename",
    "latest pointer": r"write latest",
    "sample grid": r"write fakes_",
    "metrics line": r"metrics ",
    "tensorboard events": r"tensorboard flush",
    "old checkpoint deletion": r"discard ",
}
REPO = Path(__file__).resolve().parents[2]


def environment(fault_delay: float | None) -> dict[str, str]:
    env = dict(os.environ)
    src = str(REPO / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, str(REPO), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"  # the same kernels' summation order in every process
    env.pop("GANVAS_FAULT_DELAY", None)
    if fault_delay is not None:
        env["GANVAS_FAULT_DELAY"] = str(fault_delay)
    return env


def command(config_file: Path, run: Path) -> list[str]:
    return [sys.executable, "-m", "ganvas", "train", "--config", str(config_file), "--out",
            str(run), "--no-progress"]  # fmt: skip


def run_to_the_end(config_file: Path, run: Path) -> str:
    done = subprocess.run(command(config_file, run), env=environment(None), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr


def run_and_kill(config_file: Path, run: Path, moment: str, skip: int, rng: random.Random):
    """Start training, SIGKILL it during the (skip+1)-th write of kind `moment`.
    Returns (killed?, the newest step it announced, the step it started at, what it said)."""
    proc = subprocess.Popen(command(config_file, run), env=environment(0.04), text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    prefix, seen, newest, started, said = MOMENTS[moment], 0, 0, None, []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        said.append(line)
        if match := re.search(r"(starting|resuming) at step (\d+)", line):
            started = int(match.group(2))
        if match := re.match(r"ganvas-fault-point \D*(\d+)", line):
            newest = max(newest, int(match.group(1)))
        if not re.match(f"ganvas-fault-point {prefix}", line.rstrip("\n")):
            continue
        seen += 1
        if seen > skip:
            if moment == "between steps":
                time.sleep(rng.uniform(0.05, 0.15))  # past the pause, into the next steps
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return True, newest, started, "".join(said)
    proc.wait(timeout=120)
    return False, newest, started, "".join(said)


def tensorboard_scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def tensorboard_image_steps(run: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"), size_guidance={"images": 0})
    events.Reload()
    return [e.step for e in events.Images("fakes")]


def comparable(records: list[dict]) -> list[dict]:
    return training_records(records)


@pytest.mark.slow
def test_kill_9_at_20_random_moments_changes_nothing(tiny_dataset, tmp_path):
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(tiny_config(tiny_dataset.path, **SETTINGS).to_yaml())
    reference, killed = tmp_path / "straight", tmp_path / "killed"
    run_to_the_end(config_file, reference)

    rng = random.Random(SEED)
    figures, previous_newest, t0 = [], None, time.monotonic()
    while len(figures) < KILLS:
        moment = rng.choice(sorted(MOMENTS))
        skip = rng.randint(0, 1)
        was_killed, newest, started, said = run_and_kill(config_file, killed, moment, skip, rng)
        assert started is not None, said
        if figures:  # the previous kill cost the steps from its resume point to where it was
            figures[-1]["resumed_at"] = started
            figures[-1]["steps_retrained"] = max(0, previous_newest - started)
        if not was_killed:  # it finished before the moment came
            assert "finished at step" in said, said
            raise AssertionError(f"run {len(figures) + 1} finished before '{moment}' came "
                                 f"({skip + 1} times): {said[-3000:]}")  # fmt: skip
        figures.append({"moment": moment, "killed_near_step": newest})
        previous_newest = newest
    stderr = run_to_the_end(config_file, killed)
    started = int(re.search(r"(?:starting|resuming) at step (\d+)", stderr).group(1))
    figures[-1]["resumed_at"] = started
    figures[-1]["steps_retrained"] = max(0, previous_newest - started)
    assert len(figures) == KILLS, f"the run finished after {len(figures)} kills"

    # The weights, optimizers, RNG streams and every other part: bit for bit.
    a = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(reference))
    b = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(killed))
    assert a.step == b.step == STEPS
    assert_same(a.weights, b.weights, "weights")
    assert_same(a.training_state, b.training_state, "training_state")

    # metrics.jsonl: every line whole, none repeated, the same records as the straight run.
    lines = (killed / "metrics.jsonl").read_text().split("\n")
    assert lines[-1] == ""
    records = [json.loads(line) for line in lines[:-1]]
    keys = [(r["step"], r.get("event")) for r in records]
    assert len(keys) == len(set(keys))
    assert comparable(records) == comparable(
        [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    )

    # Sample grids: the same files, the same pixels.
    grids = sorted(p.name for p in (reference / "samples").glob("*.png"))
    assert grids == sorted(p.name for p in (killed / "samples").glob("*.png"))
    for name in grids:
        assert np.array_equal(np.asarray(Image.open(reference / "samples" / name)),
                              np.asarray(Image.open(killed / "samples" / name))), name  # fmt: skip

    # TensorBoard: after the purges on resume, one value per step, the straight run's values.
    for tag in ("loss_d", "loss_g"):
        straight, resumed = tensorboard_scalars(reference, tag), tensorboard_scalars(killed, tag)
        assert [s for s, _ in resumed] == [s for s, _ in straight] == list(range(5, STEPS + 1, 5))
        assert resumed == straight
    assert tensorboard_image_steps(killed) == tensorboard_image_steps(reference)

    # Nothing left over: no temporary folders, and the lock is free.
    leftovers = [p for p in killed.rglob(".*") if p.name != ".lock"]
    assert not leftovers, leftovers
    assert (killed / ".lock").read_text() == ""

    summary = {
        "kills": len(figures),
        "finished_bit_exact": 1,
        "steps_retrained": sum(f["steps_retrained"] for f in figures),
        "checkpoint_interval": SETTINGS["train.checkpoint_interval"],
        "bytes_lost": 0,
        "seconds": round(time.monotonic() - t0, 1),
        "moments": figures,
    }
    print(json.dumps(summary, indent=1))
    if os.environ.get("GANVAS_RELIABILITY_REPORT"):
        Path(os.environ["GANVAS_RELIABILITY_REPORT"]).write_text(json.dumps(summary, indent=1))
