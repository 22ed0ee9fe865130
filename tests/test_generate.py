import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ganvas.checkpoint import CheckpointError
from ganvas.generate import load
from ganvas.inference import resolve_device
from ganvas.training.trainer import train
from tests.conftest import tiny_config


@pytest.fixture
def run_dir(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset.path, **{"train.ema": True}), run, progress=False)
    return run


def test_sample_shapes_types_and_ranges(run_dir):
    g = load(run_dir)
    assert g.weights == "G_ema" and g.step == 20
    imgs = g.sample(5, seed=0)
    assert imgs.shape == (5, 3, 16, 16) and imgs.dtype == torch.uint8
    floats = g.sample(5, seed=0, dtype=torch.float32)
    assert floats.dtype == torch.float32 and floats.min() >= 0 and floats.max() <= 1
    assert torch.allclose(floats * 255, imgs.float(), atol=0.51)


def test_same_seed_same_images_and_batching_does_not_matter(run_dir):
    g = load(run_dir, device="cpu")  # bit-exact across batch sizes on the CPU
    a = g.sample(12, seed=7)
    assert torch.equal(a, load(run_dir, device="cpu").sample(12, seed=7))
    assert torch.equal(a, g.sample(12, seed=7, batch_size=5))
    assert not torch.equal(a, g.sample(12, seed=8))
    assert torch.equal(g.sample(4, seed=7), a[:4])  # the first images do not depend on n


def test_the_default_device_is_auto_as_in_training(run_dir):
    assert load(run_dir).device == resolve_device("auto")
    assert load(run_dir, device="auto").device == resolve_device("auto")
    assert load(run_dir, device="cpu").device == torch.device("cpu")


def test_sampling_modules_do_not_import_the_training_package():
    modules = ["ganvas.generate", "ganvas.interpolate", "ganvas.rate", "ganvas.metrics.ranking",
               "ganvas.evaluation", "ganvas.checkpoint", "ganvas.rundir", "ganvas.inference"]  # fmt: skip
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m.startswith('ganvas.training')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_raw_generator_and_older_checkpoints_are_selectable(run_dir):
    assert load(run_dir, ema=False).weights == "G"
    assert load(run_dir, checkpoint=10).step == 10
    with pytest.raises(CheckpointError, match="have: 10, 20"):
        load(run_dir, checkpoint=15)


def test_grid_and_per_image_files(run_dir, tmp_path):
    g = load(run_dir)
    path = g.save_grid(tmp_path / "grid.png", n=8, seed=1, nrow=4, padding=2)
    with Image.open(path) as grid:
        assert grid.size == (2 + 4 * 18, 2 + 2 * 18)
    files = g.save_images(tmp_path / "each", n=3, seed=1)
    assert [p.name for p in files] == ["000000.png", "000001.png", "000002.png"]
    first = np.asarray(Image.open(files[0]))
    assert np.array_equal(first, g.sample_numpy(3, seed=1)[0])


def test_top_level_api_trains_and_loads(tiny_dataset, tmp_path):
    import ganvas

    # ganvas.train is the function (the training code lives in ganvas.training).
    result = ganvas.train(tiny_config(tiny_dataset.path, **{"train.steps": 5}), tmp_path / "run",
                          progress=False)  # fmt: skip
    assert result.step == 5
    assert ganvas.load(tmp_path / "run").sample(2, seed=0).shape == (2, 3, 16, 16)
    assert callable(ganvas.prepare_dataset) and callable(ganvas.load_dataset)


def test_conditional_runs_sample_by_class(labelled_dataset, tmp_path):
    from tests.conftest import TINY_MODELS

    cfg = tiny_config(labelled_dataset.path, **{"model.family": "biggan", **TINY_MODELS["biggan"],
                                                 "loss.name": "hinge", "train.steps": 4})  # fmt: skip
    train(cfg, tmp_path / "run", progress=False)
    g = load(tmp_path / "run")
    assert g.conditional and g.num_classes == 2
    default = g.sample(4, seed=3)  # classes 0, 1, 0, 1
    assert torch.equal(default, g.sample(4, seed=3, labels=torch.tensor([0, 1, 0, 1])))
    all_red = g.sample(4, seed=3, labels=torch.zeros(4, dtype=torch.long))
    assert torch.equal(all_red[0], default[0]) and not torch.equal(all_red[1], default[1])


@pytest.fixture
def conditional_run(labelled_dataset, tmp_path):
    from tests.conftest import TINY_MODELS

    cfg = tiny_config(labelled_dataset.path, **{"model.family": "biggan", **TINY_MODELS["biggan"],
                                                 "loss.name": "hinge", "train.steps": 2})  # fmt: skip
    train(cfg, tmp_path / "crun", progress=False)
    return tmp_path / "crun"


def test_class_tools_per_class_folders_swap_grid_and_names(conditional_run, tmp_path):
    g = load(conditional_run)
    assert g.class_names == ["red", "blue"]
    assert g.class_index("blue") == 1 and g.class_index(0) == 0
    with pytest.raises(ValueError, match="classes: red, blue"):
        g.class_index("green")
    written = g.save_per_class(tmp_path / "out", n_per_class=3, seed=1)
    assert sorted(written) == ["blue", "red"]
    assert sorted(p.name for p in (tmp_path / "out" / "blue").iterdir()) == [
        "000000.png", "000001.png", "000002.png"]  # fmt: skip
    swap = g.class_swap(n=4, seed=2)  # rows: classes, columns: the same 4 latents
    assert swap.shape == (8, 16, 16, 3)
    blue = g.sample(4, seed=2, labels=torch.ones(4, dtype=torch.long)).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(swap[4:], blue)
    with Image.open(g.save_class_swap(tmp_path / "swap.png", n=4, seed=2)) as picture:
        # a label margin on the left, then 4 tiles of 16 px with 2 px padding
        assert picture.size[1] == 2 + 2 * 18 and picture.size[0] > 2 + 4 * 18


def test_training_on_a_subset_of_classes(labelled_dataset, tmp_path):
    import json

    from ganvas.config import ConfigError
    from ganvas.training.trainer import Trainer

    trainer = Trainer(tiny_config(labelled_dataset.path, **{"data.classes": ["blue"]}),
                      tmp_path / "run", progress=False)  # fmt: skip
    assert trainer.images_per_epoch == 32 and trainer.class_names == ["blue"]
    assert json.loads((tmp_path / "run" / "classes.json").read_text()) == ["blue"]
    real, labels = trainer.sampler.next()
    assert (labels == 0).all()
    assert (real[:, 2].mean() > real[:, 0].mean()).item()  # bluish images only
    with pytest.raises(ConfigError, match="green not in the dataset; its classes: red, blue"):
        Trainer(tiny_config(labelled_dataset.path, **{"data.classes": ["green"]}),
                tmp_path / "run2", progress=False)  # fmt: skip


# --- Truncation (style-based generators) ---------------------------------------------------


@pytest.fixture
def stylegan2_run(tiny_dataset, tmp_path):
    from ganvas.config import load_config
    from tests.conftest import TINY_MODELS

    run = tmp_path / "sg2"
    cfg = load_config(overrides={
        "data.path": str(tiny_dataset.path), "model.family": "stylegan2",
        **TINY_MODELS["stylegan2"], "train.batch_size": 8, "train.steps": 4, "train.ema": True,
        "train.device": "cpu", "train.n_samples": 4, "train.tensorboard": False,
    })  # fmt: skip
    train(cfg, run, progress=False)
    return run


def test_truncation_pulls_samples_toward_the_average_image(stylegan2_run):
    g = load(stylegan2_run, device="cpu")
    assert g.supports_truncation
    mean = g.sample(4, seed=0, truncation=0.0)
    assert all(torch.equal(img, mean[0]) for img in mean)  # every seed: the same image
    assert torch.equal(mean, g.sample(4, seed=9, truncation=0.0))
    plain = g.sample(4, seed=0)
    assert torch.equal(plain, g.sample(4, seed=0, truncation=1.0))  # ψ = 1 is off
    half = g.sample(4, seed=0, truncation=0.5, dtype=torch.float32)
    spread = g.sample(4, seed=0, dtype=torch.float32)
    assert 0 < half.std(dim=0).mean() < spread.std(dim=0).mean()  # less varied, not collapsed
    assert torch.equal(g.sample(6, seed=3, truncation=0.7, batch_size=4)[:4],
                       g.sample(4, seed=3, truncation=0.7))  # fmt: skip


def test_truncation_for_a_generator_without_it_is_a_clear_error(run_dir, tmp_path):
    from ganvas.inference import run_generator

    g = load(run_dir, device="cpu")
    assert not g.supports_truncation
    with pytest.raises(ValueError, match="dcgan family does not support truncation"):
        g.sample(4, seed=0, truncation=0.7)
    with pytest.raises(ValueError, match="does not support truncation"):
        g.save_grid(tmp_path / "grid.png", n=4, truncation=0.7)
    with pytest.raises(ValueError, match="does not support truncation"):
        run_generator(g.G, g.latents(2), truncation=0.7)
    assert not (tmp_path / "grid.png").exists()


def test_sample_command_takes_truncation(stylegan2_run, run_dir, tmp_path):
    from typer.testing import CliRunner

    from ganvas.cli import app

    runner = CliRunner()
    out = tmp_path / "t.png"
    done = runner.invoke(app, ["sample", str(stylegan2_run), "--n", "4", "--truncation", "0.5",
                               "--device", "cpu", "--out", str(out)])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "truncation 0.5" in done.output
    expected = load(stylegan2_run, device="cpu").sample_numpy(4, seed=0, truncation=0.5)
    with Image.open(out) as grid:
        assert np.array_equal(np.asarray(grid)[2:18, 2:18], expected[0])
    each = tmp_path / "each"
    done = runner.invoke(app, ["sample", str(stylegan2_run), "--n", "2", "--truncation", "0",
                               "--device", "cpu", "--out-dir", str(each)])  # fmt: skip
    assert done.exit_code == 0, done.output
    first, second = (np.asarray(Image.open(each / f"00000{i}.png")) for i in range(2))
    assert np.array_equal(first, second)
    refused = runner.invoke(app, ["sample", str(run_dir), "--truncation", "0.7",
                                  "--out", str(tmp_path / "no.png")])  # fmt: skip
    assert refused.exit_code == 2
    assert "does not support truncation" in refused.output
    assert not (tmp_path / "no.png").exists()
