"""The cheap half of `prepare`: decide which scanned pictures become dataset images.

Runs on the measurements `scan` recorded, in this order, each step seeing only what the
previous ones kept: grayscale subset → blank frames → title/text frames → blur → scenes →
near-duplicates (the sharpest of each group stays) → at most N per scene → at most N
images per class. Every picture left out gets a reason that names the option responsible.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ganvas.data.filters import group_near_duplicates, hamming, keep_sharpest

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
class Picture:
    """One scanned picture (an image file or a video frame) and what became of it."""

    name: str  # manifest name, 'source:relative path' plus '#frame=N' for a frame
    path: str  # absolute path (plus '#frame=N'), for the list of dropped files
    file_index: int  # which source file it came from
    stream: str  # pictures of one stream in order form scenes (one video, or one source)
    class_name: str | None
    reason: str | None
    rows: list[int] = field(default_factory=list)  # row numbers of its outputs in the scan
    thumb: int | None = None
    blank: str | None = None
    text: bool = False
    sharpness: float = 0.0
    grey: bool = False
    hash: int = 0
    scene: int = -1


def select_pictures(pictures: list[Picture], settings: FilterSettings) -> int:
    """Set `reason` on every picture the filters leave out (and trim `rows` for balance).

    Returns:
        The number of scenes found among the pictures that reached the scene step.
    """

    def alive() -> list[Picture]:
        return [p for p in pictures if p.reason is None]

    if settings.grayscale == "drop":
        _drop((p for p in alive() if p.grey), "grayscale (--grayscale drop)")
    elif settings.grayscale == "only":
        _drop((p for p in alive() if not p.grey), "in colour (--grayscale only)")
    if settings.drop_blank:
        for p in alive():
            if p.blank:
                p.reason = f"{p.blank} (--drop-blank)"
    if settings.drop_text:
        _drop((p for p in alive() if p.text), "title or text frame (--drop-text)")
    _drop_blurry(alive(), settings)

    scenes = _assign_scenes(alive(), settings.scene_distance)
    if settings.dedupe is not None:
        _drop_near_duplicates(alive(), settings.dedupe)
    if settings.max_per_scene is not None:
        _cap_scenes(alive(), settings.max_per_scene)
    if settings.max_per_class is not None:
        _cap_classes(alive(), settings.max_per_class, settings.seed)
    return scenes


def _drop(pictures: Iterable[Picture], reason: str) -> None:
    for p in pictures:
        p.reason = reason


def _drop_blurry(pictures: list[Picture], settings: FilterSettings) -> None:
    if not pictures:
        return
    threshold, how = settings.blur, "--blur"
    if settings.blur_percentile is not None:
        values = np.array([p.sharpness for p in pictures])
        threshold = float(np.percentile(values, settings.blur_percentile))
        how = f"--blur p{settings.blur_percentile:g}"
    if threshold is None:
        return
    for p in pictures:
        if p.sharpness < threshold:
            p.reason = f"blurry (sharpness {p.sharpness:.1f} < {threshold:.1f}, {how})"


def _assign_scenes(pictures: list[Picture], distance: int) -> int:
    """Number consecutive runs of similar pictures of the same stream; returns the count."""
    scene = -1
    previous: Picture | None = None
    for p in pictures:
        if (
            previous is None
            or previous.stream != p.stream
            or hamming(previous.hash, p.hash) > distance
        ):
            scene += 1
        p.scene = scene
        previous = p
    return scene + 1


def _drop_near_duplicates(pictures: list[Picture], distance: int) -> None:
    groups = group_near_duplicates([p.hash for p in pictures], max_distance=distance)
    keepers = keep_sharpest(groups, [p.sharpness for p in pictures])
    for group, keeper in zip(groups, keepers):
        for i in group:
            if i != keeper:
                pictures[
                    i
                ].reason = f"near-duplicate (of {pictures[keeper].name}, --dedupe {distance})"


def _cap_scenes(pictures: list[Picture], limit: int) -> None:
    """Keep `limit` pictures spread evenly through each scene."""
    by_scene: dict[int, list[Picture]] = {}
    for p in pictures:
        by_scene.setdefault(p.scene, []).append(p)
    for members in by_scene.values():
        if len(members) <= limit:
            continue
        keep = set(np.linspace(0, len(members) - 1, limit).round().astype(int).tolist())
        for i, p in enumerate(members):
            if i not in keep:
                p.reason = f"scene over its limit (--max-per-scene {limit})"


def _cap_classes(pictures: list[Picture], limit: int, seed: int) -> None:
    """At most `limit` output images per class, from a seeded random choice of pictures."""
    rng = np.random.default_rng(seed)
    by_class: dict[str | None, list[Picture]] = {}
    for p in pictures:
        by_class.setdefault(p.class_name, []).append(p)
    for members in by_class.values():
        budget = limit
        for i in rng.permutation(len(members)):
            p = members[int(i)]
            if budget <= 0:
                p.reason = f"class over its limit (--max-per-class {limit})"
            elif len(p.rows) > budget:
                p.rows = p.rows[:budget]  # the last picture gives only some of its crops
                budget = 0
            else:
                budget -= len(p.rows)
