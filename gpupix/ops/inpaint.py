"""Inpainting on any array API: a smooth spline fill, or KNN over pixel coordinates.

``smooth`` (the default) minimises a spline energy over the missing pixels, its weights
chosen per image on hidden known pixels (see :mod:`gpupix.ops.inpaint_smooth`).
``exemplar`` copies patches of the known image into large holes (see
:mod:`gpupix.ops.inpaint_exemplar`). The KNN methods work tile by tile:

A missing pixel takes its colour from its k nearest *known* pixels in (row, col) space:

- ``knn``: their weighted mean (``weights="distance"``: 1/d, as scikit-learn's
  ``KNeighborsRegressor(weights="distance")``);
- ``knn_linear``: a weighted linear fit of colour over (row, col) on the neighbours, read at
  the missing pixel, so a gradient is followed instead of averaged away. With
  ``weights="distance"`` the weights are a Gaussian whose width follows the local spacing of
  known pixels (0.6 x the 4th neighbour's distance), *steered* along the local edge
  direction (Takeda, Farsiu & Milanfar, "Kernel regression for image processing and
  reconstruction", 2007): the structure tensor of a first, isotropic fit stretches the
  kernel along edges, so colours do not bleed across them;
- ``vote``: the (weighted) majority colour among the neighbours (a KNN classifier), for
  palette images where new colours are wrong.

Deep inside a hole (nearest known pixel more than 2.5 pixels away) ``knn`` and ``knn_linear``
take a 1/d^6 weighted mean of the 256 nearest known pixels instead: k neighbours would all
lie on the nearest side of the hole.

The image is cut into tiles; each tile's queries search the known pixels of the tile plus a
halo. A query whose k-th neighbour is not provably nearer than every pixel outside the halo
makes the tile search again with twice the halo, so the tiled result is the untiled one:
no seams. Equal distances are common on a pixel grid; every known pixel's coordinates carry a
tiny fixed offset that depends only on its position, so the neighbour set is unique and the
same whatever the tiling.

Neighbours come from ``backend.kneighbors`` (cpu: SciPy cKDTree; cuda: cuML brute force,
exact). Everything else is array-API code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import numpy as np
from array_api_compat import device

from gpupix.backends.base import Array, Backend
from gpupix.ops._knn import exact_kneighbors
from gpupix.ops._xp import array_namespace, clip, tiles
from gpupix.ops.inpaint_exemplar import RERANK, exemplar_fill
from gpupix.ops.inpaint_smooth import ENERGIES, choose_energy, fill
from gpupix.ops.metrics import _box_mean

Method = Literal["smooth", "knn", "knn_linear", "vote", "exemplar"]
Weights = Literal["uniform", "distance"]

METHODS = ("smooth", "knn", "knn_linear", "vote", "exemplar")
AUTO_K_MAX = 20  # k: auto tries 1..AUTO_K_MAX
HOLDOUT = 0.05  # k: auto hides this fraction of the known pixels
HOLDOUT_MAX = 40_000  # ... but no more pixels than this
TILE = 256

_JITTER = 0.01  # largest coordinate offset (pixels) that makes grid distances distinct
_STEER_MARGIN = 3  # central difference (1) + structure-tensor box radius (2)
_STEER_BOX = 5  # structure tensor smoothing window
_STEER_EPS = 5.0  # (levels/pixel)^2 added to the tensor: flat areas stay isotropic
_BANDWIDTH = 0.6  # Gaussian width, in units of the 4th neighbour's distance (local spacing)
_BANDWIDTH_AT = 4  # the neighbour whose distance sets the width
_RIDGE = 0.03  # relative ridge on the slopes of the linear fit: keeps it stable
_HOLDOUT_STREAM = 0x4B5F4155  # "K_AU": the hold-out's random stream
_DEEP = 2.5  # nearest known pixel farther than this: inside a hole
_DEEP_K = 256  # neighbours of a pixel inside a hole
_DEEP_POWER = 6  # their weights: 1/d^6 (Shepard)
_DEEP_BAND = 8192  # pixels per band of deep pixels (bounds the (n, 256, C) gather)
_VOTE_CHUNK = 8192  # queries per vote block: its (q, k, k) comparison stays small


@dataclass
class Neighbours:
    """The k nearest known pixels of ``q`` query pixels, nearest first.

    rows, cols : (q,) int64 absolute coordinates of the queries (raster order)
    dy, dx : (q, k) float32 neighbour coordinates minus the query's
    distances : (q, k) float32 Euclidean distances (of the offset coordinates)
    colours : (q, k, C) float32 the neighbours' colours
    """

    rows: Array
    cols: Array
    dy: Array
    dx: Array
    distances: Array
    colours: Array

    def subset(self, keep: Array) -> Neighbours:
        """The queries where ``keep`` ((q,) bool) is True, in the same order."""
        return Neighbours(self.rows[keep], self.cols[keep], self.dy[keep], self.dx[keep],
                          self.distances[keep], self.colours[keep])


def _jitter(xp: ModuleType, rows: Array, cols: Array) -> tuple[Array, Array]:
    """A fixed offset in (-_JITTER, _JITTER) per absolute pixel position (R2 sequence)."""
    fy = (rows * 0.7548776662466927 + cols * 0.5698402909980532) % 1.0
    fx = (rows * 0.5698402909980532 + cols * 0.3247179572447458) % 1.0
    return (fy - 0.5) * (2 * _JITTER), (fx - 0.5) * (2 * _JITTER)


def initial_halo(k: int, known_fraction: float) -> int:
    """A halo that usually holds the k nearest known pixels (twice the expected radius)."""
    radius = math.sqrt(k / (math.pi * max(known_fraction, 1e-3)))
    return int(math.ceil(2 * radius)) + 2


def tile_neighbours(backend: Backend, colours: Array, known: Array, query: Array,
                    window: tuple[int, int, int, int], *, k: int, halo: int
                    ) -> Neighbours | None:
    """Exact k nearest known pixels of every query pixel inside ``window``.

    Parameters
    ----------
    colours : (H, W, C) float32 array
    known : (H, W) bool array
        Pixels that may be neighbours.
    query : (y1 - y0, x1 - x0) bool array
        Pixels of the window that need neighbours.
    window : (y0, y1, x0, x1)
        The rectangle whose query pixels are answered (raster order).
    k : int
        Neighbours per query; fewer when the whole image has fewer known pixels.
    halo : int
        Initial margin searched around the window; doubled until the answer is exact.

    Returns None when the window holds no query pixel.
    """
    xp = backend.xp
    height, width = known.shape
    y0, y1, x0, x1 = window
    q_rows, q_cols = xp.nonzero(query)
    if q_rows.shape[0] == 0:
        return None
    q_rows, q_cols = q_rows + y0, q_cols + x0
    while True:
        ry0, ry1 = max(y0 - halo, 0), min(y1 + halo, height)
        rx0, rx1 = max(x0 - halo, 0), min(x1 + halo, width)
        whole = (ry0, ry1, rx0, rx1) == (0, height, 0, width)
        k_rows, k_cols = xp.nonzero(known[ry0:ry1, rx0:rx1])
        n_known = int(k_rows.shape[0])
        if n_known >= k or (whole and n_known > 0):
            found = min(k, n_known)
            distances, index = _search(backend, k_rows, k_cols, q_rows - ry0, q_cols - rx0,
                                       origin=(ry0, rx0), k=found)
            if whole or _provably_exact(xp, distances[:, -1], q_rows, q_cols,
                                        (ry0, ry1, rx0, rx1), (height, width)):
                break
        elif whole:
            raise ValueError("no known pixel to inpaint from")
        halo *= 2
    flat_index = xp.reshape(index, (-1,))
    region = xp.reshape(colours[ry0:ry1, rx0:rx1, :], (-1, colours.shape[2]))
    known_flat = k_rows * (rx1 - rx0) + k_cols
    gathered = xp.take(region, xp.take(known_flat, flat_index), axis=0)
    shape = index.shape
    n_rows = xp.reshape(xp.take(k_rows, flat_index), shape) + ry0
    n_cols = xp.reshape(xp.take(k_cols, flat_index), shape) + rx0
    return Neighbours(
        rows=q_rows, cols=q_cols,
        dy=xp.astype(n_rows - q_rows[:, None], xp.float32),
        dx=xp.astype(n_cols - q_cols[:, None], xp.float32),
        distances=xp.astype(distances, xp.float32),
        colours=xp.reshape(gathered, (shape[0], shape[1], colours.shape[2])),
    )


def _search(backend: Backend, k_rows: Array, k_cols: Array, q_rows: Array, q_cols: Array, *,
            origin: tuple[int, int], k: int) -> tuple[Array, Array]:
    """Exact neighbours on region-local coordinates (float32 distances re-ranked)."""
    xp = backend.xp
    f64 = xp.float64
    kr, kc = xp.astype(k_rows, f64), xp.astype(k_cols, f64)
    jy, jx = _jitter(xp, kr + origin[0], kc + origin[1])
    fit = xp.stack([kr + jy, kc + jx], axis=1)
    queries = xp.stack([xp.astype(q_rows, f64), xp.astype(q_cols, f64)], axis=1)
    return exact_kneighbors(backend, fit, queries, k=k)


def _provably_exact(xp: ModuleType, kth: Array, q_rows: Array, q_cols: Array,
                    region: tuple[int, int, int, int], shape: tuple[int, int]) -> bool:
    """True when every query's k-th neighbour is nearer than any pixel outside ``region``."""
    ry0, ry1, rx0, rx1 = region
    height, width = shape
    reach = None
    for outside, distance in ((ry0 > 0, q_rows - ry0 + 1), (ry1 < height, ry1 - q_rows),
                              (rx0 > 0, q_cols - rx0 + 1), (rx1 < width, rx1 - q_cols)):
        if outside:
            reach = distance if reach is None else xp.minimum(reach, distance)
    if reach is None:
        return True
    # an outside pixel's offset may bring it _JITTER*sqrt(2) nearer: keep a margin
    return bool(xp.all(kth + 3 * _JITTER < xp.astype(reach, kth.dtype)))


def _weights(nb: Neighbours, weights: Weights, method: Method) -> Array:
    """(q, k) float32 weights of the neighbours (no steering)."""
    xp = array_namespace(nb.distances)
    if weights == "uniform":
        return xp.ones_like(nb.distances)
    if method == "knn_linear":
        at = min(_BANDWIDTH_AT, nb.distances.shape[1]) - 1
        nearest = clip(nb.distances[:, at:at + 1], min=1.0)
        squared = nb.distances**2
        return xp.exp(-(squared - squared[:, :1]) / (_BANDWIDTH**2 * nearest**2))
    return 1.0 / clip(nb.distances, min=1e-6)


def _steered_weights(nb: Neighbours, tensor: tuple[Array, Array, Array]) -> Array:
    """Gaussian weights stretched along the edge the structure tensor sees (det-1 shape)."""
    xp = array_namespace(nb.distances)
    jxx, jxy, jyy = tensor
    a, b, c = jxx + _STEER_EPS, jxy, jyy + _STEER_EPS
    scale = xp.sqrt(a * c - b * b)
    a, b, c = (a / scale)[:, None], (b / scale)[:, None], (c / scale)[:, None]
    quad = a * nb.dx**2 + 2.0 * b * nb.dx * nb.dy + c * nb.dy**2
    at = min(_BANDWIDTH_AT, nb.distances.shape[1]) - 1
    nearest = clip(nb.distances[:, at:at + 1], min=1.0)
    lowest = xp.min(quad, axis=1, keepdims=True)
    return xp.exp(-(quad - lowest) / (_BANDWIDTH**2 * nearest**2))


def _moments(nb: Neighbours, w: Array, prefixes: bool) -> tuple[Array, Array]:
    """Weighted sums over the neighbours for the fits.

    Returns ``geometry`` (q, K', 3, 3): sums of w * [1, dx, dy] x [1, dx, dy], and
    ``colour`` (q, K', 3, C): sums of w * [1, dx, dy] x colour, where K' is 1, or k for
    every prefix 1..k (cumulative sums, for the k: auto sweep). Without prefixes the sums are
    batched matrix products, which NumPy and CuPy run far faster than reductions over a
    short axis.
    """
    xp = array_namespace(nb.distances)
    ones = xp.ones_like(nb.dx)
    basis = xp.stack([w, w * nb.dx, w * nb.dy], axis=1)  # (q, 3, k)
    coordinates = xp.stack([ones, nb.dx, nb.dy], axis=2)  # (q, k, 3)
    if not prefixes:
        return (basis @ coordinates)[:, None, :, :], (basis @ nb.colours)[:, None, :, :]
    geometry = xp.cumulative_sum(basis[:, :, :, None] * coordinates[:, None, :, :], axis=2)
    colour = xp.cumulative_sum(basis[:, :, :, None] * nb.colours[:, None, :, :], axis=2)
    return xp.permute_dims(geometry, (0, 2, 1, 3)), xp.permute_dims(colour, (0, 2, 1, 3))


def _mean(nb: Neighbours, w: Array, prefixes: bool) -> Array:
    xp = array_namespace(w)
    if not prefixes:
        return (w[:, None, :] @ nb.colours) / xp.sum(w, axis=1)[:, None, None]
    wc = xp.cumulative_sum(w[:, :, None] * nb.colours, axis=1)
    return wc / xp.cumulative_sum(w, axis=1)[:, :, None]


def _linear(nb: Neighbours, w: Array, prefixes: bool) -> Array:
    """Weighted ridge fit colour ~ 1 + dx + dy, read at the query (dx = dy = 0).

    The 3x3 normal equations with the intercept eliminated: a 2x2 system on the weighted
    scatter of the neighbours around their weighted mean, solved by cofactors. The ridge
    shrinks the slopes by a fraction of that scatter, so it means the same whether the
    neighbours surround the query or all lie to one side of it.
    """
    xp = array_namespace(nb.distances)
    geometry, colour = _moments(nb, w, prefixes)
    s0 = geometry[:, :, 0, 0]
    mx, my = geometry[:, :, 0, 1] / s0, geometry[:, :, 0, 2] / s0
    cxx = geometry[:, :, 1, 1] / s0 - mx * mx
    cyy = geometry[:, :, 2, 2] / s0 - my * my
    cxy = geometry[:, :, 1, 2] / s0 - mx * my
    cxx, cyy = clip(cxx, min=0.0) * (1.0 + _RIDGE), clip(cyy, min=0.0) * (1.0 + _RIDGE)
    mean = colour[:, :, 0, :] / s0[:, :, None]
    cxc = colour[:, :, 1, :] / s0[:, :, None] - mx[:, :, None] * mean
    cyc = colour[:, :, 2, :] / s0[:, :, None] - my[:, :, None] * mean
    det = cxx * cyy - cxy * cxy
    # collinear or too few neighbours: the slopes are undefined, the weighted mean is not
    solvable = det > 1e-6 * (cxx + cyy) ** 2 + 1e-12
    safe_det = xp.where(solvable, det, xp.ones_like(det))[:, :, None]
    slope_x = (cyy[:, :, None] * cxc - cxy[:, :, None] * cyc) / safe_det
    slope_y = (cxx[:, :, None] * cyc - cxy[:, :, None] * cxc) / safe_det
    fit = mean - slope_x * mx[:, :, None] - slope_y * my[:, :, None]
    return xp.where(solvable[:, :, None], fit, mean)


def _vote(nb: Neighbours, w: Array, prefixes: bool) -> Array:
    """The colour with the largest total weight among the neighbours (ties: the nearest)."""
    xp = array_namespace(nb.distances)
    q, k = w.shape
    codes = xp.astype(xp.round(nb.colours), xp.int64)
    code = codes[:, :, 0]
    for channel in range(1, codes.shape[2]):
        code = code * 256 + codes[:, :, channel]
    positions = xp.arange(k, device=device(w))
    results = []
    for start in range(0, q, _VOTE_CHUNK):
        stop = min(start + _VOTE_CHUNK, q)
        c = code[start:stop, :]
        ww = w[start:stop, :]
        same = c[:, :, None] == c[:, None, :]
        cols = nb.colours[start:stop, :, :]
        sizes = range(1, k + 1) if prefixes else (k,)
        picks = []
        for size in sizes:
            within = positions < size
            support = xp.sum(xp.where(same & within[None, None, :], ww[:, None, :],
                                      xp.zeros_like(ww[:, None, :])), axis=2)
            support = xp.where(within[None, :], support, xp.full_like(support, -1.0))
            best = xp.argmax(support, axis=1)
            chosen = positions[None, :] == best[:, None]
            picks.append(xp.sum(xp.where(chosen[:, :, None], cols, xp.zeros_like(cols)),
                                axis=1))
        results.append(xp.stack(picks, axis=1))
    return xp.concat(results, axis=0)


def predict(nb: Neighbours, *, method: Method = "knn", weights: Weights = "distance",
            tensor: tuple[Array, Array, Array] | None = None, prefixes: bool = False
            ) -> Array:
    """Colours of the query pixels from their neighbours.

    Parameters
    ----------
    nb : Neighbours
    method : {"knn", "knn_linear", "vote"}
    weights : {"uniform", "distance"}
    tensor : three (q,) arrays, optional
        The structure tensor at each query (``knn_linear`` with distance weights steers its
        kernel with it).
    prefixes : bool, default=False
        Predict with each k = 1..K nearest neighbours (for the k: auto sweep).

    Returns
    -------
    (q, C) float32 array, or (q, K, C) with ``prefixes``.
    """
    if method == "knn_linear" and weights == "distance" and tensor is not None:
        w = _steered_weights(nb, tensor)
    else:
        w = _weights(nb, weights, method)
    if method == "knn":
        values = _mean(nb, w, prefixes)
    elif method == "knn_linear":
        values = _linear(nb, w, prefixes)
    elif method == "vote":
        values = _vote(nb, w, prefixes)
    else:
        raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
    return values if prefixes else values[:, 0, :]


def _pad_edge(x: Array, top: int, bottom: int, left: int, right: int,
              value: float | None = None) -> Array:
    """``x`` (H, W, ...) grown outwards: edge rows and columns repeated, or ``value``."""
    xp = array_namespace(x)

    def block(edge: Array, shape: tuple[int, ...]) -> Array:
        if value is None:
            return xp.broadcast_to(edge, shape)
        return xp.full(shape, value, dtype=x.dtype, device=device(x))

    if top or bottom:
        parts = [block(x[:1, ...], (top, *x.shape[1:]))] if top else []
        parts.append(x)
        if bottom:
            parts.append(block(x[-1:, ...], (bottom, *x.shape[1:])))
        x = xp.concat(parts, axis=0)
    if left or right:
        parts = [block(x[:, :1, ...], (x.shape[0], left, *x.shape[2:]))] if left else []
        parts.append(x)
        if right:
            parts.append(block(x[:, -1:, ...], (x.shape[0], right, *x.shape[2:])))
        x = xp.concat(parts, axis=1)
    return x


def structure_tensor(canvas: Array, margin: int = _STEER_MARGIN) -> tuple[Array, Array, Array]:
    """Smoothed gradient outer products of a (h + 2m, w + 2m, C) canvas, on its (h, w) centre.

    Central differences of the channel mean, averaged over a 5x5 box.
    """
    xp = array_namespace(canvas)
    luma = xp.mean(canvas, axis=2)
    gy = (luma[2:, 1:-1] - luma[:-2, 1:-1]) * 0.5
    gx = (luma[1:-1, 2:] - luma[1:-1, :-2]) * 0.5
    products = xp.stack([gx * gx, gx * gy, gy * gy], axis=0)
    box = _box_mean(products, _STEER_BOX)
    trim = margin - 1 - _STEER_BOX // 2
    if trim:
        box = box[:, trim:-trim, trim:-trim]
    return box[0, ...], box[1, ...], box[2, ...]


def known_structure_tensor(colours: Array, known: Array, window: tuple[int, int, int, int]
                           ) -> tuple[Array, Array, Array]:
    """Structure tensor on the (h, w) ``window`` from known pixels only.

    Central differences of the channel mean count only where both pixels they span are
    known; each tensor entry is the mean of its valid products over a 5x5 box (0 where there
    is none: the kernel stays round). No pixel that is being predicted takes part, so the
    k: auto sweep can steer exactly as the fill does.
    """
    xp = array_namespace(colours)
    height, width = known.shape
    y0, y1, x0, x1 = window
    m = _STEER_MARGIN
    wy0, wy1, wx0, wx1 = max(y0 - m, 0), min(y1 + m, height), max(x0 - m, 0), min(x1 + m, width)
    pads = (m - (y0 - wy0), m - (wy1 - y1), m - (x0 - wx0), m - (wx1 - x1))
    luma = _pad_edge(xp.mean(colours[wy0:wy1, wx0:wx1, :], axis=2), *pads)
    valid = _pad_edge(xp.astype(known[wy0:wy1, wx0:wx1], xp.float32), *pads, value=0.0)
    gx = (luma[1:-1, 2:] - luma[1:-1, :-2]) * 0.5
    gy = (luma[2:, 1:-1] - luma[:-2, 1:-1]) * 0.5
    vx = valid[1:-1, 2:] * valid[1:-1, :-2]
    vy = valid[2:, 1:-1] * valid[:-2, 1:-1]
    vxy = vx * vy
    sums = _box_mean(xp.stack([gx * gx * vx, gx * gy * vxy, gy * gy * vy, vx, vxy, vy]),
                     _STEER_BOX)
    trim = m - 1 - _STEER_BOX // 2
    if trim:
        sums = sums[:, trim:-trim, trim:-trim]
    entries = []
    for value, count in ((0, 3), (1, 4), (2, 5)):
        have = sums[count, ...] > 1e-6
        safe = xp.where(have, sums[count, ...], xp.ones_like(sums[count, ...]))
        entries.append(xp.where(have, sums[value, ...] / safe, xp.zeros_like(safe)))
    jxx, jxy, jyy = entries
    bound = xp.sqrt(jxx * jyy)  # the entries come from different pixels: keep it a tensor
    return jxx, clip(jxy, -bound, bound), jyy


def _scatter_rows(xp: ModuleType, mask: Array, values: Array, base: Array) -> Array:
    """``base`` (h, w, C) with its ``mask`` pixels replaced by ``values`` (raster order).

    The array API has no scatter: the i-th True pixel gathers row i of ``values`` through
    the running count of the mask.
    """
    flat = xp.reshape(mask, (-1,))
    rank = xp.cumulative_sum(xp.astype(flat, xp.int64)) - 1
    rank = clip(rank, min=0)
    gathered = xp.take(values, rank, axis=0)
    gathered = xp.reshape(gathered, base.shape)
    return xp.where(mask[:, :, None], gathered, base)


def _fill_deep(backend: Backend, colours: Array, known: Array, tile_missing: Array,
               window: tuple[int, int, int, int], nb: Neighbours, values: Array, *, halo: int
               ) -> Array:
    """Pixels deep inside a hole: a 1/d^6 weighted mean of their 256 nearest known pixels.

    Where the nearest known pixel is more than ``_DEEP`` pixels away, k neighbours would all
    sit on the nearest side of the hole, and a fit on them extrapolates; the many
    neighbours of a Shepard mean surround the pixel instead. Bands of rows keep the
    (pixels, 256, C) gathers small.
    """
    xp = backend.xp
    deep = nb.distances[:, 0] > _DEEP
    if not bool(xp.any(deep)):
        return values
    flags = xp.astype(deep, xp.float32)[:, None]
    base = xp.zeros((*tile_missing.shape, 1), dtype=xp.float32, device=device(values))
    deep_window = _scatter_rows(xp, tile_missing, flags, base)[:, :, 0] > 0.5
    halo = max(halo, int(math.ceil(2 * float(xp.max(nb.distances[:, 0])))))
    y0, y1, x0, x1 = window
    band = max(1, _DEEP_BAND // (x1 - x0))
    parts = []
    for top in range(y0, y1, band):
        bottom = min(top + band, y1)
        far = tile_neighbours(backend, colours, known, deep_window[top - y0:bottom - y0, :],
                              (top, bottom, x0, x1), k=_DEEP_K, halo=halo)
        if far is None:
            continue
        w = 1.0 / clip(far.distances, min=1e-6) ** _DEEP_POWER
        parts.append((w[:, None, :] @ far.colours)[:, 0, :] / xp.sum(w, axis=1)[:, None])
    deep_values = xp.concat(parts, axis=0)
    rank = clip(xp.cumulative_sum(xp.astype(deep, xp.int64)) - 1, min=0)
    return xp.where(deep[:, None], xp.take(deep_values, rank, axis=0), values)


def inpaint(image: Array, missing: Array, *, backend: Backend, k: int | None = 8,
            method: Method = "smooth", weights: Weights = "distance", tile: int = TILE,
            known: Array | None = None) -> Array:
    """Fill the ``missing`` pixels of ``image``: a smooth spline fill, or from their k
    nearest known pixels.

    Parameters
    ----------
    image : (H, W, C) uint8 array of ``backend.xp``
        Values at missing pixels are ignored.
    missing : (H, W) bool array
    backend : Backend
    k : int or None, default=8
        Neighbours per missing pixel (fewer if the image has fewer known pixels). For
        ``smooth``, the energy: ``ENERGIES[k - 1]`` (1..6), or None to choose it on hidden
        known pixels (:func:`gpupix.ops.inpaint_smooth.choose_energy`). For ``exemplar``,
        the candidate squares re-ranked (None: 16; see
        :func:`gpupix.ops.inpaint_exemplar.exemplar_fill`).
    method : {"smooth", "knn", "knn_linear", "vote", "exemplar"}, default="smooth"
    weights : {"uniform", "distance"}, default="distance"
        KNN methods only.
    tile : int, default=256
        Tile side; bounds the memory of one neighbour query. The result does not depend on it
        (``smooth`` works on the whole image).
    known : (H, W) bool array, optional
        Pixels that may serve as neighbours; default: every pixel that is not missing (pass
        fewer to keep e.g. transparent pixels' meaningless colours out).

    Returns
    -------
    (H, W, C) uint8 array: missing pixels filled, the others unchanged.

    Raises
    ------
    ValueError
        When no pixel is known.
    """
    xp = backend.xp
    height, width, channels = image.shape
    n_missing = int(xp.sum(xp.astype(missing, xp.int64)))
    if n_missing == 0:
        return image
    known = ~missing if known is None else known & ~missing
    n_known = int(xp.sum(xp.astype(known, xp.int64)))
    if n_known == 0:
        raise ValueError("no known pixel to inpaint from")
    colours = xp.astype(image, xp.float32)
    if method == "smooth":
        if k is None:
            chosen = choose_energy(colours, missing, known, backend=backend)
            tension, stiffness = chosen.tension, chosen.stiffness
        else:
            tension, stiffness = ENERGIES[min(max(k, 1), len(ENERGIES)) - 1]
        out = fill(colours, missing, known, backend=backend, tension=tension,
                   stiffness=stiffness)  # clipped to 0..255 where filled
        return xp.astype(xp.round(out), image.dtype)
    if method == "exemplar":
        out = exemplar_fill(colours, missing, known, backend=backend,
                            k=RERANK if k is None else k)
        return xp.astype(xp.round(clip(out, 0.0, 255.0)), image.dtype)
    if k is None:
        raise ValueError(f"method {method!r} needs k (an int)")
    halo = initial_halo(k, n_known / (height * width))
    steer = method == "knn_linear" and weights == "distance"
    margin = _STEER_MARGIN if steer else 0
    out = xp.asarray(colours, copy=True)
    for y0, y1, x0, x1 in tiles(height, width, tile):
        wy0, wy1 = max(y0 - margin, 0), min(y1 + margin, height)
        wx0, wx1 = max(x0 - margin, 0), min(x1 + margin, width)
        nb = tile_neighbours(backend, colours, known, missing[wy0:wy1, wx0:wx1],
                             (wy0, wy1, wx0, wx1), k=k, halo=halo)
        if nb is None:
            continue
        tile_missing = missing[y0:y1, x0:x1]
        tensor = None
        if steer:  # an isotropic fit first; its structure tensor steers the final fit
            first = predict(nb, method="knn_linear", weights="distance")
            canvas = _scatter_rows(xp, missing[wy0:wy1, wx0:wx1], first,
                                   colours[wy0:wy1, wx0:wx1, :])
            canvas = _pad_edge(canvas, margin - (y0 - wy0), margin - (wy1 - y1),
                               margin - (x0 - wx0), margin - (wx1 - x1))
            jxx, jxy, jyy = structure_tensor(canvas, margin)
            inside = (nb.rows >= y0) & (nb.rows < y1) & (nb.cols >= x0) & (nb.cols < x1)
            nb = nb.subset(inside)
            if nb.rows.shape[0] == 0:
                continue
            tensor = tuple(xp.reshape(t, (-1,))[xp.reshape(tile_missing, (-1,))]
                           for t in (jxx, jxy, jyy))
        values = predict(nb, method=method, weights=weights, tensor=tensor)
        if method != "vote":
            values = _fill_deep(backend, colours, known, tile_missing, (y0, y1, x0, x1), nb,
                                values, halo=halo)
        out[y0:y1, x0:x1, :] = _scatter_rows(xp, tile_missing, values,
                                             colours[y0:y1, x0:x1, :])
    return xp.astype(xp.round(clip(out, 0.0, 255.0)), image.dtype)


@dataclass
class KChoice:
    """The k: auto sweep: the chosen k and the hold-out RMSE for k = 1..len(rmse)."""

    k: int
    rmse: list[float]
    held_out: int


def choose_k(image: Array, missing: Array, *, backend: Backend, method: Method = "smooth",
             weights: Weights = "distance", k_max: int = AUTO_K_MAX, holdout: float = HOLDOUT,
             seed: int = 0, tile: int = TILE, default: int = 8, known: Array | None = None,
             holdout_max: int = HOLDOUT_MAX) -> KChoice:
    """Pick k by hiding a random ``holdout`` fraction of the known pixels and predicting them.

    For ``smooth``, k numbers the energies (``ENERGIES``, 1-based) and the pixels hidden have
    the shape of the damage (:func:`gpupix.ops.inpaint_smooth.choose_energy`); ``rmse`` is
    then the RMSE of each energy tried, in the order of ``ENERGIES``. For ``exemplar`` k is
    the number of candidate squares re-ranked: ``RERANK`` (16), nothing hidden.

    One neighbour query of ``k_max`` neighbours serves every k = 1..k_max: predictions for
    all prefixes come from cumulative sums over the neighbour axis. ``knn_linear`` is scored
    with its kernel steered by a structure tensor of the remaining known pixels (the fill's
    tensor comes from a first fill, which would need every pixel around the hidden ones).
    Pixels deep inside holes are not scored: hidden pixels are single pixels. The hidden
    pixels are drawn on the host with NumPy (the array API has no random numbers), so the
    same seed hides the same pixels on every backend.

    Past ``holdout_max`` hidden pixels (a large image), only the hidden pixels of whole tiles
    taken in random order are kept, until there are ``holdout_max``: the sweep's cost stops
    growing with the image while its estimate stays unbiased.
    ``known`` ((H, W) bool, optional) limits the pixels that may be hidden or be neighbours.
    ``missing`` and ``known`` may be NumPy arrays on any backend (they are read on the host).
    Returns ``default`` (and an empty curve) when fewer than 2 pixels can be hidden.
    """
    xp = backend.xp
    height, width, channels = image.shape
    if method == "exemplar":  # k counts candidate squares: no hold-out predicts large holes
        return KChoice(k=RERANK, rmse=[], held_out=0)
    if method == "smooth":  # k numbers the energies; they are scored on hidden damage
        device_missing = backend.to_device(backend.to_host(missing))
        usable = ~device_missing
        if known is not None:
            usable = usable & backend.to_device(backend.to_host(known))
        chosen = choose_energy(xp.astype(image, xp.float32), device_missing, usable,
                               backend=backend)
        return KChoice(k=chosen.index + 1, rmse=chosen.rmse, held_out=chosen.held_out)
    known_host = ~backend.to_host(missing)
    if known is not None:
        known_host &= backend.to_host(known)
    # drawn over the known pixels only, from a stream of its own: a mask made from the same
    # seed (the corrupt job's) must not decide which known pixels are hidden
    rng = np.random.default_rng([seed, _HOLDOUT_STREAM])
    held_host = np.zeros_like(known_host)
    held_host[known_host] = rng.random(int(known_host.sum())) < holdout
    n_held = int(held_host.sum())
    if n_held > holdout_max:  # big image: whole tiles at random until enough are hidden
        chosen = np.zeros_like(held_host)
        windows = tiles(height, width, tile)
        for index in rng.permutation(len(windows)):
            y0, y1, x0, x1 = windows[index]
            chosen[y0:y1, x0:x1] = held_host[y0:y1, x0:x1]
            if int(chosen.sum()) >= holdout_max:
                break
        held_host = chosen
        n_held = int(held_host.sum())
    n_fit = int(known_host.sum()) - n_held
    if n_held < 2 or n_fit < 1:
        return KChoice(k=default, rmse=[], held_out=n_held)
    held = backend.to_device(held_host)
    fit_known = backend.to_device(known_host & ~held_host)
    colours = xp.astype(image, xp.float32)
    halo = initial_halo(k_max, n_fit / (height * width))
    errors = None
    for y0, y1, x0, x1 in tiles(height, width, tile):
        nb = tile_neighbours(backend, colours, fit_known, held[y0:y1, x0:x1],
                             (y0, y1, x0, x1), k=k_max, halo=halo)
        if nb is None:
            continue
        truth = xp.reshape(colours[y0:y1, x0:x1, :], (-1, channels))
        truth = truth[xp.reshape(held[y0:y1, x0:x1], (-1,))]
        tensor = None
        if method == "knn_linear" and weights == "distance":
            held_tile = xp.reshape(held[y0:y1, x0:x1], (-1,))
            tensor = tuple(xp.reshape(t, (-1,))[held_tile] for t in
                           known_structure_tensor(colours, fit_known, (y0, y1, x0, x1)))
        guesses = clip(predict(nb, method=method, weights=weights, prefixes=True,
                                  tensor=tensor), 0.0, 255.0)
        squared = xp.sum((guesses - truth[:, None, :]) ** 2, axis=(0, 2))
        squared = xp.astype(squared, xp.float64)
        errors = squared if errors is None else errors + squared
    found = int(errors.shape[0])
    rmse = [math.sqrt(v / (n_held * channels)) for v in backend.to_host(errors).tolist()]
    best = min(range(found), key=lambda i: rmse[i]) + 1
    return KChoice(k=best, rmse=rmse, held_out=n_held)
