"""`ganvas report`: one self-contained page; and the pieces the studio shows."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from typer.testing import CliRunner

from ganvas.cli import app
from ganvas.rate import save_rating, summarize
from ganvas.studio.actions import Studio, compare_runs
from ganvas.studio.report import build_report, summarize_ratings
from ganvas.studio.runs import RunCatalog, format_seconds, read_metrics, run_summary


def test_report_is_self_contained(studio_root, tmp_path):
    run = tmp_path / "a"
    shutil.copytree(studio_root / "runs" / "a", run)
    (run / "ratings.jsonl").unlink(missing_ok=True)
    save_rating(run, {**summarize([True, False, True], "real?", 3, 0, 20)})
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    for section in ("Samples over training", "Curves", "Evaluation", "Human ratings",
                    "Dataset", "Config"):  # fmt: skip
        assert f"<h2>{section}</h2>" in page
    assert "2/3" in page  # the rating's total


def test_report_of_a_missing_run_is_a_message(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "not a run directory" in result.output


def test_report_of_a_corrupt_run_still_renders(studio_root):
    page = build_report(studio_root / "runs" / "broken")
    assert "error:" in page and "<h2>Config</h2>" in page


def test_rating_totals_add_up_per_question_and_kind():
    lines = [{"question": "q", "n": 1, "yes": 1}, {"question": "q", "n": 1, "yes": 0},
             {"question": "q", "n": 1, "yes": 1, "kind": "real"}]  # fmt: skip
    totals = summarize_ratings(lines)
    assert totals[("q", "generated")]["yes"] == 1 and totals[("q", "generated")]["n"] == 2
    assert totals[("q", "real")]["accuracy"] == 1.0


def test_summary_row_and_half_written_metrics(studio_root, tmp_path):
    run = tmp_path / "a"
    shutil.copytree(studio_root / "runs" / "a", run)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 30, "loss')  # a line being written
    records = read_metrics(RunCatalog([tmp_path]).resolve(str(run)))
    assert records and all("step" in r for r in records)
    row = run_summary("a", RunCatalog([tmp_path]).resolve(str(run)))
    assert row["family"] == "dcgan" and row["step"] == "20/20" and row["state"] == "finished"
    assert format_seconds(5000) == "1h 23m" and format_seconds(75) == "1m 15s"


def test_same_seeds_side_by_side(studio_root):
    studio = Studio(RunCatalog([studio_root / "runs", studio_root / "elsewhere"]))
    labels = [str(studio_root / "runs" / "a"), str(studio_root / "elsewhere" / "b")]
    pairs = compare_runs(studio, labels, seed=5, count=3)
    assert len(pairs) == 6
    assert (pairs[0][0] == pairs[3][0]).all()  # b is a copy of a: the same seed, same image


def test_ratings_written_by_the_studio_read_like_ganvas_rate(studio_root, tmp_path):
    from ganvas.studio import rating

    run = tmp_path / "runs" / "a"
    shutil.copytree(studio_root / "runs" / "a", run)
    (run / "ratings.jsonl").unlink(missing_ok=True)  # the browser test's ratings
    studio = Studio(RunCatalog([tmp_path / "runs"]))
    session = rating.start_session(studio, str(run), 3, "real?", seed=1, blind=True)
    assert sorted(session["kinds"]) == ["generated"] * 3 + ["real"] * 3
    for yes in (True, True, False, True, False, False):
        rating.answer(studio, session, yes)
    lines = [json.loads(line) for line in Path(run / "ratings.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(line["n"] == 1 and line["source"] == "studio" for line in lines)
    assert "6/6 rated" in rating.progress_text(session)


def test_studio_command_checks_auth(tmp_path):
    result = CliRunner().invoke(app, ["studio", str(tmp_path), "--auth", "no-colon"])
    assert result.exit_code == 2 and "user:password" in result.output
