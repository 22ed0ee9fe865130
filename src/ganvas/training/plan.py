"""What a run will do, without training: `ganvas train --dry-run`.

For a growing GAN (ProGAN) one row per stage: resolution, batch size, images, steps, fade
steps, learning rate and the parameters in use; for any other family one row.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ganvas.config import Config
from ganvas.models.registry import get_family
from ganvas.training.schedules import build_schedule


def plan_rows(config: Config, dataset_size: int | None = None) -> list[dict[str, Any]]:
    """Rows describing the run on `dataset_size` training images (the train split, after
    data.classes: what the trainer will see). `config.model.resolution`/`channels` may be
    unset: growing families then use the largest resolution their batch-size list covers,
    others 64."""
    m = config.model
    family = get_family(m.family)
    grows = family.grows
    resolution = m.resolution
    if resolution is None:
        start = getattr(m, "start_resolution", 4)
        resolution = start * 2 ** (len(config.progressive.batch_sizes) - 1) if grows else 64
    m = dataclasses.replace(m, resolution=resolution, channels=m.channels or 3,
                            num_classes=m.num_classes or (10 if family.conditional else 0))  # fmt: skip
    config = dataclasses.replace(config, model=m)
    if not grows:
        t = config.train
        steps = t.steps
        if t.epochs is not None:
            steps = build_schedule(config, False, dataset_size or 0).total_steps
            steps = steps if dataset_size else f"{t.epochs:g} epochs"
        g_params, d_params = family.count_parameters(m, resolution)
        return [{"stage": 1, "resolution": resolution, "batch": t.batch_size, "images": "",
                 "steps": steps, "fade steps": 0, "lr G/D": f"{config.optim.lr_g:g}/{config.optim.lr_d:g}",
                 "G params": g_params, "D params": d_params}]  # fmt: skip
    schedule = build_schedule(config, True, dataset_size).stages
    lrs = config.progressive.lrs
    rows = []
    for i, stage in enumerate(schedule.stages):
        g_params, d_params = family.count_parameters(m, stage.resolution)
        images: Any = stage.images
        if config.progressive.stage_epochs and not dataset_size:
            images = f"{config.progressive.stage_epochs:g} epochs"
        lr = lrs[min(i, len(lrs) - 1)] if lrs else None
        rows.append({
            "stage": i + 1, "resolution": stage.resolution, "batch": stage.batch_size,
            "images": images, "steps": stage.steps if dataset_size or not config.progressive.stage_epochs else "",
            "fade steps": stage.fade_steps if dataset_size or not config.progressive.stage_epochs else "",
            "lr G/D": f"{lr:g}" if lr else f"{config.optim.lr_g:g}/{config.optim.lr_d:g}",
            "G params": g_params, "D params": d_params,
        })  # fmt: skip
    return rows
