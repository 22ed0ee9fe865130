"""`ganvas export` and `ganvas sample --backend onnx`: real onnxruntime and TorchScript runs of
trained tiny generators, matched against the PyTorch path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ganvas.cli import app
from ganvas.config import load_config
from ganvas.export import ExportError, OnnxGenerator, export_generator
from ganvas.generate import load
from ganvas.training.trainer import train
from tests.conftest import TINY_MODELS, make_blobs, make_two_class_blobs, write_dataset

FAMILIES = ("dcgan", "cdcgan", "stylegan2", "fastgan")  # plain, conditional, truncation, SN+SLE
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A 2-step run of each family (dcgan and stylegan2 keep G_ema)."""
    root = tmp_path_factory.mktemp("export")
    plain = write_dataset(root / "plain", make_blobs(16)).path
    images, labels = make_two_class_blobs(16)
    labelled = write_dataset(root / "labelled", images, labels, ("red", "blue")).path
    made = {}
    for family in FAMILIES:
        conditional = family == "cdcgan"
        settings = {"data.path": str(labelled if conditional else plain), "model.family": family,
                    "model.resolution": 16, "train.batch_size": 8, "train.steps": 2,
                    "train.device": "cpu", "train.n_samples": 8, "train.tensorboard": False,
                    "train.energy": False, "train.collapse_check": "off",
                    "train.ema": family in ("dcgan", "stylegan2"), **TINY_MODELS[family]}  # fmt: skip
        train(load_config(overrides=settings), root / family, progress=False)
        made[family] = root / family
    return made


def inputs_for(pipeline, n: int, seed: int = 3):
    z = pipeline.latents(n, seed)
    labels = torch.arange(n) % pipeline.num_classes if pipeline.conditional else None
    return z, labels


@pytest.mark.parametrize("family", FAMILIES)
def test_onnxruntime_matches_pytorch_at_batch_1_and_5(runs, tmp_path, family):
    result = export_generator(runs[family], tmp_path / "g.onnx")
    pipeline = load(runs[family], device="cpu")
    assert result.weights == pipeline.weights == ("G_ema" if family in ("dcgan", "stylegan2")
                                                 else "G")  # fmt: skip
    onnx = OnnxGenerator(result.path)
    expected_inputs = {"dcgan": ["z"], "cdcgan": ["z", "c"], "stylegan2": ["z", "truncation"],
                       "fastgan": ["z"]}[family]  # fmt: skip
    assert onnx.inputs == result.inputs == expected_inputs
    psis = (None, 0.7, 0.0) if pipeline.supports_truncation else (None,)
    for n in (1, 5):  # one graph, any batch
        z, labels = inputs_for(pipeline, n)
        for psi in psis:
            reference = pipeline.generate(z, labels, truncation=psi)
            exported = onnx.generate(z, labels, truncation=psi)
            assert exported.shape == reference.shape == (n, 3, 16, 16)
            assert (exported - reference).abs().max() <= TOLERANCE, (n, psi)
            assert exported.min() >= -1 and exported.max() <= 1  # clamped like run_generator
    if pipeline.supports_truncation:  # ψ is an input: 0 gives one image for every z
        z, _ = inputs_for(pipeline, 3)
        mean_images = onnx.generate(z, truncation=0.0)
        assert torch.allclose(mean_images[0], mean_images[2], atol=TOLERANCE)
        assert not torch.allclose(onnx.generate(z)[0], onnx.generate(z)[2], atol=TOLERANCE)


@pytest.mark.parametrize("family", ["dcgan", "cdcgan", "stylegan2"])
def test_torchscript_round_trip_matches(runs, tmp_path, family):
    result = export_generator(runs[family], tmp_path / "g.pt", format="torchscript")
    module = torch.jit.load(str(result.path))
    pipeline = load(runs[family], device="cpu")
    for n in (1, 5):
        z, labels = inputs_for(pipeline, n)
        args = [z, *([labels] if labels is not None else [])]
        if pipeline.supports_truncation:
            args.append(torch.tensor(0.7))
        with torch.no_grad():
            exported = module(*args)
        psi = 0.7 if pipeline.supports_truncation else None
        reference = pipeline.generate(z, labels, truncation=psi)
        assert (exported - reference).abs().max() <= TOLERANCE


def test_export_of_g_when_asked_and_metadata(runs, tmp_path):
    result = export_generator(runs["dcgan"], tmp_path / "g.onnx", ema=False)
    assert result.weights == "G"
    metadata = OnnxGenerator(result.path).metadata
    assert metadata["family"] == "dcgan" and metadata["weights"] == "G"
    assert metadata["step"] == "2" and metadata["z_dim"] == "16"
    assert [p.name for p in tmp_path.iterdir()] == ["g.onnx"]  # no temporary left behind


@pytest.mark.parametrize("family", ["dcgan", "cdcgan"])
def test_sample_with_the_onnx_backend_writes_the_same_grid(runs, tmp_path, family):
    runner = CliRunner()
    grids = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.png"
        result = runner.invoke(app, ["sample", str(runs[family]), "--n", "6", "--seed", "4",
                                     "--out", str(out), "--backend", backend,
                                     "--device", "cpu"])  # fmt: skip
        assert result.exit_code == 0, result.output
        grids[backend] = np.asarray(Image.open(out), dtype=np.int16)
    assert "onnx" in result.output
    assert grids["torch"].shape == grids["onnx"].shape
    assert np.abs(grids["torch"] - grids["onnx"]).max() <= 1  # uint8 rounding at most
    # A file written by `ganvas export` serves as well, and gives the same grid.
    model = tmp_path / "g.onnx"
    assert runner.invoke(app, ["export", str(runs[family]), "--out", str(model)]).exit_code == 0
    again = tmp_path / "again.png"
    result = runner.invoke(app, ["sample", str(runs[family]), "--n", "6", "--seed", "4", "--out",
                                 str(again), "--backend", "onnx", "--onnx-model", str(model)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(again), dtype=np.int16), grids["onnx"])


def test_bad_exports_are_clear_errors_and_write_nothing(runs, tmp_path):
    with pytest.raises(ExportError, match="tflite.*onnx, torchscript"):
        export_generator(runs["dcgan"], tmp_path / "g.onnx", format="tflite")
    with pytest.raises(ExportError, match="is a directory"):
        export_generator(runs["dcgan"], tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ExportError, match="not a writable directory"):
        export_generator(runs["dcgan"], blocker / "g.onnx")
    (tmp_path / "untrained").mkdir()
    with pytest.raises(Exception, match="checkpoint"):
        export_generator(tmp_path / "untrained", tmp_path / "g.onnx")
    other = tmp_path / "other.onnx"
    export_generator(runs["stylegan2"], other)
    with pytest.raises(ExportError, match="do not fit|z of size"):
        load(runs["cdcgan"], device="cpu", backend="onnx", onnx_model=other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "other.onnx", "untrained"]
