"""Worker processes for the local executor: every core busy, whatever holds the GIL.

A palette fit is many small NumPy calls, and a thread holds the interpreter lock between
them: on 2 cores, two compute threads ran 1.0-1.45x one thread's images per second, two
processes 1.8-1.9x (24 photos of 0.25 Mpx, quantize k=64). So on cpu a folder is computed
by forked worker processes, each doing the whole unit of work for one image at a time
(the local executor's ``process_item``: read, compute, write atomically) and sending
back only its row. Forked workers inherit the job, its prepared state and the backend: no
import, no pickling of either.

Failures: a worker that dies (killed for memory, a crash in a native library) breaks the
pool; the images it may have been computing are then computed again one at a time, each in
a pool of its own, so only the image that kills its worker ends as a failed row, and the
run goes on with a fresh pool. Workers ignore SIGINT: the parent ends the run between
images (the images under way finish and are written whole).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from gpupix.backends.base import CALL_THREADS, Backend
from gpupix.errors import ImageError
from gpupix.forked import become_worker, can_fork
from gpupix.io import InputItem
from gpupix.jobs.base import ImageJob
from gpupix.rows import Row, failed_row

# auto uses processes for at least this many images per worker: a forked worker costs a few
# milliseconds to start, and a small run is not worth a pool
PROCESS_MIN_IMAGES_PER_WORKER = 4

Unit = Callable[[InputItem, list[Path], ImageJob, Backend], Row]
_worker: tuple[ImageJob, Backend, Unit] | None = None


def _start_worker(job: ImageJob, backend: Backend, per_call: int, unit: Unit,
                  parent: int) -> None:
    global _worker
    become_worker(parent)  # ignores SIGINT, ends with the parent
    # per_call reaches the calls that pick their own threads (a palette's nearest entries run
    # on one BLAS thread with it). The worker's BLAS pools are not capped as a whole: a
    # covariance X^T X over many rows is split along its rows by OpenBLAS's threads, so its
    # rounding (and the denoise model fitted on it) would follow the pool, not the job.
    CALL_THREADS.set(per_call)
    _worker = (job, backend, unit)


def _process(item: InputItem, outputs: list[Path]) -> Row:
    assert _worker is not None, "a worker runs only after _start_worker"
    job, backend, unit = _worker
    return unit(item, outputs, job, backend)


class WorkerDied(ImageError):
    """The worker process computing an image ended without a row (killed, or crashed)."""


def run_in_processes(work: Iterable[tuple[InputItem, list[Path]]], job: ImageJob,
                     backend: Backend, *, unit: Unit, workers: int, per_call: int, depth: int,
                     stop: threading.Event) -> Iterator[Row]:
    """One row per item in input order, as each is written; see the module docstring.

    ``unit`` is the whole work of one image (read, compute, write), run in a worker.
    """
    pool = _Pool(job, backend, workers, per_call, unit)
    in_flight: deque[tuple[InputItem, list[Path], Future[Row]]] = deque()
    try:
        for item, outputs in work:
            if stop.is_set():
                break
            in_flight.append((item, outputs, pool.submit(item, outputs)))
            while in_flight and (len(in_flight) >= depth or in_flight[0][2].done()):
                yield from _settle(in_flight, pool, stop)
        while in_flight:
            if stop.is_set():  # images not yet started are left for a rerun
                for _, _, future in in_flight:
                    future.cancel()
            yield from _settle(in_flight, pool, stop)
    finally:
        pool.close()


def _settle(in_flight: deque[tuple[InputItem, list[Path], Future[Row]]], pool: _Pool,
            stop: threading.Event) -> Iterator[Row]:
    """The first image's row; after a worker died, every image in flight is settled."""
    item, outputs, future = in_flight[0]
    if future.cancelled():
        in_flight.popleft()
        return
    try:
        row = future.result()
    except BrokenProcessPool:
        yield from _recover(in_flight, pool, stop)
        return
    in_flight.popleft()
    yield row


def _recover(in_flight: deque[tuple[InputItem, list[Path], Future[Row]]], pool: _Pool,
             stop: threading.Event) -> Iterator[Row]:
    """Rows for every image in flight when a worker died: a finished one keeps its row, the
    others run again alone, each in a pool of its own; the main pool is made anew."""
    pool.restart()
    while in_flight:
        item, outputs, future = in_flight.popleft()
        if future.done() and not future.cancelled() and future.exception() is None:
            yield future.result()
            continue
        if stop.is_set():
            continue  # not settled: left for a rerun
        yield _alone(item, outputs, pool)


def _alone(item: InputItem, outputs: list[Path], pool: _Pool) -> Row:
    start = time.perf_counter()
    single = _Pool(pool.job, pool.backend, 1, pool.per_call, pool.unit)
    try:
        return single.submit(item, outputs).result()
    except BrokenProcessPool:
        return failed_row(item, outputs, WorkerDied(
            f"{item.path}: its worker process died while computing it (killed, e.g. for "
            "memory, or crashed); the other images went on"), time.perf_counter() - start)
    finally:
        single.close()


class _Pool:
    """A fork-based process pool that can be made anew after a worker died."""

    def __init__(self, job: ImageJob, backend: Backend, workers: int, per_call: int,
                 unit: Unit) -> None:
        self.job, self.backend, self.workers, self.per_call = job, backend, workers, per_call
        self.unit = unit
        self.executor = self._make()

    def _make(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_start_worker,
                                   initargs=(self.job, self.backend, self.per_call,
                                             self.unit, os.getpid()))

    def submit(self, item: InputItem, outputs: list[Path]) -> Future[Row]:
        return self.executor.submit(_process, item, outputs)

    def restart(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.executor = self._make()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def wants_processes(pool: str, backend: Backend, workers: int, images: int) -> bool:
    """Whether ``batch.pool`` (auto, threads, processes) computes in worker processes."""
    if pool == "threads" or backend.name != "cpu" or not can_fork():
        return False
    if pool == "processes":
        return True
    return workers > 1 and images >= PROCESS_MIN_IMAGES_PER_WORKER * workers


def images_ahead(work: Iterable[Any], count: int) -> tuple[list[Any], Iterator[Any]]:
    """Up to ``count`` items read ahead from ``work``, and the rest still to come."""
    rest = iter(work)
    head = []
    for item in rest:
        head.append(item)
        if len(head) >= count:
            break
    return head, rest
