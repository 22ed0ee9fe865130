"""`ganvas prepare`: turn folders, list files and films into a dataset directory.

The work has two halves. *Scan* (scan.py) reads every picture once, in worker processes:
an image file, or every N-th frame of a video; it trims borders, cuts the outputs (a centre
crop, random crops, mosaic tiles) and records the filter measurements. Scanned units are
journalled to disk (journal.py), so an interrupted prepare picks up where it stopped. *Select*
(select.py) then decides, from the measurements alone, what the dataset keeps: filters,
near-duplicates, scenes, class balance. Every picture left out is listed in the manifest with
its reason, and each filter's drops are shown on a contact sheet in <dataset>/dropped/.

Memory stays bounded whatever the size of the collection: a few units are in flight at a
time, output pixels stream to a file on disk and into images.npy, and what the main process
keeps per picture is numpy columns (journal records, `Pictures`), tens of bytes each; the
manifest lists a container's entries as ranges, not one name each.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import json
import math
import multiprocessing
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ganvas.data import formats
from ganvas.data.formats import Plan
from ganvas.data.journal import MEASURES, ScanJournal, UnitRecord, work_folder
from ganvas.data.labels import (
    IS_LABEL_FILE,
    LABEL_MODES,
    NOT_IN_CLASS_FOLDER,
    Labelling,
    LabelMapping,
    decide_labels,
    is_same_file,
    match_labels,
    read_label_mapping,
)
from ganvas.data.scan import ScanSettings, Unit, UnitResult, file_key, scan_unit, scan_units
from ganvas.data.select import Pictures, select_pictures
from ganvas.data.settings import PrepareSettings
from ganvas.data.sources import SourceFile, check_sources, collect_files
from ganvas.data.store import (
    FORMAT_NAME,
    DatasetError,
    ImagesWriter,
    base_manifest,
    finish_dataset_dir,
)
from ganvas.errors import is_disk_full
from ganvas.io import atomic_dir, save_image_atomic

if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table

__all__ = [
    "IS_LABEL_FILE",
    "NOT_IN_CLASS_FOLDER",
    "LabelMapping",
    "PrepareReport",
    "PrepareSettings",
    "prepare_dataset",
    "read_label_mapping",
]

_UNMATCHED_EXAMPLES = 20
_COPY_ROWS_BYTES = 16 * 1024 * 1024
_UNIT_BYTES = 48 * 1024 * 1024  # output pixels one video unit may carry back from a worker
_IMAGES_PER_TASK = 16
_SHEET_IMAGES = 64
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_TRIM_SECONDS = 2.0  # how often the scan returns freed memory to the system


@dataclass
class PrepareReport:
    """What `prepare_dataset` did: where the dataset went, how many images, what was dropped."""

    out: Path
    kept: int
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (absolute path, reason)
    classes: list[str] = field(default_factory=list)
    labels_note: str = ""  # what labels="auto" made of the folders, for the summary
    seconds: float = 0.0
    unmatched_labels: int = 0  # rows of a --labels mapping file that matched no file
    unmatched_label_examples: list[str] = field(default_factory=list)
    pictures: int = 0  # images and video frames read (before filters and crops)
    resumed: int = 0  # units an interrupted run had already read
    scenes: int = 0
    contact_sheets: dict[str, Path] = field(default_factory=dict)  # reason kind → sheet
    source_notes: list[str] = field(default_factory=list)  # what was read of each container

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


def prepare_dataset(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    settings: PrepareSettings | None = None,
    *,
    overwrite: bool = False,
    resume: bool = True,
    progress: bool = True,
    **overrides: Any,
) -> PrepareReport:
    """Read every image and video under `sources` into a dataset directory at `out`.

    Files are taken in sorted path order (list files in their own order). Each picture is
    optionally trimmed of uniform borders, then cut into outputs: one centre square by
    default, `random_crops` random crops, or the tiles of a `mosaic` (each tile centre-cropped,
    or randomly cropped when both are given), all resized to `size` at the end. Hidden files
    and folders are ignored; every other file that gives no image is listed with its reason.

    Args:
        sources: folders (walked recursively), image or video files, or list files (.txt /
            .lst, one path per line, relative to the list's folder).
        out: the dataset directory to create.
        settings: what to make of the sources (see `PrepareSettings` for every field and
            its default); None: the defaults.
        overwrite: replace an existing dataset at `out` (only once the new one is complete).
        resume: continue an interrupted prepare of the same settings (False starts over).
        progress: show a progress bar on stderr.
        **overrides: `PrepareSettings` fields by name, applied over `settings`
            (`prepare_dataset(src, out, size=128, dedupe=6)`).

    Returns:
        A `PrepareReport`; `report.summary_table()` explains what was dropped and
        `report.labels_note` what `labels="auto"` made of the folders.

    Raises:
        ConfigError: a bad or unknown setting.
        DatasetError: an unreadable or ambiguous labels file, a missing or empty source,
            `out` already exists (without `overwrite`), or nothing usable.
    """
    started = time.perf_counter()
    if settings is not None and not isinstance(settings, PrepareSettings):
        raise TypeError(
            f"settings must be a PrepareSettings, got {settings!r}; pass single settings by"
            " name (size=64)"
        )
    settings = (settings or PrepareSettings()).updated(**overrides)
    mapping = None
    if settings.labels not in LABEL_MODES:
        mapping = read_label_mapping(settings.labels)
    params = {
        "sources": [os.fspath(s) for s in _as_list(sources)],
        "out": os.fspath(out),
        **settings.as_params(),
        **({"labels_sha256": mapping.sha256} if mapping is not None else {}),
        "overwrite": bool(overwrite),
    }
    filter_settings = settings.filter_settings()
    scan_settings = settings.scan_settings()
    workers = settings.workers or os.cpu_count() or 1
    roots = check_sources(params["sources"])
    out = Path(out)
    _check_out(out, roots, overwrite)
    files, walk_errors = collect_files(roots, out)
    plans = _plan_containers(files, settings, scan_settings)
    labelling = _container_labelling(settings.labels, files, plans) or decide_labels(
        settings.labels, roots, files
    )

    # Dropped before reading: keyed by file index, so the listing follows file order.
    dropped: dict[int, tuple[str, str]] = {}
    class_of, unmatched = _assign_classes(files, labelling, mapping, dropped)
    _choose_classes(files, class_of, settings, labelling, dropped, plans)
    if settings.max_per_class is not None and labelling.mode == "none":
        raise DatasetError(f"max_per_class needs labels, but {labelling.why_unlabelled()}")

    units: list[Unit] = []
    for index, file in enumerate(files):
        if index in dropped:
            continue
        try:
            units.extend(_units_of(index, file, settings, scan_settings, plans.get(index)))
        except (ValueError, OSError) as err:  # a video PyAV cannot open, a vanished file
            dropped[index] = (file.path, str(err).replace(f" {file.path!r}", ""))

    journal = ScanJournal(work_folder(out), scan_settings, resume=resume)
    try:
        try:
            reused = _scan(units, scan_settings, journal, workers, progress, len(dropped))
        finally:
            formats.close_all_handles()  # what the readers opened in this process
        journal.sync()
        pictures = _pictures(units, files, journal, class_of, labelling, settings)
        names = _Names(units, files, journal, pictures)
        scenes = select_pictures(pictures, filter_settings, names.of)
        kept = pictures.alive()
        dropped_list = walk_errors + _dropped_in_order(files, dropped, pictures, names)
        if not len(kept):
            message = _nothing_usable_message(roots, dropped_list)
            if mapping is not None and unmatched:
                message += (
                    f"; {len(unmatched)} files named in {mapping.path.name} were not found"
                    f" (e.g. {', '.join(unmatched[:3])}): its paths must be relative to the"
                    " source folder, or bare file names"
                )
            if not pictures.rows.any():
                journal.remove()  # nothing decoded: nothing worth keeping for a rerun
            else:
                message += "; what was read is kept, so a rerun with other filters is quick"
            raise DatasetError(message)
        class_names = []
        if labelling.mode != "none":
            codes = np.unique(pictures.class_id[kept])
            class_names = sorted(pictures.classes[c] for c in codes.tolist() if c >= 0)
        manifest = base_manifest(scan_settings.size, scan_settings.channels, class_names)
        manifest["sources"] = [str(root) for root in roots]
        if plans:
            manifest["formats"] = {files[i].name: plan.format for i, plan in plans.items()}
        manifest["params"] = params
        if mapping is not None:
            manifest["unmatched_labels"] = len(unmatched)
            manifest["unmatched_label_examples"] = unmatched[:_UNMATCHED_EXAMPLES]
        if scan_settings.measure:  # without hashes every stream is one "scene"
            manifest["scenes"] = scenes
        with atomic_dir(out, overwrite=overwrite) as tmp:
            count = _write_dataset(tmp, pictures, kept, units, names, journal, settings,
                                   class_names, manifest, dropped_list)  # fmt: skip
            sheets = _write_contact_sheets(tmp, pictures, journal)
    except BaseException as err:
        try:
            journal.close()  # keeps the work for the next run
        except OSError:
            if not is_disk_full(err):
                raise
        if is_disk_full(err):
            raise DatasetError(
                f"disk full while writing the dataset {out} ({err.strerror or err}): nothing "
                f"was written there (a dataset dir appears only once complete); what was read "
                f"so far is kept in {work_folder(out)}. Free some space and run the same command "
                "again to continue"
            ) from err
        raise
    journal.remove()
    return PrepareReport(
        out=out,
        kept=count,
        dropped=dropped_list,
        classes=class_names,
        labels_note=labelling.note(class_names),
        seconds=time.perf_counter() - started,
        unmatched_labels=len(unmatched),
        unmatched_label_examples=unmatched[:_UNMATCHED_EXAMPLES],
        pictures=len(pictures),
        resumed=reused,
        scenes=scenes if scan_settings.measure else 0,
        contact_sheets={kind: out / "dropped" / path.name for kind, path in sheets.items()},
        source_notes=[plan.note for plan in plans.values() if plan.note],
    )


def _assign_classes(
    files: list[SourceFile],
    labelling: Labelling,
    mapping: LabelMapping | None,
    dropped: dict[int, tuple[str, str]],
) -> tuple[dict[int, str], list[str]]:
    """Class name of each file index (as the labels option says), and unmatched mapping rows."""
    class_of: dict[int, str] = {}
    unmatched: list[str] = []
    if labelling.mode == "subfolders":
        for i, file in enumerate(files):
            if file.container is not None:  # labelled by its own entries
                continue
            if "/" in file.rel:
                class_of[i] = file.rel.split("/", 1)[0]
            else:
                dropped[i] = (file.path, labelling.outside_folder_reason)
    elif mapping is not None:
        for i, file in enumerate(files):
            if is_same_file(file.path, mapping.path):
                dropped[i] = (file.path, IS_LABEL_FILE)
        named = [(i, (f.source, f.rel)) for i, f in enumerate(files) if i not in dropped]
        class_of, unmatched = match_labels(mapping, named)
        no_label = f"no label in {mapping.path.name}"
        for i, _ in named:
            if i not in class_of:
                dropped[i] = (files[i].path, no_label)
    return class_of, unmatched


def _choose_classes(
    files: list[SourceFile],
    class_of: dict[int, str],
    settings: PrepareSettings,
    labelling: Labelling,
    dropped: dict[int, tuple[str, str]],
    plans: dict[int, Plan],
) -> None:
    """Apply `classes` / `exclude_classes`: files of other classes are not even read (entries
    of containers are read, and dropped by `_pictures`)."""
    wanted, unwanted = settings.classes, settings.exclude_classes
    if not wanted and not unwanted:
        return
    if labelling.mode == "none":
        raise DatasetError(
            f"classes / exclude_classes need labels, but {labelling.why_unlabelled()}"
        )
    known = sorted(
        set(class_of.values()) | {name for plan in plans.values() for name in plan.classes or []}
    )
    for name in [*(wanted or []), *(unwanted or [])]:
        if name not in known:
            raise DatasetError(
                f"no class named {name!r}; the sources have: {', '.join(known) or 'none'}"
            )
    for i, name in class_of.items():
        if wanted and name not in wanted:
            dropped[i] = (files[i].path, "class not chosen (--classes)")
        elif unwanted and name in unwanted:
            dropped[i] = (files[i].path, "class excluded (--exclude-classes)")


def _plan_containers(
    files: list[SourceFile], prepare: PrepareSettings, settings: ScanSettings
) -> dict[int, Plan]:
    """The plan of each dataset container among the files, by file index."""
    per_chunk = max(
        1, min(512, _UNIT_BYTES // (settings.outputs_per_picture * _row_bytes(settings)))
    )
    try:
        return {
            i: formats.plan(
                file.container, file.path, per_chunk, prepare.source_split, prepare.coarse_labels
            )
            for i, file in enumerate(files)
            if file.container is not None
        }
    finally:
        formats.close_all_handles()  # plans hold no handles; the scan opens its own


def _container_labelling(
    labels: str, files: list[SourceFile], plans: dict[int, Plan]
) -> Labelling | None:
    """How sources that are dataset containers are labelled; None when there are none."""
    if not plans:
        return None
    if labels not in LABEL_MODES:
        names = ", ".join(files[i].rel for i in plans)
        raise DatasetError(
            f"--labels {labels}: a mapping file labels image files, but {names} carries its"
            " own labels; use --labels auto (or none)"
        )
    if labels == "none":
        return Labelling(asked=labels, mode="none")
    if labels == "subfolders":  # folders by folder, containers by their own labels
        return Labelling(asked=labels, mode="subfolders")
    unlabelled = [files[i].rel for i, plan in plans.items() if not plan.classes]
    if not unlabelled and len(plans) == len(files):
        return Labelling(asked=labels, mode="container")
    if unlabelled:
        why = f"{', '.join(unlabelled)} carries no labels"
    else:
        why = "the sources mix dataset containers with image files"
    return Labelling(asked=labels, mode="none", sources_note=why)


def _units_of(
    index: int,
    file: SourceFile,
    prepare: PrepareSettings,
    settings: ScanSettings,
    plan: Plan | None = None,
) -> list[Unit]:
    """The work units of one file: itself, stretches of a video's frames, or the chunks of a
    dataset container."""
    if plan is not None:
        options = "|".join(str(o) for o in plan.options)
        return [
            Unit(
                key=file_key(plan.identity, f"|{plan.format}|{c.start}-{c.stop}|{options}"),
                file_index=index,
                path=file.path,
                name=file.name,
                frames=c.count,
                container=plan.format,
                chunk=c,
                details=plan.details,
            )
            for c in plan.chunks
        ]
    if not file.is_video:
        return [Unit(key=file_key(file.path), file_index=index, path=file.path, name=file.name)]
    from ganvas.data.video import frame_count_estimate, frame_rate

    every, start, end = prepare.every, prepare.start, prepare.end
    fps = frame_rate(file.path)
    total = frame_count_estimate(file.path)

    def unit(first_s: float, stop_s: float | None, frames: int) -> Unit:
        key = file_key(file.path, f"|{first_s:.6f}-{stop_s}|every={every}")
        return Unit(key, index, file.path, file.name, True, first_s, stop_s, every, frames)

    if not fps or total is None:  # no frame grid to cut along: one unit, read to the end
        return [unit(start, end, 1)]
    first = math.ceil(start * fps - 1e-6)
    first = -(-first // every) * every  # the first multiple of `every` at or after it
    stop = total if end is None else min(total, math.ceil(end * fps - 1e-6))
    if first >= stop:
        raise ValueError(f"no frames between {start} s and {end} s (the video has {total})")
    per_unit = max(
        1, min(512, _UNIT_BYTES // (settings.outputs_per_picture * _row_bytes(settings)))
    )
    span = per_unit * every
    bounds = list(range(first, stop, span))
    units = []
    for k, a in enumerate(bounds):
        b = bounds[k + 1] if k + 1 < len(bounds) else None
        frames = -(-((b if b is not None else stop) - a) // every)
        # The last unit runs to the user's end (or the film's): frame counts are estimates.
        units.append(unit(a / fps, b / fps if b is not None else end, frames))
    return units


def _row_bytes(settings: ScanSettings) -> int:
    return settings.size * settings.size * settings.channels


def _scan(
    units: list[Unit],
    settings: ScanSettings,
    journal: ScanJournal,
    workers: int,
    progress: bool,
    rejected_before: int,
) -> int:
    """Scan every unit the journal does not hold yet; returns how many it already held."""
    pending = [u for u in units if u.key not in journal.entries]
    done_before = [u for u in units if u.key in journal.entries]
    rejected = rejected_before + sum(len(journal.entries[u.key].reasons) for u in done_before)
    with _progress_bar(progress) as bar:
        task = bar.add_task(
            "reading",
            total=sum(u.frames for u in units),
            completed=sum(u.frames for u in done_before),
            rejected=rejected,
        )
        trimmed = time.monotonic()
        for unit, result in zip(pending, _run_units(pending, settings, workers), strict=True):
            journal.add(result)
            rejected += sum(1 for item in result.items if item["reason"])
            bar.update(task, advance=unit.frames, rejected=rejected)
            del result
            if time.monotonic() - trimmed >= _TRIM_SECONDS:
                _return_free_memory()
                trimmed = time.monotonic()
    _return_free_memory()
    return len(done_before)


@functools.cache
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def _return_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc). The workers' results, a chunk
    of pixels each, are unpickled in the pool's thread and freed here; the holes they leave
    between what stays kept the main process's RSS growing with the collection (by 20 MiB
    over 200,000 LSUN entries, measured) though nothing in them was alive."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _run_units(units: list[Unit], settings: ScanSettings, workers: int) -> Iterator[UnitResult]:
    """Scan results of `units`, in order, from at most 2 × `workers` tasks in flight."""
    tasks: list[list[Unit]] = []
    for unit in units:
        if tasks and not unit.many and not tasks[-1][-1].many and len(tasks[-1]) < _IMAGES_PER_TASK:
            tasks[-1].append(unit)
        else:
            tasks.append([unit])
    workers = min(workers, len(tasks))
    if workers <= 1:
        for unit in units:
            yield scan_unit(unit, settings)
        return
    # spawn, not fork: the caller may hold threads or CUDA state that fork would copy.
    context = multiprocessing.get_context("spawn")
    with (
        _one_thread_per_worker(),
        ProcessPoolExecutor(max_workers=workers, mp_context=context) as executor,
    ):
        in_flight: collections.deque[Future] = collections.deque()
        queue = iter(tasks)
        try:
            for task in queue:
                in_flight.append(executor.submit(scan_units, task, settings))
                if len(in_flight) >= 2 * workers:
                    yield from in_flight.popleft().result()
            while in_flight:
                yield from in_flight.popleft().result()
        finally:
            # On error or interrupt, drop the queued work instead of finishing it.
            for future in in_flight:
                future.cancel()
            executor.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _one_thread_per_worker() -> Iterator[None]:
    """Workers spawned inside inherit single-threaded numeric libraries: with one process per
    core, a BLAS thread pool in each would oversubscribe the cores (measured: 2x slower)."""
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(_THREAD_VARIABLES, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _pictures(
    units: list[Unit],
    files: list[SourceFile],
    journal: ScanJournal,
    class_of: dict[int, str],
    labelling: Labelling,
    prepare: PrepareSettings,
) -> Pictures:
    """Every scanned item as `Pictures` columns, in unit order, pointing at its journal rows.

    Entries of dataset containers carry their own class; those of classes not chosen (or
    without one when the dataset is labelled) are dropped here, as they are known only now.
    """
    wanted, unwanted = prepare.classes, prepare.exclude_classes
    labelled = labelling.mode != "none"
    # Classes: the folders' (class_of) and the containers' (journal codes), in one table.
    classes = sorted(set(class_of.values()) | set(journal.class_names))
    lookup = {name: k for k, name in enumerate(classes)}
    from_journal = np.array([lookup[n] for n in journal.class_names] + [-1], np.int32)
    not_chosen = np.array([bool(wanted) and n not in wanted for n in classes] + [False])
    excluded = np.array([bool(unwanted) and n in unwanted for n in classes] + [False])
    records = [journal.entries[unit.key] for unit in units]
    sizes = np.array([r.items for r in records], np.int64)
    unit_start = np.cumsum(sizes) - sizes
    n = int(sizes.sum())
    # Filled a unit at a time: no per-unit pieces to concatenate (which would double them).
    unit_of = np.repeat(np.arange(len(units), dtype=np.int32), sizes)
    class_id = np.full(n, -1, np.int32)
    rows = np.zeros(n, np.int32)
    row0 = np.zeros(n, np.int64)
    thumb = np.full(n, -1, np.int32)
    measured = any(r.measures is not None for r in records)
    measures = np.zeros(n if measured else 1, MEASURES)
    measures["blank"] = -1
    streams: dict[str, int] = {}
    unit_stream = np.zeros(len(units), np.int32)
    reasons: dict[int, str] = {}
    for u, (unit, record) in enumerate(zip(units, records)):
        here = slice(int(unit_start[u]), int(unit_start[u] + record.items))
        offset = here.start
        file = files[unit.file_index]
        stream = f"video {unit.file_index}" if unit.video else f"source {file.source}"
        unit_stream[u] = streams.setdefault(stream, len(streams))
        rows[here] = record.rows
        row0[here] = record.row0 + np.cumsum(record.rows, dtype=np.int64) - record.rows
        decoded = record.rows > 0
        # Each picture that decoded has one thumbnail, in order.
        thumb[here] = np.where(decoded, record.thumb0 + np.cumsum(decoded) - 1, -1)
        if unit.container is None:
            class_id[here] = lookup.get(class_of.get(unit.file_index, ""), -1)
        elif labelled and record.labels is not None:
            class_id[here] = from_journal[record.labels]
        if record.measures is not None:
            measures[here] = record.measures
        for k, reason in record.reasons.items():
            reasons[offset + k] = reason
        if unit.container is not None and labelled:
            ok = np.ones(record.items, bool)
            if record.reasons:
                ok[list(record.reasons)] = False
            codes = class_id[here]
            for mask, reason in (
                (codes < 0, f"no label ({file.rel} gives this entry none)"),
                (not_chosen[codes], "class not chosen (--classes)"),
                (excluded[codes], "class excluded (--exclude-classes)"),
            ):
                hit = np.flatnonzero(ok & mask)
                for k in hit.tolist():
                    reasons[offset + k] = reason
                ok[hit] = False
                thumb[offset + hit] = -1  # a class left out is no finding worth a contact sheet
    if not measured:  # zeros of stride 0: no memory for what was never measured
        measures = np.broadcast_to(measures, (n,))
    return Pictures(
        unit=unit_of,
        class_id=class_id,
        rows=rows,
        row0=row0,
        thumb=thumb,
        **{name: measures[name] for name in ("blank", "text", "sharpness", "grey", "hash")},
        unit_start=unit_start,
        unit_file=np.array([unit.file_index for unit in units], np.int32),
        unit_stream=unit_stream,
        classes=classes,
        blank_kinds=list(journal.blank_kinds),
        reasons=reasons,
    )


class _Names:
    """Names and paths of pictures, read back from the journal a unit at a time (the main
    process keeps no name per picture; the few it needs are the dropped ones and, for
    image files and films, the kept ones)."""

    def __init__(
        self, units: list[Unit], files: list[SourceFile], journal: ScanJournal, pictures: Pictures
    ) -> None:
        self.units, self.files, self.journal, self.pictures = units, files, journal, pictures
        self._cached: tuple[int, list[str]] = (-1, [])

    def items(self, u: int) -> list[str]:
        """The item names of unit `u` (the last unit asked for is kept)."""
        if self._cached[0] != u:
            unit = self.units[u]
            record: UnitRecord = self.journal.entries[unit.key]
            if unit.video or unit.container is not None:
                self._cached = (u, self.journal.item_names(record))
            else:  # an image file is its one picture, named as the file
                self._cached = (u, [""] * record.items)
        return self._cached[1]

    def of(self, i: int) -> str:
        """The manifest name of picture i ('source:relative path' + the item's name)."""
        u, k = int(self.pictures.unit[i]), self.pictures.item(i)
        return self.files[self.units[u].file_index].name + self.items(u)[k]


def _dropped_in_order(
    files: list[SourceFile],
    dropped: dict[int, tuple[str, str]],
    pictures: Pictures,
    names: _Names,
) -> list[tuple[str, str]]:
    """Files dropped before reading and pictures dropped after, in file order."""
    by_file: dict[int, list[tuple[str, str]]] = {i: [entry] for i, entry in dropped.items()}
    for i in sorted(pictures.reasons):
        u, k = int(pictures.unit[i]), pictures.item(i)
        file_index = pictures.file_index(i)
        path = files[file_index].path + names.items(u)[k]
        by_file.setdefault(file_index, []).append((path, pictures.reasons[i]))
    return [entry for i in sorted(by_file) for entry in by_file[i]]


def _write_dataset(
    folder: Path,
    pictures: Pictures,
    kept: np.ndarray,
    units: list[Unit],
    names: _Names,
    journal: ScanJournal,
    prepare: PrepareSettings,
    class_names: list[str],
    manifest: dict[str, Any],
    dropped: list[tuple[str, str]],
) -> int:
    """images.npy (streamed from the journal), labels, manifest and preview into `folder`."""
    settings = prepare.scan_settings()
    count = int(pictures.rows[kept].sum())
    label_array = None
    if class_names:
        lookup = np.array([class_names.index(n) if n in class_names else -1
                           for n in pictures.classes] + [-1], np.int64)  # fmt: skip
        label_array = np.repeat(lookup[pictures.class_id[kept]], pictures.rows[kept])
    images_file = folder / "images.npy"
    writer = ImagesWriter(images_file, (count, *journal.row_shape))
    step = max(1, _COPY_ROWS_BYTES // _row_bytes(settings))
    # A block of pictures at a time (at most `step` rows), not a row number per image.
    per_picture = settings.outputs_per_picture
    for begin in range(0, len(kept), max(1, step // per_picture)):
        chosen = kept[begin : begin + max(1, step // per_picture)]
        counts = pictures.rows[chosen].astype(np.int64)
        # The scan row of each image of the block: each picture's run of `counts` rows.
        rows = np.repeat(pictures.row0[chosen] - (np.cumsum(counts) - counts), counts)
        writer.write(journal.read_rows(rows + np.arange(len(rows))))
    digest = writer.finish(label_array)
    manifest["files"] = _manifest_files(pictures, kept, units, names, settings.output_names())
    manifest["dropped"] = [{"path": path, "reason": reason} for path, reason in dropped]
    manifest["splits"] = {"val": _val_indices(count, prepare.val_fraction, prepare.seed)}
    manifest["scan"] = asdict(settings)
    readonly = np.load(images_file, mmap_mode="r")
    finish_dataset_dir(folder, readonly, label_array, manifest, known_hash=digest)
    del readonly
    return count


def _manifest_files(
    pictures: Pictures, kept: np.ndarray, units: list[Unit], names: _Names, suffixes: list[str]
) -> list[str | dict[str, Any]]:
    """What each dataset image is, in order: a name for a picture of an image file or a film
    ('0:cats/1.png', '0:film.mp4#frame=12', with '#crop=k' suffixes), and for the entries of a
    container one range record per stretch of entries: {"container": '0:bedroom_train_lmdb',
    "entries": [[first, stop], ...], "outputs": images per entry} (see `store.file_names`)."""
    files: list[str | dict[str, Any]] = []
    # Kept pictures unit by unit: [start, stop) positions in `kept` of each unit's run.
    units_kept = pictures.unit[kept]
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(units_kept)) + 1, [len(kept)]])
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        if start == stop:
            continue
        u = int(units_kept[start])
        unit = units[u]
        chosen = kept[start:stop]
        counts = pictures.rows[chosen]
        name = names.files[unit.file_index].name
        if unit.container is None:
            items = names.items(u)
            for k, count in zip(pictures.items(chosen).tolist(), counts.tolist()):
                files.extend(name + items[k] + suffix for suffix in suffixes[:count])
            continue
        assert unit.chunk is not None
        entries = unit.chunk.start + pictures.items(chosen)
        # Runs of consecutive entries giving as many images each.
        cut = np.flatnonzero((np.diff(entries) != 1) | (np.diff(counts) != 0)) + 1
        for a, b in zip([0, *cut.tolist()], [*cut.tolist(), len(entries)]):
            first, last, outputs = int(entries[a]), int(entries[b - 1]) + 1, int(counts[a])
            previous = files[-1] if files else None
            if (
                isinstance(previous, dict)
                and previous["container"] == name
                and previous["outputs"] == outputs
            ):
                if previous["entries"][-1][1] == first:
                    previous["entries"][-1][1] = last
                else:
                    previous["entries"].append([first, last])
            else:
                files.append({"container": name, "entries": [[first, last]], "outputs": outputs})
    return files


def _write_contact_sheets(
    folder: Path, pictures: Pictures, journal: ScanJournal
) -> dict[str, Path]:
    """dropped/<reason>.png: the first pictures each kind of reason left out."""
    from ganvas.grid import image_grid, to_pil

    by_kind: dict[str, list[int]] = {}
    for i in sorted(pictures.reasons):
        thumb = int(pictures.thumb[i])
        if thumb >= 0:
            by_kind.setdefault(_reason_kind(pictures.reasons[i]), []).append(thumb)
    if not by_kind:
        return {}
    thumbs = journal.thumbs()
    sheets: dict[str, Path] = {}
    for kind, indices in by_kind.items():
        slug = re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-") or "other"
        path = folder / "dropped" / f"{slug}.png"
        path.parent.mkdir(exist_ok=True)
        save_image_atomic(path, to_pil(image_grid(np.asarray(thumbs[indices[:_SHEET_IMAGES]]))))
        sheets[kind] = path
    return sheets


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
        TextColumn("pictures, {task.fields[rejected]} unreadable"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _as_list(sources: Any) -> list[Any]:
    if isinstance(sources, str | os.PathLike):
        return [sources]
    return list(sources)


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
