"""`ganvas results` on plain run dirs (no sweep): the differing settings become columns."""

from __future__ import annotations

from typer.testing import CliRunner

from ganvas.cli import app
from ganvas.experiments.results import collect_runs, differing_keys, to_csv
from ganvas.training.trainer import train
from tests.conftest import tiny_config


def test_results_of_run_dirs_show_what_differs(tiny_dataset, tmp_path):
    for name, lr in (("slow", 1e-4), ("fast", 1e-3)):
        cfg = tiny_config(tiny_dataset.path, **{"train.steps": 10, "optim.lr_g": lr,
                                                "train.energy": False})  # fmt: skip
        train(cfg, tmp_path / "runs" / name, progress=False)
    rows = collect_runs([tmp_path / "runs"])  # a folder of run dirs
    assert [r.run_dir.name for r in rows] == ["fast", "slow"]
    assert differing_keys(rows) == ["optim.lr_g"]
    assert all(r.status == "finished" and r.steps == 10 and r.value is None for r in rows)
    header = to_csv(rows).splitlines()[0].split(",")
    assert header[:3] == ["run", "optim.lr_g", "status"]
    result = CliRunner().invoke(app, ["results", str(tmp_path / "runs" / "slow"),
                                      str(tmp_path / "runs" / "fast"),
                                      "--html", str(tmp_path / "t.html")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t.html").read_text().count("<tr>") == 3
    missing = CliRunner().invoke(app, ["results", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "holds no run dirs" in missing.output
