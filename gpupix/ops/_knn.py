"""Exact k nearest neighbours from a backend whose distances are float32 (cuML).

cuML's euclidean brute force computes |q|^2 + |f|^2 - 2 q.f in float32. At coordinates of a
few hundred pixels its rounding (~0.05 squared pixels) is larger than the offsets that make
pixel-grid distances distinct, so near-equal neighbours swap and the k-th may be missed.
:func:`exact_kneighbors` asks for a few more, recomputes their distances in float64 from the
gathered coordinates (on the device), re-ranks, and asks again with more when the float32
ranking could still have left a nearer row out. (cuML's own ``two_pass_precision`` indexes
the query array with fit-set indices and returns squared distances: not used.)
"""

from __future__ import annotations

import numpy as np

from gpupix.backends.base import Array, Backend

EXTRA = 4  # neighbours asked for beyond k: float32 ranks a true neighbour a few places off
_EPS32 = float(np.finfo(np.float32).eps)


def exact_kneighbors(backend: Backend, fit_X: Array, query_X: Array, *, k: int,
                     extra: int = EXTRA) -> tuple[Array, Array]:
    """``backend.kneighbors`` with the exact order and float64 distances on every backend.

    Parameters
    ----------
    fit_X : (n, d) float array of ``backend.xp``
    query_X : (m, d) float array
    k : int
        At most n.
    extra : int, default=4
        Candidates asked for beyond k on a backend whose distances are float32.

    Returns
    -------
    distances : (m, k) float array (float64 after a re-rank), nearest first
    indices : (m, k) int64 array
    """
    if backend.exact_kneighbors:
        return backend.kneighbors(fit_X, query_X, k=k)
    xp = backend.xp
    fit = xp.astype(fit_X, xp.float64)
    queries = xp.astype(query_X, xp.float64)
    count, dims = fit.shape
    rows = queries.shape[0]
    # a bound on the float32 formula's error in squared distance: each of the d + 2 terms
    # rounds by eps relative to |q|^2 + |f|^2 at most (Cauchy-Schwarz bounds 2 q.f by it)
    slack = 2.0 * (dims + 3) * _EPS32 * (xp.sum(queries * queries, axis=1)
                                        + xp.max(xp.sum(fit * fit, axis=1)))
    ask = min(k + extra, count)
    while True:
        approximate, indices = backend.kneighbors(fit, queries, k=ask)
        gathered = xp.reshape(xp.take(fit, xp.reshape(indices, (-1,)), axis=0),
                              (rows, ask, dims))
        offsets = gathered - queries[:, None, :]
        squared = xp.sum(offsets * offsets, axis=2)
        order = xp.argsort(squared, axis=1, stable=True)[:, :k]
        chosen = xp.take_along_axis(squared, order, axis=1)
        if ask == count:
            break
        # a row left out has a float32 distance at least the last one returned, so its
        # exact squared distance is at least that minus the slack
        last = xp.astype(approximate[:, -1], xp.float64) ** 2
        if bool(xp.all(chosen[:, -1] < last - slack)):
            break
        ask = min(2 * ask, count)
    return xp.sqrt(chosen), xp.take_along_axis(indices, order, axis=1)
