"""Quality targets, shared palettes and dithering, measured in one run.

1. ``k: auto`` with ``target: {psnr: 35}`` on astronaut, chelsea and coffee: the chosen k
   meets the target, k - 1 run as a plain fixed-k run misses it, and the whole search costs
   at most 3x one fixed-k run at the chosen k (timed per image through the job, with its
   default metrics, and for the op alone).
2. ``palette: shared`` over a synthetic animation: the peak memory of the first pass
   (tracemalloc) for 20 and for 100 frames.
3. Floyd-Steinberg on a 4 Mpx photo against the undithered run (cpu).

Usage: ``python benchmarks/bench_quantize_target.py [--repeat 3] [--json out.json]``.
Timings are the best of ``--repeat`` runs, interleaved, on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._images import photo  # noqa: E402
from gpupix.backends import CpuBackend  # noqa: E402
from gpupix.config import validate_config  # noqa: E402
from gpupix.io import DecodedImage, discover  # noqa: E402
from gpupix.jobs.quantize import QuantizeJob  # noqa: E402
from gpupix.ops.palette_search import pixel_quality, smallest_k  # noqa: E402
from gpupix.ops.quantize import quantize  # noqa: E402

TARGET = 35.0


def job(quantize_settings: dict, metrics: list[str] | None = None, out: str = "/tmp/x",
        **top) -> QuantizeJob:
    data = {"job": "quantize", "input": {"paths": ["x"]}, "output": {"dir": out},
            "backend": "cpu", "quantize": quantize_settings, **top}
    if metrics is not None:
        data["metrics"] = metrics
    return QuantizeJob(validate_config(data))


def best_of(repeat: int, *functions):
    """Best wall time of each function over ``repeat`` interleaved rounds, and last results."""
    times = [float("inf")] * len(functions)
    results = [None] * len(functions)
    for _ in range(repeat):
        for i, function in enumerate(functions):
            start = time.perf_counter()
            results[i] = function()
            times[i] = min(times[i], time.perf_counter() - start)
    return times, results


def bench_target(backend: CpuBackend, repeat: int) -> list[dict]:
    rows = []
    for name in ("astronaut", "chelsea", "coffee"):
        rows.append(bench_one_target(name, backend, repeat))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_one_target(name: str, backend: CpuBackend, repeat: int) -> dict:
    from skimage import data

    rgb = np.ascontiguousarray(getattr(data, name)()[..., :3])
    image = DecodedImage(pixels=rgb, mode="RGB", bytes_in=rgb.nbytes)
    search = smallest_k(rgb, metric="psnr", goal=TARGET, backend=backend)
    k = search.k
    below = quantize(rgb, k=k - 1, backend=backend)  # k - 1 as a plain fixed-k run
    at_k = quantize(rgb, k=k, backend=backend)
    psnr_below = pixel_quality("psnr", rgb, below.palette, below.indices)
    psnr_at_k = pixel_quality("psnr", rgb, at_k.palette, at_k.indices)
    auto_job = job({"k": "auto", "target": {"psnr": TARGET}})
    fixed_job = job({"k": k})
    (t_auto_job, t_fixed_job), (processed, _) = best_of(
        repeat, lambda: auto_job.process(None, image, backend),
        lambda: fixed_job.process(None, image, backend))
    (t_search, t_fixed), _ = best_of(
        repeat, lambda: smallest_k(rgb, metric="psnr", goal=TARGET, backend=backend),
        lambda: quantize(rgb, k=k, backend=backend))
    return {
        "image": name, "pixels": rgb.shape[0] * rgb.shape[1], "k": k,
        "psnr_at_k": round(psnr_at_k, 4), "psnr_at_k_minus_1": round(psnr_below, 4),
        "minimal": psnr_at_k >= TARGET > psnr_below,
        "job_colours_out": processed.metrics["colors_out"],
        "fits": {"rough": len(search.tried) - search.full_fits, "full": search.full_fits},
        "job_auto_s": round(t_auto_job, 4), "job_fixed_s": round(t_fixed_job, 4),
        "job_ratio": round(t_auto_job / t_fixed_job, 3),
        "op_search_s": round(t_search, 4), "op_fixed_s": round(t_fixed, 4),
        "op_ratio": round(t_search / t_fixed, 3),
    }


def animation_frame(index: int, size: int = 256) -> np.ndarray:
    """A frame of a synthetic animation: three discs orbiting over a shifting gradient."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = index / 25.0
    frame = np.stack([128 + 100 * np.sin(x / 40 + phase), 128 + 100 * np.cos(y / 50 - phase),
                      np.full_like(x, 90 + 60 * np.sin(phase))], axis=-1)
    for disc, colour in enumerate([(250, 40, 40), (30, 200, 60), (40, 60, 240)]):
        angle = phase * (1 + disc) + disc * 2.1
        cy, cx = size / 2 + size / 3 * np.sin(angle), size / 2 + size / 3 * np.cos(angle)
        inside = (y - cy) ** 2 + (x - cx) ** 2 < (size / 8) ** 2
        frame[inside] = colour
    noise = np.random.default_rng(index).normal(0, 3, frame.shape)
    return np.clip(np.rint(frame + noise), 0, 255).astype(np.uint8)


def bench_shared(backend: CpuBackend) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        frames = Path(folder) / "frames"
        frames.mkdir()
        for i in range(100):
            Image.fromarray(animation_frame(i)).save(frames / f"frame{i:03d}.png")
        everything = discover([str(frames)])
        for count in (20, 100):
            shared = job({"k": 64, "palette": "shared"}, out=str(Path(folder) / f"out{count}"))
            Path(shared.config.output.dir).mkdir()
            tracemalloc.start()
            start = time.perf_counter()
            shared.use_state(shared.prepare(everything[:count], backend))
            seconds = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rows.append({"frames": count, "frame_pixels": 256 * 256,
                         "peak_mib": round(peak / 2**20, 2), "seconds": round(seconds, 3),
                         "palette_colours": len(shared.fixed[0])})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_dither(backend: CpuBackend, repeat: int) -> dict:
    rgb = photo("astronaut", 4_000_000)
    image = DecodedImage(pixels=rgb, mode="RGB", bytes_in=rgb.nbytes)
    plain = job({"k": 16}, metrics=["psnr"])
    dithered = job({"k": 16, "dither": "floyd_steinberg"}, metrics=["psnr"])
    (t_plain, t_dither), (p_plain, p_dither) = best_of(
        repeat, lambda: plain.process(None, image, backend),
        lambda: dithered.process(None, image, backend))
    row = {"pixels": rgb.shape[0] * rgb.shape[1], "k": 16, "plain_s": round(t_plain, 3),
           "dithered_s": round(t_dither, 3), "ratio": round(t_dither / t_plain, 3),
           "psnr_plain": p_plain.metrics["psnr"], "psnr_dithered": p_dither.metrics["psnr"]}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    backend = CpuBackend()
    quantize(np.zeros((4, 4, 3), np.uint8) + np.arange(16, dtype=np.uint8).reshape(4, 4, 1),
             k=2, backend=backend)  # imports and thread pools warm, outside the timings
    print(f"cpu: {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    print("1. target psnr 35: chosen k, k - 1 as a fixed-k run, search cost", flush=True)
    target = bench_target(backend, args.repeat)
    print("2. palette: shared, first pass, tracemalloc peak", flush=True)
    shared = bench_shared(backend)
    print("3. Floyd-Steinberg, 4 Mpx, k=16", flush=True)
    dither = bench_dither(backend, args.repeat)
    verdict = {
        "target_minimal": all(r["minimal"] for r in target),
        "target_job_ratio_max": max(r["job_ratio"] for r in target),
        "target_op_ratio_max": max(r["op_ratio"] for r in target),
        "shared_peak_ratio_100_vs_20": round(shared[1]["peak_mib"] / shared[0]["peak_mib"], 3),
        "dither_ratio": dither["ratio"],
    }
    print("summary:", json.dumps(verdict))
    if args.json is not None:
        args.json.write_text(json.dumps({"target": target, "shared": shared, "dither": dither,
                                         "summary": verdict}, indent=1))


if __name__ == "__main__":
    main()
