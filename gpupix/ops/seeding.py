"""K-means++ seeding of weighted points, written once against the array API.

Greedy K-means++ (Arthur and Vassilvitskii; the greedy form scikit-learn uses): each new
centre is the best of a few candidates drawn with probability proportional to weight x
squared distance to the nearest centre so far. Here it runs on the colour histogram, a few
thousand weighted points, so the cost is k small passes; the library seeders spend most of
their time in per-call overhead at this size (measured: scikit-learn's took 228 ms of a
397 ms k=256 palette fit on a 0.25 Mpx photo, this one ~15 ms).

The random draws come from NumPy's generator on the host (the array API has no random
numbers) and go to the points' device in one transfer; the loop then never reads a value
back, so on a GPU it queues kernels without waiting.
"""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import array_namespace, device

from gpupix.backends.base import Array


def kmeans_plus_plus(points: Array, weights: Array, k: int, *, seed: int = 0,
                     trials: int | None = None) -> Array:
    """``k`` rows of ``points`` (n, d), n >= k, chosen by greedy weighted K-means++.

    Parameters
    ----------
    weights : (n,) array
        How much each point counts (its pixel count); points of weight 0 are never chosen.
    trials : int, optional
        Candidates tried per centre; default ``2 + floor(ln k)``, as scikit-learn.

    Returns a (k, d) array of ``points``' dtype; the same seed gives the same rows.
    """
    xp = array_namespace(points, weights)
    n = points.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be 1..{n} (the number of points)")
    trials = trials or 2 + int(math.log(k))
    rng = np.random.default_rng(seed)
    where = device(points)
    # every draw at once, as fractions of the running total (one host -> device copy)
    draws = xp.asarray(rng.random((k, trials)), dtype=xp.float64, device=where)
    w = xp.astype(weights, xp.float64)
    x = xp.astype(points, xp.float64)
    squared_norms = xp.sum(x * x, axis=1)

    def squared_distances(rows: Array) -> Array:
        """(t,) point indices -> (t, n) squared distances from those points to all."""
        chosen = xp.take(x, rows, axis=0)
        chosen_norms = xp.take(squared_norms, rows)
        d = chosen_norms[:, None] - 2.0 * (chosen @ xp.permute_dims(x, (1, 0))) + squared_norms
        return xp.maximum(d, xp.zeros_like(d))

    def draw(potential: Array, fractions: Array) -> Array:
        """Indices drawn with probability proportional to ``potential`` (weight x d^2)."""
        cumulative = xp.cumulative_sum(potential)
        rows = xp.searchsorted(cumulative, fractions * cumulative[-1:], side="right")
        return xp.astype(xp.minimum(rows, xp.full_like(rows, n - 1)), xp.int64)

    first = draw(w, draws[0, 0:1])
    chosen = [first]
    closest = squared_distances(first)[0, :]
    for i in range(1, k):
        candidates = draw(w * closest, draws[i, :])
        updated = xp.minimum(squared_distances(candidates), closest[None, :])
        best = xp.argmin(xp.sum(updated * w[None, :], axis=1), keepdims=True)
        chosen.append(xp.take(candidates, best))
        closest = xp.take(updated, best, axis=0)[0, :]
    return xp.take(points, xp.concat(chosen), axis=0)
