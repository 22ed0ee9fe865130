"""What every dataset format gives `prepare`: a plan of chunks, then the entries of a chunk.

A *container* is one source that holds many pictures: a CIFAR tarball, an MNIST idx file, an
LMDB, a zip or tar archive, a Hugging Face `datasets` folder or parquet file. Planning it (in
the main process, cheaply: headers, member lists, keys) cuts it into `Chunk`s of a few hundred
entries; each chunk becomes one unit of `prepare`'s scan, read in a worker process like the
frames of a stretch of film. Plans hold only chunk boundaries, so the main process never holds
the pictures, nor (for LMDB) even the keys of all of them.

Runs inside `prepare`'s worker processes: standard library, numpy and Pillow only at import;
each format imports its own package (lmdb, pyarrow) when it is used.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """Entries `start` .. `stop` - 1 of a container, and what a reader needs to find them."""

    start: int
    stop: int
    token: tuple = ()  # format-specific and small: a first key, member offsets, a batch name

    @property
    def count(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Plan:
    """How one container is read: its classes (None: it carries no labels) and its chunks."""

    format: str  # "cifar", "idx", "lmdb", "zip", "tar", "hf"
    classes: list[str] | None
    chunks: list[Chunk]
    identity: str  # the file whose size and modification time stand for the content
    options: tuple = ()  # reader options that change the entries (part of the resume key)
    note: str = ""  # what the reader made of it, for the summary
    details: dict[str, Any] = field(default_factory=dict)  # small, picklable, for the reader


@dataclass
class Entry:
    """One picture of a container: encoded bytes or raw pixels, or why there is none."""

    name: str  # appended to the container's manifest name: '/cat/1.png', '#key=00a1'
    data: bytes | np.ndarray | None
    label: str | None = None  # class name; None: unlabelled
    error: str | None = None  # why this entry gives no picture (data is None then)


def chunk_ranges(count: int, per_chunk: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive chunks of at most `per_chunk` entries covering `count`."""
    per_chunk = max(1, per_chunk)
    return [(a, min(a + per_chunk, count)) for a in range(0, count, per_chunk)]


class HandleCache:
    """Open files, archives and environments kept per process between chunks (at most a few):
    reopening a zip reads its whole central directory, an LMDB may be open once per process.
    `close_all_handles` closes what every cache holds (prepare calls it when done)."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._items: collections.OrderedDict[Any, tuple[Any, Callable | None]] = (
            collections.OrderedDict()
        )
        _CACHES.append(self)

    def get(
        self, key: Any, make: Callable[[], Any], close: Callable[[Any], None] | None = None
    ) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key][0]
        value = make()
        self._items[key] = (value, close)
        while len(self._items) > self.size:
            self.drop(next(iter(self._items)))
        return value

    def drop(self, key: Any) -> None:
        """Forget (and close) what `key` holds."""
        value, close = self._items.pop(key, (None, None))
        if close is not None:
            with contextlib.suppress(Exception):
                close(value)

    def clear(self) -> None:
        for key in list(self._items):
            self.drop(key)


_CACHES: list[HandleCache] = []


def close_all_handles() -> None:
    """Close every file, archive and database the format readers keep open in this process."""
    for cache in _CACHES:
        cache.clear()


def stat_key(path: str) -> tuple[str, int, int]:
    """Identity of a file's content for caches: path, size, modification time."""
    info = os.stat(path)
    return (path, info.st_size, info.st_mtime_ns)
