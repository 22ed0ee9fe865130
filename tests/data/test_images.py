"""decode_image: one file in, one square uint8 array out (or a reason why not)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganvas.data.images import ImageRejected, decode_image

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
BACKGROUND = (10, 20, 30)
BACKGROUND_LUMA = 18  # 0.299*10 + 0.587*20 + 0.114*30


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def reason_of(path: Path, **kwargs) -> str:
    with pytest.raises(ImageRejected) as caught:
        decode_image(path, 16, **kwargs)
    assert str(caught.value) == caught.value.reason
    return caught.value.reason


@pytest.mark.parametrize("size", [8, 16, 40])
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_and_dtype(tmp_path, size, channels):
    path = tmp_path / "noise.png"
    Image.fromarray(noise(24, 36)).save(path)
    out = decode_image(path, size, channels)
    assert out.shape == (size, size, channels)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous


@pytest.mark.parametrize("landscape", [True, False])
def test_centre_crop_keeps_the_middle(tmp_path, landscape):
    # 48x32 (or 32x48): 8-pixel red and blue bands at the long ends, green in the middle.
    pixels = np.zeros((32, 48, 3), np.uint8)
    pixels[:, :8] = RED
    pixels[:, 8:40] = GREEN
    pixels[:, 40:] = BLUE
    if not landscape:
        pixels = pixels.transpose(1, 0, 2)
    path = tmp_path / "bands.png"
    Image.fromarray(np.ascontiguousarray(pixels)).save(path)
    exact = decode_image(path, 32)
    assert (exact == GREEN).all()
    small = decode_image(path, 16)
    assert np.abs(small.astype(int) - GREEN).max() <= 1


def test_rgb_jpeg_and_big_downscale(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (640, 480), (200, 100, 50)).save(path, quality=95)
    out = decode_image(path, 16)
    assert np.abs(out.astype(int) - (200, 100, 50)).max() <= 4


def test_upscale_small_image(tmp_path):
    path = tmp_path / "tiny.png"
    Image.new("RGB", (8, 12), (1, 2, 3)).save(path)
    out = decode_image(path, 32)
    assert out.shape == (32, 32, 3)
    assert (out == (1, 2, 3)).all()


def test_greyscale_to_rgb_and_l(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (16, 16), 77).save(path)
    assert (decode_image(path, 16, 3) == 77).all()
    assert (decode_image(path, 16, 1) == 77).all()


def test_rgb_to_single_channel_uses_luminance(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (16, 16), RED).save(path)
    assert (decode_image(path, 16, 1) == 76).all()  # 0.299 * 255


def test_rgba_composited_over_background(tmp_path):
    pixels = np.zeros((16, 16, 4), np.uint8)
    pixels[:, :8] = (*GREEN, 0)  # hidden colour under full transparency
    pixels[:, 8:] = (*RED, 255)
    path = tmp_path / "rgba.png"
    Image.fromarray(pixels).save(path)

    out = decode_image(path, 16, background=BACKGROUND)
    assert (out[:, :8] == BACKGROUND).all()
    assert (out[:, 8:] == RED).all()

    grey = decode_image(path, 16, 1, background=BACKGROUND)
    assert (grey[:, :8] == BACKGROUND_LUMA).all()
    assert (grey[:, 8:] == 76).all()


def test_rgba_resize_does_not_bleed_hidden_colour(tmp_path):
    pixels = np.zeros((64, 64, 4), np.uint8)
    pixels[..., :3] = GREEN  # everywhere, but only visible on the right half
    pixels[:, 32:, 3] = 255
    path = tmp_path / "edge.png"
    Image.fromarray(pixels).save(path)
    out = decode_image(path, 16, background=(255, 255, 255)).astype(int)
    # Beyond the LANCZOS support (3 lobes x 4) from the edge: pure background, pure green.
    assert (out[:, :4] == 255).all()
    assert (out[:, 12:] == GREEN).all()


def test_half_transparent_pixels_blend(tmp_path):
    pixels = np.zeros((16, 16, 4), np.uint8)
    pixels[...] = (255, 255, 255, 128)
    path = tmp_path / "half.png"
    Image.fromarray(pixels).save(path)
    out = decode_image(path, 16, background=(0, 0, 0))
    assert np.abs(out.astype(int) - 128).max() <= 1


def test_la_composited(tmp_path):
    alpha = np.zeros((16, 16), np.uint8)
    alpha[:, 8:] = 255
    image = Image.merge("LA", (Image.new("L", (16, 16), 100), Image.fromarray(alpha)))
    path = tmp_path / "la.png"
    image.save(path)
    out = decode_image(path, 16, background=BACKGROUND)
    assert (out[:, :8] == BACKGROUND).all()
    assert (out[:, 8:] == 100).all()
    grey = decode_image(path, 16, 1, background=BACKGROUND)
    assert (grey[:, :8, 0] == BACKGROUND_LUMA).all()
    assert (grey[:, 8:, 0] == 100).all()


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (16, 16), 0)
    image.putpalette([*GREEN, *RED] + [0] * 762)
    image.paste(1, (8, 0, 16, 16))
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    out = decode_image(path, 16, background=BACKGROUND)
    assert (out[:, :8] == BACKGROUND).all()
    assert (out[:, 8:] == RED).all()


def test_greyscale_with_transparent_key(tmp_path):
    pixels = np.full((16, 16), 200, np.uint8)
    pixels[:, :8] = 7
    path = tmp_path / "keyed.png"
    Image.fromarray(pixels).save(path, transparency=7)
    out = decode_image(path, 16, background=BACKGROUND)
    assert (out[:, :8] == BACKGROUND).all()
    assert (out[:, 8:] == 200).all()


@pytest.mark.parametrize("suffix", ["jpg", "tif"])
def test_cmyk(tmp_path, suffix):
    path = tmp_path / f"cmyk.{suffix}"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path)
    out = decode_image(path, 16)
    assert np.abs(out.astype(int) - RED).max() <= 3


def test_multiframe_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), colour) for colour in (RED, BLUE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert (decode_image(path, 16) == RED).all()


@pytest.mark.parametrize(("value", "expected"), [(65535, 255), (32768, 128), (0, 0), (257, 1)])
def test_16bit_png_is_scaled_not_clipped(tmp_path, value, expected):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((16, 16), value, np.uint16)).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I;16")
    out = decode_image(path, 16)
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_16bit_big_endian_tiff(tmp_path):
    path = tmp_path / "deep.tif"
    Image.new("I;16B", (16, 16), 32768).save(path)
    assert np.abs(decode_image(path, 16, 1).astype(int) - 128).max() <= 1


def test_16bit_png_gradient_keeps_order(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 16).astype(np.uint16), (16, 1))
    path = tmp_path / "ramp.png"
    Image.fromarray(ramp).save(path)
    row = decode_image(path, 16, 1)[8, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert (np.diff(row) > 0).all()


@pytest.mark.parametrize(("value", "expected"), [(65535, 255), (32768, 128), (200, 200), (-5, 0)])
def test_32bit_integer_tiff(tmp_path, value, expected):
    path = tmp_path / "int.tif"
    Image.fromarray(np.full((16, 16), value, np.int32)).save(path)
    with Image.open(path) as check:
        assert check.mode == "I"
    assert np.abs(decode_image(path, 16).astype(int) - expected).max() <= 1


@pytest.mark.parametrize(
    ("value", "expected"), [(0.5, 128), (1.0, 255), (200.0, 200), (900.0, 255)]
)
def test_float_tiff(tmp_path, value, expected):
    path = tmp_path / "float.tif"
    Image.fromarray(np.full((16, 16), value, np.float32)).save(path)
    assert np.abs(decode_image(path, 16).astype(int) - expected).max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    # Stored 32 wide x 16 tall, red left half; orientation 6 = rotate 90° clockwise to display,
    # which puts the left half on top of a 16 x 32 portrait.
    pixels = np.zeros((16, 32, 3), np.uint8)
    pixels[:, :16] = RED
    pixels[:, 16:] = BLUE
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)

    out = decode_image(path, 16).astype(int)
    # The square crop is rows 8..24 of the portrait: red above row 8 of the result, blue below.
    assert np.abs(out[1:6] - RED).max() <= 40
    assert np.abs(out[10:15] - BLUE).max() <= 40


def test_too_many_pixels_rejected_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("RGB", (2000, 2000)).save(path)
    assert path.stat().st_size < 100_000
    reason = reason_of(path, max_pixels=1_000_000)
    assert reason == "too large: 2000x2000 pixels > 1000000"


def test_pillow_bomb_guard_reported_and_local(tmp_path, monkeypatch):
    path = tmp_path / "medium.png"
    Image.new("RGB", (40, 40)).save(path)
    filters_before = list(warnings.filters)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)

    # Our limit is stricter than Pillow's: the bomb warning becomes a rejection.
    assert reason_of(path, max_pixels=500).startswith("too large: 1600 pixels")
    # Our limit is looser: Pillow's warning neither rejects the file nor leaks out.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_image(path, 16, max_pixels=10_000).shape == (16, 16, 3)
    # Beyond twice Pillow's limit its hard error still rejects the file.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    assert reason_of(path, max_pixels=10_000).startswith("too large: 1600 pixels")
    assert warnings.filters == filters_before


def test_too_small_rejected(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (16, 32)).save(path)
    assert reason_of(path, min_size=20) == "too small: 16x32 < 20"
    assert decode_image(path, 16, min_size=16).shape == (16, 16, 3)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    assert reason_of(path) == "empty file"


@pytest.mark.parametrize("name", ["random.jpg", "notes.txt"])
def test_not_an_image(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".txt"):
        path.write_text("just some words\n")
    else:
        path.write_bytes(np.random.default_rng(1).bytes(2000))
    reason = reason_of(path)
    assert reason.startswith("not an image (")
    assert str(tmp_path) not in reason


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_truncated_image(tmp_path, suffix):
    whole = tmp_path / f"whole.{suffix}"
    Image.fromarray(noise(64, 64)).save(whole)
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    assert reason_of(cut).startswith("corrupt or truncated image (")


def test_missing_file_and_folder(tmp_path):
    assert reason_of(tmp_path / "nope.png").startswith("cannot read file (")
    assert reason_of(tmp_path) == "not a regular file"


def test_bad_arguments(tmp_path):
    path = tmp_path / "ok.png"
    Image.new("RGB", (16, 16)).save(path)
    with pytest.raises(ValueError, match="channels"):
        decode_image(path, 16, channels=4)
    with pytest.raises(ValueError, match="background"):
        decode_image(path, 16, background=(0, 0, 300))


def test_deterministic(tmp_path):
    path = tmp_path / "noise.jpg"
    Image.fromarray(noise(50, 70)).save(path)
    assert np.array_equal(decode_image(path, 24), decode_image(path, 24))
