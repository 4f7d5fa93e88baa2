"""Floyd-Steinberg error diffusion onto a fixed palette (host NumPy, on every backend).

Error diffusion is sequential: a pixel's value depends on the errors of its left neighbour
and of three pixels in the row above. Pixels with equal ``x + 2y`` depend on none of each
other, so the image is processed along those anti-diagonals, each one in a single NumPy
step, ``W + 2H`` steps in all. The image is stored skewed (pixel (y, x) at column
``x + 2y``), which turns every step's reads and error writes into contiguous slices.

The nearest palette entry of a colour is looked up in a table over the 6-bit colour cube
(262,144 cells, filled once by exact nearest-neighbour search), and the error is diffused
in sRGB, the space the nearest entry is chosen in (choosing in one space and diffusing in
another lets the error grow). On the cuda backend this runs on the host after the image
and palette are transferred: the sequential sweep has too little work per step for a GPU.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

LOOKUP_BITS = 6


def nearest_table(palette: np.ndarray, *, bits: int = LOOKUP_BITS) -> np.ndarray:
    """(2**(3*bits),) uint8: palette index nearest (in sRGB) to the centre of each cell."""
    levels = (np.arange(1 << bits, dtype=np.float64) + 0.5) * (256.0 / (1 << bits))
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    centres = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)
    _, nearest = cKDTree(palette.astype(np.float64)).query(centres, k=1)
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
    shift = 8 - LOOKUP_BITS
    steps = width + 2 * (height - 1)
    # skewed working image: row t holds the anti-diagonal x + 2y = t, indexed by y; one
    # spare row and column at the end take the error pushed past the borders
    work = np.zeros((steps + 3, height + 1, 3), np.float32)
    ys, xs = np.mgrid[0:height, 0:width]
    diagonal = xs + 2 * ys
    work[diagonal, ys] = rgb
    skewed_indices = np.zeros((steps, height), np.uint8)
    skewed_mask = None
    if mask is not None:
        skewed_mask = np.zeros((steps + 3, height + 1), bool)
        skewed_mask[diagonal, ys] = mask
    right, below_left, below, below_right = (np.float32(strength * w / 16) for w in (7, 3, 5, 1))
    for t in range(steps):
        first = max(0, (t - width + 2) // 2)  # rows whose pixel on this diagonal exists
        last = min(height - 1, t // 2)
        if first > last:
            continue
        rows = slice(first, last + 1)
        value = np.clip(work[t, rows], 0.0, 255.0)
        q = value.astype(np.uint8) >> shift
        index = table[(q[:, 0].astype(np.int32) << (2 * LOOKUP_BITS))
                      | (q[:, 1].astype(np.int32) << LOOKUP_BITS) | q[:, 2]]
        skewed_indices[t, rows] = index
        error = value - colours[index]
        if skewed_mask is not None:
            error *= skewed_mask[t, rows, None]
        # (y, x+1) is on diagonal t+1, row y; (y+1, x-1), (y+1, x), (y+1, x+1) are on
        # diagonals t+1, t+2, t+3 of row y+1
        below_rows = slice(first + 1, last + 2)
        work[t + 1, rows] += right * error
        work[t + 1, below_rows] += below_left * error
        work[t + 2, below_rows] += below * error
        work[t + 3, below_rows] += below_right * error
    # the error pushed into cells that are not pixels (past the left or right border) lands
    # where no pixel reads it: diagonal cells exist only for 0 <= x < width
    indices = skewed_indices[diagonal, ys]
    if mask is not None:
        indices = np.where(mask, indices, 0).astype(np.uint8)
    return indices
