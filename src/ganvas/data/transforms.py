"""Geometry for `ganvas prepare`: border removal, square and mosaic crops, random resized crops.

Pure functions on numpy arrays and Pillow images (no torch), so they run in `prepare`'s worker
processes. A box is always `(left, top, right, bottom)` in pixels, Pillow's convention: right and
bottom are exclusive.
"""

from __future__ import annotations

import math
import re

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]

_GRID = re.compile(r"\s*(\d+)\s*[xX×,]\s*(\d+)\s*")
_MAX_GRID = 64
_FIRST_CHUNK = 16  # lines measured at a time from each end, doubling until the picture starts


def find_content_box(
    img: np.ndarray,
    tolerance: float = 12.0,
    min_uniform: float = 0.98,
    max_fraction: float = 0.4,
) -> Box:
    """The box of the picture inside uniform margins.

    Removes letterbox and pillarbox bars, a plain mat, and nested picture-frame bands of different
    colours. A row (or column) is a border line when at least `min_uniform` of its pixels lie
    within `tolerance` of the line's own median colour. Border lines are trimmed from the top and
    bottom, then from the left and right (looking only at the rows kept), and the whole pass is
    repeated until nothing changes, so a frame whose side bands interrupt its inner rows is peeled
    band by band.

    Lossy compression (JPEG, video) rings in the block next to the picture's edge, so a line
    whose pixels lie within twice `tolerance` also counts, but only inside a band of one colour
    that holds a line meeting the strict test.

    Args:
        img: uint8 image [H, W, 3], [H, W] or [H, W, 1].
        tolerance: largest absolute difference (over channels, 0-255) from the line's median
            colour for a pixel to count as matching it.
        min_uniform: fraction of a line's pixels that must match for it to be a border line.
        max_fraction: most of the height (resp. width) that may be trimmed in total from top and
            bottom (resp. left and right). Bands are trimmed whole, narrowest first; a band that
            would break this limit is kept, as it is more likely part of the picture (a flat sky,
            a wall) than a border.

    Returns:
        `(left, top, right, bottom)`; `(0, 0, W, H)` when there is nothing to trim or every row
        or column is uniform (a blank image, plain stripes).

    Raises:
        ValueError: on an empty image, a shape that is not [H, W] or [H, W, C], or
            `max_fraction` outside 0-1.
    """
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"expected an image [H, W] or [H, W, C], got shape {img.shape}")
    if not 0 <= max_fraction <= 1:
        raise ValueError(f"max_fraction must be between 0 and 1, got {max_fraction}")
    height, width = img.shape[:2]
    row_budget = math.floor(max_fraction * height)
    col_budget = math.floor(max_fraction * width)
    left, top, right, bottom = 0, 0, width, height
    first = True
    while True:
        # Each pass depends only on the other axis's last result: once one changes nothing, the
        # next would not either.
        rows = _trim(
            img[top:bottom, left:right], top, bottom, height, row_budget, tolerance, min_uniform
        )
        if rows == (top, bottom) and not first:
            return left, top, right, bottom
        top, bottom = rows
        # Columns are lines of the transposed image [W, H, C].
        cols = _trim(
            img[top:bottom, left:right].transpose(1, 0, 2),
            left,
            right,
            width,
            col_budget,
            tolerance,
            min_uniform,
        )
        if cols == (left, right):
            return left, top, right, bottom
        left, right = cols
        first = False


def _trim(
    lines: np.ndarray,
    start: int,
    stop: int,
    full: int,
    budget: int,
    tolerance: float,
    min_uniform: float,
) -> tuple[int, int]:
    """One axis of `find_content_box`: the new `(start, stop)` after trimming border bands.

    `lines` is the current crop as [n lines, pixels per line, C]; `full` is the image's full extent
    on this axis, so the budget counts what earlier passes already trimmed.
    """
    n = len(lines)
    spent = start + (full - stop)
    # Lines further than this from both ends can never be trimmed, so are not measured.
    reach = min(n, budget - spent + 1)
    front = _edge_lines(lines, reach, tolerance, min_uniform)
    back = _edge_lines(lines[::-1], reach, tolerance, min_uniform)
    middle = lines[len(front[1]) : n - len(back[1])]
    # Every line uniform: a blank image or plain stripes, not a picture inside a border.
    if front[1].all() and back[1].all() and _line_flags(middle, tolerance, min_uniform)[1].all():
        return start, stop
    front_bands = _bands(*front, tolerance)
    back_bands = _bands(*back, tolerance)
    # Peel whole bands from either end, the narrowest first, while they fit in the budget.
    while True:
        fits = [(bands[0], side) for side, bands in enumerate((front_bands, back_bands)) if bands]
        fits = [(size, side) for size, side in fits if spent + size <= budget]
        if not fits:
            return start, stop
        size, side = min(fits)
        spent += size
        if side == 0:
            start += size
            front_bands.pop(0)
        else:
            stop -= size
            back_bands.pop(0)


def _edge_lines(
    lines: np.ndarray, reach: int, tolerance: float, min_uniform: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_line_flags` of the first lines, measured until one is not a border line or at `reach`."""
    parts = []
    done, size = 0, _FIRST_CHUNK
    while done < reach:
        part = _line_flags(lines[done : min(reach, done + size)], tolerance, min_uniform)
        parts.append(part)
        done, size = done + len(part[0]), size * 2
        if not part[1].all():
            break
    if not parts:
        return _line_flags(lines[:0], tolerance, min_uniform)
    strong, weak, colours = zip(*parts)
    return np.concatenate(strong), np.concatenate(weak), np.concatenate(colours)


def _line_flags(
    lines: np.ndarray, tolerance: float, min_uniform: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per line of [n, m, C]: strong border line, weak border line, median colour [n, C]."""
    if len(lines) == 0:
        empty = np.zeros(0, dtype=bool)
        return empty, empty, np.zeros((0, lines.shape[2]))
    pixels = lines.astype(np.float32)
    colours = np.median(pixels, axis=1)
    deviation = np.abs(pixels - colours[:, None, :]).max(axis=2)
    strong = (deviation <= tolerance).mean(axis=1) >= min_uniform
    # A JPEG or video block next to sharp content rings: a few border pixels stray 20-30 levels.
    weak = (deviation <= 2 * tolerance).mean(axis=1) >= min_uniform
    return strong, weak, colours


def _bands(
    strong: np.ndarray, weak: np.ndarray, colours: np.ndarray, tolerance: float
) -> list[int]:
    """Widths of the border bands at the start of the lines, outermost first.

    The leading weak-or-strong border lines are split into bands where the colour jumps; the
    bands are kept up to the first one without a strong line.
    """
    count = len(weak) if weak.all() else int(np.argmin(weak))
    jumps = np.abs(np.diff(colours[:count], axis=0)).max(axis=1) > tolerance
    edges = [0, *(np.flatnonzero(jumps) + 1).tolist(), count]
    bands = []
    for a, b in zip(edges[:-1], edges[1:]):
        if a == b or not strong[a:b].any():
            break
        bands.append(b - a)
    return bands


def centre_square_box(width: int, height: int) -> Box:
    """The largest square centred in a `width` × `height` image.

    Args:
        width: image width in pixels.
        height: image height in pixels.

    Returns:
        `(left, top, right, bottom)` of the square.
    """
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def grid_boxes(width: int, height: int, rows: int, cols: int) -> list[Box]:
    """The tiles of a `rows` × `cols` mosaic, which cover the image exactly.

    Args:
        width: image width in pixels.
        height: image height in pixels.
        rows: number of tile rows.
        cols: number of tile columns.

    Returns:
        `rows * cols` boxes in row-major order (left to right, then top to bottom).

    Raises:
        ValueError: if `rows` or `cols` is below 1, or the image is too small for every tile to
            hold at least one pixel.
    """
    if rows < 1 or cols < 1:
        raise ValueError(f"mosaic needs at least 1 row and 1 column, got {rows}x{cols}")
    if rows > height or cols > width:
        raise ValueError(f"a {width}x{height} image is too small for a {rows}x{cols} mosaic")
    xs = [round(k * width / cols) for k in range(cols + 1)]
    ys = [round(k * height / rows) for k in range(rows + 1)]
    return [(xs[c], ys[r], xs[c + 1], ys[r + 1]) for r in range(rows) for c in range(cols)]


def random_resized_boxes(
    width: int,
    height: int,
    count: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> list[Box]:
    """Random crops drawn like torchvision's `RandomResizedCrop.get_params`.

    Each box covers a uniform random fraction of the image's area in `scale`, with a log-uniform
    aspect ratio (width / height) in `ratio`, at a uniform random position. After 10 draws that
    do not fit in the image, it falls back to the centred crop with the image's own aspect ratio
    clamped to `ratio`.

    Args:
        width: image width in pixels.
        height: image height in pixels.
        count: number of boxes.
        rng: the random generator; the same seed gives the same boxes.
        scale: lowest and highest fraction of the image's area.
        ratio: lowest and highest aspect ratio, width / height.

    Returns:
        `count` boxes `(left, top, right, bottom)`.

    Raises:
        ValueError: on an empty image or an out-of-range `count`, `scale` or `ratio`.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image must be at least 1x1, got {width}x{height}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must satisfy 0 < low <= high, got {ratio}")
    return [_random_resized_box(width, height, rng, scale, ratio) for _ in range(count)]


def _random_resized_box(
    width: int,
    height: int,
    rng: np.random.Generator,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> Box:
    area = width * height
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_low, log_high))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


def parse_grid(text: str) -> tuple[int, int]:
    """Read a mosaic size such as "5x5", "5X5", "3×4" or "2,3".

    Args:
        text: rows and columns separated by x, X, × or a comma.

    Returns:
        `(rows, cols)`, each between 1 and 64.

    Raises:
        ValueError: if `text` does not look like that or a count is out of range.
    """
    match = _GRID.fullmatch(text)
    if match is None:
        raise ValueError(f"mosaic must look like RxC, e.g. 5x5, got {text!r}")
    rows, cols = int(match[1]), int(match[2])
    if not (1 <= rows <= _MAX_GRID and 1 <= cols <= _MAX_GRID):
        raise ValueError(f"mosaic rows and columns must be between 1 and {_MAX_GRID}, got {text!r}")
    return rows, cols


def crop_to_square_array(img: Image.Image, box: Box, size: int) -> np.ndarray:
    """Crop an "RGB" or "L" image to `box` and resize it to `size` × `size`.

    A box that is not square is squashed to a square, as torchvision's RandomResizedCrop does;
    pass a square box to keep the picture's proportions.

    Args:
        img: Pillow image in mode "RGB" or "L".
        box: `(left, top, right, bottom)` inside the image.
        size: side of the result in pixels.

    Returns:
        Contiguous uint8 array [size, size, 3] for "RGB" or [size, size, 1] for "L".

    Raises:
        ValueError: on another mode, a box that is empty or outside the image, or size < 1.
    """
    if img.mode not in ("RGB", "L"):
        raise ValueError(f'expected an image in mode "RGB" or "L", got {img.mode!r}')
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    left, top, right, bottom = box
    width, height = img.size
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise ValueError(f"box {box} is empty or outside the {width}x{height} image")
    if box != (0, 0, width, height):
        img = img.crop(box)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    array = np.array(img, dtype=np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    return np.ascontiguousarray(array)
