"""Crappify: the damage is a function of the seed alone, stays within its settings' ranges,
and is drawn per image and epoch (not per batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganvas.config import ConfigError
from ganvas.data.crappify import CrappifySettings, crappify, crappify_batch
from ganvas.data.loader import BatchSampler, uint8_to_float
from tests.conftest import make_blobs


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.normal(0, 4, (64, 64, 3)), 0), 1)
    return np.clip(128 + smooth - smooth.mean(), 0, 255).astype(np.uint8)


def test_the_same_seed_gives_the_same_damage_and_another_seed_another(picture):
    settings = CrappifySettings(factor=2, noise=0.05, blur=1.0, fade=0.3)
    a, drawn_a = crappify(picture, settings, seed=7)
    b, drawn_b = crappify(picture, settings, seed=7)
    c, drawn_c = crappify(picture, settings, seed=8)
    assert a.dtype == np.uint8 and a.shape == (32, 32, 3)
    assert np.array_equal(a, b) and drawn_a == drawn_b
    assert not np.array_equal(a, c) and drawn_a != drawn_c


def test_drawn_parameters_stay_in_their_ranges_and_cover_them(picture):
    settings = CrappifySettings(factor=4, jpeg_quality=(10, 70), noise=0.1, blur=2.0, fade=0.5)
    draws = [crappify(picture, settings, seed)[1] for seed in range(120)]
    qualities = [d.quality for d in draws]
    assert min(qualities) >= 10 and max(qualities) <= 70
    assert min(qualities) < 20 and max(qualities) > 60  # the whole range gets drawn
    assert all(0 <= d.blur <= 2.0 and 0 <= d.noise <= 0.1 and 0 <= d.fade <= 0.5 for d in draws)
    # fastai's overlay: the number is written somewhere in the top-left quarter (of 16 px)
    assert all(0 <= d.text_at[0] <= 8 and 0 <= d.text_at[1] <= 8 for d in draws)


def test_lower_jpeg_quality_damages_more(picture):
    clean_small, _ = crappify(picture, CrappifySettings(factor=2, jpeg_quality=(95, 95),
                                                        overlay=False), 0)  # fmt: skip
    errors = {}
    for quality in (10, 70):
        settings = CrappifySettings(factor=2, jpeg_quality=(quality, quality), overlay=False)
        damaged, drawn = crappify(picture, settings, 0)
        assert drawn.quality == quality and drawn.text_at is None
        errors[quality] = np.abs(damaged.astype(int) - clean_small.astype(int)).mean()
    assert errors[10] > errors[70] > 0


def test_factor_one_keeps_the_size_and_grey_drops_colour(picture):
    damaged, _ = crappify(picture, CrappifySettings(factor=1, grey=True), 3)
    assert damaged.shape == picture.shape
    spread = damaged.astype(int).max(2) - damaged.astype(int).min(2)
    assert spread.max() <= 3  # JPEG's chroma rounding leaves at most a few levels
    grey_input = picture[..., :1]
    out, _ = crappify(grey_input, CrappifySettings(factor=2), 3)
    assert out.shape == (32, 32, 1)


def test_batches_are_damaged_image_by_image_from_their_seeds():
    images = uint8_to_float(make_blobs(4, size=16))
    settings = CrappifySettings(factor=2)
    batch = crappify_batch(images, settings, [1, 2, 3, 4])
    assert batch.shape == (4, 3, 8, 8) and batch.min() >= -1 and batch.max() <= 1
    one = crappify_batch(images[2:3], settings, [3])
    assert torch.equal(batch[2:3], one)


def test_each_image_draws_its_seed_from_the_run_seed_its_index_and_the_epoch():
    images = make_blobs(8, size=16)

    def seeds_by_image(batch_size: int, seed: int = 0) -> dict[int, int]:
        sampler = BatchSampler(images, None, batch_size, seed)
        found = {}
        for _ in range(8 // batch_size):
            sampler.next()
            epoch, index = sampler._last_draw
            found.update(zip(index.tolist(), sampler.draw_seeds().tolist()))
        return found

    by_two, by_four = seeds_by_image(2), seeds_by_image(4)
    assert len(by_two) == 8 and len(set(by_two.values())) == 8  # one seed per image
    assert seeds_by_image(2) == by_two and seeds_by_image(2, seed=1) != by_two
    assert by_two == by_four  # whatever the batch size, an image in an epoch: the same seed


def test_bad_settings_name_the_key():
    with pytest.raises(ConfigError, match="jpeg_quality"):
        CrappifySettings(jpeg_quality=(70, 10))
    with pytest.raises(ConfigError, match="factor"):
        CrappifySettings(factor=3)
    with pytest.raises(ConfigError, match="model.noise"):
        CrappifySettings(noise=2.0)
