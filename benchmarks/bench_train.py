"""Training throughput: ganvas's DCGAN loop versus a plain-PyTorch loop of the same model.

Both loops train the same DCGAN (same layers, batch, Adam settings, loss) on the same
in-memory images; they run alternately in one process, and the script prints img/s for each
and the ratio ganvas / plain (1.0 = no overhead). The ganvas window is timed inside
`Trainer.fit` (progress bar, metrics and sampling hooks included), from step `warmup` to
`warmup + steps`; the final checkpoint falls outside the window.

    python benchmarks/bench_train.py                       # dcgan-64, batch 64, synthetic data
    python benchmarks/bench_train.py --resolution 32 --batch 128 --steps 50
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


def ganvas_img_per_s(cfg, run_dir: Path, warmup: int, steps: int) -> float:
    trainer = Trainer(cfg, run_dir, new=True, progress=True)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dcgan-64")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--csv", type=Path, default=None, help="append a result row here")
    args = parser.parse_args()

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
