"""In-process executor: a reader pool decodes ahead, the backend computes, a writer pool writes.

Memory is bounded by ``batch.size * (batch.prefetch + 1)`` images in flight on each side,
never by the number of images. A ``stop`` event (set by the CLI on SIGINT/SIGTERM) ends the
run between images: no new image is computed, decodes not yet started are cancelled, and
the writes already under way finish (each output is whole or absent) and are reported.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gpupix.backends.base import Backend
from gpupix.errors import ImageError
from gpupix.io import (
    DecodedImage,
    InputItem,
    decode,
    read_ahead,
    until_stopped,
    write_atomic,
)
from gpupix.jobs.base import Job, Processed

Row = dict[str, Any]


def failed_row(item: InputItem, outputs: list[Path], error: str, seconds: float = 0.0) -> Row:
    return {"input": str(item.path), "output": str(outputs[0]), "status": "failed",
            "error": error, "seconds": round(seconds, 4)}


def describe_failure(item: InputItem, exc: BaseException) -> str:
    """One line naming the file: ImageError messages already do; others get the path added."""
    if isinstance(exc, ImageError):  # a job's own message may not know the path: add it
        return str(exc) if str(item.path) in str(exc) else f"{item.path}: {exc}"
    return f"{item.path}: {type(exc).__name__}: {exc}"


def ok_row(item: InputItem, outputs: list[Path], image: DecodedImage, processed: Processed,
           seconds: float, sizes: list[int]) -> Row:
    height, width = image.pixels.shape[:2]
    row: Row = {"input": str(item.path), "output": str(outputs[0]), "status": "ok", "error": None,
                "seconds": round(seconds, 4), "width": width, "height": height,
                "bytes_in": image.bytes_in, "bytes_out": sizes[0]}
    if len(outputs) > 1:
        row["outputs"] = [str(p) for p in outputs]
    row.update(processed.metrics)
    job_note = processed.metrics.get("notes")
    notes = [*image.notes, *([job_note] if job_note else [])]
    if notes:  # the decoder's notes (e.g. frames dropped) and the job's are both kept
        row["notes"] = "; ".join(notes)
    return row


def write_outputs(job: Job, processed: Processed, outputs: list[Path]) -> list[int]:
    contents = job.encode(processed)
    root = Path(job.config.output.dir)  # every output stays below it, through no link
    for path, data in zip(outputs, contents, strict=True):
        write_atomic(path, data, root=root)
    return [len(data) for data in contents]


def process_item(item: InputItem, outputs: list[Path], job: Job, backend: Backend) -> Row:
    """Read, compute and write one image; a failure becomes a failed row, never an exception.

    This is the whole unit of work, used as it is by executors that ship work elsewhere.
    """
    start = time.perf_counter()
    try:
        image = decode(item.path)
        processed = job.process(image, backend)
        sizes = write_outputs(job, processed, outputs)
    except (ImageError, OSError, ValueError, MemoryError) as exc:
        return {**failed_row(item, outputs, describe_failure(item, exc),
                             time.perf_counter() - start), **getattr(exc, "fields", {})}
    return ok_row(item, outputs, image, processed, time.perf_counter() - start, sizes)


class LocalExecutor:
    """Threads in this process: decode and encode overlap with the backend's compute.

    Parameters
    ----------
    batch_size, prefetch : int
        At most ``batch_size * (prefetch + 1)`` images are decoded ahead and as many wait
        to be written.
    io_workers : int, default=2
        Threads in each of the reader and writer pools.
    stop : threading.Event, optional
        When set, the run ends after the image being computed; see the module docstring.
    """

    def __init__(self, *, batch_size: int = 16, prefetch: int = 2, io_workers: int = 2,
                 stop: threading.Event | None = None) -> None:
        self.batch_size = batch_size
        self.depth = batch_size * (prefetch + 1)
        self.io_workers = io_workers
        self.stop = stop

    def run(self, work: Iterable[tuple[InputItem, list[Path]]], job: Job, backend: Backend,
            ) -> Iterator[Row]:
        """Yield one row per item, as soon as its outputs are on disk (input order).

        Items not reached before ``stop`` is set yield no row: they are left for a rerun.
        """
        stop = self.stop if self.stop is not None else threading.Event()
        readers = ThreadPoolExecutor(self.io_workers, thread_name_prefix="gpupix-read")
        writers = ThreadPoolExecutor(self.io_workers, thread_name_prefix="gpupix-write")
        writing: deque[tuple[Callable[[], Row], Future[Any]]] = deque()
        finished = False
        try:
            decoded = read_ahead(until_stopped(work, stop), _timed_decode, pool=readers,
                                 depth=self.depth)
            for (item, outputs), future in decoded:
                if stop.is_set():
                    break
                start = time.perf_counter()
                try:
                    image, read_seconds = future.result()
                    processed = job.process(image, backend)
                except (ImageError, OSError, ValueError, MemoryError) as exc:
                    # a QualityError carries the achieved quality into its row
                    yield {**failed_row(item, outputs, describe_failure(item, exc)),
                           **getattr(exc, "fields", {})}
                    continue
                seconds = time.perf_counter() - start + read_seconds
                pending = writers.submit(_timed_write, job, processed, outputs)
                writing.append((_finisher(item, outputs, image, processed, seconds, pending),
                                pending))
                while len(writing) > self.depth or (writing and writing[0][1].done()):
                    yield writing.popleft()[0]()
            readers.shutdown(wait=False, cancel_futures=True)  # stopped: drop unread decodes
            while writing:
                yield writing.popleft()[0]()
            finished = True
        finally:
            # Normal end: nothing is left. Interrupted (an exception, or the consumer stopped
            # early): queued work is cancelled, and writes already running finish, so every
            # output file is whole or absent.
            readers.shutdown(wait=True, cancel_futures=True)
            writers.shutdown(wait=True, cancel_futures=not finished)


def _timed_decode(work: tuple[InputItem, list[Path]]) -> tuple[DecodedImage, float]:
    start = time.perf_counter()
    return decode(work[0].path), time.perf_counter() - start


def _timed_write(job: Job, processed: Processed, outputs: list[Path]) -> tuple[list[int], float]:
    start = time.perf_counter()
    return write_outputs(job, processed, outputs), time.perf_counter() - start


def _finisher(item: InputItem, outputs: list[Path], image: DecodedImage, processed: Processed,
              seconds: float, pending: Future[Any]) -> Callable[[], Row]:
    def finish() -> Row:
        try:
            sizes, write_seconds = pending.result()
        except (ImageError, OSError, ValueError, MemoryError) as exc:
            return failed_row(item, outputs, describe_failure(item, exc), seconds)
        return ok_row(item, outputs, image, processed, seconds + write_seconds, sizes)

    return finish
