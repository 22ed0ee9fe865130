"""One table for a sweep or any set of run dirs: `ganvas results PATH...`.

A row per run: the parameters that differ between the runs, the status (a sweep's trials:
complete / pruned / diverged / running), the best eval metric and its step, steps trained,
wall time, kWh, kg CO2e and cost. Written as a rich table, CSV, Markdown or HTML, and as a
PNG of the metric against each parameter. For a sweep with pruned trials it also says what
pruning saved: each pruned trial's remaining steps at its own time and energy per step.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganvas.errors import ConfigError
from ganvas.experiments.sweep import SPEC_FILE, TRIAL_FILE, TRIALS_DIR

# Keys that differ between runs without being an experimental choice.
NOT_PARAMETERS = {"data.path", "description", "train.tracker_group", "train.trackers",
                  "train.mlflow_uri", "train.init_from", "train.device", "version"}  # fmt: skip
METRIC_KEYS = ("fid", "kid_mean", "fd_dinov2")


@dataclass
class RunRow:
    run_dir: Path
    config: dict[str, Any]
    status: str = "finished"
    metric: str = ""
    value: float | None = None
    best_step: int | None = None
    steps: int = 0
    total_steps: int = 0
    wall_s: float = 0.0
    energy_kwh: float | None = None
    co2e_kg: float | None = None
    cost: float | None = None
    params: dict[str, Any] = field(default_factory=dict)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return out


def read_run(run_dir: str | Path) -> RunRow:
    """What a run dir says about itself: config, best eval, steps, time, energy.

    Raises:
        ConfigError: `run_dir` has no config.yaml.
    """
    import yaml

    from ganvas import checkpoint as ckpt

    run_dir = Path(run_dir)
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"{run_dir} is not a run dir (no config.yaml) nor a sweep dir")
    row = RunRow(run_dir, _flatten(yaml.safe_load(config_file.read_text()) or {}))
    metrics = run_dir / "metrics.jsonl"
    for line in metrics.read_text().splitlines() if metrics.is_file() else []:
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("event") == "eval":
            key = next((k for k in METRIC_KEYS if k in record), None)
            if key is not None and (row.value is None or record[key] < row.value):
                row.metric, row.value, row.best_step = key, float(record[key]), record["step"]
    latest = ckpt.find_latest_checkpoint(run_dir)
    if latest is not None:
        state = json.loads((latest / "state.json").read_text())
        row.steps = int(latest.name)
        row.total_steps = int(state.get("total_steps", 0))
        row.wall_s = float(state.get("elapsed_s", 0.0))
        energy = state.get("energy")
        if energy:
            row.energy_kwh, row.co2e_kg = energy["energy_kwh"], energy["co2e_kg"]
            # the meter's clock runs from start to checkpoint, evaluations included
            row.wall_s = max(row.wall_s, float(energy.get("seconds", 0.0)))
            row.cost = energy["energy_kwh"] * float(row.config.get("train.price_per_kwh", 0.3))
        row.status = "finished" if row.steps >= row.total_steps else "stopped"
    trial = run_dir / TRIAL_FILE
    if trial.is_file():
        info = json.loads(trial.read_text())
        row.status, row.params = info.get("state", row.status), info.get("params", {})
        if info.get("budget_steps"):
            row.total_steps = int(info["budget_steps"])
    return row


def collect_runs(paths: list[str | Path]) -> list[RunRow]:
    """Rows for run dirs, sweep dirs (their trials) and folders of run dirs, in order."""
    rows: list[RunRow] = []
    for path in map(Path, paths):
        if (path / "config.yaml").is_file():
            rows.append(read_run(path))
            continue
        folder = path / TRIALS_DIR if (path / SPEC_FILE).is_file() else path
        runs = sorted(p for p in folder.glob("*/") if (p / "config.yaml").is_file())
        if not runs:
            raise ConfigError(f"{path} holds no run dirs (folders with a config.yaml)")
        rows.extend(read_run(p) for p in runs)
    return rows


def differing_keys(rows: list[RunRow]) -> list[str]:
    """Config keys whose values are not the same in every row (the swept parameters)."""
    keys = sorted({k for row in rows for k in row.config} - NOT_PARAMETERS)
    return [k for k in keys if len({repr(row.config.get(k)) for row in rows}) > 1]


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def table(rows: list[RunRow]) -> tuple[list[str], list[list[str]]]:
    """(header, body) of the results table, best metric first."""
    keys = differing_keys(rows)
    metric = next((r.metric for r in rows if r.metric), "metric")
    header = ["run", *keys, "status", metric, "best step", "steps", "wall time s", "kWh",
              "kg CO2e", "cost €"]  # fmt: skip
    ordered = sorted(rows, key=lambda r: (r.value is None or not math.isfinite(r.value),
                                          r.value if r.value is not None else 0.0))  # fmt: skip
    body = [[row.run_dir.name, *(_fmt(row.config.get(k)) for k in keys), row.status,
             _fmt(row.value), _fmt(row.best_step), f"{row.steps}/{row.total_steps}",
             f"{row.wall_s:.1f}", _fmt(row.energy_kwh), _fmt(row.co2e_kg), _fmt(row.cost)]
            for row in ordered]  # fmt: skip
    return header, body


def pruning_savings(rows: list[RunRow]) -> dict[str, float] | None:
    """Time, kWh and cost pruned trials did not spend, each at its own rate per step; None
    when nothing was pruned."""
    pruned = [r for r in rows if r.status == "pruned" and 0 < r.steps < r.total_steps]
    if not pruned:
        return None
    saved = {"trials": float(len(pruned)), "seconds": 0.0, "energy_kwh": 0.0, "cost": 0.0,
             "spent_seconds": sum(r.wall_s for r in rows)}  # fmt: skip
    for r in pruned:
        left = max(r.total_steps - r.steps, 0) / r.steps
        saved["seconds"] += r.wall_s * left
        saved["energy_kwh"] += (r.energy_kwh or 0.0) * left
        saved["cost"] += (r.cost or 0.0) * left
    return saved


def savings_line(rows: list[RunRow]) -> str | None:
    saved = pruning_savings(rows)
    if saved is None:
        return None
    whole = saved["spent_seconds"] + saved["seconds"]
    return (f"pruning stopped {int(saved['trials'])} trial(s) early and saved "
            f"{saved['seconds']:.1f} s ({100 * saved['seconds'] / max(whole, 1e-9):.0f} % of "
            f"running every trial to the end), {saved['energy_kwh']:.3g} kWh, "
            f"{saved['cost']:.3g} €")  # fmt: skip


def to_csv(rows: list[RunRow]) -> str:
    header, body = table(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(body)
    return buffer.getvalue()


def to_markdown(rows: list[RunRow]) -> str:
    header, body = table(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    note = savings_line(rows)
    return "\n".join(lines) + "\n" + (f"\n{note}\n" if note else "")


def to_html(rows: list[RunRow]) -> str:
    header, body = table(rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
                  for cells in body)  # fmt: skip
    note = savings_line(rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{trs}</tbody>\n</table>\n" + (
        f"<p>{html.escape(note)}</p>\n" if note else ""
    )


def print_table(rows: list[RunRow], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    header, body = table(rows)
    out = Table(*header, title=title)
    for cells in body:
        out.add_row(*cells)
    console = Console()
    if not console.is_terminal:
        console.width = 200  # piped or logged: do not cut the table to 80 columns
    console.print(out)
    note = savings_line(rows)
    if note:
        console.print(note, highlight=False)


def plot(rows: list[RunRow], dest: str | Path) -> Path:
    """PNG: the metric against each differing parameter, one panel each.

    Raises:
        ConfigError: no run has an eval metric, or no parameter differs.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = differing_keys(rows)
    scored = [r for r in rows if r.value is not None and math.isfinite(r.value)]
    if not scored or not keys:
        raise ConfigError("nothing to plot: the runs need an eval metric and a parameter "
                          "that differs between them")  # fmt: skip
    metric = scored[0].metric
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        xs = [r.config.get(key) for r in scored]
        ys = [r.value for r in scored]
        colours = ["tab:red" if r.status == "pruned" else "tab:blue" for r in scored]
        if all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs):
            ax.scatter(xs, ys, c=colours)
            if min(xs) > 0 and max(xs) / min(xs) >= 100:
                ax.set_xscale("log")
        else:
            labels = sorted({_fmt(x) for x in xs})
            ax.scatter([labels.index(_fmt(x)) for x in xs], ys, c=colours)
            ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
    fig.suptitle(f"{metric} per run (red: pruned)")
    fig.tight_layout()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest, dpi=100)
    plt.close(fig)
    return dest
