"""The fewest colours that reach a quality target, and quality over k, from one histogram.

Everything here works on the occupied colour bins of :func:`gpupix.ops.quantize.color_histogram`
(a few thousand weighted points), never on the pixels, so trying a palette size costs one
warm-started K-means on the bins and one nearest-entry search, whatever the image size.

Why the histogram gives the exact PSNR: every pixel of a bin is assigned the palette entry
nearest its bin's mean, so the squared error of the image is

    sum over pixels |x|^2  -  sum over bins n_b |mean_b|^2  +  sum over bins n_b |mean_b - p_b|^2

(the first two terms are the spread of the pixels inside their bins, fixed for an image).
Keeping one scalar, the sum of squares of the pixels, makes every candidate's PSNR exact
without touching a pixel. Mean CIEDE2000 is estimated from the bin means (it leaves out the
spread inside a bin), so a ``delta_e`` target is verified on the pixels at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from gpupix.backends.base import Array, Backend
from gpupix.ops._xp import bincount
from gpupix.ops.color import ColorSpace, ciede2000, rgb_to_lab, rgb_to_space
from gpupix.ops.metrics import palette_metrics, psnr_from_mse
from gpupix.ops.quantize import ColourHistogram, color_histogram, fit_palette, quantize

Metric = Literal["psnr", "delta_e"]

# PSNR of a K-means palette grows by about this many dB for each doubling of k (distortion
# goes as k^(-2/3) in 3-D); used only for the first guess, later steps use measured slopes.
PSNR_DB_PER_DOUBLING = 2.5
# -ln(mean CIEDE2000) grows by about this much per doubling of k (first guess only).
DELTA_E_LOG_PER_DOUBLING = 0.23


def total_square(rgb: Array, weights: Array | None = None) -> float:
    """Sum over (weighted) pixels of |x|^2, float64: the one scalar the exact PSNR needs."""
    xp = _namespace(rgb)
    flat = xp.astype(xp.reshape(rgb, (-1, rgb.shape[-1])), xp.float64)
    per_pixel = xp.sum(flat * flat, axis=1)
    if weights is not None:
        per_pixel = per_pixel * xp.astype(xp.reshape(weights, (-1,)), xp.float64)
    return float(xp.sum(per_pixel))


@dataclass(frozen=True)
class PaletteFit:
    """One palette scored on the histogram.

    palette : (m, 3) uint8; labels : (n_bins,) palette index of each bin;
    distances : (n_bins,) float32 distance of each bin mean to its entry, in the fit space.
    """

    k: int
    palette: Array
    labels: Array
    distances: Array
    mse: float
    psnr: float
    delta_e: float | None
    inertia: float

    def quality(self, metric: Metric) -> float:
        value = self.psnr if metric == "psnr" else self.delta_e
        assert value is not None
        return value


class HistogramScorer:
    """Scores palettes against one histogram: exact MSE/PSNR, estimated mean CIEDE2000.

    Parameters
    ----------
    histogram : ColourHistogram
    backend : Backend
    color_space : {"rgb", "lab", "oklab"}
        Where the nearest entry is chosen (as :func:`~gpupix.ops.quantize.assign` does).
    square_sum : float
        :func:`total_square` of the pixels the histogram was built from (same weights).
    with_delta_e : bool, default=False
        Also estimate mean CIEDE2000 (needs CIELAB of every bin mean once).
    """

    def __init__(self, histogram: ColourHistogram, *, backend: Backend,
                 color_space: ColorSpace, square_sum: float, with_delta_e: bool = False) -> None:
        xp = backend.xp
        self.histogram = histogram
        self.backend = backend
        self.color_space = color_space
        self.points = rgb_to_space(histogram.colours, color_space)
        counts = xp.astype(histogram.counts, xp.float64)
        self.counts = counts
        self.pixels = float(xp.sum(counts))
        colours = xp.astype(histogram.colours, xp.float64)
        mean_square = float(xp.sum(counts * xp.sum(colours * colours, axis=1)))
        self.within = max(square_sum - mean_square, 0.0)  # spread of pixels inside their bins
        self.lab = rgb_to_lab(histogram.colours) if with_delta_e else None

    def score(self, palette: Array, *, k: int) -> PaletteFit:
        """Nearest entry of every bin, then the image's exact MSE/PSNR for ``palette``."""
        xp = self.backend.xp
        distances, nearest = self.backend.kneighbors(
            rgb_to_space(palette, self.color_space), self.points, k=1)
        labels, distances = nearest[:, 0], distances[:, 0]
        assigned = xp.take(xp.astype(palette, xp.float64), labels, axis=0)
        error = xp.astype(self.histogram.colours, xp.float64) - assigned
        between = float(xp.sum(self.counts * xp.sum(error * error, axis=1)))
        mse = (self.within + between) / (3.0 * max(self.pixels, 1.0))
        psnr = psnr_from_mse(mse)
        delta_e = None
        if self.lab is not None:
            lab_assigned = rgb_to_lab(xp.astype(xp.take(palette, labels, axis=0), xp.float32))
            per_bin = xp.astype(ciede2000(self.lab, lab_assigned), xp.float64)
            delta_e = float(xp.sum(self.counts * per_bin)) / max(self.pixels, 1.0)
        d64 = xp.astype(distances, xp.float64)
        inertia = float(xp.sum(self.counts * d64 * d64))
        return PaletteFit(k=k, palette=palette, labels=labels, distances=distances, mse=mse,
                          psnr=psnr, delta_e=delta_e, inertia=inertia)


def warm_start(scorer: HistogramScorer, previous: PaletteFit, k: int, *, seed: int = 0
               ) -> Array | None:
    """(k, 3) float32 sRGB starting centres (``fit_palette``'s ``init``) from a fit at another k.

    Fewer centres: keep the ``k`` entries holding the most pixels. More centres: add bin
    colours as k-means++ does (each drawn with probability count x squared distance, in the
    fit space, to the centres so far), seeded. None when the histogram has no more than
    ``k`` bins (every bin is then its own entry).
    """
    xp = scorer.backend.xp
    points, counts = scorer.points, scorer.counts
    if points.shape[0] <= k:
        return None
    centres = xp.astype(previous.palette, xp.float32)
    m = centres.shape[0]
    if m > k:
        held = bincount(xp, previous.labels, weights=counts, minlength=m)
        keep = xp.argsort(held, descending=True, stable=True)[:k]
        return xp.take(centres, xp.sort(keep), axis=0)
    rng = np.random.default_rng([seed, m, k])
    # The draws run on the host after one download (points, counts, distances side by
    # side): on a device, each added centre would otherwise wait twice (total, search).
    backend = scorer.backend
    table = backend.to_host(xp.concat([xp.astype(points, xp.float64), counts[:, None],
                                       xp.astype(previous.distances, xp.float64)[:, None]],
                                      axis=1))
    host_points = table[:, :-2]
    if points.dtype == xp.float32:  # differences in the fit's precision, as on the device
        host_points = host_points.astype(np.float32)
    host_counts, d2 = table[:, -2], table[:, -1] ** 2
    added: list[int] = []
    for draw in rng.random(k - m):
        cumulative = np.cumsum(host_counts * d2)
        total = float(cumulative[-1])
        if total <= 0:  # every bin is a centre already
            break
        index = min(int(np.searchsorted(cumulative, draw * total)), len(cumulative) - 1)
        added.append(index)
        step = (host_points - host_points[index:index + 1, :]).astype(np.float64)
        d2 = np.minimum(d2, np.sum(step * step, axis=1))
    if not added:
        return centres
    chosen = xp.take(scorer.histogram.colours, backend.to_device(np.asarray(added, np.int64)),
                     axis=0)
    return xp.concat([centres, chosen], axis=0)


@dataclass
class SearchResult:
    """The chosen palette; ``met`` False when even the largest allowed k misses the target.

    palette : (m, 3) uint8; indices : (H, W) uint8 when the search ran on an image (the
    fixed-k run's own assignment), else None. ``quality`` is the chosen palette's quality
    (measured on the pixels for an image). ``tried`` lists ``(k, quality, kind)`` in the
    order evaluated, kind ``"rough"`` (a short warm-started fit on the histogram that only
    steers the search) or ``"full"`` (a fixed-k run's palette).
    """

    k: int
    palette: Array
    quality: float
    met: bool
    indices: Array | None = None
    tried: list[tuple[int, float, str]] = field(default_factory=list)

    @property
    def full_fits(self) -> int:
        return sum(kind == "full" for _, _, kind in self.tried)


@dataclass(frozen=True)
class _Full:
    """A full evaluation: the fixed-k run's palette, its pixel indices and quality."""

    k: int
    palette: Array
    indices: Array | None
    value: float

    def quality(self, metric: Metric) -> float:
        return self.value


# Lloyd iterations of a rough fit: enough to rank palette sizes, a fraction of a full fit.
ROUGH_ITER = 10
# Histogram bits of the rough fits (6: a few thousand to tens of thousands of points).
ROUGH_BITS = 6
# How far (in doublings of k) a full fit is ahead of a rough one of the same size: about
# 0.35 dB of PSNR, measured on astronaut, chelsea and coffee. Only aims the first full fit.
FULL_AHEAD_DOUBLINGS = 0.14
# The rough phase stops at a fit this close to the goal (in doublings of k, by the typical
# slope): near enough to aim from.
ROUGH_CLOSE_DOUBLINGS = 0.1


def pixel_quality(metric: Metric, rgb: Array, palette: Array, indices: Array,
                  weights: Array | None = None, *, max_pixels: int = 1 << 20) -> float:
    """Quality of ``palette[indices]`` against ``rgb`` on the backend's arrays.

    ``psnr`` (dB) over every pixel of weight > 0; ``delta_e`` (mean CIEDE2000) over a regular
    grid of at most ``max_pixels`` pixels (every n-th row and column), as the job's metrics.
    """
    xp = _namespace(rgb)
    height, width = rgb.shape[:2]
    if weights is None:  # from the distinct (colour, index) pairs, as the job's metrics
        step = 1 if metric == "psnr" else max(1, math.ceil(math.sqrt(height * width /
                                                                     max_pixels)))
        return palette_metrics([metric], rgb[::step, ::step, :], palette,
                               indices[::step, ::step])[metric]
    if metric == "delta_e":
        step = max(1, math.ceil(math.sqrt(height * width / max_pixels)))
        rgb = rgb[::step, ::step, :]
        indices = indices[::step, ::step]
        if weights is not None:
            weights = xp.reshape(weights, (height, width))[::step, ::step]
    flat_indices = xp.reshape(indices, (-1,))
    result = xp.astype(xp.take(palette, xp.astype(flat_indices, xp.int64), axis=0), xp.float32)
    reference = xp.astype(xp.reshape(rgb, (-1, 3)), xp.float32)
    if metric == "psnr":
        per_pixel = xp.mean(xp.astype((reference - result) ** 2, xp.float64), axis=1)
    else:
        per_pixel = xp.astype(ciede2000(rgb_to_lab(reference), rgb_to_lab(result)), xp.float64)
    if weights is None:
        value = float(xp.mean(per_pixel))
    else:
        w = xp.astype(xp.reshape(weights, (-1,)), xp.float64)
        value = float(xp.sum(per_pixel * w) / xp.sum(w))
    if metric == "psnr":
        return psnr_from_mse(value)
    return value


def smallest_k(
    rgb: Array,
    *,
    metric: Metric,
    goal: float,
    backend: Backend,
    weights: Array | None = None,
    max_k: int = 256,
    color_space: ColorSpace = "rgb_lab",
    seed: int = 0,
    max_iter: int = 100,
    first_k: int = 16,
) -> SearchResult:
    """The smallest k whose fixed-k palette of an (H, W, 3) image meets ``metric`` ``goal``.

    Two phases. Rough, on one histogram of the image: short fits (``ROUGH_ITER`` Lloyd
    iterations), each warm-started by adding centres k-means++-style to the largest rough
    palette below it, scored from the histogram (exact PSNR for that assignment) and aimed by
    the secant of quality against log2(k), bracket the answer and measure the slope. Full:
    from there, :func:`~gpupix.ops.quantize.quantize` runs exactly as a fixed-k run does
    (same seed, so the same palette and indices), measured on the pixels, until k meets the
    goal and k - 1 misses it. The choice is therefore minimal for the fixed-k runs a user
    would compare it with, and its output is theirs.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 array of ``backend.xp``
    metric : {"psnr", "delta_e"}
        PSNR in dB over all pixels (met when >= goal) or mean CIEDE2000 (met when <= goal),
        as :func:`pixel_quality` measures them.
    weights : (H*W,) array, optional
        0 leaves a pixel out of the fit and of the quality (transparent pixels).
    max_k : int, default=256
        The largest palette allowed; when it misses the goal, its result is returned with
        ``met=False``.
    first_k : int, default=16
        The first size tried.
    """
    histogram = color_histogram(rgb, bits=ROUGH_BITS, weights=weights)
    square_sum = total_square(rgb, weights)

    def run_full(k: int) -> _Full:
        result = quantize(rgb, k=k, backend=backend, color_space=color_space, seed=seed,
                          max_iter=max_iter, weights=weights)
        value = pixel_quality(metric, rgb, result.palette, result.indices, weights)
        return _Full(k=k, palette=result.palette, indices=result.indices, value=value)

    return _search(histogram, square_sum, run_full, metric=metric, goal=goal,
                   backend=backend, max_k=max_k, color_space=color_space, seed=seed,
                   max_iter=max_iter, first_k=first_k, top=max_k)


def smallest_k_histogram(
    histogram: ColourHistogram,
    *,
    metric: Metric,
    goal: float,
    backend: Backend,
    square_sum: float,
    max_k: int = 256,
    color_space: ColorSpace = "rgb_lab",
    seed: int = 0,
    max_iter: int = 100,
    first_k: int = 16,
) -> SearchResult:
    """:func:`smallest_k` on a histogram alone (a merged one, for a shared palette).

    With no pixels at hand, a full evaluation is a fresh :func:`fit_palette` with
    ``max_iter`` iterations, scored from the histogram: PSNR exactly (pixels take the entry
    nearest their bin's mean), mean CIEDE2000 from the bin means (the spread inside a bin is
    left out, so it reads a little low).
    """
    scorer = HistogramScorer(histogram, backend=backend, color_space=color_space,
                             square_sum=square_sum, with_delta_e=metric == "delta_e")

    def run_full(k: int) -> _Full:
        palette = fit_palette(histogram, k=k, backend=backend, color_space=color_space,
                              seed=seed, max_iter=max_iter)
        fit = scorer.score(palette, k=k)
        return _Full(k=k, palette=palette, indices=None, value=fit.quality(metric))

    return _search(histogram, square_sum, run_full, metric=metric, goal=goal,
                   backend=backend, max_k=max_k, color_space=color_space, seed=seed,
                   max_iter=max_iter, first_k=first_k,
                   top=max(1, min(max_k, int(histogram.colours.shape[0]))), scorer=scorer)


def smallest_k_by_runs(run: Callable[[int], tuple[Any, Any, float]], *, metric: Metric,
                       goal: float, max_k: int, first_k: int = 16) -> SearchResult:
    """:func:`smallest_k` for fits that have no histogram phase (RGBA palettes).

    ``run(k)`` returns ``(palette, indices, quality)`` of a full fit at size k; sizes are
    aimed by the secant of quality against log2(k) until k meets the goal and k - 1 misses.
    """
    tried: list[tuple[int, float, str]] = []
    full: dict[int, _Full] = {}

    def evaluate(k: int) -> _Full:
        palette, indices, value = run(k)
        full[k] = _Full(k=k, palette=palette, indices=indices, value=value)
        tried.append((k, value, "full"))
        return full[k]

    top = max(1, max_k)
    _, hi = _bracket(evaluate, full, metric=metric, goal=goal, lo=1, hi=None, top=top,
                     start=min(max(first_k, 2), top) if top >= 2 else 1, slope=None)
    chosen = full[hi] if hi is not None else (full[top] if top in full else evaluate(top))
    return SearchResult(k=chosen.k, palette=chosen.palette, quality=chosen.value,
                        met=hi is not None, indices=chosen.indices, tried=tried)


def _search(histogram: ColourHistogram, square_sum: float, run_full: Callable[[int], _Full],
            *, metric: Metric, goal: float, backend: Backend, max_k: int,
            color_space: ColorSpace, seed: int, max_iter: int, first_k: int, top: int,
            scorer: HistogramScorer | None = None) -> SearchResult:
    scorer = scorer or HistogramScorer(histogram, backend=backend, color_space=color_space,
                                       square_sum=square_sum, with_delta_e=metric == "delta_e")
    # rough fits cannot tell sizes apart beyond the bins they see
    rough_top = max(1, min(top, int(histogram.colours.shape[0])))
    tried: list[tuple[int, float, str]] = []
    rough: dict[int, PaletteFit] = {}
    full: dict[int, _Full] = {}

    def evaluate_rough(k: int) -> PaletteFit:
        below = [j for j in rough if j < k]
        init = None if not below else warm_start(scorer, rough[max(below)], k, seed=seed)
        palette = fit_palette(histogram, k=k, backend=backend, color_space=color_space,
                              seed=seed, max_iter=min(max_iter, ROUGH_ITER), init=init)
        rough[k] = scorer.score(palette, k=k)
        tried.append((k, rough[k].quality(metric), "rough"))
        return rough[k]

    def evaluate_full(k: int) -> _Full:
        full[k] = run_full(k)
        tried.append((k, full[k].value, "full"))
        return full[k]

    start = min(max(first_k, 2), rough_top) if rough_top >= 2 else 1
    default_slope = PSNR_DB_PER_DOUBLING if metric == "psnr" else DELTA_E_LOG_PER_DOUBLING
    rough_lo, rough_hi = _bracket(evaluate_rough, rough, metric=metric, goal=goal, lo=1,
                                  hi=None, top=rough_top, start=start, slope=None, close=1.1,
                                  good_enough=ROUGH_CLOSE_DOUBLINGS * default_slope)
    k = top
    slope = None
    if rough_hi is not None or rough_lo < rough_top:  # else: even rough_top misses
        # aim the first full fit where the rough fits cross the goal, less the head start a
        # full fit has over a rough one; land a little low: a miss at k - 1 then needs only k
        target = _g(metric, goal)
        nearest = min(rough, key=lambda j: abs(_g(metric, rough[j].quality(metric)) - target))
        slope = _fitted_slope(rough, metric, around=nearest) or default_slope
        x = math.log2(nearest) + (target - _g(metric, rough[nearest].quality(metric))) / slope
        k = max(2, min(top, math.floor(2.0 ** (x - FULL_AHEAD_DOUBLINGS))))
    _, hi = _bracket(evaluate_full, full, metric=metric, goal=goal, lo=1, hi=None, top=top,
                     start=k, slope=slope, round_down=True)
    chosen = full[hi] if hi is not None else (full[top] if top in full else evaluate_full(top))
    return SearchResult(k=chosen.k, palette=chosen.palette, quality=chosen.value,
                        met=hi is not None, indices=chosen.indices, tried=tried)


def _meets(metric: Metric, quality: float, goal: float) -> bool:
    return quality >= goal if metric == "psnr" else quality <= goal


def _g(metric: Metric, quality: float) -> float:
    """Quality on a scale roughly linear in log2(k): PSNR itself, -ln of mean CIEDE2000."""
    return quality if metric == "psnr" else -math.log(max(quality, 1e-9))


def _bracket(evaluate: Callable[[int], Any], fits: dict[int, Any], *,
             metric: Metric, goal: float, lo: int, hi: int | None, top: int, start: int,
             slope: float | None, close: float | None = None,
             good_enough: float | None = None, round_down: bool = False
             ) -> tuple[int, int | None]:
    """Evaluate sizes until ``hi`` meets and ``hi - 1`` misses (or ``top`` misses).

    With ``close``, stop as soon as ``hi <= close * lo``; with ``good_enough``, as soon as a
    fit's quality is that near the goal (on the :func:`_g` scale): enough to steer by.
    ``round_down`` aims each step just below the predicted crossing.

    ``lo`` is the largest size seen to miss (1: below the search), ``hi`` the smallest seen
    to meet. Returns ``(lo, hi)``; ``hi`` is None when nothing up to ``top`` meets.
    """
    k = start
    sides: list[bool] = []
    while True:
        fit = fits[k] if k in fits else evaluate(k)
        sides.append(_meets(metric, fit.quality(metric), goal))
        if good_enough is not None and abs(
                _g(metric, fit.quality(metric)) - _g(metric, goal)) <= good_enough:
            return lo, hi
        if sides[-1]:
            hi = k if hi is None else min(hi, k)
        else:
            lo = max(lo, k)
        if hi is not None and (hi - lo <= 1 or (close is not None and hi <= close * lo)):
            return lo, hi
        if hi is None and lo >= top:
            return lo, None
        # secant steps that keep landing on one side can converge slowly (regula falsi):
        # after three such steps in a wide bracket, bisect
        bisect = (hi is not None and lo > 1 and hi - lo > 4 and len(sides) >= 3
                  and sides[-1] == sides[-2] == sides[-3])
        k = _next_k(fits, metric, goal, lo, hi, top, bisect=bisect, slope=slope,
                    round_down=round_down)


def _fitted_slope(fits: dict[int, Any], metric: Metric, *, around: int | None = None
                  ) -> float | None:
    """Least-squares slope of quality (on the :func:`_g` scale) against log2(k).

    With ``around``, only sizes within a factor of 3 of it count (the local slope), when
    at least two do.
    """
    sizes = [k for k in fits if k > 1]
    if around is not None:
        local = [k for k in sizes if abs(math.log2(k / around)) <= math.log2(3)]
        sizes = local if len(local) >= 2 else sizes
    points = [(math.log2(k), _g(metric, fits[k].quality(metric))) for k in sizes]
    points = [(x, y) for x, y in points if math.isfinite(y)]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    value = sum((x - mx) * (y - my) for x, y in points) / sxx
    return value if value > 0 else None


def _next_k(fits: dict[int, Any], metric: Metric, goal: float, lo: int,
            hi: int | None, top: int, *, bisect: bool, slope: float | None = None,
            round_down: bool = False) -> int:
    """Next size to try, strictly inside (lo, hi): secant in log2(k), or bisection."""
    upper = hi if hi is not None else top + 1
    if bisect and hi is not None:
        k = int(round(math.sqrt(lo * hi))) if lo > 1 else (lo + hi) // 2
        return min(max(k, lo + 1), upper - 1)
    target = _g(metric, goal)
    near = sorted(fits, key=lambda j: abs(_g(metric, fits[j].quality(metric)) - target))[:2]
    if lo in fits and hi in fits:
        near = [lo, hi]
    x1, y1 = math.log2(near[0]), _g(metric, fits[near[0]].quality(metric))
    if slope is None:
        slope = PSNR_DB_PER_DOUBLING if metric == "psnr" else DELTA_E_LOG_PER_DOUBLING
    if len(near) == 2 and abs(math.log2(near[1] / near[0])) >= 0.25:
        x2, y2 = math.log2(near[1]), _g(metric, fits[near[1]].quality(metric))
        if math.isfinite(y1) and math.isfinite(y2) and (y2 - y1) / (x2 - x1) > 0:
            slope = (y2 - y1) / (x2 - x1)
    if not math.isfinite(y1):
        y1 = target + 1.0
    x = x1 + (target - y1) / slope
    x = min(max(x, math.log2(max(lo, 1)) - 3), math.log2(upper) + 3)  # at most 8x per step
    k = math.floor(2.0**x + 1e-9) if round_down else math.ceil(2.0**x - 1e-9)
    return min(max(k, lo + 1), upper - 1)


def sweep_k(
    histogram: ColourHistogram,
    *,
    backend: Backend,
    square_sum: float,
    max_k: int = 256,
    color_space: ColorSpace = "rgb_lab",
    seed: int = 0,
    max_iter: int = 100,
    ks: list[int] | None = None,
    with_delta_e: bool = False,
) -> dict[str, list[float]]:
    """Inertia and PSNR for k = 2, 4, 8, ... max_k (or for ``ks``): the elbow curve.

    Each size is warm-started from the one before. ``inertia`` is the K-means objective on the
    histogram: sum over bins of count x squared distance (in ``color_space``) from the bin mean
    to its palette entry; ``psnr`` is the image's exact PSNR (dB) with that palette;
    ``delta_e`` (with ``with_delta_e``) the mean CIEDE2000 estimated from the bin means.

    Returns ``{"k": [...], "inertia": [...], "psnr": [...]}`` (and ``"delta_e"``).
    """
    scorer = HistogramScorer(histogram, backend=backend, color_space=color_space,
                             square_sum=square_sum, with_delta_e=with_delta_e)
    if ks is None:
        ks = []
        k = 2
        while k <= max_k:
            ks.append(k)
            k *= 2
        if not ks or ks[-1] != max_k:
            ks.append(max_k)
    curve: dict[str, list[float]] = {"k": [], "inertia": [], "psnr": []}
    if with_delta_e:
        curve["delta_e"] = []
    previous = None
    for k in sorted(ks):
        init = None if previous is None else warm_start(scorer, previous, k, seed=seed)
        palette = fit_palette(histogram, k=k, backend=backend, color_space=color_space,
                              seed=seed, max_iter=max_iter, init=init)
        previous = scorer.score(palette, k=k)
        curve["k"].append(k)
        curve["inertia"].append(round(previous.inertia, 6))
        curve["psnr"].append(round(previous.psnr, 4) if math.isfinite(previous.psnr) else None)
        if with_delta_e:
            curve["delta_e"].append(round(previous.delta_e, 4))
    return curve


class HistogramAccumulator:
    """Bin counts and colour sums merged over many images, in fixed memory (host NumPy).

    Memory is ``2**(3*bits)`` x 4 float64 whatever the number of images: the streamed first
    pass of ``palette: shared``.
    """

    def __init__(self, *, bits: int = 6) -> None:
        self.bits = bits
        n_bins = 1 << (3 * bits)
        self.counts = np.zeros(n_bins, np.float64)
        self.sums = np.zeros((n_bins, 3), np.float64)
        self.square_sum = 0.0
        self.images = 0

    def add(self, histogram: ColourHistogram, backend: Backend, square_sum: float) -> None:
        """Merge one image's histogram (its bins are unique, so plain fancy ``+=`` is exact)."""
        if histogram.bits != self.bits:
            raise ValueError(f"histogram has {histogram.bits} bits, accumulator {self.bits}")
        occupied = backend.to_host(histogram.occupied).astype(np.int64)
        counts = backend.to_host(histogram.counts).astype(np.float64)
        colours = backend.to_host(histogram.colours).astype(np.float64)
        self.counts[occupied] += counts
        self.sums[occupied] += colours * counts[:, None]
        self.square_sum += square_sum
        self.images += 1

    def histogram(self, backend: Backend) -> ColourHistogram:
        """The merged histogram on ``backend`` (no per-pixel codes: fit only, not assign)."""
        occupied = np.nonzero(self.counts)[0]
        counts = self.counts[occupied]
        colours = self.sums[occupied] / counts[:, None]
        return ColourHistogram(
            codes=backend.to_device(np.zeros(0, np.int32)),
            occupied=backend.to_device(occupied),
            colours=backend.to_device(colours.astype(np.float32)),
            counts=backend.to_device(counts.astype(np.float32)),
            bits=self.bits,
        )


def _namespace(x: Any) -> Any:
    from array_api_compat import array_namespace

    return array_namespace(x)
