"""The training loop: run the objective's phases, and report, sample and checkpoint on time.

    trainer = Trainer(config, "runs/a")   # builds everything; resumes if runs/a has a checkpoint
    trainer.fit()                          # trains to the last step, writes the final checkpoint

The loop names no family. A family enters through the registry (`Family`: its networks, how
G's inputs are made, whether it grows, its objective); what a step computes belongs to the
objective (`ganvas.objectives`), what D sees to the D-input pipeline (`ganvas.augment`),
what changes with the step to the schedule (`training.schedules`), and every stateful part
saves itself (`training.state`).
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganvas import __version__
from ganvas import checkpoint as ckpt
from ganvas.augment import build_d_input
from ganvas.config import Config, ConfigError
from ganvas.data.loader import BatchSampler
from ganvas.data.store import load_dataset
from ganvas.errors import DiskFullError, is_disk_full
from ganvas.experiments.energy import EnergyMeter, format_energy
from ganvas.inference import (
    latents,
    pick_generator,
    resolve_device,
    run_generator,
    to_uint8,
    to_uint8_nhwc,
)
from ganvas.models.registry import build_models, get_family
from ganvas.objectives import Feed, Phase, TrainingParts, build_objective, lazy_ratio
from ganvas.rundir import RunDir
from ganvas.training.distributed import (
    Distributed,
    check_batch_divides,
    convert_sync_batchnorm,
)
from ganvas.training.ema import WeightAverage
from ganvas.training.monitors import (
    MetricsLog,
    RunLog,
    make_progress_bar,
    make_progress_gif,
    save_grid,
)
from ganvas.training.schedules import StepPlan, build_schedule, lr_factor, make_optimizer
from ganvas.training.setup import (
    StopOnSignal,
    check_resumable,
    freeze_discriminator_blocks,
    resolve_model_shape,
    resolve_run_config,
    select_training_images,
)
from ganvas.training.speed import (
    MixedPrecision,
    check_compile_available,
    compile_forward,
    to_memory_format,
)
from ganvas.training.state import RandomState, Rollbacks, collect_state, restore_state

MONITOR_REALS = 256  # real images the collapse monitor compares the samples with
LATENT_METRICS = ("fid", "kid", "fd_dinov2")  # eval metrics of generated images
IMAGE_METRICS = ("psnr", "ssim", "perceptual")  # of image families' outputs (Family.validate)
HIGHER_IS_BETTER = ("psnr", "ssim")  # for the others, lower is better


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; no checkpoint was written from the broken state."""

    def __init__(self, message: str, values: dict[str, float] | None = None) -> None:
        super().__init__(message)
        self.values = values or {}


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    total_steps: int
    checkpoint: Path
    interrupted: bool
    collapsed: bool = False


class Trainer:
    def __init__(
        self, config: Config, run_dir: str | Path, new: bool = False, progress: bool = True
    ) -> None:
        self.run = RunDir(run_dir)
        self.run_dir = self.run.path
        self.show_progress = progress
        # Whatever is wrong with the settings or the data fails here, before the run
        # directory is touched: a bad invocation writes nothing.
        self._load_data(config)
        if not new and ckpt.find_latest_checkpoint(self.run_dir) is not None:
            check_resumable(self.run_dir, self.config)
        self._check_eval_weights()
        # Under torchrun: this rank's context (its device, the process group); else one process.
        self.dist = Distributed.from_env(resolve_device(self.config.train.device))
        self.device = self.dist.device
        self._check_world_size()
        self._build_parts()
        created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # One run, one writer: refuses while another trains here. Rank 0 writes for all ranks.
        self.lock = self.run.lock() if self.dist.is_main else NoLock()
        try:
            self._setup(new)
        except BaseException:
            self.lock.release()
            if created and self.dist.is_main:  # e.g. train.init_from names no run
                shutil.rmtree(self.run_dir, ignore_errors=True)
            raise

    def _setup(self, new: bool) -> None:
        config = self.config
        main = self.dist.is_main
        if main:
            if new:
                self.run.clear()
            ckpt.remove_unfinished(self.run_dir)
            self.run.remove_stale_temporaries()
        self.log = RunLog(self.run_dir) if main else quiet
        if self.lock.took_over:
            self.log(self.lock.took_over)
        self.dist.barrier()  # the others look for a checkpoint once rank 0 has tidied up
        resume_from = ckpt.find_latest_checkpoint(self.run_dir)
        self.step = 0
        self.best_metric: float | None = None  # best eval_metric so far (psnr/ssim: highest)
        self.last_eval: tuple[int, float] | None = None  # (step, value) of the newest eval
        self.elapsed = 0.0
        t = config.train
        # A record, not training state: saved in state.json, never read by a random stream.
        self.energy = EnergyMeter(t.energy_country, t.carbon_intensity, t.price_per_kwh,
                                  enabled=t.energy)  # fmt: skip
        if resume_from is not None:
            self._restore()
        elif config.train.init_from:
            self._init_from(config.train.init_from)
        self.plan = self.schedule.begin_step(self.step, self._growing_networks())
        if main:
            with self._writing("config.yaml and classes.json"):
                self.run.write_config(config)
                self.run.write_class_names(self.class_names)
        self.metrics = self._open_metrics(trackers=True)

    def _open_metrics(self, trackers: bool = False) -> MetricsLog | NoMetrics:
        """metrics.jsonl (and TensorBoard, and with `trackers` the experiment trackers),
        cut back to this step; only rank 0 writes them."""
        t = self.config.train
        if not self.dist.is_main:
            return NoMetrics()
        if not trackers:
            return MetricsLog(self.run_dir, self.step, t.tensorboard)
        from ganvas.experiments.trackers import build_trackers

        tensorboard = t.tensorboard or "tensorboard" in t.trackers
        return MetricsLog(self.run_dir, self.step, tensorboard,
                          sinks=build_trackers(self.config, self.run_dir))  # fmt: skip

    def _check_world_size(self) -> None:
        """Under several ranks the configured batch is the global one: it must split evenly."""
        if not self.dist.active:
            return
        sizes = [self.config.train.batch_size]
        if self.family.grows:
            sizes += list(self.config.progressive.batch_sizes)
        check_batch_divides(sizes, self.dist.world_size)

    # --- Building --------------------------------------------------------------------------

    def _load_data(self, config: Config) -> None:
        """The training images, and the model's shape resolved from them."""
        if not config.data.path:
            raise ConfigError("no dataset given: pass --data DATASET_DIR (or set data.path)")
        self.dataset = load_dataset(config.data.path, verify=True)
        self.family = get_family(config.model.family)
        self.indices, self.labels, self.class_names = select_training_images(
            self.dataset, config.data
        )
        num_classes = len(self.class_names) if self.family.conditional else 0
        self.config = resolve_model_shape(config, self.dataset, num_classes)
        self.images_per_epoch = len(self.indices)

    def _build_parts(self) -> None:
        """Networks, schedule, feed, D-input pipeline, objective, optimizers, monitors."""
        config, t = self.config, self.config.train
        torch.manual_seed(t.seed)  # the initial weights are a function of train.seed
        self.G, self.D = (to_memory_format(m.to(self.device), t.channels_last)
                          for m in build_models(config.model))  # fmt: skip
        if t.sync_bn:
            self.G, self.D = (convert_sync_batchnorm(m, self.dist) for m in (self.G, self.D))
        for net in (self.G, self.D):  # the same seed made them alike; rank 0's, to be sure
            self.dist.broadcast_module(net)
        if t.freeze_d:
            freeze_discriminator_blocks(self.D, t.freeze_d, config.model.family)
        self.ema = None
        if t.ema:
            self.ema = WeightAverage(self.G, t.ema_beta, t.ema_kimg, t.ema_rampup)
        self.precision = MixedPrecision(t.precision, self.device)
        if t.compile:
            self._compile_networks()
        self.schedule = build_schedule(config, self.family.grows, self.images_per_epoch)
        self.total_steps = self.schedule.total_steps
        try:
            self.sampler = BatchSampler(
                self.dataset.images[self.indices], self.labels, self.schedule.max_batch_size,
                t.seed, self.device, config.data.hflip, channels_last=t.channels_last,
            )  # fmt: skip
        except ValueError as err:
            raise ConfigError(str(err)) from err
        self.noise = torch.Generator(self.device).manual_seed(t.seed + 1)
        self.feed = Feed(self.sampler, self.family, config.model, self.noise,
                         self.schedule.view_reals)  # fmt: skip
        self.feed.rank, self.feed.world_size = self.dist.rank, self.dist.world_size
        self.d_input = build_d_input(t, self.noise, self.family.default_augment)
        parts = TrainingParts(config, self.G, self.D, self.d_input, self.feed, self.noise)
        self.objective = build_objective(self.family, parts)
        phases = self.objective.phases()
        self.lazy_ratios = {player: lazy_ratio(phases, player) for player in ("G", "D")}
        self.optimizers = {
            "G": make_optimizer(self.G.parameters(), config, config.optim.lr_g,
                                self.lazy_ratios["G"], self.device),
            "D": make_optimizer(self.D.parameters(), config, config.optim.lr_d,
                                self.lazy_ratios["D"], self.device),
        }  # fmt: skip
        self.fixed_z = latents(t.n_samples, config.model.z_dim, t.seed + 2)
        self.fixed_c = None  # conditional runs: grid rows cycle through the classes
        if self.family.conditional:
            self.fixed_c = torch.arange(t.n_samples) % config.model.num_classes
        self.sample_sheet = None  # image families: fixed held-out inputs, e.g. damaged | G | clean
        if self.family.takes_images:
            self.sample_sheet = self.family.sample_sheet(config, self.dataset, t.n_samples)
        self.rollbacks = Rollbacks()
        self.collapse, self.collapse_warning = None, ""
        if t.collapse_check != "off" and not self.family.takes_images:
            from ganvas.metrics.diversity import CollapseMonitor

            self.collapse = CollapseMonitor(reals=self._monitor_reals())
        # Everything a checkpoint must hold to continue bit for bit, by name.
        self.stateful: dict[str, Any] = {
            "optim_G": self.optimizers["G"],
            "optim_D": self.optimizers["D"],
            "rng": RandomState(self.noise, self.device),
            "sampler": self.sampler,
            "objective": self.objective,
            "d_input": self.d_input,
            "rollbacks": self.rollbacks,
            "precision": self.precision,  # fp16's loss scale; nothing for fp32/bf16
        }
        if self.collapse is not None:
            self.stateful["collapse"] = self.collapse

    def _compile_networks(self) -> None:
        """train.compile: G's and D's forwards through torch.compile, in place (the saved
        keys stay plain; G_ema, copied before, samples uncompiled)."""
        if self.family.grows:
            raise ConfigError(f"train.compile=true: {self.config.model.family} grows, and its "
                              "stage changes every step during a fade-in, so torch.compile "
                              "would recompile each step; set train.compile=false")  # fmt: skip
        check_compile_available()
        compile_forward(self.G)
        compile_forward(self.D)

    def _monitor_reals(self) -> np.ndarray:
        """A seeded spread of training images across the whole set (and all classes)."""
        rng = np.random.default_rng(self.config.train.seed)
        count = min(MONITOR_REALS, len(self.indices))
        chosen = np.sort(rng.choice(len(self.indices), count, replace=False))
        return np.asarray(self.dataset.images[self.indices[chosen]])

    def _check_eval_weights(self) -> None:
        t = self.config.train
        image_metric = t.eval_metric in IMAGE_METRICS
        if t.eval_interval and image_metric != self.family.takes_images:
            wanted = ", ".join(IMAGE_METRICS if self.family.takes_images else LATENT_METRICS)
            raise ConfigError(f"train.eval_metric={t.eval_metric} does not apply to the "
                              f"{self.family.name} family; choose {wanted}")  # fmt: skip
        if not t.eval_interval or image_metric:
            return
        from ganvas.metrics import MetricsError, resolve_dinov2_onnx, resolve_inception_weights

        try:
            if t.eval_metric == "fd_dinov2":  # the DINOv2 network, not the Inception weights
                resolve_dinov2_onnx()
            else:
                resolve_inception_weights(t.eval_weights or None)
        except MetricsError as err:
            raise ConfigError(f"train.eval_interval={t.eval_interval} needs them: {err}") from err

    def _growing_networks(self) -> list[torch.nn.Module]:
        if not self.family.grows:
            return []
        return [net for net in (self.G, self.D, self.G_ema) if net is not None]

    @property
    def G_ema(self) -> torch.nn.Module | None:
        return None if self.ema is None else self.ema.module

    @property
    def images_seen(self) -> int:
        return self.feed.images_drawn

    # --- One step --------------------------------------------------------------------------

    def train_step(self) -> dict[str, torch.Tensor]:
        """Run the phases due at this step; returns their detached statistics."""
        self.plan = self.schedule.begin_step(self.step, self._growing_networks())
        self.feed.batch_size = self.plan.batch_size
        self.d_input.begin_step(self.step)
        self._set_learning_rates(self.plan)
        stats: dict[str, torch.Tensor] = {}
        for phase in self.objective.phases_due(self.step):
            stats.update(self.run_phase(phase))
        for net in (self.G, self.D):  # BatchNorm statistics: rank 0's, as DDP keeps them
            self.dist.broadcast_buffers(net)
        if self.ema is not None:
            self.ema.update(self.G, self.plan.batch_size, self.images_seen)
        return stats

    def run_phase(self, phase: Phase) -> dict[str, torch.Tensor]:
        """Compute the phase's loss, back-propagate it, step its player's optimizer."""
        # G's update needs gradients through D, not for D.
        with frozen(self.D if phase.player == "G" else None):
            with self.precision.autocast():  # train.precision; penalties leave it (speed.py)
                loss, stats = self.objective.loss(phase)
            if phase.interval > 1:
                loss = loss * phase.interval  # lazy regularization
            optimizer = self.optimizers[phase.player]
            optimizer.zero_grad(set_to_none=True)
            self.precision.scale(loss).backward()  # fp16: scaled by the GradScaler
            self.dist.average_gradients(self._player(phase).parameters())  # mean over ranks
            self.precision.step(optimizer)
        self.objective.after_phase(phase)
        return stats

    def _player(self, phase: Phase) -> torch.nn.Module:
        return self.G if phase.player == "G" else self.D

    def _set_learning_rates(self, plan: StepPlan) -> None:
        factor = lr_factor(self.config.optim, self.step, self.total_steps, len(self.sampler))
        for player, base in (("G", plan.lr_g), ("D", plan.lr_d)):
            for group in self.optimizers[player].param_groups:
                group["lr"] = base * factor * self.lazy_ratios[player] * self.rollbacks.lr_scale

    # --- The loop ---------------------------------------------------------------------------

    def fit(self, should_stop: Callable[[int], bool] | None = None) -> TrainResult:
        """Train until the last step (or until `should_stop(step)` or Ctrl-C), then checkpoint.

        A NaN/inf loss or a collapse stop rolls back to the last good checkpoint with lower
        learning rates (`train.on_diverge=rollback`, at most `train.max_rollbacks` times).

        Raises:
            TrainingDiverged: a loss turned NaN/inf (and no rollback is left); the last good
                checkpoint stays `latest`.
            DiskFullError: the disk filled up; the newest complete checkpoint is intact.
        """
        try:
            with self._writing("the run's outputs"):
                return self._fit(should_stop)
        finally:
            self.lock.release()

    def _fit(self, should_stop: Callable[[int], bool] | None) -> TrainResult:
        t = self.config.train
        if self.step == 0 and self.dist.is_main:
            with self._writing("samples/reals.png"):
                self._save_reals()
        verb = "resuming at" if self.step else "starting at"
        where = str(self.device)
        if self.dist.active:
            where = (
                f"{self.dist.world_size} ranks ({self.device.type}), "
                f"{self.plan.batch_size // self.dist.world_size} images each"
            )
        self.log(f"{verb} step {self.step}/{self.total_steps} on {where} "
                 f"({self.images_per_epoch} training images, batch {self.plan.batch_size}) "
                 f"→ {self.run_dir}")  # fmt: skip
        self.window = Window(self.images_seen)
        last_saved = self.step if ckpt.find_latest_checkpoint(self.run_dir) else -1
        interrupted, collapsed = threading.Event(), False
        progress = self.show_progress and self.dist.is_main
        with StopOnSignal(interrupted, self.log), make_progress_bar(progress) as bar:
            task = bar.add_task("train", total=self.total_steps, completed=self.step, speed="",
                                losses="")  # fmt: skip
            while self.step < self.total_steps:
                try:
                    self.window.add(self.train_step())
                    self.step += 1
                    bar.update(task, advance=1, description=self.plan.label or "train")
                    at_end = self.step == self.total_steps
                    if self.step % t.log_interval == 0 or at_end:
                        record = self._log_window()
                        losses = " ".join(f"{name} {record[key]:.3f}" for name, key in
                                          (("D", "loss_d"), ("G", "loss_g")) if key in record)  # fmt: skip
                        bar.update(task, speed=f"{record['img_per_s']:.0f} img/s", losses=losses)
                    resolution = self.schedule.finished_stage(self.step)
                    if resolution is not None:
                        self._on_stage_done(resolution)
                    if self.step % t.sample_interval == 0 or at_end:
                        self.save_samples()
                    if self.step % t.sample_interval == 0:  # on its own cadence, so resumes agree
                        collapsed = self.dist.broadcast_flag(self.dist.is_main and
                                                             self._collapsed())  # fmt: skip
                        if collapsed and self._roll_back(
                            f"the generator collapsed ({self.collapse_warning})"
                        ):
                            collapsed, last_saved = False, self.step
                            bar.update(task, completed=self.step)
                            continue
                    if t.eval_interval and (self.step % t.eval_interval == 0 or at_end):
                        last_saved = self._evaluate(last_saved)
                    if self.step % t.checkpoint_interval == 0:
                        self.save_checkpoint()
                        last_saved = self.step
                except TrainingDiverged as err:
                    if not self._roll_back(f"a loss became NaN or infinite ({err.values})"):
                        self.metrics.close()
                        raise
                    last_saved = self.step
                    bar.update(task, completed=self.step)
                    continue
                stop = should_stop is not None and should_stop(self.step)
                # Every rank stops at the same step, or one would wait for the others forever.
                if self.dist.any(stop or collapsed or interrupted.is_set()):
                    break
        self.elapsed += self.window.close()
        if self.step != last_saved:
            self.save_checkpoint()
        finished = self.step >= self.total_steps
        self.metrics.close(ckpt.find_latest_checkpoint(self.run_dir) if finished else None)
        return self._finish(self.dist.any(interrupted.is_set()), collapsed)

    def _roll_back(self, reason: str) -> bool:
        """Reload the newest checkpoint (step 0 if none) with the learning rates times
        `train.rollback_lr_factor`, and carry on; False when rollbacks are off or used up.

        The rolled-back steps are forgotten (their metrics lines, grids and TensorBoard
        events), the checkpoint is saved again with the lowered rates (a resume keeps them),
        and an `"event": "rollback"` record and a log line say what happened."""
        t = self.config.train
        if t.on_diverge != "rollback" or self.rollbacks.count >= t.max_rollbacks:
            return False
        diverged_at, count = self.step, self.rollbacks.count + 1
        lr_scale = self.rollbacks.lr_scale * t.rollback_lr_factor
        self.metrics.close()
        self._build_parts()
        self.step, self.best_metric, self.elapsed = 0, None, 0.0
        if ckpt.find_latest_checkpoint(self.run_dir) is not None:
            self._restore()
        self.rollbacks.count, self.rollbacks.lr_scale = count, lr_scale
        self.plan = self.schedule.begin_step(self.step, self._growing_networks())
        self.metrics = self._open_metrics()
        self.save_checkpoint()
        record = {"step": self.step, "event": "rollback", "diverged_at": diverged_at,
                  "reason": reason, "rollback": count, "max_rollbacks": t.max_rollbacks,
                  "lr_scale": lr_scale}  # fmt: skip
        with self._writing("metrics.jsonl"):
            self.metrics.write(record)
        self.log(f"[yellow]rollback {count}/{t.max_rollbacks}: {reason} at step {diverged_at}; "
                 f"back to the checkpoint of step {self.step} with the learning rates × "
                 f"{lr_scale:g} (train.on_diverge=rollback)[/]")  # fmt: skip
        self.window = Window(self.images_seen)
        return True

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """A full disk while writing `what` becomes a DiskFullError naming the newest
        complete checkpoint."""
        try:
            yield
        except OSError as err:
            if not is_disk_full(err):
                raise
            raise DiskFullError(ckpt.disk_full_message(what, self.run_dir, err)) from err

    def _finish(self, interrupted: bool, collapsed: bool) -> TrainResult:
        path = ckpt.find_latest_checkpoint(self.run_dir)
        where = f"step {self.step}/{self.total_steps}; checkpoint {path}"
        if self.energy.active:
            self.log(f"energy: {format_energy(self.energy.reading())} "
                     f"(codecarbon, {self.energy.method})")  # fmt: skip
        if self.step >= self.total_steps:
            if self.dist.is_main and make_progress_gif(self.run.samples_dir, self.run.progress_gif):
                self.log(f"wrote {self.run.progress_gif}")
            self.log(f"finished at {where}")
        elif collapsed:
            self.log(f"stopped at {where}. That checkpoint holds the collapsed generator: start "
                     "over with --new (e.g. with lower learning rates or another recipe), or "
                     "continue it anyway with --set train.collapse_check=warn")  # fmt: skip
        else:
            self.log(f"stopped at {where}; run the same command again to resume")
        # No rank leaves while rank 0 still writes: a rank that tears its process group down
        # while the others still use it can abort at exit (gloo, SIGABRT).
        self.dist.barrier()
        return TrainResult(self.run_dir, self.step, self.total_steps, path, interrupted,
                           collapsed)  # fmt: skip

    def _log_window(self) -> dict[str, Any]:
        values, images, seconds = self.window.take(self.images_seen)
        values = self.dist.mean_values(values)  # over the global batch: the same on all ranks
        self.elapsed += seconds
        self._check_finite(values)
        record = {
            "step": self.step,
            "kimg": round(self.images_seen / 1000, 3),
            "epoch": round(self.images_seen / self.images_per_epoch, 3),
            **{k: round(v, 5) for k, v in values.items()},
            **self.d_input.log_values(),
            "lr_g": self.optimizers["G"].param_groups[0]["lr"],
            "img_per_s": round(images / max(seconds, 1e-9), 1),
            "time_s": round(self.elapsed, 2),
        }
        if self.energy.active:  # totals over the whole run, resumes included
            reading = self.energy.reading(fresh=False)
            record["energy_kwh"] = float(f"{reading['energy_kwh']:.6g}")
            record["co2e_kg"] = float(f"{reading['co2e_kg']:.6g}")
        with self._writing("metrics.jsonl"):
            self.metrics.write(record)
        return record

    def _check_finite(self, values: dict[str, float] | None = None) -> None:
        """Raise TrainingDiverged if a statistic (of the window so far, by default) is
        NaN/inf: checked on every metrics line and before every checkpoint."""
        if values is None:
            values = {k: float(total) / count for k, (total, count) in self.window.sums.items()}
            values = self.dist.mean_values(values)
        if not all(math.isfinite(v) for v in values.values()):
            raise TrainingDiverged(
                f"training diverged before step {self.step}: {values}. The last good checkpoint "
                f"is still {ckpt.find_latest_checkpoint(self.run_dir)}; lower the learning rates "
                "or change the recipe, then resume or start over with --new.",
                values,
            )

    def _on_stage_done(self, resolution: int) -> None:
        """A growing run reached `resolution`: record how long it took (seeds/000's key
        figure was the time until 128×128) and save a sample grid."""
        elapsed = self.elapsed + self.window.seconds()
        kimg = round(self.images_seen / 1000, 3)
        self.metrics.write({"step": self.step, "event": "stage_done", "resolution": resolution,
                            "time_s": round(elapsed, 2), "kimg": kimg})  # fmt: skip
        self.log(f"reached {resolution}×{resolution} at step {self.step} after {elapsed:.0f} s "
                 f"({kimg:.1f} kimg)")  # fmt: skip
        self.save_samples()

    def _collapsed(self) -> bool:
        """Mode-collapse check on the fixed-noise grid; True when the run should stop."""
        if self.collapse is None:
            return False
        warning = self.collapse.update(to_uint8(self.sample_fixed()))
        if warning is None:
            return False
        self.collapse_warning = warning
        self.metrics.write({"step": self.step, "event": "collapse", "message": warning})
        if self.config.train.collapse_check == "stop":
            self.log(f"[red]stopping: {warning}[/] (train.collapse_check=stop)")
            return True
        self.log(f"[yellow]warning: {warning}[/]")
        return False

    def _evaluate(self, last_saved: int) -> int:
        """Score G (G_ema if kept) with the eval metric; a new best is checkpointed and kept.
        Returns the step of the newest checkpoint."""
        from ganvas.metrics import evaluate

        t = self.config.train

        def generate(n: int, seed: int) -> torch.Tensor:
            """n images [N, C, H, W] uint8 from G (G_ema if kept) in inference mode."""
            z = latents(n, self.config.model.z_dim, seed)
            c = torch.arange(n) % self.config.model.num_classes if self.family.conditional else None
            return to_uint8(run_generator(pick_generator(self.G, self.G_ema), z, c))

        if not self.dist.is_main:  # rank 0 scores; the others save with it when it is a best
            if self.dist.broadcast_flag(False) and last_saved != self.step:
                self.save_checkpoint()
                last_saved = self.step
            return last_saved
        if self.family.takes_images:
            G = pick_generator(self.G, self.G_ema)
            scores = self.family.validate(G, self.config, self.dataset, t.eval_split, t.eval_n)
            return self._record_eval(t.eval_metric, scores, last_saved, extra=scores)
        key = {"fid": "fid", "kid": "kid_mean", "fd_dinov2": "fd_dinov2"}[t.eval_metric]
        scores = evaluate(generate, self.dataset, metrics=(t.eval_metric,), n=t.eval_n,
                          split=t.eval_split, weights=t.eval_weights or None,
                          device=str(self.device), verbose=False,
                          generator_info={"weights": "G_ema" if self.G_ema is not None else "G",
                                          "step": self.step})  # fmt: skip
        return self._record_eval(key, scores, last_saved, {"protocol": scores["protocol"]})

    def _record_eval(self, key: str, scores: dict[str, Any], last_saved: int,
                     extra: dict[str, Any]) -> int:  # fmt: skip
        """Log the score `key` (and `extra`); a new best is checkpointed and marked."""
        value = float(scores[key])
        self.last_eval = (self.step, value)
        record = {"step": self.step, "event": "eval", **extra, key: value}
        if self.best_metric is None:
            better = True
        elif key in HIGHER_IS_BETTER:
            better = value > self.best_metric
        else:
            better = value < self.best_metric
        if self.dist.broadcast_flag(better):  # the other ranks save with rank 0
            self.best_metric = value
            if last_saved != self.step:
                self.save_checkpoint()
                last_saved = self.step
            ckpt.mark_best(self.run_dir, self.step)
            record["best"] = True
        self.metrics.write(record)
        best = " (best so far)" if record.get("best") else ""
        self.log(f"step {self.step}: {key} {value:.4g}{best}")
        return last_saved

    # --- Outputs ----------------------------------------------------------------------------

    def sample_fixed(self) -> torch.Tensor:
        """Images [N, C, H, W] in [-1, 1] from the fixed noise, by G_ema if kept (eval mode);
        for image families their sample sheet (fixed held-out inputs)."""
        if self.sample_sheet is not None:
            return self.sample_sheet(pick_generator(self.G, self.G_ema))
        return run_generator(pick_generator(self.G, self.G_ema), self.fixed_z, self.fixed_c)

    def save_samples(self) -> Path:
        path = self.run.fakes_grid(self.step)
        if not self.dist.is_main:
            return path
        with self._writing(f"samples/{path.name}"):
            grid = save_grid(to_uint8_nhwc(self.sample_fixed()), path)
            self.metrics.add_image("fakes", grid, self.step)
        return path

    def _save_reals(self) -> None:
        images = self.sampler.images
        spread = torch.linspace(0, len(images) - 1, min(self.config.train.n_samples, len(images)))
        reals = images[spread.long().to(images.device)].cpu().numpy()  # across the whole set
        save_grid(reals, self.run.reals_grid)

    def save_checkpoint(self) -> Path:
        """Rank 0 writes the checkpoint (every rank's state is the same); the others wait
        until it is complete, so that a crash after this leaves it for every rank to resume."""
        self._check_finite()  # never a checkpoint of NaN weights
        training_state = collect_state(self.stateful)  # on every rank: parts may all-reduce
        if not self.dist.is_main:
            self.dist.barrier()
            return ckpt.checkpoints_dir(self.run_dir) / str(self.step)
        with self._writing(f"TensorBoard events before checkpoint {self.step}"):
            self.metrics.flush()  # events up to here reach the disk before the checkpoint does
        weights = {"G": self.G.state_dict(), "D": self.D.state_dict()}
        if self.G_ema is not None:
            weights["G_ema"] = self.G_ema.state_dict()
        state = {
            "images_seen": self.images_seen,
            "elapsed_s": round(self.elapsed, 3),
            "total_steps": self.total_steps,
            "best_metric": self.best_metric,
            "resolution": self.plan.resolution,
            "alpha": self.plan.alpha,
            "ganvas_version": __version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if self.dist.active:
            state["world_size"] = self.dist.world_size
        if self.energy.active:
            state["energy"] = self.energy.state_dict()
        path = ckpt.save_checkpoint(self.run_dir, self.step, weights, training_state, state,
                                    keep=self.config.train.keep_checkpoints)  # fmt: skip
        self.dist.barrier()
        return path

    def _load_weights(self, saved: ckpt.Checkpoint) -> None:
        self.G.load_state_dict(saved.weights["G"])
        self.D.load_state_dict(saved.weights["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(saved.weights.get("G_ema", saved.weights["G"]))

    def _restore(self) -> None:
        """Continue from the newest checkpoint that loads (a damaged one is set aside by
        rank 0 before the other ranks look: all resume from the same one)."""
        if not self.dist.is_main:
            self.dist.barrier()
        saved = ckpt.load_newest_checkpoint(self.run_dir, device=self.device, warn=self.log,
                                            set_aside=self.dist.is_main)  # fmt: skip
        if self.dist.is_main:
            self.dist.barrier()
        path = saved.path
        saved_world = int(saved.state.get("world_size", 1))
        if saved_world != self.dist.world_size:
            self.log(f"{path} was written by {saved_world} rank(s), this run has "
                     f"{self.dist.world_size}: the batch is re-sharded over them, so this "
                     "resume is not bit-exact")  # fmt: skip
        self._load_weights(saved)
        missing = restore_state(self.stateful, saved.training_state)
        if missing:
            self.log(f"{path} has no saved state for {', '.join(missing)} (written by an older "
                     "ganvas): those start fresh, so this resume is not bit-exact")  # fmt: skip
        self.step = saved.step
        self.feed.images_drawn = int(saved.state.get("images_seen", 0))
        self.best_metric = saved.state.get("best_metric")
        self.elapsed = float(saved.state.get("elapsed_s", 0.0))
        self.energy.load_state_dict(saved.state.get("energy", {}))

    def _init_from(self, run: str) -> None:
        """Fine-tuning: start from another run's newest weights (fresh optimizers, step 0)."""
        source = ckpt.resolve_checkpoint(run)
        try:
            self._load_weights(ckpt.load_checkpoint(source, device=self.device))
        except RuntimeError as err:
            raise ConfigError(
                f"train.init_from={run}: its networks do not fit this config's "
                f"(same family and model settings needed): {str(err).splitlines()[0]}"
            ) from err
        self.log(f"initialised from {source}")


def quiet(message: str) -> None:
    """The log of ranks other than 0: rank 0 speaks for the run."""


class NoLock:
    """The run lock of ranks other than 0 (rank 0 holds the real one for the whole job)."""

    took_over = ""

    def release(self) -> None:
        pass


class NoMetrics:
    """metrics.jsonl, TensorBoard and trackers as ranks other than 0 see them: not theirs."""

    def write(self, record: dict[str, Any]) -> None:
        pass

    def add_image(self, tag: str, grid: np.ndarray, step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self, checkpoint: Path | None = None) -> None:
        pass


@contextmanager
def frozen(module: torch.nn.Module | None) -> Iterator[None]:
    """No gradients for `module`'s trainable parameters inside; parts that were frozen
    already (a pretrained feature network) stay frozen after."""
    trainable = [] if module is None else [p for p in module.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


class Window:
    """Statistics summed over the steps between two metrics lines (on the device: no sync
    per step), with the time and the images they took."""

    def __init__(self, images_seen: int) -> None:
        self.sums: dict[str, tuple[torch.Tensor, int]] = {}
        self.start, self.images_at_start = time.perf_counter(), images_seen

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        for key, value in stats.items():
            total, count = self.sums.get(key, (0, 0))
            if isinstance(value, torch.Tensor):
                value = value.float()  # a bf16/fp16 statistic is summed in fp32
            self.sums[key] = (total + value, count + 1)

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def take(self, images_seen: int) -> tuple[dict[str, float], int, float]:
        """(mean of each statistic, images, seconds) since the last take; starts a new one."""
        values = {k: float(total) / count for k, (total, count) in self.sums.items()}
        result = values, images_seen - self.images_at_start, self.seconds()
        self.__init__(images_seen)
        return result

    def close(self) -> float:
        """Seconds not yet counted by a take (0 right after one)."""
        return self.seconds() if self.sums else 0.0


def train(
    config: Config | None,
    run_dir: str | Path,
    new: bool = False,
    should_stop: Callable[[int], bool] | None = None,
    progress: bool = True,
    overrides: list[str] | dict[str, Any] | None = None,
) -> TrainResult:
    """Train (or resume) a run in `run_dir`. See `Trainer`.

    Args:
        config: a validated config (`ganvas.load_config(...)`); `data.path` must be set.
            None: resume the run in `run_dir` with its own saved settings.
        run_dir: where config.yaml, metrics, samples and checkpoints go. If it holds a
            checkpoint, training resumes from it unless `new` is True.
        new: delete this run's previous outputs and start from step 0.
        should_stop: called after every step with the step number; True stops (and saves).
        progress: show a progress bar on stderr.
        overrides: with `config` None, settings applied on top of the saved ones:
            ['train.steps=5000'] or {'train.steps': 5000}. (With a config, put them in
            `ganvas.load_config(..., overrides=...)`.)

    Raises:
        ConfigError: bad settings, a missing dataset, or a resume with changed settings.
        TrainingDiverged: a loss became NaN/inf.
    """
    config = resolve_run_config(run_dir, config, overrides, new)
    try:
        return Trainer(config, run_dir, new=new, progress=progress).fit(should_stop=should_stop)
    except OSError as err:  # a full disk anywhere else (config.yaml, the log, the lock)
        if not is_disk_full(err):
            raise
        raise DiskFullError(ckpt.disk_full_message("the run's files", run_dir, err)) from err
