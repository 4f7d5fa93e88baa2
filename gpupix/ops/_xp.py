"""Small array-API helpers shared by the ops (namespace, device-aware constants, bincount,
clip, scatter)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from array_api_compat import array_namespace, device

__all__ = ["array_namespace", "constant", "bincount", "clip", "scatter"]


def constant(xp: ModuleType, like: Any, values: Any, dtype: Any = None) -> Any:
    """``values`` as an array of ``xp`` on the same device as ``like``."""
    return xp.asarray(values, dtype=dtype or xp.float32, device=device(like))


def clip(x: Any, /, min: Any = None, max: Any = None) -> Any:
    """``xp.clip`` through ``maximum``/``minimum``; same dtype as ``x``, NaN stays NaN.

    array-api-compat's generic clip, which its CuPy namespace uses, assigns through boolean
    masks (``out[ia] = a[ia]``); on CuPy each masked read waits for the device to count the
    mask. Two element-wise kernels do the same without a wait.
    """
    xp = array_namespace(x)
    out = x
    if min is not None:
        out = xp.maximum(out, min)
    if max is not None:
        out = xp.minimum(out, max)
    return out if out.dtype == x.dtype else xp.astype(out, x.dtype)


def bincount(xp: ModuleType, codes: Any, *, minlength: int, weights: Any = None) -> Any:
    """Sum of ``weights`` (or 1) per integer code in ``0..minlength-1``; float64 if weighted.

    The array API has no scatter-add, so libraries that have ``bincount`` (NumPy, CuPy) use
    it; any other namespace takes a sort-based route that uses only the standard.
    """
    native = getattr(xp, "bincount", None)
    if native is not None:
        return native(codes, weights=weights, minlength=minlength)
    values, inverse = xp.unique_inverse(codes)
    dtype = xp.float64 if weights is not None else xp.int64
    if weights is None:
        sums = xp.astype(xp.unique_counts(codes)[1], dtype)
    else:
        order = xp.argsort(xp.reshape(inverse, (-1,)), stable=True)
        sorted_weights = xp.take(xp.astype(weights, dtype), order)
        cumulative = xp.cumulative_sum(sorted_weights, include_initial=True)
        ends = xp.cumulative_sum(xp.unique_counts(codes)[1])
        starts = ends - xp.unique_counts(codes)[1]
        sums = xp.take(cumulative, ends) - xp.take(cumulative, starts)
    # scatter the per-value sums to their codes with a gather: searchsorted + where
    every_code = xp.arange(minlength, dtype=values.dtype, device=device(codes))
    position = xp.searchsorted(values, every_code)
    position = clip(position, max=values.shape[0] - 1)
    present = xp.take(values, position) == every_code
    return xp.where(present, xp.take(sums, position), xp.zeros_like(xp.take(sums, position)))


def scatter(xp: ModuleType, target: Any, positions: Any, values: Any) -> Any:
    """``target[positions] = values`` (positions sorted, unique) where the namespace allows item
    assignment; otherwise the standard-only route looks each slot up among the positions."""
    try:
        target[positions] = values
        return target
    except (TypeError, IndexError, NotImplementedError):
        slots = xp.arange(target.shape[0], dtype=positions.dtype, device=device(target))
        where = clip(xp.searchsorted(positions, slots), max=positions.shape[0] - 1)
        hit = xp.take(positions, where) == slots
        return xp.where(hit, xp.take(values, where), target)


def box_sum(x: Any, window: int) -> Any:
    """Sum over every full ``window x window`` box of the first two axes (rows, columns;
    channels last stay contiguous), by shifted adds: exact for integers, and ``window - 1``
    adds per axis beat a running sum at small windows. The adds are in place (a fresh array
    per add pays its page faults: 5.1 -> 3.6 ms for a 0.25 Mpx RGB image, window 7)."""
    xp = array_namespace(x)
    rows, cols = x.shape[0] - window + 1, x.shape[1] - window + 1
    total = xp.asarray(x[0:rows, ...], copy=True)
    for shift in range(1, window):
        total += x[shift:shift + rows, ...]
    summed = xp.asarray(total[:, 0:cols, ...], copy=True)
    for shift in range(1, window):
        summed += total[:, shift:shift + cols, ...]
    return summed


def tiles(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) rectangles covering the image, ``tile`` pixels a side at most."""
    return [(y, min(y + tile, height), x, min(x + tile, width))
            for y in range(0, height, tile) for x in range(0, width, tile)]
