"""The training loop: alternate D and G updates, and report, sample and checkpoint on time.

    trainer = Trainer(config, "runs/a")   # builds everything; resumes if runs/a has a checkpoint
    trainer.fit()                          # trains to train.steps, writes the final checkpoint

Families enter only through the model registry, objectives only through `ganvas.losses`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganvas import __version__
from ganvas.config import Config, ConfigError, config_differences, config_from_dict
from ganvas.data.loader import BatchSampler
from ganvas.data.store import load_dataset
from ganvas.io import write_text_atomic
from ganvas.losses import build_loss
from ganvas.models.registry import build_models
from ganvas.training import checkpoint as ckpt
from ganvas.training.monitors import (
    MetricsLog,
    RunLog,
    make_progress_bar,
    make_progress_gif,
    save_grid,
    tensor_to_uint8,
)

# Settings that may change when a run resumes; anything else must match the saved config.
RESUMABLE_KEYS = (
    "description",
    "data.path",
    "train.steps",
    "train.epochs",
    "train.device",
    "train.log_interval",
    "train.sample_interval",
    "train.checkpoint_interval",
    "train.keep_checkpoints",
    "train.tensorboard",
)
RUN_OUTPUTS = (
    "checkpoints",
    "samples",
    "tb",
    "metrics.jsonl",
    "config.yaml",
    "log.txt",
    "progress.gif",
)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; no checkpoint was written from the broken state."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    total_steps: int
    checkpoint: Path
    interrupted: bool


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but no CUDA GPU is available; use cpu or auto")
    return device


def make_optimizer(params: Any, cfg: Config, lr: float) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=o.betas, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=o.betas, weight_decay=o.weight_decay)
    return torch.optim.RMSprop(params, lr=lr, weight_decay=o.weight_decay)


class Trainer:
    def __init__(
        self, config: Config, run_dir: str | Path, new: bool = False, progress: bool = True
    ) -> None:
        self.run_dir = Path(run_dir)
        self.show_progress = progress
        if new:
            _clear_run(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.remove_unfinished(self.run_dir)
        self.log = RunLog(self.run_dir)

        # Load the dataset and fill in what the model takes from it.
        if not config.data.path:
            raise ConfigError("no dataset given: pass --data DATASET_DIR (or set data.path)")
        dataset = load_dataset(config.data.path)
        self.config = config = _resolve_model_shape(config, dataset.resolution, dataset.channels)
        resume_from = ckpt.find_latest_checkpoint(self.run_dir)
        if resume_from is not None:
            _check_resumable(self.run_dir, config)
        t = config.train
        self.device = resolve_device(t.device)

        # Build the players. Seeding first makes the initial weights a function of train.seed.
        torch.manual_seed(t.seed)
        self.G, self.D = (m.to(self.device) for m in build_models(config.model))
        self.G_ema = None
        if t.ema:
            self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_G = make_optimizer(self.G.parameters(), config, config.optim.lr_g)
        self.opt_D = make_optimizer(self.D.parameters(), config, config.optim.lr_d)
        self.loss = build_loss(config.loss.name)

        indices = dataset.split_indices(config.data.split)
        labels = None if dataset.labels is None else dataset.labels[indices]
        try:
            self.sampler = BatchSampler(
                dataset.images[indices],
                labels,
                t.batch_size,
                t.seed,
                self.device,
                config.data.hflip,
            )
        except ValueError as err:
            raise ConfigError(str(err)) from err
        self.images_per_epoch = len(indices)
        self.total_steps = t.steps
        if t.epochs is not None:
            self.total_steps = math.ceil(t.epochs * len(self.sampler) / t.d_steps)
        self.noise = torch.Generator(self.device).manual_seed(t.seed + 1)
        fixed = torch.Generator().manual_seed(t.seed + 2)
        self.fixed_z = torch.randn(t.n_samples, config.model.z_dim, generator=fixed).to(self.device)

        self.step = 0
        self.images_seen = 0
        self.elapsed = 0.0
        if resume_from is not None:
            self._restore(resume_from)
        write_text_atomic(self.run_dir / "config.yaml", config.to_yaml())
        self.metrics = MetricsLog(self.run_dir, self.step, t.tensorboard)

    # --- One step --------------------------------------------------------------------------

    def train_step(self) -> dict[str, torch.Tensor]:
        """d_steps discriminator updates, then one generator update. Returns detached stats."""
        d_steps = self.config.train.d_steps
        for i in range(d_steps):
            stats, fake = self.discriminator_step(keep_fake_graph=i == d_steps - 1)
        stats["loss_g"] = self.generator_step(fake)
        self.images_seen += self.config.train.batch_size * d_steps
        return stats

    def discriminator_step(
        self, keep_fake_graph: bool = False
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One D update on a real batch and a fresh fake batch. Returns (stats, fakes)."""
        real, _ = self.sampler.next()
        z = torch.randn(
            self.config.train.batch_size, self.config.model.z_dim,
            generator=self.noise, device=self.device,
        )  # fmt: skip
        # With keep_fake_graph the fakes keep their graph so the G update can reuse this batch
        # (as the DCGAN reference does) instead of running G a second time.
        with torch.set_grad_enabled(keep_fake_graph):
            fake = self.G(z)
        real_logits = self.D(real)
        fake_logits = self.D(fake.detach())
        d_loss = self.loss.d_loss(real_logits, fake_logits)
        self.opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_D.step()
        stats = {
            "loss_d": d_loss.detach(),
            "d_real": torch.sigmoid(real_logits.detach()).mean(),
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
        }
        return stats, fake

    def generator_step(self, fake: torch.Tensor) -> torch.Tensor:
        """One G update through D's judgement of `fake` (which must carry G's graph)."""
        self.D.requires_grad_(False)  # G's update needs gradients through D, not for D
        g_loss = self.loss.g_loss(self.D(fake))
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        self.D.requires_grad_(True)
        if self.G_ema is not None:
            self._update_ema()
        return g_loss.detach()

    @torch.no_grad()
    def _update_ema(self) -> None:
        beta = self.config.train.ema_beta
        ema_params = list(self.G_ema.parameters())
        torch._foreach_lerp_(ema_params, list(self.G.parameters()), 1.0 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # --- The loop ---------------------------------------------------------------------------

    def fit(self, should_stop: Callable[[int], bool] | None = None) -> TrainResult:
        """Train until train.steps (or until `should_stop(step)` or Ctrl-C), then checkpoint.

        Raises:
            TrainingDiverged: a loss turned NaN/inf; the last good checkpoint stays `latest`.
        """
        t = self.config.train
        if self.step == 0:
            self._save_reals()
        verb = "resuming at" if self.step else "starting at"
        self.log(
            f"{verb} step {self.step}/{self.total_steps} on {self.device} "
            f"({self.images_per_epoch} training images, batch {t.batch_size}) → {self.run_dir}"
        )
        window: dict[str, torch.Tensor] = {}
        window_steps, window_start = 0, time.perf_counter()
        last_saved = self.step if ckpt.find_latest_checkpoint(self.run_dir) else -1
        interrupted = threading.Event()
        with _stop_on_signal(interrupted, self.log), make_progress_bar(self.show_progress) as bar:
            task = bar.add_task(
                "train", total=self.total_steps, completed=self.step, speed="", losses=""
            )
            while self.step < self.total_steps:
                stats = self.train_step()
                self.step += 1
                window_steps += 1
                for key, value in stats.items():
                    window[key] = window.get(key, 0) + value
                bar.advance(task)
                at_end = self.step == self.total_steps
                if self.step % t.log_interval == 0 or at_end:
                    now = time.perf_counter()
                    self.elapsed += now - window_start
                    record = self._log_window(window, window_steps, now - window_start)
                    bar.update(
                        task,
                        speed=f"{record['img_per_s']:.0f} img/s",
                        losses=f"D {record['loss_d']:.3f} G {record['loss_g']:.3f}",
                    )
                    window, window_steps, window_start = {}, 0, time.perf_counter()
                if self.step % t.sample_interval == 0 or at_end:
                    self.save_samples()
                if self.step % t.checkpoint_interval == 0:
                    self.save_checkpoint()
                    last_saved = self.step
                stop = should_stop is not None and should_stop(self.step)
                if stop or interrupted.is_set():
                    break
        if window_steps:
            self.elapsed += time.perf_counter() - window_start
        if self.step != last_saved:
            self.save_checkpoint()
        path = ckpt.find_latest_checkpoint(self.run_dir)
        self.metrics.close()
        done = self.step >= self.total_steps
        if done and make_progress_gif(self.run_dir / "samples", self.run_dir / "progress.gif"):
            self.log(f"wrote {self.run_dir / 'progress.gif'}")
        if done:
            self.log(f"finished at step {self.step}/{self.total_steps}; checkpoint {path}")
        else:
            self.log(f"stopped at step {self.step}/{self.total_steps}; checkpoint {path}; "
                     "run the same command again to resume")  # fmt: skip
        return TrainResult(self.run_dir, self.step, self.total_steps, path, interrupted.is_set())

    def _log_window(self, window: dict[str, torch.Tensor], steps: int, seconds: float) -> dict:
        values = {k: float(v) / steps for k, v in window.items()}
        if not all(math.isfinite(v) for v in values.values()):
            self.metrics.close()
            raise TrainingDiverged(
                f"training diverged before step {self.step}: {values}. The last good checkpoint "
                f"is still {ckpt.find_latest_checkpoint(self.run_dir)}; lower the learning rates "
                "or change the recipe, then resume or start over with --new."
            )
        t = self.config.train
        record = {
            "step": self.step,
            "kimg": round(self.images_seen / 1000, 3),
            "epoch": round(self.images_seen / self.images_per_epoch, 3),
            **{k: round(v, 5) for k, v in values.items()},
            "img_per_s": round(steps * t.batch_size * t.d_steps / max(seconds, 1e-9), 1),
            "time_s": round(self.elapsed, 2),
        }
        self.metrics.write(record)
        return record

    # --- Outputs ----------------------------------------------------------------------------

    @torch.no_grad()
    def sample_fixed(self) -> torch.Tensor:
        """Images from the fixed noise, by G_ema if kept, with BatchNorm in inference mode."""
        G = self.G_ema if self.G_ema is not None else self.G
        was_training = G.training
        G.eval()
        images = torch.cat([G(z) for z in self.fixed_z.split(256)])
        G.train(was_training)
        return images

    def save_samples(self) -> Path:
        path = self.run_dir / "samples" / f"fakes_{self.step:08d}.png"
        grid = save_grid(tensor_to_uint8(self.sample_fixed()), path)
        self.metrics.add_image("fakes", grid, self.step)
        return path

    def _save_reals(self) -> None:
        images = self.sampler.images
        spread = torch.linspace(0, len(images) - 1, min(self.config.train.n_samples, len(images)))
        reals = images[spread.long().to(images.device)].cpu().numpy()  # across the whole set
        save_grid(reals, self.run_dir / "samples" / "reals.png")

    def save_checkpoint(self) -> Path:
        weights = {"G": self.G.state_dict(), "D": self.D.state_dict()}
        if self.G_ema is not None:
            weights["G_ema"] = self.G_ema.state_dict()
        training_state = {
            "optim_G": self.opt_G.state_dict(),
            "optim_D": self.opt_D.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "noise_rng": self.noise.get_state(),
            "sampler": self.sampler.state_dict(),
        }
        if self.device.type == "cuda":
            training_state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        state = {
            "images_seen": self.images_seen,
            "elapsed_s": round(self.elapsed, 3),
            "total_steps": self.total_steps,
            "ganvas_version": __version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        return ckpt.save_checkpoint(
            self.run_dir,
            self.step,
            weights,
            training_state,
            state,
            keep=self.config.train.keep_checkpoints,
        )

    def _restore(self, path: Path) -> None:
        saved = ckpt.load_checkpoint(path, device=self.device)
        self.G.load_state_dict(saved.weights["G"])
        self.D.load_state_dict(saved.weights["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(saved.weights.get("G_ema", saved.weights["G"]))
        ts = saved.training_state
        self.opt_G.load_state_dict(ts["optim_G"])
        self.opt_D.load_state_dict(ts["optim_D"])
        torch.set_rng_state(ts["torch_rng"])
        self.noise.set_state(ts["noise_rng"])
        if "cuda_rng" in ts and self.device.type == "cuda":
            torch.cuda.set_rng_state(ts["cuda_rng"], self.device)
        self.sampler.load_state_dict(ts["sampler"])
        self.step = saved.step
        self.images_seen = int(saved.state.get("images_seen", 0))
        self.elapsed = float(saved.state.get("elapsed_s", 0.0))


def train(
    config: Config,
    run_dir: str | Path,
    new: bool = False,
    should_stop: Callable[[int], bool] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) a run in `run_dir`. See `Trainer`.

    Args:
        config: a validated config (`ganvas.load_config(...)`); `data.path` must be set.
        run_dir: where config.yaml, metrics, samples and checkpoints go. If it holds a
            checkpoint, training resumes from it unless `new` is True.
        new: delete this run's previous outputs and start from step 0.
        should_stop: called after every step with the step number; True stops (and saves).
        progress: show a progress bar on stderr.

    Raises:
        ConfigError: bad settings, a missing dataset, or a resume with changed settings.
        TrainingDiverged: a loss became NaN/inf.
    """
    return Trainer(config, run_dir, new=new, progress=progress).fit(should_stop=should_stop)


# --- Helpers ----------------------------------------------------------------------------------


def _resolve_model_shape(config: Config, resolution: int, channels: int) -> Config:
    m = config.model
    for key, wanted, have in (
        ("resolution", m.resolution, resolution),
        ("channels", m.channels, channels),
    ):
        if wanted is not None and wanted != have:
            raise ConfigError(
                f"model.{key}={wanted} but the dataset {config.data.path} has {key} {have}; "
                f"prepare it again with --{'size' if key == 'resolution' else 'channels'} "
                f"{wanted}, or pass --set model.{key}={have}"
            )
    model = dataclasses.replace(m, resolution=resolution, channels=channels)
    return dataclasses.replace(config, model=model)


def _check_resumable(run_dir: Path, config: Config) -> None:
    saved_file = run_dir / "config.yaml"
    if not saved_file.is_file():
        return
    import yaml

    saved = config_from_dict(yaml.safe_load(saved_file.read_text()))
    changed = {
        k: v for k, v in config_differences(saved, config).items() if k not in RESUMABLE_KEYS
    }
    if changed:
        lines = "; ".join(
            f"{k}: {a!r} → {b!r}" for k, a, b in ((k, *v) for k, v in changed.items())
        )
        raise ConfigError(
            f"{run_dir} holds a run with other settings ({lines}). Resume with the same "
            f"settings, choose another --out, or pass --new to start this run over."
        )


def _clear_run(run_dir: Path) -> None:
    for name in RUN_OUTPUTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


class _stop_on_signal:
    """First Ctrl-C (or SIGTERM, e.g. a scheduler's preemption): finish the current step,
    checkpoint, stop. A second one stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, flag: threading.Event, log: Callable[[str], None]) -> None:
        self.flag, self.log, self.previous = flag, log, None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.flag.is_set():
            raise KeyboardInterrupt
        self.flag.set()
        self.log("interrupted: saving a checkpoint after this step (Ctrl-C again to abort)")

    def __enter__(self) -> _stop_on_signal:
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._handler) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in (self.previous or {}).items():
            signal.signal(sig, handler)
