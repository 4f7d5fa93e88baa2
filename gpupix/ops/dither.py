"""Floyd-Steinberg error diffusion onto a fixed palette (host NumPy, on every backend).

Error diffusion is sequential: a pixel's value depends on the errors of its left neighbour
and of three pixels in the row above. Pixels with equal ``x + 2y`` depend on none of each
other, so the image is processed along those anti-diagonals, each one in a single NumPy
step, ``W + 2H`` steps in all. The image is stored skewed (pixel (y, x) at row ``x + 2y``
of a uint8 array), which turns every step's reads and error writes into contiguous slices.

The nearest palette entry of a colour is looked up in a table over the 6-bit colour cube
(262,144 cells, filled once by exact nearest-neighbour search), and the error is diffused
in sRGB, the space the nearest entry is chosen in (choosing in one space and diffusing in
another lets the error grow). On the cuda backend this runs on the host after the image
and palette are transferred: the sequential sweep has too little work per step for a GPU.
"""

from __future__ import annotations

import numpy as np

from gpupix.backends.base import CALL_THREADS

LOOKUP_BITS = 6


def nearest_table(palette: np.ndarray, *, bits: int = LOOKUP_BITS) -> np.ndarray:
    """(2**(3*bits),) uint8: palette index nearest (in sRGB) to the centre of each cell."""
    levels = (np.arange(1 << bits, dtype=np.float64) + 0.5) * (256.0 / (1 << bits))
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    centres = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)
    from scipy.spatial import cKDTree  # imported when dithering, not at start-up

    _, nearest = cKDTree(palette.astype(np.float64)).query(
        centres, k=1, workers=CALL_THREADS.get() or -1)
    return nearest.astype(np.uint8)


def floyd_steinberg(rgb: np.ndarray, palette: np.ndarray, *, strength: float = 1.0,
                    mask: np.ndarray | None = None) -> np.ndarray:
    """Palette indices of an (H, W, 3) uint8 image, dithered by Floyd-Steinberg.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 array (host)
    palette : (m, 3) uint8 array, m <= 256
    strength : float, default=1.0
        Fraction of each pixel's error passed on (0 is plain nearest-entry assignment).
    mask : (H, W) bool array, optional
        Pixels that take part; the others (e.g. transparent) get index 0, and neither
        receive nor pass on error.

    Returns
    -------
    indices : (H, W) uint8
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength: {strength!r} is outside 0..1")
    height, width = rgb.shape[:2]
    palette = np.ascontiguousarray(palette, dtype=np.uint8)
    table = nearest_table(palette)
    colours = palette.astype(np.float32)
    steps = width + 2 * (height - 1)
    # the input, skewed: pixel (y, x) at [y, x + 2y], so row y is one contiguous copy and the
    # anti-diagonal x + 2y = t is column t (uint8: 3 bytes a cell). The error lives in a ring
    # of 4 diagonals, small enough to stay in cache: diagonal t passes error only to t+1,
    # t+2 and t+3
    skewed = np.zeros((height, steps, 3), np.uint8)
    passes = np.zeros((height, steps, 1), np.float32) if mask is not None else None
    for y in range(height):
        skewed[y, 2 * y:2 * y + width] = rgb[y]
        if passes is not None:
            passes[y, 2 * y:2 * y + width, 0] = mask[y]  # type: ignore[index]
    ring = np.zeros((4, height + 1, 3), np.float32)
    skewed_indices = np.zeros((height, steps), np.uint8)
    # cell code = 4096 r + 64 g + b of the 6-bit levels, exact in float32 (< 2**24); a float
    # matrix-vector product is the cheapest way NumPy has to pack three columns
    code_weights = np.array([1 << (2 * LOOKUP_BITS), 1 << LOOKUP_BITS, 1], np.float32)
    scale = np.float32(1.0 / (1 << (8 - LOOKUP_BITS)))
    right, below_left, below, below_right = (np.float32(strength * w / 16) for w in (7, 3, 5, 1))
    for t in range(steps):
        first = max(0, (t - width + 2) // 2)  # rows whose pixel on this diagonal exists
        last = min(height - 1, t // 2)
        rows = slice(first, last + 1)
        below_rows = slice(first + 1, last + 2)
        value = ring[t & 3, rows]
        value += skewed[rows, t]
        np.maximum(value, 0.0, out=value)
        np.minimum(value, 255.0, out=value)
        index = table[(np.floor(value * scale) @ code_weights).astype(np.intp)]
        skewed_indices[rows, t] = index
        np.subtract(value, np.take(colours, index, axis=0), out=value)  # now the error
        if passes is not None:
            value *= passes[rows, t]
        # (y, x+1) is on diagonal t+1, row y; (y+1, x-1), (y+1, x), (y+1, x+1) are on
        # diagonals t+1, t+2, t+3 of row y+1. Error pushed past a border lands in a cell that
        # is not a pixel (x < 0 or x >= width) and is never read.
        ring[(t + 1) & 3, rows] += right * value
        ring[(t + 1) & 3, below_rows] += below_left * value
        ring[(t + 2) & 3, below_rows] += below * value
        ring[(t + 3) & 3, below_rows] += below_right * value
        ring[t & 3] = 0.0  # this slot is diagonal t + 4 from now on
    indices = np.empty((height, width), np.uint8)
    for y in range(height):
        indices[y] = skewed_indices[y, 2 * y:2 * y + width]
    if mask is not None:
        indices = np.where(mask, indices, 0).astype(np.uint8)
    return indices
