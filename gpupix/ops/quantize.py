"""Colour quantization: weighted K-means on the colour histogram, then a look-up table.

K-means never sees the pixels. Every pixel's colour is binned at ``bits`` per channel (7 by
default: bins two levels wide, so a bin's centre is within half a level of each colour in
it); the occupied bins with their pixel counts are the histogram. The palette is fitted on
the histogram (merged to coarser bins while it has more than ``max_points`` entries) by
weighted K-means (seeded by K-means on 5-bit bins), and every pixel is assigned
through a table from its bin to the nearest palette entry. The pixel-level work is one
binning pass, one count and one table look-up, whatever ``k`` is.
"""

from __future__ import annotations

from dataclasses import dataclass

from array_api_compat import array_namespace, device

from gpupix.backends.base import Array, Backend
from gpupix.ops._xp import bincount, clip, scatter
from gpupix.ops.color import ColorSpace, rgb_to_space, space_to_rgb
from gpupix.ops.seeding import kmeans_plus_plus

MAX_COLOURS = 256
# K-means fits on at most this many histogram points; larger histograms are merged to
# coarser bins first. Measured on 0.25 Mpx photos: fitting on 6-bit instead of 7-bit bins
# costs 0.1-0.4 dB PSNR, and the K-means iterations matter far less than the resolution.
MAX_FIT_POINTS = 60_000
# The fit runs coarse to fine: K-means++ and Lloyd on 5-bit bins (a few thousand points),
# then at most REFINE_ITERATIONS Lloyd steps on the fine bins. Seeding on the fine bins
# costs k x (2 + log k) passes over tens of thousands of points; measured on 0.25 Mpx
# photos at k=256 this start cuts the fit 3-4x for the same PSNR within +-0.05 dB.
COARSE_BITS, REFINE_ITERATIONS = 5, 30


@dataclass(frozen=True)
class ColourHistogram:
    """Occupied colour bins of one image.

    codes : (H*W,) int32 bin code of every pixel
    occupied : (n,) int64 codes of the non-empty bins, ascending
    colours : (n, 3) float32 sRGB colour of each occupied bin: the exact mean of its pixels
        when built with ``means=True``, else the bin's centre (within half a bin of each)
    counts : (n,) float32 pixels (or summed pixel weights) per occupied bin
    """

    codes: Array
    occupied: Array
    colours: Array
    counts: Array
    bits: int


@dataclass(frozen=True)
class QuantizeResult:
    """palette : (m, 3) uint8, m <= k; indices : (H, W) uint8 into the palette."""

    palette: Array
    indices: Array


def color_codes(rgb: Array, *, bits: int) -> Array:
    """(H, W, 3) uint8 -> (H*W,) int32 code of each pixel's ``bits``-per-channel bin."""
    xp = array_namespace(rgb)
    shift = 8 - bits
    channels = [xp.astype(rgb[..., c], xp.int32) >> shift for c in range(3)]
    codes = (channels[0] << (2 * bits)) | (channels[1] << bits) | channels[2]
    return xp.reshape(codes, (-1,))


def bin_centres(codes: Array, *, bits: int) -> Array:
    """(n,) bin codes -> (n, 3) float32 sRGB centre of each bin."""
    xp = array_namespace(codes)
    mask = (1 << bits) - 1
    width = float(1 << (8 - bits))
    channels = [(codes >> (2 * bits)) & mask, (codes >> bits) & mask, codes & mask]
    return xp.stack([xp.astype(c, xp.float32) * width + (width - 1) / 2 for c in channels],
                    axis=1)


def color_histogram(rgb: Array, *, bits: int = 7, weights: Array | None = None,
                     means: bool = True) -> ColourHistogram:
    """Bin the colours of an (H, W, 3) uint8 image.

    Parameters
    ----------
    bits : int, default=7
        Bits per channel of a bin; 8 keeps every distinct colour.
    weights : (H*W,) array, optional
        How much each pixel counts; 0 leaves it out (a transparent pixel).
    means : bool, default=True
        Keep each bin's exact mean colour (three more passes over the pixels); False uses bin
        centres, which are within half a bin of every colour in the bin.
    """
    xp = array_namespace(rgb)
    codes = color_codes(rgb, bits=bits)
    n_bins = 1 << (3 * bits)
    if weights is not None:
        weights = xp.astype(weights, xp.float64)
    counts = bincount(xp, codes, weights=weights, minlength=n_bins)
    occupied = xp.nonzero(counts)[0]
    counts = xp.take(counts, occupied)
    if means:
        flat = xp.astype(xp.reshape(rgb, (-1, 3)), xp.float64)
        if weights is not None:
            flat = flat * weights[:, None]
        sums = [xp.take(bincount(xp, codes, weights=flat[:, c], minlength=n_bins), occupied)
                for c in range(3)]
        colours = xp.stack(sums, axis=1) / xp.astype(counts, xp.float64)[:, None]
    else:
        colours = bin_centres(occupied, bits=bits)
    return ColourHistogram(codes=codes, occupied=occupied, colours=xp.astype(colours, xp.float32),
                           counts=xp.astype(counts, xp.float32), bits=bits)


def coarsen(colours: Array, counts: Array, occupied: Array, *, bits: int, to_bits: int
            ) -> tuple[Array, Array, Array]:
    """Merge histogram bins to ``to_bits`` per channel, keeping weighted mean colours.

    Returns ``(colours (m, 3) float32, counts (m,) float32, codes (m,) int64)``.
    """
    xp = array_namespace(colours)
    shift = bits - to_bits
    mask = (1 << bits) - 1
    parts = [((occupied >> (2 * bits)) & mask) >> shift, ((occupied >> bits) & mask) >> shift,
             (occupied & mask) >> shift]
    coarse = (parts[0] << (2 * to_bits)) | (parts[1] << to_bits) | parts[2]
    values, inverse = xp.unique_inverse(coarse)
    n = values.shape[0]
    weights = xp.astype(counts, xp.float64)
    merged = bincount(xp, inverse, weights=weights, minlength=n)
    sums = [bincount(xp, inverse, weights=weights * xp.astype(colours[:, c], xp.float64),
                     minlength=n) for c in range(3)]
    mean = xp.stack(sums, axis=1) / merged[:, None]
    return xp.astype(mean, xp.float32), xp.astype(merged, xp.float32), values


def fit_palette(
    histogram: ColourHistogram,
    *,
    k: int,
    backend: Backend,
    color_space: ColorSpace = "rgb_lab",
    seed: int = 0,
    max_iter: int = 100,
    init: Array | None = None,
    max_points: int | None = None,
) -> Array:
    """Weighted K-means on the histogram -> (m, 3) uint8 sRGB palette, m <= k.

    When the histogram has no more bins than ``k``, every bin's colour is its own entry.
    ``init`` (k, 3) sRGB centres replaces K-means++ seeding (a warm start).
    """
    xp = backend.xp
    max_points = MAX_FIT_POINTS if max_points is None else max_points
    colours, counts = histogram.colours, histogram.counts
    if colours.shape[0] <= k:
        centres_rgb = colours
    else:
        bits, occupied = histogram.bits, histogram.occupied
        while colours.shape[0] > max_points and bits > 4:
            colours, counts, occupied = coarsen(colours, counts, occupied, bits=bits,
                                                to_bits=bits - 1)
            bits -= 1
        points = xp.astype(rgb_to_space(colours, color_space), xp.float32)
        if colours.shape[0] <= k:  # merging left no more points than entries
            centres = points
        else:
            start, iterations = None, max_iter
            if init is not None:
                start = xp.astype(rgb_to_space(xp.astype(init, xp.float32), color_space),
                                  xp.float32)
            elif bits > COARSE_BITS:
                start = _coarse_start(colours, counts, occupied, bits=bits, k=k,
                                      backend=backend, color_space=color_space, seed=seed,
                                      max_iter=max_iter)
                if start is not None:
                    iterations = min(max_iter, REFINE_ITERATIONS)
            centres, _ = backend.kmeans(points, n_clusters=k, sample_weight=counts, seed=seed,
                                        max_iter=iterations, init=start)
        centres_rgb = space_to_rgb(centres, color_space)
    palette = xp.astype(clip(xp.round(centres_rgb), 0, 255), xp.uint8)
    return _unique_rows(palette)


def _coarse_start(colours: Array, counts: Array, occupied: Array, *, bits: int, k: int,
                  backend: Backend, color_space: ColorSpace, seed: int, max_iter: int
                  ) -> Array | None:
    """K-means centres fitted on the histogram merged to COARSE_BITS, or None when that
    leaves too few points (under 4 per entry) to be a good start."""
    while bits > COARSE_BITS:
        colours, counts, occupied = coarsen(colours, counts, occupied, bits=bits,
                                            to_bits=bits - 1)
        bits -= 1
    if colours.shape[0] < 4 * k:
        return None
    xp = backend.xp
    points = xp.astype(rgb_to_space(colours, color_space), xp.float32)
    centres, _ = backend.kmeans(points, n_clusters=k, sample_weight=counts, seed=seed,
                                max_iter=max_iter,
                                init=kmeans_plus_plus(points, counts, k, seed=seed))
    return centres


def assign(histogram: ColourHistogram, palette: Array, *, backend: Backend,
           color_space: ColorSpace = "rgb_lab") -> Array:
    """Palette index of every pixel: the entry nearest (in ``color_space``) to its bin."""
    xp = backend.xp
    _, nearest = backend.kneighbors(rgb_to_space(palette, color_space),
                                    rgb_to_space(histogram.colours, color_space), k=1)
    n_bins = 1 << (3 * histogram.bits)
    table = xp.zeros((n_bins,), dtype=xp.uint8, device=device(palette))
    table = scatter(xp, table, histogram.occupied, xp.astype(nearest[:, 0], xp.uint8))
    return xp.take(table, histogram.codes)


def quantize(
    rgb: Array,
    *,
    k: int = 16,
    backend: Backend,
    color_space: ColorSpace = "rgb_lab",
    seed: int = 0,
    max_iter: int = 100,
    bits: int = 7,
    weights: Array | None = None,
) -> QuantizeResult:
    """Reduce an (H, W, 3) uint8 image to at most ``k`` colours.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 array of ``backend.xp``
    k : int, default=16
        Palette size, 1..256. Fewer entries are returned when the image has fewer colours,
        and then the image is reproduced exactly.
    color_space : {"rgb", "lab", "oklab", "rgb_lab"}, default="rgb_lab"
        Space in which K-means and the nearest-entry search measure distance.
    seed : int, default=0
        Seeds K-means++; the same seed gives the same palette.
    bits : int, default=7
        Histogram bits per channel for the pixel -> entry table.
    weights : (H*W,) array, optional
        Per-pixel weight in the fit; pixels of weight 0 (transparent) do not shape the palette.
    """
    if not 1 <= k <= MAX_COLOURS:
        raise ValueError(f"k: {k!r} is outside 1..{MAX_COLOURS}")
    xp = backend.xp
    histogram = color_histogram(rgb, bits=bits, weights=weights, means=False)
    if histogram.occupied.shape[0] <= k:
        exact = _exact_palette(rgb, weights, k)
        if exact is not None:  # no more colours than k: reproduce the image exactly
            histogram = color_histogram(rgb, bits=8, weights=weights, means=False)
            palette = exact
            indices = assign(histogram, palette, backend=backend, color_space="rgb")
            return QuantizeResult(palette=palette, indices=xp.reshape(indices, rgb.shape[:2]))
        histogram = color_histogram(rgb, bits=bits, weights=weights, means=True)
    palette = fit_palette(histogram, k=k, backend=backend, color_space=color_space, seed=seed,
                          max_iter=max_iter)
    indices = assign(histogram, palette, backend=backend, color_space=color_space)
    return QuantizeResult(palette=palette, indices=xp.reshape(indices, rgb.shape[:2]))


def _exact_palette(rgb: Array, weights: Array | None, k: int) -> Array | None:
    """The image's distinct (visible) colours as a palette when there are at most ``k``."""
    xp = array_namespace(rgb)
    codes = color_codes(rgb, bits=8)
    if weights is not None:
        codes = codes[xp.astype(weights, xp.bool)]
    values = xp.unique_values(codes)
    if values.shape[0] > k or values.shape[0] == 0:
        return None
    return xp.astype(bin_centres(values, bits=8), xp.uint8)


def _unique_rows(palette: Array) -> Array:
    """Drop duplicate palette rows (two centres that round to one colour), keeping order."""
    xp = array_namespace(palette)
    packed = (xp.astype(palette[:, 0], xp.int32) << 16) | (
        xp.astype(palette[:, 1], xp.int32) << 8) | xp.astype(palette[:, 2], xp.int32)
    values = xp.unique_values(packed)
    if values.shape[0] == packed.shape[0]:
        return palette
    return xp.astype(bin_centres(values, bits=8), xp.uint8)

