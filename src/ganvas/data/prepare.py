"""`ganvas prepare`: turn folders of image files into a dataset directory.

Every file under the sources is a candidate; each one either becomes a row of images.npy or
is listed in the manifest's "dropped" with the reason. Decoding runs in worker processes and
the pixels stream straight into a memory-mapped file, so a dataset larger than RAM is fine.

Labels come from nowhere ("none"), from each file's first-level folder ("subfolders"), or
from a .csv/.json mapping file → class name (see `read_label_mapping`).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import multiprocessing
import operator
import os
import re
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ganvas.data.images import ImageRejected, decode_image
from ganvas.data.store import FORMAT_NAME, DatasetError, base_manifest, finish_dataset_dir
from ganvas.io import atomic_dir

if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table

LABEL_MODES = ("none", "subfolders")
LABEL_FILE_TYPES = (".csv", ".json")
NOT_IN_CLASS_FOLDER = "not inside a class subfolder (--labels subfolders)"
IS_LABEL_FILE = "the labels mapping file (--labels)"
# Column names (compared case-insensitively) of a mapping file, in order of preference.
FILE_COLUMNS = ("file", "filename", "path", "image")
CLASS_COLUMNS = ("label", "class", "category", "genre", "style")
_UNMATCHED_EXAMPLES = 20
_AMBIGUOUS_EXAMPLES = 5
_COPY_CHUNK_BYTES = 64 * 1024 * 1024


@dataclass
class PrepareReport:
    """What `prepare_dataset` did: where the dataset went, how many images, what was dropped."""

    out: Path
    kept: int
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (absolute path, reason)
    classes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    unmatched_labels: int = 0  # rows of a --labels mapping file that matched no file
    unmatched_label_examples: list[str] = field(default_factory=list)

    def dropped_by_reason(self) -> dict[str, list[str]]:
        """Paths of dropped files grouped by kind of reason, the most common kind first."""
        return _group_by_reason(self.dropped)

    def summary_table(self, examples: int = 3) -> Table:
        """A rich table of why files were dropped (reason, count, a few example paths).

        Args:
            examples: how many example paths to show per reason.

        Returns:
            A `rich.table.Table` titled with the kept / dropped counts, ready to print.
        """
        from rich.table import Table

        title = (
            f"{self.kept} images kept, {len(self.dropped)} files dropped → {self.out}"
            f" ({self.seconds:.1f} s)"
        )
        table = Table(title=title, title_justify="left")
        table.add_column("dropped because")
        table.add_column("files", justify="right")
        table.add_column("for example", overflow="fold")
        for kind, paths in self.dropped_by_reason().items():
            shown = "\n".join(paths[:examples])
            if len(paths) > examples:
                shown += f"\n… and {len(paths) - examples} more"
            table.add_row(kind, str(len(paths)), shown)
        if not self.dropped:
            table.add_row("(nothing dropped)", "0", "")
        if self.unmatched_labels:
            shown = ", ".join(self.unmatched_label_examples[:examples])
            count = (
                "1 labelled file was"
                if self.unmatched_labels == 1
                else f"{self.unmatched_labels} labelled files were"
            )
            table.caption = (
                f"{count} not found among the sources (e.g. {shown}; listed in manifest.json)"
            )
            table.caption_justify = "left"
        return table


@dataclass
class LabelMapping:
    """A --labels mapping file, read: file key (a relative path or a bare name) → class."""

    path: Path
    sha256: str
    classes: dict[str, str]  # normalised file key → class name, in file order


def prepare_dataset(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    size: int = 64,
    channels: int = 3,
    labels: str | os.PathLike = "none",
    val_fraction: float = 0.0,
    seed: int = 0,
    background: Sequence[int] | int | str = (255, 255, 255),
    max_pixels: int = 100_000_000,
    min_size: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> PrepareReport:
    """Decode every file under `sources` into a dataset directory at `out`.

    Files are taken in sorted path order, centre-cropped to a square and resized to `size`.
    Hidden files and folders (name starting with '.') are ignored; every other file that is
    not a usable image is listed with its reason in the manifest's "dropped".

    Args:
        sources: one or more folders (walked recursively) or single image files.
        out: the dataset directory to create.
        size: side of the square images, 8-4096 pixels.
        channels: 3 for RGB, 1 for greyscale.
        labels: "none"; "subfolders" to label each image by the first-level folder it sits
            in under its source (files directly in a source root are then dropped); or the
            path of a .csv/.json file mapping files to class names (see `read_label_mapping`;
            files it does not name are dropped).
        val_fraction: share of images held out as the validation split, in [0, 1).
        seed: seed of the validation split draw.
        background: colour that transparency is flattened over: (r, g, b), a grey level or
            a colour name / "#rrggbb".
        max_pixels: images with more pixels are dropped without being decoded.
        min_size: images whose shorter side is smaller are dropped.
        workers: decoding processes (default: one per CPU); 1 decodes in this process.
        overwrite: replace an existing dataset at `out` (only once the new one is complete).
        progress: show a progress bar on stderr.

    Returns:
        A `PrepareReport`; `report.summary_table()` explains what was dropped.

    Raises:
        DatasetError: bad arguments, an unreadable or ambiguous labels file, a missing or
            empty source, `out` already exists (without `overwrite`), or not a single usable
            image was found.
    """
    started = time.perf_counter()
    checked = _check_arguments(
        size=size,
        channels=channels,
        labels=labels,
        val_fraction=val_fraction,
        seed=seed,
        background=background,
        max_pixels=max_pixels,
        min_size=min_size,
        workers=workers,
    )
    mode = checked["labels"]
    mapping = None
    if mode not in LABEL_MODES:
        mapping = read_label_mapping(mode)
        checked["labels_sha256"] = mapping.sha256
    params = {
        "sources": [os.fspath(s) for s in _as_list(sources)],
        "out": os.fspath(out),
        **checked,
        "overwrite": bool(overwrite),
    }
    size, channels = checked["size"], checked["channels"]
    workers = checked["workers"] or os.cpu_count() or 1
    roots = _check_sources(params["sources"])
    out = Path(out)
    _check_out(out, roots, overwrite)
    candidates, absolute, walk_errors = _collect(roots, out)

    # Dataset order is candidate order; `dropped` keeps candidate order too.
    dropped: dict[int, tuple[str, str]] = {}
    class_of: dict[int, str] = {}
    unmatched: list[str] = []
    if mode == "subfolders":
        for i, (_, rel) in enumerate(candidates):
            if "/" in rel:
                class_of[i] = rel.split("/", 1)[0]
            else:
                dropped[i] = (absolute[i], NOT_IN_CLASS_FOLDER)
    elif mapping is not None:
        for i in range(len(candidates)):
            if _is_file(absolute[i], mapping.path):
                dropped[i] = (absolute[i], IS_LABEL_FILE)
        files = [(i, candidates[i]) for i in range(len(candidates)) if i not in dropped]
        class_of, unmatched = _match_labels(mapping, files)
        no_label = f"no label in {mapping.path.name}"
        for i, _ in files:
            if i not in class_of:
                dropped[i] = (absolute[i], no_label)
    to_decode = [i for i in range(len(candidates)) if i not in dropped]

    decode = functools.partial(
        _decode_job,
        size=size,
        channels=channels,
        background=tuple(checked["background"]),
        max_pixels=checked["max_pixels"],
        min_size=checked["min_size"],
    )
    with atomic_dir(out, overwrite=overwrite) as tmp:
        images_file = tmp / "images.npy"
        kept: list[int] = []
        if to_decode:
            images = np.lib.format.open_memmap(
                images_file, mode="w+", dtype=np.uint8, shape=(len(to_decode), size, size, channels)
            )
            paths = [absolute[i] for i in to_decode]
            with (
                _progress_bar(progress) as bar,
                contextlib.closing(_run_jobs(decode, paths, workers)) as results,
            ):
                task = bar.add_task("decoding", total=len(paths), rejected=len(dropped))
                for i, (pixels, reason) in zip(to_decode, results, strict=True):
                    if reason is None:
                        images[len(kept)] = pixels
                        kept.append(i)
                    else:
                        dropped[i] = (absolute[i], reason)
                    bar.update(task, advance=1, rejected=len(dropped))
            images.flush()
            del images

        dropped_list = walk_errors + [dropped[i] for i in sorted(dropped)]
        if not kept:
            message = _nothing_usable_message(roots, dropped_list)
            if mapping is not None and unmatched:
                message += (
                    f"; {len(unmatched)} files named in {mapping.path.name} were not found"
                    f" (e.g. {', '.join(unmatched[:3])}): its paths must be relative to the"
                    " source folder, or bare file names"
                )
            raise DatasetError(message)
        if len(kept) < len(to_decode):
            _truncate_rows(images_file, len(kept))

        classes: list[str] = []
        label_array = None
        if mode != "none":
            names = [class_of[i] for i in kept]
            classes = sorted(set(names))
            lookup = {name: k for k, name in enumerate(classes)}
            label_array = np.array([lookup[name] for name in names], dtype=np.int64)

        manifest = base_manifest(size, channels, classes)
        manifest["sources"] = [str(root) for root in roots]
        manifest["files"] = [f"{candidates[i][0]}:{candidates[i][1]}" for i in kept]
        manifest["dropped"] = [{"path": path, "reason": reason} for path, reason in dropped_list]
        manifest["params"] = params
        if mapping is not None:
            manifest["unmatched_labels"] = len(unmatched)
            manifest["unmatched_label_examples"] = unmatched[:_UNMATCHED_EXAMPLES]
        manifest["splits"] = {
            "val": _val_indices(len(kept), checked["val_fraction"], checked["seed"])
        }
        readonly = np.load(images_file, mmap_mode="r")
        finish_dataset_dir(tmp, readonly, label_array, manifest)
        del readonly

    return PrepareReport(
        out=out,
        kept=len(kept),
        dropped=dropped_list,
        classes=classes,
        seconds=time.perf_counter() - started,
        unmatched_labels=len(unmatched),
        unmatched_label_examples=unmatched[:_UNMATCHED_EXAMPLES],
    )


def read_label_mapping(path: str | os.PathLike) -> LabelMapping:
    """Read a .csv or .json file that maps image files to class names.

    CSV: a header row, then one row per image. The file column is the first of
    `FILE_COLUMNS` present, the class column the first of `CLASS_COLUMNS` (names compared
    case-insensitively); a file with exactly two columns of other names uses them in order.
    The delimiter is ',' unless the header holds more ';' or tabs.

    JSON: an object {"file": "class", ...}, or a list of objects whose keys follow the CSV
    column rules.

    File keys are paths relative to a source folder ('/' or '\\' separators) or bare file
    names. Rows with an empty file or class are ignored; a file given two different classes
    is an error.

    Raises:
        DatasetError: the file cannot be read or parsed, its columns cannot be told apart,
            or it maps nothing.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DatasetError(f"cannot read labels file {path} ({err.strerror or err})") from err
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"labels file {path} is not UTF-8 text ({err.reason})") from err
    if path.suffix.lower() == ".json":
        records = _json_records(path, text)
    else:
        records = _csv_records(path, text)
    classes: dict[str, str] = {}
    for file_cell, class_cell, where in records:
        file_name, class_name = _cell(path, file_cell, where), _cell(path, class_cell, where)
        if not file_name or not class_name:
            continue
        key = _mapping_key(file_name)
        previous = classes.setdefault(key, class_name)
        if previous != class_name:
            raise DatasetError(
                f"labels file {path} gives {key} two classes, {previous!r} and {class_name!r}"
                f" ({where})"
            )
    if not classes:
        raise DatasetError(f"labels file {path} maps no files to classes")
    return LabelMapping(path=path, sha256=hashlib.sha256(raw).hexdigest(), classes=classes)


def _csv_records(path: Path, text: str) -> list[tuple[Any, Any, str]]:
    header_line = next((line for line in text.splitlines() if line.strip()), None)
    if header_line is None:
        raise DatasetError(f"labels file {path} is empty")
    delimiter = max(",;\t", key=header_line.count)  # a tie (none of them) → ','
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[Any, Any, str]] = []
    try:
        rows = ((reader.line_num, row) for row in reader if any(cell.strip() for cell in row))
        _, header = next(rows)
        file_col, class_col = _pick_columns(path, header)
        for line, row in rows:
            cells = [*row, "", ""]
            records.append((cells[file_col], cells[class_col], f"line {line}"))
    except csv.Error as err:
        raise DatasetError(f"labels file {path} is not valid CSV ({err})") from err
    return records


def _json_records(path: Path, text: str) -> list[tuple[Any, Any, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetError(f"labels file {path} is not valid JSON ({err})") from err
    if isinstance(data, dict):
        return [(key, value, f"key {key!r}") for key, value in data.items()]
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        columns = list(dict.fromkeys(str(key) for item in data for key in item))
        if not columns:
            raise DatasetError(f"labels file {path} maps no files to classes")
        file_col, class_col = _pick_columns(path, columns)
        file_key, class_key = columns[file_col], columns[class_col]
        return [
            (item.get(file_key), item.get(class_key), f"item {n}") for n, item in enumerate(data)
        ]
    raise DatasetError(
        f"labels file {path} must hold a JSON object {{file: class, ...}} or a list of objects"
        f" with a file and a class field, got {type(data).__name__}"
    )


def _pick_columns(path: Path, columns: list[str]) -> tuple[int, int]:
    """Indices of the file and the class column among `columns` (see `read_label_mapping`)."""
    lowered = [column.strip().lower() for column in columns]

    def first(names: tuple[str, ...]) -> int | None:
        return next((lowered.index(name) for name in names if name in lowered), None)

    file_col, class_col = first(FILE_COLUMNS), first(CLASS_COLUMNS)
    if len(columns) == 2:
        if file_col is None and class_col is None:
            file_col, class_col = 0, 1
        elif file_col is None:
            file_col = 1 - class_col
        elif class_col is None:
            class_col = 1 - file_col
    if file_col is None or class_col is None:
        raise DatasetError(
            f"labels file {path}: cannot tell which columns hold the file and the class;"
            f" it has columns {', '.join(repr(c) for c in columns)}; name the file column one"
            f" of {', '.join(FILE_COLUMNS)} and the class column one of"
            f" {', '.join(CLASS_COLUMNS)} (or use exactly two columns: file, class)"
        )
    return file_col, class_col


def _cell(path: Path, value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise DatasetError(f"labels file {path}, {where}: expected a name, got {value!r}")


def _mapping_key(name: str) -> str:
    key = name.replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key


def _bare_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _match_labels(
    mapping: LabelMapping, files: list[tuple[int, tuple[int, str]]]
) -> tuple[dict[int, str], list[str]]:
    """Class of each file (by candidate index) that the mapping names, and the mapping keys
    that named no file.

    A file matches a key equal to its path relative to its source root; failing that, a key
    with the same bare file name among the keys that matched no path exactly. A bare name
    that two such keys, or two such files, share is an error.
    """
    classes = mapping.classes
    class_of: dict[int, str] = {}
    used: set[str] = set()
    pending: list[tuple[int, tuple[int, str]]] = []
    for i, (source, rel) in files:
        if rel in classes:
            class_of[i] = classes[rel]
            used.add(rel)
        else:
            pending.append((i, (source, rel)))
    keys_by_name: dict[str, list[str]] = {}
    for key in classes:
        if key not in used:
            keys_by_name.setdefault(_bare_name(key), []).append(key)
    files_by_name: dict[str, list[tuple[int, tuple[int, str]]]] = {}
    for i, (source, rel) in pending:
        name = _bare_name(rel)
        if name in keys_by_name:
            files_by_name.setdefault(name, []).append((i, (source, rel)))
    ambiguous: list[str] = []
    for name, named_files in files_by_name.items():
        keys = keys_by_name[name]
        if len(keys) == 1 and len(named_files) == 1:
            class_of[named_files[0][0]] = classes[keys[0]]
            used.add(keys[0])
            continue
        parts = []
        if len(keys) > 1:
            parts.append("rows " + ", ".join(repr(key) for key in keys[:3]))
        if len(named_files) > 1:
            parts.append("files " + ", ".join(f"{s}:{rel}" for _, (s, rel) in named_files[:3]))
        ambiguous.append(f"{name} ({'; '.join(parts)})")
    if ambiguous:
        shown = ", ".join(ambiguous[:_AMBIGUOUS_EXAMPLES])
        extra = len(ambiguous) - _AMBIGUOUS_EXAMPLES
        more = f" and {extra} more" if extra > 0 else ""
        count = (
            "1 bare file name is"
            if len(ambiguous) == 1
            else f"{len(ambiguous)} bare file names are"
        )
        raise DatasetError(
            f"labels file {mapping.path}: {count} ambiguous:"
            f" {shown}{more}; name those files by their path relative to the source"
            " folder (e.g. cats/img1.png) instead"
        )
    return class_of, [key for key in classes if key not in used]


def _is_file(candidate: str, target: Path) -> bool:
    """Whether `candidate` is the file `target` (cheap name check first)."""
    if os.path.basename(candidate) != target.name:
        return False
    try:
        return os.path.samefile(candidate, target)
    except OSError:
        return False


def _decode_job(
    path: str,
    *,
    size: int,
    channels: int,
    background: tuple[int, int, int],
    max_pixels: int,
    min_size: int,
) -> tuple[np.ndarray | None, str | None]:
    """One file → (pixels, None) or (None, reason). Runs in worker processes."""
    try:
        pixels = decode_image(
            path, size, channels, background=background, max_pixels=max_pixels, min_size=min_size
        )
    except ImageRejected as rejected:
        return None, rejected.reason
    return pixels, None


def _run_jobs(
    job: Callable[[str], tuple[np.ndarray | None, str | None]], paths: list[str], workers: int
) -> Generator[tuple[np.ndarray | None, str | None], None, None]:
    """Results of `job` over `paths`, in order, from a spawn-started process pool."""
    workers = min(workers, len(paths))
    if workers <= 1:
        yield from map(job, paths)
        return
    # spawn, not fork: the caller may hold threads or CUDA state that fork would copy.
    executor = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn")
    )
    try:
        chunksize = max(1, min(64, len(paths) // (workers * 8)))
        yield from executor.map(job, paths, chunksize=chunksize)
    finally:
        # On error or interrupt, drop the queued work instead of finishing it.
        executor.shutdown(wait=True, cancel_futures=True)


def _collect(
    roots: list[Path], out: Path
) -> tuple[list[tuple[int, str]], list[str], list[tuple[str, str]]]:
    """Every candidate file as (source index, relative posix path), its absolute path, and the
    folders that could not be read."""
    skip = set()
    if out.is_dir():
        # A previous dataset written inside a source must not be read back as images.
        stat = out.stat()
        skip.add((stat.st_dev, stat.st_ino))
    candidates: list[tuple[int, str]] = []
    absolute: list[str] = []
    walk_errors: list[tuple[str, str]] = []
    for index, root in enumerate(roots):
        found, errors = _walk(root, skip)
        walk_errors.extend(errors)
        if not found:
            raise DatasetError(f"{root} holds no files (hidden files are ignored)")
        candidates.extend((index, rel) for rel in found)
        if root.is_dir():
            absolute.extend(str(root.joinpath(*rel.split("/"))) for rel in found)
        else:
            absolute.append(str(root))
    return candidates, absolute, walk_errors


def _walk(root: Path, skip: set[tuple[int, int]]) -> tuple[list[str], list[tuple[str, str]]]:
    """Non-hidden files under `root` as sorted relative posix paths, plus unreadable folders.

    Symlinked folders are followed, but each real folder is visited once, so links that loop
    back (or point at a folder already walked) add nothing.
    """
    if not root.is_dir():
        return [root.name], []
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


def _truncate_rows(images_file: Path, rows: int) -> None:
    """Rewrite images.npy keeping only its first `rows` rows, streaming in chunks."""
    source = np.load(images_file, mmap_mode="r")
    partial = images_file.with_name(images_file.name + ".partial")
    target = np.lib.format.open_memmap(
        partial, mode="w+", dtype=source.dtype, shape=(rows, *source.shape[1:])
    )
    step = max(1, _COPY_CHUNK_BYTES // max(1, source[0].nbytes))
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        target[start:stop] = source[start:stop]
    target.flush()
    del target, source
    os.replace(partial, images_file)


def _val_indices(count: int, val_fraction: float, seed: int) -> list[int]:
    if val_fraction <= 0 or count < 2:
        return []
    # At least one image on each side: a split with an empty half is useless.
    take = min(max(round(val_fraction * count), 1), count - 1)
    chosen = np.random.default_rng(seed).choice(count, size=take, replace=False)
    return sorted(int(i) for i in chosen)


def _nothing_usable_message(roots: list[Path], dropped: list[tuple[str, str]]) -> str:
    where = ", ".join(str(root) for root in roots)
    groups = list(_group_by_reason(dropped).items())
    top = "; ".join(f"{len(paths)} × {kind} (e.g. {paths[0]})" for kind, paths in groups[:3])
    more = f"; and {len(groups) - 3} other reasons" if len(groups) > 3 else ""
    return f"no usable images in {where}: all {len(dropped)} files were rejected: {top}{more}"


def _reason_kind(reason: str) -> str:
    """'too large: 2000x2000 pixels > 10' → 'too large'; 'not an image (...)' → 'not an image'."""
    return re.split(r" \(|:", reason, maxsplit=1)[0].strip() or reason


def _group_by_reason(dropped: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for path, reason in dropped:
        groups.setdefault(_reason_kind(reason), []).append(path)
    return dict(sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])))


def _progress_bar(enabled: bool) -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files, {task.fields[rejected]} rejected"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _as_list(sources: Any) -> list[Any]:
    if isinstance(sources, str | os.PathLike):
        return [sources]
    return list(sources)


def _check_arguments(**given: Any) -> dict[str, Any]:
    """Validate prepare's arguments; returns them normalised (plain, JSON-friendly types)."""

    def whole(name: str, low: int, high: int | None = None) -> int:
        value = given[name]
        try:
            if isinstance(value, bool):
                raise TypeError
            number = operator.index(value)
        except TypeError:
            raise DatasetError(f"{name} must be a whole number, got {value!r}") from None
        if number < low or (high is not None and number > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise DatasetError(f"{name} must be {bounds}, got {number}")
        return number

    checked: dict[str, Any] = {"size": whole("size", 8, 4096), "channels": whole("channels", 1)}
    if checked["channels"] not in (1, 3):
        raise DatasetError(f"channels must be 1 (greyscale) or 3 (RGB), got {checked['channels']}")
    checked["labels"] = _check_labels(given["labels"])
    val_fraction = given["val_fraction"]
    try:
        checked["val_fraction"] = float(val_fraction)
    except (TypeError, ValueError):
        raise DatasetError(f"val_fraction must be a number, got {val_fraction!r}") from None
    if not 0.0 <= checked["val_fraction"] < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    checked["seed"] = whole("seed", 0)
    checked["background"] = list(_parse_background(given["background"]))
    checked["max_pixels"] = whole("max_pixels", 1)
    checked["min_size"] = whole("min_size", 0)
    checked["workers"] = None if given["workers"] is None else whole("workers", 1)
    return checked


def _check_labels(labels: Any) -> str:
    """'none', 'subfolders', or the absolute path of an existing .csv/.json mapping file."""
    if isinstance(labels, str) and labels in LABEL_MODES:
        return labels
    problem = ""
    if isinstance(labels, str | os.PathLike) and os.fspath(labels):
        path = Path(os.fspath(labels)).expanduser()
        if path.suffix.lower() in LABEL_FILE_TYPES:
            if path.is_file():
                return str(path.resolve())
            problem = f" ({path} does not exist)" if not path.exists() else " (not a file)"
    raise DatasetError(
        f"labels must be 'none', 'subfolders' or the path of an existing .csv/.json file"
        f" mapping file → class, got {labels!r}{problem}"
    )


def _parse_background(background: Any) -> tuple[int, int, int]:
    """(r, g, b), a grey level or a colour string → (r, g, b)."""
    try:
        if isinstance(background, str):
            from PIL import ImageColor

            rgb = ImageColor.getrgb(background)[:3]
        elif isinstance(background, int) and not isinstance(background, bool):
            rgb = (background,) * 3
        else:
            rgb = tuple(operator.index(c) for c in background)
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise DatasetError(
            f"background must be (r, g, b) with values 0-255, a grey level or a colour name, "
            f"got {background!r}"
        )
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def _check_sources(sources: list[str]) -> list[Path]:
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


def _check_out(out: Path, roots: list[Path], overwrite: bool) -> None:
    resolved = out.expanduser().resolve()
    for root in roots:
        if root == resolved or resolved in root.parents:
            raise DatasetError(f"source {root} lies inside the output {out}; choose another --out")
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        raise DatasetError(f"{out} already exists; pass --overwrite to replace it")
    # --overwrite replaces datasets, never a folder of someone's pictures given by mistake.
    if not out.is_dir() or out.is_symlink():
        raise DatasetError(f"{out} exists and is not a dataset directory; refusing to replace it")
    if any(out.iterdir()) and not _is_dataset_dir(out):
        raise DatasetError(
            f"{out} exists and is not a ganvas dataset (no {FORMAT_NAME} manifest.json); "
            "refusing to replace it even with --overwrite: choose another --out"
        )


def _is_dataset_dir(path: Path) -> bool:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME
