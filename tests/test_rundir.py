import json

import pytest

from ganvas.config import load_config
from ganvas.errors import CheckpointError, ConfigError
from ganvas.rundir import RunDir


def test_the_layout_of_a_run_directory(tmp_path):
    run = RunDir(tmp_path / "a")
    assert run.path == tmp_path / "a"
    relative = {
        name: getattr(run, name).relative_to(run.path).as_posix()
        for name in ("config_file", "classes_file", "metrics_file", "log_file", "samples_dir",
                     "reals_grid", "progress_gif", "tensorboard_dir", "checkpoints_dir",
                     "eval_dir", "ratings_file")
    }  # fmt: skip
    assert relative == {
        "config_file": "config.yaml", "classes_file": "classes.json",
        "metrics_file": "metrics.jsonl", "log_file": "log.txt", "samples_dir": "samples",
        "reals_grid": "samples/reals.png", "progress_gif": "progress.gif",
        "tensorboard_dir": "tb", "checkpoints_dir": "checkpoints", "eval_dir": "eval",
        "ratings_file": "ratings.jsonl",
    }  # fmt: skip
    assert run.fakes_grid(1200) == run.path / "samples" / "fakes_00001200.png"
    assert run.eval_file(7) == run.path / "eval" / "eval_00000007.json"


def test_config_and_class_names_round_trip(tmp_path):
    run = RunDir(tmp_path / "a")
    run.path.mkdir()
    assert run.class_names() == []
    cfg = load_config(preset="dcgan-32", overrides=["train.steps=3"])
    assert run.write_config(cfg) == run.config_file
    assert run.read_config() == cfg
    assert "version: 1" in run.config_file.read_text()
    run.write_class_names(["red", "blue"])
    assert run.class_names() == ["red", "blue"]


def test_reading_the_config_of_a_missing_or_broken_run_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="run directory .* does not exist"):
        RunDir(tmp_path / "nothing").read_config()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"config.yaml is missing"):
        RunDir(tmp_path / "empty").read_config()
    (tmp_path / "empty" / "config.yaml").write_text("version: 99\n")
    with pytest.raises(ConfigError, match="upgrade ganvas"):
        RunDir(tmp_path / "empty").read_config()


def test_metrics_are_appended_one_record_per_line(tmp_path):
    run = RunDir(tmp_path / "new")
    run.append_metrics({"step": 1, "loss_d": 0.5})
    run.append_metrics({"step": 2, "event": "eval"})
    lines = run.metrics_file.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


def test_clear_deletes_the_training_outputs_and_keeps_evaluations_and_ratings(tmp_path):
    run = RunDir(tmp_path / "a")
    assert {p.relative_to(run.path).as_posix() for p in run.outputs()} == {
        "checkpoints", "samples", "tb", "metrics.jsonl", "config.yaml", "classes.json",
        "log.txt", "progress.gif"}  # fmt: skip
    for path in run.outputs():
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
        else:
            (path / "inner").mkdir(parents=True)
    run.eval_file(3).parent.mkdir()
    run.eval_file(3).write_text("{}")
    run.ratings_file.write_text("{}\n")
    run.clear()
    assert sorted(p.name for p in run.path.rglob("*")) == ["eval", "eval_00000003.json",
                                                             "ratings.jsonl"]  # fmt: skip
    run.clear()  # nothing left to delete is fine
