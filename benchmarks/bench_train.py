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
channels_last, torch.compile and each optimizer implementation, and prints img/s (wall) and
images per CPU-second of this process (the steadier figure on a shared machine), the ratio to
fp32 (per CPU-second), the FLOPs of one training step (torch.utils.flop_counter.FlopCounterMode,
fp32) and the share of the device's peak they reach. The peak is measured here too: the FLOPs
of a large matmul (fp32 for fp32 rows, bf16 for bf16/fp16 rows) per CPU-second, on the same
device and threads.

    python benchmarks/bench_train.py --matrix --presets dcgan-32,stylegan2-ada-32 --batch 32 \
        --warmup 3 --seconds 20 --repeats 2
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


def timed_img_per_s(cfg, run_dir: Path, warmup: int, seconds: float) -> tuple[float, float]:
    """Trainer.fit's (img per wall second, img per CPU second of this process) over the steps
    after `warmup` that fit in about `seconds` (at least 2 steps). On a machine shared with
    other jobs the CPU-second figure is the steadier one: it counts only this process's time
    on the cores (all its threads), whoever else runs."""
    trainer = Trainer(cfg, run_dir, new=True, progress=False)
    marks: dict[str, float] = {}

    def should_stop(step: int) -> bool:
        now, cpu = time.perf_counter(), time.process_time()
        if step == warmup:
            marks["start"], marks["cpu_start"] = now, cpu
        if step >= warmup + 2 and now - marks["start"] >= seconds:
            marks.update(steps=step - warmup, end=now, cpu_end=cpu)
            return True
        return False

    trainer.fit(should_stop=should_stop)
    images = marks["steps"] * cfg.train.batch_size
    return images / (marks["end"] - marks["start"]), images / (
        marks["cpu_end"] - marks["cpu_start"]
    )


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


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 2048) -> tuple[float, float]:
    """(FLOP per wall second, FLOP per CPU second of this process) of a size×size matmul on
    `device`, medians of 5 after a warm-up."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    walls, cpus = [], []
    for _ in range(6):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, cpu = time.perf_counter(), time.process_time()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    flops = 2 * size**3
    return flops / statistics.median(walls[1:]), flops / statistics.median(cpus[1:])


def step_flops(cfg, run_dir: Path) -> int:
    """FLOPs of one training step (every phase, forward and backward) by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    class GlobalOnly:  # torch's per-module tracker trips on stylegan2's no_grad fakes
        parents = {"Global"}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    trainer = Trainer(cfg, run_dir, new=True, progress=False)
    trainer.train_step()  # the first step can differ (lazy buffers); count the second
    counter = FlopCounterMode(display=False)
    if hasattr(counter, "mod_tracker"):
        counter.mod_tracker = GlobalOnly()
    with counter:
        trainer.train_step()
    trainer.lock.release()
    return counter.get_total_flops()


def switch_matrix(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    (wall32, peak32), (wall16, peak16) = (matmul_peak(device, dtype)
                                          for dtype in (torch.float32, torch.bfloat16))  # fmt: skip
    print(f"\ndevice {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"measured peak (2048² matmul, median of 5): fp32 {wall32 / 1e9:.1f} GFLOP/s wall, "
          f"{peak32 / 1e9:.1f} GFLOP per CPU-s; bf16 {wall16 / 1e9:.1f} GFLOP/s wall, "
          f"{peak16 / 1e9:.1f} GFLOP per CPU-s")  # fmt: skip
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
                    runs = [timed_img_per_s(cfg, Path(tmp) / "run", args.warmup, args.seconds)
                            for _ in range(args.repeats)]  # fmt: skip
                except Exception as err:  # e.g. fp16 autocast missing on this device
                    print(f"{preset} {name}: failed ({type(err).__name__}: {err})")
                    continue
                wall = statistics.median(r[0] for r in runs)
                speeds[name] = statistics.median(r[1] for r in runs)  # img per CPU second
                ratio = speeds[name] / speeds.get("fp32", speeds[name])
                peak = peak16 if name.startswith(("bf16", "fp16")) else peak32
                share = flops * (speeds[name] / args.batch) / peak  # both per CPU second
                rows.append((preset, name, wall, speeds[name], ratio, flops, share))
                print(f"{preset:18} {name:26} {wall:7.1f} img/s wall, {speeds[name]:7.1f} img/"
                      f"CPU-s  ×{ratio:.2f}  (runs: "
                      f"{', '.join(f'{w:.1f}/{c:.1f}' for w, c in runs)})", flush=True)  # fmt: skip
    print("\n| preset | switch | img/s (wall) | img per CPU-s | × fp32 (CPU-s) | GFLOP/step | "
          "share of peak |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for preset, name, wall, cpu, ratio, flops, share in rows:
        print(f"| {preset} | {name} | {wall:.1f} | {cpu:.1f} | {ratio:.2f} | {flops / 1e9:.2f} | "
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
    parser.add_argument("--seconds", type=float, default=20.0, help="--matrix: timed per run")
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
