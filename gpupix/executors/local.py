"""In-process executor: a reader pool decodes ahead, compute threads run the backend on
several images at once, a writer pool writes.

Memory is bounded by pixels, never by the number of images: decoded images are admitted
while their bytes (read from each file's header before decoding) fit ``read_ahead_bytes``,
and at most ``batch.size * (batch.prefetch + 1)`` images are in flight on each side. Peak
memory is about the budget plus one image's working memory per compute thread. Compute
threads share the cores with the libraries' own threads through
:data:`gpupix.backends.base.CALL_THREADS` (cores // compute threads each), so nothing
oversubscribes. Rows and outputs do not depend on the thread counts: each image is computed
on its own, and rows come out in input order.

A ``stop`` event (set by the CLI on SIGINT/SIGTERM) ends the run between images: no new
image is computed, decodes not yet started are cancelled, and the writes already under way
finish (each output is whole or absent) and are reported.
"""

from __future__ import annotations

import itertools
import os
import stat
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gpupix.backends.base import CALL_THREADS, Backend
from gpupix.executors.processes import (
    PROCESS_MIN_IMAGES_PER_WORKER,
    images_ahead,
    run_in_processes,
    wants_processes,
)
from gpupix.forked import usable_cores
from gpupix.io import DECODE_FORMATS, DecodedImage, InputItem, decode, until_stopped, write_atomic
from gpupix.jobs.base import ImageJob, Processed
from gpupix.rows import IMAGE_ERRORS, ImageFacts, Row, failed_row, ok_row


def write_outputs(job: ImageJob, processed: Processed, outputs: list[Path]
                  ) -> tuple[list[int], dict[str, Any]]:
    """Encode and write one image's outputs; their sizes and the metrics encoding added."""
    encoded = job.encode(processed)
    if len(encoded.files) != len(outputs):
        raise ValueError(f"{type(job).__name__}.encode made {len(encoded.files)} files for "
                         f"{len(outputs)} outputs")
    root = Path(job.config.output.dir)  # every output stays below it, through no link
    for path, data in zip(outputs, encoded.files, strict=True):
        write_atomic(path, data, root=root)
    return [len(data) for data in encoded.files], encoded.metrics


def compute_one(job: ImageJob, item: InputItem, image: DecodedImage, backend: Backend
                ) -> Processed:
    """One image through the job's batch call; its error is raised here."""
    [result] = job.process_batch([(item, image)], backend)
    if isinstance(result, BaseException):
        raise result
    return result


def process_item(item: InputItem, outputs: list[Path], job: ImageJob, backend: Backend) -> Row:
    """Read, compute and write one image; a failure becomes a failed row, never an exception.

    This is the whole unit of work, used as it is by executors that ship work elsewhere.
    """
    start = time.perf_counter()
    try:
        image = decode(item.path)
        processed = compute_one(job, item, image, backend)
        sizes, encoded = write_outputs(job, processed, outputs)
    except IMAGE_ERRORS as exc:
        return failed_row(item, outputs, exc, time.perf_counter() - start)
    return ok_row(item, outputs, ImageFacts.of(image), {**processed.metrics, **encoded},
                  time.perf_counter() - start, sizes)


class LocalExecutor:
    """Threads in this process: decode, compute (several images at once) and encode overlap.

    Parameters
    ----------
    batch_size, prefetch : int
        At most ``batch_size * (prefetch + 1)`` images are decoded ahead and as many wait
        to be written.
    io_workers : int, default=2
        Threads in each of the reader and writer pools.
    compute_workers : int, optional
        Images computed at once. Default: one per usable core on cpu, one on cuda (the
        device is one queue; its host threads only wait).
    read_ahead_bytes : int, default=1 GiB
        Decoded bytes held from decode until compute ends; an image larger than the budget
        is admitted alone.
    pool : {"auto", "threads", "processes"}, default="auto"
        Where images are computed: threads here, or forked worker processes (see
        :mod:`gpupix.executors.processes`); auto picks processes on cpu for a folder of
        several images per worker.
    stop : threading.Event, optional
        When set, the run ends after the images being computed; see the module docstring.
    """

    def __init__(self, *, batch_size: int = 16, prefetch: int = 2, io_workers: int = 2,
                 compute_workers: int | None = None, read_ahead_bytes: int = 1 << 30,
                 pool: str = "auto", stop: threading.Event | None = None) -> None:
        self.batch_size = batch_size
        self.depth = batch_size * (prefetch + 1)
        self.io_workers = io_workers
        self.compute_workers = compute_workers
        self.read_ahead_bytes = read_ahead_bytes
        self.pool = pool
        self.stop = stop

    def threads_for(self, backend: Backend) -> tuple[int, int]:
        """``(compute threads, threads per backend call)`` on ``backend``."""
        cores = usable_cores()
        workers = self.compute_workers or (1 if backend.name == "cuda" else cores)
        return workers, max(1, cores // workers)

    def run(self, work: Iterable[tuple[InputItem, list[Path]]], job: ImageJob,
            backend: Backend, state: Any = None) -> Iterator[Row]:
        """Yield one row per item, as soon as its outputs are on disk (input order).

        ``job`` has taken ``state`` (its prepared state) already: threads share it. Items
        not reached before ``stop`` is set yield no row: they are left for a rerun.
        """
        stop = self.stop if self.stop is not None else threading.Event()
        workers, per_call = self.threads_for(backend)
        head, rest = images_ahead(work, PROCESS_MIN_IMAGES_PER_WORKER * workers)
        work = itertools.chain(head, rest)
        if wants_processes(self.pool, backend, workers, len(head)):
            yield from run_in_processes(work, job, backend, unit=process_item, workers=workers,
                                        per_call=per_call, depth=self.depth, stop=stop)
            return
        readers = ThreadPoolExecutor(self.io_workers, thread_name_prefix="gpupix-read")
        computers = ThreadPoolExecutor(workers, thread_name_prefix="gpupix-compute",
                                       initializer=CALL_THREADS.set, initargs=(per_call,))
        writers = ThreadPoolExecutor(self.io_workers, thread_name_prefix="gpupix-write")
        window = _ByteWindow(self.read_ahead_bytes)
        computing: deque[tuple[InputItem, list[Path], int, Future[Any]]] = deque()
        writing: deque[tuple[Callable[[], Row], Future[Any]]] = deque()
        finished = False
        try:
            pending = iter(until_stopped(work, stop))
            upcoming: tuple[InputItem, list[Path], int] | None = None  # read, not admitted
            exhausted = False
            while True:
                # admit images while their decoded bytes fit the budget (one always fits)
                while not exhausted and not stop.is_set() and len(computing) < self.depth:
                    if upcoming is None:
                        following = next(pending, None)
                        if following is None:
                            exhausted = True
                            break
                        upcoming = (*following, decoded_bytes(following[0].path))
                    item, outputs, size = upcoming
                    if not window.fits(size):
                        break
                    upcoming = None
                    window.take(size)
                    decoding = readers.submit(_timed_decode, item.path)
                    computing.append((item, outputs, size, computers.submit(
                        _compute, job, backend, item, decoding)))
                if not computing or stop.is_set():
                    break
                item, outputs, size, future = computing.popleft()
                try:
                    facts, processed, seconds = future.result()
                except IMAGE_ERRORS as exc:  # a QualityError's fields go into its row
                    yield failed_row(item, outputs, exc)
                    continue
                finally:
                    window.give(size)
                pending_write = writers.submit(_timed_write, job, processed, outputs)
                writing.append((_finisher(item, outputs, facts, processed, seconds,
                                          pending_write), pending_write))
                while len(writing) > self.depth or (writing and writing[0][1].done()):
                    yield writing.popleft()[0]()
            # stopped: drop decodes and computes not yet started; finish those under way
            readers.shutdown(wait=False, cancel_futures=True)
            computers.shutdown(wait=False, cancel_futures=True)
            while writing:
                yield writing.popleft()[0]()
            finished = True
        finally:
            # Normal end: nothing is left. Interrupted (an exception, or the consumer stopped
            # early): queued work is cancelled, and writes already running finish, so every
            # output file is whole or absent.
            readers.shutdown(wait=True, cancel_futures=True)
            computers.shutdown(wait=True, cancel_futures=True)
            writers.shutdown(wait=True, cancel_futures=not finished)


def decoded_bytes(path: Path) -> int:
    """Bytes of ``path`` once decoded (RGBA, the most :func:`~gpupix.io.decode` returns), from
    its header; 0 when the header does not read (the decode then fails with the reason)."""
    from PIL import Image

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # never open a FIFO or a device
            return 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # size warnings: the decode says it once
            with Image.open(path, formats=DECODE_FORMATS) as image:
                width, height = image.size
    except Exception:  # noqa: BLE001 - untrusted bytes: the real decode reports the error
        return 0
    return width * height * 4


class _ByteWindow:
    """Decoded bytes admitted and not yet released (thread-confined to the run loop)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.held = 0
        self.images = 0

    def fits(self, size: int) -> bool:
        return self.images == 0 or self.held + size <= self.budget

    def take(self, size: int) -> None:
        self.held += size
        self.images += 1

    def give(self, size: int) -> None:
        self.held -= size
        self.images -= 1


def _timed_decode(path: Path) -> tuple[DecodedImage, float]:
    start = time.perf_counter()
    return decode(path), time.perf_counter() - start


def _compute(job: ImageJob, backend: Backend, item: InputItem,
             decoding: Future[tuple[DecodedImage, float]]
             ) -> tuple[ImageFacts, Processed, float]:
    """Wait for the decode, compute; return no pixels, so they are freed as it ends."""
    image, read_seconds = decoding.result()
    start = time.perf_counter()
    processed = compute_one(job, item, image, backend)
    return ImageFacts.of(image), processed, time.perf_counter() - start + read_seconds


def _timed_write(job: ImageJob, processed: Processed, outputs: list[Path]
                 ) -> tuple[list[int], dict[str, Any], float]:
    start = time.perf_counter()
    sizes, metrics = write_outputs(job, processed, outputs)
    return sizes, metrics, time.perf_counter() - start


def _finisher(item: InputItem, outputs: list[Path], facts: ImageFacts, processed: Processed,
              seconds: float, pending: Future[Any]) -> Callable[[], Row]:
    def finish() -> Row:
        try:
            sizes, encoded, write_seconds = pending.result()
        except IMAGE_ERRORS as exc:
            return failed_row(item, outputs, exc, seconds)
        return ok_row(item, outputs, facts, {**processed.metrics, **encoded},
                      seconds + write_seconds, sizes)

    return finish
