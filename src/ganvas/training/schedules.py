"""What changes with the step, as pure functions of it: the batch size, the resolution of
growing families, and the learning rates. Nothing here needs saving: a resumed run asks
the same questions for the same steps and gets the same answers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganvas.config import Config, OptimConfig, scheduled_value
from ganvas.training.progressive import ProgressiveSchedule, reals_at
from ganvas.training.speed import optimizer_implementation


@dataclass(frozen=True)
class StepPlan:
    """This step's batch size, image side, fade-in alpha and base learning rates."""

    batch_size: int
    resolution: int
    alpha: float
    lr_g: float
    lr_d: float
    label: str = ""  # shown on the progress bar, e.g. '32px α0.50'


class FixedSchedule:
    """One resolution, one batch size, train.steps steps (or train.epochs passes)."""

    def __init__(self, config: Config, training_images: int) -> None:
        t = config.train
        self.config = config
        self.max_batch_size = t.batch_size
        self.total_steps = t.steps
        if t.epochs is not None:
            self.total_steps = math.ceil(t.epochs * (training_images // t.batch_size) / t.d_steps)

    def begin_step(self, step: int, networks: list[nn.Module]) -> StepPlan:
        c = self.config
        return StepPlan(c.train.batch_size, c.model.resolution, 1.0, c.optim.lr_g, c.optim.lr_d)

    def view_reals(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def finished_stage(self, step: int) -> int | None:
        """The resolution whose stage ended with `step` (growing families), else None."""
        return None


class GrowthSchedule(FixedSchedule):
    """Progressive growing: stages of rising resolution, each with its own batch size (and
    learning rate, with progressive.lrs), the new layers fading in (see progressive.py)."""

    def __init__(self, config: Config, training_images: int) -> None:
        self.config = config
        self.stages = ProgressiveSchedule.build(
            config.progressive, config.model.start_resolution, config.model.resolution,
            training_images, config.train.d_steps,
        )  # fmt: skip
        self.max_batch_size = max(config.progressive.batch_sizes)
        self.total_steps = self.stages.total_steps
        self.resolution, self.alpha = config.model.resolution, 1.0

    def begin_step(self, step: int, networks: list[nn.Module]) -> StepPlan:
        stage, alpha = self.stages.at(step)
        self.resolution, self.alpha = stage.resolution, alpha
        for net in networks:
            net.set_stage(stage.resolution, alpha)
        lr_g, lr_d = self.config.optim.lr_g, self.config.optim.lr_d
        lrs = self.config.progressive.lrs
        if lrs:
            index = self.stages.stages.index(stage)
            lr_g = lr_d = lrs[min(index, len(lrs) - 1)]
        label = f"{stage.resolution}px α{alpha:.2f}"
        return StepPlan(stage.batch_size, stage.resolution, alpha, lr_g, lr_d, label)

    def view_reals(self, images: torch.Tensor) -> torch.Tensor:
        return reals_at(images, self.resolution, self.alpha)

    def finished_stage(self, step: int) -> int | None:
        stage = self.stages.stage_at(step - 1)
        return stage.resolution if step == stage.end_step else None


def build_schedule(config: Config, grows: bool, training_images: int) -> FixedSchedule:
    return (GrowthSchedule if grows else FixedSchedule)(config, training_images)


def lr_factor(optim: OptimConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier of the base learning rates at `step` (0-based): the scheduler's factor times
    the piecewise `lr_schedule` factor.

    - step:   gamma ** (elapsed // step_size)          (PyTorch's StepLR)
    - cosine: from 1 down to min_factor over the run    (CosineAnnealingLR)
    - linear: 1 until decay_start, then down to min_factor at the last step
    `step_size` and `decay_start` count steps, or epochs when schedule_unit is 'epochs'.
    """
    unit = steps_per_epoch if optim.schedule_unit == "epochs" else 1
    factor = 1.0
    if optim.scheduler == "step":
        factor = optim.gamma ** (step // max(1, round(optim.step_size * unit)))
    elif optim.scheduler == "cosine":
        progress = min(step / max(1, total_steps - 1), 1.0)
        factor = optim.min_factor + (1 - optim.min_factor) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )
    elif optim.scheduler == "linear":
        start = round(optim.decay_start * unit)
        if step >= start:
            progress = min((step - start) / max(1, total_steps - 1 - start), 1.0)
            factor = 1.0 - (1.0 - optim.min_factor) * progress
    return factor * scheduled_value(optim.lr_schedule, step, 1.0)


def make_optimizer(
    params: Any,
    config: Config,
    lr: float,
    lazy_ratio: float = 1.0,
    device: torch.device | str = "cpu",
) -> torch.optim.Optimizer:
    """The configured optimizer, with the update implementation `optim.fused` picks for
    `device` (`speed.optimizer_implementation`). With lazy regularization (`lazy_ratio` =
    N / (N + 1) < 1) the learning rate and Adam's betas are adjusted as in stylegan2-ada."""
    o = config.optim
    betas = tuple(b**lazy_ratio for b in o.betas)
    implementation = optimizer_implementation(o.name, o.fused, torch.device(device))
    if o.name == "adam":
        return torch.optim.Adam(params, lr=lr * lazy_ratio, betas=betas,
                                weight_decay=o.weight_decay, **implementation)  # fmt: skip
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=lr * lazy_ratio, betas=betas,
                                 weight_decay=o.weight_decay, **implementation)  # fmt: skip
    return torch.optim.RMSprop(params, lr=lr * lazy_ratio, weight_decay=o.weight_decay,
                               **implementation)  # fmt: skip
