"""Dataset formats `prepare` reads besides folders and films, recognised by their content.

| format | what a source looks like | recognised by |
|---|---|---|
| cifar | `cifar-10-python.tar.gz`, `cifar-100-python.tar.gz` | a tar holding a meta pickle beside the batches |
| idx   | MNIST / Fashion-MNIST / EMNIST `*-images-idx3-ubyte[.gz]` | the idx header |
| lmdb  | an LSUN category folder (data.mdb) or the data.mdb file | LMDB's magic number |
| zip   | a zip of images | its central directory |
| tar   | a tar (.gz, .bz2, .xz) of images | a valid tar header |
| hf    | a `datasets` `save_to_disk` folder, or a parquet file | state.json / dataset_dict.json, 'PAR1' |

Each format module plans a source into chunks (`base.Plan`) and reads a chunk's entries
(`base.Entry`); `prepare` turns each chunk into one unit of its scan, so every option a
folder has (crops, filters, subsets, balance, the val split, resuming, the dropped-file
report) works the same on these. Only sources named on the command line are recognised: a
zip lying inside a folder of pictures stays a stray file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ganvas.data.formats.base import Chunk, Entry, Plan, close_all_handles
from ganvas.data.store import DatasetError

FORMATS = ("cifar", "idx", "lmdb", "zip", "tar", "hf")
__all__ = ["FORMATS", "Chunk", "Entry", "Plan", "close_all_handles", "detect", "plan", "read"]


def detect(path: str | Path) -> str | None:
    """The format of a source by its content, or None for a plain folder, image or film."""
    from ganvas.data.formats import archive, cifar, hf, idx, lmdb

    path = Path(path)
    if path.is_dir():
        if lmdb.detect(path):
            return "lmdb"
        if hf.detect_folder(path):
            return "hf"
        return None
    if not path.is_file():
        return None
    if idx.detect(path):
        return "idx"
    if lmdb.detect(path):
        return "lmdb"
    if hf.detect_parquet(path):
        return "hf"
    if archive.detect_zip(path):
        return "zip"
    if archive.detect_tar(path):
        return "cifar" if cifar.detect(path) else "tar"
    return None


def plan(
    fmt: str, path: str | Path, per_chunk: int, split: str = "train", coarse: bool = False
) -> Plan:
    """Plan a source of format `fmt` into chunks of at most `per_chunk` entries.

    Args:
        fmt: one of FORMATS (as `detect` found it).
        path: the source.
        per_chunk: entries per chunk (one unit of prepare's scan).
        split: which part of a source that has several: CIFAR's 'train', 'test' or 'all'
            batches, a `DatasetDict` folder's split by name.
        coarse: CIFAR-100's 20 coarse classes instead of its 100 fine ones.

    Raises:
        DatasetError: the source cannot be read, or is malformed as a whole (one line naming
            the file); damaged entries inside it are reported by `read` instead.
    """
    from ganvas.data.formats import archive, cifar, hf, idx, lmdb

    path = Path(path)
    if fmt == "cifar":
        if split not in ("train", "test", "all"):
            raise DatasetError(
                f"--source-split {split!r}: a CIFAR tarball has 'train', 'test' or 'all' batches"
            )
        return cifar.plan(path, per_chunk, split, coarse)
    if fmt == "idx":
        return idx.plan(path, per_chunk)
    if fmt == "lmdb":
        return lmdb.plan(path, per_chunk)
    if fmt == "zip":
        return archive.plan_zip(path, per_chunk)
    if fmt == "tar":
        return archive.plan_tar(path, per_chunk)
    if fmt == "hf":
        return hf.plan(path, per_chunk, split)
    raise DatasetError(f"unknown format {fmt!r}; the formats are {', '.join(FORMATS)}")


def read(fmt: str, path: str, chunk: Chunk, details: dict) -> Iterator[Entry]:
    """The entries of one planned chunk (runs in prepare's worker processes)."""
    from ganvas.data.formats import archive, cifar, hf, idx, lmdb

    readers = {"cifar": cifar.read, "idx": idx.read, "lmdb": lmdb.read,
               "zip": archive.read_zip, "tar": archive.read_tar, "hf": hf.read}  # fmt: skip
    return readers[fmt](path, chunk, details)
