"""The training loop: alternate D and G updates, and report, sample and checkpoint on time.

    trainer = Trainer(config, "runs/a")   # builds everything; resumes if runs/a has a checkpoint
    trainer.fit()                          # trains to train.steps, writes the final checkpoint

Families enter only through the model registry, objectives only through `ganvas.losses`.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ganvas import __version__
from ganvas.config import (
    Config,
    ConfigError,
    scheduled_value,
)
from ganvas.data.loader import BatchSampler
from ganvas.data.store import load_dataset
from ganvas.io import write_json_atomic, write_text_atomic
from ganvas.losses import (
    adversarial_logits,
    build_loss,
    clip_weights,
    drift_penalty,
    gradient_penalty,
    orthogonal_regularization,
    zero_centred_penalty,
)
from ganvas.models.registry import build_models, get_family
from ganvas.training import checkpoint as ckpt
from ganvas.training.monitors import (
    MetricsLog,
    RunLog,
    make_progress_bar,
    make_progress_gif,
    save_grid,
    tensor_to_uint8,
)
from ganvas.training.progressive import ProgressiveSchedule, reals_at
from ganvas.training.setup import (
    StopOnSignal,
    check_resumable,
    clear_run,
    make_optimizer,
    resolve_device,
    resolve_model_shape,
    select_training_images,
)
from ganvas.training.tricks import ReplayBuffer, d_targets, instance_noise_std, lr_factor


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; no checkpoint was written from the broken state."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    total_steps: int
    checkpoint: Path
    interrupted: bool


class Trainer:
    def __init__(
        self, config: Config, run_dir: str | Path, new: bool = False, progress: bool = True
    ) -> None:
        self.run_dir = Path(run_dir)
        self.show_progress = progress
        if new:
            clear_run(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.remove_unfinished(self.run_dir)
        self.log = RunLog(self.run_dir)

        # Load the dataset and fill in what the model takes from it.
        if not config.data.path:
            raise ConfigError("no dataset given: pass --data DATASET_DIR (or set data.path)")
        dataset = load_dataset(config.data.path)
        self.conditional = get_family(config.model.family).conditional
        indices, labels, self.class_names = select_training_images(dataset, config.data)
        self.config = config = resolve_model_shape(
            config, dataset, len(self.class_names) if self.conditional else 0
        )
        resume_from = ckpt.find_latest_checkpoint(self.run_dir)
        if resume_from is not None:
            check_resumable(self.run_dir, config)
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
        lc = config.loss
        self.smoothing = (
            lc.real_label != (1.0, 1.0) or lc.fake_label != (0.0, 0.0) or lc.flip_prob > 0
        )
        self.replay = ReplayBuffer(t.replay_size) if t.replay_size else None

        largest_batch = t.batch_size
        if hasattr(self.G, "set_stage"):
            largest_batch = max(config.progressive.batch_sizes)
        try:
            self.sampler = BatchSampler(
                dataset.images[indices],
                labels,
                largest_batch,
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
        self.schedule = None  # families that grow (ProGAN) follow a progressive schedule
        if hasattr(self.G, "set_stage"):
            self.schedule = ProgressiveSchedule.build(
                config.progressive, config.model.start_resolution, config.model.resolution,
                len(indices), t.d_steps,
            )  # fmt: skip
            self.total_steps = self.schedule.total_steps
        self.noise = torch.Generator(self.device).manual_seed(t.seed + 1)
        fixed = torch.Generator().manual_seed(t.seed + 2)
        self.fixed_z = torch.randn(t.n_samples, config.model.z_dim, generator=fixed).to(self.device)
        self.fixed_c = None  # conditional runs: grid rows cycle through the classes
        if self.conditional:
            self.fixed_c = torch.arange(t.n_samples, device=self.device) % config.model.num_classes

        self.step = 0
        self.best_metric: float | None = None  # lowest eval_metric so far
        self.images_seen = 0
        self.elapsed = 0.0
        if resume_from is not None:
            self._restore(resume_from)
        elif t.init_from:
            self._init_from(t.init_from)
        self._set_stage()
        write_text_atomic(self.run_dir / "config.yaml", config.to_yaml())
        write_json_atomic(self.run_dir / "classes.json", self.class_names)
        self.metrics = MetricsLog(self.run_dir, self.step, t.tensorboard)
        self.dataset = dataset
        self.collapse = None
        if t.collapse_check != "off":
            from ganvas.metrics.diversity import CollapseMonitor

            self.collapse = CollapseMonitor(reals=self.sampler.images[:256].cpu().numpy())
        if t.eval_interval:
            from ganvas.metrics import MetricsError, resolve_inception_weights

            try:
                resolve_inception_weights(t.eval_weights or None)
            except MetricsError as err:
                raise ConfigError(
                    f"train.eval_interval={t.eval_interval} needs them: {err}"
                ) from err

    # --- One step --------------------------------------------------------------------------

    def train_step(self) -> dict[str, torch.Tensor]:
        """d_steps discriminator updates, then one generator update. Returns detached stats."""
        self._set_stage()
        self._apply_lr_schedule()
        d_steps = scheduled_value(self.config.train.d_steps_schedule, self.step,
                                  self.config.train.d_steps)  # fmt: skip
        for i in range(d_steps):
            stats, fake, c_fake = self.discriminator_step(
                keep_fake_graph=i == d_steps - 1, first=i == 0
            )
        stats.update(self.generator_step(fake, c_fake))
        self.images_seen += self.batch_size * d_steps
        return stats

    def discriminator_step(
        self, keep_fake_graph: bool = False, first: bool = True
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """One D update on a real batch and a fresh fake batch.

        Returns (stats, fakes, the fakes' class labels or None). With `keep_fake_graph` the
        fakes keep their graph so the G update can reuse this batch (as the DCGAN reference
        does) instead of running G a second time. `first` marks the first D update of a step,
        where the lazy R1/R2 penalties may apply.
        """
        lc = self.config.loss
        real, c_real = self.sampler.next(self.batch_size)
        if self.schedule is not None:
            real = reals_at(real, self.resolution, self.alpha)
        c_real = c_real if self.conditional else None
        z, c_fake = self._latents(self.batch_size)
        with torch.set_grad_enabled(keep_fake_graph):
            fake = self.G(z, c_fake)
        fake_d, c_fake_d = self._with_replay(fake.detach(), c_fake)
        real_out = self.D(self._instance_noise(real), c_real)
        fake_out = self.D(self._instance_noise(fake_d), c_fake_d)
        real_logits, fake_logits = adversarial_logits(real_out), adversarial_logits(fake_out)
        if self.smoothing:
            targets = d_targets(len(real), lc.real_label, lc.fake_label, lc.flip_prob,
                                self.noise, self.device)  # fmt: skip
            d_loss = self.loss.d_loss(real_logits, fake_logits, *targets)
        else:
            d_loss = self.loss.d_loss(real_logits, fake_logits)
        stats = {
            "score_real": real_logits.detach().mean(),
            "score_fake": fake_logits.detach().mean(),
        }
        if self.loss.probabilistic:
            stats["d_real"] = torch.sigmoid(real_logits.detach()).mean()
            stats["d_fake"] = torch.sigmoid(fake_logits.detach()).mean()
        if isinstance(real_out, tuple):  # auxiliary classifier (ACGAN)
            # By default D's class head learns from real images only: trained on fakes too,
            # D and G can agree on any labelling of the fakes, and the classes drift away
            # from what they look like in the data (seen on our colour test set).
            aux = F.cross_entropy(real_out[1], c_real)
            if lc.aux_fakes_in_d:
                aux = aux + F.cross_entropy(fake_out[1], c_fake_d)
            d_loss = d_loss + lc.aux_weight * aux
            stats["aux_loss_d"] = aux.detach()
            stats["aux_acc_real"] = (real_out[1].argmax(1) == c_real).float().mean()
        if lc.gp_weight:
            gp = gradient_penalty(self.D, real, fake, c_real, generator=self.noise)
            d_loss = d_loss + lc.gp_weight * gp
            stats["gp"] = gp.detach()
        lazy = first and self.step % lc.r_interval == 0
        if lc.r1_weight and lazy:
            r1 = zero_centred_penalty(self.D, real, c_real)
            d_loss = d_loss + 0.5 * lc.r1_weight * lc.r_interval * r1
            stats["r1"] = r1.detach()
        if lc.r2_weight and lazy:
            r2 = zero_centred_penalty(self.D, fake, c_fake)
            d_loss = d_loss + 0.5 * lc.r2_weight * lc.r_interval * r2
            stats["r2"] = r2.detach()
        if lc.drift_weight:
            d_loss = d_loss + lc.drift_weight * drift_penalty(real_logits)
        self.opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_D.step()
        if lc.clip:
            clip_weights(self.D, lc.clip)
        if self.replay is not None:
            self.replay.push(fake.detach(), c_fake)
        stats["loss_d"] = d_loss.detach()
        return stats, fake, c_fake

    def generator_step(
        self, fake: torch.Tensor, c_fake: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """One G update through D's judgement of `fake` (which must carry G's graph)."""
        lc = self.config.loss
        self.D.requires_grad_(False)  # G's update needs gradients through D, not for D
        out = self.D(self._instance_noise(fake), c_fake)
        g_loss = self.loss.g_loss(adversarial_logits(out))
        stats = {}
        if isinstance(out, tuple):
            aux = F.cross_entropy(out[1], c_fake)
            g_loss = g_loss + lc.aux_weight * aux
            stats["aux_acc_fake"] = (out[1].argmax(1) == c_fake).float().mean()
        if lc.ortho_weight:
            g_loss = g_loss + lc.ortho_weight * orthogonal_regularization(self.G)
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        self.D.requires_grad_(True)
        if self.G_ema is not None:
            self._update_ema()
        stats["loss_g"] = g_loss.detach()
        return stats

    def _set_stage(self) -> None:
        """Batch size, and for growing families the resolution and fade-in alpha, of this step."""
        self.batch_size = self.config.train.batch_size
        self.resolution, self.alpha = self.config.model.resolution, 1.0
        if self.schedule is None:
            return
        stage, self.alpha = self.schedule.at(self.step)
        self.batch_size, self.resolution = stage.batch_size, stage.resolution
        for net in (self.G, self.D, self.G_ema):
            if net is not None:
                net.set_stage(self.resolution, self.alpha)

    def _init_from(self, run: str) -> None:
        """Fine-tuning: start from another run's newest weights (fresh optimizers, step 0)."""
        source = ckpt.resolve_checkpoint(run)
        saved = ckpt.load_checkpoint(source, device=self.device)
        try:
            self.G.load_state_dict(saved.weights["G"])
            self.D.load_state_dict(saved.weights["D"])
            if self.G_ema is not None:
                self.G_ema.load_state_dict(saved.weights.get("G_ema", saved.weights["G"]))
        except RuntimeError as err:
            raise ConfigError(
                f"train.init_from={run}: its networks do not fit this config's "
                f"(same family and model settings needed): {str(err).splitlines()[0]}"
            ) from err
        self.log(f"initialised from {source}")

    def _instance_noise(self, img: torch.Tensor) -> torch.Tensor:
        """D's view of a batch: with instance noise, img + N(0, std²) (Sønderby et al. 2017)."""
        t = self.config.train
        std = instance_noise_std(t.instance_noise, t.instance_noise_anneal, self.step)
        if std == 0:
            return img
        return img + std * torch.randn(img.shape, generator=self.noise, device=img.device)

    def _with_replay(
        self, fake: torch.Tensor, c_fake: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """On replay steps, the first replay_fraction of the fakes D sees come from the buffer."""
        t = self.config.train
        if self.replay is None or not len(self.replay) or self.step % t.replay_every:
            return fake, c_fake
        k = max(1, round(t.replay_fraction * len(fake)))
        old, old_c = self.replay.sample(k, self.noise)
        mixed_c = None if c_fake is None else torch.cat([old_c, c_fake[k:]])
        return torch.cat([old, fake[k:]]), mixed_c

    def _latents(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Noise (and, for conditional families, uniformly drawn class labels) for n fakes."""
        z = torch.randn(n, self.config.model.z_dim, generator=self.noise, device=self.device)
        if not self.conditional:
            return z, None
        c = torch.randint(self.config.model.num_classes, (n,), generator=self.noise,
                          device=self.device)  # fmt: skip
        return z, c

    def _apply_lr_schedule(self) -> None:
        o = self.config.optim
        factor = lr_factor(o, self.step, self.total_steps, len(self.sampler))
        base_g, base_d = o.lr_g, o.lr_d
        lrs = self.config.progressive.lrs
        if self.schedule is not None and lrs:
            index = self.schedule.stages.index(self.schedule.stage_at(self.step))
            base_g = base_d = lrs[min(index, len(lrs) - 1)]
        for optimizer, base in ((self.opt_G, base_g), (self.opt_D, base_d)):
            for group in optimizer.param_groups:
                group["lr"] = base * factor

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
        window: dict[str, tuple[torch.Tensor, int]] = {}
        window_steps, window_start, window_images = 0, time.perf_counter(), self.images_seen
        self._window_start = window_start
        last_saved = self.step if ckpt.find_latest_checkpoint(self.run_dir) else -1
        interrupted = threading.Event()
        with StopOnSignal(interrupted, self.log), make_progress_bar(self.show_progress) as bar:
            task = bar.add_task(
                "train", total=self.total_steps, completed=self.step, speed="", losses=""
            )
            while self.step < self.total_steps:
                stats = self.train_step()
                self.step += 1
                window_steps += 1
                for key, value in stats.items():  # summed on the device: no sync per step
                    total, count = window.get(key, (0, 0))
                    window[key] = (total + value, count + 1)
                bar.advance(task)
                if self.schedule is not None:
                    self._on_progressive_step(bar, task)
                at_end = self.step == self.total_steps
                if self.step % t.log_interval == 0 or at_end:
                    now = time.perf_counter()
                    self.elapsed += now - window_start
                    images = self.images_seen - window_images
                    record = self._log_window(window, images, now - window_start)
                    bar.update(
                        task,
                        speed=f"{record['img_per_s']:.0f} img/s",
                        losses=f"D {record['loss_d']:.3f} G {record['loss_g']:.3f}",
                    )
                    window, window_steps = {}, 0
                    window_start, window_images = time.perf_counter(), self.images_seen
                    self._window_start = window_start
                if self.step % t.sample_interval == 0 or at_end:
                    self.save_samples()
                    if self._collapsed():
                        break
                if t.eval_interval and (self.step % t.eval_interval == 0 or at_end):
                    last_saved = self._evaluate(last_saved)
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

    def _collapsed(self) -> bool:
        """Mode-collapse check on the fixed-noise grid; True when the run should stop."""
        if self.collapse is None:
            return False
        warning = self.collapse.update(tensor_to_uint8(self.sample_fixed()))
        if warning is None:
            return False
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
            G = self.G_ema if self.G_ema is not None else self.G
            was_training = G.training
            G.eval()
            z = torch.randn(
                n, self.config.model.z_dim, generator=torch.Generator().manual_seed(seed)
            )
            c = torch.arange(n) % self.config.model.num_classes if self.conditional else None
            images = []
            with torch.no_grad():
                for start in range(0, n, 256):
                    zc = z[start : start + 256].to(self.device)
                    cc = None if c is None else c[start : start + 256].to(self.device)
                    images.append(tensor_to_uint8(G(zc, cc)))
            G.train(was_training)
            return torch.from_numpy(np.concatenate(images)).permute(0, 3, 1, 2)

        key = "fid" if t.eval_metric == "fid" else "kid_mean"
        scores = evaluate(generate, self.dataset, metrics=(t.eval_metric,), n=t.eval_n,
                          split=t.eval_split, weights=t.eval_weights or None,
                          device=str(self.device), verbose=False)  # fmt: skip
        value = float(scores[key])
        record = {"step": self.step, "event": "eval", key: value}
        if self.best_metric is None or value < self.best_metric:
            self.best_metric = value
            if last_saved != self.step:
                self.save_checkpoint()
                last_saved = self.step
            ckpt.mark_best(self.run_dir, self.step)
            record["best"] = True
        self.metrics.write(record)
        self.log(
            f"step {self.step}: {key} {value:.4g}"
            + (" (best so far)" if record.get("best") else "")
        )
        return last_saved

    def _on_progressive_step(self, bar: Any, task: Any) -> None:
        """Show stage and alpha; at the end of a stage record how long it took to get there
        (seeds/000's key figure was the time until 128×128) and save a sample grid."""
        stage, alpha = self.schedule.at(self.step - 1)
        bar.update(task, description=f"{stage.resolution}px α{alpha:.2f}")
        if self.step == stage.end_step:
            elapsed = self.elapsed + time.perf_counter() - self._window_start
            self.metrics.write({"step": self.step, "event": "stage_done",
                                "resolution": stage.resolution, "time_s": round(elapsed, 2),
                                "kimg": round(self.images_seen / 1000, 3)})  # fmt: skip
            self.log(f"reached {stage.resolution}×{stage.resolution} at step {self.step} "
                     f"after {elapsed:.0f} s ({self.images_seen / 1000:.1f} kimg)")  # fmt: skip
            self.save_samples()

    def _log_window(
        self, window: dict[str, tuple[torch.Tensor, int]], images: int, seconds: float
    ) -> dict:
        values = {k: float(total) / count for k, (total, count) in window.items()}
        if not all(math.isfinite(v) for v in values.values()):
            self.metrics.close()
            raise TrainingDiverged(
                f"training diverged before step {self.step}: {values}. The last good checkpoint "
                f"is still {ckpt.find_latest_checkpoint(self.run_dir)}; lower the learning rates "
                "or change the recipe, then resume or start over with --new."
            )
        record = {
            "step": self.step,
            "kimg": round(self.images_seen / 1000, 3),
            "epoch": round(self.images_seen / self.images_per_epoch, 3),
            **{k: round(v, 5) for k, v in values.items()},
            "lr_g": self.opt_G.param_groups[0]["lr"],
            "img_per_s": round(images / max(seconds, 1e-9), 1),
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
        labels = [None] * len(self.fixed_z.split(256))
        if self.fixed_c is not None:
            labels = self.fixed_c.split(256)
        images = torch.cat([G(z, c) for z, c in zip(self.fixed_z.split(256), labels)])
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
        if self.replay is not None:
            training_state["replay"] = self.replay.state_dict()
        if self.device.type == "cuda":
            training_state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        state = {
            "images_seen": self.images_seen,
            "elapsed_s": round(self.elapsed, 3),
            "total_steps": self.total_steps,
            "best_metric": self.best_metric,
            "resolution": self.resolution,
            "alpha": self.alpha,
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
        if self.replay is not None and "replay" in ts:
            self.replay.load_state_dict(ts["replay"])
        self.step = saved.step
        self.images_seen = int(saved.state.get("images_seen", 0))
        self.best_metric = saved.state.get("best_metric")
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
