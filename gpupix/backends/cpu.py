"""The CPU backend: NumPy arrays, K-means by Lloyd's steps with bounds (lloyd.py), SciPy for nearest
neighbours (KD-tree) and sparse solves (banded Cholesky, SuperLU)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from types import ModuleType

import array_api_compat.numpy as xp_numpy
import numpy as np

from gpupix.backends.base import CALL_THREADS, Array

# Above this many dimensions a KD-tree visits most of its leaves: a BLAS distance matrix
# (in blocks) is faster, e.g. 20x for 360 queries among 2,000 rows of 58 dimensions.
BRUTE_FORCE_DIMS = 16
# k=1 queries among at most this many rows (palettes) take a matrix-product search
SMALL_FIT = 1024


def brute_kneighbors(fit_X: Array, query_X: Array, *, k: int, block: int = 4_000_000
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours through |q|^2 - 2 q.f + |f|^2, ``block`` distances at a time.

    Returns ``(distances (m, k) float32, indices (m, k) int64)``, nearest first.
    """
    fit = np.asarray(fit_X, dtype=np.float64)
    queries = np.asarray(query_X, dtype=np.float64)
    fit_norms = np.einsum("ij,ij->i", fit, fit)
    count = fit.shape[0]
    distances = np.empty((queries.shape[0], k), np.float32)
    indices = np.empty((queries.shape[0], k), np.int64)
    step = max(1, block // max(count, 1))
    for start in range(0, queries.shape[0], step):
        chunk = queries[start:start + step]
        squared = fit_norms[None, :] - 2.0 * (chunk @ fit.T)
        squared += np.einsum("ij,ij->i", chunk, chunk)[:, None]
        np.maximum(squared, 0.0, out=squared)
        nearest = np.argpartition(squared, k - 1, axis=1)[:, :k] if k < count else \
            np.broadcast_to(np.arange(count), (len(chunk), count))
        chosen = np.take_along_axis(squared, nearest, axis=1)
        order = np.argsort(chosen, axis=1, kind="stable")
        indices[start:start + step] = np.take_along_axis(nearest, order, axis=1)
        distances[start:start + step] = np.sqrt(np.take_along_axis(chosen, order, axis=1))
    return distances, indices


def nearest_row(fit_X: Array, query_X: Array, *, block: int = 1 << 18
                ) -> tuple[np.ndarray, np.ndarray]:
    """The nearest of a few rows (a palette) for each query, by matrix products in float64
    blocks; ties go to the lower index. Returns ``(distances (m, 1) float32, indices (m, 1)
    int64)``, each distance computed directly from its two rows.

    For palettes of 16-256 entries and ~50k histogram colours in 3-6 dimensions this is
    1.6-3.6x faster than building and querying a KD-tree (same answers on a 0.25 Mpx
    photo's 46k colours), and a run that needs only palettes
    never imports scipy.spatial (0.3-0.5 s).
    """
    fit = np.asarray(fit_X, dtype=np.float64)
    queries = np.asarray(query_X, dtype=np.float64)
    scaled = -2.0 * fit.T
    fit_norms = np.einsum("ij,ij->i", fit, fit)
    indices = np.empty(queries.shape[0], np.int64)
    step = max(1, block // max(fit.shape[0], 1))
    for start in range(0, queries.shape[0], step):
        squared = queries[start:start + step] @ scaled
        squared += fit_norms
        indices[start:start + step] = np.argmin(squared, axis=1)
    difference = queries - fit[indices]
    distances = np.sqrt(np.einsum("ij,ij->i", difference, difference))
    return distances.astype(np.float32)[:, None], indices[:, None]


_LIMIT_LOCK = threading.Lock()
_limit_state: dict = {"users": 0, "limiter": None, "controller": None}


@contextmanager
def one_native_thread() -> Iterator[None]:
    """OpenMP and BLAS on one thread while any caller is inside (thread-safe, counted).

    threadpoolctl's limits are process-wide: nested contexts from several compute threads
    would restore each other's values out of order, so the first caller in applies the limit
    and the last one out restores it.
    """
    with _LIMIT_LOCK:
        if _limit_state["users"] == 0:
            if _limit_state["controller"] is None:  # finding the libraries takes ~4 ms
                from threadpoolctl import ThreadpoolController

                _limit_state["controller"] = ThreadpoolController()
            _limit_state["limiter"] = _limit_state["controller"].limit(limits=1)
        _limit_state["users"] += 1
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            _limit_state["users"] -= 1
            if _limit_state["users"] == 0:
                _limit_state["limiter"].restore_original_limits()
                _limit_state["limiter"] = None


class CpuBackend:
    """NumPy everywhere; the oracle the GPU backend is tested against."""

    name = "cpu"
    xp: ModuleType = xp_numpy
    exact_kneighbors = True  # cKDTree in float64; brute force in float64 above 16 dimensions
    stencil_block = 1 << 18  # 1 MiB of float32 per work array: a block's passes stay in cache

    def __init__(self, n_threads: int | None = None) -> None:
        self.n_threads = n_threads or os.cpu_count() or 1

    @classmethod
    def available(cls) -> bool:
        return True

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def describe(self) -> dict[str, str]:
        from importlib.metadata import version  # not an import of SciPy

        return {
            "backend": self.name,
            "device": f"cpu ({self.n_threads} threads)",
            "numpy": np.__version__,
            "scipy": version("scipy"),
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
        from gpupix.backends.lloyd import weighted_lloyd
        from gpupix.ops.seeding import kmeans_plus_plus

        points = np.asarray(X, dtype=np.float32)
        weights = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        if init is None:
            init = kmeans_plus_plus(points, np.ones(len(points)) if weights is None else weights,
                                    n_clusters, seed=seed)
        # NumPy on the calling thread: its matrix products here are (m, d<=6) x (d, k), too
        # small for BLAS to start threads, so one image per core never oversubscribes.
        return weighted_lloyd(points, weights, np.asarray(init, np.float32), max_iter=max_iter)

    def kneighbors(self, fit_X: Array, query_X: Array, *, k: int) -> tuple[Array, Array]:
        threads = CALL_THREADS.get() or self.n_threads
        # both matrix-product searches are large enough for BLAS to start its own threads
        pinned = one_native_thread() if threads == 1 else nullcontext()
        if k == 1 and np.shape(fit_X)[0] <= SMALL_FIT:  # a palette: nearest entry per colour
            with pinned:
                return nearest_row(fit_X, query_X)
        if np.shape(fit_X)[1] > BRUTE_FORCE_DIMS:
            with pinned:
                return brute_kneighbors(fit_X, query_X, k=k)
        from scipy.spatial import cKDTree

        tree = cKDTree(np.asarray(fit_X, dtype=np.float64))
        distances, indices = tree.query(
            np.asarray(query_X, dtype=np.float64), k=k, workers=threads
        )
        if k == 1:  # cKDTree drops the neighbour axis for k=1
            distances, indices = distances[:, None], indices[:, None]
        return distances.astype(np.float32), indices.astype(np.int64)

    def box_mean(self, x: Array, window: int) -> Array:
        from scipy.ndimage import uniform_filter

        return _valid_box_mean(uniform_filter, np.asarray(x), window)

    def solve_sparse(self, rows: Array, cols: Array, values: Array, rhs: Array) -> Array:
        return solve_spd(np.asarray(rows), np.asarray(cols), np.asarray(values),
                         np.asarray(rhs, dtype=np.float64))

    def synchronize(self) -> None:
        return None


# A connected block of the matrix whose rows reach at most this far from the diagonal (in the
# caller's order) is factorised as a band (LAPACK's banded Cholesky): a hole of up to ~70 px
# across in row-major order. Wider ones go to SuperLU's fill-reducing order.
BAND_MAX = 160


def solve_spd(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, rhs: np.ndarray
              ) -> np.ndarray:
    """Solve ``A x = rhs`` for a sparse symmetric positive definite ``A`` (triplets,
    duplicates summed), one connected block at a time.

    The smooth fill's matrices are the holes of an image, each a block, its pixels in
    row-major order: a band about twice the hole's width. A banded Cholesky factorisation
    of such a block is 2-3x faster than SuperLU (LU without the symmetry, a general order);
    blocks with a wider band, or that prove not positive definite, are factorised by
    SuperLU with a symmetric order.
    """
    from scipy.linalg import LinAlgError, solveh_banded
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = rhs.shape[0]
    matrix = coo_matrix((values.astype(np.float64), (rows, cols)), shape=(n, n)).tocsr()
    matrix.sum_duplicates()
    count, labels = connected_components(matrix, directed=False)
    members = np.argsort(labels, kind="stable")  # each block's unknowns, in the given order
    sizes = np.bincount(labels, minlength=count)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    local = np.empty(n, np.int64)
    local[members] = np.arange(n) - np.repeat(starts, sizes)
    entries = matrix.tocoo()
    lower = entries.row >= entries.col
    row, col, value = entries.row[lower], entries.col[lower], entries.data[lower]
    offset = local[row] - local[col]  # >= 0: a block keeps the given order
    block_of = labels[col]
    bandwidth = np.zeros(count, np.int64)
    np.maximum.at(bandwidth, block_of, offset)
    by_block = np.argsort(block_of, kind="stable")
    entry_starts = np.concatenate([[0], np.cumsum(np.bincount(block_of, minlength=count))])
    solution = np.empty_like(rhs)
    rest = []
    for block in range(count):
        unknowns = members[starts[block]:starts[block] + sizes[block]]
        if bandwidth[block] > BAND_MAX:
            rest.append(unknowns)
            continue
        chosen = by_block[entry_starts[block]:entry_starts[block + 1]]
        band = np.zeros((bandwidth[block] + 1, sizes[block]))
        band[offset[chosen], local[col[chosen]]] = value[chosen]
        try:
            solution[unknowns] = solveh_banded(band, rhs[unknowns], lower=True,
                                               overwrite_ab=True, check_finite=False)
        except LinAlgError:
            rest.append(unknowns)
    if rest:
        unknowns = np.concatenate(rest)
        solution[unknowns] = _splu_solve(matrix[unknowns][:, unknowns], rhs[unknowns])
    return solution


def _splu_solve(matrix, rhs: np.ndarray) -> np.ndarray:
    from scipy.sparse.linalg import splu

    # the energies are symmetric positive definite: a symmetric fill-reducing order and
    # diagonal pivots (SuperLU's defaults, for any matrix, fill in 40% more, 35% slower)
    factors = splu(matrix.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                   options={"SymmetricMode": True})
    return factors.solve(rhs)


def _valid_box_mean(uniform_filter, x, window: int):
    """``uniform_filter`` (scipy's or cupyx's: same signature) over the last two axes, cut to
    the boxes that lie wholly inside the image (the filter's centred window, odd or even)."""
    size = (1,) * (x.ndim - 2) + (window, window)
    means = uniform_filter(x, size=size, mode="nearest")
    start = window // 2  # an even window's centre is the element after its middle
    rows, cols = x.shape[-2] - window + 1, x.shape[-1] - window + 1
    return means[..., start:start + rows, start:start + cols]
