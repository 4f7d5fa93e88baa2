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
averaged over their known pixels), so only a few steps are needed at full size; on a CPU
each step runs over row blocks that stay in cache (``backend.stencil_block``). Inside
holes (unknown pixels far from any known one) those steps converge slowly: there the
minimiser is found exactly, by one sparse factorisation for the three channels
(``backend.solve_sparse``), the rest held; a few more steps settle the seams.
:func:`choose_energy` picks the weights per image on known pixels hidden in the shape of
the damage. Everything but the factorisation is array-API code: it runs on NumPy, CuPy and
array_api_strict alike.

Working memory: about ten float32 copies of the image (40x its decoded size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType

from array_api_compat import device

from gpupix.backends.base import Array, Backend
from gpupix.ops._xp import array_namespace, clip

COARSEST = 8  # stop coarsening when a side is this short
FINE_ITERATIONS = 8
COARSE_ITERATIONS = 4
BOTTOM_ITERATIONS = 40
DEEP = 2  # an unknown pixel with no known pixel this near is inside a hole
RING = 4  # ... and the direct solve takes the unknown pixels this far around it too
DIRECT_MAX = 100_000  # most hole pixels solved directly (SuperLU: ~0.25 GB and ~2.5 s here)
KNOWN_FRACTION = 0.75  # one level down, a block is held fixed when this much of it is known
# arrays of at least this many elements are reused between steps: fresh ones that large pay
# page faults on first touch (more than the stencil arithmetic); smaller ones come back from
# the allocator warm, and writing into a kept array costs an extra pass
REUSE_MIN = 1 << 19


def laplacian(u: Array, out: Array | None = None) -> Array:
    """5-point Laplacian of (C, H, W) ``u`` with mirrored (zero-flux) borders, written into
    ``out`` (same shape, not ``u``) when given.

    Built by in-place slice additions: no padded copy (on 2 cores this halves the time of a
    conjugate-gradient step against padding with ``concat``), and with ``out`` no new array:
    a fresh image-sized array costs its page faults on first touch, which here take longer
    than the arithmetic, so the iterative solvers keep their work arrays.
    """
    if out is None:
        out = u * -4.0
    else:
        out[...] = u
        out *= -4.0
    out[:, 1:, :] += u[:, :-1, :]
    out[:, :1, :] += u[:, :1, :]
    out[:, :-1, :] += u[:, 1:, :]
    out[:, -1:, :] += u[:, -1:, :]
    out[:, :, 1:] += u[:, :, :-1]
    out[:, :, :1] += u[:, :, :1]
    out[:, :, :-1] += u[:, :, 1:]
    out[:, :, -1:] += u[:, :, -1:]
    return out


class _Work:
    """The work arrays of one array shape: the operator's (``first``, ``second``, ``third``
    with stiffness) and the conjugate-gradient vectors, made on first use."""

    NAMES = ("first", "second", "third", "residual", "direction", "product")

    def __init__(self, like: Array):
        self._like = like
        self._arrays: dict[str, Array] = {}

    def __getattr__(self, name: str) -> Array:
        arrays = self.__dict__["_arrays"]
        if name not in arrays:
            if name not in _Work.NAMES:
                raise AttributeError(name)
            arrays[name] = array_namespace(self._like).empty_like(self._like)
        return arrays[name]


Workspace = dict  # (C, H, W) shape -> _Work: the arrays reused by every solve of that shape


def _work(workspace: Workspace | None, like: Array) -> _Work:
    if workspace is None:
        return _Work(like)
    shape = tuple(like.shape)
    if shape not in workspace:
        workspace[shape] = _Work(like)
    return workspace[shape]


def energy_operator(u: Array, tension: float, stiffness: float, work: _Work | None = None
                    ) -> Array:
    """The (symmetric, positive semi-definite) operator whose quadratic form is E.

    With ``work`` the result is ``work.second`` (overwritten by the next call), and no array
    is allocated."""
    first = laplacian(u, None if work is None else work.first)
    second = laplacian(first, None if work is None else work.second)
    if tension:
        first *= -tension
        second += first
    if stiffness:
        third = laplacian(second, None if work is None else work.third)
        third *= -stiffness
        second += third
    return second


def row_blocks(shape: tuple[int, ...], block: int | None) -> list[tuple[int, int]] | None:
    """Row ranges of at most ``block`` elements (8 rows at least) covering a (C, H, W) array,
    or None where blocks would not pay: no ``block``, or an array under eight blocks, which
    stays in cache whole."""
    channels, height, width = shape
    if block is None or channels * height * width < 8 * block:
        return None
    rows = max(block // (channels * width), 8)
    if rows >= height:
        return None
    return [(y, min(y + rows, height)) for y in range(0, height, rows)]


def blocked_energy_operator(x: Array, out: Array, blocks: list[tuple[int, int]], *,
                            tension: float, stiffness: float, workspace: Workspace,
                            mask: Array | None = None) -> Array | None:
    """``out`` = :func:`energy_operator` of (C, H, W) ``x`` (times ``mask``, (1, H, W), when
    given), computed a row block at a time so that its seven-odd passes stay in cache; with
    ``mask``, returns <x, out> per channel ((C, 1, 1)), summed while the block is warm.

    Each block is extended by the operator's reach (2 rows, 3 with stiffness): its own rows
    come out exactly as from the whole image, borders included."""
    inner_product = None
    for y0, y1 in blocks:
        part = _operator_rows(x, out, y0, y1, tension=tension, stiffness=stiffness,
                              workspace=workspace, mask=mask)
        if part is not None:
            inner_product = part if inner_product is None else inner_product + part
    return inner_product


def _operator_rows(x: Array, out: Array, y0: int, y1: int, *, tension: float,
                   stiffness: float, workspace: Workspace, mask: Array | None) -> Array | None:
    """Rows ``y0:y1`` of :func:`blocked_energy_operator`: the operator on those rows and
    its reach around them, written into ``out``; with ``mask``, <x, out> over the rows."""
    top, bottom = max(y0 - _reach(stiffness), 0), min(y1 + _reach(stiffness), x.shape[1])
    piece = x[:, top:bottom, :]
    rows = energy_operator(piece, tension, stiffness, _work(workspace, piece))
    rows = rows[:, y0 - top:y1 - top, :]
    part = None
    if mask is not None:
        rows *= mask[:, y0:y1, :]
        part = _dot(x[:, y0:y1, :], rows)
    out[:, y0:y1, :] = rows
    return part


def _reach(stiffness: float) -> int:
    """Rows the operator reads on either side: 2 (L^2), 3 with stiffness (L^3)."""
    return 3 if stiffness else 2


def conjugate_gradients(u: Array, unknown: Array, *, tension: float, stiffness: float,
                        iterations: int, rhs: Array | None = None,
                        workspace: Workspace | None = None, overwrite: bool = False,
                        block: int | None = None) -> Array:
    """``iterations`` CG steps on ``A u = rhs`` (A: :func:`energy_operator`; rhs 0 by
    default, which minimises E) over the pixels where ``unknown`` ((1, H, W) float 0/1) is 1,
    the others held; each channel is its own system. Nothing is read on the host, and the
    steps on an array of ``REUSE_MIN`` elements or more allocate nothing that size: every
    update is in place, in the arrays of ``workspace`` (kept by the caller across solves)
    and, with ``overwrite``, in ``u``. With ``block`` (elements, see :func:`row_blocks`) each
    step is two sweeps over row blocks (:func:`_blocked_steps`)."""
    xp = array_namespace(u)
    if not overwrite:
        u = xp.asarray(u, copy=True)
    blocks = row_blocks(tuple(u.shape), block)
    if blocks is not None and workspace is None:
        workspace = {}
    reuse = blocks is not None or math.prod(u.shape) >= REUSE_MIN
    work = _work(workspace, u) if reuse else None
    if work is None:
        residual = energy_operator(u, tension, stiffness)
        direction = None
    else:
        residual, direction = work.residual, work.direction
        if blocks is None:
            residual[...] = energy_operator(u, tension, stiffness, work)
        else:
            blocked_energy_operator(u, residual, blocks, tension=tension,
                                    stiffness=stiffness, workspace=workspace)
    residual *= -1.0
    if rhs is not None:
        residual += rhs
    residual *= unknown
    if direction is None:
        direction = xp.asarray(residual, copy=True)
    else:
        direction[...] = residual
    rr = _dot(residual, residual)
    if blocks is not None:
        return _blocked_steps(u, unknown, residual, direction, work.product, rr, blocks,
                              tension=tension, stiffness=stiffness, iterations=iterations,
                              workspace=workspace)
    for _ in range(iterations):
        a_direction = energy_operator(direction, tension, stiffness, work)
        a_direction *= unknown
        curvature = _dot(direction, a_direction)
        step = _ratio(rr, curvature)
        if work is None:
            u += step * direction
        else:
            scaled = work.first  # free until the next operator call
            scaled[...] = direction
            scaled *= step
            u += scaled
        a_direction *= step
        residual -= a_direction
        rr_new = _dot(residual, residual)
        direction *= _ratio(rr_new, rr)
        direction += residual
        rr = rr_new
    return u


def _ratio(numerator: Array, denominator: Array) -> Array:
    """numerator / denominator where the denominator is positive, else 0 (a converged
    channel stops moving, with no division by zero and no read on the host)."""
    xp = array_namespace(numerator)
    positive = denominator > 0
    quotient = numerator / xp.where(positive, denominator, xp.ones_like(denominator))
    return xp.where(positive, quotient, xp.zeros_like(quotient))


def _blocked_steps(u: Array, unknown: Array, residual: Array, direction: Array,
                   a_direction: Array, rr: Array, blocks: list[tuple[int, int]], *,
                   tension: float, stiffness: float, iterations: int,
                   workspace: Workspace) -> Array:
    """The conjugate-gradient steps of :func:`conjugate_gradients`, each as two sweeps over
    row blocks, every array touched once per sweep while its block is in cache: (1) the
    direction's update from the last step (lagging just ahead of the operator's reach), the
    operator, the mask, <d, A d>; (2) u, the residual and <r, r>. The same arithmetic as the
    whole-array steps; only the order of the partial sums differs."""
    height = u.shape[1]
    ratio = None  # the direction's pending update, d = r + ratio d
    for _ in range(iterations):
        curvature, updated = None, 0
        for y0, y1 in blocks:
            bottom = min(y1 + _reach(stiffness), height)
            if ratio is not None and updated < bottom:
                pending = direction[:, updated:bottom, :]
                pending *= ratio
                pending += residual[:, updated:bottom, :]
                updated = bottom
            part = _operator_rows(direction, a_direction, y0, y1, tension=tension,
                                  stiffness=stiffness, workspace=workspace, mask=unknown)
            curvature = part if curvature is None else curvature + part
        step = _ratio(rr, curvature)
        rr_new = None
        for y0, y1 in blocks:
            u[:, y0:y1, :] += direction[:, y0:y1, :] * step
            rows = a_direction[:, y0:y1, :]
            rows *= step
            block_residual = residual[:, y0:y1, :]
            block_residual -= rows
            part = _dot(block_residual, block_residual)
            rr_new = part if rr_new is None else rr_new + part
        ratio = _ratio(rr_new, rr)
        rr = rr_new
    return u


def _dot(a: Array, b: Array) -> Array:
    """(C, 1, 1) per-channel inner products of two (C, H, W) arrays (a matrix product: no
    (C, H, W) temporary)."""
    xp = array_namespace(a)
    channels = a.shape[0]
    flat_a = xp.reshape(a, (channels, 1, -1))
    flat_b = xp.reshape(b, (channels, -1, 1))
    return flat_a @ flat_b


def _downsample(values: Array, weights: Array) -> tuple[Array, Array]:
    """2x2 blocks: the weighted mean of (C, H, W) ``values`` and the mean (H, W) weight
    (an odd side gets a zero-weight row or column). Sums of strided slices: a reduction over
    short reshaped axes is several times slower."""
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
    rows = weighted[:, 0::2, :] + weighted[:, 1::2, :]
    sums = rows[:, :, 0::2] + rows[:, :, 1::2]
    weight_rows = weights[0::2, :] + weights[1::2, :]
    counts = weight_rows[:, 0::2] + weight_rows[:, 1::2]
    safe = xp.where(counts > 0, counts, xp.ones_like(counts))
    return sums / safe[None, :, :], counts * 0.25


def _upsample_axis(x: Array, axis: int, size: int) -> Array:
    """Cell-centred linear interpolation doubling ``axis`` of (C, h, w) ``x``, cut to size:
    written into strided slices of the result (no stacked copy)."""
    xp = array_namespace(x)
    shape = list(x.shape)
    shape[axis] = size
    out = xp.empty(tuple(shape), dtype=x.dtype, device=device(x))
    even, odd = x * 0.75, x * 0.75
    if axis == 1:
        even[:, 1:, :] += x[:, :-1, :] * 0.25
        even[:, :1, :] += x[:, :1, :] * 0.25
        odd[:, :-1, :] += x[:, 1:, :] * 0.25
        odd[:, -1:, :] += x[:, -1:, :] * 0.25
        out[:, 0::2, :] = even[:, :(size + 1) // 2, :]
        out[:, 1::2, :] = odd[:, :size // 2, :]
    else:
        even[:, :, 1:] += x[:, :, :-1] * 0.25
        even[:, :, :1] += x[:, :, :1] * 0.25
        odd[:, :, :-1] += x[:, :, 1:] * 0.25
        odd[:, :, -1:] += x[:, :, -1:] * 0.25
        out[:, :, 0::2] = even[:, :, :(size + 1) // 2]
        out[:, :, 1::2] = odd[:, :, :size // 2]
    return out


def upsample(x: Array, height: int, width: int) -> Array:
    """(C, h, w) -> (C, height, width), height <= 2h and width <= 2w."""
    return _upsample_axis(_upsample_axis(x, 1, height), 2, width)


def solve(values: Array, known: Array, *, tension: float = 0.0, stiffness: float = 0.0,
          fine_iterations: int = FINE_ITERATIONS, coarse_iterations: int = COARSE_ITERATIONS,
          workspace: Workspace | None = None, block: int | None = None) -> Array:
    """Minimise E over the pixels of (C, H, W) float32 ``values`` where (H, W) bool ``known``
    is False, coarse to fine. Known pixels keep their values. ``workspace`` (a dict, kept
    by the caller) lends its work arrays to every level's steps; ``block`` is the backend's
    ``stencil_block``."""
    xp = array_namespace(values)
    weights = xp.astype(known, values.dtype)
    workspace = {} if workspace is None else workspace
    return _solve_level(xp, values, weights, tension, stiffness, fine_iterations,
                        coarse_iterations, workspace, block)


def _solve_level(xp: ModuleType, values: Array, weights: Array, tension: float,
                 stiffness: float, iterations: int, coarse_iterations: int,
                 workspace: Workspace, block: int | None, coarse_level: bool = False
                 ) -> Array:
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
                                   iterations=BOTTOM_ITERATIONS, workspace=workspace,
                                   overwrite=True, block=block)
    coarse_values, coarse_weights = _downsample(values, weights)
    # one level down the pixels are twice as far apart: tension weighs 4x, stiffness 1/4
    coarse = _solve_level(xp, coarse_values, coarse_weights, tension * 4.0, stiffness / 4.0,
                          coarse_iterations, coarse_iterations, workspace, block, True)
    start = xp.where(known[None, :, :], values, upsample(coarse, height, width))
    return conjugate_gradients(start, unknown, tension=tension, stiffness=stiffness,
                               iterations=iterations, workspace=workspace, overwrite=True,
                               block=block)


def dilate(mask: Array, radius: int) -> Array:
    """(H, W) bool ``mask`` grown by ``radius`` pixels (a square): shifted ORs, rows then
    columns."""
    xp = array_namespace(mask)
    grown = mask
    for _ in range(radius):
        grown = grown | xp.concat([grown[1:, :], grown[-1:, :]], axis=0)
        grown = grown | xp.concat([grown[:1, :], grown[:-1, :]], axis=0)
    for _ in range(radius):
        grown = grown | xp.concat([grown[:, 1:], grown[:, -1:]], axis=1)
        grown = grown | xp.concat([grown[:, :1], grown[:, :-1]], axis=1)
    return grown


def hole_interiors(known: Array) -> Array:
    """(H, W) bool: the unknown pixels solved directly, those with no known pixel within
    ``DEEP`` pixels and the unknown pixels up to ``RING`` pixels around them."""
    deep = ~dilate(known, DEEP)
    return dilate(deep, RING) & ~known


def _paths(xp: ModuleType, rows: Array, cols: Array, shape: tuple[int, int], power: int
           ) -> list[tuple[Array, Array, Array]]:
    """The entries of L, L^2, .. L^power in the rows of the pixels (rows, cols): for each
    power, (n, 5^p) target rows, target columns and float64 weights. L is the Laplacian of
    :func:`laplacian` (a missing neighbour beyond the border counts as the pixel itself)."""
    height, width = shape
    ty, tx = rows[:, None], cols[:, None]
    weight = xp.ones(ty.shape, dtype=xp.float64, device=device(rows))
    found = []
    for _ in range(power):
        up, down = xp.astype(ty > 0, xp.float64), xp.astype(ty < height - 1, xp.float64)
        left, right = xp.astype(tx > 0, xp.float64), xp.astype(tx < width - 1, xp.float64)
        degree = up + down + left + right
        ny = xp.stack([ty, ty - 1, ty + 1, ty, ty], axis=2)
        nx = xp.stack([tx, tx, tx, tx - 1, tx + 1], axis=2)
        nw = xp.stack([-degree * weight, up * weight, down * weight, left * weight,
                       right * weight], axis=2)
        n = ny.shape[0]
        ty = xp.reshape(clip(ny, 0, height - 1), (n, -1))
        tx = xp.reshape(clip(nx, 0, width - 1), (n, -1))
        weight = xp.reshape(nw, (n, -1))
        found.append((ty, tx, weight))
    return found


def solve_direct(backend: Backend, u: Array, direct: Array, *, tension: float,
                 stiffness: float) -> Array:
    """(C, H, W) ``u`` with the pixels of ``direct`` ((H, W) bool) set to the exact minimiser
    of E, all other pixels held: one sparse factorisation (``backend.solve_sparse``) for
    every channel. The matrix rows are the energy's stencil, built from paths of the
    Laplacian (-tension L + L^2 - stiffness L^3), so borders are treated as the iterative
    solver treats them."""
    [solved] = solve_direct_each(backend, u, direct, [(tension, stiffness)])
    return solved


def solve_direct_each(backend: Backend, u: Array, direct: Array,
                      energies: list[tuple[float, float]]) -> list[Array]:
    """:func:`solve_direct` for each (tension, stiffness) in ``energies``: the stencil's
    paths and matrix entries are found once, and only their weights change."""
    xp = array_namespace(u)
    channels, height, width = u.shape
    flat = xp.reshape(direct, (-1,))
    rank = xp.cumulative_sum(xp.astype(flat, xp.int64)) - 1
    index = xp.where(flat, rank, xp.full_like(rank, -1))
    rows, cols = xp.nonzero(direct)
    n = int(rows.shape[0])
    if n == 0:
        return [u for _ in energies]
    power = 3 if any(stiffness for _, stiffness in energies) else 2
    own = xp.arange(n, dtype=xp.int64, device=device(rows))
    entries = []  # per power of L: (row, column, weight) of the matrix entries
    for ty, tx, weight in _paths(xp, rows, cols, (height, width), power):
        target = xp.take(index, xp.reshape(ty * width + tx, (-1,)))
        keep = (target >= 0) & (xp.reshape(weight, (-1,)) != 0)
        source = xp.reshape(xp.broadcast_to(own[:, None], ty.shape), (-1,))
        entries.append((source[keep], target[keep], xp.reshape(weight, (-1,))[keep]))
    outside = u * xp.astype(~direct, u.dtype)[None, :, :]
    places = xp.reshape(rows * width + cols, (-1,))
    spread_from = clip(rank, min=0)
    solved = []
    for tension, stiffness in energies:
        coefficients = (-tension, 1.0, -stiffness)
        used = [(entries[p], c) for p, c in enumerate(coefficients)
                if c and p < len(entries)]
        pull = energy_operator(outside, tension, stiffness)
        pull *= -1.0
        rhs = xp.take(xp.reshape(pull, (channels, -1)), places, axis=1)
        solution = backend.solve_sparse(
            xp.concat([found[0] for found, _ in used]),
            xp.concat([found[1] for found, _ in used]),
            xp.concat([found[2] * c for found, c in used]),
            xp.astype(xp.permute_dims(rhs, (1, 0)), xp.float64))
        solution = xp.astype(xp.permute_dims(solution, (1, 0)), u.dtype)  # (C, n)
        spread = xp.take(solution, spread_from, axis=1)
        solved.append(xp.where(direct[None, :, :], xp.reshape(spread, u.shape), u))
    return solved


def fill(image: Array, missing: Array, known: Array, *, backend: Backend,
         tension: float = 0.0, stiffness: float = 0.0,
         fine_iterations: int = FINE_ITERATIONS,
         coarse_iterations: int = COARSE_ITERATIONS, exact_holes: bool = True) -> Array:
    """(H, W, C) float32 image with its ``missing`` pixels filled from the ``known`` ones
    (both (H, W) bool). Pixels neither missing nor known are ignored and kept.

    Coarse-to-fine conjugate gradients everywhere; then the hole interiors (far from any
    known pixel, where those converge slowly) solved exactly with the rest held; then a few
    conjugate-gradient steps over every unknown pixel again, to settle the seams.
    ``exact_holes=False`` leaves the holes to the coarse-to-fine steps alone, as do holes
    larger than ``DIRECT_MAX`` pixels in all.
    """
    xp = array_namespace(image)
    values = _planes(image)
    direct = hole_interiors(known)
    size = int(xp.sum(xp.astype(direct, xp.int64))) if exact_holes else 0
    # past DIRECT_MAX pixels a factorisation's fill-in (memory, time) outgrows the image:
    # such holes are left to the coarse-to-fine steps, as close but not exact
    holes = 0 < size <= DIRECT_MAX
    # with holes, the fine steps come after their exact solve: before it, the holes' large
    # residual would take the steps' size from the scattered gaps
    workspace: Workspace = {}
    solved = solve(values, known, tension=tension, stiffness=stiffness,
                   fine_iterations=0 if holes else fine_iterations,
                   coarse_iterations=coarse_iterations, workspace=workspace,
                   block=backend.stencil_block)
    if holes:
        # stiffness shapes the small gaps; inside a hole the 13-point biharmonic stencil
        # factorises much faster than the 25-point triharmonic one
        solved = solve_direct(backend, solved, direct, tension=tension, stiffness=0.0)
        unknown = xp.astype(~known, values.dtype)[None, :, :]
        solved = conjugate_gradients(solved, unknown, tension=tension, stiffness=stiffness,
                                     iterations=fine_iterations, workspace=workspace,
                                     overwrite=True, block=backend.stencil_block)
    # clipped as planes (contiguous: several times faster than through the permuted view)
    solved = xp.permute_dims(clip(solved, 0.0, 255.0), (1, 2, 0))
    return xp.where(missing[:, :, None], solved, image)


# the weights tried per image: tension for the holes (none: biharmonic, 0.3: close to a
# membrane, no overshoot), stiffness for the scattered gaps (0.3: a triharmonic term, the
# fill follows curvature)
TENSIONS = (0.0, 0.03, 0.3)
STIFFNESSES = (0.0, 0.3)
ENERGIES = tuple((tension, stiffness) for tension in TENSIONS for stiffness in STIFFNESSES)
WINDOW = 192  # side of the windows the candidates are scored on
TENSION_WINDOWS = 3  # windows the tension is scored on, when the damage has holes
# the hidden pixels add to the damage there: more steps, so that a stiffer energy, slower to
# converge, is judged on its solution and not on how far it got
SCORE_FINE_ITERATIONS = 12
SCORE_COARSE_ITERATIONS = 12


@dataclass
class EnergyChoice:
    """The energy chosen by the hold-out: its weights, the RMSE on the hidden pixels of each
    energy tried (``tried``: their indices in ``ENERGIES``), the number of hidden pixels."""

    tension: float
    stiffness: float
    rmse: list[float]
    tried: list[int]
    held_out: int

    @property
    def index(self) -> int:
        return ENERGIES.index((self.tension, self.stiffness))


def _windows(height: int, width: int, side: int) -> list[tuple[int, int, int, int]]:
    ys = sorted({min(y, max(height - side, 0)) for y in range(0, height, side)})
    xs = sorted({min(x, max(width - side, 0)) for x in range(0, width, side)})
    return [(y, min(y + side, height), x, min(x + side, width)) for y in ys for x in xs]


def choose_energy(image: Array, missing: Array, known: Array, *, backend: Backend,
                  window: int = WINDOW, tension_windows: int = TENSION_WINDOWS
                  ) -> EnergyChoice:
    """Pick (tension, stiffness) by hiding known pixels in the shape of the damage.

    The window of the image with the most missing pixels lends its mask: those pixels are
    hidden in the windows with the most known pixels (the same window, shifted by half its
    side, when the image has only one), and candidates fill them. The stiffness is the one
    that best predicts the hidden pixels near known ones (scattered gaps) in the first
    window; then, if the hidden pixels include hole interiors, the tension that best
    predicts those over ``tension_windows`` windows (a hole is one sample of a picture's
    content: a few of them make a steadier choice). Holes are scored as holes and scattered
    pixels as scattered pixels, for the cost of a few fills of small windows whatever the
    image size. ``rmse`` and ``held_out`` are those of the first window.

    image : (H, W, C) float32; missing, known : (H, W) bool.
    """
    xp = array_namespace(image)
    height, width, channels = image.shape
    side = min(window, max(height, width))
    windows = _windows(height, width, side)
    missing_f = xp.astype(missing, xp.float32)
    known_f = xp.astype(known, xp.float32)
    lost = [float(xp.sum(missing_f[y0:y1, x0:x1])) for y0, y1, x0, x1 in windows]
    have = [float(xp.sum(known_f[y0:y1, x0:x1])) for y0, y1, x0, x1 in windows]
    source = max(range(len(windows)), key=lambda i: (lost[i], -i))
    others = sorted((i for i in range(len(windows)) if i != source),
                    key=lambda i: (-have[i], i))
    targets = others[:max(tension_windows, 1)] or [source]

    def held_out(target: int) -> tuple[Array, Array, Array, Array, int]:
        """values (C, h, w), hidden, remaining, hole interiors (h, w), hidden count."""
        sy0, sy1, sx0, sx1 = windows[source]
        ty0, ty1, tx0, tx1 = windows[target]
        h, w = min(sy1 - sy0, ty1 - ty0), min(sx1 - sx0, tx1 - tx0)
        pattern = missing[sy0:sy0 + h, sx0:sx0 + w]
        if source == target:  # one window: its own damage, shifted by half a window
            pattern = xp.concat([pattern[h // 2:, :], pattern[:h // 2, :]], axis=0)
            pattern = xp.concat([pattern[:, w // 2:], pattern[:, :w // 2]], axis=1)
        window_known = known[ty0:ty0 + h, tx0:tx0 + w]
        hidden = pattern & window_known
        remaining = window_known & ~hidden
        count = int(xp.sum(xp.astype(hidden, xp.int64)))
        return (_planes(image[ty0:ty0 + h, tx0:tx0 + w, :]), hidden, remaining,
                hole_interiors(remaining), count)

    def squared_errors(solved: Array, values: Array, groups: tuple[Array, ...]
                       ) -> tuple[float, ...]:
        squared = (clip(solved, 0.0, 255.0) - values) ** 2
        return tuple(float(xp.sum(squared * g)) for g in groups)

    values, hidden, remaining, direct, n_hidden = held_out(targets[0])
    if n_hidden < 2 or not bool(xp.any(remaining)):
        return EnergyChoice(*ENERGIES[0], rmse=[], tried=[], held_out=n_hidden)
    deep = hidden & direct
    groups = (xp.astype(hidden & ~deep, xp.float32)[None, :, :],
              xp.astype(deep, xp.float32)[None, :, :])
    errors: dict[tuple[float, float], tuple[float, ...]] = {}
    workspace: Workspace = {}  # the windows share a shape: their solves share work arrays
    # the stiffness, on the scattered hidden pixels (the holes left to the coarse steps)
    base = {}
    for s in STIFFNESSES:
        base[s] = solve(values, remaining, tension=0.0, stiffness=s,
                        fine_iterations=SCORE_FINE_ITERATIONS,
                        coarse_iterations=SCORE_COARSE_ITERATIONS, workspace=workspace)
        errors[(0.0, s)] = squared_errors(base[s], values, groups)
    stiffness = min(STIFFNESSES, key=lambda s: (errors[(0.0, s)][0], s))
    tension = 0.0
    if bool(xp.any(deep)):  # the tension, on hidden hole interiors, each solved exactly
        deep_errors = dict.fromkeys(TENSIONS, 0.0)
        for rank, target in enumerate(targets):
            if rank:
                values, hidden, remaining, direct, count = held_out(target)
                deep = hidden & direct
                if count < 2 or not bool(xp.any(deep)):
                    continue
                # the scattered pixels around the hidden holes need only be close
                start = solve(values, remaining, tension=0.0, stiffness=stiffness,
                              workspace=workspace)
            else:
                start = base[stiffness]
            window_groups = (xp.astype(hidden & ~deep, xp.float32)[None, :, :],
                             xp.astype(deep, xp.float32)[None, :, :])
            each = solve_direct_each(backend, start, direct, [(t, 0.0) for t in TENSIONS])
            for t, solved in zip(TENSIONS, each, strict=True):
                found = squared_errors(solved, values, window_groups)
                deep_errors[t] += found[1]
                if not rank:
                    errors[(t, stiffness)] = found
        tension = min(TENSIONS, key=lambda t: (deep_errors[t], t))
    tried = sorted(ENERGIES.index(energy) for energy in errors)
    rmse = [math.sqrt(sum(errors[ENERGIES[i]]) / (n_hidden * channels)) for i in tried]
    return EnergyChoice(tension, stiffness, rmse=rmse, tried=tried, held_out=n_hidden)


def _planes(image: Array) -> Array:
    """(H, W, C) -> (C, H, W), each channel plane contiguous (the stencils slice rows and
    columns)."""
    xp = array_namespace(image)
    return xp.stack([image[:, :, c] for c in range(image.shape[2])], axis=0)
