"""Time to quality on a small real dataset: KID, FID and FD-DINOv2 against training time,
family by family, at equal CPU minutes — then the memorization copy rate at the end.

The data is the built-in Noto emoji (1,911 real images) at 32×32. Every recipe trains for the
same budget; every `--eval-every` training seconds its generator (G_ema when kept) draws `--n`
images, scored with KID and FID (Inception) and FD-DINOv2 (a network not trained on ImageNet
classes: a D built on ImageNet features could lower FID alone) against the data; evaluation
time is not counted. `--clock cpu` (the default) counts this process's CPU seconds with one
torch thread, so other work on the machine does not shorten a recipe's budget; `--clock wall`
counts wall-clock seconds with every thread. At the end the copy rate says how many samples
sit closer to a training image than 99 % of the training images sit to each other (so ≈ 1 %
is the data's own near-duplicate rate).

    python benchmarks/bench_small_data.py --minutes 5             # needs the Inception weights
    python benchmarks/bench_small_data.py --minutes 2 --recipes dcgan,projected-fastgan

It writes `--out`/results.csv (one row per evaluation), kid_vs_time.png and
fd_dinov2_vs_time.png (without `--no-dinov2`).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ganvas.config import load_config
from ganvas.data.example import write_example_dataset
from ganvas.inference import latents, pick_generator, run_generator, to_uint8
from ganvas.metrics import FeatureExtractor, evaluate
from ganvas.metrics.dinov2 import DinoV2Extractor
from ganvas.metrics.memorization import memorization_report
from ganvas.training.trainer import Trainer

# recipe → (preset, overrides). The classic families' best 32 px recipes and the new ones.
RECIPES: dict[str, tuple[str, dict]] = {
    "dcgan": ("emoji-demo", {}),
    "sngan": ("sngan-32", {}),
    "stylegan2": ("stylegan2-ada-32", {"train.augment": "none"}),
    "stylegan2-diffaug": ("stylegan2-ada-32", {"train.augment": "diffaugment"}),
    "stylegan2-ada": ("stylegan2-ada-32", {"train.augment": "ada"}),
    "r3gan": ("r3gan-32", {}),
    "fastgan": ("fastgan-32", {}),
    "projected-fastgan": ("projected-fastgan-32", {}),
}
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#17becf"]  # fmt: skip
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def score(trainer: Trainer, dataset, extractor: FeatureExtractor, dinov2, n: int) -> dict:
    """KID, FID (and FD-DINOv2 with a `dinov2` extractor) of n images of the trainer's
    sampling generator against the dataset."""
    G = pick_generator(trainer.G, trainer.G_ema)
    z = latents(n, trainer.config.model.z_dim, seed=123)
    images = to_uint8(run_generator(G, z))
    metrics = ("kid", "fid", "fd_dinov2") if dinov2 is not None else ("kid", "fid")
    scores = evaluate(images, dataset, metrics=metrics, n=n, extractor=extractor, dinov2=dinov2,
                      verbose=False)  # fmt: skip
    out = {"kid": float(scores["kid_mean"]), "fid": float(scores["fid"])}
    if dinov2 is not None:
        out["fd_dinov2"] = float(scores["fd_dinov2"])
    return out


def run_recipe(
    name: str, data_path: Path, run_dir: Path, args, extractor, dinov2, dataset
) -> list[dict]:
    preset, overrides = RECIPES[name]
    settings = {"data.path": str(data_path), "train.device": "cpu", "train.steps": 10**7,
                "train.epochs": None, "train.tensorboard": False, "train.sample_interval": 10**6,
                "train.checkpoint_interval": 10**6, "train.eval_interval": 0,
                "train.collapse_check": "off", **overrides}  # fmt: skip
    cfg = load_config(preset=preset, overrides=settings)
    trainer = Trainer(cfg, run_dir, new=True, progress=False)
    rows, budget, interval, now = [], args.minutes * 60, args.eval_every, CLOCKS[args.clock]
    clock = {"train": 0.0, "wall": 0.0, "since": now(), "wall_since": time.perf_counter(),
             "next_eval": interval}  # fmt: skip

    def evaluate_now(step: int) -> None:
        record = score(trainer, dataset, extractor, dinov2, args.n)
        row = {"recipe": name, "step": step, "kimg": round(trainer.images_seen / 1000, 2),
               "train_s": round(clock["train"], 1), "wall_s": round(clock["wall"], 1),
               **{k: round(v, 5) for k, v in record.items()}}  # fmt: skip
        rows.append(row)
        dino = f"  FD-DINOv2 {row['fd_dinov2']:.1f}" if "fd_dinov2" in row else ""
        print(f"  {name:18s} step {step:6d}  {row['train_s']:7.1f} s  KID {row['kid']:.4f}  "
              f"FID {row['fid']:.1f}{dino}", flush=True)  # fmt: skip

    def should_stop(step: int) -> bool:
        clock["train"] += now() - clock["since"]
        clock["wall"] += time.perf_counter() - clock["wall_since"]
        done = clock["train"] >= budget
        if clock["train"] >= clock["next_eval"] or done:
            evaluate_now(step)
            clock["next_eval"] += interval
        clock["since"], clock["wall_since"] = now(), time.perf_counter()
        return done

    evaluate_now(0)
    clock["since"], clock["wall_since"] = now(), time.perf_counter()  # training time only
    trainer.fit(should_stop=should_stop)
    G = pick_generator(trainer.G, trainer.G_ema)
    samples = to_uint8(run_generator(G, latents(args.n, cfg.model.z_dim, seed=7)))
    copies = memorization_report(samples.permute(0, 2, 3, 1).numpy(), np.asarray(dataset.images))
    rows[-1]["copy_rate"] = round(copies["copy_rate"], 4)
    trainer.save_samples()
    return rows


def plot(
    rows: list[dict], path: Path, key: str = "kid", width: int = 900, height: int = 520
) -> None:
    """`key` (KID, FD-DINOv2) against training seconds, one line per recipe, log scale (drawn
    with PIL: no plotting dependency)."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 70, width - 190, 20, height - 50
    t_max = max(r["train_s"] for r in rows) or 1.0
    kids = [max(r[key], 1e-4) for r in rows]
    lo, hi = np.log10(min(kids)), np.log10(max(kids))
    hi = hi if hi > lo else lo + 1

    def xy(t: float, kid: float) -> tuple[float, float]:
        x = left + (right - left) * t / t_max
        y = bottom - (bottom - top) * (np.log10(max(kid, 1e-4)) - lo) / (hi - lo)
        return x, y

    draw.rectangle([left, top, right, bottom], outline="black")
    for i in range(5):
        t = t_max * i / 4
        x, _ = xy(t, kids[0])
        draw.text((x - 10, bottom + 8), f"{t / 60:.1f}", fill="black")
        value = 10 ** (lo + (hi - lo) * i / 4)
        _, y = xy(0, value)
        draw.text((8, y - 6), f"{value:.3f}", fill="black")
    draw.text(((left + right) // 2 - 60, height - 22), "training minutes (CPU)", fill="black")
    draw.text((8, 2), f"{key.upper().replace('_', '-')} (log scale)", fill="black")
    for i, name in enumerate(dict.fromkeys(r["recipe"] for r in rows)):
        points = [xy(r["train_s"], r[key]) for r in rows if r["recipe"] == name]
        colour = COLOURS[i % len(COLOURS)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((right + 12, top + 20 * i), f"— {name}", fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget per recipe")
    parser.add_argument("--eval-every", type=float, default=60.0, help="training seconds")
    parser.add_argument("--n", type=int, default=500, help="images per KID/FID")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/small_data"))
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="what the budget counts: this process's CPU seconds (one torch "
                             "thread) or wall-clock seconds")  # fmt: skip
    parser.add_argument("--no-dinov2", action="store_true", help="skip FD-DINOv2")
    args = parser.parse_args()
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {', '.join(RECIPES)}")
    if args.clock == "cpu":
        torch.set_num_threads(1)  # CPU seconds then measure work, not waiting for threads
    extractor = FeatureExtractor.inception()
    dinov2 = None if args.no_dinov2 else DinoV2Extractor()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        dataset = write_example_dataset(Path(tmp) / "emoji32", size=32)
        print(f"{len(dataset)} emoji at 32 px; {args.minutes:g} training minutes "
              f"({args.clock} clock) per recipe, "
              f"KID/FID on {args.n} images every {args.eval_every:g} s; torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
        for name in names:
            rows += run_recipe(name, dataset.path, args.out / "runs" / name, args, extractor,
                               dinov2, dataset)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["recipe", "step", "kimg", "train_s", "wall_s",
                                               "kid", "fid", "fd_dinov2", "copy_rate"])  # fmt: skip
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out / "kid_vs_time.png")
    if dinov2 is not None:
        plot(rows, args.out / "fd_dinov2_vs_time.png", key="fd_dinov2")
    print(f"\n{'recipe':18s} {'best KID':>9s} {'at min':>7s} {'final KID':>9s} {'final FID':>9s} "
          f"{'final FD-DINOv2':>15s} {'copy rate':>9s}")  # fmt: skip
    for name in names:
        mine = [r for r in rows if r["recipe"] == name]
        best = min(mine, key=lambda r: r["kid"])
        print(f"{name:18s} {best['kid']:9.4f} {best['train_s'] / 60:7.1f} {mine[-1]['kid']:9.4f} "
              f"{mine[-1]['fid']:9.1f} {mine[-1].get('fd_dinov2', float('nan')):15.1f} "
              f"{mine[-1].get('copy_rate', float('nan')):9.3f}")  # fmt: skip
    reference = next((n for n in ("stylegan2-ada", "dcgan") if n in names), None)
    if reference is not None:  # time to reach the reference's final KID, as a ratio
        target = [r for r in rows if r["recipe"] == reference][-1]["kid"]
        print(f"\ntraining time to reach {reference}'s final KID {target:.4f}:")
        ref_time = [r for r in rows if r["recipe"] == reference][-1]["train_s"]
        for name in names:
            hit = [r for r in rows if r["recipe"] == name and r["kid"] <= target]
            if not hit:
                print(f"  {name:18s} not reached")
                continue
            when = hit[0]["train_s"]
            print(
                f"  {name:18s} {when:7.1f} s ({when / ref_time:.2f} of {reference}'s "
                f"{ref_time:.0f} s)"
            )
    print(f"wrote {args.out / 'results.csv'} and {args.out / 'kid_vs_time.png'}")


if __name__ == "__main__":
    main()
