"""`gpupix run` over a folder against `pngquant --nofs` over the same folder; memory vs size.

    python benchmarks/bench_run.py [--images 200] [--memory]

Throughput: 200 photos of 0.25 Mpx (generated from scikit-image's bundled photos), k=16,
both tools on this machine, wall-clock for the whole folder; the target is >= 3x pngquant.
``--memory``: peak RSS of a run over 2,000 images against one over 200 (target <= 1.2x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from PIL import Image

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _images import photo_set  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def write_images(folder: Path, count: int, pixels: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(photo_set(count, pixels)):
        Image.fromarray(image).save(folder / f"img{i:05d}.png", compress_level=1)


def gpupix_command(folder: Path, out: Path, k: int, metrics: list[str]) -> list[str]:
    config = {"job": "quantize", "input": {"paths": [str(folder)]}, "output": {"dir": str(out)},
              "backend": "cpu", "quantize": {"k": k}, "metrics": metrics,
              "batch": {"size": 16, "prefetch": 2, "io_workers": 2}}
    job = out.parent / f"{out.name}.yaml"
    job.write_text(yaml.safe_dump(config))
    return [sys.executable, "-m", "gpupix.cli", "run", str(job), "--quiet"]


def timed(command: list[str], **kwargs) -> tuple[float, int]:
    """Wall seconds and the child's peak RSS in KiB (its own, via wait4)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, **kwargs)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:4]} failed with status {status}")
    return seconds, usage.ru_maxrss


def throughput(count: int, k: int) -> None:
    pngquant = shutil.which("pngquant")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        write_images(folder, count, 512 * 512)
        files = sorted(str(p) for p in folder.glob("*.png"))
        seconds = {}
        for metrics in ([], ["psnr", "delta_e", "ssim"]):
            took, _ = timed(gpupix_command(folder, Path(tmp) / f"out{len(metrics)}", k, metrics))
            seconds[bool(metrics)] = took
            print(f"gpupix run, metrics={metrics or 'none'}: {took:.2f} s, "
                  f"{count / took:.1f} images/s")
        if pngquant is None:
            print("pngquant is not installed: no ratio (apt-get install pngquant)")
            return
        # pngquant writes NAME-nofs.png beside each input; one process for the whole folder
        theirs, _ = timed([pngquant, "--nofs", "--force", str(k), *files])
        print(f"pngquant --nofs {k}: {theirs:.2f} s, {count / theirs:.1f} images/s")
        print(f"throughput ratio against pngquant: {theirs / seconds[False]:.2f}x without "
              f"metrics, {theirs / seconds[True]:.2f}x with psnr, delta_e, ssim (target >= 3x)")


def memory(k: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        figures = {}
        for count in (200, 2000):
            folder = Path(tmp) / f"images{count}"
            write_images(folder, count, 128 * 128)
            seconds, rss = timed(gpupix_command(folder, Path(tmp) / f"out{count}", k,
                                                ["psnr"]))
            figures[count] = rss
            print(f"{count} images: {seconds:.1f} s, peak RSS {rss / 1024:.1f} MiB")
        print(f"peak RSS ratio 2000/200: {figures[2000] / figures[200]:.3f} (target <= 1.2)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("-k", type=int, default=16)
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    throughput(args.images, args.k)
    if args.memory:
        memory(args.k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
