"""MNIST, Fashion-MNIST and EMNIST: idx files, gzipped or not, with their label files.

An idx file starts with two zero bytes, a type byte (0x08: unsigned bytes), the number of
dimensions, then each dimension as a big-endian int32; the values follow, row-major. An image
file is [N, rows, cols]; its label file, [N], lies beside it with 'labels-idx1' where the
image file has 'images-idx3' (`train-images-idx3-ubyte.gz` → `train-labels-idx1-ubyte.gz`).
Classes are the label numbers ('0' … '9'); EMNIST's `emnist-<split>-mapping.txt` beside the
files names them by their characters. EMNIST stores its images transposed: they are turned
upright (files whose name starts with 'emnist').
"""

from __future__ import annotations

import gzip
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ganvas.data.formats.base import Chunk, Entry, HandleCache, Plan, chunk_ranges, stat_key
from ganvas.data.store import DatasetError

GZIP_MAGIC = b"\x1f\x8b"
TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int",
         0x0D: "float", 0x0E: "double"}  # fmt: skip
_streams = HandleCache(size=2)


def _open(path: str) -> IO[bytes]:
    with open(path, "rb") as f:
        gzipped = f.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else open(path, "rb")  # noqa: SIM115


def read_header(path: str) -> tuple[int, tuple[int, ...], int] | None:
    """(type code, dimensions, header bytes) of an idx file, or None when it is not one."""
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in TYPES:
                return None
            dims = head[3]
            if not 1 <= dims <= 4:
                return None
            raw = f.read(4 * dims)
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if len(raw) < 4 * dims:
        return None
    shape = struct.unpack(f">{dims}i", raw)
    if any(s < 0 for s in shape):
        return None
    return head[2], tuple(shape), 4 + 4 * dims


def detect(path: Path) -> bool:
    """Whether `path` is an idx file (by its header, gzipped or not)."""
    return path.is_file() and read_header(str(path)) is not None


def labels_file_of(path: Path) -> Path | None:
    """The label file beside an image file (gzipped or not), if there is one."""
    name = path.name
    if "images-idx3" not in name and "images.idx3" not in name:
        return None
    base = name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
    stem = base[:-3] if base.endswith(".gz") else base
    for candidate in (path.with_name(base), path.with_name(stem), path.with_name(stem + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _class_names(path: Path, labels: np.ndarray) -> list[str]:
    """Names of label values 0 … max: EMNIST's mapping file's characters, else the numbers."""
    top = int(labels.max()) if len(labels) else 0
    width = len(str(top))
    names = [f"{k:0{width}d}" for k in range(top + 1)]  # zero-padded: sorts as numbers do
    found = re.match(r"(emnist-[a-z]+)-", path.name)
    mapping = path.with_name(f"{found.group(1)}-mapping.txt") if found else None
    if mapping is not None and mapping.is_file():
        chars: dict[int, str] = {}
        for line in mapping.read_text().split("\n"):
            parts = line.split()
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                chars[int(parts[0])] = chr(int(parts[1]))
        if len(set(chars.values())) == len(chars):
            names = [chars.get(k, names[k]) for k in range(top + 1)]
    return names


def plan(path: Path, per_chunk: int) -> Plan:
    """Chunks of an idx image file; each carries its own labels (one byte per image)."""
    header = read_header(str(path))
    if header is None:
        raise DatasetError(f"{path} is not an idx file")
    code, shape, offset = header
    if len(shape) == 1:
        raise DatasetError(
            f"{path} is an idx label file ({shape[0]} labels); pass the image file"
            " (…-images-idx3-ubyte[.gz]) and its labels are found beside it"
        )
    if code != 0x08:
        raise DatasetError(f"{path} holds {TYPES[code]} values; only 8-bit images can be read")
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3)):
        raise DatasetError(f"{path} holds an idx array of shape {shape}, not images [N, H, W]")
    count = shape[0]
    labels_path = labels_file_of(path)
    labels = None
    classes = None
    note = f"idx images {path.name}: {count} of {shape[1]}x{shape[2]}"
    if labels_path is not None:
        labels = _read_labels(labels_path, count)
        classes = _class_names(path, labels)
        note += f", labels from {labels_path.name}"
    else:
        note += " (no label file beside it: unlabelled)"
    chunks = []
    for a, b in chunk_ranges(count, per_chunk):
        token = () if labels is None else (labels[a:b].tobytes(),)
        chunks.append(Chunk(a, b, token))
    details = {"shape": shape, "offset": offset, "classes": classes,
               "transpose": path.name.lower().startswith("emnist")}  # fmt: skip
    return Plan("idx", classes, chunks, str(path), note=note, details=details)


def _read_labels(path: Path, count: int) -> np.ndarray:
    header = read_header(str(path))
    if header is None or len(header[1]) != 1 or header[0] != 0x08:
        raise DatasetError(f"{path} is not an idx label file (8-bit, one dimension)")
    _, (n,), offset = header
    if n != count:
        raise DatasetError(f"{path} holds {n} labels but its image file holds {count} images")
    with _open(str(path)) as f:
        f.read(offset)
        data = f.read(n)
    if len(data) < n:
        raise DatasetError(f"{path} is truncated: {len(data)} of {n} labels")
    return np.frombuffer(data, np.uint8)


def read(path: str, chunk: Chunk, details: dict) -> Iterator[Entry]:
    """The images of one chunk, with their labels; images past a truncation are reported."""
    shape, offset = details["shape"], details["offset"]
    image_bytes = int(np.prod(shape[1:]))
    classes = details["classes"]
    labels = np.frombuffer(chunk.token[0], np.uint8) if chunk.token else None
    position = offset + chunk.start * image_bytes
    key = stat_key(path)
    state = _streams.get(key, lambda: {"file": _open(path)}, lambda s: s["file"].close())
    images: list[bytes] = []
    cause = ""
    try:
        if state["file"].tell() > position:  # a gzip stream seeks forward only, cheaply
            state["file"].close()
            state["file"] = _open(path)
        state["file"].seek(position)
        for _ in range(chunk.count):  # one image at a time: a truncation keeps those before
            data = state["file"].read(image_bytes)
            if len(data) < image_bytes:
                break
            images.append(data)
    except (OSError, EOFError, ValueError) as err:  # gzip.BadGzipFile is an OSError
        _streams.drop(key)
        cause = f" ({err})"
    for k in range(chunk.count):
        index = chunk.start + k
        label = None
        if labels is not None:
            value = int(labels[k])
            label = classes[value] if value < len(classes) else str(value)
        if k >= len(images):
            error = f"idx file ends early: image {index} of {shape[0]} is missing{cause}"
            yield Entry(f"#{index}", None, label, error)
            continue
        image = np.frombuffer(images[k], np.uint8).reshape(shape[1:])
        if details["transpose"] and image.ndim == 2:
            image = image.T
        yield Entry(f"#{index}", np.ascontiguousarray(image), label)
