"""CIFAR-10 and CIFAR-100, the python version: `cifar-10-python.tar.gz`, `cifar-100-python.tar.gz`.

The tarball holds pickled batches, each a dict of 'data' (uint8 [N, 3072]: the red plane,
then green, then blue, of 32×32 images), the labels ('labels'; CIFAR-100: 'fine_labels' and
'coarse_labels') and 'filenames', beside a meta pickle naming the classes ('batches.meta':
'label_names'; CIFAR-100's 'meta': 'fine_label_names', 'coarse_label_names').

A pickle can name any Python callable and have it called while loading, so an archive from
anywhere must not be unpickled as it is. These are read with `RestrictedUnpickler`, which
builds dicts, lists, tuples, strings, bytes and numbers itself and admits, of everything a
pickle can name, only what a numpy array needs to be rebuilt (`numpy.core.multiarray.
_reconstruct`, `numpy.ndarray`, `numpy.dtype`, and `_codecs.encode` of latin-1 text, which
Python 3 writes for bytes in protocol-2 pickles). A pickle naming anything else is refused
before that thing is even looked up.
"""

from __future__ import annotations

import _codecs
import importlib
import io
import pickle
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ganvas.data.formats.archive import read_tar_member, tar_members
from ganvas.data.formats.base import Chunk, Entry, HandleCache, Plan, chunk_ranges, stat_key
from ganvas.data.store import DatasetError

TRAIN_BATCHES = ("data_batch_", "train")
TEST_BATCHES = ("test_batch", "test")
META_NAMES = ("batches.meta", "meta")
_batches = HandleCache(size=1)  # the last batch read, per process (CIFAR-100's train: 150 MB)


class PickleRefused(pickle.UnpicklingError):
    """A pickle names something outside what `RestrictedUnpickler` admits."""


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """`_codecs.encode` for the one use pickles of bytes make of it: latin-1 text → bytes."""
    if not isinstance(text, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise PickleRefused(f"refusing _codecs.encode({type(text).__name__}, {encoding!r})")
    return _codecs.encode(text, "latin-1", errors)


def _numpy_reconstruct() -> Any:
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy has no multiarray._reconstruct")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays; refuses every other global a pickle names."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")):  # fmt: skip
            return _numpy_reconstruct()
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise PickleRefused(f"the pickle asks for {module}.{name}, which is not plain data")

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRefused("the pickle refers to persistent objects")


def restricted_loads(data: bytes) -> Any:
    """Unpickle `data` with `RestrictedUnpickler` (Python 2 strings read as latin-1).

    Raises:
        PickleRefused: the pickle names a callable or class that is not admitted.
        pickle.UnpicklingError, EOFError, ValueError: a damaged pickle.
    """
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def _plain_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in value.items()}
    return value


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _find_layout(path: Path) -> tuple[str, dict[str, tuple[int, int]]] | None:
    """(meta member name, {member name: (offset, size)}) when the tar is laid out as CIFAR."""
    members = {name: (offset, size) for name, offset, size in tar_members(path) if offset >= 0}
    for name in members:
        base = posixpath.basename(name)
        if base not in META_NAMES:
            continue
        folder = posixpath.dirname(name)
        siblings = {posixpath.basename(n) for n in members if posixpath.dirname(n) == folder}
        batches = [s for s in siblings if s.startswith(TRAIN_BATCHES + TEST_BATCHES)]
        if batches:
            return name, members
    return None


def detect(path: Path) -> bool:
    """Whether a tar holds CIFAR's layout: a meta pickle naming classes beside the batches."""
    layout = _find_layout(path)
    if layout is None:
        return False
    meta_name, members = layout
    try:
        meta = _plain_keys(restricted_loads(read_tar_member(str(path), *members[meta_name])))
    except (pickle.UnpicklingError, EOFError, ValueError, OSError):
        return True  # the layout is CIFAR's; plan() says what is wrong with the meta file
    return isinstance(meta, dict) and any(k.endswith("label_names") for k in meta)


def plan(path: Path, per_chunk: int, split: str = "train", coarse: bool = False) -> Plan:
    """Chunks of the chosen batches ('train', 'test' or 'all'); the classes from the meta file.

    Raises:
        DatasetError: not CIFAR's layout, a meta file or batch that names code to run, labels
            that do not match the meta file.
    """
    layout = _find_layout(path)
    if layout is None:
        raise DatasetError(f"{path} is not a CIFAR python tarball (no batches.meta or meta)")
    meta_name, members = layout
    folder = posixpath.dirname(meta_name)
    meta = _load_member(path, meta_name, members[meta_name])
    cifar100 = "fine_label_names" in meta
    key = ("coarse_label_names" if coarse else "fine_label_names") if cifar100 else "label_names"
    if key not in meta:
        raise DatasetError(f"{path}: {meta_name} has no {key!r}; its keys: {sorted(meta)}")
    names = [_text(n) for n in meta[key]]
    prefixes = {"train": TRAIN_BATCHES, "test": TEST_BATCHES, "all": TRAIN_BATCHES + TEST_BATCHES}
    wanted = sorted(
        n for n in members
        if posixpath.dirname(n) == folder and posixpath.basename(n).startswith(prefixes[split])
        and posixpath.basename(n) not in META_NAMES
    )  # fmt: skip
    if not wanted:
        raise DatasetError(f"{path} holds no {split} batches")
    label_key = ("coarse_labels" if coarse else "fine_labels") if cifar100 else "labels"
    chunks: list[Chunk] = []
    start = 0
    for member in wanted:
        try:
            batch = _load_member(path, member, members[member])
            count = len(batch["data"])
        except DatasetError as err:
            if isinstance(err.__cause__, PickleRefused):
                raise
            chunks.append(Chunk(start, start + 1, (member, *members[member], 0, str(err))))
            start += 1
            continue
        except (KeyError, TypeError) as err:
            reason = f"not a CIFAR batch ({type(err).__name__}: {err})"
            chunks.append(Chunk(start, start + 1, (member, *members[member], 0, reason)))
            start += 1
            continue
        del batch
        for a, b in chunk_ranges(count, per_chunk):
            chunks.append(Chunk(start + a, start + b, (member, *members[member], a, "")))
        start += count
    kind = "CIFAR-100" if cifar100 else "CIFAR-10"
    labels = ("coarse" if coarse else "fine") + " labels" if cifar100 else "labels"
    note = f"{kind} {path.name}: {split} batches ({', '.join(posixpath.basename(w) for w in wanted)}), {len(names)} classes ({labels})"
    return Plan("cifar", names, chunks, str(path), options=(split, coarse), note=note,
                details={"classes": names, "label_key": label_key})  # fmt: skip


def _load_member(path: Path, name: str, where: tuple[int, int]) -> dict[str, Any]:
    try:
        value = restricted_loads(read_tar_member(str(path), *where))
    except PickleRefused as err:
        raise DatasetError(f"{path}: refusing to unpickle {name}: {err}") from err
    except (pickle.UnpicklingError, EOFError, ValueError, OSError, IndexError) as err:
        raise DatasetError(f"cannot unpickle {name} ({type(err).__name__}: {err})") from err
    value = _plain_keys(value)
    if not isinstance(value, dict):
        raise DatasetError(f"{name} holds a {type(value).__name__}, not a CIFAR dict")
    return value


def _batch(path: str, member: str, offset: int, size: int) -> dict[str, Any]:
    def make() -> dict[str, Any]:
        return _load_member(Path(path), member, (offset, size))

    return _batches.get((stat_key(path), member), make)


def read(path: str, chunk: Chunk, details: dict) -> Iterator[Entry]:
    member, offset, size, first, error = chunk.token
    base = posixpath.basename(member)
    if error:
        yield Entry(f"#{base}", None, None, error)
        return
    try:
        batch = _batch(path, member, offset, size)
    except DatasetError as err:  # the file changed since it was planned
        for k in range(chunk.count):
            yield Entry(f"#{base}[{first + k}]", None, None, str(err))
        return
    data = batch.get("data")
    labels = batch.get(details["label_key"])
    names = batch.get("filenames")
    classes = details["classes"]
    rows = data if isinstance(data, np.ndarray) else np.asarray([])
    for k in range(first, first + chunk.count):
        name = f"#{base}[{k}]"
        if names is not None and k < len(names):
            name += f"/{_text(names[k])}"
        label = None
        if labels is not None and k < len(labels):
            value = int(labels[k])
            if not 0 <= value < len(classes):
                yield Entry(name, None, None, f"label {value} outside the {len(classes)} classes")
                continue
            label = classes[value]
        else:
            yield Entry(name, None, None, f"no label for image {k} of {base}")
            continue
        if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != 3072 or k >= len(rows):
            yield Entry(name, None, label, f"image {k} of {base} is not 3072 bytes of pixels")
            continue
        # [3072] as three 32×32 planes (R, G, B) → [32, 32, 3]
        yield Entry(name, np.ascontiguousarray(rows[k].reshape(3, 32, 32).transpose(1, 2, 0)),
                    label)  # fmt: skip
