"""Check and normalise `prepare_dataset`'s arguments: plain, JSON-friendly values that go
into the manifest, and a `DatasetError` naming the argument for anything wrong."""

from __future__ import annotations

import math
import operator
import re
from typing import Any

from ganvas.data.labels import check_labels
from ganvas.data.select import GRAYSCALE_MODES
from ganvas.data.store import DatasetError


def check_arguments(**given: Any) -> dict[str, Any]:
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
    checked["labels"] = check_labels(given["labels"])
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

    def optional(name: str, low: int, high: int | None = None) -> int | None:
        return None if given[name] is None else whole(name, low, high)

    def number(name: str, low: float, allow_none: bool = False) -> float | None:
        value = given[name]
        if value is None and allow_none:
            return None
        try:
            result = _seconds(value) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise DatasetError(
                f"{name} must be a number (of seconds, or m:ss / h:mm:ss), got {value!r}"
            ) from None
        if not math.isfinite(result) or result < low:
            raise DatasetError(f"{name} must be at least {low:g}, got {value!r}")
        return result

    checked["every"] = whole("every", 1)
    checked["start"] = number("start", 0.0)
    checked["end"] = number("end", 0.0, allow_none=True)
    if checked["end"] is not None and checked["end"] <= checked["start"]:
        raise DatasetError(
            f"end ({checked['end']:g} s) must come after start ({checked['start']:g} s)"
        )
    checked["trim_borders"] = bool(given["trim_borders"])
    checked["border_tolerance"] = number("border_tolerance", 0.0)
    checked["random_crops"] = whole("random_crops", 0, 1000)
    checked["crop_scale"] = _pair("crop_scale", given["crop_scale"], 1e-6, 1.0)
    checked["crop_ratio"] = _pair("crop_ratio", given["crop_ratio"], 1e-3, 1e3)
    checked["mosaic"] = _check_mosaic(given["mosaic"])
    checked["drop_blank"] = bool(given["drop_blank"])
    checked["drop_text"] = bool(given["drop_text"])
    checked["blur"] = _check_blur(given["blur"])
    checked["dedupe"] = optional("dedupe", 0, 63)
    if given["grayscale"] not in GRAYSCALE_MODES:
        raise DatasetError(
            f"grayscale must be one of {', '.join(GRAYSCALE_MODES)}, got {given['grayscale']!r}"
        )
    checked["grayscale"] = given["grayscale"]
    checked["scene_distance"] = whole("scene_distance", 0, 63)
    checked["max_per_scene"] = optional("max_per_scene", 1)
    checked["max_per_class"] = optional("max_per_class", 1)
    checked["classes"] = _names("classes", given["classes"])
    checked["exclude_classes"] = _names("exclude_classes", given["exclude_classes"])
    return checked


def _seconds(text: str) -> float:
    """'90', '1:30' or '0:01:30.5' → seconds."""
    parts = text.strip().split(":")
    if len(parts) > 3 or not all(parts):
        raise ValueError(text)
    total = 0.0
    for part in parts:
        total = total * 60 + float(part)
    return total


def _pair(name: str, value: Any, low: float, high: float) -> list[float]:
    """A (min, max) range given as a pair or as 'a,b'."""
    if isinstance(value, str):
        value = value.replace(" ", "").split(",")
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DatasetError(f"{name} must be two numbers 'min,max', got {value!r}") from None
    if not (low <= a <= b <= high):
        raise DatasetError(
            f"{name} must satisfy {low:g} <= min <= max <= {high:g}, got {a:g},{b:g}"
        )
    return [a, b]


def _check_mosaic(value: Any) -> list[int] | None:
    if value is None or value == "":
        return None
    from ganvas.data.transforms import parse_grid

    try:
        rows, cols = parse_grid(value) if isinstance(value, str) else (int(value[0]), int(value[1]))
    except (ValueError, TypeError, IndexError) as err:
        raise DatasetError(
            str(err) if isinstance(err, ValueError) else f"mosaic must look like RxC, got {value!r}"
        ) from None
    if not (1 <= rows <= 64 and 1 <= cols <= 64):
        raise DatasetError(f"mosaic rows and columns must be 1-64, got {rows}x{cols}")
    return None if (rows, cols) == (1, 1) else [rows, cols]


def _check_blur(value: Any) -> float | str | None:
    """A sharpness threshold (float), 'pN' (drop the blurriest N percent), or None."""
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    percent = re.fullmatch(r"p(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)%", text)
    if percent:
        share = float(percent.group(1) or percent.group(2))
        if not 0 < share < 100:
            raise DatasetError(f"blur percentile must be between 0 and 100, got {value!r}")
        return f"p{share:g}"
    try:
        threshold = float(text)
    except ValueError:
        raise DatasetError(
            f"blur must be a sharpness threshold (e.g. 100) or a percentile (e.g. p10), got {value!r}"
        ) from None
    if not math.isfinite(threshold) or threshold < 0:
        raise DatasetError(f"blur threshold must be >= 0, got {value!r}")
    return threshold


def blur_percentile(blur: float | str | None) -> float | None:
    return float(blur[1:]) if isinstance(blur, str) else None


def _names(name: str, value: Any) -> list[str] | None:
    """Class names given as a list or a comma-separated string."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    names = [part.strip() for item in value for part in str(item).split(",") if part.strip()]
    return names or None


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
