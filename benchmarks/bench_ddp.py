"""Data-parallel training: img/s on 1 and 2 torchrun ranks here, and, on paper, the gradient
traffic per step of every preset and what it costs on a stated interconnect.

    python benchmarks/bench_ddp.py --steps 60 --batch 32
    python benchmarks/bench_ddp.py --traffic-only

Part 1 (measured): the same small r3gan run (32 px) under `torchrun --nproc_per_node 1` and
`2` (gloo, one thread per process), and 1 process with 2 threads (the same cores as 2 ranks);
global batch `--batch`; img/s is the mean of the metrics windows after the first (warm-up).
It prints the ratio 2 ranks / 1 rank.

Part 2 (computed, not measured): ganvas averages gradients with one fp32 all-reduce per phase,
so a step moves 4 bytes × (the trainable parameters of each phase's player). A ring
all-reduce of S bytes over N ranks sends 2·(N−1)/N·S bytes over the slowest link; the times
printed are that divided by the stated bandwidth, with no overlap with compute (ganvas
all-reduces after backward), no latency term, and the bandwidths as assumptions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_blobs, write_dataset  # noqa: E402

# Assumed link speeds (bytes/s): NVLink 4 bus bandwidth per GPU as NCCL reports it on an
# 8-GPU H100 node, and one 100 Gb/s InfiniBand NIC per node.
NVLINK = 450e9
INFINIBAND_100G = 100e9 / 8
PRESETS = ["dcgan-64", "wgan-gp-film-64", "r3gan-64", "stylegan2-ada-64", "stylegan2-ada-256",
           "fastgan-256", "projected-fastgan-256", "biggan-32", "progan-art"]  # fmt: skip


MODEL = {"model.family": "r3gan", "model.resolution": 32, "model.g_width": 32,
         "model.d_width": 32, "model.z_dim": 64, "model.group_width": 16}  # fmt: skip


def measure(ranks: int, threads: int, data: Path, steps: int, batch: int, out: Path) -> float:
    """Mean img/s of `ranks` torchrun processes with `threads` threads each."""
    run = out / f"ranks{ranks}-threads{threads}"
    settings = {**MODEL, "train.batch_size": batch, "train.steps": steps, "train.device": "cpu",
                "train.log_interval": 10, "train.sample_interval": steps,
                "train.checkpoint_interval": steps, "train.tensorboard": False,
                "train.energy": False, "train.collapse_check": '"off"', "train.n_samples": 4,
                "data.path": str(data)}  # fmt: skip
    args = [arg for k, v in settings.items() for arg in ("--set", f"{k}={v}")]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={ranks}", "-m", "ganvas", "train", "--out", str(run),
               "--no-progress", *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, check=True, capture_output=True, timeout=1800, env=env)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    speeds = [x["img_per_s"] for x in lines if "img_per_s" in x][1:]  # the first: warm-up
    return float(np.mean(speeds))


def trainable(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def traffic() -> list[dict]:
    """Gradient bytes all-reduced per step for each preset (fp32), from parameter counts."""
    import torch

    from ganvas.config import load_config
    from ganvas.models.registry import build_models

    rows = []
    for preset in PRESETS:
        config = load_config(preset=preset, overrides=["model.channels=3"])
        m, t = config.model, config.train
        if m.resolution is None:
            config = load_config(preset=preset, overrides=["model.channels=3",
                                                            "model.resolution=256"])  # fmt: skip
            m = config.model
        if getattr(m, "num_classes", 0) == 0 and preset.startswith(("biggan", "acgan", "cgan")):
            config = load_config(preset=preset, overrides=["model.channels=3",
                                                            "model.num_classes=10"])  # fmt: skip
            m = config.model
        torch.manual_seed(0)
        G, D = build_models(m)
        g, d = trainable(G), trainable(D)
        # Phases per step: d_steps D updates and one G update, plus the lazy ones amortised.
        d_phases = t.d_steps + (1 / m.r1_interval if getattr(m, "r1_interval", 1) > 1 else 0)
        lazy_pl = getattr(m, "pl_weight", 0) > 0 and getattr(m, "pl_interval", 1) > 1
        g_phases = 1 + (1 / m.pl_interval if lazy_pl else 0)
        step_bytes = 4 * (d_phases * d + g_phases * g)
        rows.append({"preset": preset, "resolution": m.resolution, "G": g, "D": d,
                     "MB_per_step": step_bytes / 1e6})  # fmt: skip
    return rows


def ring_seconds(size: float, ranks: int, bandwidth: float) -> float:
    return 2 * (ranks - 1) / ranks * size / bandwidth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--traffic-only", action="store_true")
    args = parser.parse_args()
    if not args.traffic_only:
        with tempfile.TemporaryDirectory() as tmp:
            data = write_dataset(Path(tmp) / "blobs", make_blobs(512, size=32)).path
            one = measure(1, 1, data, args.steps, args.batch, Path(tmp))
            two = measure(2, 1, data, args.steps, args.batch, Path(tmp))
            one_both = measure(1, 2, data, args.steps, args.batch, Path(tmp))
        from ganvas.config import load_config
        from ganvas.models.registry import build_models

        model = load_config(overrides=[f"{k}={v}" for k, v in MODEL.items()] +
                            ["model.channels=3"]).model  # fmt: skip
        G, D = build_models(model)
        print(f"r3gan 32 px (G {trainable(G):,}, D {trainable(D):,} parameters), global batch "
              f"{args.batch}, {args.steps} steps, gloo on the CPU")  # fmt: skip
        print(f"1 rank,  1 thread  : {one:8.1f} img/s")
        print(
            f"2 ranks, 1 thread each: {two:8.1f} img/s   ratio 2 ranks / 1 rank = {two / one:.2f}"
        )
        print(f"1 rank,  2 threads : {one_both:8.1f} img/s   ratio 2 ranks / this = "
              f"{two / one_both:.2f}")  # fmt: skip
        print()
    print("Gradient traffic per step (fp32, one all-reduce per phase; computed, not measured)")
    print(f"{'preset':24} {'res':>4} {'G params':>11} {'D params':>11} {'MB/step':>8} "
          f"{'8 GPU NVLink ms':>16} {'2x8 GPU IB100 ms':>17}")  # fmt: skip
    for row in traffic():
        size = row["MB_per_step"] * 1e6
        nvlink = ring_seconds(size, 8, NVLINK) * 1e3
        infiniband = ring_seconds(size, 16, INFINIBAND_100G) * 1e3
        print(f"{row['preset']:24} {row['resolution']:>4} {row['G']:>11,} {row['D']:>11,} "
              f"{row['MB_per_step']:>8.1f} {nvlink:>16.2f} {infiniband:>17.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
