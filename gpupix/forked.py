"""Map a function over indices in forked worker processes, sharing read-only data for free.

Work that is many short NumPy and Pillow calls holds Python's interpreter lock between them,
so threads take turns; forked processes do not, and inherit the data they read (rows, a job)
without pickling it. Only each call's result travels back. Used where the pieces are
independent and their results small: the report's cards.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

R = TypeVar("R")

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent ends
_shared: tuple[Callable[[Any, int], Any], Any] | None = None


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Forked workers inherit the parent's objects. Linux only: Windows has no fork, and on
    macOS a fork without exec is unsafe once system frameworks (Accelerate) have run;
    elsewhere callers use threads."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def become_worker(parent: int) -> None:
    """In a forked worker: ignore SIGINT (the parent decides when work stops) and end with
    the parent. A worker holds the parent's files (its pipes, the output folder's lock) and
    would otherwise outlive a killed run, which waits on those pipes and that lock."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # fresh stream objects: a parent thread (the progress bar) may have held the old ones'
    # locks at the moment of the fork, and a warning written through them would hang here
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the worker
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # Linux: killed when the parent dies
    except (OSError, AttributeError):  # no prctl: the pool's own shutdown still ends it
        pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _start(function: Callable[[Any, int], Any], shared: Any, parent: int) -> None:
    global _shared
    become_worker(parent)
    _shared = (function, shared)


def _call(index: int) -> Any:
    assert _shared is not None, "a worker runs only after _start"
    function, shared = _shared
    return function(shared, index)


def forked_map(function: Callable[[Any, int], R], count: int, shared: Any, *, workers: int,
               min_per_worker: int = 4) -> list[R]:
    """``[function(shared, i) for i in range(count)]``, in forked processes when there are
    at least ``min_per_worker`` calls per worker, else in threads (also when a worker dies:
    the whole map is then done again in threads, which report the error, if any, as it is).

    ``function`` must be a module-level function; ``shared`` is inherited, never pickled.
    """
    if workers > 1 and count >= min_per_worker * workers and can_fork():
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                     initializer=_start,
                                     initargs=(function, shared, os.getpid())) as pool:
                return list(pool.map(_call, range(count), chunksize=2))
        except BrokenProcessPool:
            pass
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="gpupix-map") as pool:
        return list(pool.map(lambda i: function(shared, i), range(count)))
