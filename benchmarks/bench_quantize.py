"""Quantize op against libimagequant (speed) and pngquant --nofs (quality), same run.

    python benchmarks/bench_quantize.py [--quick]

For each photo and k it prints our op time, libimagequant's (the PyPI ``imagequant``
package, in-process, no dithering) and their ratio; PSNR and mean CIEDE2000 of ours and of
``pngquant --nofs`` (skipped with a note when the pngquant binary is absent). Targets
Targets: ratio >= 10, PSNR >= pngquant + 0.1 dB, delta E <= pngquant's.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _images import PHOTOS, photo  # noqa: E402

from gpupix.backends import get_backend  # noqa: E402
from gpupix.ops.metrics import delta_e, psnr  # noqa: E402
from gpupix.ops.quantize import quantize  # noqa: E402


def best_time(function, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def pngquant_image(image: np.ndarray, k: int, workdir: Path) -> np.ndarray | None:
    binary = shutil.which("pngquant")
    if binary is None:
        return None
    source, target = workdir / "in.png", workdir / "out.png"
    Image.fromarray(image).save(source)
    subprocess.run([binary, "--nofs", "--force", "--output", str(target), str(k), str(source)],
                   check=True)
    return np.asarray(Image.open(target).convert("RGB"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one size, one repeat")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--color-space", default="rgb_lab")
    args = parser.parse_args()
    import imagequant

    backend = get_backend(args.backend)
    sizes = [("0.25Mpx", 512 * 512)] + ([] if args.quick else [("4Mpx", 2048 * 2048)])
    repeats = 1 if args.quick else 3
    misses = []
    print(f"{'image':<22}{'k':>4}{'ours ms':>9}{'liq ms':>9}{'ratio':>7}"
          f"{'psnr':>8}{'pq psnr':>9}{'dE':>7}{'pq dE':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for size_name, pixels in sizes:
            for name in PHOTOS:
                image = photo(name, pixels)
                pil = Image.fromarray(image)
                device_image = backend.to_device(image)
                for k in (16, 64, 256):
                    def ours(k=k, device_image=device_image):
                        result = quantize(device_image, k=k, backend=backend,
                                          color_space=args.color_space)
                        backend.synchronize()
                        return result

                    ours_s, result = best_time(ours, repeats)
                    liq_s, _ = best_time(lambda k=k, pil=pil: imagequant.quantize_pil_image(
                        pil, dithering_level=0.0, max_colors=k), repeats)
                    palette = backend.to_host(result.palette)
                    indices = backend.to_host(result.indices)
                    out = palette[indices]
                    ours_psnr, ours_de = psnr(image, out), delta_e(image, out)
                    reference = pngquant_image(image, k, Path(tmp))
                    ratio = liq_s / ours_s
                    label = f"{name} {size_name}"
                    if reference is None:
                        pq_psnr = pq_de = float("nan")
                    else:
                        pq_psnr, pq_de = psnr(image, reference), delta_e(image, reference)
                        if ours_psnr < pq_psnr + 0.1 or ours_de > pq_de:
                            misses.append(f"{label} k={k}: quality")
                    if ratio < 10:
                        misses.append(f"{label} k={k}: speed {ratio:.1f}x")
                    print(f"{label:<22}{k:>4}{ours_s * 1e3:>9.1f}{liq_s * 1e3:>9.1f}{ratio:>7.1f}"
                          f"{ours_psnr:>8.2f}{pq_psnr:>9.2f}{ours_de:>7.3f}{pq_de:>7.3f}")
    print("targets missed:" if misses else "all targets met", *misses, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
