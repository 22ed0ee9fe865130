"""`ganvas prepare`'s settings: one frozen dataclass that checks and normalises every option.

`PrepareSettings(size=64, blur="p10", ...)` validates as it is made: a bad value is a
`ConfigError` that names the option and what it allows. Fields take the spellings a command
line gives ("red" or "10,20,30" for a colour, "1:30" for a time, "0.5,1" for a range, "a,b"
for class names) and hold plain, typed values afterwards, so nothing else in prepare checks
them again. `scan_settings()` is the part that decides the pixels (an interrupted prepare
resumes only when it matches), `filter_settings()` the part that decides what is kept.
"""

from __future__ import annotations

import difflib
import math
import operator
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from ganvas.data.labels import LABEL_FILE_TYPES, LABEL_MODES
from ganvas.data.scan import ScanSettings
from ganvas.data.select import GRAYSCALE_MODES, FilterSettings
from ganvas.errors import ConfigError, check

# (option name, value as given) → the value normalised; raises ConfigError.
Check = Callable[[str, Any], Any]
View = TypeVar("View", ScanSettings, FilterSettings)


def _option(default: Any, check_value: Check) -> Any:
    return field(default=default, metadata={"check": check_value})


def _whole(low: int, high: int | None = None, *, optional: bool = False) -> Check:
    def whole(name: str, value: Any) -> int | None:
        if value is None and optional:
            return None
        try:
            if isinstance(value, bool):
                raise TypeError
            number = operator.index(value)
        except TypeError:
            raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
        if number < low or (high is not None and number > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ConfigError(f"{name} must be {bounds}, got {number}")
        return number

    return whole


def _number(low: float, *, optional: bool = False) -> Check:
    """A number at least `low`; text may also be a time, 'm:ss' or 'h:mm:ss'."""

    def number(name: str, value: Any) -> float | None:
        if value is None and optional:
            return None
        try:
            result = _seconds(value) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{name} must be a number (of seconds, or m:ss / h:mm:ss), got {value!r}"
            ) from None
        if not math.isfinite(result) or result < low:
            raise ConfigError(f"{name} must be at least {low:g}, got {value!r}")
        return result

    return number


def _range(low: float, high: float) -> Check:
    """A (min, max) pair within [low, high], given as two numbers or as 'a,b'."""

    def pair(name: str, value: Any) -> tuple[float, float]:
        if isinstance(value, str):
            value = value.replace(" ", "").split(",")
        try:
            a, b = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be two numbers 'min,max', got {value!r}") from None
        if not (low <= a <= b <= high):
            raise ConfigError(
                f"{name} must satisfy {low:g} <= min <= max <= {high:g}, got {a:g},{b:g}"
            )
        return (a, b)

    return pair


def _one_of(choices: tuple[str, ...]) -> Check:
    def one_of(name: str, value: Any) -> str:
        check(value in choices, f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    return one_of


def _flag(name: str, value: Any) -> bool:
    return bool(value)


def _channels(name: str, value: Any) -> int:
    channels = _whole(1)(name, value)
    check(channels in (1, 3), f"{name} must be 1 (greyscale) or 3 (RGB), got {channels}")
    return channels


def _fraction(name: str, value: Any) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    check(0.0 <= share < 1.0, f"{name} must be in [0, 1), got {value}")
    return share


def _labels(name: str, value: Any) -> str:
    """A mode of `LABEL_MODES`, or the absolute path of an existing .csv/.json mapping file."""
    if isinstance(value, str) and value in LABEL_MODES:
        return value
    problem = ""
    if isinstance(value, str | os.PathLike) and os.fspath(value):
        path = Path(os.fspath(value)).expanduser()
        if path.suffix.lower() in LABEL_FILE_TYPES:
            if path.is_file():
                return str(path.resolve())
            problem = f" ({path} does not exist)" if not path.exists() else " (not a file)"
    modes = ", ".join(f"'{mode}'" for mode in LABEL_MODES)
    raise ConfigError(
        f"{name} must be {modes} or the path of an existing .csv/.json file mapping file →"
        f" class, got {value!r}{problem}"
    )


def _background(name: str, value: Any) -> tuple[int, int, int]:
    """(r, g, b), a grey level, 'r,g,b', or a colour name / '#rrggbb' → (r, g, b)."""
    try:
        if isinstance(value, str) and "," in value:
            rgb: tuple[Any, ...] = tuple(int(part) for part in value.split(","))
        elif isinstance(value, str):
            from PIL import ImageColor

            rgb = ImageColor.getrgb(value)[:3]
        elif isinstance(value, int) and not isinstance(value, bool):
            rgb = (value,) * 3
        else:
            rgb = tuple(operator.index(c) for c in value)
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise ConfigError(
            f"{name} must be (r, g, b) with values 0-255, a grey level or a colour name, "
            f"got {value!r}"
        )
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def _mosaic(name: str, value: Any) -> tuple[int, int] | None:
    """'RxC' or (R, C); 1x1 is no mosaic."""
    if value is None or value == "":
        return None
    from ganvas.data.transforms import parse_grid

    try:
        rows, cols = parse_grid(value) if isinstance(value, str) else (int(value[0]), int(value[1]))
    except (ValueError, TypeError, IndexError) as err:
        raise ConfigError(
            str(err) if isinstance(err, ValueError) else f"{name} must look like RxC, got {value!r}"
        ) from None
    check(
        1 <= rows <= 64 and 1 <= cols <= 64,
        f"{name} rows and columns must be 1-64, got {rows}x{cols}",
    )
    return None if (rows, cols) == (1, 1) else (rows, cols)


def _blur(name: str, value: Any) -> float | str | None:
    """A sharpness threshold (float), 'pN' (drop the blurriest N percent), or None."""
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    percent = re.fullmatch(r"p(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)%", text)
    if percent:
        share = float(percent.group(1) or percent.group(2))
        check(0 < share < 100, f"{name} percentile must be between 0 and 100, got {value!r}")
        return f"p{share:g}"
    try:
        threshold = float(text)
    except ValueError:
        raise ConfigError(
            f"{name} must be a sharpness threshold (e.g. 100) or a percentile (e.g. p10),"
            f" got {value!r}"
        ) from None
    check(
        math.isfinite(threshold) and threshold >= 0, f"{name} threshold must be >= 0, got {value!r}"
    )
    return threshold


def _class_names(name: str, value: Any) -> tuple[str, ...] | None:
    """Class names given as a list, a comma-separated string, or a list of those."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    names = tuple(part.strip() for item in value for part in str(item).split(",") if part.strip())
    return names or None


def _split_name(name: str, value: Any) -> str:
    check(
        isinstance(value, str) and value.strip() != "" and "/" not in value,
        f"{name}={value!r} must name a split (train, test, all, or a DatasetDict split)",
    )
    return value.strip()


def _seconds(text: str) -> float:
    """'90', '1:30' or '0:01:30.5' → seconds."""
    parts = text.strip().split(":")
    if len(parts) > 3 or not all(parts):
        raise ValueError(text)
    total = 0.0
    for part in parts:
        total = total * 60 + float(part)
    return total


@dataclass(frozen=True)
class PrepareSettings:
    """Everything `prepare` makes of its sources, checked; see docs/datasets.md.

    Each field's check runs when the object is made (and again on `updated`), so a
    `PrepareSettings` in hand is always valid. Field names are the `prepare_dataset` keywords,
    the command's options (`max_per_class` is `--max-per-class`) and the keys of the
    manifest's "params".
    """

    # Side of the square images, in pixels.
    size: int = _option(64, _whole(8, 4096))
    # 3 for RGB, 1 for greyscale.
    channels: int = _option(3, _channels)
    # "auto": class = first-level folder, when every picture of a single folder source sits
    # in one of at least two; "subfolders": always (pictures outside a folder are dropped);
    # "none"; or a .csv/.json file mapping files to classes (held as its absolute path).
    labels: str = _option("auto", _labels)
    # Share of the images held out as the validation split, in [0, 1).
    val_fraction: float = _option(0.0, _fraction)
    # Seeds the validation split, the random crops and the class balance.
    seed: int = _option(0, _whole(0))
    # Colour transparency is flattened over.
    background: tuple[int, int, int] = _option((255, 255, 255), _background)
    # Images with more pixels are dropped without being decoded (decompression bombs).
    max_pixels: int = _option(100_000_000, _whole(1))
    # Images and video frames whose shorter side is smaller are dropped.
    min_size: int = _option(0, _whole(0))
    # Reading processes; None: one per CPU; 1 reads in the calling process.
    workers: int | None = _option(None, _whole(1, optional=True))

    # Of dataset containers with parts: CIFAR's "train", "test" or "all" batches; the split
    # of a Hugging Face DatasetDict folder, by name.
    source_split: str = _option("train", _split_name)
    # Of CIFAR-100: its 20 coarse classes instead of the 100 fine ones.
    coarse_labels: bool = _option(False, _flag)

    # Of videos: keep frames 0, N, 2N, ... of the film's own frame grid.
    every: int = _option(1, _whole(1))
    # Of videos: skip frames before this time (seconds; text may be m:ss or h:mm:ss).
    start: float = _option(0.0, _number(0.0))
    # Of videos: stop before this time; None: to the end.
    end: float | None = _option(None, _number(0.0, optional=True))

    # Cut uniform margins (letterbox bars, mats, frame bands) off first.
    trim_borders: bool = _option(False, _flag)
    # How far (0-255) a border pixel may stray from its line's colour.
    border_tolerance: float = _option(12.0, _number(0.0))
    # RandomResizedCrop copies per picture; 0: one centre crop.
    random_crops: int = _option(0, _whole(0, 1000))
    # Range of the random crops' area, as a fraction of the picture's.
    crop_scale: tuple[float, float] = _option((0.08, 1.0), _range(1e-6, 1.0))
    # Range of the random crops' width / height before the square resize.
    crop_ratio: tuple[float, float] = _option((3 / 4, 4 / 3), _range(1e-3, 1e3))
    # (rows, cols), or "RxC": cut each picture into tiles at full resolution; None: whole.
    mosaic: tuple[int, int] | None = _option(None, _mosaic)

    # Drop black, faded-out and single-colour pictures.
    drop_blank: bool = _option(False, _flag)
    # Drop title cards and credits (flat text on a flat background).
    drop_text: bool = _option(False, _flag)
    # Drop blurry pictures: a sharpness threshold (variance of the Laplacian, e.g. 100), or
    # "pN" (also "N%") to drop the blurriest N percent.
    blur: float | str | None = _option(None, _blur)
    # Drop near-duplicates within this many of 63 hash bits (6 is a good start), keeping the
    # sharpest of each group; None keeps them all.
    dedupe: int | None = _option(None, _whole(0, 63, optional=True))
    # "keep" everything, "drop" black-and-white pictures, or keep "only" them.
    grayscale: str = _option("keep", _one_of(GRAYSCALE_MODES))

    # Consecutive pictures whose hashes differ by more bits start a new scene.
    scene_distance: int = _option(16, _whole(0, 63))
    # At most N pictures per scene, spread evenly through it.
    max_per_scene: int | None = _option(None, _whole(1, optional=True))
    # Keep only these classes (files of others are not even read).
    classes: tuple[str, ...] | None = _option(None, _class_names)
    # Leave these classes out.
    exclude_classes: tuple[str, ...] | None = _option(None, _class_names)
    # At most N images per class, a seeded random choice (balances classes).
    max_per_class: int | None = _option(None, _whole(1, optional=True))

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = spec.metadata["check"](spec.name, getattr(self, spec.name))
            object.__setattr__(self, spec.name, value)
        self._check_together()

    def _check_together(self) -> None:
        if self.end is not None and self.end <= self.start:
            raise ConfigError(f"end ({self.end:g} s) must come after start ({self.start:g} s)")
        if self.labels == "none":
            subsets = [
                name
                for name in ("classes", "exclude_classes", "max_per_class")
                if getattr(self, name) is not None
            ]
            check(
                not subsets,
                f"{' and '.join(subsets)} set, but labels is 'none': choosing or balancing"
                " classes needs labels ('auto' or 'subfolders' for class folders, or a"
                " .csv/.json mapping file)",
            )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names, in order."""
        return tuple(spec.name for spec in fields(cls))

    def updated(self, **changes: Any) -> PrepareSettings:
        """A copy with `changes` applied (and checked); an unknown name is a ConfigError."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            close = difflib.get_close_matches(unknown[0], self.names(), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(
                f"unknown prepare setting {', '.join(unknown)}{hint}; the settings are:"
                f" {', '.join(self.names())}"
            )
        return replace(self, **changes) if changes else self

    def as_params(self) -> dict[str, Any]:
        """Field → value, for the manifest's "params"."""
        return asdict(self)

    def filter_settings(self) -> FilterSettings:
        """What the selection step needs: which pictures to leave out."""
        by_percentile = isinstance(self.blur, str)
        return self._view(
            FilterSettings,
            blur=None if by_percentile else self.blur,
            blur_percentile=float(self.blur[1:]) if by_percentile else None,
        )

    def scan_settings(self) -> ScanSettings:
        """What decides the pixels of the outputs (and so must match to resume)."""
        return self._view(ScanSettings, measure=self.filter_settings().needs_measurements)

    def _view(self, kind: type[View], **derived: Any) -> View:
        """A `kind` dataclass of these settings: its fields copied by name, except `derived`."""
        copied = {
            spec.name: getattr(self, spec.name) for spec in fields(kind) if spec.name not in derived
        }
        return kind(**copied, **derived)
