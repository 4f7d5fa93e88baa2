"""Dask executor: the same ``run(work, job, backend)`` as the local one, on a Dask cluster.

The scheduler never sees a pixel. A task is a chunk of ``(input, outputs)`` file names; the
worker that runs it reads, computes and writes each image itself (through
:func:`gpupix.executors.local.process_item`, so a bad image is a failed row exactly as it is
locally) and sends back only the metrics rows. The client yields those rows as tasks finish,
so the pipeline's progress bar advances one finished task at a time.

Nothing device-bound crosses the wire: a worker builds its own backend from the backend's
*name* and its own job from the job's class and its (picklable, frozen) config, once per
worker process, then reuses them for every later task.

A job's prepared state (what :meth:`~gpupix.jobs.base.ImageJob.prepare` returned on the
client: a shared palette) is sent to every worker once with ``client.scatter(state,
broadcast=True)``; each worker's job takes it with ``use_state`` before its first image, and
tasks refer to it by its future: it is fitted once and never recomputed or re-sent per task.
A job without state (None) is rebuilt from its config alone.

Failures: a task that raises is rerun ``retries`` times (``Client.submit(retries=...)``); a
task whose worker dies is moved to another worker by the scheduler (for a cluster gpupix
starts, up to ``retries`` deaths, Dask's ``allowed-failures``). A chunk that still keeps
killing workers is split into one-image tasks, so only the image that kills its worker ends
as a failed row. Writes are atomic, so a dead worker leaves no half-written output; a rerun
of the task writes the same bytes again.

dask and distributed are imported only in this module; dask-cuda only for a GPU cluster.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from gpupix.backends import get_backend
from gpupix.backends.base import Backend
from gpupix.config import ExecutorConfig, JobConfig
from gpupix.errors import ConfigError
from gpupix.executors.local import process_item
from gpupix.io import InputItem
from gpupix.jobs.base import ImageJob
from gpupix.rows import Row, failed_row

log = logging.getLogger(__name__)

Work = tuple[InputItem, list[Path]]

# Fewer tasks than this per worker thread leaves workers idle while the last tasks run.
TASKS_PER_THREAD = 16
IN_FLIGHT_PER_THREAD = 1
CONNECT_TIMEOUT = "30s"  # for a scheduler at an address: Dask's own default


def cluster_options(n_workers: int | None) -> dict[str, Any]:
    """Keywords for the local cluster gpupix starts (LocalCluster, or LocalCUDACluster, which
    passes all but ``n_workers``/``threads_per_worker`` on to LocalCluster)."""
    return {"n_workers": n_workers, "threads_per_worker": 1, "host": "127.0.0.1",
            "dashboard_address": "127.0.0.1:0"}


def check_cuda_workers(n_workers: int | None) -> None:
    """ConfigError when ``n_workers`` exceeds the visible GPUs.

    LocalCUDACluster runs one worker per GPU and fails with a bare ``ValueError("Can not
    scale beyond visible devices")`` past them; the count is dask-cuda's own
    (``CUDA_VISIBLE_DEVICES``, else NVML).
    """
    if n_workers is None:
        return
    from dask_cuda.utils import get_n_gpus

    try:
        count = int(get_n_gpus())
    except Exception:  # no NVML to ask: dask-cuda reports what is wrong itself
        return
    if n_workers > count:
        raise ConfigError(f"executor.n_workers: {n_workers} is more than the {count} visible "
                          f"GPU(s); the cuda backend runs one Dask worker per GPU: use "
                          f"1..{count}, or leave it unset for one per GPU")


class DaskExecutor:
    """Run each chunk of images as one Dask task; yield its rows as it finishes.

    Parameters
    ----------
    address : str or None, default=None
        Scheduler address (``tcp://scheduler:8786``). None starts a cluster on this machine
        for the run and closes it afterwards: ``dask_cuda.LocalCUDACluster`` (one worker per
        GPU) when the backend is cuda, else ``distributed.LocalCluster`` with one
        single-threaded worker process per core.
    n_workers : int or None, default=None
        Workers of a cluster gpupix starts (None: one per CPU core, or one per GPU).
    chunk : int, default=64
        At most this many images per task. Smaller tasks are used when there would be fewer
        than 16 tasks per worker thread, so no worker waits long while another finishes
        its last one (a task costs some 30 ms; an image of 256x256 about 100 ms).
    retries : int, default=2
        Reruns of a task that raised, and (for a cluster gpupix starts) deaths of a worker
        running a task before the task is given up.
    client : distributed.Client or None, default=None
        An existing client to use as it is (not closed by the executor).
    stop : threading.Event, optional
        When set, no new task is submitted; the tasks in flight (one per worker thread)
        finish and their rows are yielded, the rest is left for a rerun.
    """

    def __init__(self, *, address: str | None = None, n_workers: int | None = None,
                 chunk: int = 64, retries: int = 2, client: Any = None,
                 stop: threading.Event | None = None) -> None:
        self.address = address
        self.n_workers = n_workers
        self.chunk = chunk
        self.retries = retries
        self.client = client
        self.stop = stop
        self.tasks = 0  # tasks submitted by the last run (benchmarks read it)

    @classmethod
    def from_config(cls, config: ExecutorConfig, *, stop: threading.Event | None = None
                    ) -> DaskExecutor:
        return cls(address=config.address, n_workers=config.n_workers, chunk=config.chunk,
                   retries=config.retries, stop=stop)

    def run(self, work: Iterable[Work], job: ImageJob, backend: Backend, state: Any = None
            ) -> Iterator[Row]:
        """Yield one row per item, task by task in the order the tasks finish."""
        work = list(work)
        if not work:
            return
        with ExitStack() as stack:
            client = self.client or stack.enter_context(self._connect(backend))
            yield from self._run(client, work, job, state, backend.name)

    def _connect(self, backend: Backend) -> Any:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ConfigError(f"executor.kind: dask needs Dask distributed (pip install "
                              f"'gpupix[dask]'): {exc}") from None

        if self.address is not None:
            try:
                return Client(self.address, timeout=CONNECT_TIMEOUT)
            except (OSError, ValueError) as exc:  # unreachable; an unknown scheme
                raise ConfigError(f"executor.address: cannot reach the Dask scheduler at "
                                  f"{self.address!r} ({exc})") from None
        options = cluster_options(self.n_workers)
        with dask.config.set({"distributed.scheduler.allowed-failures": self.retries}):
            if backend.name == "cuda":
                try:
                    from dask_cuda import LocalCUDACluster  # one worker process per GPU
                except ImportError as exc:
                    raise ConfigError(f"executor: a Dask cluster for the cuda backend needs "
                                      f"dask-cuda (pip install 'gpupix[cuda,dask]'): {exc}"
                                      ) from None

                check_cuda_workers(self.n_workers)
                cluster = LocalCUDACluster(**options)
            else:
                options["n_workers"] = self.n_workers or os.cpu_count() or 1
                cluster = LocalCluster(processes=True, **options)
        return _OwnedClient(Client(cluster), cluster)

    def _run(self, client: Any, work: list[Work], job: ImageJob, value: Any,
             backend_name: str) -> Iterator[Row]:
        from distributed import as_completed

        state_key, state = None, None
        if value is not None:
            [state] = client.scatter([value], broadcast=True, hash=False)
            state_key = state.key
        job_class, config = type(job), job.config

        stop = self.stop if self.stop is not None else threading.Event()
        outstanding: dict[str, tuple[Any, list[Work]]] = {}
        self.tasks = 0

        def submit(chunk: list[Work]) -> Any:
            future = client.submit(run_chunk, job_class, config, backend_name, chunk, state,
                                   state_key, retries=self.retries, pure=False)
            outstanding[future.key] = (future, chunk)
            self.tasks += 1
            return future

        threads = sum(client.nthreads().values()) or 1
        size = max(1, min(self.chunk, math.ceil(len(work) / (TASKS_PER_THREAD * threads))))
        chunks = deque(work[i:i + size] for i in range(0, len(work), size))
        pending = as_completed()

        def top_up() -> None:
            # One task per worker thread: a worker never holds a task it is not running, so
            # one that dies takes no innocent task down with it (Dask counts a death against
            # every task the worker held), and a stop waits only for the running tasks. The
            # cost is one scheduler round trip between tasks, small next to a chunk of images.
            window = IN_FLIGHT_PER_THREAD * (sum(client.nthreads().values()) or 1)
            while chunks and len(outstanding) < window and not stop.is_set():
                pending.add(submit(chunks.popleft()))

        top_up()
        try:
            for future in pending:
                _, chunk = outstanding.pop(future.key)
                try:
                    rows = future.result()
                except Exception as exc:
                    if not _worker_died(exc):
                        raise  # a bug in gpupix keeps its traceback, as it does locally
                    if len(chunk) > 1:
                        log.warning("a task of %d images kept killing its workers (%s); "
                                    "retrying its images one per task", len(chunk), exc)
                        chunks.extendleft([one] for one in reversed(chunk))
                        rows = []
                    else:
                        item, outputs = chunk[0]
                        rows = [failed_row(item, outputs, f"{item.path}: every Dask worker "
                                           "that processed it died (distributed.KilledWorker);"
                                           " the workers' logs say why")]
                future.release()
                top_up()
                yield from rows
        finally:
            if outstanding:  # stopped early: nothing should go on writing behind our back
                client.cancel([future for future, _ in outstanding.values()])
            if state is not None:
                state.release()


class _OwnedClient:
    """A client and the cluster gpupix started for it: both closed when the run ends."""

    def __init__(self, client: Any, cluster: Any) -> None:
        self.client, self.cluster = client, cluster

    def __enter__(self) -> Any:
        return self.client

    def __exit__(self, *_: object) -> None:
        self.client.close()
        self.cluster.close()


def _worker_died(exc: BaseException) -> bool:
    from distributed import KilledWorker

    return isinstance(exc, KilledWorker)


# One entry per worker process: building a backend (a CUDA context, cuML) or a job with
# shared state costs far more than one image, so it is done once, not per task.
_WORKER_CACHE: dict[tuple[Any, ...], tuple[ImageJob, Backend]] = {}


def run_chunk(job_class: type, config: JobConfig, backend_name: str, chunk: list[Work],
              state: Any = None, state_key: str | None = None) -> list[Row]:
    """The task: read, compute and write each image of ``chunk`` here; return only rows.

    Runs on a worker. ``backend_name`` is the config's backend (``auto`` is resolved by each
    worker for its own hardware); ``state`` is the job's scattered shared state, if any.
    """
    key = (job_class, config, backend_name, state_key)
    if key not in _WORKER_CACHE:
        backend = get_backend(backend_name)
        if hasattr(backend, "n_threads"):  # a worker's share of the cores, not all of them
            backend.n_threads = _worker_threads() or backend.n_threads
        job = job_class(config)
        job.use_state(state)
        _WORKER_CACHE.clear()  # a worker serves one job at a time: drop the previous one
        _WORKER_CACHE[key] = (job, backend)
    job, backend = _WORKER_CACHE[key]
    return [process_item(item, outputs, job, backend) for item, outputs in chunk]


def _worker_threads() -> int | None:
    try:
        from distributed import get_worker

        return get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return None
