"""Tracking overhead: training img/s with energy (codecarbon) + trackers (TensorBoard, W&B
offline, MLflow on SQLite) on, versus all of them off.

Both settings train the same run (same preset, batch, synthetic data) alternately in one
process, `--repeats` times each, timed inside `Trainer.fit` from step `warmup` to
`warmup + steps` (metrics lines every `--log-interval` steps, a sample grid every
`--sample-interval`, each sent to every tracker); the script prints the median img/s of each
and the ratio on / off (1.0 = no overhead; the target is >= 0.98).

    python benchmarks/bench_tracking.py                        # dcgan-64, batch 64, CPU
    python benchmarks/bench_tracking.py --device cuda --steps 400
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ganvas.config import load_config
from ganvas.training.trainer import Trainer

try:  # the synthetic set of the training benchmark
    from bench_train import synthetic_dataset
except ImportError:  # run from the repository root as a module
    from benchmarks.bench_train import synthetic_dataset


def img_per_s(cfg, run_dir: Path, warmup: int, steps: int) -> float:
    trainer = Trainer(cfg, run_dir, new=True, progress=False)
    marks: dict[int, float] = {}

    def should_stop(step: int) -> bool:
        if step in (warmup, warmup + steps):
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            marks[step] = time.perf_counter()
        return step >= warmup + steps

    trainer.fit(should_stop=should_stop)
    return steps * cfg.train.batch_size / (marks[warmup + steps] - marks[warmup])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dcgan-64")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--log-interval", type=int, default=10)
    parser.add_argument("--sample-interval", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--synthetic", action="store_true", help="(always: synthetic data)")
    parser.add_argument("--csv", type=Path, default=None, help="append a result row here")
    args = parser.parse_args()

    os.environ.setdefault("WANDB_MODE", "offline")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = load_config(preset=args.preset, overrides={
            "train.batch_size": args.batch, "train.device": args.device,
            "train.log_interval": args.log_interval, "train.sample_interval": args.sample_interval,
            "train.checkpoint_interval": 10**6, "train.collapse_check": "off",
        })  # fmt: skip
        data = synthetic_dataset(tmp, base.model.resolution)
        off = base.replace(**{"data.path": str(data), "train.tensorboard": False,
                              "train.energy": False, "train.trackers": ()})  # fmt: skip
        on = base.replace(**{"data.path": str(data), "train.tensorboard": True,
                             "train.energy": True,
                             "train.trackers": ("tensorboard", "wandb", "mlflow"),
                             "train.mlflow_uri": f"sqlite:///{tmp / 'mlflow.db'}"})  # fmt: skip
        img_per_s(off, tmp / "warm", args.warmup, 5)  # imports, allocator, tracker start-up
        img_per_s(on, tmp / "warm-on", args.warmup, 5)
        results: dict[str, list[float]] = {"off": [], "on": []}
        for i in range(args.repeats):
            results["off"].append(img_per_s(off, tmp / f"off{i}", args.warmup, args.steps))
            results["on"].append(img_per_s(on, tmp / f"on{i}", args.warmup, args.steps))
    med_off, med_on = statistics.median(results["off"]), statistics.median(results["on"])
    ratio = med_on / med_off
    print(f"{args.preset} batch {args.batch} on {args.device}, {args.steps} steps x "
          f"{args.repeats}: tracking off {med_off:.1f} img/s "
          f"({', '.join(f'{v:.1f}' for v in results['off'])}), on {med_on:.1f} img/s "
          f"({', '.join(f'{v:.1f}' for v in results['on'])}); ratio on/off {ratio:.3f} "
          f"(overhead {100 * (1 - ratio):.1f} %)")  # fmt: skip
    if args.csv is not None:
        new = not args.csv.is_file()
        with open(args.csv, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["preset", "batch", "device", "torch", "threads", "steps",
                                 "off_img_s", "on_img_s", "ratio"])  # fmt: skip
            writer.writerow([args.preset, args.batch, args.device, torch.__version__,
                             torch.get_num_threads(), args.steps, round(med_off, 1),
                             round(med_on, 1), round(ratio, 3)])  # fmt: skip


if __name__ == "__main__":
    main()
