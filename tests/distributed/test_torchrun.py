"""Training under real `torchrun` subprocesses on 127.0.0.1 (gloo, CPU): the same weights as
one process, two "nodes", a killed rank (and torchrun restarting it), a resume on another world size, penalty families.

Every subprocess has a timeout: a rank left waiting at a collective fails the test instead of
hanging it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganvas import checkpoint as ckpt
from ganvas.training.trainer import train
from tests.conftest import TINY_MODELS, make_blobs, tiny_config, write_dataset

pytestmark = pytest.mark.slow

TIMEOUT = 150  # seconds for any one torchrun job on this 2-core machine
# 2 ranks average two shards' gradients where 1 rank averages one batch's: the same sum in
# another order, so float32 rounding differs by a few ulps (measured: 4.5e-8 after 10 steps).
WEIGHT_TOLERANCE = 1e-6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings(family: str, data: Path, **extra) -> dict:
    base = {"data.path": str(data), "model.family": family, "model.resolution": 16,
            **TINY_MODELS[family], "train.batch_size": 16, "train.steps": 10,
            "train.device": "cpu", "train.log_interval": 5, "train.sample_interval": 10,
            "train.checkpoint_interval": 5, "train.n_samples": 4, "train.tensorboard": False,
            "train.energy": False, "train.collapse_check": "off", "train.augment": "none"}  # fmt: skip
    base.update(extra)
    return base


def train_args(run: Path, values: dict) -> list[str]:
    args = ["--out", str(run), "--no-progress"]
    for key, value in values.items():
        text = (
            json.dumps(value) if isinstance(value, dict | str) else value
        )  # YAML reads "off" as False
        args += ["--set", f"{key}={text}"]
    return args


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def start(command: list[str], **kwargs) -> subprocess.Popen:
    """torchrun in a session of its own, so that `stop` ends its workers too."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kwargs)  # fmt: skip


def stop(job: subprocess.Popen) -> None:
    """Kill torchrun and every worker it started (a hung worker must not outlive the test)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job.pid, signal.SIGKILL)


def run(command: list[str], timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    job = start(command)
    try:
        output = job.communicate(timeout=timeout)[0]
    finally:
        stop(job)
    assert job.returncode == 0, f"exit {job.returncode}:\n{output}"
    return subprocess.CompletedProcess(command, job.returncode, output, "")


def standalone(nproc: int, *rest: str) -> list[str]:
    return torchrun("--standalone", f"--nproc_per_node={nproc}", "-m", "ganvas", "train", *rest)


def weights(run_dir: Path, step: int) -> dict[str, dict[str, torch.Tensor]]:
    folder = ckpt.checkpoints_dir(run_dir) / f"{step:08d}"
    return {name: load_file(folder / f"{name}.safetensors") for name in ("G", "D")}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("ddp") / "blobs", make_blobs(64)).path


def test_two_ranks_give_one_ranks_weights_and_resume_on_one(data, tmp_path):
    """r3gan (no BatchNorm; R1 and R2 by double backward) with ADA moving p and instance
    noise: 2 ranks × 8 = 1 rank × 16. The augmentations' random numbers are drawn for the
    global batch on every rank (each takes its rows), and r_t is summed over the ranks."""
    values = settings("r3gan", data, **{"train.augment": "ada", "train.ada_p": 0.5,
                                        "train.ada_interval": 1, "train.ada_kimg": 0.1,
                                        "train.instance_noise": 0.05})  # fmt: skip
    one = train(tiny_config(data, **values), tmp_path / "one", progress=False)
    assert one.step == 10
    two = tmp_path / "two"
    run(standalone(2, *train_args(two, values)))
    a, b = weights(tmp_path / "one", 10), weights(two, 10)
    for net in ("G", "D"):
        assert a[net].keys() == b[net].keys()
        for key in a[net]:
            diff = (a[net][key] - b[net][key]).abs().max().item()
            assert diff <= WEIGHT_TOLERANCE, f"{net}.{key} differs by {diff}"
    lines = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [5, 10]  # rank 0 alone wrote them: no duplicates
    for mine, theirs in zip(lines, ref):  # losses over the global batch, as one process has
        assert mine["loss_d"] == pytest.approx(theirs["loss_d"], abs=1e-4)
        assert mine["ada_p"] == theirs["ada_p"] and mine["ada_p"] != 0.5  # p moved alike
    log = (two / "log.txt").read_text()
    assert log.count("starting at step 0") == 1 and "2 ranks" in log

    # The same run continued by one process: re-sharded, and the log says it is not exact.
    resumed = train(None, two, progress=False, overrides=["train.steps=14"])
    assert resumed.step == 14
    assert "written by 2 rank(s), this run has 1" in (two / "log.txt").read_text()
    assert "not bit-exact" in (two / "log.txt").read_text()


def test_two_nodes_one_rendezvous(data, tmp_path):
    run_dir, port = tmp_path / "nodes", free_port()
    args = train_args(
        run_dir, settings("r3gan", data, **{"train.steps": 6, "train.checkpoint_interval": 3})
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 processes on 2 cores: a thread each
    nodes = []
    for rank in (0, 1):  # node_rank is ignored by c10d (the rendezvous numbers the nodes)
        command = torchrun("--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=1",
                           "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
                           "--rdzv-id=ganvas-test", "-m", "ganvas", "train", *args)  # fmt: skip
        nodes.append(start(command, env=env))
    try:
        outputs = [node.communicate(timeout=TIMEOUT)[0] for node in nodes]
    finally:
        for node in nodes:
            stop(node)
    assert [n.returncode for n in nodes] == [0, 0], "\n".join(outputs)
    assert "2 ranks" in (run_dir / "log.txt").read_text()
    latest = ckpt.find_latest_checkpoint(run_dir)
    assert latest is not None and latest.name == "00000006"
    assert ckpt.load_checkpoint(latest).step == 6


def worker_pids(agent: int) -> dict[int, int]:
    """{rank: pid} of the workers torchrun's agent (`agent`) started (from any of its threads)."""
    ranks = {}
    for task in Path(f"/proc/{agent}/task").iterdir():
        for pid in map(int, (task / "children").read_text().split()):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            env = dict(item.split(b"=", 1) for item in environ if b"=" in item)
            if b"RANK" in env:
                ranks[int(env[b"RANK"])] = pid
    return ranks


def run_and_kill_rank_1(data: Path, run_dir: Path, max_restarts: int) -> tuple[list, int, str]:
    """A 20-step r3gan job (checkpoints at 10 and 20) whose rank 1 is SIGKILLed at step 15:
    (the command, torchrun's exit status, the end of its output)."""
    values = settings("r3gan", data, **{"train.steps": 20, "train.checkpoint_interval": 10})
    env = {**os.environ, "GANVAS_FAULT_DELAY": "0.2"}  # rank 0's writes pause: time to kill
    command = torchrun("--standalone", "--nproc_per_node=2", f"--max-restarts={max_restarts}",
                       "-m", "ganvas", "train", *train_args(run_dir, values))  # fmt: skip
    job = start(command, env=env)
    output: list[str] = []
    killed = threading.Event()

    def watch() -> None:
        for line in job.stdout:  # read to the end whatever happens, or torchrun blocks
            output.append(line)
            # Past the checkpoint of step 10, at the metrics line of step 15: kill rank 1.
            if "ganvas-fault-point metrics 15" in line and not killed.is_set():
                try:
                    os.kill(worker_pids(job.pid)[1], signal.SIGKILL)
                    killed.set()
                except (OSError, KeyError) as err:
                    output.append(f"test: could not kill rank 1: {err!r}\n")

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    try:
        job.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        stop(job)
        reader.join(timeout=10)
        pytest.fail("the job hung:\n" + "".join(output)[-6000:])
    stop(job)  # torchrun has exited; any worker it left behind goes too
    reader.join(timeout=10)
    text = "".join(output)[-6000:]
    assert killed.is_set(), text
    return command, job.returncode, text


def test_a_killed_rank_stops_the_job_and_the_next_start_resumes_it(data, tmp_path):
    """Rank 1 SIGKILLed after checkpoint 10, no restarts allowed: the job stops with
    checkpoint 10 intact, and the next start (the same command) resumes from it and finishes."""
    run_dir = tmp_path / "killed"
    command, returncode, text = run_and_kill_rank_1(data, run_dir, max_restarts=0)
    assert returncode != 0, text  # the job stopped
    latest = ckpt.find_latest_checkpoint(run_dir)
    assert latest is not None and ckpt.load_checkpoint(latest).step == 10  # intact
    run(command)  # the same command again
    log = (run_dir / "log.txt").read_text()
    assert "resuming at step 10/20" in log, log
    assert "set aside" not in log and "finished at step 20/20" in log
    assert ckpt.load_checkpoint(ckpt.find_latest_checkpoint(run_dir)).step == 20


def test_torchrun_max_restarts_resumes_a_job_whose_rank_was_killed(data, tmp_path):
    """With --max-restarts 1 torchrun restarts both ranks itself after rank 1 dies; the new
    round (its own keys in the rendezvous store: `restart_store`) resumes from checkpoint 10
    and finishes, and the job exits 0."""
    run_dir = tmp_path / "restarted"
    _, returncode, text = run_and_kill_rank_1(data, run_dir, max_restarts=1)
    assert returncode == 0, text
    log = (run_dir / "log.txt").read_text()
    assert "resuming at step 10/20" in log and "finished at step 20/20" in log, log
    assert ckpt.load_checkpoint(ckpt.find_latest_checkpoint(run_dir)).step == 20


def test_sigterm_to_torchrun_stops_every_rank_at_the_same_step_with_a_checkpoint(data, tmp_path):
    """A scheduler's preemption: torchrun passes SIGTERM on; the ranks agree on the stop."""
    run_dir = tmp_path / "preempted"
    values = settings("r3gan", data, **{"train.steps": 2000, "train.checkpoint_interval": 5000})
    job = start(torchrun("--standalone", "--nproc_per_node=2", "-m", "ganvas", "train",
                         *train_args(run_dir, values)))  # fmt: skip
    try:
        log = run_dir / "log.txt"
        deadline = time.monotonic() + TIMEOUT
        while not (log.is_file() and "starting at" in log.read_text()):
            assert time.monotonic() < deadline and job.poll() is None, job.communicate()[0]
            time.sleep(0.2)
        time.sleep(2)  # some steps in
        job.send_signal(signal.SIGTERM)
        output = job.communicate(timeout=TIMEOUT)[0]
    finally:
        stop(job)
    text = log.read_text()
    assert "interrupted: saving a checkpoint" in text, output
    latest = ckpt.find_latest_checkpoint(run_dir)
    assert latest is not None, output
    step = ckpt.load_checkpoint(latest).step
    assert 0 < step < 2000 and f"stopped at step {step}/2000" in text


@pytest.mark.parametrize(
    "family, extra",
    [
        ("wgan_gp", {"train.d_steps": 2}),  # gradient penalty: double backward through D
        ("stylegan2", {"model.r1_interval": 2, "model.pl_interval": 2, "train.augment": "ada",
                       "train.ada_interval": 1, "train.ada_kimg": 0.1, "train.ema": True}),
    ],
)  # fmt: skip
def test_penalty_families_train_under_two_ranks(data, tmp_path, family, extra):
    """Launched by the shortcut `ganvas train --gpus 2 --device cpu` (torchrun, 2 processes)."""
    run_dir = tmp_path / family
    values = settings(family, data, **{"train.steps": 6, "train.checkpoint_interval": 6, **extra})
    start = time.perf_counter()
    run([sys.executable, "-m", "ganvas", "train", "--gpus", "2", "--device", "cpu",
         *train_args(run_dir, values)])  # fmt: skip
    assert time.perf_counter() - start < TIMEOUT
    saved = ckpt.load_checkpoint(ckpt.find_latest_checkpoint(run_dir))
    assert saved.step == 6 and saved.state["world_size"] == 2
    for name, tensors in saved.weights.items():
        assert all(torch.isfinite(t).all() for t in tensors.values()), name
    if "ada" in str(extra):
        lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert all("ada_p" in x for x in lines if "loss_d" in x)


@pytest.mark.parametrize(
    "family, setting, message",
    [
        ("r3gan", {"train.batch_size": 15}, "does not divide by 2"),
        ("dcgan", {"train.sync_bn": True}, "train.sync_bn=true needs CUDA"),
    ],
)  # fmt: skip
def test_what_two_cpu_ranks_cannot_do_is_refused_before_writing(
    data, tmp_path, family, setting, message
):
    values = settings(family, data, **setting)
    job = start(standalone(2, *train_args(tmp_path / "refused", values)))
    try:
        output = job.communicate(timeout=TIMEOUT)[0]
    finally:
        stop(job)
    assert job.returncode != 0
    assert message in output
    assert not (tmp_path / "refused").exists()  # nothing written
