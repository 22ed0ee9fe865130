import numpy as np
import pytest
import torch

from ganvas.metrics.diversity import (
    CollapseMonitor,
    diversity_score,
    mean_pairwise_distance,
    near_duplicate_rate,
)
from tests.conftest import make_blobs


@pytest.fixture(scope="module")
def reals():
    return make_blobs(256, seed=0)


def test_a_collapsed_generator_scores_zero_and_every_sample_is_a_near_duplicate(reals):
    collapsed = np.repeat(make_blobs(1, seed=5), 64, axis=0)  # the same image whatever z
    assert diversity_score(collapsed, reals) == 0.0
    assert near_duplicate_rate(collapsed, reals=reals) == 1.0
    assert near_duplicate_rate(collapsed, threshold=0.0) == 1.0  # exact duplicates count


def test_samples_from_the_data_distribution_score_about_one(reals):
    healthy = make_blobs(64, seed=1)
    assert diversity_score(healthy, reals) == pytest.approx(1.0, abs=0.1)
    assert near_duplicate_rate(healthy, reals=reals) < 0.1
    # pipeline layout is accepted, and the score is seeded
    chw = torch.from_numpy(healthy).permute(0, 3, 1, 2)
    assert diversity_score(chw, reals, seed=3) == diversity_score(healthy, reals, seed=3)


def test_few_modes_score_lower_than_many(reals):
    four_modes = np.repeat(make_blobs(4, seed=2), 16, axis=0)
    noise = np.random.default_rng(0).integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    partly = diversity_score(four_modes, reals)
    assert 0 < partly < 1 and diversity_score(noise, reals) > 2
    assert near_duplicate_rate(four_modes, reals=reals) == 1.0


def test_mean_pairwise_distance_uses_all_pairs_when_few_and_random_pairs_when_many():
    images = make_blobs(10)
    flat = images.reshape(10, -1).astype(np.float64) / 255
    i, j = np.triu_indices(10, 1)
    exact = np.linalg.norm(flat[i] - flat[j], axis=1).mean()
    assert mean_pairwise_distance(images) == pytest.approx(exact, rel=1e-6)
    assert mean_pairwise_distance(images, max_pairs=30) == pytest.approx(exact, rel=0.15)


def test_near_duplicate_rate_needs_a_threshold_or_reals():
    with pytest.raises(ValueError, match="threshold"):
        near_duplicate_rate(make_blobs(4))


def test_collapse_monitor_stays_quiet_on_a_healthy_generator(reals):
    for monitor in (CollapseMonitor(), CollapseMonitor(reals=reals)):
        for seed in range(5):
            assert monitor.update(make_blobs(16, seed=seed)) is None
        assert not monitor.collapsed and min(monitor.history) > 0.8


def test_collapse_monitor_warns_once_per_collapse_after_patience(reals):
    monitor = CollapseMonitor(threshold=0.2, patience=2)
    collapsed = np.repeat(make_blobs(1, seed=5), 16, axis=0)
    assert monitor.update(make_blobs(16, seed=1)) is None
    assert monitor.update(collapsed) is None  # one low step is not a trend
    warning = monitor.update(collapsed)
    assert "mode collapse" in warning and "0.00" in warning and monitor.collapsed
    assert monitor.update(collapsed) is None  # already reported
    assert monitor.update(make_blobs(16, seed=2)) is None and not monitor.collapsed
    assert monitor.update(collapsed) is None and monitor.update(collapsed) is not None


def test_collapse_monitor_against_reals_ignores_an_untrained_start(reals):
    monitor = CollapseMonitor(reals=reals, patience=1)
    flat = np.full((16, 16, 16, 3), 128, np.uint8)  # an untrained G's near-uniform grey
    flat += np.arange(16, dtype=np.uint8)[:, None, None, None]
    assert monitor.update(flat) is None and monitor.update(flat) is None  # not armed yet
    assert monitor.update(make_blobs(16, seed=1)) is None
    assert "real images" in monitor.update(flat)
    restored = CollapseMonitor(reals=reals)
    restored.load_state_dict(monitor.state_dict())
    assert restored.state_dict() == monitor.state_dict()
