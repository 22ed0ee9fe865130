"""Hugging Face `datasets` on disk: a `save_to_disk` folder, or parquet files, with an Image column.

Read with pyarrow alone (`datasets` itself is not needed, and nothing is fetched from the
hub): a `save_to_disk` folder's Arrow files are memory-mapped, parquet files are read one row
group at a time. The features (stored by `datasets` in the schema's metadata, or the folder's
dataset_info.json) say which column holds the images (`Image`: encoded bytes, or a path to a
local file) and which the labels (`ClassLabel`: its names become the classes). A folder
written from a `DatasetDict` holds one folder per split: the one `--source-split` names
(default 'train') is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ganvas.data.formats.base import Chunk, Entry, HandleCache, Plan, chunk_ranges, stat_key
from ganvas.data.store import DatasetError

PARQUET_MAGIC = b"PAR1"
LABEL_NAMES = ("label", "labels", "class", "category")
_tables = HandleCache(size=2)


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as err:
        raise DatasetError(
            "reading Hugging Face datasets needs pyarrow: pip install 'ganvas[formats]'"
        ) from err
    return pyarrow


def detect_folder(path: Path) -> bool:
    """A `save_to_disk` folder: state.json + dataset_info.json (or a DatasetDict's json)."""
    if not path.is_dir():
        return False
    if (path / "dataset_dict.json").is_file():
        return True
    return (path / "state.json").is_file() and (path / "dataset_info.json").is_file()


def detect_parquet(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size < 12:
        return False
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(-4, os.SEEK_END)
        tail = f.read(4)
    return head == PARQUET_MAGIC and tail == PARQUET_MAGIC


def _split_folder(path: Path, split: str) -> Path:
    dict_file = path / "dataset_dict.json"
    if not dict_file.is_file():
        return path
    try:
        splits = json.loads(dict_file.read_text())["splits"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"cannot read {dict_file} ({err})") from err
    if split not in splits:
        raise DatasetError(
            f"{path} holds the splits {', '.join(splits)}; choose one with --source-split"
            f" (asked for {split!r})"
        )
    return path / split


def _data_files(folder: Path) -> list[Path]:
    state_file = folder / "state.json"
    try:
        state = json.loads(state_file.read_text())
        names = [entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"cannot read {state_file} ({err})") from err
    return [folder / name for name in names]


def _open_table(path: str) -> Any:
    """A memory-mapped Arrow table (save_to_disk) or an open ParquetFile, cached per process."""
    pa = _pyarrow()

    def make() -> Any:
        try:
            if path.endswith(".arrow"):
                with pa.memory_map(path) as source:
                    try:
                        return pa.ipc.open_stream(source).read_all()
                    except pa.ArrowInvalid:
                        return pa.ipc.open_file(source).read_all()
            return pa.parquet.ParquetFile(path)
        except (OSError, pa.ArrowException) as err:
            raise DatasetError(f"cannot read {path} ({err})") from err

    return _tables.get(stat_key(path), make)


def _schema(table: Any) -> Any:
    return table.schema_arrow if hasattr(table, "schema_arrow") else table.schema


def _features(schema: Any, info_file: Path | None) -> dict[str, Any]:
    metadata = schema.metadata or {}
    raw = metadata.get(b"huggingface")
    if raw is not None:
        try:
            return json.loads(raw)["info"]["features"]
        except (ValueError, KeyError, TypeError):
            pass
    if info_file is not None and info_file.is_file():
        try:
            return json.loads(info_file.read_text()).get("features") or {}
        except (OSError, ValueError, AttributeError):
            pass
    return {}


def _columns(schema: Any, features: dict[str, Any], where: Path) -> tuple[str, str | None, list]:
    """(image column, label column or None, class names) of a table."""
    pa = _pyarrow()
    image = next((n for n, f in features.items() if isinstance(f, dict)
                  and f.get("_type") == "Image"), None)  # fmt: skip
    if image is None:  # no features recorded: a struct of bytes and path is an image
        for field in schema:
            if pa.types.is_struct(field.type) and {"bytes", "path"} <= {
                field.type.field(i).name for i in range(field.type.num_fields)
            }:
                image = field.name
                break
    if image is None:
        columns = ", ".join(schema.names)
        raise DatasetError(f"{where} has no Image column (columns: {columns})")
    labelled = [n for n, f in features.items() if isinstance(f, dict)
                and f.get("_type") == "ClassLabel"]  # fmt: skip
    label = next((n for n in LABEL_NAMES if n in labelled), labelled[0] if labelled else None)
    names = [str(n) for n in features[label].get("names", [])] if label else []
    return image, label, names


def plan(path: Path, per_chunk: int, split: str = "train") -> Plan:
    """Chunks of every data file of a `save_to_disk` folder (or of one parquet file)."""
    if path.is_dir():
        folder = _split_folder(path, split)
        files = _data_files(folder)
        info_file: Path | None = folder / "dataset_info.json"
        identity = str(folder / "state.json")
    else:
        folder, files, info_file, identity = path.parent, [path], None, str(path)
    image = label = None
    names: list[str] = []
    chunks: list[Chunk] = []
    start = 0
    for file in files:
        table = _open_table(str(file))
        columns = _columns(_schema(table), _features(_schema(table), info_file), file)
        if image is None:
            image, label, names = columns
        elif columns != (image, label, names):
            raise DatasetError(f"{file} has other columns or classes than {files[0].name}")
        if hasattr(table, "metadata") and hasattr(table, "read_row_group"):  # parquet
            groups = [table.metadata.row_group(g).num_rows for g in range(table.num_row_groups)]
        else:
            groups = [table.num_rows]
        for group, rows in enumerate(groups):
            for a, b in chunk_ranges(rows, per_chunk):
                chunks.append(Chunk(start + a, start + b, (str(file), group, a)))
            start += rows
    if not start:
        raise DatasetError(f"{path} holds no rows")
    classes = names or None
    note = f"Hugging Face dataset {path.name}: {start} rows, images from column {image!r}"
    if classes:
        note += f", {len(classes)} classes from {label!r}"
    details = {"image": image, "label": label, "classes": names, "folder": str(folder)}
    return Plan("hf", classes, chunks, identity, options=(split,), note=note, details=details)


def _rows(file: str, group: int, offset: int, count: int, columns: list[str]) -> list[dict]:
    table = _open_table(file)
    if hasattr(table, "read_row_group"):  # parquet: one row group (cached while it is read)
        key = ("group", stat_key(file), group, tuple(columns))
        table = _tables.get(key, lambda: table.read_row_group(group, columns=columns))
    return table.select(columns).slice(offset, count).to_pylist()


def read(path: str, chunk: Chunk, details: dict) -> Iterator[Entry]:
    file, group, offset = chunk.token
    image, label, classes = details["image"], details["label"], details["classes"]
    columns = [image] + ([label] if label else [])
    try:
        rows = _rows(file, group, offset, chunk.count, columns)
    except Exception as err:  # pyarrow raises its own hierarchy for damaged data
        for k in range(chunk.count):
            yield Entry(f"#{chunk.start + k}", None, None, f"cannot read rows ({err})")
        return
    for k, row in enumerate(rows):
        name = f"#{chunk.start + k}"
        name_label = None
        if label:
            value = row.get(label)
            if value is None or not 0 <= int(value) < len(classes):
                yield Entry(name, None, None, f"no class for label {value!r}")
                continue
            name_label = classes[int(value)]
        cell = row.get(image)
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        if data is None and isinstance(cell, dict) and cell.get("path"):
            picture = Path(cell["path"])
            if not picture.is_absolute():
                picture = Path(details["folder"]) / picture
            try:
                data = picture.read_bytes()
            except OSError as err:
                yield Entry(name, None, name_label, f"image file {picture} ({err.strerror})")
                continue
        if not isinstance(data, bytes):
            yield Entry(name, None, name_label, "no image in this row")
            continue
        yield Entry(name, data, name_label)
