"""Where `prepare`'s pictures come from: folders, single files, list files, videos, containers.

A source on the command line is a folder (walked recursively, hidden names ignored), an image
or video file, or a list file (.txt / .lst: one path per line, relative to the list's folder
or absolute; blank lines and lines starting with '#' are skipped). Every file found becomes a
`SourceFile`; video files (by extension) are later cut into frames. A source that is a dataset
container (a CIFAR tarball, an idx file, an LMDB, a zip or tar, a Hugging Face folder or parquet
file: see `ganvas.data.formats`, recognised by content) is one `SourceFile` of many pictures.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from ganvas.data.store import DatasetError

LIST_EXTENSIONS = (".txt", ".lst")
# Kept here (not imported from video.py) so listing files never needs PyAV.
VIDEO_EXTENSIONS = (
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".mpg",
    ".mpeg",
    ".ts",
    ".wmv",
    ".flv",
    ".ogv",
)


@dataclass(frozen=True)
class SourceFile:
    """One file to read: which source it came from and its name relative to that source."""

    source: int  # index of the source on the command line
    rel: str  # posix path relative to the source folder (or as written in a list file)
    path: str  # absolute path
    container: str | None = None  # a dataset format holding many pictures (formats.FORMATS)

    @property
    def is_video(self) -> bool:
        return self.container is None and self.rel.lower().endswith(VIDEO_EXTENSIONS)

    @property
    def name(self) -> str:
        """'source index:relative path', the name the manifest uses."""
        return f"{self.source}:{self.rel}"


def looks_like_picture(name: str) -> bool:
    """Whether a file name has the extension of an image Pillow opens, or of a video."""
    suffix = os.path.splitext(name)[1].lower()
    return suffix in VIDEO_EXTENSIONS or suffix in _image_extensions()


@functools.cache
def _image_extensions() -> frozenset[str]:
    from PIL import Image

    return frozenset(
        ext for ext, kind in Image.registered_extensions().items() if kind in Image.OPEN
    )


def check_sources(sources: list[str]) -> list[Path]:
    """Absolute paths of the sources; each must exist and be named once."""
    if not sources:
        raise DatasetError("no sources given: name at least one folder of images")
    roots: list[Path] = []
    for source in sources:
        root = Path(source).expanduser()
        if not root.exists():
            raise DatasetError(f"source {root} does not exist")
        root = root.resolve()
        if root in roots:
            raise DatasetError(f"source {root} is listed twice")
        roots.append(root)
    return roots


def is_list_file(root: Path) -> bool:
    return root.is_file() and root.suffix.lower() in LIST_EXTENSIONS


def collect_files(roots: list[Path], out: Path) -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """Every candidate file of every source, in source order then sorted path order, and the
    (path, reason) of folders that could not be read or listed files that do not exist."""
    skip = set()
    if out.is_dir():
        # A previous dataset written inside a source must not be read back as images.
        stat = out.stat()
        skip.add((stat.st_dev, stat.st_ino))
    files: list[SourceFile] = []
    errors: list[tuple[str, str]] = []
    from ganvas.data.formats import detect

    for index, root in enumerate(roots):
        container = None if is_list_file(root) else detect(root)
        if container is not None:
            found = [SourceFile(index, root.name, str(root), container)]
        elif is_list_file(root):
            found = _read_list(index, root, skip, errors)
        elif root.is_dir():
            rels, walk_errors = walk(root, skip)
            errors.extend(walk_errors)
            found = [SourceFile(index, rel, str(root.joinpath(*rel.split("/")))) for rel in rels]
        else:
            found = [SourceFile(index, root.name, str(root))]
        if not found:
            raise DatasetError(f"{root} holds no files (hidden files are ignored)")
        files.extend(found)
    return files, errors


def _read_list(
    index: int, list_file: Path, skip: set[tuple[int, int]], errors: list[tuple[str, str]]
) -> list[SourceFile]:
    try:
        lines = list_file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read list file {list_file} ({err})") from err
    found: list[SourceFile] = []
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        rel = entry.replace("\\", "/")
        path = Path(rel).expanduser()
        if not path.is_absolute():
            path = list_file.parent / path
        if path.is_dir():
            rels, walk_errors = walk(path, skip)
            errors.extend(walk_errors)
            found.extend(
                SourceFile(index, f"{rel.rstrip('/')}/{sub}", str(path.joinpath(*sub.split("/"))))
                for sub in rels
            )
        elif path.exists():
            found.append(SourceFile(index, rel, str(path)))
        else:
            errors.append((str(path), f"listed file not found ({list_file.name} line {number})"))
    return found


def walk(root: Path, skip: set[tuple[int, int]]) -> tuple[list[str], list[tuple[str, str]]]:
    """Non-hidden files under `root` as sorted relative posix paths, plus unreadable folders.

    Symlinked folders are followed, but each real folder is visited once, so links that loop
    back (or point at a folder already walked) add nothing.
    """
    files: list[tuple[str, ...]] = []
    errors: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set(skip)
    stack: list[tuple[Path, tuple[str, ...]]] = [(root, ())]
    while stack:
        folder, parts = stack.pop()
        try:
            stat = folder.stat()
            key = (stat.st_dev, stat.st_ino)
            if key in seen:
                continue
            seen.add(key)
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as err:
            if not parts:
                raise DatasetError(f"cannot read source folder {root} ({err.strerror})") from err
            errors.append((str(folder), f"cannot read folder ({err.strerror or err})"))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                subfolders.append((Path(entry.path), (*parts, entry.name)))
            else:
                files.append((*parts, entry.name))
        stack.extend(reversed(subfolders))
    files.sort()
    return ["/".join(parts) for parts in files], errors
