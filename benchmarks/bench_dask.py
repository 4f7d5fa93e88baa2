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
    parser.add_argument("--local-threads", default=None,
                        help="comma-separated BLAS/OpenMP thread counts for the local runs "
                             "(default: --workers and 1)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds, runs interleaved; the fastest of each is reported")
    args = parser.parse_args()
    local_threads = sorted({int(t) for t in (args.local_threads or "").split(",") if t}
                           or {args.workers, 1}, reverse=True)

    from distributed import LocalCluster
    from threadpoolctl import threadpool_limits

    with tempfile.TemporaryDirectory(prefix="gpupix-bench-dask-") as tmp:
        root = Path(tmp)
        make_images(root / "images", args.images, args.size)
        make_images(root / "warm", 4, args.size)
        start = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
            startup = time.perf_counter() - start

            def local(threads: int, folder: Path, out: str) -> tuple[RunSummary, int]:
                # the compute stage's BLAS/OpenMP pool; reader and writer threads come on top
                with threadpool_limits(threads):
                    executor = LocalExecutor(batch_size=16, prefetch=2, io_workers=2)
                    return run_job(config_for(root, folder, out),
                                   CpuBackend(n_threads=threads), executor), 0

            def dask(chunk: int, folder: Path, out: str) -> tuple[RunSummary, int]:
                executor = DaskExecutor(address=cluster.scheduler_address, chunk=chunk)
                result = run_job(config_for(root, folder, out), CpuBackend(n_threads=1),
                                 executor)
                return result, executor.tasks

            variants = {f"local, 1 process, {t} BLAS thr.": (local, t) for t in local_threads}
            variants["dask, chunk auto (<= 64)"] = (dask, 64)
            variants["dask, 1 image per task"] = (dask, 1)
            for i, (run, setting) in enumerate(variants.values()):  # imports, caches
                run(setting, root / "warm", f"warm-{i}")
            best: dict[str, tuple[float, int, RunSummary]] = {}
            for _ in range(args.repeat):
                for i, (name, (run, setting)) in enumerate(variants.items()):
                    start = time.perf_counter()
                    result, tasks = run(setting, root / "images", f"run-{i}")
                    wall = time.perf_counter() - start
                    if name not in best or wall < best[name][0]:
                        best[name] = (wall, tasks, result)
            # Dask workers compute with one BLAS/OpenMP thread: their outputs must match the
            # one-thread local run byte for byte (K-means sums depend on the thread count).
            outputs = {name: {p.name: p.read_bytes() for p in (root / f"run-{i}").glob("*.png")}
                       for i, name in enumerate(variants)}
            reference = outputs.get("local, 1 process, 1 BLAS thr.")
            differ = {name: None if reference is None else
                      sum(out.get(k) != v for k, v in reference.items())
                      for name, out in outputs.items()}
            assert all(len(out) == args.images for out in outputs.values())
            assert reference is None or not any(differ[n] for n in variants if "dask" in n)

    threads = args.workers
    print(f"{args.images} images of {args.size}x{args.size}, quantize k=16, cpu backend, "
          f"{threads} dask workers x 1 thread; fastest of {args.repeat} interleaved round(s) "
          "(machine shared with other jobs)")
    baseline_name = f"local, 1 process, {threads} BLAS thr."
    baseline = best.get(baseline_name, next(iter(best.values())))[0]
    single = best.get("local, 1 process, 1 BLAS thr.", (baseline,))[0]
    print(f"{'run':<34}{'wall s':>8}{'img/s':>8}{'tasks':>7}{'vs same thr.':>13}"
          f"{'vs 1 thr.':>10}{'ms/task':>9}{'differ':>8}")
    for name, (wall, tasks, result) in best.items():
        overhead = "-"
        if tasks:  # worker-thread seconds not spent inside an image, per task
            overhead = f"{1000 * (wall * threads - busy_seconds(result)) / tasks:.1f}"
        print(f"{name:<34}{wall:8.2f}{args.images / wall:8.1f}{tasks or '-':>7}"
              f"{baseline / wall:13.2f}{single / wall:10.2f}{overhead:>9}"
              f"{'-' if differ[name] is None else differ[name]:>8}")
    print(f"cluster start (not in the figures above): {startup:.2f} s; differ: outputs "
          "not byte-identical to the 1-thread local run's")


if __name__ == "__main__":
    main()
