"""Run directories written by ganvas 0.1.0 (tests/fixtures/runs_v0) still load and sample
exactly as they did then."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ganvas.config import CONFIG_VERSION
from ganvas.generate import load
from ganvas.metrics.ranking import load_discriminator
from ganvas.rundir import RunDir

OLD_RUNS = Path(__file__).parent / "fixtures" / "runs_v0"


@pytest.mark.parametrize("run", ["dcgan", "acgan", "progan"])
def test_old_runs_load_and_sample_the_same_images(run):
    # On the CPU, where the expected images were made: a GPU may differ in the last bit.
    g = load(OLD_RUNS / run, device="cpu")
    expected = np.load(OLD_RUNS / run / "expected_sample_seed0.npy")
    got = g.sample(4, seed=0).numpy()
    assert got.dtype == expected.dtype == np.uint8
    assert np.array_equal(got, expected)


def test_what_each_old_run_kept_is_found():
    dcgan, acgan, progan = (load(OLD_RUNS / r, device="cpu") for r in ("dcgan", "acgan", "progan"))
    assert (dcgan.weights, dcgan.step) == ("G_ema", 4)
    assert (acgan.weights, acgan.class_names, acgan.num_classes) == ("G", ["red", "blue"], 2)
    assert (progan.weights, progan.step) == ("G_ema", 6)
    assert progan.sample(1).shape == (1, 3, 16, 16)
    for run in ("dcgan", "acgan", "progan"):
        assert RunDir(OLD_RUNS / run).read_config().to_dict()["version"] == CONFIG_VERSION
        D = load_discriminator(OLD_RUNS / run, device="cpu")
        assert not D.training and not any(p.requires_grad for p in D.parameters())
        out = D(torch.zeros(2, 3, 16, 16), torch.zeros(2, dtype=torch.long))
        assert torch.isfinite(out[0] if isinstance(out, tuple) else out).all()
