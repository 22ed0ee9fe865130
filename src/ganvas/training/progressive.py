"""The progressive-growing schedule (ProGAN): step → (resolution, fade-in alpha, batch size).

A run grows from `start_resolution` to the model's resolution in stages. Each stage shows
a fixed number of real images (`stage_kimg`, or `stage_epochs` passes over the data) at its
own batch size; every stage after the first spends its first `fade_fraction` fading the new
layers in (alpha 0 → 1). The schedule is a pure function of the step, so a run resumed in
the middle of a fade continues exactly where it stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganvas.config import ProgressiveConfig


@dataclass(frozen=True)
class Stage:
    resolution: int
    batch_size: int
    images: int  # real images shown to D in this stage
    start_step: int  # first step of the stage
    steps: int
    fade_steps: int  # the first fade_steps steps blend the new layers in

    @property
    def end_step(self) -> int:
        return self.start_step + self.steps


class ProgressiveSchedule:
    def __init__(self, stages: list[Stage]) -> None:
        if not stages:
            raise ValueError("a progressive schedule needs at least one stage")
        self.stages = stages

    @classmethod
    def build(
        cls,
        cfg: ProgressiveConfig,
        start_resolution: int,
        final_resolution: int,
        dataset_size: int | None,
        d_steps: int = 1,
    ) -> ProgressiveSchedule:
        """Stages from start to final resolution. With `stage_epochs`, `dataset_size` is needed
        (None: the schedule is shown in epochs only, e.g. for a dry run without data)."""
        stages, step = [], 0
        resolutions = resolutions_between(start_resolution, final_resolution)
        for i, resolution in enumerate(resolutions):
            batch = cfg.batch_sizes[min(i, len(cfg.batch_sizes) - 1)]
            if cfg.stage_epochs:
                images = round(cfg.stage_epochs * (dataset_size or 0))
            else:
                images = round(cfg.stage_kimg * 1000)
            steps = max(1, math.ceil(images / (batch * d_steps)))
            fade = 0 if i == 0 else round(cfg.fade_fraction * steps)
            stages.append(Stage(resolution, batch, images, step, steps, fade))
            step += steps
        return cls(stages)

    @property
    def total_steps(self) -> int:
        return self.stages[-1].end_step

    def stage_at(self, step: int) -> Stage:
        for stage in self.stages:
            if step < stage.end_step:
                return stage
        return self.stages[-1]

    def at(self, step: int) -> tuple[Stage, float]:
        """(stage, alpha) for the 0-based `step`; alpha is 1 outside fades."""
        stage = self.stage_at(step)
        if stage.fade_steps == 0:
            return stage, 1.0
        return stage, min(1.0, (step - stage.start_step) / stage.fade_steps)


def resolutions_between(start: int, final: int) -> list[int]:
    if start > final:
        raise ValueError(f"start resolution {start} is above the final resolution {final}")
    return [start * 2**i for i in range(int(math.log2(final // start)) + 1)]


def reals_at(img: torch.Tensor, resolution: int, alpha: float) -> torch.Tensor:
    """Real images [N, C, R, R] as D sees them at `resolution` during a fade: box-filtered down
    to the stage's size and, while alpha < 1, blended with their half-resolution version
    upsampled, so reals fade in exactly like the generator's new layers (Karras et al.)."""
    if img.shape[-1] != resolution:
        img = F.adaptive_avg_pool2d(img, resolution)
    if alpha < 1.0:
        coarse = F.interpolate(F.avg_pool2d(img, 2), scale_factor=2, mode="nearest")
        img = torch.lerp(coarse, img, alpha)
    return img
