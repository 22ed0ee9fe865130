import numpy as np
import pytest
import torch
from PIL import Image

from ganvas.metrics.memorization import (
    as_nhwc,
    memorization_report,
    nearest_neighbours,
    save_distance_histogram,
    save_pairs_grid,
)
from tests.conftest import make_blobs


def _noise(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def _brute_force(samples, reals):
    a = samples.reshape(len(samples), -1).astype(np.float64) / 255
    b = reals.reshape(len(reals), -1).astype(np.float64) / 255
    d = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    return d.argmin(1), d.min(1)


def test_nearest_neighbours_agree_with_brute_force_for_any_chunk_and_layout():
    reals, samples = make_blobs(40, seed=0), make_blobs(13, seed=1)
    want_idx, want_d = _brute_force(samples, reals)
    for chunk in (5, 1024):
        idx, d = nearest_neighbours(samples, reals, chunk=chunk)
        assert np.array_equal(idx, want_idx)
        np.testing.assert_allclose(d, want_d, rtol=1e-9)
    chw = torch.from_numpy(samples).permute(0, 3, 1, 2)  # pipeline layout
    assert np.array_equal(nearest_neighbours(chw, reals)[0], want_idx)
    assert as_nhwc(chw).shape == samples.shape


def test_planted_copies_are_found_at_distance_zero_and_counted_as_copies():
    reals = make_blobs(200, seed=0)
    planted = [3, 117, 199]
    samples = np.concatenate([reals[planted], _noise(20)])
    report = memorization_report(samples, reals, chunk=64)
    assert report["sample_indices"][:3].tolist() == planted
    assert report["sample_distances"][:3].tolist() == [0.0, 0.0, 0.0]
    assert report["copies"].tolist() == [0, 1, 2]  # the random ones are far from everything
    assert report["copy_rate"] == pytest.approx(3 / 23)
    assert report["threshold"] == pytest.approx(np.percentile(report["real_distances"], 1))
    assert report["threshold"] > 0 and report["space"] == "pixel"


def test_random_samples_are_not_copies():
    report = memorization_report(_noise(30), make_blobs(100))
    assert report["copy_rate"] == 0.0 and report["distance_ratio"] > 1


def test_real_vs_real_reference_never_matches_an_image_with_itself():
    reals = make_blobs(60, seed=2)
    report = memorization_report(reals[:5], reals, n_reference=25, seed=1)
    ids = report["reference_indices"]
    assert len(ids) == 25 and len(np.unique(ids)) == 25
    assert (report["real_indices"] != ids).all() and (report["real_distances"] > 0).all()
    want = [
        np.sort(
            np.linalg.norm(
                (reals[np.arange(60) != i] / 255.0).reshape(59, -1)
                - reals[i].reshape(1, -1) / 255.0,
                axis=1,
            )
        )[0]
        for i in ids
    ]
    np.testing.assert_allclose(report["real_distances"], want, rtol=1e-9)  # fmt: skip
    # a real duplicated in the dataset is a true neighbour at distance 0
    doubled = np.concatenate([reals, reals[7:8]])
    report = memorization_report(reals[:2], doubled, n_reference=1000)
    assert report["real_indices"][[7, 60]].tolist() == [60, 7]
    assert report["real_distances"][[7, 60]].tolist() == [0.0, 0.0]


def test_feature_space_search_uses_the_feature_function():
    def mean_colour(images):  # uint8 [B, H, W, C] → [B, 3]
        return images.reshape(len(images), -1, 3).mean(1)

    reals, samples = make_blobs(30, seed=0), make_blobs(7, seed=3)
    idx, d = nearest_neighbours(samples, reals, features=mean_colour, chunk=4)
    dist = np.linalg.norm(mean_colour(samples)[:, None] - mean_colour(reals)[None], axis=-1)
    assert np.array_equal(idx, dist.argmin(1))
    np.testing.assert_allclose(d, dist.min(1), rtol=1e-5)
    report = memorization_report(samples, reals, features=mean_colour)
    assert report["space"] == "features" and np.array_equal(report["sample_indices"], idx)


def test_pairs_grid_shows_each_sample_beside_its_nearest_real(tmp_path):
    reals = make_blobs(50)
    samples = np.concatenate([_noise(3), reals[[9]]])
    idx, d = nearest_neighbours(samples, reals)
    path = save_pairs_grid(samples, reals, idx, tmp_path / "pairs.png", n=4)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (2 + 2 * 18, 2 + 2 * 35, 3)  # 2 × 2 tiles of 16 × (16 + 1 + 16)
    assert np.array_equal(grid[2:18, 2:18], samples[0])
    assert np.array_equal(grid[2:18, 19:35], reals[idx[0]])
    # with distances: closest first (the planted copy), a caption under each pair
    path = save_pairs_grid(samples, reals, idx, tmp_path / "closest.png", n=2, distances=d)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (2 + 64 + 14 + 2, 2 + 2 * (132 + 2), 3)  # enlarged ×4 for the text
    assert np.array_equal(grid[2:66:4, 2:66:4], reals[9])


def test_distance_histogram_is_a_png_of_the_requested_size(tmp_path):
    report = memorization_report(make_blobs(20, seed=1), make_blobs(80))
    path = save_distance_histogram(report["sample_distances"], report["real_distances"],
                                   tmp_path / "hist.png", threshold=report["threshold"])  # fmt: skip
    with Image.open(path) as image:
        assert image.size == (640, 360) and image.mode == "RGB"
        assert len(image.getcolors(1 << 16)) > 3  # bars, axes, text: not a blank canvas


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="differ in size"):
        nearest_neighbours(make_blobs(2, size=16), make_blobs(2, size=32))
    with pytest.raises(ValueError, match="uint8"):
        nearest_neighbours(make_blobs(2).astype(np.float32), make_blobs(2))
    with pytest.raises(ValueError, match="at least 2 reals"):
        memorization_report(make_blobs(2), make_blobs(1))
