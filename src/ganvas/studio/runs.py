"""What the studio may open, and what it shows about a run: the catalog of runs named at
start, a summary row per run, the request bounds, and a bounded generator cache.

    catalog = RunCatalog(["runs/"])         # every run inside runs/ (and runs/ itself if one)
    run = catalog.resolve("runs/a")         # a RunDir, or RunRefused for any other path
    row = run_summary(run)                  # family, dataset, step, kimg, FID, state, ...

Only the runs found when the studio starts (and later inside the folders named then) can be
opened; a request naming any other path is refused with `RunRefused`, whatever it says.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganvas.rundir import RunDir

MAX_IMAGES = 256  # images per request
MAX_WALK_STEPS = 100  # frames between two keyframes of a walk
MAX_WALK_SEEDS = 8  # keyframes of a walk
MAX_COMPARE = 4  # runs side by side
MAX_RESTORE_SIDE = 512  # pixels on the longer side of a picture sent to a restorer
REQUEST_SECONDS = 60.0  # a request's time limit
SEARCH_DEPTH = 3  # folder levels searched below a named folder
RUNNING_WINDOW_S = 120.0  # metrics.jsonl written this recently: the run is still training


class RunRefused(PermissionError):
    """A request named a path that is not one of the studio's runs."""


class RequestTooLarge(ValueError):
    """A request asked for more than the studio's bounds allow."""


def check_bound(name: str, value: float, low: float, high: float) -> None:
    """Raise RequestTooLarge unless low <= value <= high (value a finite number)."""
    if value is None or not math.isfinite(float(value)) or not low <= value <= high:
        raise RequestTooLarge(f"{name}={value} must lie in {low:g}..{high:g}")


def is_run(path: Path) -> bool:
    """Whether `path` looks like a run directory (it has a config.yaml)."""
    return (path / "config.yaml").is_file()


class RunCatalog:
    """The runs the studio may open: those named, and those inside the folders named."""

    def __init__(self, roots: list[str | os.PathLike]) -> None:
        self.roots = [Path(root).resolve() for root in roots] or [Path.cwd().resolve()]

    def runs(self) -> dict[str, RunDir]:
        """{label: RunDir} of every run found now (labels are the paths as given, relative
        to the current folder where possible), sorted by label."""
        found: dict[str, RunDir] = {}
        for root in self.roots:
            for path in _find_runs(root, SEARCH_DEPTH):
                found[_label(path)] = RunDir(path)
        return dict(sorted(found.items()))

    def labels(self) -> list[str]:
        return list(self.runs())

    def allows(self, path: Path) -> bool:
        """Whether a resolved path is a run the catalog may open."""
        inside = any(path == root or root in path.parents for root in self.roots)
        return inside and is_run(path)

    def resolve(self, name: str | None) -> RunDir:
        """The run a request names (its label or its path).

        Raises:
            RunRefused: no name, or a path that is not one of the catalog's runs.
        """
        if not name or not isinstance(name, str) or "\x00" in name:
            raise RunRefused("no run chosen")
        runs = self.runs()
        if name in runs:
            return runs[name]
        try:
            path = Path(name).resolve()
        except (OSError, RuntimeError) as err:
            raise RunRefused(f"{name!r} is not one of this studio's runs") from err
        if self.allows(path):
            return RunDir(path)
        raise RunRefused(f"{name!r} is not one of this studio's runs")


def _find_runs(root: Path, depth: int) -> list[Path]:
    if not root.is_dir():
        return []
    if is_run(root):
        return [root]
    if depth == 0:
        return []
    found = []
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []
    for child in children:
        if not child.name.startswith("."):
            found.extend(_find_runs(child, depth - 1))
    return found


def _label(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_metrics(run: RunDir, limit: int = 200_000) -> list[dict[str, Any]]:
    """The records of metrics.jsonl (at most `limit`); a half-written last line or a broken
    line is skipped, never an error."""
    return run.read_metrics(limit)


def read_json(path: Path) -> Any:
    """A JSON file, or None when it is missing or broken."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def latest_state(run: RunDir) -> dict[str, Any]:
    """state.json of the newest checkpoint ({} when there is none)."""
    if not run.checkpoints_dir.is_dir():
        return {}
    steps = sorted(p for p in run.checkpoints_dir.iterdir() if p.name.isdigit())
    for folder in reversed(steps):
        state = read_json(folder / "state.json")
        if isinstance(state, dict):
            return state
    return {}


def fake_grids(run: RunDir) -> list[tuple[int, Path]]:
    """The fixed-noise grids [(step, file)] in step order."""
    if not run.samples_dir.is_dir():
        return []
    grids = []
    for path in run.samples_dir.glob("fakes_*.png"):
        digits = path.stem.removeprefix("fakes_")
        if digits.isdigit():
            grids.append((int(digits), path))
    return sorted(grids)


def eval_results(run: RunDir) -> list[dict[str, Any]]:
    """The run's eval/eval_<step>.json results, in step order (broken files skipped)."""
    if not run.eval_dir.is_dir():
        return []
    results = [read_json(p) for p in sorted(run.eval_dir.glob("eval_*.json"))]
    return [r for r in results if isinstance(r, dict)]


def best_scores(run: RunDir, records: list[dict[str, Any]]) -> dict[str, float]:
    """The lowest FID and KID recorded (eval files and eval events in metrics.jsonl)."""
    best: dict[str, float] = {}
    for record in [*eval_results(run), *(r for r in records if r.get("event") == "eval")]:
        for key in ("fid", "kid"):
            value = record.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                best[key] = min(best.get(key, math.inf), float(value))
    return best


def run_state(run: RunDir, records: list[dict[str, Any]], step: int, total: int) -> str:
    """finished, running, stopped or diverged."""
    if any(r.get("event") == "diverged" for r in records) or _log_says_diverged(run):
        return "diverged"
    if total and step >= total:
        return "finished"
    if (
        run.metrics_file.is_file()
        and time.time() - run.metrics_file.stat().st_mtime < RUNNING_WINDOW_S
    ):
        return "running"
    return "stopped"


def _log_says_diverged(run: RunDir) -> bool:
    try:
        with open(run.log_file, "rb") as f:
            f.seek(max(0, run.log_file.stat().st_size - 4096))
            return b"diverged" in f.read()
    except OSError:
        return False


def run_summary(label: str, run: RunDir) -> dict[str, Any]:
    """One row of the Runs table; a run that cannot be read gives a row whose state says
    why ('error: ...'), never an exception."""
    try:
        return _summary(label, run)
    except Exception as err:  # a corrupt run is shown, not raised
        return {"run": label, "family": "?", "dataset": "?", "step": "", "kimg": "",
                "elapsed": "", "fid": "", "kid": "", "energy_kwh": "",
                "state": f"error: {type(err).__name__}: {err}"[:200].replace("\n", " ")}  # fmt: skip


def _summary(label: str, run: RunDir) -> dict[str, Any]:
    config = run.read_config()
    records = read_metrics(run)
    state = latest_state(run)
    steps = [r for r in records if "kimg" in r and "step" in r]
    last = steps[-1] if steps else {}
    step = int(state.get("step", last.get("step", 0)) or 0)
    total = int(state.get("total_steps", config.train.steps) or 0)
    best = best_scores(run, records)
    energy = [r.get("energy_kwh") for r in records if isinstance(r.get("energy_kwh"), int | float)]
    return {
        "run": label,
        "family": config.model.family,
        "dataset": Path(config.data.path).name if config.data.path else "",
        "step": f"{step}/{total}",
        "kimg": round(float(last.get("kimg", state.get("images_seen", 0) / 1000)), 2),
        "elapsed": format_seconds(float(state.get("elapsed_s", last.get("time_s", 0)) or 0)),
        "fid": round(best["fid"], 3) if "fid" in best else "",
        "kid": round(best["kid"], 5) if "kid" in best else "",
        "energy_kwh": round(energy[-1], 4) if energy else "",
        "state": run_state(run, records, step, total),
    }


def format_seconds(seconds: float) -> str:
    """1234 → '20m 34s'; 5000 → '1h 23m'."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class GeneratorCache:
    """Loaded generators, least recently used dropped first, kept under `max_bytes` of
    weights and `max_items` generators. A run's entry is reloaded when its newest
    checkpoint changes (a run still training).

    `loader(run_dir, device=...)` loads one: `ganvas.load` (a GeneratorPipeline) by default,
    `ganvas.restore.load_restorer` for the restorers; either has its network as `.G`."""

    def __init__(self, max_items: int = 4, max_bytes: int = 512 * 2**20, device: str = "cpu",
                 loader: Callable[..., Any] | None = None) -> None:  # fmt: skip
        self.max_items, self.max_bytes, self.device = max_items, max_bytes, device
        self.loader = loader
        self._items: OrderedDict[tuple[str, str], tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run: RunDir) -> Any:
        """The run's generator (`loader`'s result), loaded or from the cache."""
        from ganvas.generate import load

        key = (str(run.path), _checkpoint_key(run))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        pipeline = (self.loader or load)(run.path, device=self.device)
        size = sum(p.numel() * p.element_size() for p in pipeline.G.parameters())
        size += sum(b.numel() * b.element_size() for b in pipeline.G.buffers())
        with self._lock:
            for old in [k for k in self._items if k[0] == key[0]]:
                del self._items[old]
            self._items[key] = (pipeline, size)
            while len(self._items) > self.max_items or (
                len(self._items) > 1 and self.nbytes() > self.max_bytes
            ):
                self._items.popitem(last=False)
        return pipeline

    def nbytes(self) -> int:
        return sum(size for _, size in self._items.values())

    def __len__(self) -> int:
        return len(self._items)


def _checkpoint_key(run: RunDir) -> str:
    latest = run.checkpoints_dir / "latest"
    try:
        return latest.read_text().strip() if latest.is_file() else os.readlink(latest)
    except OSError:
        return ""
