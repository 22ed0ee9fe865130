"""LSUN-style LMDB databases: keys → encoded images (JPEG, WebP, PNG…), via the `lmdb` package.

A source is the database folder (holding data.mdb) or the data.mdb file itself. Entries are
read in key order, streamed: planning walks the keys once without touching the values and
keeps only every chunk's first key, and each chunk seeks to its first key and reads on, so
neither the keys nor the images of a 3-million-image LSUN category are ever all in memory.
LMDB carries no labels.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ganvas.data.formats.base import Chunk, Entry, HandleCache, Plan, stat_key
from ganvas.data.store import DatasetError

LMDB_MAGIC = 0xBEEFC0DE
_envs = HandleCache(size=4)  # an environment may be opened only once per process


def data_file(path: Path) -> Path:
    return path / "data.mdb" if path.is_dir() else path


def detect(path: Path) -> bool:
    """Whether `path` is an LMDB database (its meta page's magic number), folder or file."""
    file = data_file(path)
    try:
        with open(file, "rb") as f:
            head = f.read(32)
    except OSError:
        return False
    # The first page holds a 16-byte page header, then the meta record, which starts with
    # the magic number (native byte order; LMDB files are not portable across endianness).
    return len(head) >= 20 and struct.unpack("=I", head[16:20])[0] == LMDB_MAGIC


def _env(path: str) -> Any:
    try:
        import lmdb
    except ImportError as err:
        raise DatasetError(
            f"reading the LMDB {path} needs the lmdb package: pip install 'ganvas[formats]'"
        ) from err

    def make() -> Any:
        folder = Path(path).is_dir()
        try:
            return lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False,
                             subdir=folder, max_readers=1)  # fmt: skip
        except lmdb.Error as err:
            raise DatasetError(f"cannot open LMDB {path} ({err})") from err

    return _envs.get(stat_key(str(data_file(Path(path)))), make, lambda env: env.close())


def _key_name(key: bytes) -> str:
    try:
        text = key.decode("ascii")
    except UnicodeDecodeError:
        return "#key=0x" + key.hex()
    if text.isprintable() and "/" not in text:
        return "#key=" + text
    return "#key=0x" + key.hex()


def plan(path: Path, per_chunk: int) -> Plan:
    """One pass over the keys (values untouched); each chunk keeps its first key only."""
    env = _env(str(path))
    chunks: list[Chunk] = []
    count = 0
    with env.begin(buffers=False) as txn:
        cursor = txn.cursor()
        first: bytes | None = None
        for key in cursor.iternext(keys=True, values=False):
            if count % per_chunk == 0:
                if first is not None:
                    chunks.append(Chunk(count - per_chunk, count, (first,)))
                first = bytes(key)
            count += 1
        if first is not None:
            start = (count - 1) // per_chunk * per_chunk
            chunks.append(Chunk(start, count, (first,)))
    if not count:
        raise DatasetError(f"LMDB {path} holds no entries")
    note = f"LMDB {path.name}: {count} entries"
    return Plan("lmdb", None, chunks, str(data_file(path)), note=note)


def read(path: str, chunk: Chunk, details: dict) -> Iterator[Entry]:
    env = _env(path)
    (first,) = chunk.token
    with env.begin(buffers=False) as txn:
        cursor = txn.cursor()
        found = cursor.set_key(first)
        done = 0
        while found and done < chunk.count:
            key, value = cursor.item()
            yield Entry(_key_name(bytes(key)), bytes(value))
            done += 1
            found = cursor.next()
    for k in range(done, chunk.count):  # keys that vanished since the plan
        yield Entry(f"#{chunk.start + k}", None, None, "entry missing (the database changed)")
