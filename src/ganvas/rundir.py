"""The layout of a run directory, in one place.

    run/config.yaml              the fully resolved config (versioned, see ganvas.config)
    run/classes.json             class names in label order ([] for unlabelled data)
    run/metrics.jsonl            one JSON record per logged step, evaluation or event
    run/log.txt                  what the run printed
    run/samples/reals.png        real images from the training set
    run/samples/fakes_<step:08d>.png   fixed-noise grids
    run/progress.gif             the fixed-noise grids animated, written at the end
    run/tb/                      TensorBoard events
    run/checkpoints/             see ganvas.checkpoint
    run/eval/eval_<step:08d>.json      `ganvas evaluate` results
    run/ratings.jsonl            `ganvas rate` results
    run/.lock                    held (flock) by the process training here: its pid and host

Only this module spells these names; everything else asks a `RunDir`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from ganvas.config import Config, config_from_dict, read_config_file
from ganvas.errors import CheckpointError, RunBusyError, is_disk_full
from ganvas.io import (
    fault_point,
    remove_stale_temporaries,
    write_json_atomic,
    write_text_atomic,
)

FAKES_GRID = re.compile(r"^fakes_(\d{8})\.png$")
# The temporary names `ganvas.io.atomic_path` gives training's outputs (".config.yaml.x1y2.tmp")
STALE_TEMPORARY = re.compile(
    r"^\.(config\.yaml|classes\.json|metrics\.jsonl|progress\.gif|reals\.png|"
    r"fakes_\d{8}\.png|latest|best)\.[A-Za-z0-9_]+\."
)


class RunDir:
    """A run directory written by `ganvas train` (which need not exist yet)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config_file = self.path / "config.yaml"
        self.classes_file = self.path / "classes.json"
        self.metrics_file = self.path / "metrics.jsonl"
        self.log_file = self.path / "log.txt"
        self.samples_dir = self.path / "samples"
        self.reals_grid = self.samples_dir / "reals.png"
        self.progress_gif = self.path / "progress.gif"
        self.tensorboard_dir = self.path / "tb"
        self.checkpoints_dir = self.path / "checkpoints"
        self.eval_dir = self.path / "eval"
        self.ratings_file = self.path / "ratings.jsonl"
        self.lock_file = self.path / ".lock"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def fakes_grid(self, step: int) -> Path:
        """The fixed-noise grid saved at `step`."""
        return self.samples_dir / f"fakes_{step:08d}.png"

    def eval_file(self, step: int) -> Path:
        """Where `ganvas evaluate` saves the scores of the checkpoint of `step`."""
        return self.eval_dir / f"eval_{step:08d}.json"

    def read_config(self) -> Config:
        """The run's config.yaml as a validated Config, migrated from older config versions.

        Raises:
            CheckpointError: the run directory or its config.yaml does not exist.
            ConfigError: the file is not a valid config, or one written by a newer ganvas.
        """
        if not self.path.is_dir():
            raise CheckpointError(f"run directory {self.path} does not exist")
        if not self.config_file.is_file():
            raise CheckpointError(f"{self.config_file} is missing; cannot rebuild the model")
        return config_from_dict(read_config_file(self.config_file))

    def write_config(self, config: Config) -> Path:
        """Save `config` as the run's config.yaml (atomically); returns the file."""
        write_text_atomic(self.config_file, config.to_yaml())
        return self.config_file

    def class_names(self) -> list[str]:
        """The run's class names in label order; [] when it has none (or no classes.json)."""
        if not self.classes_file.is_file():
            return []
        return list(json.loads(self.classes_file.read_text()))

    def write_class_names(self, names: list[str]) -> Path:
        """Save the class names as classes.json (atomically); returns the file."""
        write_json_atomic(self.classes_file, list(names))
        return self.classes_file

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one record as a line of metrics.jsonl (one write: a kill cannot tear it;
        a full disk can, and `read_metrics` skips such a line)."""
        self.path.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record) + "\n"
        with open(self.metrics_file, "a", encoding="utf-8") as f:
            if os.environ.get("GANVAS_FAULT_DELAY"):  # test hook: a torn line, then a pause
                f.write(line[: len(line) // 2])
                f.flush()
                fault_point(f"metrics {record.get('step')}")
                line = line[len(line) // 2 :]
            f.write(line)

    def read_metrics(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The records of metrics.jsonl in order (at most `limit`, read line by line); a torn
        line (a full disk, a crash of the machine) is left out."""
        if not self.metrics_file.is_file():
            return []
        records: list[dict[str, Any]] = []
        with open(self.metrics_file, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
                    if limit is not None and len(records) >= limit:
                        break
        return records

    def discard_after(self, step: int) -> None:
        """Forget what was recorded after `step` (a resume or a rollback to the checkpoint of
        `step` trains those steps again): later metrics.jsonl lines and torn ones are
        dropped, later fixed-noise grids deleted."""
        if self.metrics_file.is_file():
            kept = [r for r in self.read_metrics() if r.get("step", 0) <= step]
            text = "".join(json.dumps(r) + "\n" for r in kept)
            if text != self.metrics_file.read_text(encoding="utf-8", errors="replace"):
                write_text_atomic(self.metrics_file, text)
        if self.samples_dir.is_dir():
            for grid in self.samples_dir.iterdir():
                match = FAKES_GRID.match(grid.name)
                if match and int(match.group(1)) > step:
                    grid.unlink(missing_ok=True)

    def remove_stale_temporaries(self) -> None:
        """Delete the half-written temporary files of a process killed while writing (call
        it holding the lock: another writer's files are not stale)."""
        for folder in (self.path, self.samples_dir, self.checkpoints_dir):
            remove_stale_temporaries(folder, lambda p: bool(STALE_TEMPORARY.match(p.name)))

    def lock(self) -> RunLock:
        """Take the run's writer lock (see `RunLock`)."""
        return RunLock(self.lock_file)

    def outputs(self) -> tuple[Path, ...]:
        """What training writes, and so what `ganvas train --new` deletes. Evaluations and
        human ratings are not among them: they are kept (ratings cannot be made again)."""
        return (self.checkpoints_dir, self.samples_dir, self.tensorboard_dir, self.metrics_file,
                self.config_file, self.classes_file, self.log_file, self.progress_gif)  # fmt: skip

    def clear(self) -> None:
        """Delete the training `outputs()`, for a run started over with --new."""
        for path in self.outputs():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


_HELD: dict[str, list[Any]] = {}  # lock file → [open file, holders] for this process


class RunLock:
    """One run, one writer: an exclusive `flock` on run/.lock, which names the holder.

    The kernel drops the lock when its process dies, however it dies, so a lock file left by
    a crashed process is simply taken over (and said so in `took_over`). Within one process
    the lock is shared: a second Trainer on the same run in the same program is allowed.

    Raises:
        RunBusyError: another process holds the lock; the message names its pid and host.
    """

    def __init__(self, path: Path) -> None:
        self.path, self.took_over, self._released = Path(path), "", False
        key = os.path.realpath(self.path)
        self._key = key
        if key in _HELD:
            _HELD[key][1] += 1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since "
                   f"{holder.get('started', '?')}")  # fmt: skip
            raise RunBusyError(
                f"{self.path.parent} is being trained by another process ({who}); wait for it "
                f"to finish or stop it (kill {holder.get('pid', 'PID')}) before training here"
            ) from None
        previous = _read_holder(fd)
        if previous.get("pid") and previous.get("pid") != os.getpid():
            self.took_over = (f"took over the lock of pid {previous['pid']} on "
                              f"{previous.get('host', '?')}, which is gone (it crashed or was "
                              "killed)")  # fmt: skip
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%S")})  # fmt: skip
        os.ftruncate(fd, 0)
        try:
            os.pwrite(fd, holder.encode(), 0)
        except OSError as err:  # a full disk: the lock holds all the same, only unnamed
            if not is_disk_full(err):
                os.close(fd)
                raise
            os.ftruncate(fd, 0)
        _HELD[key] = [fd, 1]

    def release(self) -> None:
        """Give the lock up (emptying the file: a clean exit leaves nothing to take over)."""
        if self._released or self._key not in _HELD:
            return
        self._released = True
        entry = _HELD[self._key]
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _HELD[self._key]
        with contextlib.suppress(OSError):
            os.ftruncate(entry[0], 0)
        os.close(entry[0])

    def __del__(self) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}
