"""Decode one image file into a square uint8 array.

Runs inside `prepare`'s worker processes, so it imports only the standard library, numpy and
Pillow (never torch).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import warnings
from collections.abc import Sequence
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Modes whose samples are wider than 8 bits: Pillow's convert("L") clips them instead of scaling.
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I", "I;32", "I;32B", "F")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class ImageRejected(Exception):
    """A file that cannot become a dataset image; `reason` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_image(
    path: str | os.PathLike,
    size: int,
    channels: int = 3,
    background: Sequence[int] = (255, 255, 255),
    max_pixels: int = 100_000_000,
    min_size: int = 0,
) -> np.ndarray:
    """Read one image file and turn it into a centre-cropped square of `size` pixels.

    EXIF orientation is applied, transparency is flattened over `background`, wide sample
    formats (16-bit, 32-bit, float) are scaled to 8 bits, and only the first frame of a
    multi-frame file is used.

    Args:
        path: the image file.
        size: side of the square result in pixels.
        channels: 3 for RGB, 1 for greyscale.
        background: RGB colour that transparent pixels are composited over (its luminance
            when `channels` is 1).
        max_pixels: files with more pixels (width × height) are rejected before decoding.
        min_size: files whose shorter side is smaller are rejected.

    Returns:
        uint8 array of shape [size, size, channels].

    Raises:
        ImageRejected: the file is empty, not an image, corrupt, too large or too small.
    """
    img = open_picture(path, channels, background, max_pixels, min_size, draft_side=size * 3)
    return square_array(img, size)


def open_picture(
    path: str | os.PathLike,
    channels: int = 3,
    background: Sequence[int] = (255, 255, 255),
    max_pixels: int = 100_000_000,
    min_size: int = 0,
    draft_side: int | None = None,
) -> Image.Image:
    """Read one image file into an upright 8-bit Pillow image in mode "RGB" or "L".

    The same checks and conversions as `decode_image`, without the crop and resize.

    Args:
        path: the image file.
        channels: 3 for an "RGB" result, 1 for "L".
        background: RGB colour that transparent pixels are composited over.
        max_pixels: files with more pixels are rejected before decoding.
        min_size: files whose shorter side is smaller are rejected.
        draft_side: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale as long as both sides
            stay at least this long (much faster for big photos); None decodes full size.

    Raises:
        ImageRejected: the file is empty, not an image, corrupt, too large or too small.
    """
    rgb = _checked_background(channels, background)
    path = os.fspath(path)
    try:
        info = os.stat(path)
    except OSError as err:
        raise ImageRejected(f"cannot read file ({err.strerror or err})") from err
    if not stat.S_ISREG(info.st_mode):
        # Opening a FIFO or a device would block or read forever.
        raise ImageRejected("not a regular file")
    if info.st_size == 0:
        raise ImageRejected("empty file")

    return _open_checked(path, path, max_pixels, min_size, draft_side, channels, rgb)


def open_picture_data(
    data: bytes,
    channels: int = 3,
    background: Sequence[int] = (255, 255, 255),
    max_pixels: int = 100_000_000,
    min_size: int = 0,
    draft_side: int | None = None,
) -> Image.Image:
    """`open_picture` for an encoded image held in memory (an archive member, an LMDB value).

    Raises:
        ImageRejected: the bytes are empty, not an image, corrupt, too large or too small.
    """
    rgb = _checked_background(channels, background)
    if not data:
        raise ImageRejected("empty file")
    return _open_checked(io.BytesIO(data), "", max_pixels, min_size, draft_side, channels, rgb)


def picture_from_array(array: np.ndarray, channels: int = 3, min_size: int = 0) -> Image.Image:
    """An "RGB" or "L" Pillow image of raw uint8 pixels [H, W] or [H, W, 1|3] (CIFAR, MNIST).

    Raises:
        ImageRejected: the array is not 8-bit pixels of that shape, or too small.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] not in (1, 3))
    ):
        raise ImageRejected(f"not 8-bit pixels: {array.dtype} {tuple(array.shape)}")
    height, width = array.shape[:2]
    if min(width, height) < min_size:
        raise ImageRejected(f"too small: {width}x{height} < {min_size}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    img = Image.fromarray(np.ascontiguousarray(array))
    return img.convert("RGB" if channels == 3 else "L")


def _checked_background(channels: int, background: Sequence[int]) -> tuple[int, int, int]:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    rgb = tuple(int(c) for c in background)
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise ValueError(f"background must be three integers 0-255, got {background!r}")
    return rgb  # type: ignore[return-value]


def _open_checked(
    source: str | IO[bytes],
    path: str,
    max_pixels: int,
    min_size: int,
    draft_side: int | None,
    channels: int,
    rgb: tuple[int, int, int],
) -> Image.Image:
    """Decode `source` (a path or an open binary file) with every check of `open_picture`."""
    with warnings.catch_warnings():
        # Pillow warns (and later errors) above its own MAX_IMAGE_PIXELS. When our limit is the
        # stricter one the warning means "too large"; when it is looser, our own check decides.
        pillow_limit = Image.MAX_IMAGE_PIXELS
        stricter = pillow_limit is not None and max_pixels <= pillow_limit
        warnings.simplefilter("error" if stricter else "ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(source)
        except UnidentifiedImageError as err:
            raise ImageRejected(f"not an image ({_detail(err, path)})") from err
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageRejected(_too_large(err, max_pixels)) from err
        except MemoryError:
            raise
        except OSError as err:
            if err.errno is not None:  # the system refused (permissions, I/O error)
                raise ImageRejected(f"cannot read file ({err.strerror or err})") from err
            raise ImageRejected(f"corrupt or truncated image ({_detail(err, path)})") from err
        except Exception as err:  # a plugin choking on a malformed header
            raise ImageRejected(f"corrupt or truncated image ({_detail(err, path)})") from err

        with img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageRejected(f"too large: {width}x{height} pixels > {max_pixels}")
            if min(width, height) < min_size:
                raise ImageRejected(f"too small: {width}x{height} < {min_size}")
            if img.format == "JPEG" and draft_side is not None:
                # libjpeg scales by 1/2, 1/4 or 1/8 while decoding; keeping 3x the target
                # lets the final LANCZOS resize keep full quality.
                img.draft(None, (draft_side, draft_side))
            try:
                img.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
                raise ImageRejected(_too_large(err, max_pixels)) from err
            except MemoryError:
                raise
            except Exception as err:  # truncated data, bad CRC, zlib errors, plugin bugs
                raise ImageRejected(f"corrupt or truncated image ({_detail(err, path)})") from err
            return upright_8bit(img, channels, rgb)


def upright_8bit(img: Image.Image, channels: int, background: tuple[int, ...]) -> Image.Image:
    """Any decoded Pillow image → EXIF-upright 8-bit "RGB" (channels 3) or "L" (channels 1)."""
    # Broken EXIF metadata should not cost an otherwise good picture.
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(img, in_place=True)
    return _flatten(img, "RGB" if channels == 3 else "L", background)


def square_array(img: Image.Image, size: int) -> np.ndarray:
    """Centre-crop an "RGB" or "L" image to a square and resize it: uint8 [size, size, C]."""
    width, height = img.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    if side != width or side != height:
        img = img.crop((left, top, left + side, top + side))
    if side != size:
        img = img.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    array = np.array(img, dtype=np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    return np.ascontiguousarray(array)


def _flatten(img: Image.Image, mode: str, background: tuple[int, ...]) -> Image.Image:
    """Any Pillow mode → 8-bit `mode` ("RGB" or "L"), transparency composited over background."""
    if img.mode in _WIDE_MODES:
        img = _wide_to_8bit(img)
    if img.mode == "La":
        img = img.convert("LA")
    elif img.mode == "RGBa":
        img = img.convert("RGBA")

    if _has_transparency(img):
        rgba = img if img.mode in ("RGBA", "LA") else img.convert("RGBA")
        alpha = rgba.getchannel("A")
        colour = rgba.convert(mode) if rgba.mode == "RGBA" else rgba.getchannel("L")
        if colour.mode != mode:
            colour = colour.convert(mode)
        backdrop = Image.new(mode, img.size, _background_colour(background, mode))
        return Image.composite(colour, backdrop, alpha)

    if img.mode == mode:
        return img
    if img.mode not in ("1", "L", "RGB"):
        # CMYK, YCbCr, LAB, HSV, P, RGBX...: Pillow knows how to reach RGB from all of them.
        img = img.convert("RGB")
    return img.convert(mode)


def _has_transparency(img: Image.Image) -> bool:
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        return True
    palette = img.palette if img.mode == "P" else None
    return palette is not None and palette.mode == "RGBA"


def _wide_to_8bit(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer or float samples to 0..255 (an L image, LA if keyed transparent)."""
    raw = np.asarray(img)
    if raw.dtype.kind == "f":
        values = np.nan_to_num(raw.astype(np.float32), nan=0.0)
        if values.size and float(values.max()) <= 1.0:
            values = values * 255.0
        values = np.clip(values, 0.0, 255.0)
    elif raw.dtype.itemsize == 2 and raw.dtype.kind == "u":
        values = raw.astype(np.float32) * np.float32(255.0 / 65535.0)
    else:
        # Mode "I" is 32-bit; PNG and TIFF readers also use it for 16-bit data.
        values = raw.astype(np.float32)
        if values.size and float(values.max()) > 255.0:
            values = np.clip(values, 0.0, 65535.0) * np.float32(255.0 / 65535.0)
        else:
            values = np.clip(values, 0.0, 255.0)
    grey = Image.fromarray(np.rint(values).astype(np.uint8))

    key = img.info.get("transparency")
    if isinstance(key, int | float):
        alpha = np.where(raw == key, 0, 255).astype(np.uint8)
        return Image.merge("LA", (grey, Image.fromarray(alpha)))
    return grey


def _background_colour(rgb: tuple[int, ...], mode: str) -> int | tuple[int, ...]:
    if mode == "RGB":
        return rgb
    # Pillow's own RGB → L formula, so a flattened grey matches a converted one.
    return Image.new("RGB", (1, 1), rgb).convert("L").getpixel((0, 0))


def _too_large(err: BaseException, max_pixels: int) -> str:
    """Reason for a file that tripped Pillow's decompression-bomb guard (its size unread)."""
    found = re.search(r"(\d+) pixels\) exceeds limit of (\d+)", str(err))
    if found is None:
        return f"too large: {err}"
    pixels, pillow_limit = int(found.group(1)), int(found.group(2))
    if pixels > max_pixels:
        return f"too large: {pixels} pixels > {max_pixels}"
    return f"too large: {pixels} pixels > {pillow_limit} (Pillow's decompression-bomb limit)"


def _detail(err: BaseException, path: str) -> str:
    """The exception text without the (long, already known) file path in it."""
    text = str(err)
    for spelled in (repr(path), path) if path else ():
        text = text.replace(spelled, "")
    text = re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", text)
    return " ".join(text.split()) or type(err).__name__
