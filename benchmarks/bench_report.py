"""What the report costs: quantize N small generated images with ``report: true``, and
rebuild the report on its own; prints the times and the ratios.

The target: the report takes at most 10% of the run's time for 1,000 images.
Within one run, the run's own time is ``summary.json``'s ``wall_seconds`` (everything before
the report) and the report's is the rest, so both are measured under the same load; on a
shared machine that is steadier than comparing two runs. ``--compare`` also times a run
with ``report: false``.

    python benchmarks/bench_report.py [--images 1000] [--size 96] [--k 16] [--compare]
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
    """Wall seconds of the whole run, and of the run before its report (summary.json)."""
    config = validate_config({"job": "quantize", "input": {"paths": [str(source)]},
                              "output": {"dir": str(out), "overwrite": True}, "backend": "cpu",
                              "quantize": {"k": k}, "report": report})
    backend = get_backend("cpu")
    start = time.perf_counter()
    result = run_job(config, backend)
    seconds = time.perf_counter() - start
    assert result.counts["ok"] == len(result.rows), result.counts
    assert (result.report is not None) == report
    return seconds, result.summary["wall_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--compare", action="store_true", help="also run with report: false")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gpupix-bench-report-") as temp:
        root = Path(temp)
        (root / "in").mkdir()
        make_images(root / "in", args.images, args.size)
        print(f"{args.images} images of {args.size}x{args.size}, quantize k={args.k}, cpu")
        (root / "warm").mkdir()
        make_images(root / "warm", 8, args.size)
        run(root / "warm", root / "warm-out", k=args.k, report=True)  # imports, caches
        total, before = run(root / "in", root / "on", k=args.k, report=True)
        start = time.perf_counter()
        rebuild_report(root / "on")
        alone = time.perf_counter() - start
        off = run(root / "in", root / "off", k=args.k, report=False)[0] if args.compare \
            else None
        files = list((root / "on" / "report").rglob("*"))
        size = sum(p.stat().st_size for p in files if p.is_file())
        html = (root / "on" / "report.html").stat().st_size
    written = total - before
    print(f"run with report: {total:.2f} s = run {before:.2f} s + report {written:.2f} s "
          f"-> report = {written / before:.1%} of the run's time (target <= 10%)")
    print(f"report rebuilt alone (gpupix report): {alone:.2f} s = {alone / before:.1%} "
          f"of the run; {1e3 * alone / args.images:.2f} ms an image")
    if off is not None:
        print(f"run with report: false: {off:.2f} s (two runs: load on the machine moves it)")
    print(f"report.html {html / 1e6:.2f} MB, report/ {size / 1e6:.2f} MB in {len(files)} files")


if __name__ == "__main__":
    main()
