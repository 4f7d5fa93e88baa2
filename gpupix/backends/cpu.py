"""The CPU backend: NumPy arrays, scikit-learn K-means, SciPy KD-tree neighbours."""

from __future__ import annotations

import os
from types import ModuleType

import array_api_compat.numpy as xp_numpy
import numpy as np

from gpupix.backends.base import Array


class CpuBackend:
    """NumPy everywhere; the oracle the GPU backend is tested against."""

    name = "cpu"
    xp: ModuleType = xp_numpy

    def __init__(self, n_threads: int | None = None) -> None:
        self.n_threads = n_threads or os.cpu_count() or 1

    @classmethod
    def available(cls) -> bool:
        return True

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def describe(self) -> dict[str, str]:
        import scipy
        import sklearn

        return {
            "backend": self.name,
            "device": f"cpu ({self.n_threads} threads)",
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "scipy": scipy.__version__,
        }

    def to_device(self, a: np.ndarray) -> Array:
        return np.asarray(a)

    def to_host(self, x: Array) -> np.ndarray:
        return np.asarray(x)

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
        from sklearn.cluster import KMeans

        X = np.ascontiguousarray(X, dtype=np.float32)
        model = KMeans(
            n_clusters=n_clusters,
            init="k-means++" if init is None else np.asarray(init, dtype=np.float32),
            n_init=1,
            max_iter=max_iter,
            tol=1e-4,
            random_state=seed,
        )
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
        model.fit(X, sample_weight=weights)
        return model.cluster_centers_.astype(np.float32), model.labels_.astype(np.int32)

    def kneighbors(self, fit_X: Array, query_X: Array, *, k: int) -> tuple[Array, Array]:
        from scipy.spatial import cKDTree

        tree = cKDTree(np.asarray(fit_X, dtype=np.float64))
        distances, indices = tree.query(
            np.asarray(query_X, dtype=np.float64), k=k, workers=self.n_threads
        )
        if k == 1:  # cKDTree drops the neighbour axis for k=1
            distances, indices = distances[:, None], indices[:, None]
        return distances.astype(np.float32), indices.astype(np.int64)

    def synchronize(self) -> None:
        return None
