"""What the loop reports while it runs: metrics.jsonl, TensorBoard, sample grids, progress."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ganvas.errors import is_disk_full
from ganvas.grid import image_grid, to_pil
from ganvas.io import fault_point, save_image_atomic
from ganvas.rundir import RunDir

console = Console(stderr=True, soft_wrap=True)


class RunLog:
    """Messages to stderr and, appended, to run_dir/log.txt."""

    def __init__(self, run_dir: Path) -> None:
        self.file = RunDir(run_dir).log_file

    def __call__(self, message: str) -> None:
        console.print(message, highlight=False)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            with open(self.file, "a", encoding="utf-8") as f:
                f.write(f"{stamp} {message}\n")
        except OSError as err:  # a full disk: the message above still reached the terminal
            if not is_disk_full(err):
                raise


class MetricsLog:
    """One JSON object per line in metrics.jsonl, mirrored to TensorBoard when enabled.

    On resume, lines from steps after the checkpoint (and torn ones) are dropped so the record
    matches the weights (those steps are about to be trained again); TensorBoard purges them.
    """

    def __init__(
        self, run_dir: Path, resume_step: int, tensorboard: bool, sinks: list[Any] | None = None
    ) -> None:
        self.run = RunDir(run_dir)
        self.sinks = list(sinks or [])  # experiment trackers (ganvas.experiments.trackers)
        self.file = self.run.metrics_file
        self.run.discard_after(resume_step)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run.tensorboard_dir), purge_step=resume_step + 1)

    def write(self, record: dict[str, Any]) -> None:
        self.run.append_metrics(record)
        for sink in self.sinks:
            sink.log_metrics(record)
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self.writer.add_scalar(key, value, record["step"])

    def add_image(self, tag: str, grid: np.ndarray, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, grid, step, dataformats="HWC")
        for sink in self.sinks:
            sink.log_image(tag, grid, step)

    def flush(self) -> None:
        """Put the TensorBoard events written so far on disk (before a checkpoint: a kill
        after it must not lose events of steps that will not be trained again)."""
        if self.writer is not None:
            self.writer.flush()
            fault_point("tensorboard flush")

    def close(self, final_checkpoint: Path | None = None) -> None:
        """Flush and close; trackers get the final checkpoint (None: the run stopped early)."""
        if self.writer is not None:
            self.writer.close()
        for sink in self.sinks:
            sink.finish(final_checkpoint)
        self.sinks = []


def save_grid(images: np.ndarray, path: Path, nrow: int | None = None) -> np.ndarray:
    grid = image_grid(images, nrow=nrow)
    save_image_atomic(path, to_pil(grid))
    return grid


def make_progress_gif(samples_dir: Path, dest: Path, max_frames: int = 100) -> bool:
    """Animate the fixed-noise grids in order; returns False when there are fewer than two."""
    from PIL import Image

    frames = sorted(samples_dir.glob("fakes_*.png"))
    if len(frames) < 2:
        return False
    stride = math.ceil(len(frames) / max_frames)
    chosen = frames[::stride]
    if chosen[-1] != frames[-1]:
        chosen.append(frames[-1])
    images = [Image.open(f).convert("RGB") for f in chosen]
    size = max((im.size for im in images), key=lambda wh: wh[0] * wh[1])
    # A growing GAN's early grids are smaller: show every frame at the final size.
    images = [im if im.size == size else im.resize(size, Image.NEAREST) for im in images]
    save_image_atomic(
        dest, images[0], save_all=True, append_images=images[1:], duration=200, loop=0
    )
    return True


def make_progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[losses]}"),
        console=console,
        disable=not enabled,
    )
