"""The dataset directory: what `ganvas prepare` writes and what training reads.

    <dataset>/images.npy     uint8 [N, H, W, C], opened as a memory map
    <dataset>/labels.npy     int64 [N] (only when the dataset has classes)
    <dataset>/manifest.json  classes, resolution, sources, dropped files and why, splits, hash
    <dataset>/preview.png    a contact sheet of the first images

The directory appears atomically (written under a temporary name, then renamed).

manifest.json's "files" says where each image came from, in order: a name per image of an
image file or a film ('0:cats/1.png', '0:film.mp4#frame=12#crop=1'), and for the entries of a
dataset container (LMDB, CIFAR, archive, …) one range record per stretch of them,
{"container": "0:bedroom_train_lmdb", "entries": [[0, 3000000]], "outputs": 1}: entries
`first` .. `stop` - 1 in the container's reading order, each giving `outputs` images. Version 1
manifests (a name for every image) are migrated on load; `file_names` lists one name per image
for either.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganvas.grid import image_grid, to_pil
from ganvas.io import atomic_dir, save_image_atomic, write_json_atomic

FORMAT_NAME = "ganvas-dataset"
FORMAT_VERSION = 2  # 2: container entries as ranges in "files" (1: a name per image)
SPLITS = ("train", "val", "all")


class DatasetError(ValueError):
    """A dataset directory is missing, incomplete or inconsistent."""


@dataclass
class Dataset:
    """A prepared dataset: images as a read-only memory map plus its manifest."""

    path: Path
    images: np.ndarray  # [N, H, W, C] uint8 memmap
    labels: np.ndarray | None  # [N] int64
    manifest: dict[str, Any] = field(repr=False)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    @property
    def classes(self) -> list[str]:
        return list(self.manifest.get("classes") or [])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def file_names(self) -> Iterator[str]:
        """Where each image came from, one name per image in order (see `file_names`)."""
        return file_names(self.manifest)

    def split_indices(self, split: str = "train") -> np.ndarray:
        """Indices of the images in `split` ('train', 'val' or 'all')."""
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        everything = np.arange(len(self))
        if split == "all":
            return everything
        val = np.asarray(self.manifest.get("splits", {}).get("val", []), dtype=np.int64)
        if split == "val":
            return val
        return np.setdiff1d(everything, val, assume_unique=True)


def load_dataset(path: str | os.PathLike, verify: bool = False) -> Dataset:
    """Open a dataset directory written by `ganvas prepare`.

    Args:
        verify: check images.npy (and labels.npy) against the content hash in manifest.json
            (reads every byte once: training does, before its first step; dataset dirs made
            before the hash was recorded are not checked).

    Raises:
        DatasetError: the directory or one of its files is missing or inconsistent, or
            (with `verify`) no longer matches its manifest, with a message that says which
            and how to make the dataset again.
    """
    path = Path(path)
    hint = f"make one with: ganvas prepare IMAGES_FOLDER --out {path}"
    if not path.is_dir():
        raise DatasetError(f"dataset directory {path} does not exist; {hint}")
    manifest_file = path / "manifest.json"
    images_file = path / "images.npy"
    for required in (manifest_file, images_file):
        if not required.is_file():
            raise DatasetError(
                f"{path} is not a ganvas dataset: {required.name} is missing; {hint}"
            )
    try:
        manifest = json.loads(manifest_file.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{manifest_file} is not valid JSON ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise DatasetError(
            f"{manifest_file} is not a {FORMAT_NAME} manifest (a dataset dir of another tool or "
            f"of a ganvas before 0.1); make it again with: ganvas prepare IMAGES_FOLDER --out "
            f"{path} --overwrite"
        )
    version = manifest.get("version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DatasetError(
            f"{path} was written by a newer ganvas (dataset format version {version}; this "
            f"one reads up to {FORMAT_VERSION}): upgrade ganvas, or prepare it again with this one"
        )
    manifest = migrate_manifest(manifest, manifest_file)
    try:
        images = np.load(images_file, mmap_mode="r")
    except (ValueError, OSError) as err:
        raise DatasetError(f"{images_file} cannot be read as a .npy array ({err})") from err
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        raise DatasetError(
            f"{images_file} must be uint8 [N, H, W, 1|3], got {images.dtype} {images.shape}"
        )
    labels = None
    labels_file = path / "labels.npy"
    if labels_file.is_file():
        try:
            labels = np.load(labels_file)  # allow_pickle=False: an object array is refused
        except (ValueError, OSError) as err:
            raise DatasetError(f"{labels_file} cannot be read as a .npy array ({err})") from err
        if labels.shape != (images.shape[0],):
            raise DatasetError(
                f"{labels_file} has shape {labels.shape} but there are {images.shape[0]} images"
            )
    if len(images) == 0:
        raise DatasetError(f"{path} holds no images")
    count = manifest.get("count")
    if count is not None and count != len(images):
        raise DatasetError(f"{images_file} holds {len(images)} images but {manifest_file} says "
                           f"{count}: the dataset was changed or damaged after prepare; "
                           "re-run `ganvas prepare` to make it again")  # fmt: skip
    if verify and manifest.get("content_hash") and not _verified(images_file, manifest):
        if content_hash(images, labels) != manifest["content_hash"]:
            raise DatasetError(
                f"{images_file} no longer matches the content hash in {manifest_file} (changed "
                "or damaged after prepare); re-run `ganvas prepare` (with --overwrite) to make "
                "the dataset again"
            )
        _VERIFIED.add(_identity(images_file, manifest))
    return Dataset(path=path, images=images, labels=labels, manifest=manifest)


# Files this process has already hashed, by identity (inode, size, mtime): tests and sweeps
# that train many times on one dataset read it once.
_VERIFIED: set[tuple[Any, ...]] = set()


def _identity(images_file: Path, manifest: dict[str, Any]) -> tuple[Any, ...]:
    files = [images_file, images_file.with_name("labels.npy")]
    stats = [(f.stat().st_ino, f.stat().st_size, f.stat().st_mtime_ns) for f in files
             if f.is_file()]  # fmt: skip
    return (str(images_file.resolve()), manifest["content_hash"], *stats)


def _verified(images_file: Path, manifest: dict[str, Any]) -> bool:
    return _identity(images_file, manifest) in _VERIFIED


def migrate_manifest(manifest: dict[str, Any], where: str | os.PathLike = "") -> dict[str, Any]:
    """A manifest of any earlier version brought to FORMAT_VERSION (a new dict).

    Version 1 → 2: "files" held a name per image, which version 2 still allows beside
    container ranges, so its names are kept as they are and the version is raised.

    Raises:
        DatasetError: the manifest is of a newer version than this ganvas reads.
    """
    version = manifest.get("version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DatasetError(
            f"{where or 'the manifest'} is format version {version!r}, newer than this ganvas"
            f" ({FORMAT_VERSION}); upgrade ganvas to read it"
        )
    manifest = dict(manifest)
    if version < 2:
        manifest["files"] = [str(name) for name in manifest.get("files") or []]
        manifest["migrated_from_version"] = version
    manifest["version"] = FORMAT_VERSION
    return manifest


def file_names(manifest: dict[str, Any]) -> Iterator[str]:
    """One name per image of a manifest's "files", in order, expanding container ranges to
    '0:bedroom_train_lmdb#entry=17' (with '#crop=k' / '#tile=r,c' suffixes when an entry gave
    several images). Lazily: 3 million names are never all in memory at once."""
    suffixes = None
    for entry in manifest.get("files") or []:
        if not isinstance(entry, dict):
            yield str(entry)
            continue
        if suffixes is None:
            scan = manifest.get("scan") or {}
            suffixes = output_suffixes(scan.get("mosaic"), int(scan.get("random_crops") or 0))
        container, outputs = entry["container"], int(entry.get("outputs", 1))
        for first, stop in entry["entries"]:
            for k in range(int(first), int(stop)):
                for suffix in suffixes[:outputs]:
                    yield f"{container}#entry={k}{suffix}"


def file_counts(manifest: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """(name or container name, images) of each record of a manifest's "files", cheaply."""
    for entry in manifest.get("files") or []:
        if isinstance(entry, dict):
            outputs = int(entry.get("outputs", 1))
            count = sum(int(stop) - int(first) for first, stop in entry["entries"])
            yield str(entry["container"]), count * outputs
        else:
            yield str(entry), 1


def output_suffixes(mosaic: tuple[int, int] | list[int] | None, random_crops: int) -> list[str]:
    """Suffix of each output of a picture, in order: '', '#tile=r,c', '#crop=k', both."""
    tiles = [""]
    if mosaic:
        rows, cols = mosaic
        tiles = [f"#tile={r},{c}" for r in range(rows) for c in range(cols)]
    crops = [f"#crop={k}" for k in range(random_crops)] or [""]
    return [tile + crop for tile in tiles for crop in crops]


def content_hash(images: np.ndarray, labels: np.ndarray | None, chunk: int = 1024) -> str:
    """sha256 over the pixels (and labels): two datasets with equal hashes hold the same data."""
    digest = hashlib.sha256()
    digest.update(repr(tuple(images.shape)).encode())
    for start in range(0, len(images), chunk):
        digest.update(np.ascontiguousarray(images[start : start + chunk]).tobytes())
    if labels is not None:
        digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return "sha256:" + digest.hexdigest()


PREVIEW_TILE = 128  # larger images are shown shrunk: a 64-tile sheet of 256 px would be 2k²


def write_preview(images: np.ndarray, dest: str | os.PathLike, count: int = 64) -> None:
    """Contact sheet of the first `count` images, tiles at most PREVIEW_TILE pixels."""
    tiles = np.asarray(images[:count])
    side = tiles.shape[1]
    if side > PREVIEW_TILE:
        from PIL import Image

        shrunk = []
        for tile in tiles:
            img = Image.fromarray(tile[..., 0] if tile.shape[2] == 1 else tile)
            img = img.resize((PREVIEW_TILE, PREVIEW_TILE), Image.Resampling.BOX)
            shrunk.append(np.asarray(img).reshape(PREVIEW_TILE, PREVIEW_TILE, tile.shape[2]))
        tiles = np.stack(shrunk)
    # Fast zlib level: a preview is looked at, not archived (level 6 took ~1 s at 1k²).
    save_image_atomic(dest, to_pil(image_grid(tiles)), compress_level=1)


def base_manifest(resolution: int, channels: int, classes: list[str]) -> dict[str, Any]:
    from ganvas import __version__

    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "ganvas_version": __version__,
        "resolution": resolution,
        "channels": channels,
        "classes": classes,
    }


class ImagesWriter:
    """Write images.npy a chunk of rows at a time, hashing as it goes (see `content_hash`).

    Plain file writes rather than a memory map, so a dataset larger than RAM never has its
    pages mapped into the writing process.
    """

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        self.path, self.shape, self.rows = path, tuple(int(n) for n in shape), 0
        self._file = open(path, "wb")  # noqa: SIM115 (closed in finish())
        header = {"descr": np.dtype(np.uint8).str, "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_1_0(self._file, header)
        self._digest = hashlib.sha256(repr(self.shape).encode())

    def write(self, rows: np.ndarray) -> None:
        data = np.ascontiguousarray(rows, dtype=np.uint8)
        if data.shape[1:] != self.shape[1:] or self.rows + len(data) > self.shape[0]:
            raise ValueError(f"rows of shape {data.shape} do not fit images {self.shape}")
        view = memoryview(data).cast("B")  # no copy of the rows
        self._file.write(view)
        self._digest.update(view)
        self.rows += len(data)

    def finish(self, labels: np.ndarray | None) -> str:
        """Close the file; returns the content hash of the images (and labels)."""
        if self.rows != self.shape[0]:
            raise ValueError(f"wrote {self.rows} of {self.shape[0]} rows of {self.path}")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if labels is not None:
            self._digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
        return "sha256:" + self._digest.hexdigest()


def finish_dataset_dir(
    folder: Path,
    images: np.ndarray,
    labels: np.ndarray | None,
    manifest: dict[str, Any],
    known_hash: str | None = None,
) -> dict[str, Any]:
    """Write labels, preview and manifest (with count and hash) into `folder`, which already
    holds images.npy. `known_hash` skips hashing the images again (from `ImagesWriter`).
    Returns the manifest."""
    if labels is not None:
        np.save(folder / "labels.npy", np.asarray(labels, dtype=np.int64))
    digest = known_hash or content_hash(images, labels)
    manifest = dict(manifest, count=int(len(images)), content_hash=digest)
    write_preview(images, folder / "preview.png")
    write_json_atomic(folder / "manifest.json", manifest)
    return manifest


def save_dataset(
    dest: str | os.PathLike,
    images: np.ndarray,
    labels: np.ndarray | None,
    manifest: dict[str, Any],
    overwrite: bool = False,
) -> Dataset:
    """Write an in-memory image array as a dataset directory, atomically."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DatasetError(f"images must be uint8 [N, H, W, C], got {images.dtype} {images.shape}")
    with atomic_dir(dest, overwrite=overwrite) as tmp:
        np.save(tmp / "images.npy", images)
        finish_dataset_dir(tmp, images, labels, manifest)
    return load_dataset(dest)
