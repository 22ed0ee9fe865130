"""Resumable scanning: what `prepare` has already read survives an interruption.

The work folder sits beside the dataset being made (`.<name>.prepare-work`) and holds

    settings.json   the `ScanSettings` the pixels were made with (a mismatch starts over)
    outputs.u8      output images, raw uint8 rows appended in the order units finished
    thumbs.u8       one small thumbnail per decoded picture, for contact sheets
    journal.jsonl   one line per finished unit: its key, items, and where its rows are

Rows reach the disk (fsync) before the journal line that points at them, so after a crash or
a kill every journal line refers to complete rows; rows past the last line are cut off when
the work is reopened. A finished `prepare` deletes the folder.

In memory the journal keeps one `UnitRecord` per unit: numpy columns of its pictures (outputs,
labels, filter measurements) and the few reasons for failures, never a Python object per
picture, so 3 million LSUN entries cost tens of bytes each. Picture names stay on disk, in
the unit's journal line, read back for the few that need one (`item_names`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ganvas.data.scan import ScanSettings, UnitResult
from ganvas.data.store import DatasetError

JOURNAL_VERSION = 1
# How often finished units are made durable; a kill loses at most this much work.
SYNC_SECONDS_VARIABLE = "GANVAS_PREPARE_SYNC_SECONDS"
DEFAULT_SYNC_SECONDS = 2.0


# The filter measurements of one picture (see scan._measure); blank: code in `blank_kinds`.
MEASURES = np.dtype([("blank", "i1"), ("text", "?"), ("sharpness", "f8"),
                     ("grey", "?"), ("hash", "u8")])  # fmt: skip


def work_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.prepare-work"


@dataclass
class UnitRecord:
    """One finished unit, as columns over its pictures (items) in scan order."""

    key: str
    row0: int  # its first output row in outputs.u8
    thumb0: int  # its first thumbnail in thumbs.u8
    rows: np.ndarray  # int32 [items]: outputs of each picture (0: none)
    reasons: dict[int, str]  # item → why it gave no picture (failures only: few)
    labels: np.ndarray | None  # int32 [items]: code in `ScanJournal.class_names`, -1 none
    measures: np.ndarray | None  # MEASURES [items], when the scan measured
    line: int  # byte offset of its line in journal.jsonl (where the names are)

    @property
    def items(self) -> int:
        return len(self.rows)


class ScanJournal:
    """Append-only store of scanned units; `entries` maps unit key → its `UnitRecord`."""

    def __init__(self, folder: Path, settings: ScanSettings, resume: bool = True) -> None:
        self.folder = folder
        self.row_shape = (settings.size, settings.size, settings.channels)
        self.thumb_shape = (settings.thumb_side, settings.thumb_side, settings.channels)
        self.entries: dict[str, UnitRecord] = {}
        self.class_names: list[str] = []  # what `UnitRecord.labels` codes stand for
        self.blank_kinds: list[str] = []  # what `MEASURES["blank"]` codes (>= 0) stand for
        self._codes: dict[tuple[str, str], int] = {}
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
        self._journal = open(folder / "journal.jsonl", "ab")  # noqa: SIM115
        self._pending: list[bytes] = []
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
        rows = thumbs = good_bytes = 0
        if journal.exists():
            with open(journal, "rb") as f:  # line by line: the file grows with the collection
                for line in f:
                    try:
                        if not line.endswith(b"\n"):
                            raise ValueError("torn line")
                        entry = json.loads(line)
                        items = entry["items"]
                        row_end = entry["row0"] + sum(item["rows"] for item in items)
                        thumb_end = entry["thumb0"] + sum(1 for i in items if i["rows"])
                    except (ValueError, KeyError, TypeError):
                        break  # a line cut short by the interruption: it and what follows are redone
                    if row_end > rows_on_disk or thumb_end > thumbs_on_disk:
                        break
                    self.entries[entry["key"]] = self._record(entry, good_bytes)
                    rows, thumbs = max(rows, row_end), max(thumbs, thumb_end)
                    good_bytes += len(line)
        self._rows, self._thumb_count = rows, thumbs
        for name, count, nbytes in (
            ("outputs.u8", rows, row_bytes),
            ("thumbs.u8", thumbs, thumb_bytes),
            ("journal.jsonl", good_bytes, 1),
        ):
            with open(self.folder / name, "ab") as f:
                f.truncate(count * nbytes)
        self._journal_bytes = good_bytes

    def _code(self, table: list[str], kind: str, value: str) -> int:
        code = self._codes.get((kind, value))
        if code is None:
            code = self._codes[(kind, value)] = len(table)
            table.append(value)
        return code

    def _record(self, entry: dict[str, Any], line: int) -> UnitRecord:
        """The columns of a journal entry (its items' names are left on disk)."""
        items = entry["items"]
        reasons = {k: item["reason"] for k, item in enumerate(items) if item["reason"]}
        labels = None
        if any("class" in item for item in items):
            labels = np.array(
                [self._code(self.class_names, "class", item["class"]) if item.get("class")
                 is not None else -1 for item in items], np.int32)  # fmt: skip
        measures = None
        if any("hash" in item for item in items):
            measures = np.zeros(len(items), MEASURES)
            measures["blank"] = -1
            for k, item in enumerate(items):
                if "hash" in item:
                    blank = item["blank"]
                    code = -1 if not blank else self._code(self.blank_kinds, "blank", blank)
                    measures[k] = (code, item["text"], item["sharpness"], item["grey"],
                                   int(item["hash"], 16))  # fmt: skip
        return UnitRecord(
            key=entry["key"],
            row0=entry["row0"],
            thumb0=entry["thumb0"],
            rows=np.array([item["rows"] for item in items], np.int32),
            reasons=reasons,
            labels=labels,
            measures=measures,
            line=line,
        )

    def add(self, result: UnitResult) -> UnitRecord:
        """Store one finished unit; returns its record."""
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
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        record = self._record(entry, self._journal_bytes)
        self._journal_bytes += len(line)
        self.entries[result.key] = record
        self._pending.append(line)
        if time.monotonic() - self._last_sync >= self._sync_seconds:
            self.sync()
        return record

    def item_names(self, record: UnitRecord) -> list[str]:
        """The names of a unit's pictures, read back from its journal line."""
        if self._pending:
            self.sync()
        with open(self.folder / "journal.jsonl", "rb") as f:
            f.seek(record.line)
            entry = json.loads(f.readline())
        assert entry["key"] == record.key, (entry["key"], record.key)
        return [item["name"] for item in entry["items"]]

    def sync(self) -> None:
        """Make the stored rows durable, then the journal lines that point at them."""
        for f in (self._outputs, self._thumbs):
            f.flush()
            os.fsync(f.fileno())
        if self._pending:
            self._journal.write(b"".join(self._pending))
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

    def read_rows(self, rows: np.ndarray | list[int]) -> np.ndarray:
        """Output rows by number, read with plain file reads (runs of neighbours at once)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.row_shape), np.uint8)
        row_bytes = _nbytes(self.row_shape)
        # Where a run of consecutive row numbers starts and stops: [runs + 1] positions.
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(rows) != 1) + 1, [len(rows)]])
        with open(self.folder / "outputs.u8", "rb") as f:
            for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
                if start == stop:
                    continue
                f.seek(int(rows[start]) * row_bytes)
                f.readinto(memoryview(out[start:stop]).cast("B"))
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
