"""Dask executor against the local one: the same quantize job, the same number of threads.

    python benchmarks/bench_dask.py [--images 400] [--size 256] [--workers 2]

Local: one process, the local executor (reader and writer threads), its compute stage
allowed ``--workers`` threads (BLAS/OpenMP and the backend). Dask: a ``LocalCluster`` of
``--workers`` single-threaded worker processes on loopback. Outputs of both runs are
checked to be byte-identical before any figure is printed.

Per-task overhead is what a task costs beyond its images:
``(wall * worker threads - sum of per-image seconds) / tasks``; it is also measured with
one image per task, where it dominates.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpupix.backends import CpuBackend  # noqa: E402
from gpupix.config import validate_config  # noqa: E402
from gpupix.executors.dask import DaskExecutor  # noqa: E402
from gpupix.executors.local import LocalExecutor  # noqa: E402
from gpupix.pipeline import RunSummary, run_job  # noqa: E402


def make_images(folder: Path, count: int, size: int) -> None:
    """Smooth colour fields with texture and noise: K-means has real work on each."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        freq = rng.uniform(2, 9, 3)
        image = np.stack([np.sin(freq[c] * (x + y * (c - 1)) + phase[c]) for c in range(3)], -1)
        image = 127.5 * (image + 1) + rng.normal(0, 6, image.shape)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"{i:04}.png")


def config_for(root: Path, images: Path, out: str):
    return validate_config({"job": "quantize", "input": {"paths": [str(images)]},
                            "output": {"dir": str(root / out), "overwrite": True},
                            "backend": "cpu", "quantize": {"k": 16}})


def busy_seconds(result: RunSummary) -> float:
    return sum(r.get("seconds", 0.0) for r in result.rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from distributed import LocalCluster
    from threadpoolctl import threadpool_limits

    with tempfile.TemporaryDirectory(prefix="gpupix-bench-dask-") as tmp:
        root = Path(tmp)
        make_images(root / "images", args.images, args.size)
        make_images(root / "warm", 4, args.size)
        local_runs = {}
        for threads in sorted({args.workers, 1}, reverse=True):
            # the compute stage's BLAS/OpenMP pool; reader and writer threads come on top
            with threadpool_limits(threads):
                local = LocalExecutor(batch_size=16, prefetch=2, io_workers=2)
                backend = CpuBackend(n_threads=threads)
                run_job(config_for(root, root / "warm", "warm-local"), backend, local)
                start = time.perf_counter()
                result = run_job(config_for(root, root / "images", f"local-{threads}"),
                                 backend, local)
                local_runs[threads] = (time.perf_counter() - start, result)
        local_wall, local_result = local_runs[args.workers]

        start = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
            startup = time.perf_counter() - start
            address = cluster.scheduler_address
            runs = {}
            for label, chunk in (("warm", 64), ("auto", 64), ("one", 1)):
                executor = DaskExecutor(address=address, chunk=chunk)
                folder = root / ("warm" if label == "warm" else "images")
                start = time.perf_counter()
                result = run_job(config_for(root, folder, f"dask-{label}"),
                                 CpuBackend(n_threads=1), executor)
                runs[label] = (time.perf_counter() - start, executor.tasks, result)

        local_out = {p.name: p.read_bytes() for p in (root / "local-1").glob("*.png")}
        for label in ("auto", "one"):
            out = {p.name: p.read_bytes() for p in (root / f"dask-{label}").glob("*.png")}
            assert out == local_out and len(out) == args.images, f"{label}: outputs differ"

    threads = args.workers
    print(f"{args.images} images of {args.size}x{args.size}, quantize k=16, cpu backend, "
          f"{threads} threads on each side (machine shared with other jobs)")
    print(f"{'run':<34}{'wall s':>8}{'img/s':>8}{'tasks':>7}{'speed-up':>10}{'ms/task':>9}")
    for local_threads, (wall, _) in local_runs.items():
        name = f"local, 1 process, {local_threads} BLAS thr."
        print(f"{name:<34}{wall:8.2f}{args.images / wall:8.1f}{'-':>7}"
              f"{local_wall / wall:10.2f}{'-':>9}")
    for label, name in (("auto", "dask, chunk auto (<= 64)"), ("one", "dask, 1 image per task")):
        wall, tasks, result = runs[label]
        overhead = (wall * threads - busy_seconds(result)) / tasks
        print(f"{name:<34}{wall:8.2f}{args.images / wall:8.1f}{tasks:7d}"
              f"{local_wall / wall:10.2f}{1000 * overhead:9.1f}")
    wall = runs["auto"][0] + startup
    print(f"{'dask, chunk auto, + cluster start':<34}{wall:8.2f}{args.images / wall:8.1f}"
          f"{runs['auto'][1]:7d}{local_wall / wall:10.2f}{'-':>9}")
    best = min(wall for wall, _ in local_runs.values())
    print(f"speed-up of dask (chunk auto) over the faster local run: {best / runs['auto'][0]:.2f}")
    print(f"cluster start: {startup:.2f} s; local busy {busy_seconds(local_result):.1f} s, "
          f"dask busy {busy_seconds(runs['auto'][2]):.1f} s (sum of per-image seconds)")


if __name__ == "__main__":
    main()
