"""Time to evaluate a run: FID/KID/precision-recall of n samples at 64x64, first run (the real
images' Inception features are computed) versus second run (read from the cache).

    python benchmarks/bench_evaluate.py --n 500          # needs the Inception weights file
    python benchmarks/bench_evaluate.py --n 10000        # the issue's size (slow on a CPU)

The reference is an untrained 64 px DCGAN (only the timing matters) against the built-in emoji
at 64 px. As a plain reference the script also times the Inception network alone on the same
2n images, so the ratio shows what ganvas adds around it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ganvas.config import load_config
from ganvas.data.example import write_example_dataset
from ganvas.generate import load
from ganvas.metrics import FeatureExtractor, evaluate
from ganvas.training.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--metrics", default="fid,kid,pr")
    parser.add_argument("--weights", default=None, help="Inception weights (default: env / cache)")
    args = parser.parse_args()
    metrics = tuple(args.metrics.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_example_dataset(tmp / "emoji64", size=64)
        cfg = load_config(preset="dcgan-64", overrides={"data.path": str(data.path), "train.steps": 1,
                                                        "train.batch_size": 16, "train.device": "cpu",
                                                        "train.tensorboard": False})  # fmt: skip
        train(cfg, tmp / "run", progress=False)
        pipeline = load(tmp / "run")
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            scores = evaluate(pipeline, data, metrics=metrics, n=args.n, weights=args.weights,
                              cache_dir=tmp / "cache", verbose=False)  # fmt: skip
            timings.append(time.perf_counter() - started)
        extractor = FeatureExtractor.inception(args.weights)
        images = torch.cat([pipeline.sample(args.n, seed=0),
                            torch.from_numpy(np.array(data.images[: args.n])).permute(0, 3, 1, 2)])  # fmt: skip
        started = time.perf_counter()
        extractor.features(images)
        plain = time.perf_counter() - started
    n_real = min(args.n, len(data))
    print(f"n={args.n} generated, {n_real} real, 64x64, metrics {','.join(metrics)}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu")  # fmt: skip
    print(f"first run (real features computed): {timings[0]:8.1f} s")
    print(f"second run (real features cached)  : {timings[1]:8.1f} s")
    print(f"Inception alone on the same images : {plain:8.1f} s   (ratio first run / plain "
          f"{timings[0] / plain:.2f})")  # fmt: skip
    print("scores:", {k: round(v, 3) for k, v in scores.items() if isinstance(v, float)})


if __name__ == "__main__":
    main()
