"""The expensive half of `prepare`: read each picture once, measure it, cut its outputs.

A *unit* is one image file or one stretch of a video's frames. `scan_units` runs in worker
processes (no torch here) and returns, per unit, one `ItemRecord`-shaped dict per picture
(a file, or a frame) with everything the cheap selection step needs later: why it failed to
decode, the filter measurements (blank, text, sharpness, grayscale, perceptual hash), and how
many output images it produced. The pixels come back as arrays: the output images at the final
size, and one small thumbnail per picture for contact sheets of what gets dropped.

Nothing here decides what to keep, so thresholds can change without reading the files again.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ganvas.data import filters
from ganvas.data.formats.base import Chunk
from ganvas.data.images import ImageRejected, open_picture, open_picture_data, picture_from_array
from ganvas.data.transforms import (
    centre_square_box,
    crop_to_square_array,
    find_content_box,
    grid_boxes,
    random_resized_boxes,
)

THUMB_SIDE = 48
ANALYSIS_SIDE = 256


@dataclass(frozen=True)
class ScanSettings:
    """Everything that decides the pixels of the outputs (and so must match to resume).

    Made by `PrepareSettings.scan_settings()`, which holds the defaults and the checks.
    """

    size: int
    channels: int
    background: tuple[int, int, int]
    max_pixels: int
    min_size: int
    trim_borders: bool
    border_tolerance: float
    random_crops: int
    crop_scale: tuple[float, float]
    crop_ratio: tuple[float, float]
    mosaic: tuple[int, int] | None
    seed: int
    measure: bool  # take the filter measurements (off when no filter needs them)

    @property
    def outputs_per_picture(self) -> int:
        tiles = self.mosaic[0] * self.mosaic[1] if self.mosaic else 1
        return tiles * max(1, self.random_crops)

    @property
    def thumb_side(self) -> int:
        return min(self.size, THUMB_SIDE)

    def output_names(self) -> list[str]:
        """Suffix of each output of a picture, in order: '', '#tile=r,c', '#crop=k', both."""
        from ganvas.data.store import output_suffixes

        return output_suffixes(self.mosaic, self.random_crops)

    def draft_side(self) -> int | None:
        """Smallest side a JPEG may be decoded at and still give full-quality outputs."""
        side = self.size * 3
        if self.mosaic:
            side *= max(self.mosaic)
        if self.random_crops:
            side = math.ceil(side / math.sqrt(self.crop_scale[0]))
        return side if side <= 16384 else None


@dataclass(frozen=True)
class Unit:
    """One piece of work: an image file, or the frames of a video from `start` to `end`."""

    key: str  # identity in the resume journal: changes when the file does
    file_index: int  # position in the list of source files
    path: str
    name: str  # the file's manifest name ('source:relative path'); seeds its random crops
    video: bool = False
    start: float = 0.0  # seconds
    end: float | None = None  # seconds, exclusive; None: to the end of the film
    every: int = 1
    frames: int = 1  # how many pictures this unit is expected to yield (for the progress bar)
    container: str | None = None  # a dataset format (formats.FORMATS): `chunk` of its entries
    chunk: Chunk | None = None
    details: dict | None = field(default=None, compare=False)  # the format's plan details

    @property
    def many(self) -> bool:
        """Whether the unit yields many pictures (a stretch of film, a chunk of a container)."""
        return self.video or self.container is not None


@dataclass
class UnitResult:
    key: str
    items: list[dict]  # one per picture, see `_measure`
    outputs: np.ndarray  # uint8 [rows, size, size, channels]
    thumbs: np.ndarray  # uint8 [pictures that decoded, t, t, channels]


def scan_units(units: list[Unit], settings: ScanSettings) -> list[UnitResult]:
    """Read and measure the pictures of `units` (runs in a worker process)."""
    return [scan_unit(unit, settings) for unit in units]


def scan_unit(unit: Unit, settings: ScanSettings) -> UnitResult:
    items: list[dict] = []
    outputs: list[np.ndarray] = []
    thumbs: list[np.ndarray] = []

    def add(
        name: str, picture: Image.Image | None, reason: str | None, label: str | None = None
    ) -> None:
        item: dict = {"name": name, "reason": reason, "rows": 0}
        if label is not None:
            item["class"] = label
        if picture is not None:
            try:
                rows, thumb = _process(picture, unit.name + name, settings, item)
            except ImageRejected as rejected:
                item["reason"] = rejected.reason
            else:
                item["rows"] = len(rows)
                outputs.extend(rows)
                thumbs.append(thumb)
        items.append(item)

    if unit.video:
        _scan_video(unit, settings, add)
    elif unit.container is not None:
        _scan_container(unit, settings, add)
    else:
        try:
            picture = open_picture(
                unit.path,
                3,  # filters judge colour; greyscale outputs are converted after measuring
                settings.background,
                settings.max_pixels,
                settings.min_size,
                draft_side=settings.draft_side(),
            )
        except ImageRejected as rejected:
            add("", None, rejected.reason)
        else:
            add("", picture, None)
    shape = (settings.size, settings.size, settings.channels)
    thumb_shape = (settings.thumb_side, settings.thumb_side, settings.channels)
    return UnitResult(
        key=unit.key,
        items=items,
        outputs=np.stack(outputs) if outputs else np.zeros((0, *shape), np.uint8),
        thumbs=np.stack(thumbs) if thumbs else np.zeros((0, *thumb_shape), np.uint8),
    )


def _scan_video(unit: Unit, settings: ScanSettings, add: Callable[..., None]) -> None:
    from ganvas.data.video import iter_frames

    try:
        for index, _, rgb in iter_frames(
            unit.path, every=unit.every, start=unit.start, end=unit.end
        ):
            name = f"#frame={index}"
            height, width = rgb.shape[:2]
            if min(width, height) < settings.min_size:
                add(name, None, f"too small: {width}x{height} < {settings.min_size}")
                continue
            add(name, Image.fromarray(rgb), None)
    except ValueError as err:
        span = f"{unit.start:g}-{'end' if unit.end is None else f'{unit.end:g}'}s"
        add(f"#time={span}", None, f"cannot decode video ({err})")


def _scan_container(unit: Unit, settings: ScanSettings, add: Callable[..., None]) -> None:
    """The entries of one chunk of a dataset container (archive, LMDB, CIFAR, idx, parquet)."""
    from ganvas.data.formats import read

    assert unit.chunk is not None
    try:
        for entry in read(unit.container, unit.path, unit.chunk, unit.details or {}):
            if entry.error is not None or entry.data is None:
                add(entry.name, None, entry.error or "no picture", entry.label)
                continue
            try:
                if isinstance(entry.data, np.ndarray):
                    picture = picture_from_array(entry.data, 3, settings.min_size)
                else:
                    picture = open_picture_data(
                        entry.data,
                        3,
                        settings.background,
                        settings.max_pixels,
                        settings.min_size,
                        draft_side=settings.draft_side(),
                    )
            except ImageRejected as rejected:
                add(entry.name, None, rejected.reason, entry.label)
                continue
            add(entry.name, picture, None, entry.label)
    except (ValueError, OSError, EOFError) as err:  # DatasetError is a ValueError
        chunk = unit.chunk
        add(f"#entries={chunk.start}-{chunk.stop - 1}", None, f"cannot read ({err})")


def _process(
    picture: Image.Image, full_name: str, settings: ScanSettings, item: dict
) -> tuple[list[np.ndarray], np.ndarray]:
    """Trim, measure and cut one RGB picture; fills `item` with the measurements."""
    if settings.trim_borders:
        box = find_content_box(np.asarray(picture), tolerance=settings.border_tolerance)
        if box != (0, 0, *picture.size):
            picture = picture.crop(box)
            item["trimmed"] = list(box)
    width, height = picture.size
    if settings.measure:
        _measure(_analysis_view(picture), item)
    if settings.channels == 1:
        picture = picture.convert("L")

    regions = [(0, 0, width, height)]
    if settings.mosaic:
        rows, cols = settings.mosaic
        if width < cols or height < rows:
            raise ImageRejected(f"too small for a {rows}x{cols} mosaic: {width}x{height}")
        regions = grid_boxes(width, height, rows, cols)
    boxes: list[tuple[int, int, int, int]] = []
    rng = np.random.default_rng([settings.seed, _stable_hash(full_name)])
    for left, top, right, bottom in regions:
        if settings.random_crops:
            local = random_resized_boxes(
                right - left,
                bottom - top,
                settings.random_crops,
                rng,
                scale=settings.crop_scale,
                ratio=settings.crop_ratio,
            )
        else:
            local = [centre_square_box(right - left, bottom - top)]
        boxes.extend((left + a, top + b, left + c, top + d) for a, b, c, d in local)
    rows = [crop_to_square_array(picture, box, settings.size) for box in boxes]
    # The thumbnail shows the whole picture: the output itself for a plain centre crop.
    centre = centre_square_box(width, height)
    plain = boxes == [centre]
    thumb = rows[0] if plain else crop_to_square_array(picture, centre, settings.size)
    if settings.thumb_side != settings.size:
        small = Image.fromarray(thumb[..., 0] if settings.channels == 1 else thumb)
        small = small.resize((settings.thumb_side,) * 2, Image.Resampling.BILINEAR, reducing_gap=2)
        thumb = np.asarray(small).reshape(settings.thumb_side, settings.thumb_side, -1)
    return rows, thumb


def _analysis_view(picture: Image.Image) -> np.ndarray:
    """The centre square the filters judge: at most ANALYSIS_SIDE px, shrunk by a whole
    factor with a box filter. Judging near the picture's own scale, rather than after the
    resize to the output size, keeps lettering crisp for the text detector."""
    width, height = picture.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = picture.crop((left, top, left + side, top + side))
    factor = math.ceil(side / ANALYSIS_SIDE)
    if factor > 1:
        square = square.reduce(factor)
    elif side < 8:  # the Laplacian and the hash need a few pixels to work with
        square = square.resize((8, 8), Image.Resampling.NEAREST)
    return np.asarray(square)


def _measure(rgb: np.ndarray, item: dict) -> None:
    """The filter measurements of one picture, judged on its RGB analysis view."""
    item["blank"] = filters.is_blank(rgb)
    item["text"] = bool(filters.is_text_frame(rgb))
    item["sharpness"] = round(filters.sharpness(rgb), 3)
    item["grey"] = bool(filters.is_grayscale(rgb))
    item["hash"] = format(filters.perceptual_hash(rgb), "x")


def _stable_hash(text: str) -> int:
    """A seed from a name that is the same in every process and run (unlike hash())."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def file_key(path: str, extra: str = "") -> str:
    """Journal identity of a file: its path, size and modification time (and `extra`)."""
    info = os.stat(path)
    return f"{path}|{info.st_size}|{info.st_mtime_ns}{extra}"
