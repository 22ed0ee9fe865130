"""Training throughput: ganvas's DCGAN loop versus a plain-PyTorch loop of the same model.

Both loops train the same DCGAN (same layers, batch, Adam settings, loss) on the same
in-memory images; they run alternately in one process, and the script prints img/s for each
and the ratio ganvas / plain (1.0 = no overhead). The ganvas window is timed inside
`Trainer.fit` (progress bar, metrics and sampling hooks included), from step `warmup` to
`warmup + steps`; the final checkpoint falls outside the window.

    python benchmarks/bench_train.py                       # dcgan-64, batch 64, synthetic data
    python benchmarks/bench_train.py --resolution 32 --batch 128 --steps 50

With `--matrix`, it times the speed switches instead (docs/speed.md): for each preset in
`--presets`, Trainer.fit with fp32 (the reference, measured in the same run), bf16, fp16,
channels_last, torch.compile and each optimizer implementation, and prints img/s, the ratio to
fp32, the FLOPs of one training step (torch.utils.flop_counter.FlopCounterMode, fp32) and the
share of the device's peak they reach. The peak is measured here too: the FLOP/s of a large
matmul (fp32 and bf16) on the same device and threads.

    python benchmarks/bench_train.py --matrix --presets dcgan-32,stylegan2-ada-32 --batch 32
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganvas.config import load_config
from ganvas.data.store import base_manifest, save_dataset
from ganvas.models.registry import build_models
from ganvas.training.trainer import Trainer


def synthetic_dataset(folder: Path, resolution: int, count: int = 512) -> Path:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, resolution, resolution, 3), dtype=np.uint8)
    manifest = base_manifest(resolution, 3, [])
    manifest.update(sources=["synthetic"], files=[], dropped=[], params={}, splits={"val": []})
    save_dataset(folder / "data", images, None, manifest)
    return folder / "data"


def ganvas_img_per_s(cfg, run_dir: Path, warmup: int, steps: int, progress: bool = True) -> float:
    trainer = Trainer(cfg, run_dir, new=True, progress=progress)
    marks: dict[int, float] = {}

    def should_stop(step: int) -> bool:
        if step in (warmup, warmup + steps):
            marks[step] = time.perf_counter()
        return step >= warmup + steps

    trainer.fit(should_stop=should_stop)
    seconds = marks[warmup + steps] - marks[warmup]
    return steps * cfg.train.batch_size / seconds


def plain_img_per_s(cfg, data: np.ndarray, warmup: int, steps: int, freeze_d: bool) -> float:
    """The PyTorch DCGAN example's loop, written out by hand.

    With `freeze_d`, D's parameters stop requiring gradients during the G update (as ganvas
    does), so D's weight gradients are not computed only to be thrown away.
    """
    torch.manual_seed(cfg.train.seed)
    G, D = build_models(cfg.model)
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.optim.lr_g, betas=cfg.optim.betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.optim.lr_d, betas=cfg.optim.betas)
    images = torch.from_numpy(data).permute(0, 3, 1, 2).float().div(127.5).sub(1).contiguous()
    batch, z_dim = cfg.train.batch_size, cfg.model.z_dim
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    order, position = torch.randperm(len(images)), 0
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        if position + batch > len(images):
            order, position = torch.randperm(len(images)), 0
        real = images[order[position : position + batch]]
        position += batch
        fake = G(torch.randn(batch, z_dim))
        d_loss = F.binary_cross_entropy_with_logits(D(real), ones)
        d_loss = d_loss + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros)
        opt_D.zero_grad()
        d_loss.backward()
        opt_D.step()
        D.requires_grad_(not freeze_d)
        g_loss = F.binary_cross_entropy_with_logits(D(fake), ones)
        opt_G.zero_grad()
        g_loss.backward()
        opt_G.step()
        D.requires_grad_(True)
    return steps * batch / (time.perf_counter() - start)


# name → the settings it changes from fp32 (precision fp32, no channels_last/compile, Adam as
# torch makes it by default: optim.fused=auto, the reference loop on the CPU)
SWITCHES = {
    "fp32": {},
    "bf16": {"train.precision": "bf16"},
    "fp16": {"train.precision": "fp16"},
    "channels_last": {"train.channels_last": True},
    "compile": {"train.compile": True},
    "adam foreach": {"optim.fused": "foreach"},
    "adam fused": {"optim.fused": "fused"},
    "bf16+channels_last+fused": {"train.precision": "bf16", "train.channels_last": True,
                                 "optim.fused": "fused"},
}  # fmt: skip


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 2048) -> float:
    """FLOP/s of a size×size matmul on `device` (median of 5 after a warm-up)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    times = []
    for _ in range(6):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times[1:])


def step_flops(cfg, run_dir: Path) -> int:
    """FLOPs of one training step (every phase, forward and backward) by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    trainer = Trainer(cfg, run_dir, new=True, progress=False)
    trainer.train_step()  # the first step can differ (lazy buffers); count the second
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.train_step()
    trainer.lock.release()
    return counter.get_total_flops()


def switch_matrix(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    peak32, peak16 = matmul_peak(device, torch.float32), matmul_peak(device, torch.bfloat16)
    print(f"\ndevice {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"measured peak: fp32 matmul {peak32 / 1e9:.1f} GFLOP/s, bf16 matmul "
          f"{peak16 / 1e9:.1f} GFLOP/s (2048², median of 5)")  # fmt: skip
    rows = []
    for preset in args.presets.split(","):
        overrides = {"train.batch_size": args.batch, "train.device": args.device,
                     "train.tensorboard": False, "train.energy": False,
                     "train.collapse_check": "off", "train.ema": False}  # fmt: skip
        if args.resolution:
            overrides["model.resolution"] = args.resolution
        base = load_config(preset=preset, overrides=overrides)
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = synthetic_dataset(Path(tmp), base.model.resolution)
            base = base.replace(**{"data.path": str(data_dir)})
            flops = step_flops(base, Path(tmp) / "flops")
            speeds = {}
            for name, switch in SWITCHES.items():
                if name not in args.switches.split(",") and args.switches != "all":
                    continue
                cfg = base.replace(**switch)
                try:
                    runs = [ganvas_img_per_s(cfg, Path(tmp) / "run", args.warmup, args.steps,
                                             progress=False) for _ in range(args.repeats)]  # fmt: skip
                except Exception as err:  # e.g. fp16 autocast missing on this device
                    print(f"{preset} {name}: failed ({type(err).__name__}: {err})")
                    continue
                speeds[name] = statistics.median(runs)
                img_s = speeds[name]
                steps_s = img_s / args.batch
                peak = peak16 if name.startswith(("bf16", "fp16")) else peak32
                rows.append((preset, name, img_s, img_s / speeds.get("fp32", img_s), flops,
                             flops * steps_s / peak, runs))  # fmt: skip
                print(f"{preset:18} {name:26} {img_s:8.1f} img/s  ×{rows[-1][3]:.2f}  "
                      f"({', '.join(f'{r:.1f}' for r in runs)})", flush=True)  # fmt: skip
    print(
        "\n| preset | switch | img/s | × fp32 | GFLOP/step | share of peak |\n|---|---|---|---|---|---|"
    )
    for preset, name, img_s, ratio, flops, share, _ in rows:
        print(f"| {preset} | {name} | {img_s:.1f} | {ratio:.2f} | {flops / 1e9:.2f} | "
              f"{100 * share:.1f} % |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dcgan-64")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--csv", type=Path, default=None, help="append a result row here")
    parser.add_argument("--matrix", action="store_true", help="time the speed switches")
    parser.add_argument("--presets", default="dcgan-32,stylegan2-ada-32")
    parser.add_argument("--switches", default="all", help="comma-separated names of SWITCHES")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.matrix:
        switch_matrix(args)
        return

    overrides = {"train.batch_size": args.batch, "train.device": "cpu", "train.tensorboard": False}
    if args.resolution:
        overrides["model.resolution"] = args.resolution
    base = load_config(preset=args.preset, overrides=overrides)
    resolution = base.model.resolution
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = synthetic_dataset(Path(tmp), resolution)
        cfg = base.replace(**{"data.path": str(data_dir)})
        data = np.load(data_dir / "images.npy")
        model_cfg = cfg.replace(**{"model.channels": 3, "model.resolution": resolution})
        example, matched, ours = [], [], []
        for _ in range(args.repeats):
            example.append(plain_img_per_s(model_cfg, data, args.warmup, args.steps, False))
            matched.append(plain_img_per_s(model_cfg, data, args.warmup, args.steps, True))
            ours.append(ganvas_img_per_s(cfg, Path(tmp) / "run", args.warmup, args.steps))
    e, p, g = statistics.median(example), statistics.median(matched), statistics.median(ours)

    def runs(values: list[float]) -> str:
        return ", ".join(f"{x:.1f}" for x in values)

    print(
        f"\n{args.preset} {resolution}px batch {args.batch}, {args.steps} timed steps x "
        f"{args.repeats}, torch {torch.__version__}, {torch.get_num_threads()} threads, cpu"
    )
    print(f"plain loop, PyTorch DCGAN example     : {e:8.1f} img/s  ({runs(example)})")
    print(f"plain loop, D frozen during G update  : {p:8.1f} img/s  ({runs(matched)})")
    print(f"ganvas Trainer.fit                    : {g:8.1f} img/s  ({runs(ours)})")
    print(f"ratio ganvas / matched plain loop     : {g / p:.3f}   (framework overhead)")
    print(f"ratio ganvas / PyTorch example loop   : {g / e:.3f}")
    if args.csv:
        new_file = not args.csv.exists()
        with open(args.csv, "a", newline="") as f:
            writer = csv.writer(f)
            if new_file:
                writer.writerow(["preset", "resolution", "batch", "torch", "threads",
                                 "example_img_s", "matched_img_s", "ganvas_img_s", "ratio"])  # fmt: skip
            writer.writerow([args.preset, resolution, args.batch, torch.__version__,
                             torch.get_num_threads(), f"{e:.1f}", f"{p:.1f}", f"{g:.1f}", f"{g / p:.3f}"])  # fmt: skip


if __name__ == "__main__":
    main()
