"""Checkpoints that load without running anyone's code, and that a crash cannot corrupt.

    checkpoints/<step:08d>/G.safetensors, D.safetensors, G_ema.safetensors   weights
    checkpoints/<step:08d>/training_state.pt    optimizer + RNG + loader state (tensors, dicts,
                                                numbers only: read with weights_only=True)
    checkpoints/<step:08d>/state.json           step, images seen, time, and the SHA-256 of
                                                every other file ("sha256"); written last
    checkpoints/latest                          text file naming the newest complete step

A checkpoint is written into a hidden temporary folder and renamed into place; `latest` is
replaced atomically afterwards, so at every instant it names a complete checkpoint. Old
checkpoints are renamed to a temporary name before they are deleted, so a kill never leaves
half of one. On load, each file is checked against its checksum (checkpoints of ganvas 0.1.0
have none and are read as they are): a damaged checkpoint raises `DamagedCheckpointError`,
and `load_newest_checkpoint` then falls back to the one before it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ganvas.errors import CheckpointError, DiskFullError, is_disk_full
from ganvas.io import fault_point, remove_stale_temporaries, write_text_atomic
from ganvas.rundir import RunDir

STEP_DIR = re.compile(r"^\d{8}$")
WEIGHT_NAMES = ("G", "G_ema", "D")


class DamagedCheckpointError(CheckpointError):
    """A checkpoint's files do not match their checksums or cannot be parsed."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint file holds pickled objects other than tensors: refused, never run."""


class DamagedCheckpointWarning(UserWarning):
    """A damaged checkpoint was skipped for an older one."""


@dataclass
class Checkpoint:
    path: Path
    weights: dict[str, dict[str, torch.Tensor]]  # 'G' / 'G_ema' / 'D' → state_dict
    training_state: dict[str, Any]
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])


def checkpoints_dir(run_dir: str | os.PathLike) -> Path:
    """The folder holding a run's checkpoints."""
    return RunDir(run_dir).checkpoints_dir


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    weights: dict[str, dict[str, torch.Tensor]],
    training_state: dict[str, Any],
    state: dict[str, Any],
    keep: int = 3,
) -> Path:
    """Write checkpoint `step` atomically, point `latest` at it, keep the newest `keep`.

    Raises:
        CheckpointError: the write failed (e.g. disk full); the previous checkpoint and
            `latest` are untouched and no partial folder is left behind.
    """
    folder = checkpoints_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{step:08d}-", dir=folder))
    try:
        for name, state_dict in weights.items():
            tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
            save_file(tensors, str(tmp / f"{name}.safetensors"))
            fault_point(f"checkpoint {step} {name}")
        buffer = io.BytesIO()
        torch.save(training_state, buffer)
        _write(tmp / "training_state.pt", buffer.getbuffer())
        sums = {file.name: file_sha256(file) for file in sorted(tmp.iterdir())}
        # state.json goes last: its presence marks the folder as complete.
        (tmp / "state.json").write_text(json.dumps(dict(state, step=step, sha256=sums), indent=2))
        _fsync_dir_files(tmp)
        fault_point(f"checkpoint {step} rename")
        if final.exists():  # the same step saved again (e.g. stop right after a resume)
            _discard(final)
        os.rename(tmp, final)
        write_text_atomic(folder / "latest", final.name + "\n")
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(err):
            raise DiskFullError(disk_full_message(f"checkpoint {step}", run_dir, err)) from err
        if isinstance(err, OSError):
            raise CheckpointError(
                f"could not write checkpoint for step {step} in {folder}: {err}. "
                "The previous checkpoint is intact."
            ) from err
        raise
    _prune(folder, keep)
    return final


def save_file(tensors: dict[str, torch.Tensor], filename: str) -> None:
    """Write a safetensors file with plain writes, so that a full disk raises OSError
    (ENOSPC) here rather than a library's own error."""
    _write(Path(filename), safetensors_bytes(tensors))


def _write(path: Path, data: bytes | memoryview) -> None:
    with open(path, "wb") as f:
        f.write(data)


def disk_full_message(what: str, run_dir: str | os.PathLike, err: OSError) -> str:
    """'disk full while writing checkpoint 400 in runs/a; the newest complete checkpoint is
    300 (intact): free some space and run the same command again to resume.'"""
    newest = find_latest_checkpoint(run_dir)
    where = (
        f"the newest complete checkpoint is {int(newest.name)} (intact)"
        if newest
        else ("there is no complete checkpoint yet")
    )
    return (
        f"disk full while writing {what} in {run_dir} ({err.strerror or err}); {where}: "
        "free some space and run the same command again to resume"
    )


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def find_latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder of a run, or None if it has none.

    Follows `latest`; if that names a missing or incomplete folder (a crash between the two
    renames, or a hand-deleted folder), falls back to the newest complete one.
    """
    folder = checkpoints_dir(run_dir)
    if not folder.is_dir():
        return None
    pointer = folder / "latest"
    if pointer.is_file():
        named = folder / pointer.read_text().strip()
        if _is_complete(named):
            return named
    complete = [p for p in folder.iterdir() if STEP_DIR.match(p.name) and _is_complete(p)]
    return max(complete, key=lambda p: p.name) if complete else None


def resolve_checkpoint(run_dir: str | os.PathLike, checkpoint: str | int | None = None) -> Path:
    """Pick a checkpoint folder: the latest, a step number, or a folder path.

    Raises:
        CheckpointError: there is no such (complete) checkpoint; the message lists those there are.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if checkpoint is None:
        found = find_latest_checkpoint(run_dir)
        if found is None:
            raise CheckpointError(
                f"{run_dir} has no checkpoint yet (looked in {checkpoints_dir(run_dir)}); "
                f"train first: ganvas train --out {run_dir} ..."
            )
        return found
    candidate = Path(str(checkpoint))
    if not candidate.is_dir():
        if not str(checkpoint).isdigit():
            raise CheckpointError(
                f"checkpoint {checkpoint!r} is neither a step number nor a folder"
            )
        candidate = checkpoints_dir(run_dir) / f"{int(checkpoint):08d}"
    if not _is_complete(candidate):
        available = ", ".join(str(int(p.name)) for p in list_checkpoints(run_dir)) or "none"
        raise CheckpointError(
            f"no complete checkpoint {checkpoint} in {run_dir}; have: {available}"
        )
    return candidate


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    folder = checkpoints_dir(run_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if STEP_DIR.match(p.name) and _is_complete(p))


def load_checkpoint(
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    names: tuple[str, ...] = WEIGHT_NAMES,
) -> Checkpoint:
    """Read a checkpoint folder. Never unpickles arbitrary objects.

    Raises:
        CheckpointError: `path` is not a complete checkpoint.
        DamagedCheckpointError: a file does not match the checksum in state.json, or cannot
            be parsed (truncated, overwritten).
    """
    path = Path(path)
    if not _is_complete(path):
        raise CheckpointError(f"{path} is not a complete checkpoint (state.json missing)")
    try:
        state = json.loads((path / "state.json").read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DamagedCheckpointError(f"{path}/state.json is damaged ({err})") from err
    sums = state.get("sha256") or {}  # absent in checkpoints of ganvas 0.1.0
    wanted = [f"{name}.safetensors" for name in names] + ["training_state.pt"]
    for file_name in wanted:
        file = path / file_name
        if file_name in sums:
            if not file.is_file():
                raise DamagedCheckpointError(f"{file} is missing")
            if file_sha256(file) != sums[file_name]:
                raise DamagedCheckpointError(
                    f"{file} does not match its checksum in state.json (truncated or changed "
                    "after it was written)"
                )
    weights = {}
    training_state: dict[str, Any] = {}
    try:
        for name in names:
            file = path / f"{name}.safetensors"
            if file.is_file():
                weights[name] = load_file(str(file), device=str(device))
        state_file = path / "training_state.pt"
        if state_file.is_file():
            training_state = torch.load(state_file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # refused by weights_only: never run, never skipped
        raise UnsafeCheckpointError(
            f"{path}/training_state.pt holds pickled objects ganvas does not load (only "
            f"tensors and plain values; it was not written by ganvas): {str(err)[:200]}"
        ) from err
    except (RuntimeError, ValueError, OSError, EOFError, SafetensorError) as err:
        raise DamagedCheckpointError(f"{path} cannot be read ({err})") from err
    return Checkpoint(path=path, weights=weights, training_state=training_state, state=state)


def load_newest_checkpoint(
    run_dir: str | os.PathLike,
    device: torch.device | str = "cpu",
    names: tuple[str, ...] = WEIGHT_NAMES,
    warn: Callable[[str], None] | None = None,
    set_aside: bool = False,
) -> Checkpoint | None:
    """The newest checkpoint of a run that loads; a damaged one is skipped with a warning
    (`warn(message)`, else a `DamagedCheckpointWarning`) for the one before it.

    Args:
        set_aside: (for the run's writer) rename each damaged folder to `<step>.damaged`,
            kept for inspection, and point `latest` at the checkpoint that loaded.

    Returns None when the run has no checkpoint.

    Raises:
        DamagedCheckpointError: every checkpoint of the run is damaged.
    """
    newest = find_latest_checkpoint(run_dir)
    if newest is None:
        return None
    candidates = [newest] + [p for p in reversed(list_checkpoints(run_dir)) if p != newest]
    problems = []
    for path in candidates:
        try:
            loaded = load_checkpoint(path, device=device, names=names)
        except DamagedCheckpointError as err:
            problems.append(str(err))
            message = f"skipping damaged checkpoint {path.name}: {err}"
            if set_aside:
                os.replace(path, path.with_name(path.name + ".damaged"))
                message += f"; it is kept as {path.name}.damaged"
            if warn is not None:
                warn(message)
            else:
                warnings.warn(message, DamagedCheckpointWarning, stacklevel=2)
            continue
        if set_aside and problems:
            write_text_atomic(checkpoints_dir(run_dir) / "latest", path.name + "\n")
        return loaded
    raise DamagedCheckpointError(
        f"every checkpoint of {run_dir} is damaged: {'; '.join(problems)}. Start over with "
        "--new, or restore the run directory from a backup"
    )


def remove_unfinished(run_dir: str | os.PathLike) -> None:
    """Delete temporary folders left by a process killed while writing a checkpoint."""
    remove_stale_temporaries(checkpoints_dir(run_dir), lambda p: p.name.startswith(".tmp-"))


def _is_complete(path: Path) -> bool:
    return path.is_dir() and (path / "state.json").is_file()


def mark_best(run_dir: str | os.PathLike, step: int) -> None:
    """Point `checkpoints/best` at checkpoint `step`; pruning never deletes it."""
    write_text_atomic(checkpoints_dir(run_dir) / "best", f"{step:08d}\n")


def best_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    pointer = checkpoints_dir(run_dir) / "best"
    if not pointer.is_file():
        return None
    named = checkpoints_dir(run_dir) / pointer.read_text().strip()
    return named if _is_complete(named) else None


def _prune(folder: Path, keep: int) -> None:
    best = (folder / "best").read_text().strip() if (folder / "best").is_file() else None
    steps = sorted(p for p in folder.iterdir() if STEP_DIR.match(p.name) and p.name != best)
    for old in steps[:-keep]:
        _discard(old)


def _discard(checkpoint: Path) -> None:
    """Delete a checkpoint folder: renamed away first (atomic), so a kill during the deletion
    leaves a temporary folder that the next start removes, never half a checkpoint."""
    doomed = Path(tempfile.mkdtemp(prefix=f".tmp-old-{checkpoint.name}-", dir=checkpoint.parent))
    os.rename(checkpoint, doomed / checkpoint.name)
    fault_point(f"discard {checkpoint.name}")
    shutil.rmtree(doomed, ignore_errors=True)


def _fsync_dir_files(folder: Path) -> None:
    for file in folder.iterdir():
        with open(file, "rb") as f:
            os.fsync(f.fileno())
