"""What the report costs: quantize N small generated images with ``report: false`` and
``report: true``, and rebuild the report on its own; prints the times and the ratios.

The target (issue 6): the report takes at most 10% of the run's time for 1,000 images.

    python benchmarks/bench_report.py [--images 1000] [--size 96] [--k 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from gpupix.backends import get_backend
from gpupix.config import validate_config
from gpupix.pipeline import run_job
from gpupix.report import rebuild_report


def make_images(folder: Path, count: int, size: int) -> None:
    """Smooth gradients with a few coloured discs and mild noise: many distinct colours."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(count):
        base = rng.uniform(0, 255, (3, 3)).astype(np.float32)
        image = base[0] + np.multiply.outer(x, base[1] - base[0]) + np.multiply.outer(
            y, base[2] - base[0]) * 0.5
        for _ in range(3):
            cx, cy, r = rng.uniform(0, 1, 3) * (1, 1, 0.3)
            disc = (x - cx) ** 2 + (y - cy) ** 2 < r**2
            image[disc] = rng.uniform(0, 255, 3)
        image += rng.normal(0, 6, image.shape)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"{i:05d}.png")


def run(source: Path, out: Path, *, k: int, report: bool) -> tuple[float, float]:
    """Wall and CPU seconds (all threads) of one run; CPU time is steadier on a shared box."""
    config = validate_config({"job": "quantize", "input": {"paths": [str(source)]},
                              "output": {"dir": str(out), "overwrite": True}, "backend": "cpu",
                              "quantize": {"k": k}, "report": report})
    backend = get_backend("cpu")
    start, cpu = time.perf_counter(), time.process_time()
    result = run_job(config, backend)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert result.counts["ok"] == len(result.rows), result.counts
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--k", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gpupix-bench-report-") as temp:
        root = Path(temp)
        (root / "in").mkdir()
        make_images(root / "in", args.images, args.size)
        print(f"{args.images} images of {args.size}x{args.size}, quantize k={args.k}, cpu")
        (root / "warm").mkdir()
        make_images(root / "warm", 8, args.size)
        run(root / "warm", root / "warm-out", k=args.k, report=True)  # imports, caches
        off = run(root / "in", root / "off", k=args.k, report=False)
        on = run(root / "in", root / "on", k=args.k, report=True)
        start, cpu = time.perf_counter(), time.process_time()
        rebuild_report(root / "on")
        alone = (time.perf_counter() - start, time.process_time() - cpu)
        files = list((root / "on" / "report").rglob("*"))
        size = sum(p.stat().st_size for p in files if p.is_file())
        html = (root / "on" / "report.html").stat().st_size
    for name, index in (("wall", 0), ("cpu", 1)):
        print(f"{name}: run with report off {off[index]:8.2f} s, on {on[index]:8.2f} s "
              f"(+{(on[index] - off[index]) / off[index]:.1%}); report alone (rebuild) "
              f"{alone[index]:6.2f} s = {alone[index] / off[index]:.1%} of the run "
              "(target <= 10%)")
    print(f"report.html {html / 1e6:.2f} MB, report/ {size / 1e6:.2f} MB in {len(files)} files")


if __name__ == "__main__":
    main()
