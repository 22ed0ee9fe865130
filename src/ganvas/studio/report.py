"""`ganvas report RUN`: one self-contained HTML page about a run — samples over time, the
curves, the config, evaluation and rating results, the dataset card — with every image
inline as a data: URI, to mail or publish without a server.

    write_report("runs/a", "runs/a/report.html")
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

from ganvas.io import write_text_atomic
from ganvas.rundir import RunDir
from ganvas.studio.plots import metric_charts, png_bytes
from ganvas.studio.runs import eval_results, fake_grids, read_metrics, run_summary

MAX_GRIDS = 12  # fixed-noise grids shown (spread evenly over training)
MAX_INLINE_BYTES = 8 * 2**20  # a larger file (a huge progress.gif) is left out and named

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
pre{background:#f6f6f6;padding:1em;overflow:auto;max-height:30em}
figure{display:inline-block;margin:6px;text-align:center} figcaption{font-size:.85em}
img.grid{width:160px;image-rendering:pixelated}"""


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def file_uri(path: Path) -> str | None:
    """A data: URI of an image file, or None when it is missing or too large."""
    try:
        if path.stat().st_size > MAX_INLINE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    mime = {".gif": "image/gif", ".jpg": "image/jpeg"}.get(path.suffix.lower(), "image/png")
    return data_uri(data, mime)


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(rows: dict[str, Any]) -> str:
    cells = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows.items())
    return f"<table>{cells}</table>"


def _figure(uri: str, caption: str, css_class: str = "grid") -> str:
    return (f'<figure><img class="{css_class}" src="{uri}" alt="{_esc(caption)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")  # fmt: skip


def samples_section(run: RunDir) -> str:
    grids = fake_grids(run)
    if len(grids) > MAX_GRIDS:
        picks = {round(i * (len(grids) - 1) / (MAX_GRIDS - 1)) for i in range(MAX_GRIDS)}
        grids = [grids[i] for i in sorted(picks)]
    figures = [_figure(uri, f"step {step}") for step, path in grids if (uri := file_uri(path))]
    reals = file_uri(run.reals_grid)
    if reals:
        figures.append(_figure(reals, "real images"))
    gif = file_uri(run.progress_gif)
    if gif:
        figures.append(_figure(gif, "progress animation"))
    return "<h2>Samples over training</h2>" + ("".join(figures) or "<p>no sample grids yet</p>")


def curves_section(records: list[dict[str, Any]]) -> str:
    charts = metric_charts(records)
    figures = [_figure(data_uri(png_bytes(chart), "image/png"), title, "chart")
               for title, chart in charts.items()]  # fmt: skip
    return "<h2>Curves</h2>" + ("".join(figures) or "<p>no metrics recorded yet</p>")


def eval_section(run: RunDir) -> str:
    results = eval_results(run)
    if not results:
        return "<h2>Evaluation</h2><p>not evaluated (ganvas evaluate RUN --data DATA)</p>"
    rows = []
    for result in results:
        scores = {k: v for k, v in result.items() if isinstance(v, int | float)}
        rows.append(_table({"step": result.get("step"), "data": result.get("data", ""),
                            **scores}))  # fmt: skip
    return "<h2>Evaluation</h2>" + "".join(rows)


def ratings_section(run: RunDir) -> str:
    lines = read_ratings(run)
    if not lines:
        return "<h2>Human ratings</h2><p>none (ganvas rate RUN, or the studio's Rate tab)</p>"
    groups = summarize_ratings(lines)
    rows = "".join(
        f"<tr><td>{_esc(q)}</td><td>{_esc(kind)}</td><td>{g['yes']}/{g['n']}</td>"
        f"<td>{g['accuracy']:.2f}</td><td>[{g['ci95'][0]:.2f}, {g['ci95'][1]:.2f}]</td></tr>"
        for (q, kind), g in groups.items()
    )
    head = "<tr><th>question</th><th>images</th><th>yes</th><th>share</th><th>95 %</th></tr>"
    return f"<h2>Human ratings</h2><table>{head}{rows}</table>"


def read_ratings(run: RunDir) -> list[dict[str, Any]]:
    """The records of ratings.jsonl (broken lines skipped)."""
    if not run.ratings_file.is_file():
        return []
    out = []
    for line in run.ratings_file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("n"), int):
            out.append(record)
    return out


def summarize_ratings(lines: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Totals per (question, kind of image: generated or real) with a 95 % interval."""
    from ganvas.rate import wilson_interval

    totals: dict[tuple[str, str], list[int]] = {}
    for line in lines:
        key = (str(line.get("question", "")), str(line.get("kind", "generated")))
        total = totals.setdefault(key, [0, 0])
        total[0] += int(line.get("yes", 0))
        total[1] += int(line.get("n", 0))
    return {key: {"yes": yes, "n": n, "accuracy": yes / n if n else 0.0,
                  "ci95": wilson_interval(yes, n)}
            for key, (yes, n) in totals.items()}  # fmt: skip


def card_section(run: RunDir) -> str:
    from ganvas.data.card import dataset_card

    try:
        config = run.read_config()
        card = dataset_card(config.data.path)
    except Exception as err:  # the dataset may live on another machine
        return f"<h2>Dataset</h2><p>dataset card unavailable: {_esc(err)}</p>"
    preview = file_uri(Path(card["path"]) / "preview.png")
    figure = _figure(preview, "dataset preview") if preview else ""
    flat = {k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in card.items()}
    return "<h2>Dataset</h2>" + _table(flat) + figure


def config_section(run: RunDir) -> str:
    try:
        text = run.config_file.read_text(encoding="utf-8")
    except OSError as err:
        text = f"config.yaml unreadable: {err}"
    return f"<h2>Config</h2><pre>{_esc(text)}</pre>"


def build_report(run_dir: str | os.PathLike) -> str:
    """The HTML page of a run, as a string; parts that cannot be read say so."""
    run = RunDir(run_dir)
    summary = run_summary(run.path.name, run)
    records = read_metrics(run)
    sections = [samples_section(run), curves_section(records), eval_section(run),
                ratings_section(run), card_section(run), config_section(run)]  # fmt: skip
    title = f"ganvas run {run.path.name}"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}'
            f"</title><style>{CSS}</style></head><body><h1>{_esc(title)}</h1>"
            f"{_table(summary)}{''.join(sections)}"
            "<p><small>made by ganvas report</small></p></body></html>")  # fmt: skip


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the report page (default RUN/report.html) atomically; returns its path.

    Raises:
        CheckpointError: `run_dir` is not a run directory.
    """
    from ganvas.errors import CheckpointError

    run = RunDir(run_dir)
    if not run.config_file.is_file():
        raise CheckpointError(f"{run.path} is not a run directory (no config.yaml)")
    path = Path(out) if out is not None else run.path / "report.html"
    write_text_atomic(path, build_report(run.path))
    return path
