"""Executors run the per-image work: ``local`` (threads in this process); Dask lives apart."""

from __future__ import annotations

import threading
from typing import Any

from gpupix.config import JobConfig


def make_executor(config: JobConfig, *, stop: threading.Event | None = None) -> Any:
    """The executor ``config.executor.kind`` names; Dask is imported only when asked for.

    ``stop``, when set, makes either executor take no new work (see ``run_job``).
    """
    if config.executor.kind == "dask":
        from gpupix.executors.dask import DaskExecutor

        return DaskExecutor.from_config(config.executor, stop=stop)
    from gpupix.executors.local import LocalExecutor

    batch = config.batch
    return LocalExecutor(batch_size=batch.size, prefetch=batch.prefetch,
                         io_workers=batch.io_workers, compute_workers=batch.compute_workers,
                         read_ahead_bytes=batch.read_ahead_bytes, pool=batch.pool, stop=stop)
