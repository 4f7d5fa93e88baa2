"""Test doubles: a backend on array_api_strict, and CPU stand-ins for CuPy and cuML.

array_api_strict refuses silent conversion to NumPy, as CuPy does, so an op that passes on
:class:`StrictBackend` does not secretly depend on NumPy. The CuPy/cuML stand-ins let the
cuda backend's own glue run in CI: the same calls, shapes and keywords, on the CPU, and the
device's arithmetic where it differs (cuML's float32 expanded distances). Their signatures
are checked against the real cuML in tests/contract.
"""

from __future__ import annotations

import collections
import types

import array_api_strict
import numpy as np

# array_api_strict's second device refuses np.asarray(), as a GPU does; its default CPU
# device would let an accidental host conversion pass
DEVICE = array_api_strict.Device("device1")


def to_numpy(x) -> np.ndarray:
    """Host copy of a strict array: moved to the CPU device, then out through DLPack."""
    if isinstance(x, np.ndarray):
        return x
    return np.from_dlpack(x.to_device(array_api_strict.Device("CPU_DEVICE")))


class StrictBackend:
    """The cpu backend's algorithms, with every array an array_api_strict array on a device
    that refuses ``np.asarray`` (as CuPy's arrays do)."""

    name = "strict"
    xp = array_api_strict
    exact_kneighbors = True
    stencil_block = 1 << 8  # blocks of a few rows: the blocked steps run under the standard

    @classmethod
    def available(cls) -> bool:
        return True

    @classmethod
    def unavailable_reason(cls):
        return None

    def describe(self):
        return {"backend": "strict", "device": "array_api_strict device1"}

    def to_device(self, a):
        return array_api_strict.asarray(np.asarray(a), device=DEVICE)

    def to_host(self, x):
        return to_numpy(x)

    def kmeans(self, X, *, n_clusters, sample_weight=None, seed=0, max_iter=100, init=None):
        from gpupix.backends.cpu import CpuBackend

        weights = None if sample_weight is None else to_numpy(sample_weight)
        centres, labels = CpuBackend().kmeans(to_numpy(X), n_clusters=n_clusters,
                                              sample_weight=weights, seed=seed,
                                              max_iter=max_iter,
                                              init=None if init is None else to_numpy(init))
        return self.to_device(centres), self.to_device(labels)

    def kneighbors(self, fit_X, query_X, *, k):
        from gpupix.backends.cpu import CpuBackend

        distances, indices = CpuBackend().kneighbors(to_numpy(fit_X), to_numpy(query_X), k=k)
        return self.to_device(distances), self.to_device(indices)

    def box_mean(self, x, window):
        from gpupix.ops.metrics import _box_mean  # the array-API route, strict all through

        return _box_mean(x, window)

    def solve_sparse(self, rows, cols, values, rhs):
        from gpupix.backends.cpu import CpuBackend

        x = CpuBackend().solve_sparse(to_numpy(rows), to_numpy(cols), to_numpy(values),
                                      to_numpy(rhs))
        return self.to_device(x)

    def synchronize(self):
        return None


class Counts(collections.Counter):
    """Host-device traffic of the fake CuPy: ``upload``, ``download`` and ``sync`` (a stream
    synchronisation, or a device scalar read on the host: ``float()``, ``int()``, ``bool()``,
    ``.item()``, ``.tolist()``, each of which waits for the device on CuPy)."""


_COUNTS = Counts()  # the fake CuPy made last; FakeDeviceArray reports here


class FakeDeviceArray(np.ndarray):
    """Marks arrays that went through the fake ``cupy.asarray`` (they live 'on the device').

    Results of arithmetic, reductions and scalar indexing stay device arrays (0-d ones for
    scalars, as CuPy's do), so reading one on the host is counted as a synchronisation.
    """

    def __array_wrap__(self, array, context=None, return_scalar=False):
        return np.asarray(array).view(FakeDeviceArray)

    def __array_function__(self, func, types, args, kwargs):
        # functions such as concatenate return a base ndarray: keep it on the 'device'
        return _on_device(super().__array_function__(func, types, args, kwargs))

    def __getitem__(self, key):
        out = super().__getitem__(key)
        return out if isinstance(out, np.ndarray) else np.asarray(out).view(FakeDeviceArray)

    def _host(self):
        _COUNTS["sync"] += 1
        return self.view(np.ndarray)

    def __float__(self):
        return float(self._host())

    def __int__(self):
        return int(self._host())

    def __bool__(self):
        return bool(self._host())

    def item(self, *args):
        return self._host().item(*args)

    def tolist(self):
        return self._host().tolist()


def _on_device(result):
    if isinstance(result, tuple):
        return tuple(_on_device(part) for part in result)
    if isinstance(result, np.ndarray | np.generic) and not isinstance(result, FakeDeviceArray):
        return np.asarray(result).view(FakeDeviceArray)
    return result


def make_fake_cupy(device_count: int = 1) -> types.ModuleType:
    """A module with the slice of CuPy's API that gpupix's cuda backend uses.

    ``cupy.counts`` counts uploads, downloads and synchronisations (see :class:`Counts`);
    ``cupy.calls`` lists the module functions called, in order.
    """
    cupy = types.ModuleType("cupy")
    cupy.__version__ = "fake-14"
    cupy.float32, cupy.int32, cupy.int64 = np.float32, np.int32, np.int64
    cupy.float64 = np.float64
    calls: list[str] = []
    cupy.calls = calls
    _COUNTS.clear()
    cupy.counts = _COUNTS

    def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
        calls.append("asarray")
        if not isinstance(a, FakeDeviceArray):
            _COUNTS["upload"] += 1
        return np.asarray(a, dtype=dtype, order=order).view(FakeDeviceArray)

    def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
        calls.append("asnumpy")
        if isinstance(a, FakeDeviceArray):  # CuPy returns a NumPy array as it is
            _COUNTS["download"] += 1
        return np.asarray(a, order=order).view(np.ndarray)

    def ascontiguousarray(a, dtype=None):
        calls.append("ascontiguousarray")
        if not isinstance(a, FakeDeviceArray):
            _COUNTS["upload"] += 1
        return np.ascontiguousarray(a, dtype=dtype).view(FakeDeviceArray)

    def synchronize():
        calls.append("synchronize")
        _COUNTS["sync"] += 1

    def stack(arrays, axis=0):
        calls.append("stack")
        return np.stack([np.asarray(a) for a in arrays], axis=axis).view(FakeDeviceArray)

    cupy.asarray = asarray
    cupy.asnumpy = asnumpy
    cupy.stack = stack
    cupy.ascontiguousarray = ascontiguousarray

    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: device_count,
        getDeviceProperties=lambda i: {"name": b"Fake GPU"},
    )
    stream = types.SimpleNamespace(synchronize=synchronize)
    cupy.cuda = types.SimpleNamespace(runtime=runtime, Device=lambda: types.SimpleNamespace(id=0),
                                      get_current_stream=lambda: stream)
    return cupy


def make_fake_cupyx_ndimage(cupy: types.ModuleType) -> dict[str, types.ModuleType]:
    """cupyx, cupyx.scipy and cupyx.scipy.ndimage with ``uniform_filter`` on SciPy; each call
    is recorded in ``cupy.calls`` and must get a device array."""
    from scipy import ndimage as scipy_ndimage

    cupyx, scipy_module = types.ModuleType("cupyx"), types.ModuleType("cupyx.scipy")
    ndimage = types.ModuleType("cupyx.scipy.ndimage")

    def uniform_filter(x, size=3, mode="reflect"):
        assert isinstance(x, FakeDeviceArray), "uniform_filter got a host array"
        cupy.calls.append("uniform_filter")
        return scipy_ndimage.uniform_filter(np.asarray(x), size=size, mode=mode).view(
            FakeDeviceArray)

    ndimage.uniform_filter = uniform_filter
    cupyx.scipy, scipy_module.ndimage = scipy_module, ndimage

    # cupyx.scipy.sparse(.linalg): csr_matrix from triplets and spsolve (one column), on SciPy
    from scipy import sparse as scipy_sparse
    from scipy.sparse import linalg as scipy_linalg

    sparse = types.ModuleType("cupyx.scipy.sparse")
    linalg = types.ModuleType("cupyx.scipy.sparse.linalg")

    def csr_matrix(arg, shape=None):
        values, (rows, cols) = arg
        for part in (values, rows, cols):
            assert isinstance(part, FakeDeviceArray), "csr_matrix got a host array"
        cupy.calls.append("csr_matrix")
        return scipy_sparse.csr_matrix((np.asarray(values), (np.asarray(rows),
                                                             np.asarray(cols))), shape=shape)

    def spsolve(matrix, b):
        assert isinstance(b, FakeDeviceArray) and b.ndim == 1, "spsolve takes one device column"
        cupy.calls.append("spsolve")
        return np.asarray(scipy_linalg.spsolve(matrix.tocsc(), np.asarray(b))).view(
            FakeDeviceArray)

    sparse.csr_matrix, sparse.linalg, linalg.spsolve = csr_matrix, linalg, spsolve
    scipy_module.sparse = sparse
    return {"cupyx": cupyx, "cupyx.scipy": scipy_module, "cupyx.scipy.ndimage": ndimage,
            "cupyx.scipy.sparse": sparse, "cupyx.scipy.sparse.linalg": linalg}


def float32_expanded_kneighbors(fit: np.ndarray, queries: np.ndarray, k: int,
                                block: int = 4_000_000) -> tuple[np.ndarray, np.ndarray]:
    """cuML's euclidean brute force (``L2SqrtExpanded``): sqrt(|q|^2 + |f|^2 - 2 q.f), each
    term and the sum in float32, clamped at 0; the k smallest, nearest first."""
    fit = np.ascontiguousarray(fit, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    fit_norms = np.einsum("ij,ij->i", fit, fit)
    count = fit.shape[0]
    distances = np.empty((queries.shape[0], k), np.float32)
    indices = np.empty((queries.shape[0], k), np.int64)
    step = max(1, block // max(count, 1))
    for start in range(0, queries.shape[0], step):
        chunk = queries[start:start + step]
        squared = np.einsum("ij,ij->i", chunk, chunk)[:, None] + fit_norms[None, :]
        squared -= np.float32(2.0) * (chunk @ fit.T)
        np.maximum(squared, np.float32(0.0), out=squared)
        nearest = (np.argpartition(squared, k - 1, axis=1)[:, :k] if k < count
                   else np.broadcast_to(np.arange(count), squared.shape))
        chosen = np.take_along_axis(squared, nearest, axis=1)
        order = np.argsort(chosen, axis=1, kind="stable")
        indices[start:start + step] = np.take_along_axis(nearest, order, axis=1)
        distances[start:start + step] = np.sqrt(np.take_along_axis(chosen, order, axis=1))
    return distances, indices


def make_fake_cuml() -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
    """cuml, cuml.cluster and cuml.neighbors, keyword-only like cuML 26.x.

    K-means runs scikit-learn's (exact k-means++ seeding: only the init gpupix passes, or an
    array, is accepted); neighbours use cuML's float32 expanded distances.
    """
    from sklearn.cluster import KMeans as SkKMeans

    cuml = types.ModuleType("cuml")
    cuml.__version__ = "fake-26.10"
    cluster = types.ModuleType("cuml.cluster")
    neighbors = types.ModuleType("cuml.neighbors")

    class KMeans:
        def __init__(self, *, n_clusters=8, max_iter=300, tol=1e-4, random_state=None,
                     init="scalable-k-means++", n_init="auto", output_type=None):
            assert output_type == "cupy"
            # cuML's "scalable-k-means++"/"k-means||" (its default) is a different seeding
            # that scikit-learn does not have: refuse it rather than run another one
            assert not isinstance(init, str) or init == "k-means++", f"init {init!r}"
            sk_init = init if isinstance(init, str) else np.asarray(init)
            self._model = SkKMeans(n_clusters=n_clusters, max_iter=max_iter, tol=tol,
                                   random_state=random_state, init=sk_init,
                                   n_init=1 if n_init == "auto" else n_init)

        def fit(self, X, y=None, sample_weight=None):
            assert isinstance(X, FakeDeviceArray) and X.dtype == np.float32
            assert sample_weight is None or isinstance(sample_weight, FakeDeviceArray)
            self._model.fit(np.asarray(X), sample_weight=sample_weight)
            self.cluster_centers_ = self._model.cluster_centers_.astype(np.float32).view(
                FakeDeviceArray)
            self.labels_ = self._model.labels_.astype(np.int32).view(FakeDeviceArray)
            return self

    class NearestNeighbors:
        def __init__(self, *, n_neighbors=5, algorithm="auto", metric="euclidean",
                     output_type=None):
            assert algorithm == "brute" and metric == "euclidean" and output_type == "cupy"
            self.n_neighbors = n_neighbors

        def fit(self, X, y=None):
            assert isinstance(X, FakeDeviceArray) and X.dtype == np.float32
            self._fit_X = X.view(np.ndarray)
            return self

        def kneighbors(self, X=None, n_neighbors=None, return_distance=True, *,
                       two_pass_precision=False):
            assert isinstance(X, FakeDeviceArray) and X.dtype == np.float32
            assert return_distance and not two_pass_precision
            distances, indices = float32_expanded_kneighbors(
                self._fit_X, X.view(np.ndarray), n_neighbors or self.n_neighbors)
            return distances.view(FakeDeviceArray), indices.view(FakeDeviceArray)

    cluster.KMeans = KMeans
    neighbors.NearestNeighbors = NearestNeighbors
    cuml.cluster, cuml.neighbors = cluster, neighbors
    return cuml, cluster, neighbors
