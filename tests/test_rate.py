import json

import pytest
from typer.testing import CliRunner

from ganvas.cli import app
from ganvas.rate import wilson_interval
from ganvas.training.trainer import train
from tests.conftest import tiny_config


@pytest.mark.parametrize(
    "yes, n, low, high",
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (18, 100, 0.1170, 0.2667),
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_interval_matches_reference_values(yes, n, low, high):
    lo, hi = wilson_interval(yes, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


@pytest.fixture
def run_dir(tiny_dataset, tmp_path):
    train(tiny_config(tiny_dataset.path, **{"train.steps": 2}), tmp_path / "run", progress=False)
    return tmp_path / "run"


def test_rating_in_the_terminal_records_accuracy(run_dir):
    result = CliRunner().invoke(app, ["rate", str(run_dir), "--n", "4", "--question", "Red?"],
                                input="y\nmaybe\nn\ny\ny\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "▀" in result.output  # the images were drawn
    record = json.loads((run_dir / "ratings.jsonl").read_text().splitlines()[-1])
    assert (record["n"], record["yes"], record["question"]) == (4, 3, "Red?")
    assert record["accuracy"] == 0.75 and record["ci95"][0] < 0.75 < record["ci95"][1]


def test_quitting_early_rates_what_was_answered(run_dir):
    result = CliRunner().invoke(app, ["rate", str(run_dir), "--n", "5"], input="y\nq\n")
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / "ratings.jsonl").read_text().splitlines()[-1])
    assert (record["n"], record["yes"]) == (1, 1)


def test_html_form_and_its_answers(run_dir, tmp_path):
    page = tmp_path / "rate.html"
    result = CliRunner().invoke(app, ["rate", str(run_dir), "--n", "3", "--html", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 3 and text.count('value="yes"') == 3
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"question": "Q", "n": 3, "seed": 0, "step": 2,
                                   "answers": [True, None, False]}))  # fmt: skip
    result = CliRunner().invoke(app, ["rate", str(run_dir), "--answers", str(answers)])
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / "ratings.jsonl").read_text().splitlines()[-1])
    assert (record["n"], record["yes"]) == (2, 1)
