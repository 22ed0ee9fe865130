"""Resumable scanning: what `prepare` has already read survives an interruption.

The work folder sits beside the dataset being made (`.<name>.prepare-work`) and holds

    settings.json   the `ScanSettings` the pixels were made with (a mismatch starts over)
    outputs.u8      output images, raw uint8 rows appended in the order units finished
    thumbs.u8       one small thumbnail per decoded picture, for contact sheets
    journal.jsonl   one line per finished unit: its key, items, and where its rows are

Rows reach the disk (fsync) before the journal line that points at them, so after a crash or
a kill every journal line refers to complete rows; rows past the last line are cut off when
the work is reopened. A finished `prepare` deletes the folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from ganvas.data.scan import ScanSettings, UnitResult
from ganvas.data.store import DatasetError

JOURNAL_VERSION = 1
# How often finished units are made durable; a kill loses at most this much work.
SYNC_SECONDS_VARIABLE = "GANVAS_PREPARE_SYNC_SECONDS"
DEFAULT_SYNC_SECONDS = 2.0


def work_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.prepare-work"


class ScanJournal:
    """Append-only store of scanned units; `entries` maps unit key → its journal record."""

    def __init__(self, folder: Path, settings: ScanSettings, resume: bool = True) -> None:
        self.folder = folder
        self.row_shape = (settings.size, settings.size, settings.channels)
        self.thumb_shape = (settings.thumb_side, settings.thumb_side, settings.channels)
        self.entries: dict[str, dict[str, Any]] = {}
        self.restarted_because = ""
        # Through JSON and back, so tuples compare equal to the lists read from settings.json.
        wanted = json.loads(
            json.dumps({"version": JOURNAL_VERSION, **dataclasses.asdict(settings)})
        )
        settings_file = folder / "settings.json"
        if folder.exists():
            _lock(folder).close()  # fail early if another prepare is writing here
            previous = _read_json(settings_file)
            if not resume:
                self.restarted_because = "--no-resume"
            elif previous != wanted:
                self.restarted_because = "the settings changed since the interrupted run"
            if self.restarted_because:
                shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(folder)
        if not settings_file.exists():
            settings_file.write_text(json.dumps(wanted, indent=1))
        self._recover()
        self._outputs = open(folder / "outputs.u8", "ab")  # noqa: SIM115 (closed in close())
        self._thumbs = open(folder / "thumbs.u8", "ab")  # noqa: SIM115
        self._journal = open(folder / "journal.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._pending: list[str] = []
        self._last_sync = time.monotonic()
        self._sync_seconds = float(os.environ.get(SYNC_SECONDS_VARIABLE, DEFAULT_SYNC_SECONDS))

    @property
    def rows(self) -> int:
        return self._rows

    def _recover(self) -> None:
        """Read the journal up to its first torn line; cut the data files to match it."""
        journal = self.folder / "journal.jsonl"
        row_bytes, thumb_bytes = _nbytes(self.row_shape), _nbytes(self.thumb_shape)
        rows_on_disk = _size(self.folder / "outputs.u8") // row_bytes
        thumbs_on_disk = _size(self.folder / "thumbs.u8") // thumb_bytes
        rows = thumbs = 0
        good_lines: list[str] = []
        if journal.exists():
            for line in journal.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    row_end = entry["row0"] + sum(item["rows"] for item in entry["items"])
                    thumb_end = entry["thumb0"] + sum(1 for i in entry["items"] if i["rows"])
                except (ValueError, KeyError, TypeError):
                    break  # a line cut short by the interruption: it and what follows are redone
                if row_end > rows_on_disk or thumb_end > thumbs_on_disk:
                    break
                self.entries[entry["key"]] = entry
                rows, thumbs = max(rows, row_end), max(thumbs, thumb_end)
                good_lines.append(line)
        self._rows, self._thumb_count = rows, thumbs
        for name, count, nbytes in (
            ("outputs.u8", rows, row_bytes),
            ("thumbs.u8", thumbs, thumb_bytes),
        ):
            with open(self.folder / name, "ab") as f:
                f.truncate(count * nbytes)
        journal.write_text("".join(line + "\n" for line in good_lines), encoding="utf-8")

    def add(self, result: UnitResult) -> dict[str, Any]:
        """Store one finished unit; returns its journal record."""
        entry = {
            "key": result.key,
            "row0": self._rows,
            "thumb0": self._thumb_count,
            "items": result.items,
        }
        self._outputs.write(np.ascontiguousarray(result.outputs).tobytes())
        self._thumbs.write(np.ascontiguousarray(result.thumbs).tobytes())
        self._rows += len(result.outputs)
        self._thumb_count += len(result.thumbs)
        self.entries[result.key] = entry
        self._pending.append(json.dumps(entry, separators=(",", ":")))
        if time.monotonic() - self._last_sync >= self._sync_seconds:
            self.sync()
        return entry

    def sync(self) -> None:
        """Make the stored rows durable, then the journal lines that point at them."""
        for f in (self._outputs, self._thumbs):
            f.flush()
            os.fsync(f.fileno())
        if self._pending:
            self._journal.write("".join(line + "\n" for line in self._pending))
            self._pending.clear()
            self._journal.flush()
            os.fsync(self._journal.fileno())
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._journal.closed:
            return
        try:
            self.sync()
        finally:  # every file is closed (and the lock given up) even when a flush fails
            failed = None
            for f in (self._outputs, self._thumbs, self._journal, self._lock):
                try:
                    f.close()
                except OSError as err:  # a full disk: unflushed rows are cut on reopening
                    failed = failed or err
            if failed is not None:
                raise failed

    def read_rows(self, rows: list[int]) -> np.ndarray:
        """Output rows by number, read with plain file reads (runs of neighbours at once)."""
        out = np.empty((len(rows), *self.row_shape), np.uint8)
        row_bytes = _nbytes(self.row_shape)
        with open(self.folder / "outputs.u8", "rb") as f:
            start = 0
            while start < len(rows):
                stop = start + 1
                while stop < len(rows) and rows[stop] == rows[stop - 1] + 1:
                    stop += 1
                f.seek(rows[start] * row_bytes)
                f.readinto(memoryview(out[start:stop]).cast("B"))
                start = stop
        return out

    def thumbs(self) -> np.ndarray:
        return _memmap(self.folder / "thumbs.u8", self._thumb_count, self.thumb_shape)

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _lock(folder: Path) -> IO[bytes]:
    """An exclusive lock on `folder` for as long as the returned file stays open."""
    handle = open(folder / "lock", "wb")  # noqa: SIM115 (held open on purpose)
    try:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # not POSIX: no locking
        pass
    except OSError:
        handle.close()
        raise DatasetError(
            f"another `ganvas prepare` is writing to {folder.parent} right now (its work is in"
            f" {folder.name}); wait for it to finish or stop it first"
        ) from None
    return handle


def _memmap(path: Path, count: int, shape: tuple[int, ...]) -> np.ndarray:
    if count == 0:
        return np.zeros((0, *shape), np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r", shape=(count, *shape))


def _nbytes(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
