import errno
import json
import pickle

import pytest
import torch

from ganvas import checkpoint as ckpt
from ganvas.generate import load
from ganvas.training.trainer import Trainer, train
from tests.conftest import tiny_config


def test_a_crash_mid_write_keeps_the_previous_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset.path), run, progress=False)
    before = load(run).sample(4, seed=0)

    real_save = ckpt.save_file
    calls = {"n": 0}

    def disk_fills_up(tensors, filename, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # second weight file: half a checkpoint is on disk
            with open(filename, "wb") as f:
                f.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(ckpt, "save_file", disk_fills_up)
    trainer = Trainer(tiny_config(tiny_dataset.path, **{"train.steps": 30}), run, progress=False)
    with pytest.raises(
        ckpt.CheckpointError,
        match="disk full while writing checkpoint 30.*No space left.*newest complete checkpoint is 20",
    ):
        trainer.fit()

    folder = run / "checkpoints"
    assert (folder / "latest").read_text().strip() == "00000020"
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]
    assert torch.equal(load(run).sample(4, seed=0), before)


def test_leftovers_of_a_killed_writer_are_ignored_and_cleaned(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset.path), run, progress=False)
    folder = run / "checkpoints"
    # A process killed between writing files and renaming leaves a temp dir; one killed
    # before state.json leaves an incomplete step dir; `latest` may name a vanished folder.
    (folder / ".tmp-00000030-abc").mkdir()
    (folder / ".tmp-00000030-abc" / "G.safetensors").write_bytes(b"partial")
    (folder / "00000040").mkdir()
    (folder / "00000040" / "G.safetensors").write_bytes(b"partial")
    (folder / "latest").write_text("00000050\n")

    assert ckpt.find_latest_checkpoint(run).name == "00000020"
    result = train(tiny_config(tiny_dataset.path, **{"train.steps": 30}), run, progress=False)
    assert result.step == 30
    assert not (folder / ".tmp-00000030-abc").exists()


def test_loading_never_unpickles_code(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset.path), run, progress=False)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    state_file = ckpt.find_latest_checkpoint(run) / "training_state.pt"
    with open(state_file, "wb") as f:
        pickle.dump({"optim_G": Exploit()}, f, protocol=2)
    # Whoever plants it can fix the checksum too: weights_only is what refuses it.
    state = json.loads((state_file.parent / "state.json").read_text())
    state["sha256"]["training_state.pt"] = ckpt.file_sha256(state_file)
    (state_file.parent / "state.json").write_text(json.dumps(state))
    with pytest.raises(pickle.UnpicklingError):
        ckpt.load_checkpoint(state_file.parent)
    assert not marker.exists()


def test_keeps_only_the_newest_checkpoints(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(tiny_dataset.path, **{"train.steps": 50, "train.keep_checkpoints": 2})
    train(cfg, run, progress=False)
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["00000040", "00000050"]


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint yet"):
        ckpt.resolve_checkpoint(tmp_path / "empty")
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        load(tmp_path / "nothing")
