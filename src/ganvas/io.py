"""Atomic file and directory writes: a crash or a full disk never leaves half a file.

Every output ganvas writes goes to a temporary name beside its destination first and is
renamed into place only once complete (a rename within one filesystem is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Test hook (tests/reliability): with GANVAS_FAULT_DELAY=SECONDS in the environment, every
# write that calls `fault_point` announces itself on stderr ("ganvas-fault-point <where>")
# and pauses there, so a test can SIGKILL the process in the middle of that write. Unset (as
# always outside those tests) it costs one dictionary lookup.
FAULT_DELAY_VARIABLE = "GANVAS_FAULT_DELAY"


def fault_point(where: str) -> None:
    """Announce `where` and pause there when GANVAS_FAULT_DELAY is set; else do nothing."""
    delay = os.environ.get(FAULT_DELAY_VARIABLE)
    if delay:
        sys.stderr.write(f"ganvas-fault-point {where}\n")
        sys.stderr.flush()
        time.sleep(float(delay))


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `dest`; on success rename it onto `dest`.

    On any exception the temporary file is removed and `dest` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.", suffix=suffix or ".tmp", dir=dest.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs should be readable like any file
    try:
        yield tmp
        fault_point(f"write {dest.name}")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(dest: str | os.PathLike, data: bytes) -> None:
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_text_atomic(dest: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(dest, text.encode("utf-8"))


def write_json_atomic(dest: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(dest, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_image_atomic(dest: str | os.PathLike, image: Any, **save_kwargs: Any) -> None:
    """Save a PIL image; the format comes from `dest`'s extension."""
    dest = Path(dest)
    with atomic_path(dest, suffix=dest.suffix) as tmp:
        image.save(tmp, **save_kwargs)


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside `dest`; on success it becomes `dest`.

    With `overwrite`, an existing `dest` is replaced only after the new one is complete.
    On failure the temporary directory is deleted and `dest` is untouched.
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise FileExistsError(
            f"{dest} already exists (pass overwrite=True / --overwrite to replace it)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            old.rmdir()
            os.rename(dest, old)
            os.rename(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temporaries(folder: str | os.PathLike, is_stale: Callable[[Path], bool]) -> None:
    """Delete leftovers of writes that a killed process never finished."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if is_stale(entry):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
