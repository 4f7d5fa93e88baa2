"""Exemplar inpainting: large holes filled with patches copied from the known image.

In the spirit of Criminisi, Pérez & Toyama, "Region filling and object removal by
exemplar-based image inpainting" (2004). The hole is filled from its border inwards, one
``patch x patch`` square at a time: the square centred on a point of the fill front takes the
pixels of the most similar fully known square (sum of squared differences over the square's
pixels that are already filled), and only its unfilled pixels are written. The front point
filled next is the one with the highest priority, confidence x data term: confidence is the
share of the square already trusted (known pixels 1, filled pixels the confidence of the
square that filled them), the data term the strength of the isophote (the edge direction)
flowing into the front, so edges are continued into the hole before flat areas.

Guided: the smooth fill (:func:`gpupix.ops.inpaint_smooth.fill`, biharmonic) is computed
first and held in the unfilled pixels. The re-rank weighs a candidate's difference from it
at ``GUIDE_WEIGHT`` (0.25) of a filled pixel's, so copies follow the hole's shading.

Batched: the image is cut into ``patch x patch`` cells; each step takes, in one class of
cells two apart (so the squares never overlap), the front point of highest priority per
cell, keeping those within ``BATCH_SHARE`` (0.8) of the step's best (a square with few
filled pixels matches too many sources: on a stripe texture 0.5 misplaced stripes, 0.8 did
not), and fills them all with one neighbour query. The candidates are the fully known
squares in a window ``SEARCH`` pixels around the damage (on a grid past
``MAX_CANDIDATES``); their features are the square's pixels (147 numbers for RGB at 7x7;
3x3 block means lost the phase of fine stripes). Each front square is queried twice, its
unfilled pixels as the guide has them and as the mean of its filled ones (the guide alone
blurs the query of a texture); ``backend.kneighbors`` returns ``k`` candidates for each, and
the union is re-ranked by the exact masked sum of squared differences. The query compares
the squares' first 32 principal axes (of the candidates): as good as every pixel on the
tuning photos' large holes, at 0.6x the time.

Then one pass of patch voting (Wexler, Shechtman & Irani 2007): squares centred every 2
pixels over and around the filled pixels each find their nearest known square, and each
filled pixel takes the mean of what the squares covering it propose; it smooths the seams
between copies (+0.7 dB on the tuning photos' large holes, at about twice the time).

Pixels never reached (a hole enclosed by pixels that are neither known nor missing) keep the
guide, as does damage with no fully known square to copy from. Everything but the neighbour
query is array-API code. Measured against the smooth fill and the classical tools in
``docs/inpaint.md`` (large holes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType

from array_api_compat import device

from gpupix.backends.base import Array, Backend
from gpupix.ops._xp import array_namespace, bincount, box_sum, scatter
from gpupix.ops.inpaint_smooth import fill

PATCH = 7  # square side (odd); 9 and 11 were measured worse on the tuning photos
GUIDE_WEIGHT = 0.25  # weight of the smooth guide against filled pixels in the re-rank
RERANK = 16  # candidates from the neighbour query, re-ranked by the exact masked SSD
SEARCH = 96  # source window: the damage's bounding box grown by this many pixels
MAX_CANDIDATES = 40_000  # candidate squares per query (subsampled on a grid past this)
BATCH_SHARE = 0.8  # a step fills the fronts with at least this share of the top priority
VOTES = 1  # passes of patch voting after the fill (0: the copies as they are)
VOTE_STRIDE = 2  # a voting square centred every this many pixels
VOTE_K = 4  # its candidates by features, re-ranked by the exact squared difference
FEATURES = 32  # principal axes of the squares compared by the neighbour query
_DATA_FLOOR = 0.1  # priority = confidence x (floor + data): flat fronts still progress


def _centred(x: Array, window: int) -> Array:
    """Sum over the ``window`` box centred on each pixel of the first two axes, zero where
    the box leaves the array; same shape as ``x``."""
    xp = array_namespace(x)
    half = (window - 1) // 2
    summed = box_sum(x, window)
    return _pad(xp, summed, half, 0.0)


def _pad(xp: ModuleType, x: Array, margin: int, value: float | bool) -> Array:
    """``x`` with ``margin`` rows and columns of ``value`` around its first two axes."""
    rows = xp.full((margin, x.shape[1], *x.shape[2:]), value, dtype=x.dtype, device=device(x))
    x = xp.concat([rows, x, rows], axis=0)
    cols = xp.full((x.shape[0], margin, *x.shape[2:]), value, dtype=x.dtype, device=device(x))
    return xp.concat([cols, x, cols], axis=1)


def _difference(xp: ModuleType, a: Array, axis: int) -> Array:
    """Central difference of (H, W) ``a`` along ``axis``; zero on the border."""
    if axis == 0:
        inner = a[2:, :] - a[:-2, :]
        edge = xp.zeros((1, a.shape[1]), dtype=a.dtype, device=device(a))
        return xp.concat([edge, inner, edge], axis=0) * 0.5
    inner = a[:, 2:] - a[:, :-2]
    edge = xp.zeros((a.shape[0], 1), dtype=a.dtype, device=device(a))
    return xp.concat([edge, inner, edge], axis=1) * 0.5


def _offsets(xp: ModuleType, like: Array, width: int, half: int) -> Array:
    """Flat offsets (row * width + col) of a square of the given half side, raster order."""
    steps = range(-half, half + 1)
    return xp.asarray([dy * width + dx for dy in steps for dx in steps], dtype=xp.int64,
                      device=device(like))


def _touches(xp: ModuleType, mask: Array) -> Array:
    """Pixels with a 4-neighbour in ``mask`` ((H, W) bool)."""
    false_row = xp.zeros((1, mask.shape[1]), dtype=xp.bool, device=device(mask))
    false_col = xp.zeros((mask.shape[0], 1), dtype=xp.bool, device=device(mask))
    down = xp.concat([false_row, mask[:-1, :]], axis=0)
    up = xp.concat([mask[1:, :], false_row], axis=0)
    right = xp.concat([false_col, mask[:, :-1]], axis=1)
    left = xp.concat([mask[:, 1:], false_col], axis=1)
    return down | up | right | left


def _write(xp: ModuleType, flat: Array, positions: Array, values: Array) -> Array:
    """``flat[positions] = values`` for a 1-D ``flat`` (positions unique, any order)."""
    order = xp.argsort(positions)
    return scatter(xp, flat, xp.take(positions, order), xp.take(values, order))


def exemplar_fill(image: Array, missing: Array, known: Array, *, backend: Backend,
                  k: int = RERANK, patch: int = PATCH, search: int = SEARCH,
                  guide_weight: float = GUIDE_WEIGHT, votes: int = VOTES,
                  features: int = FEATURES) -> Array:
    """Fill the ``missing`` pixels of ``image`` with patches of its ``known`` pixels.

    Parameters
    ----------
    image : (H, W, C) float32 array
        Values at missing pixels are ignored.
    missing : (H, W) bool array
    known : (H, W) bool array
        Pixels that may be copied (not missing). Pixels neither missing nor known are kept
        and never copied.
    backend : Backend
        Its ``kneighbors`` finds the candidate squares.
    k : int, default=16
        Candidate squares found by feature distance and re-ranked by the exact masked sum of
        squared differences (1: the feature nearest is taken as it is).
    patch : int, default=7
        Square side, odd.
    search : int, default=96
        The squares copied from lie within this many pixels of the damage's bounding box.
    guide_weight : float, default=0.25
        Weight, against a filled pixel's, of a candidate's difference from the smooth fill
        at the square's unfilled pixels, in the re-rank (0: the filled pixels alone).
    votes : int, default=1
        Passes of patch voting after the fill.
    features : int, default=32
        Principal axes of the candidate squares that the neighbour queries compare (0: every
        pixel of the square).

    Returns
    -------
    (H, W, C) float32 array: missing pixels filled, the others unchanged.
    """
    xp = array_namespace(image)
    if patch % 2 == 0 or patch < 3:
        raise ValueError(f"patch: {patch!r} must be odd and at least 3, e.g. 7")
    height, width, channels = image.shape
    rows, cols = xp.nonzero(missing)
    if rows.shape[0] == 0:
        return image
    y0, y1 = max(int(xp.min(rows)) - search, 0), min(int(xp.max(rows)) + 1 + search, height)
    x0, x1 = max(int(xp.min(cols)) - search, 0), min(int(xp.max(cols)) + 1 + search, width)
    half = patch // 2
    window_missing = missing[y0:y1, x0:x1]
    window_known = known[y0:y1, x0:x1] & ~window_missing
    # the smooth fill guides the search: unfilled pixels hold it until a square is copied
    guide = fill(image[y0:y1, x0:x1, :], window_missing, window_known, backend=backend)
    target = _pad(xp, window_missing, half, False)
    source = _pad(xp, window_known, half, False)
    values = _pad(xp, guide, half, 0.0)
    filled = source
    padded_h, padded_w = filled.shape
    n_pixels = padded_h * padded_w

    # candidates: centres of fully known squares, on a grid when there are too many
    whole = _centred(xp.astype(source, xp.float32), patch) >= patch * patch - 0.5
    n_whole = int(xp.sum(xp.astype(whole, xp.int64)))
    if n_whole == 0:
        return _paste(xp, image, missing, guide, (y0, y1, x0, x1))
    stride = max(1, math.ceil(math.sqrt(n_whole / MAX_CANDIDATES)))
    if stride > 1:
        grid_y = xp.arange(padded_h, device=device(whole)) % stride == 0
        grid_x = xp.arange(padded_w, device=device(whole)) % stride == 0
        whole = whole & grid_y[:, None] & grid_x[None, :]
    cand_y, cand_x = xp.nonzero(whole)
    candidates = cand_y * padded_w + cand_x
    patch_offsets = _offsets(xp, candidates, padded_w, half)
    n_square = patch_offsets.shape[0]

    def squares(flat_values: Array, centres: Array) -> Array:
        at = xp.reshape(centres[:, None] + patch_offsets[None, :], (-1,))
        return xp.reshape(xp.take(flat_values, at, axis=0), (-1, n_square, channels))

    fit = xp.reshape(squares(xp.reshape(values, (n_pixels, channels)), candidates),
                     (-1, n_square * channels))
    project = _principal_axes(fit, features)
    fit_features = project(fit)
    k = max(1, min(k, int(candidates.shape[0])))
    confidence = xp.astype(source, xp.float32)
    luma = xp.asarray([0.299, 0.587, 0.114][:channels] + [0.0] * max(channels - 3, 0),
                      dtype=xp.float32, device=device(image))
    luma = luma / xp.sum(luma)

    remaining = target & ~filled
    for _ in range(int(xp.sum(xp.astype(remaining, xp.int64)))):
        # the step looks only at the cells around what is left to fill
        left_y, left_x = xp.nonzero(remaining)
        if left_y.shape[0] == 0:
            break
        reach = half + 3  # a square, plus the differences and boxes of the data term
        a0 = max(int(xp.min(left_y)) - reach, 0) // patch * patch
        a1 = min(int(xp.max(left_y)) + 1 + reach, padded_h)
        b0 = max(int(xp.min(left_x)) - reach, 0) // patch * patch
        b1 = min(int(xp.max(left_x)) + 1 + reach, padded_w)
        near_filled = filled[a0:a1, b0:b1]
        front = remaining[a0:a1, b0:b1] & _touches(xp, near_filled)
        if not bool(xp.any(front)):
            break
        # priority: confidence of the square x strength of the isophote across the front
        trust = _centred(confidence[a0:a1, b0:b1], patch) / float(patch * patch)
        grey = values[a0:a1, b0:b1, :] @ luma
        seen = xp.astype(near_filled, xp.float32)
        zero = xp.zeros_like(grey)
        # a difference is trusted when both of its pixels are filled
        gy = xp.where(_difference(xp, seen, 0) == 0.0, _difference(xp, grey, 0), zero)
        gx = xp.where(_difference(xp, seen, 1) == 0.0, _difference(xp, grey, 1), zero)
        gy, gx = gy * seen, gx * seen
        inside = _centred(seen, 3)
        ny, nx = _difference(xp, inside, 0), _difference(xp, inside, 1)
        # the isophote is strongest next to the front, on the filled side: take the
        # largest in a 3x3 box by summing absolute cross products
        cross = _centred(xp.abs(gx * ny - gy * nx) / (xp.sqrt(nx * nx + ny * ny) + 1e-6), 3)
        data = cross / (9.0 * 255.0)
        priority = xp.where(front, trust * (_DATA_FLOOR + data), zero - 1.0)

        # the best front point per cell, in the class of cells (two apart) with the most
        cells_y, cells_x = math.ceil((a1 - a0) / patch), math.ceil((b1 - b0) / patch)
        cell_class = (((xp.arange(cells_y, device=device(whole)) + a0 // patch) % 2)[:, None]
                      * 2 + ((xp.arange(cells_x, device=device(whole)) + b0 // patch)
                             % 2)[None, :])
        priority = _pad_to(xp, priority, cells_y * patch, cells_x * patch)
        per_cell = xp.reshape(xp.permute_dims(
            xp.reshape(priority, (cells_y, patch, cells_x, patch)), (0, 2, 1, 3)),
            (cells_y, cells_x, patch * patch))
        best = xp.argmax(per_cell, axis=2)
        cell_best = xp.max(per_cell, axis=2)
        # fronts far less trusted than the best wait: their squares match too many sources
        has_front = (cell_best >= 0.0) & (cell_best >= BATCH_SHARE * xp.max(cell_best))
        counts_per_class = [int(xp.sum(xp.astype(has_front & (cell_class == c), xp.int64)))
                            for c in range(4)]
        chosen_class = max(range(4), key=lambda c: counts_per_class[c])
        cy, cx = xp.nonzero(has_front & (cell_class == chosen_class))
        at = xp.take(xp.reshape(best, (-1,)), cy * cells_x + cx)
        local_y, local_x = cy * patch + at // patch, cx * patch + at % patch
        centres = (local_y + a0) * padded_w + local_x + b0
        new_trust = xp.take(xp.reshape(trust, (-1,)), local_y * (b1 - b0) + local_x)
        flat_values = xp.reshape(values, (n_pixels, channels))
        n_query = centres.shape[0]

        here = squares(flat_values, centres)
        square = xp.reshape(centres[:, None] + patch_offsets[None, :], (-1,))
        is_filled = xp.astype(xp.take(xp.reshape(filled, (-1,)), square), xp.float32)
        is_open = xp.take(xp.reshape(remaining, (-1,)), square)
        # two queries: unfilled pixels as the guide has them (follows the smooth shading),
        # and as the mean of the square's filled pixels (a texture's phase decides alone)
        trusted = xp.reshape(is_filled, (n_query, n_square, 1))
        square_mean = (xp.sum(here * trusted, axis=1)
                       / xp.maximum(xp.sum(trusted, axis=1), 1.0))[:, None, :]
        flat_mean = here * trusted + square_mean * (1.0 - trusted)
        queries = xp.concat([xp.reshape(here, (n_query, -1)),
                             xp.reshape(flat_mean, (n_query, -1))], axis=0)
        _, found = backend.kneighbors(fit_features, project(queries), k=k)
        index = xp.concat([found[:n_query, :], found[n_query:, :]], axis=1)
        there = squares(flat_values, xp.take(candidates, xp.reshape(index, (-1,))))
        there = xp.reshape(there, (n_query, 2 * k, n_square, channels))
        weight = is_filled + guide_weight * xp.astype(is_open, xp.float32)
        weight = xp.reshape(weight, (n_query, 1, n_square, 1))
        ssd = xp.sum(weight * (there - here[:, None, :, :]) ** 2, axis=(2, 3))
        pick = xp.argmin(ssd, axis=1)
        rows_k = xp.arange(n_query, device=device(pick)) * (2 * k) + pick
        copied = xp.take(xp.reshape(there, (n_query * 2 * k, n_square, channels)), rows_k,
                         axis=0)

        # write the square's unfilled target pixels; the squares never overlap
        square = xp.reshape(square, (n_query, n_square))
        is_open = xp.reshape(is_open, (n_query, n_square))
        positions = square[is_open]
        new_trust = xp.broadcast_to(new_trust[:, None], is_open.shape)[is_open]
        written = copied[is_open]
        planes = [_write(xp, flat_values[:, c], positions, written[:, c])
                  for c in range(channels)]
        values = xp.reshape(xp.stack(planes, axis=1), (padded_h, padded_w, channels))
        ones = xp.ones(positions.shape, dtype=xp.bool, device=device(positions))
        filled = xp.reshape(_write(xp, xp.reshape(filled, (-1,)), positions, ones),
                            (padded_h, padded_w))
        confidence = xp.reshape(_write(xp, xp.reshape(confidence, (-1,)), positions,
                                       new_trust), (padded_h, padded_w))
        remaining = target & ~filled

    # pixels never reached (enclosed by pixels neither known nor missing) keep the guide
    for _ in range(votes):
        values = _vote(backend, values, target & filled, fit_features, project, candidates,
                       patch_offsets, half=half)
    crop = values[half:padded_h - half, half:padded_w - half, :]
    return _paste(xp, image, missing, crop, (y0, y1, x0, x1))


def _principal_axes(fit: Array, dims: int) -> Callable[[Array], Array]:
    """The map of (n, d) rows onto the ``dims`` principal axes of ``fit`` (rows centred on
    its mean); the identity when ``dims`` is 0 or not below d. The neighbour query's cost is
    proportional to the dimensions; the exact re-rank after it uses every pixel."""
    xp = array_namespace(fit)
    if dims <= 0 or dims >= fit.shape[1]:
        return lambda rows: rows
    mean = xp.mean(fit, axis=0)
    centred = fit - mean
    covariance = (xp.astype(centred, xp.float64).T @ xp.astype(centred, xp.float64))
    _, vectors = xp.linalg.eigh(covariance)  # ascending eigenvalues: the last are kept
    basis = xp.astype(vectors[:, vectors.shape[1] - dims:], fit.dtype)
    return lambda rows: (rows - mean) @ basis


def _vote(backend: Backend, values: Array, written: Array, fit_features: Array,
          project: Callable[[Array], Array], candidates: Array, offsets: Array, *,
          half: int) -> Array:
    """One pass of patch voting (Wexler, Shechtman & Irani 2007): the squares centred every
    ``VOTE_STRIDE`` pixels over and around the ``written`` pixels each find their nearest
    known square (``VOTE_K`` by features, re-ranked by the exact squared difference), and
    every written pixel takes the mean of what the squares covering it propose. Averages
    away the seams between the copied squares.
    """
    xp = array_namespace(values)
    height, width, channels = values.shape
    n_pixels = height * width
    patch = 2 * half + 1
    near = _centred(xp.astype(written, xp.float32), patch) > 0.5
    rows = xp.arange(height, device=device(values))
    cols = xp.arange(width, device=device(values))
    # centres whose square lies in the image (the padding is ``half`` wide), on a grid
    inside_rows = (rows >= 2 * half) & (rows < height - 2 * half) & (rows % VOTE_STRIDE == 0)
    inside_cols = (cols >= 2 * half) & (cols < width - 2 * half) & (cols % VOTE_STRIDE == 0)
    centre_y, centre_x = xp.nonzero(near & inside_rows[:, None] & inside_cols[None, :])
    if centre_y.shape[0] == 0:
        return values
    centres = centre_y * width + centre_x
    flat = xp.reshape(values, (n_pixels, channels))
    square = xp.reshape(centres[:, None] + offsets[None, :], (-1,))
    n_query, n_square = centres.shape[0], offsets.shape[0]
    queries = xp.reshape(xp.take(flat, square, axis=0), (n_query, -1))
    k = min(VOTE_K, int(candidates.shape[0]))
    _, index = backend.kneighbors(fit_features, project(queries), k=k)
    found = xp.take(candidates, xp.reshape(index, (-1,)))
    there = xp.take(flat, xp.reshape(found[:, None] + offsets[None, :], (-1,)), axis=0)
    there = xp.reshape(there, (n_query, k, n_square * channels))
    pick = xp.argmin(xp.sum((there - queries[:, None, :]) ** 2, axis=2), axis=1)
    sources = xp.take(found, xp.arange(n_query, device=device(pick)) * k + pick)
    proposed = xp.take(flat, xp.reshape(sources[:, None] + offsets[None, :], (-1,)), axis=0)
    keep = xp.take(xp.reshape(written, (-1,)), square)
    positions = square[keep]
    proposed = proposed[keep]
    counts = bincount(xp, positions, minlength=n_pixels)
    sums = [bincount(xp, positions, minlength=n_pixels, weights=proposed[:, c])
            for c in range(channels)]
    voted = xp.stack([xp.astype(total, xp.float32) for total in sums], axis=1)
    counts = xp.astype(counts, xp.float32)[:, None]
    mean = voted / xp.maximum(counts, 1.0)
    return xp.reshape(xp.where(counts > 0, mean, flat), (height, width, channels))


def _paste(xp: ModuleType, image: Array, missing: Array, crop: Array,
           window: tuple[int, int, int, int]) -> Array:
    """``image`` with its missing pixels inside ``window`` taken from ``crop``."""
    y0, y1, x0, x1 = window
    out = xp.asarray(image, copy=True)
    out[y0:y1, x0:x1, :] = xp.where(missing[y0:y1, x0:x1, None], crop,
                                    image[y0:y1, x0:x1, :])
    return out


def _pad_to(xp: ModuleType, x: Array, rows: int, cols: int) -> Array:
    """(H, W) ``x`` grown to (rows, cols) with -1 at the bottom and right."""
    if rows > x.shape[0]:
        x = xp.concat([x, xp.full((rows - x.shape[0], x.shape[1]), -1.0, dtype=x.dtype,
                                  device=device(x))], axis=0)
    if cols > x.shape[1]:
        x = xp.concat([x, xp.full((x.shape[0], cols - x.shape[1]), -1.0, dtype=x.dtype,
                                  device=device(x))], axis=1)
    return x

