"""gpupix against pngquant / libimagequant, four figures side by side in one run.

    python benchmarks/bench_throughput.py [--images 200] [--sets heldout,tuning]
        [--parts folder,op,quality,startup] [--big]

1. Folder throughput: whole ``gpupix run`` processes over a folder of ``--images`` photos of
   0.25 Mpx against one ``pngquant --nofs`` process over the same files (a copy of them, so
   neither tool sees the other's outputs): the DEFAULT config (metrics and report on) at
   k=64, ``metrics: []`` + ``report: false`` at k=64, and the default config at k=256.
   Targets: >= 3x, >= 4x, >= 2x pngquant's images per second. A last line runs the second
   case on one compute thread: the executor's gain from every core.
2. The op alone (decoded array -> palette + indices, cpu) against libimagequant in-process
   (no dithering) at 0.25 Mpx for k = 16, 64, 256, and at 4 Mpx. Targets: >= 3x at
   0.25 Mpx, >= 10x at 4 Mpx. Best of ``--repeat`` interleaved rounds.
3. Quality against ``pngquant --nofs`` per photo and k (scikit-image's PSNR and
   CIEDE2000 on the full image, the oracle): the dual condition is PSNR >= pngquant's +
   0.1 dB and mean CIEDE2000 <= pngquant's.
4. Start-up: ``gpupix run`` (default config) on one 64x64 image, best of three.

Photos come from ``benchmarks/_images.py``: ``heldout`` (never tuned on: judge by these)
and ``tuning``. Absolute seconds are noisy on a shared machine; the ratios are measured in
the same run, interleaved, and the load average is printed with them.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _images import HELDOUT, TUNING, photo, photo_set  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETS = {"heldout": HELDOUT, "tuning": TUNING}
SMALL, BIG = 512 * 512, 2048 * 2048


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_timed(command: list[str]) -> float:
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True)
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command[:5])} failed ({completed.returncode}):\n"
                         f"{completed.stderr.decode(errors='replace')[-2000:]}")
    return seconds


def gpupix_command(folder: Path, out: Path, k: int, *, defaults: bool,
                   compute_workers: int | None = None) -> list[str]:
    """``gpupix run`` with the config as shipped (``defaults``) or metrics and report off."""
    config: dict = {"job": "quantize", "input": {"paths": [str(folder)]},
                    "output": {"dir": str(out), "overwrite": True}, "quantize": {"k": k}}
    if not defaults:
        config.update({"metrics": [], "report": False})
    if compute_workers is not None:
        config["batch"] = {"compute_workers": compute_workers}
    job = out.parent / f"{out.name}.yaml"
    job.write_text(yaml.safe_dump(config))
    return [sys.executable, "-m", "gpupix.cli", "run", str(job), "--quiet"]


def folder_throughput(set_name: str, count: int, rounds: int, tmp: Path) -> list[str]:
    """Part 1: whole processes over one folder; returns the missed targets."""
    pngquant = shutil.which("pngquant")
    if pngquant is None:
        print("pngquant is not installed: no folder ratios (apt-get install pngquant)")
        return [f"folder {set_name}: not measured (no pngquant)"]
    folder, theirs = tmp / f"{set_name}-in", tmp / f"{set_name}-pq"
    folder.mkdir()
    theirs.mkdir()
    for i, image in enumerate(photo_set(count, SMALL, names=SETS[set_name])):
        Image.fromarray(image).save(folder / f"img{i:05d}.png", compress_level=1)
        shutil.copy(folder / f"img{i:05d}.png", theirs / f"img{i:05d}.png")
    files = sorted(str(p) for p in theirs.glob("img*.png"))
    cases = [("default config, k=64", 64, True, None, 3.0),
             ("metrics: [] report: false, k=64", 64, False, None, 4.0),
             ("default config, k=256", 256, True, None, 2.0),
             ("same, one compute thread, k=64", 64, False, 1, 0.0)]
    ours: dict[str, float] = {}
    peer: dict[int, float] = {}
    for _ in range(rounds):  # interleaved: each gpupix case next to its pngquant run
        for case, (label, k, defaults, workers, _target) in enumerate(cases):
            out = tmp / f"{set_name}-out-{case}"
            ours[label] = min(ours.get(label, math.inf), run_timed(gpupix_command(
                folder, out, k, defaults=defaults, compute_workers=workers)))
            peer[k] = min(peer.get(k, math.inf), run_timed(
                [pngquant, "--nofs", "--force", "--ext", f"-pq{k}.png", str(k), *files]))
    misses = []
    for label, k, _defaults, _workers, target in cases:
        ratio = peer[k] / ours[label]
        goal = f"(target >= {target:g}x)" if target else "(all cores / one: the line above)"
        print(f"  {set_name:<8}{label:<34}{count / ours[label]:>9.1f}{count / peer[k]:>10.1f}"
              f"{ratio:>8.2f}x  {goal}")
        if ratio < target:
            misses.append(f"folder {set_name} {label}: {ratio:.2f}x")
    return misses


def best_of(repeat: int, *functions):
    times = [math.inf] * len(functions)
    results: list = [None] * len(functions)
    for _ in range(repeat):
        for i, function in enumerate(functions):
            start = time.perf_counter()
            results[i] = function()
            times[i] = min(times[i], time.perf_counter() - start)
    return times, results


def op_speed(set_name: str, big: bool, repeat: int) -> list[str]:
    """Part 2: the op alone against libimagequant in-process."""
    import imagequant

    from gpupix.backends import CpuBackend
    from gpupix.ops.quantize import quantize

    backend = CpuBackend()
    misses = []
    sizes = [("0.25Mpx", SMALL, 3.0)] + ([("4Mpx", BIG, 10.0)] if big else [])
    for size_name, pixels, target in sizes:
        ratios: dict[int, list[float]] = {16: [], 64: [], 256: []}
        for name in SETS[set_name]:
            image = photo(name, pixels)
            pil = Image.fromarray(image)
            for k in ratios:
                (ours_s, liq_s), _ = best_of(
                    repeat, lambda k=k, image=image: quantize(image, k=k, backend=backend),
                    lambda k=k, pil=pil: imagequant.quantize_pil_image(
                        pil, dithering_level=0.0, max_colors=k))
                ratios[k].append(liq_s / ours_s)
                print(f"  {set_name:<8}{name:<22}{size_name:>8}{k:>5}{ours_s * 1e3:>9.1f}"
                      f"{liq_s * 1e3:>9.1f}{liq_s / ours_s:>8.2f}x")
        for k, values in ratios.items():
            worst, geo = min(values), math.exp(np.mean(np.log(values)))
            print(f"  {set_name:<8}{'ALL (worst / geomean)':<22}{size_name:>8}{k:>5}"
                  f"{'':>18}{worst:>8.2f}x / {geo:.2f}x  (target >= {target:g}x)")
            if worst < target:
                misses.append(f"op {set_name} {size_name} k={k}: worst {worst:.2f}x")
    return misses


def pngquant_image(image: np.ndarray, k: int, workdir: Path) -> np.ndarray:
    source, target = workdir / "in.png", workdir / "out.png"
    Image.fromarray(image).save(source)
    subprocess.run(["pngquant", "--nofs", "--force", "--output", str(target), str(k),
                    str(source)], check=True)
    return np.asarray(Image.open(target).convert("RGB"))


def quality(set_name: str, big: bool, tmp: Path) -> tuple[list[str], int, int]:
    """Part 3: PSNR and mean CIEDE2000 of ours and of pngquant --nofs, per photo and k."""
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import peak_signal_noise_ratio

    from gpupix.backends import CpuBackend
    from gpupix.ops.quantize import quantize

    if shutil.which("pngquant") is None:
        print("pngquant is not installed: no quality comparison (apt-get install pngquant)")
        return [f"quality {set_name}: not measured (no pngquant)"], 0, 0
    backend = CpuBackend()
    misses, held, total = [], 0, 0
    sizes = [("0.25Mpx", SMALL)] + ([("4Mpx", BIG)] if big else [])
    for size_name, pixels in sizes:
        for name in SETS[set_name]:
            image = photo(name, pixels)
            lab = rgb2lab(image)
            for k in (16, 64, 256):
                result = quantize(image, k=k, backend=backend)
                ours = result.palette[result.indices]
                reference = pngquant_image(image, k, tmp)
                ours_psnr = peak_signal_noise_ratio(image, ours, data_range=255)
                pq_psnr = peak_signal_noise_ratio(image, reference, data_range=255)
                ours_de = float(deltaE_ciede2000(lab, rgb2lab(ours)).mean())
                pq_de = float(deltaE_ciede2000(lab, rgb2lab(reference)).mean())
                ok = ours_psnr >= pq_psnr + 0.1 and ours_de <= pq_de
                held += ok
                total += 1
                if not ok:
                    misses.append(f"quality {set_name} {name} {size_name} k={k}")
                print(f"  {set_name:<8}{name:<22}{size_name:>8}{k:>5}{ours_psnr:>8.2f}"
                      f"{pq_psnr:>8.2f}{ours_psnr - pq_psnr:>+7.2f}{ours_de:>7.3f}{pq_de:>7.3f}"
                      f"{'':>3}{'yes' if ok else 'NO'}")
    print(f"  {set_name}: the dual condition holds in {held} of {total}")
    return misses, held, total


def startup(tmp: Path, repeat: int = 3) -> float:
    """Part 4: best wall seconds of ``gpupix run`` on one 64x64 image, default config."""
    folder = tmp / "one"
    folder.mkdir()
    Image.fromarray(photo("chelsea", 64 * 64)).save(folder / "one.png")
    best = math.inf
    for i in range(repeat):
        best = min(best, run_timed(gpupix_command(folder, tmp / f"one-out{i}", 16,
                                                  defaults=True)))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200, help="photos per folder")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved folder rounds")
    parser.add_argument("--repeat", type=int, default=3, help="op timing rounds")
    parser.add_argument("--sets", default="heldout,tuning")
    parser.add_argument("--parts", default="folder,op,quality,startup")
    parser.add_argument("--big", action="store_true", help="also 4 Mpx (op, quality)")
    args = parser.parse_args()
    sets = [s for s in args.sets.split(",") if s]
    parts = set(args.parts.split(","))
    print(f"{os.cpu_count()} cpus, {load()}, python {sys.version.split()[0]}")
    misses: list[str] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if "folder" in parts:
            print(f"\n1. folder throughput, {args.images} photos of 0.25 Mpx ({load()})")
            print(f"  {'set':<8}{'case':<34}{'ours/s':>9}{'pngquant/s':>10}{'ratio':>9}")
            for set_name in sets:
                misses += folder_throughput(set_name, args.images, args.rounds, tmp)
        if "op" in parts:
            print(f"\n2. the op alone vs libimagequant in-process ({load()})")
            print(f"  {'set':<8}{'photo':<22}{'size':>8}{'k':>5}{'ours ms':>9}{'liq ms':>9}"
                  f"{'ratio':>9}")
            for set_name in sets:
                misses += op_speed(set_name, args.big, args.repeat)
        if "quality" in parts:
            print("\n3. quality vs pngquant --nofs (dual: psnr >= pq + 0.1 dB, dE <= pq)")
            print(f"  {'set':<8}{'photo':<22}{'size':>8}{'k':>5}{'psnr':>8}{'pq':>8}"
                  f"{'diff':>7}{'dE':>7}{'pq dE':>7}{'dual':>6}")
            for set_name in sets:
                misses += quality(set_name, args.big, tmp)[0]
        if "startup" in parts:
            seconds = startup(tmp)
            print(f"\n4. start-up: gpupix run on one 64x64 image: {seconds:.2f} s "
                  f"(target < 1.5 s on a quiet machine; {load()})")
            if seconds >= 1.5:
                misses.append(f"start-up {seconds:.2f} s")
    print(f"\n{load()}")
    print("targets missed:" if misses else "all targets met", *misses, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
