import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ganvas.generate import load
from ganvas.interpolate import (
    interpolate,
    interpolation_path,
    lerp,
    save_gif,
    save_interpolation_grid,
    save_mp4,
    slerp,
)
from ganvas.training.trainer import train
from tests.conftest import TINY_MODELS, make_blobs, make_two_class_blobs, tiny_config, write_dataset


def _run(tmp_path_factory, name, images, labels=None, classes=(), **overrides):
    root = tmp_path_factory.mktemp(name)
    data = write_dataset(root / "data", images, labels, classes)
    train(tiny_config(data.path, **{"train.steps": 3, **overrides}), root / "run", progress=False)
    return load(root / "run")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return _run(tmp_path_factory, "dcgan", make_blobs(32))


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    images, labels = make_two_class_blobs(32)
    return _run(tmp_path_factory, "cdcgan", images, labels, ("red", "blue"),
                **{"model.family": "cdcgan", **TINY_MODELS["cdcgan"]})  # fmt: skip


def test_lerp_midpoint_is_the_mean_and_t_vectors_give_a_batch():
    a, b = torch.randn(8), torch.randn(8)
    assert torch.allclose(lerp(a, b, 0.5), (a + b) / 2)
    out = lerp(a, b, torch.tensor([0.0, 0.25, 1.0]))
    assert out.shape == (3, 8) and torch.equal(out[0], a) and torch.allclose(out[2], b)


def test_slerp_keeps_unit_vectors_on_the_sphere_and_falls_back_when_parallel():
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    path = slerp(a, b, torch.linspace(0, 1, 11))
    assert torch.allclose(path.norm(dim=1), torch.ones(11), atol=1e-6)
    half = math.sqrt(0.5)
    assert torch.allclose(path[5], torch.tensor([half, half, 0.0]), atol=1e-6)
    assert torch.allclose(path[0], a) and torch.allclose(path[-1], b, atol=1e-6)
    parallel = slerp(a, 2 * a, 0.5)  # no great circle: straight line, no NaN
    assert torch.allclose(parallel, 1.5 * a)
    batch = slerp(torch.randn(4, 6), torch.randn(4, 6), torch.tensor([0.0, 0.5]))
    assert batch.shape == (2, 4, 6) and torch.isfinite(batch).all()


@pytest.mark.parametrize("mode", ["slerp", "lerp"])
def test_path_through_keyframes_has_k_minus_one_times_steps_plus_one_points(mode):
    keys = torch.randn(4, 16)
    path = interpolation_path(keys, 5, mode)
    assert path.shape == ((4 - 1) * 5 + 1, 16)
    assert torch.equal(path[::5], keys)
    assert torch.allclose(path[1], (lerp if mode == "lerp" else slerp)(keys[0], keys[1], 0.2))
    with pytest.raises(ValueError, match="mode"):
        interpolation_path(keys, 5, "cubic")


def test_interpolation_endpoints_are_exactly_the_seed_images(pipeline):
    frames = interpolate(pipeline, seeds=[4, 9, 2], steps=6)
    assert frames.shape == (13, 3, 16, 16) and frames.dtype == torch.uint8
    for i, seed in enumerate([4, 9, 2]):
        assert torch.equal(frames[i * 6], pipeline.sample(1, seed)[0])
    assert not torch.equal(frames[1], frames[0])  # the walk moves
    with pytest.raises(ValueError, match="not class-conditional"):
        interpolate(pipeline, seeds=[1, 2], labels=0)


def test_conditional_walks_switch_class_at_the_segment_midpoint(conditional):
    g = conditional
    frames = interpolate(g, seeds=[1, 2], steps=4, mode="lerp", labels=["red", "blue"])
    assert torch.equal(frames[0], g.sample(1, 1, labels=torch.tensor([0]))[0])
    assert torch.equal(frames[4], g.sample(1, 2, labels=torch.tensor([1]))[0])
    z = interpolation_path(torch.cat([g.latents(1, 1), g.latents(1, 2)]), 4, "lerp")
    expected = (g.generate(z, torch.tensor([0, 0, 1, 1, 1])) + 1) / 2 * 255
    assert torch.equal(frames[1:4], expected.round()[1:4].to(torch.uint8))
    default = interpolate(g, seeds=[1, 2], steps=2)  # class 0, as sample(1, seed) uses
    assert torch.equal(default[2], g.sample(1, 2)[0])


def test_grid_puts_each_segment_on_a_row_and_gif_keeps_every_frame(pipeline, tmp_path):
    frames = interpolate(pipeline, seeds=[0, 1, 2], steps=4)  # 9 frames
    with Image.open(save_interpolation_grid(frames, tmp_path / "walk.png", steps=4)) as grid:
        assert grid.size == (2 + 5 * 18, 2 + 2 * 18)  # 2 segments of 5 images
    with Image.open(save_interpolation_grid(frames, tmp_path / "row.png")) as row:
        assert row.size == (2 + 9 * 18, 2 + 18)
    distinct = np.stack([np.full((8, 8, 3), 25 * i, np.uint8) for i in range(9)])
    with Image.open(save_gif(distinct, tmp_path / "walk.gif", fps=20)) as gif:
        assert gif.n_frames == 9 and gif.info["duration"] == 50 and gif.info["loop"] == 0
    with Image.open(save_gif(frames, tmp_path / "real.gif")) as gif:
        assert gif.size == (16, 16) and gif.n_frames > 1


def test_mp4_needs_pyav(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install av"):
        save_mp4(np.zeros((2, 8, 8, 3), np.uint8), tmp_path / "walk.mp4")


def test_mp4_has_every_frame(tmp_path):
    av = pytest.importorskip("av", reason="PyAV not installed (pip install av)")
    frames = np.stack([np.full((15, 17, 3), 20 * i, np.uint8) for i in range(6)])
    path = save_mp4(frames, tmp_path / "walk.mp4", fps=12)
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == 6 and (decoded[0].height, decoded[0].width) == (16, 18)
