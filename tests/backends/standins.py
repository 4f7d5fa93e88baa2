"""Test doubles: a backend on array_api_strict, and CPU stand-ins for CuPy and cuML.

array_api_strict refuses silent conversion to NumPy, as CuPy does, so an op that passes on
:class:`StrictBackend` does not secretly depend on NumPy. The CuPy/cuML stand-ins let the
cuda backend's own glue run in CI: the same calls, shapes and keywords, on the CPU.
"""

from __future__ import annotations

import types

import array_api_strict
import numpy as np


def to_numpy(x) -> np.ndarray:
    """Host copy of a strict array (through DLPack, the one exit the standard offers)."""
    if isinstance(x, np.ndarray):
        return x
    return np.from_dlpack(x)


class StrictBackend:
    """The cpu backend's algorithms, with every array an array_api_strict array."""

    name = "strict"
    xp = array_api_strict

    @classmethod
    def available(cls) -> bool:
        return True

    @classmethod
    def unavailable_reason(cls):
        return None

    def describe(self):
        return {"backend": "strict", "device": "cpu (array_api_strict)"}

    def to_device(self, a):
        return array_api_strict.asarray(np.asarray(a))

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

    def synchronize(self):
        return None


class FakeDeviceArray(np.ndarray):
    """Marks arrays that went through the fake ``cupy.asarray`` (they live 'on the device')."""


def make_fake_cupy(device_count: int = 1) -> types.ModuleType:
    """A module with the slice of CuPy's API that gpupix's cuda backend uses."""
    cupy = types.ModuleType("cupy")
    cupy.__version__ = "fake-14"
    cupy.float32, cupy.int32, cupy.int64 = np.float32, np.int32, np.int64
    calls: list[str] = []
    cupy.calls = calls

    def asarray(a, dtype=None):
        calls.append("asarray")
        return np.asarray(a, dtype=dtype).view(FakeDeviceArray)

    def asnumpy(a):
        calls.append("asnumpy")
        return np.asarray(a).view(np.ndarray)

    cupy.asarray = asarray
    cupy.asnumpy = asnumpy
    cupy.ascontiguousarray = lambda a: np.ascontiguousarray(a).view(FakeDeviceArray)

    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: device_count,
        getDeviceProperties=lambda i: {"name": b"Fake GPU"},
    )
    stream = types.SimpleNamespace(synchronize=lambda: calls.append("synchronize"))
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
    return {"cupyx": cupyx, "cupyx.scipy": scipy_module, "cupyx.scipy.ndimage": ndimage}


def make_fake_cuml() -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
    """cuml, cuml.cluster and cuml.neighbors, keyword-only like cuML 26.x, on scikit-learn."""
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.neighbors import NearestNeighbors as SkNearestNeighbors

    cuml = types.ModuleType("cuml")
    cuml.__version__ = "fake-26.10"
    cluster = types.ModuleType("cuml.cluster")
    neighbors = types.ModuleType("cuml.neighbors")

    class KMeans:
        def __init__(self, *, n_clusters=8, max_iter=300, tol=1e-4, random_state=None,
                     init="scalable-k-means++", n_init="auto", output_type=None, **kwargs):
            assert not kwargs, f"unexpected KMeans arguments {kwargs}"
            assert output_type == "cupy"
            sk_init = "k-means++" if isinstance(init, str) else np.asarray(init)
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
                     output_type=None, **kwargs):
            assert not kwargs, f"unexpected NearestNeighbors arguments {kwargs}"
            assert algorithm == "brute" and metric == "euclidean" and output_type == "cupy"
            self._model = SkNearestNeighbors(n_neighbors=n_neighbors, algorithm="brute")

        def fit(self, X):
            assert isinstance(X, FakeDeviceArray) and X.dtype == np.float32
            self._model.fit(np.asarray(X))
            return self

        def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
            assert isinstance(X, FakeDeviceArray) and X.dtype == np.float32
            distances, indices = self._model.kneighbors(np.asarray(X), n_neighbors)
            return (distances.astype(np.float32).view(FakeDeviceArray),
                    indices.astype(np.int64).view(FakeDeviceArray))

    cluster.KMeans = KMeans
    neighbors.NearestNeighbors = NearestNeighbors
    cuml.cluster, cuml.neighbors = cluster, neighbors
    return cuml, cluster, neighbors
