"""The one interface every backend implements.

Ops receive a backend and take ``xp = backend.xp`` first; only the calls below differ between
libraries (scikit-learn/SciPy on the CPU, cuML/CuPy on the GPU).
"""

from __future__ import annotations

from contextvars import ContextVar
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import numpy as np

Array = Any  # an array of ``backend.xp``: numpy.ndarray on cpu, cupy.ndarray on cuda

# Threads one backend call may use from the current thread. An executor that computes
# several images at once sets it in each compute thread (cores // compute threads), so the
# pools and the libraries' own threads (OpenMP, BLAS, SciPy workers) never oversubscribe;
# None (the default) leaves the choice to the backend.
CALL_THREADS: ContextVar[int | None] = ContextVar("gpupix_call_threads", default=None)


@runtime_checkable
class Backend(Protocol):
    name: str
    xp: ModuleType
    # True when ``kneighbors`` ranks by distances free of cancellation (cpu: a float64
    # KD-tree). cuML computes |q|^2 + |f|^2 - 2 q.f in float32, which can swap near-equal
    # neighbours: callers that need the exact order use ``gpupix.ops._knn.exact_kneighbors``.
    exact_kneighbors: bool
    # Elements per row block of the whole-image stencil passes (smooth inpainting), or None
    # for whole arrays. On a CPU a block's intermediates stay in cache: an image larger than
    # the cache is twice as fast in blocks. A device runs each pass as one kernel: None.
    stencil_block: int | None

    @classmethod
    def available(cls) -> bool:
        """True when this backend can run here; never raises."""
        ...

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why ``available()`` is False, in words a user can act on; None when it is True."""
        ...

    def describe(self) -> dict[str, str]:
        """Library versions and device name, for summary.json and ``gpupix info``."""
        ...

    def to_device(self, a: np.ndarray) -> Array: ...

    def to_host(self, x: Array) -> np.ndarray: ...

    def kmeans(
        self,
        X: Array,
        *,
        n_clusters: int,
        sample_weight: Array | None = None,
        seed: int = 0,
        max_iter: int = 100,
        init: Array | None = None,
    ) -> tuple[Array, Array]:
        """Weighted K-means. Returns ``(centers (k, d) float32, labels (n,) int32)``."""
        ...

    def kneighbors(self, fit_X: Array, query_X: Array, *, k: int) -> tuple[Array, Array]:
        """Exact Euclidean k nearest neighbours of each query row among ``fit_X`` rows.

        Returns ``(distances (m, k) float32, indices (m, k) int64)``, nearest first.
        """
        ...

    def box_mean(self, x: Array, window: int) -> Array:
        """Mean over every full ``window x window`` box of the last two axes of ``x``.

        Float input; returns shape ``(..., H - window + 1, W - window + 1)`` (the valid
        region), the same dtype. SSIM's local means; a separable filter in C or on the device.
        """
        ...

    def solve_sparse(self, rows: Array, cols: Array, values: Array, rhs: Array) -> Array:
        """Solve ``A x = rhs`` for a sparse symmetric positive definite ``A`` given as
        triplets, by factorisation.

        ``rows``, ``cols`` (m,) int64 and ``values`` (m,) float64 (duplicates are summed);
        ``rhs`` (n, c) float64, n the order of ``A``. Returns ``x`` (n, c) float64: one
        factorisation serves every column. The hole interiors of ``smooth`` inpainting.
        """
        ...

    def synchronize(self) -> None:
        """Wait for queued device work, so timings are honest."""
        ...
