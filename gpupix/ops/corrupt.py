"""Damage clean images reproducibly: missing pixels (random, square holes), noise, a mark.

The random fields (which pixels go, the noise draws) are drawn on the host with NumPy's
``Generator``: the array API has no random numbers, and drawing on the host makes the same
seed give the same damage on every backend. The noise models are those of
:mod:`gpupix.ops.noise` (shared with the denoise jobs); applying everything to the image is
array-API code.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from gpupix.backends.base import Array, Backend
from gpupix.ops._xp import array_namespace, clip, constant
from gpupix.ops.noise import NoiseModel

Mark = Literal["magenta", "black", "transparent"]

KEY_COLOUR = (255, 0, 255)  # magenta: the mark of missing pixels, and inpaint's key colour
MARK_COLOURS = {"magenta": KEY_COLOUR, "black": (0, 0, 0)}


def damage_mask(shape: tuple[int, int], *, drop: float = 0.3, holes: int = 0,
                hole_size: int = 40, rng: np.random.Generator) -> np.ndarray:
    """Host (H, W) bool mask of removed pixels: a ``drop`` fraction at random, plus holes.

    Parameters
    ----------
    shape : (H, W)
    drop : float, default=0.3
        Each pixel is removed with this probability.
    holes : int, default=0
        Square holes of ``hole_size`` pixels a side, at uniform random places (clipped to
        the image when it is smaller than a hole).
    rng : numpy.random.Generator
    """
    height, width = shape
    missing = rng.random((height, width)) < drop if drop > 0 else np.zeros(shape, bool)
    size_y, size_x = min(hole_size, height), min(hole_size, width)
    for _ in range(holes):
        y = int(rng.integers(0, height - size_y + 1))
        x = int(rng.integers(0, width - size_x + 1))
        missing[y:y + size_y, x:x + size_x] = True
    return missing


def mark_missing(image: Array, missing: Array, *, mark: Mark = "magenta") -> Array:
    """``image`` with its ``missing`` pixels marked: a key colour, or alpha 0.

    Parameters
    ----------
    image : (H, W, 3) uint8 array
    missing : (H, W) bool array
    mark : {"magenta", "black", "transparent"}
        ``transparent`` makes the result (H, W, 4): removed pixels black with alpha 0.

    Returns
    -------
    (H, W, 3) or, for ``transparent``, (H, W, 4) uint8 array.
    """
    xp = array_namespace(image)
    colour = constant(xp, image, MARK_COLOURS.get(mark, (0, 0, 0)), image.dtype)
    marked = xp.where(missing[:, :, None], colour, image)
    if mark != "transparent":
        return marked
    alpha = xp.where(missing, xp.zeros_like(missing, dtype=xp.uint8),
                     xp.full_like(missing, 255, dtype=xp.uint8))
    return xp.concat([marked, alpha[:, :, None]], axis=2)


def corrupt(image: Array, *, backend: Backend, rng: np.random.Generator, drop: float = 0.3,
            holes: int = 0, hole_size: int = 40, noise: NoiseModel | None = None,
            mark: Mark = "magenta") -> tuple[Array, Array]:
    """Remove pixels, add noise to the rest, mark the removed ones.

    Parameters
    ----------
    image : (H, W, 3) uint8 array of ``backend.xp``
    backend : Backend
    rng : numpy.random.Generator
        Draws the mask first, then the noise: a seed fixes both.
    drop, holes, hole_size : see :func:`damage_mask`
    noise : NoiseModel, optional
        Applied to every pixel, clipped and rounded to 0..255 (removed ones are then marked).
    mark : {"magenta", "black", "transparent"}

    Returns
    -------
    damaged : (H, W, 3|4) uint8 array
    missing : (H, W) bool array
    """
    xp = backend.xp
    missing = backend.to_device(damage_mask(tuple(image.shape[:2]), drop=drop, holes=holes,
                                            hole_size=hole_size, rng=rng))
    values = image
    if noise is not None:
        noisy = noise.apply(image, rng, backend)
        values = xp.astype(xp.round(clip(noisy, 0.0, 255.0)), xp.uint8)
    return mark_missing(values, missing, mark=mark), missing
