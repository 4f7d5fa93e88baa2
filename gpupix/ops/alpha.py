"""Palettes for images with partial transparency: K-means on premultiplied RGBA.

A pixel's colour matters in proportion to its opacity (a 10%-opaque pixel shows a tenth of
its colour), so colours are premultiplied by alpha and alpha is the fourth channel, all on
the 0..255 scale: the distance between two RGBA pixels is then the visible difference over
any background. As for RGB, K-means runs on a weighted histogram of the occupied bins
(``bits`` per channel, 5 by default: at most 2**20 bins), never on the pixels. Fully
transparent pixels are left out of the fit; the caller gives them one reserved entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from array_api_compat import device

from gpupix.backends.base import Array, Backend
from gpupix.ops._xp import bincount, clip, scatter


@dataclass(frozen=True)
class RgbaHistogram:
    """codes : (H*W,) int32; occupied : (n,) codes; means : (n, 4) float32 premultiplied
    RGBA mean of each bin (0..255); counts : (n,) float32."""

    codes: Array
    occupied: Array
    means: Array
    counts: Array
    bits: int


def premultiply(rgba: Array) -> Array:
    """(..., 4) uint8 -> (..., 4) float32: RGB x alpha / 255, then alpha, all 0..255."""
    xp = backend_namespace(rgba)
    values = xp.astype(rgba, xp.float32)
    alpha = values[..., 3:4]
    return xp.concat([values[..., :3] * alpha / 255.0, alpha], axis=-1)


def unpremultiply(premultiplied: Array) -> tuple[Array, Array]:
    """(m, 4) premultiplied float -> ((m, 3) uint8 colours, (m,) uint8 alpha >= 1)."""
    xp = backend_namespace(premultiplied)
    alpha = clip(xp.round(premultiplied[:, 3]), 1.0, 255.0)
    colours = premultiplied[:, :3] * 255.0 / alpha[:, None]
    colours = xp.astype(clip(xp.round(colours), 0.0, 255.0), xp.uint8)
    return colours, xp.astype(alpha, xp.uint8)


def rgba_histogram(rgba: Array, *, bits: int = 5, weights: Array | None = None) -> RgbaHistogram:
    """Bin an (H, W, 4) uint8 image in premultiplied RGBA; ``weights`` (H*W,) as for RGB."""
    xp = backend_namespace(rgba)
    flat = xp.reshape(premultiply(rgba), (-1, 4))
    shift = 8 - bits
    channels = [xp.astype(xp.round(flat[:, c]), xp.int32) >> shift for c in range(4)]
    codes = channels[0]
    for channel in channels[1:]:
        codes = (codes << bits) | channel
    n_bins = 1 << (4 * bits)
    values = xp.astype(flat, xp.float64)
    if weights is None:
        counts = bincount(xp, codes, minlength=n_bins)
    else:
        weights = xp.astype(weights, xp.float64)
        counts = bincount(xp, codes, weights=weights, minlength=n_bins)
        values = values * weights[:, None]
    occupied = xp.nonzero(counts)[0]
    counts = xp.take(counts, occupied)
    sums = [xp.take(bincount(xp, codes, weights=values[:, c], minlength=n_bins), occupied)
            for c in range(4)]
    means = xp.stack(sums, axis=1) / xp.astype(counts, xp.float64)[:, None]
    return RgbaHistogram(codes=codes, occupied=occupied, means=xp.astype(means, xp.float32),
                         counts=xp.astype(counts, xp.float32), bits=bits)


@dataclass(frozen=True)
class RgbaPalette:
    """colours : (m, 3) uint8; alpha : (m,) uint8; indices : (H, W) uint8 into them."""

    colours: Array
    alpha: Array
    indices: Array


def quantize_rgba(rgba: Array, *, k: int, backend: Backend, seed: int = 0, max_iter: int = 100,
                  bits: int = 5, weights: Array | None = None) -> RgbaPalette:
    """Reduce an (H, W, 4) uint8 image to at most ``k`` RGBA entries.

    Parameters
    ----------
    rgba : (H, W, 4) uint8 array of ``backend.xp``
    k : int
        Palette size, 1..256.
    bits : int, default=5
        Histogram bits per premultiplied channel, 1..6 (the dense bin table has 2**(4 bits)
        entries: 6 bits is 16 Mi of them, 7 would overflow the int32 codes).
    weights : (H*W,) array, optional
        0 leaves a pixel out of the fit (fully transparent ones); it still gets an index.
    """
    if not 1 <= bits <= 6:
        raise ValueError(f"bits: {bits!r} is outside 1..6 for a four-channel histogram")
    xp = backend.xp
    histogram = rgba_histogram(rgba, bits=bits, weights=weights)
    if histogram.means.shape[0] <= k:
        centres = histogram.means
    else:
        centres, _ = backend.kmeans(histogram.means, n_clusters=k, sample_weight=histogram.counts,
                                    seed=seed, max_iter=max_iter)
    colours, alpha = unpremultiply(centres)
    # nearest entry as written (rounded), in the premultiplied space the fit used
    written = premultiply(xp.concat([colours, alpha[:, None]], axis=1))
    _, nearest = backend.kneighbors(written, histogram.means, k=1)
    table = xp.zeros((1 << (4 * bits),), dtype=xp.uint8, device=device(rgba))
    table = scatter(xp, table, histogram.occupied, xp.astype(nearest[:, 0], xp.uint8))
    # pixels of weight 0 may sit in bins that are not occupied: they read entry 0
    indices = xp.reshape(xp.take(table, histogram.codes), rgba.shape[:2])
    return RgbaPalette(colours=colours, alpha=alpha, indices=indices)


def backend_namespace(x: Array) -> Any:
    from array_api_compat import array_namespace

    return array_namespace(x)

