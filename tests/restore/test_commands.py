"""Using restore runs: `ganvas restore` on files of any size (tiled), bad files reported and
skipped, `ganvas upscale` and `ganvas sample --upscale` on a GAN run's samples, and latent-only
commands refusing a restore run with a pointer to these."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import ganvas
from ganvas.cli import app
from ganvas.config import ConfigError, load_config
from ganvas.restore import blend_window, load_restorer, restore_files, tile_starts, upscale_samples
from ganvas.training.trainer import train
from tests.conftest import TINY_MODELS, make_blobs, tiny_config, write_dataset

runner = CliRunner()


def _restore_run(root: Path, resolution: int, factor: int) -> Path:
    data = write_dataset(root / f"data{resolution}", make_blobs(16, resolution))
    cfg = load_config(overrides={
        "data.path": str(data.path), "model.family": "restore", **TINY_MODELS["restore"],
        "model.resolution": resolution, "model.factor": factor, "train.batch_size": 4,
        "train.steps": 3, "train.device": "cpu", "train.n_samples": 2, "train.tensorboard": False,
        "train.energy": False})  # fmt: skip
    train(cfg, root / f"restore-x{factor}", progress=False)
    return root / f"restore-x{factor}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("restore-runs")
    gan_data = write_dataset(root / "gan-data", make_blobs(16, 32))
    train(tiny_config(gan_data.path, **{"model.resolution": 32, "train.steps": 2,
                                        "train.energy": False}), root / "gan32", progress=False)  # fmt: skip
    return {"x2": _restore_run(root, 16, 2), "x4": _restore_run(root, 32, 4),
            "gan": root / "gan32"}  # fmt: skip


def test_tiles_cover_the_picture_with_overlap():
    assert tile_starts(8, 8) == [0]
    starts = tile_starts(20, 8)
    assert starts[0] == 0 and starts[-1] == 12
    assert all(b - a <= 6 for a, b in zip(starts, starts[1:]))  # overlap of at least 8/4
    window = blend_window(16, 4)
    assert window[8, 8] == 1 and 0 < window[0, 0] < window[2, 2] < 1


def test_one_tile_is_restored_as_g_restores_it_and_big_ones_are_tiled(runs):
    restorer = load_restorer(runs["x2"], device="cpu")
    assert (restorer.factor, restorer.tile) == (2, 8)
    tile = make_blobs(1, 8)[0]
    with torch.no_grad():
        direct = restorer.G(torch.from_numpy(tile).permute(2, 0, 1)[None].float() / 127.5 - 1)
    expected = ((direct[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255)
    assert np.array_equal(restorer.restore(tile), expected.astype(np.uint8))
    big = np.asarray(Image.fromarray(make_blobs(1, 32)[0]).resize((37, 29)))
    out = restorer.restore(big)
    assert out.shape == (58, 74, 3) and out.dtype == np.uint8
    small = make_blobs(1, 16)[0][:5, :6]  # smaller than a tile: padded, then cropped back
    assert restorer.restore(small).shape == (10, 12, 3)


def test_restore_files_writes_pngs_and_reports_bad_files(runs, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(make_blobs(1, 16)[0]).resize((20, 12)).save(good)
    grey = tmp_path / "grey.jpg"
    Image.fromarray(make_blobs(1, 16)[0]).convert("L").save(grey)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    report = restore_files(runs["x2"], [good, broken, tmp_path / "missing.png", grey],
                           tmp_path / "out", device="cpu")  # fmt: skip
    assert [p.name for p in report.written] == ["good.png", "grey.png"]
    assert [p.name for p, _ in report.failed] == ["broken.png", "missing.png"]
    with Image.open(tmp_path / "out" / "good.png") as picture:
        assert picture.size == (40, 24) and picture.mode == "RGB"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png", "grey.png"]


def test_restore_command_skips_bad_files_and_refuses_a_gan_run(runs, tmp_path):
    good = tmp_path / "a.png"
    Image.fromarray(make_blobs(1, 16)[0]).save(good)
    (tmp_path / "bad.png").write_text("no picture")
    result = runner.invoke(app, ["restore", str(runs["x2"]), str(good), str(tmp_path / "bad.png"),
                                 "--out", str(tmp_path / "out"), "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "bad.png" in result.output
    assert (tmp_path / "out" / "a.png").is_file()
    result = runner.invoke(app, ["restore", str(runs["gan"]), str(good), "--out",
                                 str(tmp_path / "o2")])  # fmt: skip
    assert result.exit_code == 2 and "restore run" in result.output
    assert not (tmp_path / "o2").exists()


def test_upscale_turns_32_px_samples_into_128_px_images(runs, tmp_path):
    with_x4 = upscale_samples(runs["x4"], runs["gan"], n=3, seed=1, device="cpu")
    assert with_x4.shape == (3, 128, 128, 3) and with_x4.dtype == np.uint8
    twice_x2 = upscale_samples(runs["x2"], runs["gan"], n=3, seed=1, factor=4, device="cpu")
    assert twice_x2.shape == (3, 128, 128, 3)
    samples = ganvas.load(runs["gan"], device="cpu").sample_numpy(3, seed=1)
    restorer = load_restorer(runs["x4"], device="cpu")
    assert np.array_equal(with_x4, restorer.restore_many(samples))  # the GAN's own samples
    with pytest.raises(ValueError, match="power"):
        upscale_samples(runs["x4"], runs["gan"], n=1, factor=2, device="cpu")


def test_upscale_and_sample_upscale_commands_write_big_pictures(runs, tmp_path):
    out = tmp_path / "big.png"
    result = runner.invoke(app, ["upscale", str(runs["gan"]), "--with", str(runs["x4"]), "--n",
                                 "4", "--factor", "4", "--out", str(out), "--nrow", "2",
                                 "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    with Image.open(out) as grid:
        assert grid.size == (2 * 128 + 3 * 2, 2 * 128 + 3 * 2)  # 2×2 tiles and their padding
    result = runner.invoke(app, ["sample", str(runs["gan"]), "--upscale", str(runs["x2"]),
                                 "--n", "2", "--out-dir", str(tmp_path / "each"),
                                 "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "each" / "000001.png") as picture:
        assert picture.size == (64, 64)


def test_latent_commands_on_a_restore_run_point_at_restore_and_upscale(runs, tmp_path):
    with pytest.raises(ConfigError, match="ganvas restore"):
        ganvas.load(runs["x2"])
    result = runner.invoke(app, ["sample", str(runs["x2"]), "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 2 and "ganvas upscale" in result.output
    assert not (tmp_path / "s.png").exists()
