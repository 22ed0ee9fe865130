import numpy as np
import pytest
import torch
from PIL import Image

from ganvas.checkpoint import CheckpointError
from ganvas.config import load_config
from ganvas.generate import load
from ganvas.metrics.ranking import load_discriminator, rank_samples, save_ranking_grid
from ganvas.training.trainer import Trainer
from tests.conftest import TINY_MODELS, make_blobs, make_two_class_blobs, tiny_config, write_dataset


def _train(tmp_path_factory, name, images, labels=None, classes=(), stop=None, **overrides):
    root = tmp_path_factory.mktemp(name)
    data = write_dataset(root / "data", images, labels, classes)
    if overrides.get("model.family") == "progan":  # tiny_config's widths are DCGAN's
        config = load_config(overrides={"data.path": str(data.path), "train.device": "cpu",
                                        "train.tensorboard": False, **overrides})  # fmt: skip
    else:
        config = tiny_config(data.path, **{"train.steps": 5, **overrides})
    trainer = Trainer(config, root / "run", progress=False)
    trainer.fit(should_stop=stop)
    return root / "run", trainer


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
    return _train(tmp_path_factory, "dcgan", make_blobs(32))


@pytest.fixture(scope="module")
def acgan_run(tmp_path_factory):
    images, labels = make_two_class_blobs(32)
    return _train(tmp_path_factory, "acgan", images, labels, ("red", "blue"), **{
        "model.family": "acgan", **TINY_MODELS["acgan"], "train.steps": 2})  # fmt: skip


def test_load_discriminator_equals_the_trainers_D(dcgan_run):
    run, trainer = dcgan_run
    D = load_discriminator(run, device="cpu")
    assert not D.training and not any(p.requires_grad for p in D.parameters())
    x = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    with torch.no_grad():
        assert torch.equal(D(x), trainer.D.eval()(x))


def test_rank_samples_returns_the_k_highest_and_lowest_scores_in_order(dcgan_run):
    run, _ = dcgan_run
    g, D = load(run, device="cpu"), load_discriminator(run, device="cpu")
    ranked = rank_samples(g, D, n=20, k=5, seed=3)
    with torch.no_grad():
        expected = D(g.generate(g.latents(20, 3))).double().numpy()
    np.testing.assert_allclose(ranked["scores"], expected, rtol=1e-6)
    np.testing.assert_allclose(ranked["top"]["scores"], np.sort(expected)[::-1][:5], rtol=1e-6)
    np.testing.assert_allclose(ranked["bottom"]["scores"], np.sort(expected)[:5], rtol=1e-6)
    np.testing.assert_allclose(ranked["probabilities"], 1 / (1 + np.exp(-expected)), rtol=1e-6)
    samples = g.sample(20, seed=3)
    for end in ("top", "bottom"):
        assert torch.equal(ranked[end]["images"], samples[torch.from_numpy(ranked[end]["indices"])])
    assert ranked["labels"] is None and "per_class" not in ranked


def test_ranking_grid_has_one_captioned_cell_per_image(dcgan_run, tmp_path):
    run, _ = dcgan_run
    ranked = rank_samples(load(run), load_discriminator(run), n=8, k=5)
    path = save_ranking_grid(ranked["top"]["images"], ranked["top"]["probabilities"],
                             tmp_path / "top.png")  # fmt: skip
    # 16 px images are enlarged ×4 so "0.123" fits; 5 cells → 3 per row, 2 rows
    cell_w, cell_h = 16 * 4, 16 * 4 + 14
    with Image.open(path) as grid:
        assert grid.size == (2 + 3 * (cell_w + 2), 2 + 2 * (cell_h + 2))
        top_left = np.asarray(grid.convert("RGB"))[2 : 2 + 64 : 4, 2 : 2 + 64 : 4]
    assert np.array_equal(top_left, ranked["top"]["images"][0].permute(1, 2, 0).numpy())


def test_conditional_runs_rank_each_class_with_the_real_fake_logit(acgan_run):
    run, _ = acgan_run
    g, D = load(run), load_discriminator(run)
    ranked = rank_samples(g, D, n=12, k=3, seed=1)  # ACGAN's D returns (logits, class logits)
    assert set(ranked["per_class"]) == {"red", "blue"}
    for c, name in enumerate(("red", "blue")):
        for end, sign in (("top", -1), ("bottom", 1)):
            entry = ranked["per_class"][name][end]
            assert len(entry["indices"]) == 3 and (ranked["labels"][entry["indices"]] == c).all()
            assert np.all(np.diff(entry["scores"]) * sign >= 0)
            own = ranked["scores"][ranked["labels"] == c]
            assert entry["scores"][0] == (own.max() if end == "top" else own.min())


def test_load_discriminator_sets_a_growing_D_to_the_saved_stage(tmp_path_factory):
    overrides = {"model.family": "progan", **TINY_MODELS["progan"], "model.resolution": 16,
                 "loss.name": "wasserstein", "loss.gp_weight": 10.0, "train.n_samples": 4,
                 "progressive.batch_sizes": [8, 8, 8], "progressive.stage_kimg": 0.048,
                 "progressive.fade_fraction": 0.5}  # fmt: skip
    run, trainer = _train(tmp_path_factory, "progan", make_blobs(32), stop=lambda s: s == 8,
                          **overrides)  # fmt: skip
    D = load_discriminator(run, device="cpu")
    # stopped while 8 px fades in: not the final 16 px stage, not fully faded in
    assert (D.resolution, D.alpha) == (trainer.D.resolution, trainer.D.alpha)
    assert D.resolution == 8 and 0 < D.alpha < 1
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(D(x), trainer.D.eval()(x))


def test_load_discriminator_reports_missing_runs(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_discriminator(tmp_path / "nowhere")
