"""The CUDA backend: CuPy device arrays, cuML K-means and nearest neighbours.

Nothing here imports CuPy or cuML at module import: :meth:`CudaBackend.available` probes
them inside try/except, and the instance imports them when it is created. The device
modules are looked up through :func:`_modules`, so the tests can run this glue with CPU
stand-ins in their place.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from gpupix.backends.base import Array
from gpupix.errors import BackendUnavailableError


def _modules() -> tuple[Any, Any, ModuleType]:
    """Return ``(cupy, cuml, array-API namespace for cupy)``; raises ImportError if absent."""
    cupy = importlib.import_module("cupy")
    cuml = importlib.import_module("cuml")
    xp = importlib.import_module("array_api_compat.cupy")
    return cupy, cuml, xp


def _probe() -> str | None:
    """None when CuPy imports, a device answers and cuML imports; else the reason why not."""
    try:
        cupy = importlib.import_module("cupy")
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return f"CuPy is not installed or does not import ({type(exc).__name__}: {exc})"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError when there is no driver or no device
        return f"no CUDA device answers ({type(exc).__name__}: {exc})"
    if count < 1:
        return "CuPy imports but reports 0 CUDA devices"
    try:
        importlib.import_module("cuml")
    except Exception as exc:
        return f"cuML is not installed or does not import ({type(exc).__name__}: {exc})"
    return None


class CudaBackend:
    """CuPy + cuML; the ops see only ``xp`` (array_api_compat.cupy) and the calls below."""

    name = "cuda"
    exact_kneighbors = False  # cuML's euclidean brute force: the expanded formula in float32
    stencil_block = None  # one kernel per pass over the whole image

    def __init__(self) -> None:
        reason = self.unavailable_reason()
        if reason is not None:
            raise BackendUnavailableError(f"backend 'cuda' cannot run here: {reason}")
        self._cupy, self._cuml, self.xp = _modules()

    @classmethod
    def available(cls) -> bool:
        return cls.unavailable_reason() is None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            return _probe()
        except Exception as exc:  # available() must never raise
            return f"probe failed ({type(exc).__name__}: {exc})"

    def describe(self) -> dict[str, str]:
        cupy = self._cupy
        try:
            props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
            device = props["name"]
            device = device.decode() if isinstance(device, bytes) else str(device)
        except Exception as exc:
            device = f"unknown ({type(exc).__name__})"
        return {
            "backend": self.name,
            "device": device,
            "cupy": getattr(cupy, "__version__", "?"),
            "cuml": getattr(self._cuml, "__version__", "?"),
        }

    def to_device(self, a: np.ndarray) -> Array:
        return self._cupy.asarray(a)

    def to_host(self, x: Array) -> np.ndarray:
        return self._cupy.asnumpy(x)

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
        from cuml.cluster import KMeans

        from gpupix.ops.seeding import kmeans_plus_plus

        cupy = self._cupy
        X = cupy.ascontiguousarray(cupy.asarray(X, dtype=cupy.float32))
        weights = None if sample_weight is None else cupy.asarray(sample_weight, cupy.float32)
        if init is None:  # the cpu backend's seeding, on the device: both backends start alike
            init = kmeans_plus_plus(X, self.xp.ones_like(X[:, 0]) if weights is None
                                    else weights, n_clusters, seed=seed)
        model = KMeans(
            n_clusters=n_clusters,
            init=cupy.asarray(init, dtype=cupy.float32),
            n_init=1,
            max_iter=max_iter,
            tol=1e-4,
            random_state=seed,
            output_type="cupy",
        )
        model.fit(X, sample_weight=weights)
        centers = cupy.asarray(model.cluster_centers_, dtype=cupy.float32)
        labels = cupy.asarray(model.labels_, dtype=cupy.int32)
        return centers, labels

    def kneighbors(self, fit_X: Array, query_X: Array, *, k: int) -> tuple[Array, Array]:
        from cuml.neighbors import NearestNeighbors

        cupy = self._cupy
        # brute force searches every row; cuML's 'auto' may pick rbc for 2-D data, so say
        # what we want. Its distances are float32 |q|^2 + |f|^2 - 2 q.f: near-equal
        # neighbours may swap (see exact_kneighbors).
        model = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="euclidean",
                                 output_type="cupy")
        model.fit(cupy.asarray(fit_X, dtype=cupy.float32))
        distances, indices = model.kneighbors(cupy.asarray(query_X, dtype=cupy.float32))
        return (cupy.asarray(distances, dtype=cupy.float32),
                cupy.asarray(indices, dtype=cupy.int64))

    def box_mean(self, x: Array, window: int) -> Array:
        from gpupix.backends.cpu import _valid_box_mean

        ndimage = importlib.import_module("cupyx.scipy.ndimage")
        return _valid_box_mean(ndimage.uniform_filter, x, window)

    def solve_sparse(self, rows: Array, cols: Array, values: Array, rhs: Array) -> Array:
        sparse = importlib.import_module("cupyx.scipy.sparse")
        linalg = importlib.import_module("cupyx.scipy.sparse.linalg")
        cupy = self._cupy
        rhs = cupy.asarray(rhs, dtype=cupy.float64)
        n = rhs.shape[0]
        # int32 indices: cuSOLVER's csrlsvqr behind spsolve refuses int64 ones
        matrix = sparse.csr_matrix((cupy.asarray(values, dtype=cupy.float64),
                                    (cupy.asarray(rows, dtype=cupy.int32),
                                     cupy.asarray(cols, dtype=cupy.int32))), shape=(n, n))
        # cuSOLVER's sparse solve takes one right-hand side at a time
        columns = [linalg.spsolve(matrix, rhs[:, c]) for c in range(rhs.shape[1])]
        return cupy.stack(columns, axis=1)

    def synchronize(self) -> None:
        self._cupy.cuda.get_current_stream().synchronize()
