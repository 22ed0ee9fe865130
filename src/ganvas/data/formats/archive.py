"""zip and tar archives of images (tar gzipped, bzip2'd or xz'd too), read without extracting.

Members are read straight from the archive: a zip member by its entry, a tar member at its
offset (a compressed tar is decompressed as a stream, forward). A tar's plan keeps only where
each chunk's first header is, and its reader walks the headers on from there, so the main
process holds no name or offset per member. Hidden names, folders,
links and macOS `__MACOSX/` litter are skipped; every other member is a candidate, and one
that is not a picture is reported like a stray file in a folder. Zip members are taken in
sorted name order, like a folder; tar members in the order the archive stores them (a tar is
a stream: that order reads it front to back).

Classes come from the folders inside, by the same rule as a folder source (`--labels auto`):
when the members lie in two or more first-level folders and no picture lies outside them,
each folder is a class. A single folder wrapping everything (`wikiart/…`) is looked through.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ganvas.data.formats.base import Chunk, Entry, HandleCache, Plan, chunk_ranges, stat_key
from ganvas.data.sources import looks_like_picture
from ganvas.data.store import DatasetError

_zips = HandleCache(size=4)
_tar_streams = HandleCache(size=2)
COMPRESSIONS = ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open))


def detect_zip(path: Path) -> bool:
    return path.is_file() and zipfile.is_zipfile(path)


def detect_tar(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, tarfile.TarError, lzma.LZMAError, ValueError):
        return False


def _skipped(name: str) -> bool:
    parts = [p for p in name.split("/") if p]
    return not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts)


def folder_labels(names: list[str]) -> tuple[str, list[str] | None]:
    """(prefix to look through, classes or None) of member names, by the folder rule."""
    rule = FolderRule()
    for name in names:
        rule.add(name)
    return rule.result()


class FolderRule:
    """`folder_labels` of names seen one at a time (a tar's members, without keeping them).

    Follows two readings at once: names at face value, and looked through the first name's
    top folder (which counts only if every name lies inside it)."""

    def __init__(self) -> None:
        self.top: str | None = None
        self.one_top = True  # every name so far lies inside folder `top`
        self.folders: tuple[set[str], set[str]] = (set(), set())  # as is, looked through
        self.loose = [False, False]

    def add(self, name: str) -> None:
        top, slash, inside = name.partition("/")
        if self.top is None:
            self.top = top
        if not slash or top != self.top:
            self.one_top = False
        if not looks_like_picture(name):
            return
        for k, rest in enumerate((name, inside)):
            if k == 1 and not self.one_top:
                break
            folder, _, below = rest.partition("/")
            if below:
                self.folders[k].add(folder)
            else:
                self.loose[k] = True

    def result(self) -> tuple[str, list[str] | None]:
        k = 1 if self.top is not None and self.one_top else 0
        prefix = f"{self.top}/" if k else ""
        if len(self.folders[k]) >= 2 and not self.loose[k]:
            return prefix, sorted(self.folders[k])
        return prefix, None


def _label(name: str, prefix: str, classes: list[str] | None) -> str | None:
    if classes is None:
        return None
    folder, _, rest = name[len(prefix) :].partition("/")
    return folder if rest else None


# --- zip -----------------------------------------------------------------------------------


def _open_zip(path: str) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    def make() -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
        try:
            archive = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as err:
            raise DatasetError(f"cannot read zip archive {path} ({err})") from err
        members = [i for i in archive.infolist() if not i.is_dir() and not _skipped(i.filename)]
        members.sort(key=lambda info: info.filename)
        return archive, members

    return _zips.get(stat_key(path), make, lambda item: item[0].close())


def plan_zip(path: Path, per_chunk: int) -> Plan:
    _, members = _open_zip(str(path))
    if not members:
        raise DatasetError(f"zip archive {path} holds no files (hidden files are ignored)")
    prefix, classes = folder_labels([m.filename for m in members])
    chunks = [Chunk(a, b) for a, b in chunk_ranges(len(members), per_chunk)]
    note = f"zip archive {path.name}: {len(members)} files"
    note += f", {len(classes)} classes from its folders" if classes else ""
    return Plan("zip", classes, chunks, str(path), note=note,
                details={"prefix": prefix, "classes": classes})  # fmt: skip


def read_zip(path: str, chunk: Chunk, details: dict) -> Iterator[Entry]:
    archive, members = _open_zip(path)
    for info in members[chunk.start : chunk.stop]:
        name = "/" + info.filename
        label = _label(info.filename, details["prefix"], details["classes"])
        try:
            data = archive.read(info)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as err:
            # A bad CRC, an unknown compression method, a member cut short.
            yield Entry(name, None, label, f"cannot read archive member ({err})")
            continue
        yield Entry(name, data, label)


# --- tar -----------------------------------------------------------------------------------


def _opener(path: str):
    with open(path, "rb") as f:
        head = f.read(6)
    for magic, opener in COMPRESSIONS:
        if head.startswith(magic):
            return opener
    return open


@functools.lru_cache(maxsize=4)
def _tar_index(key: tuple[str, int, int]) -> tuple[tuple[str, int, int], ...]:
    """(name, data offset, size) of each regular file in a tar, in stored order (for tars of
    a few members: CIFAR's batches)."""
    try:
        return tuple(
            (m.name, m.offset_data, m.size) if m.offset >= 0 else ("", -1, 0)
            for m in _tar_walk(key[0], 0)
        )
    finally:
        _tar_streams.drop(key)


def tar_members(path: Path) -> tuple[tuple[str, int, int], ...]:
    """The regular files of a tar (cached per file version); a final ('', -1, 0) marks damage."""
    return _tar_index(stat_key(str(path)))


_DAMAGED = tarfile.TarInfo("")
_DAMAGED.offset = -1


def _tar_walk(path: str, position: int) -> Iterator[tarfile.TarInfo]:
    """The regular, not hidden files of a tar from the header at `position` on; a member with
    offset -1 marks damage (nothing after it could be listed). Keeps no member it has passed,
    unlike iterating a TarFile, which lists them all."""
    try:
        archive = tarfile.TarFile(fileobj=_tar_stream(path, position), mode="r")
    except (OSError, EOFError, tarfile.TarError, lzma.LZMAError, zlib.error) as err:
        if position == 0:
            raise DatasetError(f"cannot read tar archive {path} ({err})") from err
        _tar_streams.drop(stat_key(path))
        yield _DAMAGED
        return
    while True:
        try:
            member = archive.next()
        except (OSError, EOFError, tarfile.TarError, lzma.LZMAError, zlib.error):
            _tar_streams.drop(stat_key(path))
            yield _DAMAGED  # a tar cut short: the members before the damage are still good
            return
        if member is None:
            return
        archive.members.clear()
        if member.isfile() and not _skipped(member.name):
            yield member


def plan_tar(path: Path, per_chunk: int) -> Plan:
    """One pass over the headers; each chunk keeps the header offset of its first member."""
    starts: list[int] = []  # header offset of each chunk's first member
    count = good = 0
    rule = FolderRule()
    try:
        for member in _tar_walk(str(path), 0):
            if count % per_chunk == 0:
                starts.append(member.offset)
            count += 1
            if member.offset >= 0:
                good += 1
                rule.add(member.name)
    finally:
        _tar_streams.drop(stat_key(str(path)))
    if not good:
        why = "that can be read" if count else "(hidden files are ignored)"
        raise DatasetError(f"tar archive {path} holds no files {why}")
    prefix, classes = rule.result()
    chunks = [Chunk(a, b, (starts[k],)) for k, (a, b) in enumerate(chunk_ranges(count, per_chunk))]
    note = f"tar archive {path.name}: {good} files"
    note += f", {len(classes)} classes from its folders" if classes else ""
    return Plan("tar", classes, chunks, str(path), note=note,
                details={"prefix": prefix, "classes": classes})  # fmt: skip


def _tar_stream(path: str, position: int) -> IO[bytes]:
    """A binary stream of the (decompressed) tar positioned at `position`."""
    key = stat_key(path)
    opener = _opener(path)
    state = _tar_streams.get(key, lambda: {"file": opener(path, "rb")}, lambda s: s["file"].close())
    if opener is not open and state["file"].tell() > position:
        state["file"].close()  # compressed streams seek forward only, cheaply
        state["file"] = opener(path, "rb")
    state["file"].seek(position)
    return state["file"]


def read_tar(path: str, chunk: Chunk, details: dict) -> Iterator[Entry]:
    (position,) = chunk.token
    members = _tar_walk(path, position) if position >= 0 else iter([_DAMAGED])
    done = 0
    for member in members:
        if done == chunk.count:
            break
        done += 1
        if member.offset < 0:
            yield Entry("#damaged", None, None, "tar archive is damaged or cut short here;"
                        " the members after this point could not be listed")  # fmt: skip
            return
        name, label = member.name, _label(member.name, details["prefix"], details["classes"])
        try:
            data = _tar_stream(path, member.offset_data).read(member.size)
        except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as err:
            _tar_streams.drop(stat_key(path))
            yield Entry("/" + name, None, label, f"cannot read archive member ({err})")
            return  # the stream is gone: the walk cannot go on
        if len(data) < member.size:
            yield Entry("/" + name, None, label, "archive member cut short")
            continue
        yield Entry("/" + name, data, label)
    for k in range(done, chunk.count):  # members that vanished since the plan
        yield Entry(f"#{chunk.start + k}", None, None, "member missing (the archive changed)")


def read_tar_member(path: str, offset: int, size: int) -> bytes:
    """The bytes of one tar member (for formats stored in a tar: CIFAR's pickled batches)."""
    data = _tar_stream(path, offset).read(size)
    if len(data) < size:
        raise EOFError(f"member cut short ({len(data)} of {size} bytes)")
    return data
