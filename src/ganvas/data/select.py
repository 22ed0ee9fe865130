"""The cheap half of `prepare`: decide which scanned pictures become dataset images.

Runs on the measurements `scan` recorded, in this order, each step seeing only what the
previous ones kept: grayscale subset → blank frames → title/text frames → blur → scenes →
near-duplicates (the sharpest of each group stays) → at most N per scene → at most N
images per class. Every picture left out gets a reason that names the option responsible.

The pictures are columns (`Pictures`, numpy arrays over every picture scanned) and reasons a
sparse map of the few left out, so selecting among 3 million LSUN entries holds arrays, not a
Python object per picture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ganvas.data.filters import _popcount, group_near_duplicates, keep_sharpest

GRAYSCALE_MODES = ("keep", "drop", "only")


@dataclass(frozen=True)
class FilterSettings:
    """Which pictures to leave out; made by `PrepareSettings.filter_settings()`."""

    drop_blank: bool
    drop_text: bool
    blur: float | None  # drop pictures whose sharpness is below this
    blur_percentile: float | None  # ... or below this percentile of the set
    dedupe: int | None  # near-duplicate when perceptual hashes differ by <= this many bits
    grayscale: str
    scene_distance: int  # consecutive frames further apart than this start a new scene
    max_per_scene: int | None
    max_per_class: int | None
    seed: int

    @property
    def needs_measurements(self) -> bool:
        """Whether any step looks at the scan's measurements (hash, sharpness, ...)."""
        return (
            self.drop_blank
            or self.drop_text
            or self.blur is not None
            or self.blur_percentile is not None
            or self.dedupe is not None
            or self.grayscale != "keep"
            or self.max_per_scene is not None
        )


@dataclass
class Pictures:
    """Every scanned picture (an image file, a video frame, a container entry), as columns.

    Picture i is picture `item(i)` of unit `unit[i]` of the scan (units in order, each one's
    pictures together); its name is found through those (see prepare) rather than kept here.
    About 24 bytes a picture, plus 19 when the scan measured for the filters: with nothing
    measured the measurement columns are zeros of stride 0, which take no memory.
    """

    unit: np.ndarray  # int32 [n]: which unit of the scan
    class_id: np.ndarray  # int32 [n]: index into `classes`, -1: no class
    rows: np.ndarray  # int32 [n]: how many of its outputs the dataset takes
    row0: np.ndarray  # int64 [n]: its first output row in the scan
    thumb: np.ndarray  # int32 [n]: its thumbnail in the scan, -1: none (or not worth a sheet)
    blank: np.ndarray  # int8 [n]: index into `blank_kinds`, -1: has content
    text: np.ndarray  # bool [n]
    sharpness: np.ndarray  # float64 [n]
    grey: np.ndarray  # bool [n]
    hash: np.ndarray  # uint64 [n]
    unit_start: np.ndarray  # int64 [units]: the index of each unit's first picture
    unit_file: np.ndarray  # int32 [units]: the source file of each unit
    unit_stream: np.ndarray  # int32 [units]: pictures of one stream in order form scenes
    classes: list[str] = field(default_factory=list)
    blank_kinds: list[str] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)  # picture → why it is left out
    scene: np.ndarray | None = None  # int32 [n] (-1: left out before), for --max-per-scene

    def __len__(self) -> int:
        return len(self.unit)

    def item(self, i: int) -> int:
        """Which picture of its unit picture i is."""
        return i - int(self.unit_start[self.unit[i]])

    def items(self, indices: np.ndarray) -> np.ndarray:
        return indices - self.unit_start[self.unit[indices]]

    def file_index(self, i: int) -> int:
        return int(self.unit_file[self.unit[i]])

    def alive(self) -> np.ndarray:
        """Indices of the pictures no step has left out yet, in order."""
        keep = np.ones(len(self), bool)
        if self.reasons:
            keep[np.fromiter(self.reasons, np.int64, len(self.reasons))] = False
        return np.flatnonzero(keep)

    def drop(self, indices: np.ndarray, reason: str) -> None:
        for i in indices.tolist():
            self.reasons[i] = reason


def select_pictures(
    pictures: Pictures, settings: FilterSettings, name_of: Callable[[int], str] = str
) -> int:
    """Add a reason for every picture the filters leave out (and trim `rows` for balance).

    Args:
        pictures: the scanned pictures; `pictures.reasons` grows.
        settings: which filters apply.
        name_of: the manifest name of picture i (for "near-duplicate of NAME").

    Returns:
        The number of scenes found among the pictures that reached the scene step.
    """
    p = pictures
    if settings.grayscale == "drop":
        alive = p.alive()
        p.drop(alive[p.grey[alive]], "grayscale (--grayscale drop)")
    elif settings.grayscale == "only":
        alive = p.alive()
        p.drop(alive[~p.grey[alive]], "in colour (--grayscale only)")
    if settings.drop_blank:
        alive = p.alive()
        for i in alive[p.blank[alive] >= 0].tolist():
            p.reasons[i] = f"{p.blank_kinds[p.blank[i]]} (--drop-blank)"
    if settings.drop_text:
        alive = p.alive()
        p.drop(alive[p.text[alive]], "title or text frame (--drop-text)")
    _drop_blurry(p, p.alive(), settings)

    keep = settings.max_per_scene is not None
    scenes = _assign_scenes(p, p.alive(), settings.scene_distance, keep)
    if settings.dedupe is not None:
        _drop_near_duplicates(p, p.alive(), settings.dedupe, name_of)
    if settings.max_per_scene is not None:
        _cap_scenes(p, p.alive(), settings.max_per_scene)
    if settings.max_per_class is not None:
        _cap_classes(p, p.alive(), settings.max_per_class, settings.seed)
    return scenes


def _drop_blurry(p: Pictures, alive: np.ndarray, settings: FilterSettings) -> None:
    if not len(alive):
        return
    threshold, how = settings.blur, "--blur"
    if settings.blur_percentile is not None:
        threshold = float(np.percentile(p.sharpness[alive], settings.blur_percentile))
        how = f"--blur p{settings.blur_percentile:g}"
    if threshold is None:
        return
    for i in alive[p.sharpness[alive] < threshold].tolist():
        p.reasons[i] = f"blurry (sharpness {p.sharpness[i]:.1f} < {threshold:.1f}, {how})"


def _assign_scenes(p: Pictures, alive: np.ndarray, distance: int, keep: bool) -> int:
    """Number consecutive runs of similar pictures of the same stream; returns the count.
    `keep`: record each picture's scene in `p.scene` (for --max-per-scene)."""
    if not len(alive):
        return 0
    streams = p.unit_stream[p.unit[alive]]
    new = np.ones(len(alive), bool)  # where a scene starts
    new[1:] = streams[1:] != streams[:-1]
    if p.hash.strides != (0,):  # measured (unmeasured hashes are all 0: never far apart)
        hashes = p.hash[alive]
        new[1:] |= _popcount(hashes[1:] ^ hashes[:-1]) > distance
    if keep:
        p.scene = np.full(len(p), -1, np.int32)
        p.scene[alive] = np.cumsum(new) - 1
    return int(new.sum())


def _drop_near_duplicates(
    p: Pictures, alive: np.ndarray, distance: int, name_of: Callable[[int], str]
) -> None:
    groups = group_near_duplicates(p.hash[alive].tolist(), max_distance=distance)
    keepers = keep_sharpest(groups, p.sharpness[alive].tolist())
    found = sorted((keeper, group) for group, keeper in zip(groups, keepers) if len(group) > 1)
    for keeper, group in found:  # in picture order: names are read back a unit at a time
        reason = f"near-duplicate (of {name_of(int(alive[keeper]))}, --dedupe {distance})"
        for i in group:
            if i != keeper:
                p.reasons[int(alive[i])] = reason


def _cap_scenes(p: Pictures, alive: np.ndarray, limit: int) -> None:
    """Keep `limit` pictures spread evenly through each scene."""
    assert p.scene is not None
    scenes = p.scene[alive]  # non-decreasing: scenes were numbered in picture order
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(scenes)) + 1, [len(alive)]])
    reason = f"scene over its limit (--max-per-scene {limit})"
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        if stop - start <= limit:
            continue
        keep = np.zeros(stop - start, bool)
        keep[np.linspace(0, stop - start - 1, limit).round().astype(int)] = True
        p.drop(alive[start:stop][~keep], reason)


def _cap_classes(p: Pictures, alive: np.ndarray, limit: int, seed: int) -> None:
    """At most `limit` output images per class, from a seeded random choice of pictures."""
    rng = np.random.default_rng(seed)
    classes = p.class_id[alive]
    # Classes in order of their first picture, members in picture order.
    _, first = np.unique(classes, return_index=True)
    reason = f"class over its limit (--max-per-class {limit})"
    for code in classes[np.sort(first)].tolist():
        members = alive[classes == code]
        chosen = members[rng.permutation(len(members))]
        rows = p.rows[chosen].astype(np.int64)
        left = limit - (np.cumsum(rows) - rows)  # the budget each one finds
        p.drop(chosen[left <= 0], reason)
        trimmed = (left > 0) & (rows > left)  # the last one gives only some of its crops
        p.rows[chosen[trimmed]] = left[trimmed]
