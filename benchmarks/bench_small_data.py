"""Time to quality on a small real dataset: KID (and FID) against wall-clock training time,
family by family, at equal CPU minutes — then the memorization copy rate at the end.

The data is the built-in Noto emoji (1,911 real images) at 32×32. Every recipe trains for the
same wall-clock budget on this machine; every `--eval-every` training seconds its generator
(G_ema when kept) draws `--n` images, scored with KID and FID against the data (the
evaluation time is not counted as training time). At the end the copy rate says how many
samples sit closer to a training image than 99 % of the training images sit to each other
(so ≈ 1 % is the data's own near-duplicate rate).

    python benchmarks/bench_small_data.py --minutes 5             # needs the Inception weights
    python benchmarks/bench_small_data.py --minutes 2 --recipes dcgan,stylegan2-ada

It writes `--out`/results.csv (one row per evaluation), summary.csv and kid_vs_time.png.
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
}
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def score(trainer: Trainer, dataset, extractor: FeatureExtractor, n: int) -> dict[str, float]:
    """KID and FID of n images of the trainer's sampling generator against the dataset."""
    G = pick_generator(trainer.G, trainer.G_ema)
    z = latents(n, trainer.config.model.z_dim, seed=123)
    images = to_uint8(run_generator(G, z))
    scores = evaluate(images, dataset, metrics=("kid", "fid"), n=n, extractor=extractor,
                      verbose=False)  # fmt: skip
    return {"kid": float(scores["kid_mean"]), "fid": float(scores["fid"])}


def run_recipe(name: str, data_path: Path, run_dir: Path, args, extractor, dataset) -> list[dict]:
    preset, overrides = RECIPES[name]
    settings = {"data.path": str(data_path), "train.device": "cpu", "train.steps": 10**7,
                "train.epochs": None, "train.tensorboard": False, "train.sample_interval": 10**6,
                "train.checkpoint_interval": 10**6, "train.eval_interval": 0,
                "train.collapse_check": "off", **overrides}  # fmt: skip
    cfg = load_config(preset=preset, overrides=settings)
    trainer = Trainer(cfg, run_dir, new=True, progress=False)
    rows, budget, interval = [], args.minutes * 60, args.eval_every
    clock = {"train": 0.0, "since": time.perf_counter(), "next_eval": interval}

    def evaluate_now(step: int) -> None:
        record = score(trainer, dataset, extractor, args.n)
        row = {"recipe": name, "step": step, "kimg": round(trainer.images_seen / 1000, 2),
               "train_s": round(clock["train"], 1), **{k: round(v, 5) for k, v in record.items()}}  # fmt: skip
        rows.append(row)
        print(f"  {name:18s} step {step:6d}  {row['train_s']:7.1f} s  KID {row['kid']:.4f}  "
              f"FID {row['fid']:.1f}", flush=True)  # fmt: skip

    def should_stop(step: int) -> bool:
        clock["train"] += time.perf_counter() - clock["since"]
        done = clock["train"] >= budget
        if clock["train"] >= clock["next_eval"] or done:
            evaluate_now(step)
            clock["next_eval"] += interval
        clock["since"] = time.perf_counter()
        return done

    evaluate_now(0)
    clock["since"] = time.perf_counter()  # the clock counts training only
    trainer.fit(should_stop=should_stop)
    G = pick_generator(trainer.G, trainer.G_ema)
    samples = to_uint8(run_generator(G, latents(args.n, cfg.model.z_dim, seed=7)))
    copies = memorization_report(samples.permute(0, 2, 3, 1).numpy(), np.asarray(dataset.images))
    rows[-1]["copy_rate"] = round(copies["copy_rate"], 4)
    trainer.save_samples()
    return rows


def plot(rows: list[dict], path: Path, width: int = 900, height: int = 520) -> None:
    """KID against training seconds, one line per recipe (drawn with PIL: no plotting dep)."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 70, width - 190, 20, height - 50
    t_max = max(r["train_s"] for r in rows) or 1.0
    kids = [max(r["kid"], 1e-4) for r in rows]
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
    draw.text((8, 2), "KID (log scale)", fill="black")
    for i, name in enumerate(dict.fromkeys(r["recipe"] for r in rows)):
        points = [xy(r["train_s"], r["kid"]) for r in rows if r["recipe"] == name]
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
    args = parser.parse_args()
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {', '.join(RECIPES)}")
    torch.set_num_threads(torch.get_num_threads())
    extractor = FeatureExtractor.inception()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        dataset = write_example_dataset(Path(tmp) / "emoji32", size=32)
        print(f"{len(dataset)} emoji at 32 px; {args.minutes:g} training minutes per recipe, "
              f"KID/FID on {args.n} images every {args.eval_every:g} s; torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
        for name in names:
            rows += run_recipe(name, dataset.path, args.out / "runs" / name, args, extractor,
                               dataset)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["recipe", "step", "kimg", "train_s", "kid", "fid",
                                               "copy_rate"])  # fmt: skip
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out / "kid_vs_time.png")
    print(f"\n{'recipe':18s} {'best KID':>9s} {'at min':>7s} {'final KID':>9s} {'final FID':>9s} "
          f"{'copy rate':>9s}")  # fmt: skip
    for name in names:
        mine = [r for r in rows if r["recipe"] == name]
        best = min(mine, key=lambda r: r["kid"])
        print(f"{name:18s} {best['kid']:9.4f} {best['train_s'] / 60:7.1f} {mine[-1]['kid']:9.4f} "
              f"{mine[-1]['fid']:9.1f} {mine[-1].get('copy_rate', float('nan')):9.3f}")  # fmt: skip
    print(f"wrote {args.out / 'results.csv'} and {args.out / 'kid_vs_time.png'}")


if __name__ == "__main__":
    main()
