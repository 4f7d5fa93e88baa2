"""The fewest colours that reach a quality target, and quality over k, from one histogram.

Everything here works on the occupied colour bins of :func:`gpupix.ops.quantize.colour_histogram`
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
from gpupix.ops.quantize import ColourHistogram, fit_palette

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
        psnr = math.inf if mse <= 0 else 10.0 * math.log10(255.0**2 / mse)
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
    """(k, 3) starting centres in the fit space, from a fit at another k.

    Fewer centres: keep the ``k`` entries holding the most pixels. More centres: add them as
    k-means++ does (greedy: of a few candidates drawn with probability count x squared
    distance to the centres so far, keep the one that lowers the total most), seeded. None
    when the histogram has no more than ``k`` bins (every bin is then its own entry).
    """
    xp = scorer.backend.xp
    points, counts = scorer.points, scorer.counts
    if points.shape[0] <= k:
        return None
    centres = rgb_to_space(previous.palette, scorer.color_space)
    m = centres.shape[0]
    if m > k:
        held = bincount(xp, previous.labels, weights=counts, minlength=m)
        keep = xp.argsort(held, descending=True, stable=True)[:k]
        return xp.take(centres, xp.sort(keep), axis=0)
    rng = np.random.default_rng([seed, m, k])
    d2 = xp.astype(previous.distances, xp.float64) ** 2
    added = []
    for draw in rng.random(k - m):
        cumulative = xp.cumulative_sum(counts * d2)
        total = float(cumulative[-1])
        if total <= 0:  # every bin is a centre already
            break
        index = min(int(xp.searchsorted(cumulative, xp.asarray(draw * total, dtype=xp.float64,
                                                                device=_device(points)))),
                    points.shape[0] - 1)
        centre = points[index:index + 1, :]
        added.append(centre)
        step = xp.astype(points - centre, xp.float64)
        d2 = xp.minimum(d2, xp.sum(step * step, axis=1))
    return xp.concat([centres, *added], axis=0) if added else centres


@dataclass
class SearchResult:
    """The chosen fit; ``met`` False when even the largest allowed k misses the target.

    ``tried`` lists ``(k, quality, kind)`` in the order evaluated, kind ``"rough"`` (a short
    warm-started fit that only steers the search) or ``"full"`` (the fit a fixed-k run
    makes); ``verified`` is the pixel-measured quality of the choice when a verifier was given.
    """

    fit: PaletteFit
    met: bool
    tried: list[tuple[int, float, str]] = field(default_factory=list)
    verified: float | None = None

    @property
    def full_fits(self) -> int:
        return sum(kind == "full" for _, _, kind in self.tried)


# Lloyd iterations of a rough fit: enough to rank palette sizes, a fraction of a full fit.
ROUGH_ITER = 10
# How far (in doublings of k) a full fit is ahead of a rough one of the same size: about
# 0.1 dB of PSNR, measured on astronaut, chelsea and coffee. Only aims the first full fit.
FULL_AHEAD_DOUBLINGS = 0.04


def smallest_k(
    histogram: ColourHistogram,
    *,
    metric: Metric,
    goal: float,
    backend: Backend,
    square_sum: float,
    max_k: int = 256,
    color_space: ColorSpace = "oklab",
    seed: int = 0,
    max_iter: int = 100,
    first_k: int = 16,
    verify: Callable[[PaletteFit], float] | None = None,
) -> SearchResult:
    """The smallest palette size whose palette meets ``metric`` ``goal``, searching k.

    Two phases, both on the histogram. Rough: short fits (``ROUGH_ITER`` Lloyd iterations),
    each warm-started by adding centres k-means++-style to the largest rough palette below
    it, aimed by the secant of quality against log2(k), bracket the answer and measure the
    slope. Full: from there, fits exactly as a fixed-k run makes them (same seed, so the same
    palette) until k meets the goal and k - 1 misses it, so the choice is minimal for the
    fixed-k runs a user would compare it with, and its palette is theirs. Every palette is
    scored exactly (PSNR) or closely (mean CIEDE2000) from the histogram; ``verify``, if
    given, measures the choice on the pixels, and a miss there resumes the search above it.

    Parameters
    ----------
    metric : {"psnr", "delta_e"}
        PSNR in dB (met when >= goal) or mean CIEDE2000 (met when <= goal).
    square_sum : float
        :func:`total_square` of the pixels behind ``histogram``.
    max_k : int, default=256
        The largest palette allowed; when it misses the goal, its fit is returned, met=False.
    first_k : int, default=16
        The first size tried.
    """
    scorer = HistogramScorer(histogram, backend=backend, color_space=color_space,
                             square_sum=square_sum, with_delta_e=metric == "delta_e")
    n_bins = int(histogram.colours.shape[0])
    top = max(1, min(max_k, n_bins))  # at n_bins every bin mean is its own entry: the best
    tried: list[tuple[int, float, str]] = []
    rough: dict[int, PaletteFit] = {}
    full: dict[int, PaletteFit] = {}

    def evaluate_rough(k: int) -> PaletteFit:
        below = [j for j in rough if j < k]
        init = None if not below else warm_start(scorer, rough[max(below)], k, seed=seed)
        palette = fit_palette(histogram, k=k, backend=backend, color_space=color_space,
                              seed=seed, max_iter=min(max_iter, ROUGH_ITER), init=init)
        rough[k] = scorer.score(palette, k=k)
        tried.append((k, rough[k].quality(metric), "rough"))
        return rough[k]

    def evaluate_full(k: int) -> PaletteFit:
        palette = fit_palette(histogram, k=k, backend=backend, color_space=color_space,
                              seed=seed, max_iter=max_iter)
        full[k] = scorer.score(palette, k=k)
        tried.append((k, full[k].quality(metric), "full"))
        return full[k]

    start = min(max(first_k, 2), top) if top >= 2 else 1
    rough_lo, rough_hi = _bracket(evaluate_rough, rough, metric=metric, goal=goal, lo=1,
                                  hi=None, top=top, start=start, slope=None, close=1.1)
    slope = _fitted_slope(rough, metric)
    lo, hi = 1, None
    k = top
    if rough_hi is not None:  # aim the first full fit where the rough ones cross the goal
        k = _next_k({j: rough[j] for j in (rough_lo, rough_hi) if j in rough}, metric, goal,
                    rough_lo, rough_hi + 1, top, bisect=False, slope=slope)
        # a full fit converges further than a rough one: it reaches the goal a little lower
        k = max(2, min(k, math.floor(k * 2.0 ** -FULL_AHEAD_DOUBLINGS + 0.5)))
    verified = None
    for _round in range(4):  # more rounds only when the pixels disagree with the histogram
        lo, hi = _bracket(evaluate_full, full, metric=metric, goal=goal, lo=lo, hi=hi,
                          top=top, start=k, slope=slope)
        if hi is None:  # even the largest allowed palette misses
            fit = full[top] if top in full else evaluate_full(top)
            return SearchResult(fit=fit, met=False, tried=tried,
                                verified=None if verify is None else verify(fit))
        if verify is None:
            return SearchResult(fit=full[hi], met=True, tried=tried)
        verified = verify(full[hi])
        if _meets(metric, verified, goal):
            return SearchResult(fit=full[hi], met=True, tried=tried, verified=verified)
        if hi >= top:
            return SearchResult(fit=full[hi], met=False, tried=tried, verified=verified)
        lo, hi, k = hi, None, hi + 1  # the histogram was optimistic here: look above
    fit = full[top] if top in full else evaluate_full(top)
    return SearchResult(fit=fit, met=False, tried=tried, verified=verified)


def _meets(metric: Metric, quality: float, goal: float) -> bool:
    return quality >= goal if metric == "psnr" else quality <= goal


def _g(metric: Metric, quality: float) -> float:
    """Quality on a scale roughly linear in log2(k): PSNR itself, -ln of mean CIEDE2000."""
    return quality if metric == "psnr" else -math.log(max(quality, 1e-9))


def _bracket(evaluate: Callable[[int], PaletteFit], fits: dict[int, PaletteFit], *,
             metric: Metric, goal: float, lo: int, hi: int | None, top: int, start: int,
             slope: float | None, close: float | None = None) -> tuple[int, int | None]:
    """Evaluate sizes until ``hi`` meets and ``hi - 1`` misses (or ``top`` misses).

    With ``close``, stop as soon as ``hi <= close * lo`` (a bracket good enough to steer by).

    ``lo`` is the largest size seen to miss (1: below the search), ``hi`` the smallest seen
    to meet. Returns ``(lo, hi)``; ``hi`` is None when nothing up to ``top`` meets.
    """
    k = start
    sides: list[bool] = []
    while True:
        fit = fits[k] if k in fits else evaluate(k)
        sides.append(_meets(metric, fit.quality(metric), goal))
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
        k = _next_k(fits, metric, goal, lo, hi, top, bisect=bisect, slope=slope)


def _fitted_slope(fits: dict[int, PaletteFit], metric: Metric) -> float | None:
    """Least-squares slope of quality (on the :func:`_g` scale) against log2(k)."""
    points = [(math.log2(k), _g(metric, f.quality(metric))) for k, f in fits.items() if k > 1]
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


def _next_k(fits: dict[int, PaletteFit], metric: Metric, goal: float, lo: int,
            hi: int | None, top: int, *, bisect: bool, slope: float | None = None) -> int:
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
    k = math.ceil(2.0**x - 1e-9)
    return min(max(k, lo + 1), upper - 1)


def sweep_k(
    histogram: ColourHistogram,
    *,
    backend: Backend,
    square_sum: float,
    max_k: int = 256,
    color_space: ColorSpace = "oklab",
    seed: int = 0,
    max_iter: int = 100,
) -> dict[str, list[float]]:
    """Inertia and PSNR for k = 2, 4, 8, ... max_k: the elbow curve of seed 003.

    Each size is warm-started from the one before. ``inertia`` is the K-means objective on the
    histogram: sum over bins of count x squared distance (in ``color_space``) from the bin mean
    to its palette entry; ``psnr`` is the image's exact PSNR (dB) with that palette.

    Returns ``{"k": [...], "inertia": [...], "psnr": [...]}``.
    """
    scorer = HistogramScorer(histogram, backend=backend, color_space=color_space,
                             square_sum=square_sum)
    ks = []
    k = 2
    while k <= max_k:
        ks.append(k)
        k *= 2
    if not ks or ks[-1] != max_k:
        ks.append(max_k)
    curve: dict[str, list[float]] = {"k": [], "inertia": [], "psnr": []}
    previous = None
    for k in ks:
        init = None if previous is None else warm_start(scorer, previous, k, seed=seed)
        palette = fit_palette(histogram, k=k, backend=backend, color_space=color_space,
                              seed=seed, max_iter=max_iter, init=init)
        previous = scorer.score(palette, k=k)
        curve["k"].append(k)
        curve["inertia"].append(round(previous.inertia, 6))
        curve["psnr"].append(round(previous.psnr, 4) if math.isfinite(previous.psnr) else None)
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


def _device(x: Any) -> Any:
    from array_api_compat import device

    return device(x)
