"""Metric numerics on synthetic features, the reference cache, and `evaluate` / `per_class_fid`
with small stand-in feature networks (no Inception weights needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganvas.metrics import (
    KEY_FID,
    KEY_IS_MEAN,
    KEY_IS_STD,
    KEY_KID_MEAN,
    KEY_KID_STD,
    KEY_PRECISION,
    KEY_PROTOCOL,
    KEY_RECALL,
    FeatureExtractor,
    MetricsError,
    evaluate,
    feature_statistics,
    fid_from_features,
    fidelity,
    frechet_distance,
    inception_score,
    kid_from_features,
    per_class_fid,
    precision_recall,
)
from tests.conftest import make_blobs, make_two_class_blobs


def correlated(n: int, d: int, seed: int, scale: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mixing) * scale + rng.normal(size=d)


# --- FID -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n, d", [(500, 64), (40, 64)])  # full-rank and rank-deficient Σ
def test_fid_of_a_set_with_itself_is_zero(n, d):
    x = correlated(n, d, seed=0)
    scale = np.trace(np.cov(x, rowvar=False))
    assert abs(fid_from_features(x, x)) < 1e-6 * scale


def test_fid_rises_monotonically_with_noise():
    x = correlated(400, 32, seed=1)
    noise = np.random.default_rng(2).normal(size=x.shape)
    fids = [fid_from_features(x, x + sigma * noise) for sigma in (0.0, 0.1, 0.3, 1.0, 3.0)]
    assert abs(fids[0]) < 1e-9 * np.trace(np.cov(x, rowvar=False))
    assert all(a < b for a, b in zip(fids, fids[1:])), fids


def _fid_2d_by_hand(mu1, s1, mu2, s2) -> float:
    # For a 2×2 matrix M with real non-negative eigenvalues a, b:
    # tr sqrt(M) = sqrt(a) + sqrt(b) = sqrt(a + b + 2 sqrt(ab)) = sqrt(tr M + 2 sqrt(det M)).
    m = s1 @ s2
    tr_sqrt = np.sqrt(np.trace(m) + 2 * np.sqrt(np.linalg.det(m)))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


GAUSS_A = (np.array([0.0, 0.0]), np.array([[1.0, 0.0], [0.0, 4.0]]))
GAUSS_B = (np.array([1.0, 2.0]), np.array([[2.0, 0.5], [0.5, 1.0]]))


def test_fid_matches_hand_computation_on_2d_gaussians():
    (mu1, s1), (mu2, s2) = GAUSS_A, GAUSS_B
    expected = _fid_2d_by_hand(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-12)
    # Commuting (diagonal) covariances: |Δμ|² + Σ (sqrt a_i - sqrt b_i)².
    d1, d2 = np.diag([1.0, 4.0]), np.diag([9.0, 0.25])
    assert frechet_distance(mu1, d1, mu2, d2) == pytest.approx(5 + (1 - 3) ** 2 + (2 - 0.5) ** 2)
    # From samples, the estimate converges to the same number.
    rng = np.random.default_rng(3)
    x = rng.multivariate_normal(mu1, s1, size=200_000)
    y = rng.multivariate_normal(mu2, s2, size=200_000)
    assert fid_from_features(x, y) == pytest.approx(expected, rel=0.01)


def test_fid_agrees_with_torch_fidelity_helper():
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    x, y = correlated(2000, 32, seed=4), correlated(2000, 32, seed=5) + 0.3
    (m1, s1), (m2, s2) = feature_statistics(x), feature_statistics(y)
    theirs = fid_statistics_to_metric({"mu": m1, "sigma": s1}, {"mu": m2, "sigma": s2}, False)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(theirs[KEY_METRIC_FID], rel=1e-9)


def test_fid_rejects_mismatched_statistics():
    with pytest.raises(MetricsError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# --- KID -----------------------------------------------------------------------------------


def _biased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    def k(a, b):
        return (a @ b.T / a.shape[1] + 1) ** 3

    return float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())


def test_kid_is_unbiased_for_equal_distributions():
    rng = np.random.default_rng(6)
    draws, biased = [], []
    for i in range(300):
        x, y = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
        draws.append(kid_from_features(x, y, subsets=1, subset_size=50, seed=i)[0])
        biased.append(_biased_mmd2(x, y))
    stderr = np.std(draws) / np.sqrt(len(draws))
    assert abs(np.mean(draws)) < 3 * stderr
    # The test can tell: the biased (V-statistic) estimate is clearly positive on the same data.
    assert np.mean(biased) > 10 * np.std(biased) / np.sqrt(len(biased))


def test_kid_is_positive_for_shifted_distributions():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(500, 8)), rng.normal(size=(500, 8)) + 0.5
    mean, std = kid_from_features(x, y, subsets=20, subset_size=100, seed=0)
    assert mean > 0 and mean > 3 * std
    same_mean, _ = kid_from_features(x, rng.normal(size=(500, 8)), 20, 100, seed=0)
    assert abs(same_mean) < mean / 10


def test_kid_subset_size_is_checked():
    x = np.zeros((10, 4))
    with pytest.raises(MetricsError, match="subset_size=11"):
        kid_from_features(x, x, subsets=2, subset_size=11)


# --- precision / recall --------------------------------------------------------------------


def test_precision_recall_of_identical_sets_is_one():
    x = correlated(300, 16, seed=8)
    assert precision_recall(x, x.copy()) == (1.0, 1.0)


def test_precision_recall_drop_for_disjoint_and_partial_sets():
    rng = np.random.default_rng(9)
    real = np.concatenate([rng.normal(size=(200, 4)) - 10, rng.normal(size=(200, 4)) + 10])
    far = rng.normal(size=(400, 4)) + 100
    assert precision_recall(far, real) == (0.0, 0.0)
    # Generated images cover one of the two real modes: all plausible, half the variety.
    one_mode = rng.normal(size=(400, 4)) + 10
    precision, recall = precision_recall(one_mode, real)
    assert precision > 0.9
    assert 0.4 < recall < 0.6


def test_precision_recall_needs_more_images_than_k():
    x = np.zeros((3, 4))
    with pytest.raises(MetricsError, match="k=3"):
        precision_recall(x, x)


# --- Inception Score -----------------------------------------------------------------------


def test_inception_score_bounds():
    assert inception_score(np.zeros((100, 10))) == pytest.approx((1.0, 0.0))
    confident = 50.0 * np.eye(10)[np.arange(1000) % 10]  # sure and evenly spread: IS → 10
    mean, _ = inception_score(confident)
    assert 9.0 < mean <= 10.0 + 1e-9


# --- feature extraction with stand-in networks ---------------------------------------------


class TinyNet(nn.Module):
    """A small random conv net standing in for Inception: uint8 [B, 3, H, W] → [B, 16]."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        x = x.float() / 127.5 - 1
        x = F.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4).flatten(1)
        return (self.fc(x),)


class ColourStats(nn.Module):
    """Deterministic features: channel means, stds and a 2×2 thumbnail; counts its images."""

    def __init__(self) -> None:
        super().__init__()
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        x = x.float() / 255
        return torch.cat([x.mean((2, 3)), x.std((2, 3)), F.adaptive_avg_pool2d(x, 2).flatten(1)], 1)


def test_feature_extraction_is_batch_size_independent():
    fe = FeatureExtractor(TinyNet(), "tiny")
    images = make_blobs(37, size=16, seed=1)  # [N, H, W, C]
    reference = fe.features(images, batch_size=64)
    assert reference.shape == (37, 16) and reference.dtype == np.float32
    for batch_size in (1, 5, 16):
        np.testing.assert_allclose(fe.features(images, batch_size), reference, rtol=1e-5, atol=1e-6)
    # The same images as an NCHW tensor, or as an iterable of uneven batches.
    nchw = torch.from_numpy(images).permute(0, 3, 1, 2)
    np.testing.assert_allclose(fe.features(nchw), reference, rtol=1e-5, atol=1e-6)
    chunks = [nchw[:10], nchw[10:11], nchw[11:]]
    np.testing.assert_allclose(fe.features(chunks, 4), reference, rtol=1e-5, atol=1e-6)


def test_greyscale_images_are_repeated_to_rgb():
    fe = FeatureExtractor(TinyNet(), "tiny")
    grey = make_blobs(6, size=16)[..., :1]  # [N, H, W, 1]
    np.testing.assert_array_equal(fe.features(grey), fe.features(np.repeat(grey, 3, axis=3)))


def test_extraction_rejects_float_images():
    fe = FeatureExtractor(TinyNet(), "tiny")
    with pytest.raises(MetricsError, match="uint8"):
        fe.features(torch.rand(2, 3, 16, 16))


# --- evaluate: cache, generators, errors ---------------------------------------------------


def test_reference_statistics_are_cached_atomically(tiny_dataset, tmp_path, capsys):
    net = ColourStats()
    fe = FeatureExtractor(net, "colour-stats")
    fake = make_blobs(40, seed=1)
    cache = tmp_path / "stats"
    first = evaluate(fake, tiny_dataset, n=1000, cache_dir=cache, extractor=fe, batch_size=16)
    assert set(first) == {KEY_FID, KEY_KID_MEAN, KEY_KID_STD, KEY_PRECISION, KEY_RECALL,
                          KEY_PROTOCOL}  # fmt: skip
    assert net.images == 40 + 64  # generated + every real image
    files = sorted(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary files left
    assert not files[0].name.startswith(".")
    assert "computing reference features" in capsys.readouterr().err

    second = evaluate(fake, tiny_dataset, n=1000, cache_dir=cache, extractor=fe, batch_size=16)
    assert net.images == 40 + 64 + 40  # only the generated images this time
    assert "from cache" in capsys.readouterr().err
    assert second == first  # the protocol too: nothing in it depends on the cache
    assert sorted(cache.iterdir()) == files

    # Another extractor (weights) or another n is another cache entry.
    evaluate(fake, tiny_dataset, n=32, cache_dir=cache, extractor=fe, metrics=["fid"])
    other = FeatureExtractor(ColourStats(), "colour-stats-v2")
    evaluate(fake, tiny_dataset, n=1000, cache_dir=cache, extractor=other, metrics=["fid"])
    assert len(list(cache.iterdir())) == 3


def test_a_failed_cache_write_leaves_nothing(tiny_dataset, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    fe = FeatureExtractor(ColourStats(), "colour-stats")
    cache = tmp_path / "stats"
    with pytest.raises(OSError, match="disk full"):
        evaluate(make_blobs(8), tiny_dataset, metrics=["fid"], cache_dir=cache, extractor=fe)
    assert list(cache.iterdir()) == []


def test_evaluate_is_batch_size_independent(tiny_dataset, tmp_path):
    fe = FeatureExtractor(TinyNet(), "tiny")
    fake = make_blobs(30, seed=2)
    a = evaluate(fake, tiny_dataset, cache_dir=tmp_path / "a", extractor=fe, batch_size=64)
    b = evaluate(fake, tiny_dataset, cache_dir=tmp_path / "b", extractor=fe, batch_size=7)
    assert a.pop(KEY_PROTOCOL) == b.pop(KEY_PROTOCOL)  # the batch size is not part of it
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


def test_generators_are_drawn_in_seeded_chunks(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(fidelity, "GENERATE_CHUNK", 10)
    calls = []

    def sample(n, seed):
        calls.append((n, seed))
        return torch.from_numpy(make_blobs(n, seed=seed)).permute(0, 3, 1, 2)  # [n, C, H, W]

    fe = FeatureExtractor(ColourStats(), "colour-stats")
    kwargs = dict(metrics=["fid"], n=25, seed=7, cache_dir=tmp_path, extractor=fe)
    first = evaluate(sample, tiny_dataset, **kwargs)
    assert [n for n, _ in calls] == [10, 10, 5]
    seeds = [s for _, s in calls]
    assert seeds[0] == 7 and len(set(seeds)) == 3
    assert evaluate(sample, tiny_dataset, **kwargs) == first  # same seed, same images
    assert [s for _, s in calls[3:]] == seeds


class FakeConditional:
    """Stands in for a conditional GeneratorPipeline: class 1 is class 0 with red and blue
    swapped, like `make_two_class_blobs`; `swap` draws every class as the other one."""

    num_classes = 2

    def __init__(self, swap: bool = False) -> None:
        self.swap = swap

    def sample(self, n, seed=0, labels=None):
        images = make_blobs(n, seed=seed + 1000)
        flip = (labels.numpy() == 1) != self.swap
        images[flip] = images[flip][..., ::-1]
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)


def test_per_class_fid(labelled_dataset, tmp_path):
    fe = FeatureExtractor(ColourStats(), "colour-stats")
    kwargs = dict(n=32, cache_dir=tmp_path, extractor=fe)
    right = per_class_fid(FakeConditional(), labelled_dataset, **kwargs)
    wrong = per_class_fid(FakeConditional(swap=True), labelled_dataset, **kwargs)
    assert list(right) == ["red", "blue"]
    for name in right:
        assert np.isfinite(right[name]) and right[name] < wrong[name] / 10
    assert list(per_class_fid(FakeConditional(), labelled_dataset, classes=["blue"], **kwargs)) == [
        "blue"
    ]


def test_per_class_fid_checks_classes(labelled_dataset, tiny_dataset, tmp_path):
    fe = FeatureExtractor(ColourStats(), "colour-stats")
    three = FakeConditional()
    three.num_classes = 3
    with pytest.raises(MetricsError, match="3 classes"):
        per_class_fid(three, labelled_dataset, extractor=fe, cache_dir=tmp_path)
    with pytest.raises(MetricsError, match="no labels"):
        per_class_fid(FakeConditional(), tiny_dataset, extractor=fe, cache_dir=tmp_path)
    with pytest.raises(MetricsError, match="no class 'green'"):
        per_class_fid(FakeConditional(), labelled_dataset, extractor=fe, classes=["green"])


def test_evaluate_errors(tiny_dataset, tmp_path):
    fe = FeatureExtractor(ColourStats(), "colour-stats")
    fake = make_blobs(8)
    with pytest.raises(MetricsError, match="choose from fid, is, kid, pr"):
        evaluate(fake, tiny_dataset, metrics=["fid", "lpips"], extractor=fe)
    with pytest.raises(MetricsError, match="weights-inception-2015-12-05-6726825d.pth"):
        evaluate(fake, tiny_dataset, metrics=["is"], extractor=fe)
    with pytest.raises(MetricsError, match="same resolution"):
        evaluate(make_blobs(8, size=32), tiny_dataset, metrics=["fid"], extractor=fe,
                 cache_dir=tmp_path)  # fmt: skip
    with pytest.raises(MetricsError, match="need a reference"):
        evaluate(fake, None, metrics=["fid"], extractor=fe)


class WithClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = ColourStats()
        self.fc = nn.Linear(18, 10)

    def forward(self, x):
        f = self.features(x)
        return f, 20 * self.fc(f)


def test_inception_score_needs_no_reference_with_a_classifier():
    fe = FeatureExtractor(WithClassifier(), "with-classifier", has_classifier=True)
    images, _ = make_two_class_blobs(40)
    out = evaluate(images, None, metrics=["is"], extractor=fe)
    assert set(out) == {KEY_IS_MEAN, KEY_IS_STD, KEY_PROTOCOL}
    protocol = out[KEY_PROTOCOL]
    assert protocol["real"] is None and protocol["n_real"] is None and protocol["n_fake"] == 40
    assert protocol["metrics"] == {"computed": ["is"], "is_splits": 10}
    assert 1.0 <= out[KEY_IS_MEAN] <= 10.0
