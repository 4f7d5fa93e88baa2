"""Peak memory of a run against the number of images: 1,000 vs 10,000 small images.

The engine keeps a bounded window of images in flight, so peak RSS should barely move
with the image count (target: 10,000 within 1.2x of 1,000). Each run is a fresh
``python -m gpupix.cli run`` subprocess; its peak RSS is ``ru_maxrss`` from ``wait4``.

    python benchmarks/bench_memory.py [--counts 1000 10000] [--side 8]

Prints one line per run and the ratio. Images are 8x8 with 4 colours and metrics are off,
so the run measures the engine's bookkeeping, not the per-image compute.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_images(folder: Path, count: int, side: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        levels = rng.integers(0, 2, (side, side, 3)).astype(np.uint8) * 200
        Image.fromarray(levels).save(folder / f"img{i:05d}.png", compress_level=1)


def peak_rss_of_run(job: Path) -> tuple[int, float, int]:
    """Peak RSS in bytes, wall seconds and exit code of one CLI run in a child process."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "gpupix.cli", "run", str(job), "--quiet"],
                               cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss * 1024, time.perf_counter() - start, process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--side", type=int, default=8)
    args = parser.parse_args()
    peaks = {}
    with tempfile.TemporaryDirectory(prefix="gpupix-bench-memory-") as scratch:
        for count in args.counts:
            folder = Path(scratch) / f"n{count}"
            make_images(folder / "images", count, args.side)
            job = folder / "job.yaml"
            job.write_text(yaml.safe_dump({
                "job": "quantize", "input": {"paths": ["images"]}, "output": {"dir": "out"},
                "backend": "cpu", "quantize": {"k": 16}, "metrics": []}))
            peak, seconds, code = peak_rss_of_run(job)
            peaks[count] = peak
            print(f"{count:>6} images  peak RSS {peak / 2**20:7.1f} MiB  {seconds:7.1f} s  "
                  f"exit {code}", flush=True)
    if len(peaks) >= 2:
        small, large = min(peaks), max(peaks)
        print(f"ratio {large}/{small} images: {peaks[large] / peaks[small]:.3f}x "
              "(target <= 1.2x)")


if __name__ == "__main__":
    main()
