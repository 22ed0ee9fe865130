"""Peak memory of `ganvas prepare` on a collection larger than the memory it should use.

Runs the real command in a subprocess and samples /proc every 20 ms for the main process and
each worker: RssAnon (memory the process owns: Python objects, arrays in flight) and RssFile
(pages of files mapped into it, which the kernel can drop at any time). "Bounded memory" means
RssAnon stays flat as the collection grows, far below the size of the dataset written. Linux
only; not a test.

    python benchmarks/bench_prepare_memory.py SOURCE_FOLDER --size 256
    python benchmarks/bench_prepare_memory.py --make-lmdb 50000 --size 32   # LSUN-style LMDB
    python benchmarks/bench_prepare_memory.py --make-lmdb 200000 --size 32  # ~3 min here

SOURCE may be anything `ganvas prepare` reads (a folder, an LMDB, an archive, …);
`--make-lmdb N` first writes an LMDB of N synthetic 32×32 JPEGs (keys → JPEG bytes, as LSUN's)
into a temporary folder and measures on that.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def status_kib(pid: int) -> dict[str, int]:
    """RssAnon / RssFile of a process in KiB (empty when it has gone)."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def make_lmdb(path: Path, count: int, side: int = 32) -> None:
    """An LSUN-style LMDB: `count` keys → JPEG bytes of small noisy synthetic pictures."""
    import io

    import lmdb
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, side, side, 3), dtype=np.uint8)
    env = lmdb.open(str(path), map_size=max(64, count // 200) * 2**20)
    txn = env.begin(write=True)
    for k in range(count):
        picture = np.roll(base[k % 64], k // 64, axis=1)  # distinct pictures, cheaply
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, "JPEG", quality=90)
        txn.put(f"{k:040x}".encode(), buffer.getvalue())
        if k % 10_000 == 9_999:
            txn.commit()
            txn = env.begin(write=True)
    txn.commit()
    env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, nargs="?")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--make-lmdb", type=int, default=0, metavar="N",
                        help="measure on a new LMDB of N synthetic 32x32 JPEGs")  # fmt: skip
    parser.add_argument("extra", nargs="*", help="more prepare options, after --")
    args = parser.parse_args()
    if (args.source is None) == (args.make_lmdb == 0):
        parser.error("give a SOURCE or --make-lmdb N")
    with tempfile.TemporaryDirectory() as tmp:
        if args.make_lmdb:
            args.source = Path(tmp) / f"synthetic_{args.make_lmdb}_lmdb"
            started = time.perf_counter()
            make_lmdb(args.source, args.make_lmdb)
            mib = (args.source / "data.mdb").stat().st_size / 2**20
            print(
                f"made {args.source.name}: {mib:.0f} MiB in {time.perf_counter() - started:.1f} s"
            )
        out = Path(tmp) / "dataset"
        command = [sys.executable, "-m", "ganvas.cli", "prepare", str(args.source), "--out",
                   str(out), "--size", str(args.size), "--workers", str(args.workers),
                   *args.extra]  # fmt: skip
        print("command:", shlex.join(command))
        peak = {"main RssAnon": 0, "main RssFile": 0, "worker RssAnon": 0, "worker RssFile": 0}
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while process.poll() is None:
            for role, pids in (("main", [process.pid]), ("worker", children(process.pid))):
                for pid in pids:
                    for key, kib in status_kib(pid).items():
                        peak[f"{role} {key}"] = max(peak[f"{role} {key}"], kib)
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        stderr = process.stderr.read().decode() if process.stderr else ""
        if process.returncode != 0:
            sys.exit(f"prepare failed ({process.returncode}):\n{stderr}")
        dataset_mib = (out / "images.npy").stat().st_size / 2**20
        print(stderr.strip().splitlines()[-1])
        print(f"images.npy: {dataset_mib:.0f} MiB, wall {seconds:.1f} s")
        for key, kib in peak.items():
            print(f"peak {key:16s} {kib / 1024:8.0f} MiB")
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
