"""Frame filters on generated frames: precision and recall of each detector (run with -s)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ganvas.data import filters

S = 96  # frame side in pixels
WORDS = ["LOVING VINCENT", "THE END", "Chapter II", "Directed by", "ARLES 1888", "Credits"]


def painting(seed: int, grey: bool = False, dark: bool = False) -> np.ndarray:
    """A painterly frame: smooth colour field plus random brush strokes."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((S, S), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x, y = rng.integers(0, S, 2)
        dx, dy = rng.integers(-12, 13, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.line([(x, y), (x + dx, y + dy)], fill=colour, width=int(rng.integers(1, 4)))
    arr = np.asarray(img).astype(np.float32) + rng.normal(0, 6, (S, S, 3))
    if grey:
        arr = np.repeat(arr @ filters._LUMA, 3).reshape(S, S, 3) + rng.normal(0, 1, (S, S, 3))
    if dark:
        arr = arr * 0.2
    return np.clip(arr, 0, 255).astype(np.uint8)


def title_card(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    light = seed % 3 == 0  # some cards are dark text on a light background
    bg, fg = ((235, 230, 215), (20, 20, 20)) if light else ((0, 0, 0), (250, 250, 250))
    img = Image.new("RGB", (S, S), bg)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=int(rng.integers(10, 16)))
    for line in range(int(rng.integers(1, 3))):
        text = WORDS[int(rng.integers(len(WORDS)))]
        draw.text((4, 25 + 22 * line), text, fill=fg, font=font)
    return np.asarray(img).copy()


def blank(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kind = seed % 3
    if kind == 0:
        return np.zeros((S, S, 3), np.uint8)
    if kind == 1:  # fade-out: dark with a little noise
        return np.clip(rng.normal(8, 2, (S, S, 3)), 0, 255).astype(np.uint8)
    colour = rng.integers(30, 256, 3)
    return np.clip(colour + rng.normal(0, 1.5, (S, S, 3)), 0, 255).astype(np.uint8)


def blur(img: np.ndarray, radius: float) -> np.ndarray:
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius)))


def precision_recall(name: str, predicted: list[bool], truth: list[bool]) -> tuple[float, float]:
    tp = sum(p and t for p, t in zip(predicted, truth))
    precision = tp / max(1, sum(predicted))
    recall = tp / max(1, sum(truth))
    print(f"{name:24s} n={len(truth):3d} precision {precision:.2f} recall {recall:.2f}")
    return precision, recall


@pytest.fixture(scope="module")
def frames() -> dict[str, list[np.ndarray]]:
    return {
        "painting": [painting(i) for i in range(20)],
        "dark": [painting(100 + i, dark=True) for i in range(6)],
        "grey": [painting(200 + i, grey=True) for i in range(10)],
        "blank": [blank(i) for i in range(12)],
        "title": [title_card(i) for i in range(12)],
    }


def test_blank_and_text_detectors(frames: dict[str, list[np.ndarray]]) -> None:
    labelled = [(img, kind) for kind, imgs in frames.items() for img in imgs]
    assert len(labelled) >= 40
    reasons = [filters.is_blank(img) for img, _ in labelled]
    p, r = precision_recall(
        "is_blank", [x is not None for x in reasons], [k == "blank" for _, k in labelled]
    )
    assert p >= 0.9 and r >= 0.9
    assert filters.is_blank(np.zeros((8, 8, 3), np.uint8)) == "near-black"
    assert filters.is_blank(np.full((8, 8, 3), 200, np.uint8)) == "blank single colour"

    text = [filters.is_text_frame(img) for img, _ in labelled]
    p, r = precision_recall("is_text_frame", text, [k == "title" for _, k in labelled])
    assert p >= 0.9 and r >= 0.9


def test_blur_detector(frames: dict[str, list[np.ndarray]]) -> None:
    sharp = frames["painting"] + frames["grey"]
    blurred = [blur(img, 1.5 + (i % 3)) for i, img in enumerate(sharp)]
    values = [filters.sharpness(img) for img in sharp + blurred]
    assert all(filters.sharpness(b) < filters.sharpness(s) for s, b in zip(sharp, blurred))
    predicted = [v < 100.0 for v in values]
    assert predicted == [filters.is_blurry(img, 100.0) for img in sharp + blurred]
    p, r = precision_recall(
        "is_blurry(100)", predicted, [False] * len(sharp) + [True] * len(blurred)
    )
    assert p >= 0.9 and r >= 0.9


def near_copies(img: np.ndarray, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    noisy = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    shifted = np.roll(img, 1, axis=1)
    brighter = np.clip(img.astype(np.int16) + 10, 0, 255).astype(np.uint8)
    return [noisy, shifted, brighter]


def test_near_duplicate_grouping(frames: dict[str, list[np.ndarray]]) -> None:
    # A "film": each scene is a picture followed by its near-copies, scenes in a row.
    film, scene_of = [], []
    for s, img in enumerate(frames["painting"] + frames["grey"]):
        for variant in [img, *near_copies(img, s)]:
            film.append(variant)
            scene_of.append(s)
    hashes = [filters.perceptual_hash(img) for img in film]
    assert all(0 <= h < 1 << 63 for h in hashes)
    assert filters.hamming(0b1011, 0b0001) == 2

    n = len(film)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    truth = [scene_of[i] == scene_of[j] for i, j in pairs]
    for window in (None, 4):
        groups = filters.group_near_duplicates(hashes, max_distance=10, window=window)
        assert sorted(i for g in groups for i in g) == list(range(n))
        group_of = {i: g for g, members in enumerate(groups) for i in members}
        predicted = [group_of[i] == group_of[j] for i, j in pairs]
        p, r = precision_recall(f"near-duplicates w={window}", predicted, truth)
        assert p >= 0.9 and r >= 0.9

    sharp_values = [filters.sharpness(img) for img in film]
    kept = filters.keep_sharpest([[0, 1, 2], [3]], [1.0, 5.0, 5.0, 0.0])
    assert kept == [1, 3]
    assert len(filters.keep_sharpest(groups, sharp_values)) == len(groups)


def test_grayscale_detector(frames: dict[str, list[np.ndarray]]) -> None:
    imgs = frames["painting"] + frames["dark"] + frames["grey"] + frames["title"]
    # White-on-black cards are grey; the dark-on-cream ones (every 3rd) are not.
    truth = [False] * 26 + [True] * 10 + [i % 3 != 0 for i in range(12)]
    predicted = [filters.is_grayscale(img) for img in imgs]
    p, r = precision_recall("is_grayscale", predicted, truth)
    assert p >= 0.9 and r >= 0.9


def test_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match="RGB"):
        filters.sharpness(np.zeros((8, 8), np.uint8))
