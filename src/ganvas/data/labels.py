"""Class labels for `prepare`: from first-level folder names or from a .csv/.json mapping file.

A mapping file names each image by its path relative to a source folder (or by its bare file
name) and gives its class; `match_labels` pairs those names with the files found. With
`--labels auto` (the default), `decide_labels` uses the folder names when the layout is
unmistakably one folder per class, and says why not when it is almost that.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganvas.data.sources import SourceFile, looks_like_picture
from ganvas.data.store import DatasetError

LABEL_MODES = ("auto", "none", "subfolders")
LABEL_FILE_TYPES = (".csv", ".json")
NOT_IN_CLASS_FOLDER = "not inside a class subfolder (--labels subfolders)"
NOT_IN_FOUND_CLASS_FOLDER = "not inside a class subfolder (--labels auto)"
IS_LABEL_FILE = "the labels mapping file (--labels)"
# Column names (compared case-insensitively) of a mapping file, in order of preference.
FILE_COLUMNS = ("file", "filename", "path", "image")
CLASS_COLUMNS = ("label", "class", "category", "genre", "style")
AMBIGUOUS_EXAMPLES = 5
NAMES_SHOWN = 8  # class folder names listed in a summary line


@dataclass
class LabelMapping:
    """A --labels mapping file, read: file key (a relative path or a bare name) → class."""

    path: Path
    sha256: str
    classes: dict[str, str]  # normalised file key → class name, in file order


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


def match_labels(
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
        shown = ", ".join(ambiguous[:AMBIGUOUS_EXAMPLES])
        extra = len(ambiguous) - AMBIGUOUS_EXAMPLES
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


def is_same_file(candidate: str, target: Path) -> bool:
    """Whether `candidate` is the file `target` (cheap name check first)."""
    if os.path.basename(candidate) != target.name:
        return False
    try:
        return os.path.samefile(candidate, target)
    except OSError:
        return False


@dataclass(frozen=True)
class ClassFolders:
    """What `--labels auto` saw in a single folder source: the first-level folders that hold
    pictures, and the pictures lying directly in the source folder."""

    root: Path
    folders: list[str]
    loose: list[str]

    @property
    def usable(self) -> bool:
        """Whether the folders are the classes: two or more, and no picture outside them."""
        return len(self.folders) >= 2 and not self.loose

    def why_not(self) -> str:
        if self.loose and self.folders:
            count = "1 picture lies" if len(self.loose) == 1 else f"{len(self.loose)} pictures lie"
            return (
                f"{count} directly in {self.root} (e.g. {self.loose[0]}), beside the subfolders"
                f" ({_shown(self.folders)})"
            )
        if self.folders:
            return f"only one subfolder ({self.folders[0]}) holds pictures"
        return "no subfolder holds pictures"


@dataclass(frozen=True)
class Labelling:
    """How prepare labels the files: `--labels` as given, and what it comes to."""

    asked: str  # the labels setting: a mode of LABEL_MODES or a mapping file's path
    # "none", "subfolders", "container" (each dataset container's own labels: CIFAR's, an
    # archive's folders…) or the mapping file's path ("auto" decided)
    mode: str
    found: ClassFolders | None = None  # what "auto" saw; None: not auto, or not one folder
    sources_note: str = ""  # why containers among the sources give no labels

    @property
    def outside_folder_reason(self) -> str:
        """The drop reason of a file outside every class folder."""
        return NOT_IN_CLASS_FOLDER if self.asked == "subfolders" else NOT_IN_FOUND_CLASS_FOLDER

    def why_unlabelled(self) -> str:
        """Why a run without labels has none (for errors about options that need them)."""
        if self.asked == "none":
            return "--labels is 'none'"
        if self.sources_note:
            return self.sources_note
        if self.found is None:
            return "--labels auto looks for class folders only when the one source is a folder"
        return f"--labels auto found no class folders: {self.found.why_not()}"

    def note(self, classes: list[str]) -> str:
        """The summary's line on what `--labels auto` did; '' when there is nothing to say."""
        if self.mode == "container" and classes:
            return (
                f"labels: {len(classes)} classes from the sources ({_shown(classes)});"
                " --labels none ignores them"
            )
        if self.asked == "auto" and self.sources_note:
            return f"labels: none, as {self.sources_note}"
        found = self.found
        if self.asked != "auto" or found is None or not found.folders:
            return ""
        if found.usable:
            return (
                f"labels: {len(classes)} classes from subfolders ({_shown(classes)});"
                " --labels none ignores them"
            )
        if found.loose:
            return (
                f"labels: none, as {found.why_not()}; put loose pictures in a class folder, or"
                " pass --labels subfolders to drop them and label the rest by folder"
            )
        return f"labels: none, as {found.why_not()}"


def decide_labels(labels: str, roots: list[Path], files: list[SourceFile]) -> Labelling:
    """Resolve the labels setting against the files found (only "auto" needs them)."""
    if labels != "auto":
        return Labelling(asked=labels, mode=labels)
    found = find_class_folders(roots, files)
    mode = "subfolders" if found is not None and found.usable else "none"
    return Labelling(asked=labels, mode=mode, found=found)


def find_class_folders(roots: list[Path], files: list[SourceFile]) -> ClassFolders | None:
    """The first-level folders holding pictures, and the loose pictures, of a single folder
    source; None for other sources. Pictures are told by their file extension."""
    if len(roots) != 1 or not roots[0].is_dir():
        return None
    folders: list[str] = []
    loose: list[str] = []
    for file in files:
        if not looks_like_picture(file.rel):
            continue
        folder, _, rest = file.rel.partition("/")
        if not rest:
            loose.append(file.rel)
        elif folder not in folders:
            folders.append(folder)
    return ClassFolders(root=roots[0], folders=sorted(folders), loose=loose)


def _shown(names: list[str]) -> str:
    more = len(names) - NAMES_SHOWN
    return ", ".join(names[:NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")
