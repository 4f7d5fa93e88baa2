"""Smooth inpainting: a spline energy minimised over the missing pixels, coarse to fine.

The missing pixels take the values that minimise

    E(u) = tension * |grad u|^2 + |laplacian u|^2 + stiffness * |grad laplacian u|^2

summed over the image, the known pixels held fixed. With ``tension = stiffness = 0`` this is
the biharmonic fill of scikit-image's ``inpaint_biharmonic`` (the same 5-point Laplacian with
mirrored borders, the same solution); tension pulls the fill of a large hole towards a
membrane (no overshoot, as a harmonic fill), stiffness makes the fill of small gaps follow
curvature (a triharmonic term). Each weight is relative to the biharmonic term at the
pixel scale: at a scale of h pixels, tension weighs h^2 more and stiffness h^2 less.

The minimiser is found by conjugate gradients on whole-image stencils (three channels at
once, each its own system), started from the solution one pyramid level down (2x2 blocks
averaged over their known pixels), so that a hole's interior comes from the coarse levels
and only a few iterations are needed at full size. Everything is array-API code: it runs
on NumPy, CuPy and array_api_strict alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType

from gpupix.backends.base import Array
from gpupix.ops._xp import array_namespace, clip

COARSEST = 8  # stop coarsening when a side is this short
FINE_ITERATIONS = 10
COARSE_ITERATIONS = 12
BOTTOM_ITERATIONS = 40
KNOWN_FRACTION = 0.75
CORRECTED_FRACTION = 0.999  # a V-cycle corrects, one level down, the blocks missing all pixels


def laplacian(u: Array) -> Array:
    """5-point Laplacian of (C, H, W) ``u`` with mirrored (zero-flux) borders.

    Built by in-place slice additions: no padded copy, one new array (on 2 cores this
    halves the time of a conjugate-gradient step against padding with ``concat``).
    """
    out = u * -4.0
    out[:, 1:, :] += u[:, :-1, :]
    out[:, :1, :] += u[:, :1, :]
    out[:, :-1, :] += u[:, 1:, :]
    out[:, -1:, :] += u[:, -1:, :]
    out[:, :, 1:] += u[:, :, :-1]
    out[:, :, :1] += u[:, :, :1]
    out[:, :, :-1] += u[:, :, 1:]
    out[:, :, -1:] += u[:, :, -1:]
    return out


def energy_operator(u: Array, tension: float, stiffness: float) -> Array:
    """The (symmetric, positive semi-definite) operator whose quadratic form is E."""
    first = laplacian(u)
    second = laplacian(first)
    out = second - tension * first if tension else second
    if stiffness:
        out = out - stiffness * laplacian(second)
    return out


def conjugate_gradients(u: Array, unknown: Array, *, tension: float, stiffness: float,
                        iterations: int, rhs: Array | None = None) -> Array:
    """``iterations`` CG steps on ``A u = rhs`` (A: :func:`energy_operator`; rhs 0 by
    default, which minimises E) over the pixels where ``unknown`` ((1, H, W) float 0/1) is 1,
    the others held; each channel is its own system. No value is read on the host."""
    xp = array_namespace(u)
    residual = -energy_operator(u, tension, stiffness)
    if rhs is not None:
        residual = residual + rhs
    residual = residual * unknown
    direction = residual
    rr = xp.sum(residual * residual, axis=(1, 2), keepdims=True)
    for _ in range(iterations):
        a_direction = energy_operator(direction, tension, stiffness) * unknown
        curvature = xp.sum(direction * a_direction, axis=(1, 2), keepdims=True)
        step = rr / xp.where(curvature > 0, curvature, xp.ones_like(curvature))
        step = xp.where(curvature > 0, step, xp.zeros_like(step))
        u = u + step * direction
        residual = residual - step * a_direction
        rr_new = xp.sum(residual * residual, axis=(1, 2), keepdims=True)
        ratio = rr_new / xp.where(rr > 0, rr, xp.ones_like(rr))
        direction = residual + ratio * direction
        rr = rr_new
    return u


def _downsample(values: Array, weights: Array) -> tuple[Array, Array]:
    """2x2 blocks: the weighted mean of (C, H, W) ``values`` and the mean (H, W) weight
    (an odd side gets a zero-weight row or column)."""
    xp = array_namespace(values)
    channels, height, width = values.shape
    pad_y, pad_x = height % 2, width % 2
    weighted = values * weights[None, :, :]
    if pad_y:
        weighted = xp.concat([weighted, xp.zeros_like(weighted[:, :1, :])], axis=1)
        weights = xp.concat([weights, xp.zeros_like(weights[:1, :])], axis=0)
    if pad_x:
        weighted = xp.concat([weighted, xp.zeros_like(weighted[:, :, :1])], axis=2)
        weights = xp.concat([weights, xp.zeros_like(weights[:, :1])], axis=1)
    h2, w2 = weights.shape[0] // 2, weights.shape[1] // 2
    sums = xp.sum(xp.reshape(weighted, (channels, h2, 2, w2, 2)), axis=(2, 4))
    counts = xp.sum(xp.reshape(weights, (h2, 2, w2, 2)), axis=(1, 3))
    safe = xp.where(counts > 0, counts, xp.ones_like(counts))
    return sums / safe[None, :, :], counts * 0.25


def _upsample_axis(x: Array, axis: int, size: int) -> Array:
    """Cell-centred linear interpolation doubling ``axis`` of (C, h, w) ``x``, cut to size."""
    xp = array_namespace(x)
    n = x.shape[axis]
    if axis == 1:
        before = xp.concat([x[:, :1, :], x[:, :-1, :]], axis=1)
        after = xp.concat([x[:, 1:, :], x[:, -1:, :]], axis=1)
    else:
        before = xp.concat([x[:, :, :1], x[:, :, :-1]], axis=2)
        after = xp.concat([x[:, :, 1:], x[:, :, -1:]], axis=2)
    even, odd = 0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after
    both = xp.stack([even, odd], axis=axis + 1)
    shape = list(x.shape)
    shape[axis] = 2 * n
    both = xp.reshape(both, tuple(shape))
    return both[:, :size, :] if axis == 1 else both[:, :, :size]


def upsample(x: Array, height: int, width: int) -> Array:
    """(C, h, w) -> (C, height, width), height <= 2h and width <= 2w."""
    return _upsample_axis(_upsample_axis(x, 1, height), 2, width)


def solve(values: Array, known: Array, *, tension: float = 0.0, stiffness: float = 0.0,
          fine_iterations: int = FINE_ITERATIONS, coarse_iterations: int = COARSE_ITERATIONS
          ) -> Array:
    """Minimise E over the pixels of (C, H, W) float32 ``values`` where (H, W) bool ``known``
    is False, coarse to fine. Known pixels keep their values."""
    xp = array_namespace(values)
    weights = xp.astype(known, values.dtype)
    return _solve_level(xp, values, weights, tension, stiffness, fine_iterations,
                        coarse_iterations)


def _solve_level(xp: ModuleType, values: Array, weights: Array, tension: float,
                 stiffness: float, iterations: int, coarse_iterations: int,
                 coarse_level: bool = False) -> Array:
    channels, height, width = values.shape
    known = weights > 0
    if coarse_level:
        # a block average of a few known pixels is biased towards them: only blocks that are
        # mostly known are held fixed one level down (the rest is solved for)
        solid = weights >= KNOWN_FRACTION
        if bool(xp.any(solid)):
            known = solid
    unknown = xp.astype(~known, values.dtype)[None, :, :]
    if min(height, width) <= COARSEST:
        total = xp.sum(weights)
        mean = xp.sum(values * weights[None, :, :], axis=(1, 2), keepdims=True) / total
        start = xp.where(known[None, :, :], values, mean)
        return conjugate_gradients(start, unknown, tension=tension, stiffness=stiffness,
                                   iterations=BOTTOM_ITERATIONS)
    coarse_values, coarse_weights = _downsample(values, weights)
    # one level down the pixels are twice as far apart: tension weighs 4x, stiffness 1/4
    coarse = _solve_level(xp, coarse_values, coarse_weights, tension * 4.0, stiffness / 4.0,
                          coarse_iterations, coarse_iterations, True)
    start = xp.where(known[None, :, :], values, upsample(coarse, height, width))
    return conjugate_gradients(start, unknown, tension=tension, stiffness=stiffness,
                               iterations=iterations)


def v_cycle(u: Array, unknown: Array, *, tension: float, stiffness: float, smooth: int,
            rhs: Array | None = None) -> Array:
    """One multigrid V-cycle on ``A u = rhs`` over the ``unknown`` pixels.

    A few CG steps, then the residual, summed over 2x2 blocks, is solved for one level down
    (where the pixels are twice as far apart: tension weighs 4x, stiffness 1/4, and the
    operator a quarter), and the correction, interpolated back, is added; a few CG steps
    again. The coarse grid fixes the smooth error inside holes that fine steps barely move.
    """
    xp = array_namespace(u)
    channels, height, width = u.shape
    if min(height, width) <= COARSEST:
        return conjugate_gradients(u, unknown, tension=tension, stiffness=stiffness,
                                   iterations=BOTTOM_ITERATIONS, rhs=rhs)
    u = conjugate_gradients(u, unknown, tension=tension, stiffness=stiffness,
                            iterations=smooth, rhs=rhs)
    residual = -energy_operator(u, tension, stiffness)
    if rhs is not None:
        residual = residual + rhs
    residual = residual * unknown
    coarse_residual, coarse_unknown = _downsample(residual, unknown[0, :, :])
    coarse_residual = coarse_residual * (coarse_unknown * 16.0)[None, :, :]  # block sums, x4
    # only blocks missing all their pixels are corrected: the others are pinned by known
    # pixels, which also keeps the coarse system from being singular
    coarse_unknown = xp.astype(coarse_unknown > CORRECTED_FRACTION, u.dtype)[None, :, :]
    correction = v_cycle(xp.zeros_like(coarse_residual), coarse_unknown,
                         tension=tension * 4.0, stiffness=stiffness / 4.0, smooth=smooth,
                         rhs=coarse_residual)
    # the step along the correction that lowers E most: a rediscretised coarse operator is
    # only near the Galerkin one next to pinned pixels, and this keeps every cycle a descent
    direction = upsample(correction, height, width) * unknown
    a_direction = energy_operator(direction, tension, stiffness) * unknown
    curvature = xp.sum(direction * a_direction, axis=(1, 2), keepdims=True)
    gain = xp.sum(direction * residual, axis=(1, 2), keepdims=True)
    step = gain / xp.where(curvature > 0, curvature, xp.ones_like(curvature))
    u = u + xp.where(curvature > 0, step, xp.zeros_like(step)) * direction
    return conjugate_gradients(u, unknown, tension=tension, stiffness=stiffness,
                               iterations=smooth, rhs=rhs)


def fill(image: Array, missing: Array, known: Array, *, tension: float = 0.0,
         stiffness: float = 0.0, fine_iterations: int = FINE_ITERATIONS,
         coarse_iterations: int = COARSE_ITERATIONS) -> Array:
    """(H, W, C) float32 image with its ``missing`` pixels filled from the ``known`` ones
    (both (H, W) bool). Pixels neither missing nor known are ignored and kept."""
    xp = array_namespace(image)
    values = _planes(image)
    solved = solve(values, known, tension=tension, stiffness=stiffness,
                   fine_iterations=fine_iterations, coarse_iterations=coarse_iterations)
    solved = xp.permute_dims(solved, (1, 2, 0))
    return xp.where(missing[:, :, None], clip(solved, 0.0, 255.0), image)


# (tension, stiffness) pairs tried per image: biharmonic; with a triharmonic term (small gaps
# follow curvature); with tension too (large holes do not overshoot); tension alone
ENERGIES = ((0.0, 0.0), (0.0, 0.3), (0.3, 0.3), (0.3, 0.0))
WINDOW = 256  # side of the window the candidates are scored on


@dataclass
class EnergyChoice:
    """The energy chosen by the hold-out: its weights and every candidate's RMSE."""

    tension: float
    stiffness: float
    rmse: list[float]
    held_out: int


def _windows(height: int, width: int, side: int) -> list[tuple[int, int, int, int]]:
    ys = sorted({min(y, max(height - side, 0)) for y in range(0, height, side)})
    xs = sorted({min(x, max(width - side, 0)) for x in range(0, width, side)})
    return [(y, min(y + side, height), x, min(x + side, width)) for y in ys for x in xs]


def choose_energy(image: Array, missing: Array, known: Array, *,
                  energies: tuple[tuple[float, float], ...] = ENERGIES,
                  window: int = WINDOW) -> EnergyChoice:
    """Pick (tension, stiffness) by hiding known pixels in the shape of the damage.

    The window of the image with the most missing pixels lends its mask: those pixels are
    hidden in the window with the most known pixels (the same window, shifted by half its
    side, when the image has only one), each candidate fills that window, and the one with
    the lowest RMSE on the hidden pixels wins. Holes are scored as holes, scattered pixels
    as scattered pixels, at the cost of a few fills of one window whatever the image size.

    image : (H, W, C) float32; missing, known : (H, W) bool.
    """
    xp = array_namespace(image)
    height, width, channels = image.shape
    side_y, side_x = min(window, height), min(window, width)
    windows = _windows(height, width, max(side_y, side_x))
    missing_f = xp.astype(missing, xp.float32)
    known_f = xp.astype(known, xp.float32)
    lost = [float(xp.sum(missing_f[y0:y1, x0:x1])) for y0, y1, x0, x1 in windows]
    have = [float(xp.sum(known_f[y0:y1, x0:x1])) for y0, y1, x0, x1 in windows]
    source = max(range(len(windows)), key=lambda i: (lost[i], -i))
    target = max(range(len(windows)), key=lambda i: (have[i] - (i == source) * 1e12, -i))
    sy0, sy1, sx0, sx1 = windows[source]
    ty0, ty1, tx0, tx1 = windows[target]
    h, w = min(sy1 - sy0, ty1 - ty0), min(sx1 - sx0, tx1 - tx0)
    pattern = missing[sy0:sy0 + h, sx0:sx0 + w]
    if source == target:  # one window: its own damage, shifted by half a window
        pattern = xp.concat([pattern[h // 2:, :], pattern[:h // 2, :]], axis=0)
        pattern = xp.concat([pattern[:, w // 2:], pattern[:, :w // 2]], axis=1)
    window_known = known[ty0:ty0 + h, tx0:tx0 + w]
    hidden = pattern & window_known
    n_hidden = int(xp.sum(xp.astype(hidden, xp.int64)))
    remaining = window_known & ~hidden
    if n_hidden < 2 or not bool(xp.any(remaining)):
        tension, stiffness = energies[0]
        return EnergyChoice(tension, stiffness, [], n_hidden)
    values = _planes(image[ty0:ty0 + h, tx0:tx0 + w, :])
    hidden_f = xp.astype(hidden, xp.float32)[None, :, :]
    rmse = []
    for tension, stiffness in energies:
        solved = clip(solve(values, remaining, tension=tension, stiffness=stiffness),
                      0.0, 255.0)
        squared = xp.sum((solved - values) ** 2 * hidden_f)
        rmse.append(math.sqrt(float(squared) / (n_hidden * channels)))
    best = min(range(len(energies)), key=lambda i: rmse[i])
    return EnergyChoice(*energies[best], rmse=rmse, held_out=n_hidden)


def _planes(image: Array) -> Array:
    """(H, W, C) -> (C, H, W), each channel plane contiguous (the stencils slice rows and
    columns)."""
    xp = array_namespace(image)
    return xp.stack([image[:, :, c] for c in range(image.shape[2])], axis=0)
