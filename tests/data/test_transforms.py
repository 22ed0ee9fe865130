"""Crop geometry for `ganvas prepare`: border removal, square and mosaic tiles, random crops."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ganvas.data.transforms import (
    centre_square_box,
    crop_to_square_array,
    find_content_box,
    grid_boxes,
    parse_grid,
    random_resized_boxes,
)

GOLD = (212, 175, 55)


def texture(height: int = 40, width: int = 56, seed: int = 0) -> np.ndarray:
    """A picture with no uniform row or column anywhere."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def framed(
    picture: np.ndarray, colour: tuple[int, int, int], left: int, top: int, right: int, bottom: int
) -> np.ndarray:
    """`picture` inside margins of one colour, `left`…`bottom` pixels wide."""
    height, width = picture.shape[:2]
    canvas = np.empty((top + height + bottom, left + width + right, 3), dtype=np.uint8)
    canvas[:] = colour
    canvas[top : top + height, left : left + width] = picture
    return canvas


def placement(left: int, top: int, picture: np.ndarray) -> tuple[int, int, int, int]:
    height, width = picture.shape[:2]
    return left, top, left + width, top + height


def test_letterbox_bars_are_removed_exactly():
    picture = texture()
    img = framed(picture, (0, 0, 0), 0, 11, 0, 13)
    assert find_content_box(img) == placement(0, 11, picture)


def test_pillarbox_bars_are_removed_exactly():
    picture = texture()
    img = framed(picture, (0, 0, 0), 9, 0, 9, 0)
    assert find_content_box(img) == placement(9, 0, picture)


def test_white_mat_on_all_sides_is_removed_exactly():
    picture = texture()
    img = framed(picture, (255, 255, 255), 8, 8, 8, 8)
    assert find_content_box(img) == placement(8, 8, picture)


def test_nested_frame_bands_are_all_removed():
    # A 6-px gold frame around a 4-px black mat: the gold side bands interrupt the mat's rows,
    # so only repeated row/column passes peel both.
    picture = texture()
    img = framed(framed(picture, (0, 0, 0), 4, 4, 4, 4), GOLD, 6, 6, 6, 6)
    assert find_content_box(img) == placement(10, 10, picture)


def test_uneven_margins_are_removed_exactly():
    picture = texture()
    img = framed(picture, (128, 128, 128), 3, 7, 11, 5)
    assert find_content_box(img) == placement(3, 7, picture)


def test_grey_images_in_any_layout_are_handled():
    picture = texture()[..., 0]
    img = np.zeros((picture.shape[0] + 20, picture.shape[1]), dtype=np.uint8)
    img[10:-10] = picture
    expected = placement(0, 10, picture)
    assert find_content_box(img) == expected
    assert find_content_box(img[..., None]) == expected


@pytest.mark.parametrize(("top", "bottom"), [(11, 13), (8, 16), (16, 10)])
def test_letterbox_survives_jpeg_compression(top, bottom):
    # Noise is the worst case for JPEG: it rings across the whole block next to the picture.
    picture = texture()
    img = framed(picture, (0, 0, 0), 0, top, 0, bottom)
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, "JPEG", quality=90)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    found = find_content_box(decoded)
    truth = placement(0, top, picture)
    assert all(abs(a - b) <= 2 for a, b in zip(found, truth)), (found, truth)
    # Any error is on the side of keeping a sliver of bar, never of cutting into the picture.
    assert found[1] <= truth[1] and found[3] >= truth[3], (found, truth)


def test_picture_without_border_keeps_full_box():
    img = texture(48, 64)
    assert find_content_box(img) == (0, 0, 64, 48)


def test_blank_image_keeps_full_box():
    img = np.full((30, 50, 3), 200, dtype=np.uint8)
    assert find_content_box(img) == (0, 0, 50, 30)
    assert find_content_box(np.zeros((30, 50), dtype=np.uint8)) == (0, 0, 50, 30)


def test_flat_sky_inside_a_border_is_not_trimmed_past_max_fraction():
    # The top 30% of the picture is flat sky; with a 20-px border on a 140-px image, trimming
    # the sky too would remove 70 rows, more than 40% of the height.
    picture = texture(100, 100)
    picture[:30] = (110, 160, 230)
    img = framed(picture, (0, 0, 0), 20, 20, 20, 20)
    left, top, right, bottom = find_content_box(img)
    assert top + (140 - bottom) <= 0.4 * 140
    assert left + (140 - right) <= 0.4 * 140
    assert (left, top, right, bottom) == placement(20, 20, picture)


def test_flat_sky_without_border_is_kept():
    picture = texture(100, 80)
    picture[:50] = (110, 160, 230)
    assert find_content_box(picture) == (0, 0, 80, 100)


@pytest.mark.parametrize("max_fraction", [0.0, 0.1, 0.2, 0.3])
def test_trimming_never_exceeds_max_fraction(max_fraction):
    picture = texture()
    img = framed(picture, (0, 0, 0), 12, 12, 12, 12)  # 37.5% of each axis is margin
    left, top, right, bottom = find_content_box(img, max_fraction=max_fraction)
    height, width = img.shape[:2]
    assert top + (height - bottom) <= max_fraction * height
    assert left + (width - right) <= max_fraction * width


def test_centre_square_box():
    assert centre_square_box(300, 200) == (50, 0, 250, 200)
    assert centre_square_box(201, 300) == (0, 49, 201, 250)
    assert centre_square_box(64, 64) == (0, 0, 64, 64)


def assert_exact_cover(boxes: list[tuple[int, int, int, int]], width: int, height: int) -> None:
    coverage = np.zeros((height, width), dtype=np.int32)
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        coverage[top:bottom, left:right] += 1
    assert sum((r - l) * (b - t) for l, t, r, b in boxes) == width * height
    assert (coverage == 1).all()


def test_grid_5x5_covers_a_pal_frame_exactly():
    boxes = grid_boxes(720, 576, 5, 5)
    assert len(boxes) == 25
    assert_exact_cover(boxes, 720, 576)
    assert boxes[0] == (0, 0, 144, 115)
    assert boxes[-1][2:] == (720, 576)


@pytest.mark.parametrize(("width", "height"), [(101, 67), (7, 3), (4, 3)])
def test_grid_3x4_covers_odd_sizes_exactly_in_row_major_order(width, height):
    boxes = grid_boxes(width, height, 3, 4)
    assert len(boxes) == 12
    assert_exact_cover(boxes, width, height)
    # Row-major: the first row's tiles share their top edge and run left to right.
    assert [box[1] for box in boxes[:4]] == [0] * 4
    assert [box[0] for box in boxes[:4]] == sorted(box[0] for box in boxes[:4])


@pytest.mark.parametrize(
    ("width", "height", "rows", "cols"),
    [(100, 100, 0, 5), (100, 100, 5, 0), (100, 100, -1, 2), (3, 100, 2, 4), (100, 3, 4, 2)],
)
def test_grid_rejects_empty_tiles(width, height, rows, cols):
    with pytest.raises(ValueError):
        grid_boxes(width, height, rows, cols)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5x5", (5, 5)), ("5X5", (5, 5)), ("3×4", (3, 4)), ("2,3", (2, 3)), (" 2 x 3 ", (2, 3))]
    + [("1x64", (1, 64)), ("64x1", (64, 1))],
)
def test_parse_grid_accepts(text, expected):
    assert parse_grid(text) == expected


@pytest.mark.parametrize(
    "text", ["", "5", "5x", "x5", "5x5x5", "2.5x3", "-1x2", "axb", "5 5", "0x5", "5x0", "65x2"]
)
def test_parse_grid_rejects(text):
    with pytest.raises(ValueError, match="mosaic"):
        parse_grid(text)


def test_parse_grid_error_names_the_expected_form():
    with pytest.raises(ValueError, match=r"RxC, e\.g\. 5x5, got 'five'"):
        parse_grid("five")


def test_random_resized_boxes_respect_scale_and_ratio():
    scale, ratio = (0.1, 0.5), (3 / 4, 4 / 3)  # every draw fits a 1000x1000 image: no fallback
    boxes = random_resized_boxes(1000, 1000, 300, np.random.default_rng(0), scale, ratio)
    assert len(boxes) == 300
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= 1000 and 0 <= top < bottom <= 1000
        w, h = right - left, bottom - top
        # w and h are rounded to whole pixels, hence the 1% slack.
        assert scale[0] * 0.99 <= w * h / 1e6 <= scale[1] * 1.01
        assert ratio[0] * 0.99 <= w / h <= ratio[1] * 1.01
    # The draws spread over the ranges rather than sticking to one size or place.
    areas = [(r - l) * (b - t) / 1e6 for l, t, r, b in boxes]
    assert min(areas) < 0.15 and max(areas) > 0.45
    assert len({box[:2] for box in boxes}) > 250


def test_random_resized_boxes_default_ranges_stay_inside_the_image():
    boxes = random_resized_boxes(320, 180, 500, np.random.default_rng(1))
    assert len(boxes) == 500
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= 320 and 0 <= top < bottom <= 180


def test_random_resized_boxes_fall_back_to_the_centre_crop():
    # The whole area at a 1:1 ratio never fits a 3:2 image, so every box is the fallback:
    # the centred crop with its ratio clamped to 1.
    boxes = random_resized_boxes(300, 200, 3, np.random.default_rng(0), (1.0, 1.0), (1.0, 1.0))
    assert boxes == [(50, 0, 250, 200)] * 3
    tall = random_resized_boxes(100, 400, 1, np.random.default_rng(0), (1.0, 1.0), (0.5, 2.0))
    assert tall == [(0, 100, 100, 300)]


def test_random_resized_boxes_are_reproducible():
    def draw(seed):
        return random_resized_boxes(640, 480, 20, np.random.default_rng(seed))

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)
    assert random_resized_boxes(640, 480, 0, np.random.default_rng(7)) == []


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"count": -1}, "count"),
        ({"scale": (0.0, 1.0)}, "scale"),
        ({"scale": (0.5, 0.2)}, "scale"),
        ({"scale": (0.5, 1.5)}, "scale"),
        ({"ratio": (0.0, 1.0)}, "ratio"),
        ({"ratio": (2.0, 1.0)}, "ratio"),
    ],
)
def test_random_resized_boxes_reject_bad_arguments(kwargs, name):
    args = {"width": 100, "height": 100, "count": 1, "rng": np.random.default_rng(0)} | kwargs
    with pytest.raises(ValueError, match=name):
        random_resized_boxes(**args)


@pytest.mark.parametrize(("mode", "channels"), [("RGB", 3), ("L", 1)])
def test_crop_to_square_array_shape_and_dtype(mode, channels):
    img = Image.fromarray(texture(80, 120)).convert(mode)
    array = crop_to_square_array(img, centre_square_box(*img.size), 32)
    assert array.shape == (32, 32, channels)
    assert array.dtype == np.uint8
    assert array.flags["C_CONTIGUOUS"]
    # A non-square box is squashed to the same square shape.
    assert crop_to_square_array(img, (0, 0, 120, 40), 32).shape == (32, 32, channels)


def test_crop_to_square_array_keeps_pixels_when_no_resize_is_needed():
    picture = texture(80, 120)
    array = crop_to_square_array(Image.fromarray(picture), (10, 20, 60, 70), 50)
    np.testing.assert_array_equal(array, picture[20:70, 10:60])


def test_crop_to_square_array_rejects_bad_input():
    img = Image.fromarray(texture(80, 120))
    with pytest.raises(ValueError, match="outside"):
        crop_to_square_array(img, (100, 0, 130, 30), 16)
    with pytest.raises(ValueError, match="mode"):
        crop_to_square_array(img.convert("RGBA"), (0, 0, 80, 80), 16)


@pytest.mark.parametrize("shape", [(0, 10, 3), (10, 0), (2, 3, 4, 5)])
def test_find_content_box_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="shape"):
        find_content_box(np.zeros(shape, dtype=np.uint8))


def test_find_content_box_rejects_bad_max_fraction():
    with pytest.raises(ValueError, match="max_fraction"):
        find_content_box(texture(), max_fraction=1.5)
