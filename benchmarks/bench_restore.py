"""Restoration benchmark: the restore-x2-32to64 recipe on the built-in emoji, cut to CPU
minutes, against bicubic enlargement measured in the same run.

    python benchmarks/bench_restore.py                     # ~minutes on a CPU
    python benchmarks/bench_restore.py --calibrate         # the feature-loss scale measurement

Trains one run (NoGAN: G on the feature loss, then the critic, then a short GAN phase, the
perceptual distance on the val split marking the best checkpoint) on 64 px emoji, 10 % held
out, and a second run of the same length with no critic at all (the same U-Net on the feature
loss for every step). Scores on the held-out images: bicubic enlargement of the damaged input,
the U-Net at the end of its feature-loss pretraining, the no-GAN run of equal length, after the
GAN phase, and the best checkpoint. Prints the table with each PSNR's gain over bicubic (dB) and
each perceptual distance's ratio to bicubic's; writes before/after sheets to
benchmarks/restore/.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganvas import checkpoint as ckpt
from ganvas.config import load_config
from ganvas.data.example import load_example_arrays
from ganvas.data.store import base_manifest, save_dataset
from ganvas.grid import image_grid, to_pil
from ganvas.inference import to_uint8_nhwc
from ganvas.io import save_image_atomic
from ganvas.metrics.restoration import bicubic, restoration_scores
from ganvas.models.restore import held_out_pairs, restore_batches
from ganvas.restore import load_restorer
from ganvas.training.trainer import train

OUT = Path(__file__).resolve().parent / "restore"


def emoji_dataset(dest: Path, n: int, val_fraction: float = 0.1):
    images, _, _, names = load_example_arrays()  # 64 px RGB
    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(len(images), min(n, len(images)), replace=False))
    images = images[chosen]
    manifest = base_manifest(64, 3, [])
    n_val = max(8, int(len(images) * val_fraction))
    manifest.update(sources=["builtin:noto-emoji"], files=[names[i] for i in chosen], dropped=[],
                    params={}, splits={"val": list(range(len(images) - n_val, len(images)))})  # fmt: skip
    return save_dataset(dest, images, None, manifest)


def calibrate() -> None:
    """The measurement behind FEATURE_SCALE and the Gram factor (objectives/restore.py)."""
    from skimage import data as photos

    from ganvas.objectives.restore import FeatureLoss

    pictures = [photos.astronaut(), photos.coffee(), photos.chelsea(), photos.rocket()]
    clean = torch.stack([F.interpolate(torch.from_numpy(p).permute(2, 0, 1)[None].float(),
                                       size=(64, 64), mode="area")[0] for p in pictures])  # fmt: skip
    clean = clean / 127.5 - 1
    damaged = F.interpolate(F.interpolate(clean, scale_factor=0.5, mode="bilinear"),
                            size=(64, 64), mode="bicubic")  # fmt: skip
    with torch.no_grad():
        _, terms = FeatureLoss(1.0, (5.0, 15.0, 2.0), 200.0)(damaged, clean)
    print({k: round(float(v), 4) for k, v in terms.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--g-steps", type=int, default=300)
    parser.add_argument("--d-steps", type=int, default=60)
    parser.add_argument("--gan-steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--eval-interval", type=int, default=25)
    parser.add_argument("--calibrate", action="store_true")
    args = parser.parse_args()
    if args.calibrate:
        return calibrate()
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    data = emoji_dataset(work / "emoji64", args.images)
    steps = args.g_steps + args.d_steps + args.gan_steps
    gan_start = args.g_steps + args.d_steps
    overrides = {"data.path": str(data.path), "model.g_pretrain_steps": args.g_steps,
                 "model.d_pretrain_steps": args.d_steps,
                 "model.encoder_frozen_steps": args.g_steps // 4, "train.steps": steps,
                 "train.batch_size": args.batch, "optim.lr_schedule": [[gan_start, 0.2]],
                 "train.checkpoint_interval": args.g_steps, "train.keep_checkpoints": 100,
                 "train.eval_interval": args.eval_interval, "train.eval_n": 64,
                 "train.sample_interval": steps, "train.device": "cpu", "train.energy": False,
                 "train.tensorboard": False}  # fmt: skip
    config = load_config(preset="restore-x2-32to64", overrides=overrides)
    started = time.perf_counter()
    train(config, work / "run", progress=False)
    seconds = time.perf_counter() - started
    no_gan = load_config(preset="restore-x2-32to64", overrides={
        **overrides, "model.g_pretrain_steps": steps, "model.d_pretrain_steps": 0,
        "train.eval_interval": 0})  # fmt: skip
    started = time.perf_counter()
    train(no_gan, work / "no-gan", progress=False)
    no_gan_seconds = time.perf_counter() - started

    damaged, clean = held_out_pairs(config, data, "val", 10_000)
    outputs = {"bicubic": bicubic(damaged, clean.shape[-1])}
    checkpoints = {"U-Net, feature loss only (before GAN)": args.g_steps,
                   "NoGAN (after the GAN phase)": None,
                   "NoGAN, best checkpoint (val perceptual)": "best"}  # fmt: skip
    for name, which in checkpoints.items():
        restorer = load_restorer(work / "run", checkpoint=which, device="cpu")
        outputs[f"{name}, step {restorer.step}"] = restore_batches(restorer.G, damaged)
        if which == args.g_steps:
            restorer = load_restorer(work / "no-gan", device="cpu")
            name = f"U-Net, feature loss only, equal length (no GAN), step {restorer.step}"
            outputs[name] = restore_batches(restorer.G, damaged)
    scores = {name: restoration_scores(out, clean) for name, out in outputs.items()}
    base = scores["bicubic"]
    print(f"restore-x2-32to64 (cut: {args.g_steps} + {args.d_steps} + {args.gan_steps} steps, "
          f"batch {args.batch}) on {len(data) - len(damaged)} emoji, scored on {len(damaged)} "
          f"held out; training {seconds:.0f} s on the CPU (the no-GAN run: "
          f"{no_gan_seconds:.0f} s)")  # fmt: skip
    print("| method | PSNR (dB) | vs bicubic (dB) | SSIM | perceptual | ÷ bicubic |")
    print("|---|---|---|---|---|---|")
    for name, s in scores.items():
        print(f"| {name} | {s['psnr']:.2f} | {s['psnr'] - base['psnr']:+.2f} | {s['ssim']:.3f} "
              f"| {s['perceptual']:.3f} | {s['perceptual'] / base['perceptual']:.2f} |")  # fmt: skip
    OUT.mkdir(exist_ok=True)
    shown = F.interpolate(damaged[:8], size=clean.shape[-2:], mode="nearest")
    columns = [shown, *(out[:8] for out in outputs.values()), clean[:8]]
    rows = torch.stack(columns, dim=1).flatten(0, 1)  # per image: damaged | each method | clean
    sheet = image_grid(to_uint8_nhwc(rows), nrow=len(columns))
    save_image_atomic(OUT / "sheet.png", to_pil(sheet))
    print(f"columns of {OUT / 'sheet.png'}: damaged input (nearest) | " +
          " | ".join(outputs) + " | clean")  # fmt: skip
    best = ckpt.best_checkpoint(work / "run")
    print(f"best checkpoint: {best.name if best else None}; work dir {work}")


if __name__ == "__main__":
    main()
