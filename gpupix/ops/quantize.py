"""Colour quantization: weighted K-means on the colour histogram, then a look-up table.

K-means never sees the pixels. Colours are binned to ``bits`` per channel (6 by default:
at most 262,144 bins, each keeping the exact mean colour of its pixels and its count), the
palette is fitted by weighted K-means on the occupied bins in the chosen colour space, and
every pixel is assigned through a table from bin to palette index. Cost is a few passes
over the pixels plus K-means on a few thousand weighted points, whatever the image size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpupix.backends.base import Array, Backend
from gpupix.ops._xp import bincount
from gpupix.ops.color import ColorSpace, rgb_to_space, space_to_rgb

MAX_COLOURS = 256


@dataclass(frozen=True)
class ColourHistogram:
    """Occupied colour bins of one image.

    codes : (H*W,) int32 bin code of every pixel
    occupied : (n,) int64 codes of the non-empty bins, ascending
    colours : (n, 3) float32 mean sRGB colour of each occupied bin
    counts : (n,) float32 pixels per occupied bin
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


def colour_codes(rgb: Array, *, bits: int) -> Array:
    """(H, W, 3) uint8 -> (H*W,) int32 code of each pixel's ``bits``-per-channel bin."""
    xp = _namespace(rgb)
    shift = 8 - bits
    channels = [xp.astype(rgb[..., c], xp.int32) >> shift for c in range(3)]
    codes = (channels[0] << (2 * bits)) | (channels[1] << bits) | channels[2]
    return xp.reshape(codes, (-1,))


def colour_histogram(rgb: Array, *, bits: int = 6, weights: Array | None = None
                     ) -> ColourHistogram:
    """Bin the colours of an (H, W, 3) uint8 image, keeping each bin's exact mean colour.

    ``weights`` (H*W,) bool or float: how much each pixel counts (0 leaves it out, e.g. a
    transparent pixel).
    """
    xp = _namespace(rgb)
    codes = colour_codes(rgb, bits=bits)
    n_bins = 1 << (3 * bits)
    flat = xp.astype(xp.reshape(rgb, (-1, 3)), xp.float64)
    if weights is None:
        counts = bincount(xp, codes, minlength=n_bins)
    else:
        weights = xp.astype(weights, xp.float64)
        counts = bincount(xp, codes, weights=weights, minlength=n_bins)
        flat = flat * weights[:, None]
    occupied = xp.nonzero(counts)[0]
    counts = xp.take(counts, occupied)
    sums = [
        xp.take(bincount(xp, codes, weights=flat[:, c], minlength=n_bins), occupied)
        for c in range(3)
    ]
    colours = xp.stack(sums, axis=1) / xp.astype(counts, xp.float64)[:, None]
    return ColourHistogram(codes=codes, occupied=occupied, colours=xp.astype(colours, xp.float32),
                           counts=xp.astype(counts, xp.float32), bits=bits)


def fit_palette(
    histogram: ColourHistogram,
    *,
    k: int,
    backend: Backend,
    color_space: ColorSpace = "oklab",
    seed: int = 0,
    max_iter: int = 100,
) -> Array:
    """Weighted K-means on the occupied bins -> (m, 3) uint8 sRGB palette, m <= k.

    When the image has no more occupied bins than ``k``, every bin's mean is its own entry.
    """
    xp = backend.xp
    n_bins = histogram.colours.shape[0]
    if n_bins <= k:
        centres_rgb = histogram.colours
    else:
        points = rgb_to_space(histogram.colours, color_space)
        centres, _ = backend.kmeans(points, n_clusters=k, sample_weight=histogram.counts,
                                    seed=seed, max_iter=max_iter)
        centres_rgb = space_to_rgb(centres, color_space)
    palette = xp.astype(xp.clip(xp.round(centres_rgb), 0, 255), xp.uint8)
    return _unique_rows(palette)


def assign(histogram: ColourHistogram, palette: Array, *, backend: Backend,
           color_space: ColorSpace = "oklab") -> Array:
    """Palette index of every pixel: nearest entry (in ``color_space``) to its bin's mean."""
    xp = backend.xp
    _, nearest = backend.kneighbors(rgb_to_space(palette, color_space),
                                    rgb_to_space(histogram.colours, color_space), k=1)
    n_bins = 1 << (3 * histogram.bits)
    # a dense bin -> index table; empty bins are never looked up
    table = xp.zeros((n_bins,), dtype=xp.uint8, device=_device(palette))
    table = _scatter(xp, table, histogram.occupied, xp.astype(nearest[:, 0], xp.uint8))
    return xp.take(table, histogram.codes)


def quantize(
    rgb: Array,
    *,
    k: int = 16,
    backend: Backend,
    color_space: ColorSpace = "oklab",
    seed: int = 0,
    max_iter: int = 100,
    bits: int = 6,
    weights: Array | None = None,
) -> QuantizeResult:
    """Reduce an (H, W, 3) uint8 image to at most ``k`` colours.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 array of ``backend.xp``
    k : int, default=16
        Palette size, 2..256. Fewer entries are returned when the image has fewer colours.
    color_space : {"rgb", "lab", "oklab"}, default="oklab"
        Space in which K-means and the nearest-entry search measure distance.
    bits : int, default=6
        Histogram bits per channel; 8 keeps every distinct colour (slower fit).
    weights : (H*W,) array, optional
        Per-pixel weight in the fit; pixels of weight 0 (transparent) do not shape the palette.
    """
    if not 1 <= k <= MAX_COLOURS:
        raise ValueError(f"k: {k!r} is outside 1..{MAX_COLOURS}")
    histogram = colour_histogram(rgb, bits=bits, weights=weights)
    palette = fit_palette(histogram, k=k, backend=backend, color_space=color_space, seed=seed,
                          max_iter=max_iter)
    indices = assign(histogram, palette, backend=backend, color_space=color_space)
    xp = backend.xp
    return QuantizeResult(palette=palette, indices=xp.reshape(indices, rgb.shape[:2]))


def _unique_rows(palette: Array) -> Array:
    """Drop duplicate palette rows (two centres that round to one colour), keeping order."""
    xp = _namespace(palette)
    packed = (xp.astype(palette[:, 0], xp.int32) << 16) | (
        xp.astype(palette[:, 1], xp.int32) << 8) | xp.astype(palette[:, 2], xp.int32)
    values = xp.unique_values(packed)
    if values.shape[0] == packed.shape[0]:
        return palette
    colours = [(values >> 16) & 255, (values >> 8) & 255, values & 255]
    return xp.astype(xp.stack(colours, axis=1), xp.uint8)


def _scatter(xp: Any, target: Array, positions: Array, values: Array) -> Array:
    """``target[positions] = values`` where the namespace allows it, else via a gather."""
    try:
        target[positions] = values
        return target
    except (TypeError, IndexError, NotImplementedError):
        # standard-only route: look each slot up among the (sorted) positions
        slots = xp.arange(target.shape[0], dtype=positions.dtype, device=_device(target))
        where = xp.clip(xp.searchsorted(positions, slots), max=positions.shape[0] - 1)
        hit = xp.take(positions, where) == slots
        return xp.where(hit, xp.take(values, where), target)


def _namespace(x: Any) -> Any:
    from array_api_compat import array_namespace

    return array_namespace(x)


def _device(x: Any) -> Any:
    from array_api_compat import device

    return device(x)
