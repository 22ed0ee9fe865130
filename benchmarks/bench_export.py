"""Sampling throughput: the PyTorch generator versus its ONNX export run by onnxruntime.

For each preset, trains one step on random images (the weights do not change the speed),
exports G with `ganvas.export.export_generator`, and times `GeneratorPipeline.generate`
(eval mode, no_grad) against `OnnxGenerator.generate` on the same latents, alternately, at
batch 1 and batch 64, with the same number of threads. Prints img/s for each and the ratio
onnxruntime / PyTorch, and checks that both give the same images (max |difference|).

    python benchmarks/bench_export.py --presets dcgan-64,stylegan2-ada-32 --threads 2
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ganvas.config import load_config
from ganvas.export import OnnxGenerator, export_generator
from ganvas.generate import load
from ganvas.training.trainer import train

try:
    from bench_train import synthetic_dataset
except ImportError:  # run from the repository root as benchmarks/bench_export.py
    from benchmarks.bench_train import synthetic_dataset


def images_per_s(generate, z: torch.Tensor, seconds: float) -> tuple[float, list[float]]:
    """Median img/s of repeated generate(z) calls over about `seconds` (after a warm-up)."""
    generate(z)
    rates, spent = [], 0.0
    while spent < seconds or len(rates) < 3:
        start = time.perf_counter()
        generate(z)
        took = time.perf_counter() - start
        spent += took
        rates.append(len(z) / took)
    return statistics.median(rates), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="dcgan-64,stylegan2-ada-32")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, cpu; onnxruntime CPU provider, "
          f"{args.threads} intra-op threads")  # fmt: skip
    rows = []
    for preset in args.presets.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_config(preset=preset, overrides={"train.device": "cpu", "train.steps": 1,
                                                        "train.batch_size": 8,
                                                        "train.tensorboard": False,
                                                        "train.energy": False,
                                                        "train.collapse_check": "off"})  # fmt: skip
            data = synthetic_dataset(Path(tmp), cfg.model.resolution, count=16)
            train(cfg.replace(**{"data.path": str(data)}), Path(tmp) / "run", progress=False)
            exported = export_generator(Path(tmp) / "run", Path(tmp) / "g.onnx")
            pipeline = load(Path(tmp) / "run", device="cpu")
            onnx = OnnxGenerator(exported.path, threads=args.threads)
            for batch in map(int, args.batches.split(",")):
                z = pipeline.latents(batch, seed=0)
                labels = (
                    torch.arange(batch) % pipeline.num_classes if pipeline.conditional else None
                )

                torch_generate = functools.partial(pipeline.generate, labels=labels,
                                                   batch_size=batch)  # fmt: skip
                onnx_generate = functools.partial(onnx.generate, labels=labels, batch_size=batch)
                gap = (torch_generate(z) - onnx_generate(z)).abs().max().item()
                torch_rate, _ = images_per_s(torch_generate, z, args.seconds)
                onnx_rate, _ = images_per_s(onnx_generate, z, args.seconds)
                torch_again, _ = images_per_s(torch_generate, z, args.seconds)  # drift check
                torch_rate = statistics.mean([torch_rate, torch_again])
                rows.append((preset, batch, torch_rate, onnx_rate, gap))
                print(f"{preset:18} batch {batch:3}: torch {torch_rate:9.1f} img/s, onnxruntime "
                      f"{onnx_rate:9.1f} img/s, ratio {onnx_rate / torch_rate:.2f}, max |diff| "
                      f"{gap:.1e}", flush=True)  # fmt: skip
    print("\n| preset | batch | PyTorch img/s | onnxruntime img/s | ratio ort / torch | max diff |")
    print("|---|---|---|---|---|---|")
    for preset, batch, t, o, gap in rows:
        print(f"| {preset} | {batch} | {t:.1f} | {o:.1f} | {o / t:.2f} | {gap:.1e} |")


if __name__ == "__main__":
    main()
