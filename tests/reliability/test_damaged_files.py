"""Damaged files: a truncated or bit-flipped checkpoint is detected by its checksum, skipped
with a warning and the previous one used; a changed dataset is refused; and a pickle planted
in any file ganvas reads is never executed."""

import json
import pickle

import numpy as np
import pytest
import torch

from ganvas import checkpoint as ckpt
from ganvas.data.store import DatasetError, load_dataset
from ganvas.generate import load
from ganvas.training.trainer import train
from tests.conftest import assert_same, make_blobs, tiny_config, write_dataset

SETTINGS = {"train.steps": 30, "train.checkpoint_interval": 10}


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def flip_a_bit(path, at=-5):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


class Exploit:
    """Unpickling it would create `marker`: the proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path, marker):
    with open(path, "wb") as f:
        pickle.dump({"x": Exploit(marker)}, f, protocol=2)


@pytest.fixture
def run(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset.path, **SETTINGS), run, progress=False)
    return run


@pytest.mark.parametrize("damage", ["truncated G", "bit-flipped G", "truncated state",
                                    "bit-flipped state.json"])  # fmt: skip
def test_a_damaged_latest_checkpoint_is_skipped_for_the_one_before(run, damage):
    folder = ckpt.find_latest_checkpoint(run)
    assert folder.name == "00000030"
    kind, name = damage.split(" ", 1)
    file = folder / {"G": "G.safetensors", "state": "training_state.pt",
                     "state.json": "state.json"}[name]  # fmt: skip
    if kind == "truncated":
        truncate(file)
    else:
        flip_a_bit(file, -3 if name == "state.json" else -5)  # state.json: its closing brace
    with pytest.raises(
        ckpt.DamagedCheckpointError, match="damaged" if name == "state.json" else "checksum"
    ):
        ckpt.load_checkpoint(folder)
    with pytest.warns(ckpt.DamagedCheckpointWarning, match="skipping damaged checkpoint 00000030"):
        pipeline = load(run, device="cpu")
    assert pipeline.step == 20


def test_training_resumes_from_the_checkpoint_before_a_damaged_one_bit_for_bit(
    tiny_dataset, run, tmp_path
):
    flip_a_bit(run / "checkpoints" / "00000030" / "D.safetensors")
    more = dict(SETTINGS, **{"train.steps": 40})
    result = train(tiny_config(tiny_dataset.path, **more), run, progress=False)
    assert result.step == 40
    log = (run / "log.txt").read_text()
    assert "skipping damaged checkpoint 00000030" in log and "resuming at step 20" in log
    assert (run / "checkpoints" / "00000030.damaged").is_dir()  # kept for a look, not used

    straight = tmp_path / "straight"
    train(tiny_config(tiny_dataset.path, **more), straight, progress=False)
    a, b = (ckpt.load_checkpoint(ckpt.find_latest_checkpoint(r)) for r in (straight, run))
    assert_same(a.weights, b.weights, "weights")
    assert_same(a.training_state, b.training_state, "training_state")


def test_every_checkpoint_damaged_is_a_clear_error(run):
    for folder in ckpt.list_checkpoints(run):
        truncate(folder / "G.safetensors")
    damaged = pytest.raises(ckpt.CheckpointError, match="every checkpoint .* is damaged")
    with pytest.warns(ckpt.DamagedCheckpointWarning), damaged:
        load(run, device="cpu")


def test_checkpoints_carry_the_sha256_of_every_file(run):
    folder = ckpt.find_latest_checkpoint(run)
    sums = json.loads((folder / "state.json").read_text())["sha256"]
    assert set(sums) == {"G.safetensors", "D.safetensors", "training_state.pt"}
    assert all(sums[name] == ckpt.file_sha256(folder / name) for name in sums)


def test_a_dataset_changed_after_prepare_is_refused(tiny_dataset, tmp_path):
    flip_a_bit(tiny_dataset.path / "images.npy")
    load_dataset(tiny_dataset.path)  # opening it (sample, info) does not read every byte
    with pytest.raises(DatasetError, match="no longer matches.*re-run `ganvas prepare`"):
        load_dataset(tiny_dataset.path, verify=True)
    with pytest.raises(DatasetError, match="no longer matches"):
        train(tiny_config(tiny_dataset.path), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_dataset_without_a_hash_from_an_older_prepare_still_trains(tmp_path):
    data = write_dataset(tmp_path / "old", make_blobs(16)).path
    manifest = json.loads((data / "manifest.json").read_text())
    del manifest["content_hash"], manifest["count"]
    (data / "manifest.json").write_text(json.dumps(manifest))
    result = train(tiny_config(data, **{"train.steps": 2}), tmp_path / "run", progress=False)
    assert result.step == 2


# --- A pickle planted anywhere ganvas reads is never executed ---------------------------------


def test_planted_training_state_is_refused_even_with_a_matching_checksum(tiny_dataset, run):
    marker = run.parent / "pwned"
    folder = ckpt.find_latest_checkpoint(run)
    plant(folder / "training_state.pt", marker)
    state = json.loads((folder / "state.json").read_text())
    state["sha256"]["training_state.pt"] = ckpt.file_sha256(folder / "training_state.pt")
    (folder / "state.json").write_text(json.dumps(state))
    with pytest.raises(ckpt.UnsafeCheckpointError, match="pickled objects"):
        train(tiny_config(tiny_dataset.path, **dict(SETTINGS, **{"train.steps": 40})), run,
              progress=False)  # fmt: skip
    assert not marker.exists()


def test_planted_weights_are_not_executed(run):
    marker = run.parent / "pwned"
    folder = ckpt.find_latest_checkpoint(run)
    plant(folder / "G.safetensors", marker)  # safetensors holds no code: a parse error
    with pytest.warns(ckpt.DamagedCheckpointWarning):
        load(run, device="cpu")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["images.npy", "labels.npy"])
def test_planted_dataset_arrays_are_refused(tiny_dataset, tmp_path, name):
    marker = tmp_path / "pwned"
    np.save(tiny_dataset.path / name, np.array([Exploit(marker)], dtype=object))
    with pytest.raises(DatasetError, match="cannot be read"):
        load_dataset(tiny_dataset.path)
    assert not marker.exists()


def test_a_planted_reference_statistics_cache_is_ignored(tiny_dataset, tmp_path, capsys):
    from ganvas.metrics import FeatureExtractor, evaluate
    from tests.metrics.test_fidelity import ColourStats

    fe = FeatureExtractor(ColourStats(), "colour-stats")
    cache = tmp_path / "stats"
    fakes = make_blobs(40, seed=1)
    first = evaluate(fakes, tiny_dataset, n=1000, cache_dir=cache, extractor=fe, metrics=["fid"])
    (cache_file,) = cache.iterdir()
    marker = tmp_path / "pwned"
    np.savez(cache_file, key=np.array([Exploit(marker)], dtype=object))
    again = evaluate(fakes, tiny_dataset, n=1000, cache_dir=cache, extractor=fe, metrics=["fid"])
    assert "ignoring unreadable cache file" in capsys.readouterr().err
    assert again == first and not marker.exists()


def test_planted_inception_weights_are_refused(tmp_path):
    from ganvas.metrics import MetricsError
    from ganvas.metrics.inception import load_inception_state_dict

    marker = tmp_path / "pwned"
    plant(tmp_path / "inception.pt", marker)
    with pytest.raises(MetricsError, match="not a readable weights file"):
        load_inception_state_dict(tmp_path / "inception.pt")
    assert not marker.exists()


def test_planted_ratings_and_answers_are_not_executed(run):
    from ganvas.rate import record_answers, save_rating

    marker = run.parent / "pwned"
    plant(run.parent / "answers.json", marker)
    with pytest.raises(ValueError):
        record_answers(run.parent / "answers.json")
    plant(run / "ratings.jsonl", marker)
    with pytest.raises(ValueError):  # JSON lines are text; a pickle is not even that
        save_rating(run, {"accuracy": 1.0})
    assert not marker.exists()


def test_planted_yaml_in_config_is_not_executed(tiny_dataset, run):
    from ganvas.config import ConfigError
    from ganvas.rundir import RunDir

    marker = run.parent / "pwned"
    text = (run / "config.yaml").read_text()
    evil = f"!!python/object/apply:os.system ['touch {marker}']"
    (run / "config.yaml").write_text(text.replace("description: ''", f"description: {evil}"))
    with pytest.raises(ConfigError):
        RunDir(run).read_config()
    assert not marker.exists()


def test_the_json_files_of_a_run_hold_no_objects(run):
    # state.json, classes.json, metrics.jsonl, latest: plain JSON / text only.
    folder = ckpt.find_latest_checkpoint(run)
    json.loads((folder / "state.json").read_text())
    json.loads((run / "classes.json").read_text())
    assert torch.load(folder / "training_state.pt", weights_only=True)


def test_temporaries_of_a_killed_writer_are_removed_on_the_next_start(tiny_dataset, run):
    stale = [run / ".config.yaml.ab12cd.tmp", run / "samples" / ".fakes_00000040.png.x1.png",
             run / "checkpoints" / ".latest.zz9.tmp"]  # fmt: skip
    keep = run / ".my-notes.txt"  # a user's own hidden file is not ganvas' to delete
    for path in [*stale, keep]:
        path.write_bytes(b"half")
    train(tiny_config(tiny_dataset.path, **dict(SETTINGS, **{"train.steps": 40})), run,
          progress=False)  # fmt: skip
    assert not any(p.exists() for p in stale) and keep.exists()
