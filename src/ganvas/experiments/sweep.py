"""Hyperparameter sweeps on Optuna: `ganvas sweep SPEC.yaml --out sweeps/NAME`.

A spec (YAML; see docs/experiments.md and sweeps/*.yaml):

    name: lsun-lr-optimizer
    preset: dcgan-lsun-64               # and/or config: FILE; overrides: {key: value}
    overrides: {data.path: datasets/lsun-bedroom-64}
    space:                              # a name → config key(s) and the values to try
      lr: {keys: [optim.lr_g, optim.lr_d], grid: [2.0e-3, 2.0e-4, 2.0e-5]}
      optim.name: {grid: [adam, rmsprop]}   # or {choices: [...]} or {low, high, log, int}
    sampler: grid                       # grid | random | tpe
    metric: {name: fid, split: val, n: 5000}   # minimised; fid, kid or fd_dinov2
    budget: {steps: 20000}              # per trial; or {minutes: 600, steps: upper bound}
    eval_interval: 2000                 # steps between evaluations (the pruner's rungs)
    pruner: none                        # none | halving | hyperband
    trials: 6                           # random / tpe (grid: the grid's size)

Each trial is an ordinary run dir, `OUT/trials/<its parameters>`, named by its parameters so
that a trial Optuna retries after a crash resumes the same run from its checkpoint. The
study lives in OUT/study.db (SQLite) unless a database URL is given (`--storage
postgresql://...`: workers on several machines share it). Workers send a heartbeat; a
trial whose worker died (SIGKILL, power cut) is failed by the next worker that starts and
retried with the same parameters (`RetryHeartbeatStaleTrialCallback`), so a killed sweep, run
again, skips what finished and continues the interrupted trial where it stopped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ganvas.config import ConfigError, check, load_config
from ganvas.io import write_json_atomic, write_text_atomic

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("none", "halving", "hyperband")
METRICS = ("fid", "kid", "fd_dinov2")
SPEC_FILE, STUDY_FILE, TRIALS_DIR, TRIAL_FILE = "spec.yaml", "study.db", "trials", "trial.json"


@dataclass(frozen=True)
class Param:
    """One searched parameter: the config keys it sets and its values or range."""

    name: str
    keys: tuple[str, ...]
    values: tuple[Any, ...] = ()  # grid / choices
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    def suggest(self, trial: Any) -> Any:
        if self.values:
            return trial.suggest_categorical(self.name, list(self.values))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)


@dataclass(frozen=True)
class SweepSpec:
    name: str
    space: tuple[Param, ...]
    preset: str | None = None
    config: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    sampler: str = "tpe"
    metric: str = "kid"
    metric_split: str = "val"
    metric_n: int = 1000
    budget_steps: int | None = None
    budget_minutes: float | None = None
    eval_interval: int | None = None
    pruner: str = "none"
    trials: int = 10
    seed: int = 0
    heartbeat_s: int = 30
    storage: str = ""

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the grid, in the spec's order."""
        names = [p.name for p in self.space]
        return [
            dict(zip(names, combo)) for combo in itertools.product(*(p.values for p in self.space))
        ]

    @property
    def n_trials(self) -> int:
        return len(self.grid()) if self.sampler == "grid" else self.trials

    @property
    def eval_every(self) -> int:
        return self.eval_interval or self.budget_steps or 1


SPEC_KEYS = {"name", "preset", "config", "overrides", "space", "sampler", "metric", "budget",
             "eval_interval", "pruner", "trials", "seed", "heartbeat_s", "storage"}  # fmt: skip


def parse_spec(tree: dict[str, Any], where: str = "sweep spec") -> SweepSpec:
    """Validate a spec's YAML tree.

    Raises:
        ConfigError: an unknown key, a missing one, or a value out of range, named.
    """
    unknown = sorted(set(tree) - SPEC_KEYS)
    check(not unknown, f"{where}: unknown key(s) {', '.join(unknown)}; allowed: "
                       f"{', '.join(sorted(SPEC_KEYS))}")  # fmt: skip
    check(bool(tree.get("name")), f"{where}: 'name' is missing")
    check(bool(tree.get("space")), f"{where}: 'space' is missing (the parameters to search)")
    sampler = str(tree.get("sampler", "tpe"))
    check(sampler in SAMPLERS, f"{where}: sampler={sampler!r}; choose one of {', '.join(SAMPLERS)}")
    space = []
    for name, entry in dict(tree["space"]).items():
        entry = entry if isinstance(entry, dict) else {"grid": entry}
        keys = tuple(entry.get("keys", [name]))
        values = tuple(entry.get("grid", entry.get("choices", ())))
        low, high = entry.get("low"), entry.get("high")
        check(bool(values) or (low is not None and high is not None),
              f"{where}: space.{name} needs grid/choices or low and high")  # fmt: skip
        check(sampler != "grid" or bool(values),
              f"{where}: space.{name}: sampler=grid needs a list of values (grid: [...])")  # fmt: skip
        space.append(Param(name, keys, values, None if low is None else float(low),
                           None if high is None else float(high), bool(entry.get("log", False)),
                           bool(entry.get("int", False))))  # fmt: skip
    metric = tree.get("metric", {"name": "kid"})
    metric = metric if isinstance(metric, dict) else {"name": metric}
    check(metric.get("name") in METRICS,
          f"{where}: metric.name={metric.get('name')!r}; choose one of {', '.join(METRICS)}")  # fmt: skip
    budget = dict(tree.get("budget", {}))
    check(bool(budget.get("steps") or budget.get("minutes")),
          f"{where}: budget needs steps: N or minutes: M (per trial)")  # fmt: skip
    pruner = str(tree.get("pruner", "none"))
    check(pruner in PRUNERS, f"{where}: pruner={pruner!r}; choose one of {', '.join(PRUNERS)}")
    spec = SweepSpec(
        name=str(tree["name"]), space=tuple(space), preset=tree.get("preset"),
        config=tree.get("config"), overrides=dict(tree.get("overrides") or {}), sampler=sampler,
        metric=metric["name"], metric_split=str(metric.get("split", "val")),
        metric_n=int(metric.get("n", 1000)),
        budget_steps=int(budget["steps"]) if budget.get("steps") else None,
        budget_minutes=float(budget["minutes"]) if budget.get("minutes") else None,
        eval_interval=int(tree["eval_interval"]) if tree.get("eval_interval") else None,
        pruner=pruner, trials=int(tree.get("trials", 10)), seed=int(tree.get("seed", 0)),
        heartbeat_s=int(tree.get("heartbeat_s", 30)), storage=str(tree.get("storage") or ""),
    )  # fmt: skip
    check(bool(spec.budget_steps or spec.eval_interval),
          f"{where}: a budget in minutes only needs eval_interval (steps between evaluations)")  # fmt: skip
    check(spec.n_trials >= 1, f"{where}: trials={spec.trials} must be >= 1")
    check(spec.heartbeat_s >= 1, f"{where}: heartbeat_s={spec.heartbeat_s} must be >= 1")
    return spec


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep spec {path} does not exist")
    return parse_spec(yaml.safe_load(path.read_text()) or {}, str(path))


# --- Trials -----------------------------------------------------------------------------------


def trial_name(params: dict[str, Any]) -> str:
    """A run dir name from the parameters: readable, and the same for the same values."""
    readable = "_".join(f"{k.split('.')[-1]}={v:.4g}" if isinstance(v, float) else
                        f"{k.split('.')[-1]}={v}" for k, v in params.items())  # fmt: skip
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:6]
    return f"{re.sub(r'[^A-Za-z0-9=._+-]', '-', readable)[:80]}-{digest}"


def trial_overrides(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    """The settings of one trial: the spec's overrides, the budget, the eval, its params."""
    settings = dict(spec.overrides)
    if spec.budget_steps:  # a budget in steps replaces a preset's epochs
        settings.update({"train.steps": spec.budget_steps, "train.epochs": None})
    settings.update({
        "train.eval_interval": spec.eval_every, "train.eval_metric": spec.metric,
        "train.eval_n": spec.metric_n, "train.eval_split": spec.metric_split,
        "train.tracker_group": spec.name,
    })  # fmt: skip
    by_name = {p.name: p for p in spec.space}
    for name, value in params.items():
        for key in by_name[name].keys:
            settings[key] = value
    return settings


SPURIOUS = "spurious"  # user attr of a trial that SpuriousTrial dropped


class SpuriousTrial(Exception):
    """A grid worker asked for a trial when the queue had just run dry (another worker took
    the last one): this trial is dropped rather than run as a duplicate."""


def _storage(url: str, heartbeat_s: int) -> Any:
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    if url.startswith("sqlite"):
        engine = {"connect_args": {"timeout": 60}}  # several workers wait for the lock
    else:
        engine = {"pool_pre_ping": True}
    # A dead worker's trial is enqueued again with its parameters (optuna >= 4.9 renamed it).
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    retry = retry or optuna.storages.RetryFailedTrialCallback
    return optuna.storages.RDBStorage(
        url, engine_kwargs=engine, heartbeat_interval=heartbeat_s,
        grace_period=2 * heartbeat_s + 1,
        heartbeat_stale_trial_callback=retry(max_retry=3, inherit_intermediate_values=True),
    )  # fmt: skip


def _sampler(spec: SweepSpec) -> Any:
    import optuna

    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=spec.seed)
    if spec.sampler == "grid":  # the grid is enqueued; any other trial is dropped
        return optuna.samplers.GridSampler({p.name: list(p.values) for p in spec.space},
                                           seed=spec.seed)  # fmt: skip
    return optuna.samplers.RandomSampler(seed=spec.seed)


def _pruner(spec: SweepSpec) -> Any:
    import optuna

    if spec.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=spec.eval_every,
                                                      reduction_factor=2)  # fmt: skip
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=spec.eval_every,
                                              max_resource=spec.budget_steps or "auto",
                                              reduction_factor=3)  # fmt: skip
    return optuna.pruners.NopPruner()


def open_study(spec: SweepSpec, storage_url: str) -> Any:
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=spec.name, storage=_storage(storage_url, spec.heartbeat_s),
                               sampler=_sampler(spec), pruner=_pruner(spec),
                               direction="minimize", load_if_exists=True)  # fmt: skip


def enqueue_grid(study: Any, spec: SweepSpec) -> int:
    """Put every grid point not yet in the study into its queue; returns how many."""
    seen = [t.params or t.system_attrs.get("fixed_params", {})
            for t in study.get_trials(deepcopy=False)]  # fmt: skip
    added = 0
    for params in spec.grid():
        if params not in seen:
            study.enqueue_trial(params)
            added += 1
    return added


def _finished(trial: Any) -> bool:
    from optuna.trial import TrialState

    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


class _Objective:
    def __init__(self, spec: SweepSpec, out: Path) -> None:
        self.spec, self.out = spec, out

    def __call__(self, trial: Any) -> float:
        import optuna

        from ganvas.training.trainer import Trainer, TrainingDiverged

        spec = self.spec
        system = trial.study._storage.get_trial_system_attrs(trial._trial_id)
        if spec.sampler == "grid" and "fixed_params" not in system:
            trial.set_user_attr(SPURIOUS, True)  # optuna keeps it (failed): reports skip it
            raise SpuriousTrial("the grid's queue was empty")
        params = {p.name: p.suggest(trial) for p in spec.space}
        run_dir = self.out / TRIALS_DIR / trial_name(params)
        trial.set_user_attr("run_dir", str(run_dir.relative_to(self.out)))
        cfg = load_config(preset=spec.preset, config_file=spec.config,
                          overrides=trial_overrides(spec, params))  # fmt: skip
        record = {"number": trial.number, "params": params, "state": "running",
                  "sweep": spec.name, "budget_steps": None, "pid": os.getpid()}  # fmt: skip
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / TRIAL_FILE, record)
        trainer = Trainer(cfg, run_dir, progress=False)
        record["budget_steps"] = trainer.total_steps
        reported = set(trial.study._storage.get_trial(trial._trial_id).intermediate_values)
        state = {"pruned": False}

        def should_stop(step: int) -> bool:
            if trainer.last_eval is not None and trainer.last_eval[0] == step:
                if step not in reported:
                    trial.report(trainer.last_eval[1], step)
                    reported.add(step)
                if step < trainer.total_steps and trial.should_prune():  # done is done
                    state["pruned"] = True
                    return True
            if spec.budget_minutes:
                return trainer.elapsed + trainer.window.seconds() >= spec.budget_minutes * 60
            return False

        try:
            result = trainer.fit(should_stop=should_stop)
        except TrainingDiverged as err:
            record.update(state="diverged", message=str(err).splitlines()[0])
            write_json_atomic(run_dir / TRIAL_FILE, record)
            trial.set_user_attr("diverged", True)
            return math.inf
        if result.interrupted:
            raise KeyboardInterrupt
        record.update(steps=trainer.step, elapsed_s=trainer.elapsed,
                      **{k: v for k, v in trainer.energy.reading().items() if k != "method"})  # fmt: skip
        value = trainer.best_metric if trainer.best_metric is not None else math.inf
        record["value"] = value
        if state["pruned"]:
            record["state"] = "pruned"
            write_json_atomic(run_dir / TRIAL_FILE, record)
            raise optuna.TrialPruned(f"pruned at step {trainer.step}")
        record["state"] = "complete"
        write_json_atomic(run_dir / TRIAL_FILE, record)
        return value


def run_worker(out: str | Path, storage_url: str | None = None) -> int:
    """Run trials of the sweep in `out` until none is left; returns how many this ran."""
    import warnings

    import optuna
    from optuna.trial import TrialState

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    out = Path(out)
    spec = load_spec(out / SPEC_FILE)
    study = open_study(spec, storage_url or default_storage(spec, out))
    objective, ran = _Objective(spec, out), 0
    while True:
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial → retried
        trials = study.get_trials(deepcopy=False)
        if spec.sampler == "grid":
            if not any(t.state == TrialState.WAITING for t in trials):
                break
        else:
            busy = sum(_finished(t) or t.state in (TrialState.RUNNING, TrialState.WAITING)
                       for t in trials)  # fmt: skip
            if busy >= spec.n_trials:
                break
        study.optimize(objective, n_trials=1, catch=(SpuriousTrial,), gc_after_trial=False)
        ran += 1
    return ran


def default_storage(spec: SweepSpec, out: Path) -> str:
    return spec.storage or f"sqlite:///{(out / STUDY_FILE).resolve()}"


@dataclass
class SweepResult:
    out: Path
    storage: str
    trials: list[dict[str, Any]]


def run_sweep(spec_path: str | Path, out: str | Path, workers: int = 1, gpus: int = 0,
              storage: str | None = None) -> SweepResult:  # fmt: skip
    """Run (or continue) the sweep `spec_path` in `out`, with `workers` processes at once.

    Args:
        spec_path: the sweep spec (YAML); copied to OUT/spec.yaml. A rerun must use the same.
        out: the sweep directory: spec.yaml, study.db, trials/<run dirs>.
        workers: trials run at once on this machine (1: in this process).
        gpus: with workers > 1, worker i sees only GPU i % gpus (CUDA_VISIBLE_DEVICES).
        storage: an Optuna database URL shared by workers on several machines
            (default: the spec's `storage`, else sqlite:///OUT/study.db).

    Raises:
        ConfigError: a bad spec, or OUT holding another spec.
    """
    out = Path(out)
    spec = load_spec(spec_path)
    saved = out / SPEC_FILE
    text = Path(spec_path).read_text()
    if saved.is_file() and parse_spec(yaml.safe_load(saved.read_text()) or {}) != spec:
        raise ConfigError(f"{out} holds a sweep with another spec ({saved}); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if not saved.is_file():
        write_text_atomic(saved, text)
    url = storage or default_storage(spec, out)
    study = open_study(spec, url)
    if spec.sampler == "grid":
        enqueue_grid(study, spec)
    if workers <= 1:
        run_worker(out, url)
    else:
        procs = []
        for i in range(workers):
            env = dict(os.environ)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
            procs.append(subprocess.Popen([sys.executable, "-m", "ganvas.experiments.sweep",
                                           str(out), url], env=env))  # fmt: skip
            time.sleep(0.5)  # stagger the first database writes
        codes = [p.wait() for p in procs]
        if any(codes):
            raise RuntimeError(f"sweep workers exited with {codes}; run the sweep again to resume")
    return SweepResult(out, url, trial_records(study))


def trial_records(study: Any) -> list[dict[str, Any]]:
    """The study's trials as plain dicts (number, state, params, value, run_dir), without
    the spurious ones a grid worker dropped (they never ran)."""
    return [{"number": t.number, "state": t.state.name.lower(), "params": t.params,
             "value": t.value, "run_dir": t.user_attrs.get("run_dir")}
            for t in study.get_trials(deepcopy=False)
            if not t.user_attrs.get(SPURIOUS)]  # fmt: skip


if __name__ == "__main__":  # a worker process: python -m ganvas.experiments.sweep OUT URL
    run_worker(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
