"""Nearest-neighbour denoising: a model learned from noisy/clean pairs, and self-similarity.

Learned (:func:`fit_knn_denoiser`, :func:`predict`). Rows are whole images (``kind:
whole``) or patches (``kind: patch``). A KNN classifier copies the clean image of noisy
neighbours; that is worse than doing nothing on Gaussian noise, because neighbours of a noisy
vector are chosen mostly by the noise. Here a linear denoiser (ridge regression of clean on
the PCA features of noisy rows: the Wiener filter, a "denoised projection") does the coarse
work, and the neighbours are searched in the space of its predictions, where noise is small,
to correct what a linear map cannot represent: the clean value is the linear prediction plus
the weighted mean residual of the k nearest training rows.

Self-similar (:func:`denoise_self`). No training set: every patch is compared with the
patches around it (a search window) in a few PCA components of the image's own patches; each
patch's estimate is the weighted average of its neighbours, and overlapping patch estimates
are aggregated, which is non-local means with patch-wise aggregation. Weights are computed
once per pair of patches (d(p, q) = d(q, p)) and aggregated with a box filter, so the work
is a few array passes per offset, tile by tile (bounded memory).

Everything here is written against the array API; the neighbour search goes through
``backend.kneighbors`` (SciPy on cpu, cuML on cuda), in batches of bounded size.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from array_api_compat import device

from gpupix.backends.base import Array, Backend
from gpupix.npz import NpzError, open_npz, read_headers, read_member
from gpupix.ops._xp import array_namespace, box_sum, clip, tiles

WEIGHTS = ("uniform", "distance", "gaussian")
MODEL_FORMAT = "gpupix-knn-denoiser"
MODEL_VERSION = 1
MODEL_ARRAYS = ("mean_x", "components", "coef", "mean_y", "metric", "features", "residuals")


# --------------------------------------------------------------------------- patches
def reflect_indices(n: int, pad: int) -> np.ndarray:
    """Indices ``-pad .. n+pad-1`` reflected into ``0..n-1`` (NumPy's 'reflect', any n)."""
    positions = np.arange(-pad, n + pad)
    if n == 1:
        return np.zeros_like(positions)
    period = 2 * (n - 1)
    positions = np.abs(positions) % period
    return np.where(positions >= n, period - positions, positions)


def reflect_pad(image: Array, pad: int) -> Array:
    """Pad the first two axes of ``image`` by ``pad`` with mirror reflection (host index math)."""
    xp = array_namespace(image)
    where = device(image)
    rows = xp.asarray(reflect_indices(image.shape[0], pad), device=where)
    cols = xp.asarray(reflect_indices(image.shape[1], pad), device=where)
    return xp.take(xp.take(image, rows, axis=0), cols, axis=1)


def patch_rows(padded: Array, patch: int, row_start: int, row_stop: int, width: int) -> Array:
    """Patches centred on rows ``row_start..row_stop-1`` of the unpadded image, as rows.

    ``padded`` is the (H + patch - 1, W + patch - 1, C) reflect-padded image. Returns
    ``((row_stop - row_start) * width, patch * patch * C)``, ordered (dy, dx, channel).
    """
    xp = array_namespace(padded)
    channels = padded.shape[2]
    parts = [padded[row_start + dy:row_stop + dy, dx:dx + width, :]
             for dy in range(patch) for dx in range(patch)]
    stacked = xp.stack(parts, axis=2)
    return xp.reshape(stacked, ((row_stop - row_start) * width, patch * patch * channels))


def patches_at(padded: Array, patch: int, rows: Array, cols: Array) -> Array:
    """Patches centred on the pixels ``(rows[i], cols[i])`` of the unpadded image, as rows."""
    xp = array_namespace(padded)
    height, width, channels = padded.shape
    flat = xp.reshape(padded, (height * width, channels))
    base = rows * width + cols
    parts = [xp.take(flat, base + (dy * width + dx), axis=0)
             for dy in range(patch) for dx in range(patch)]
    return xp.reshape(xp.stack(parts, axis=1), (rows.shape[0], patch * patch * channels))


# --------------------------------------------------------------------------- learned model
@dataclass
class KnnDenoiser:
    """A fitted denoiser; arrays live on one backend (host NumPy once loaded from disk).

    mean_x : (D,) mean noisy row          components : (D, d) PCA basis, or None
    coef : (d, T) linear map to targets   mean_y : (T,) mean clean target
    metric : (d, q) map from PCA features to the search space
    features : (n, q) training rows in the search space
    residuals : (n, T) clean target minus the linear prediction, per training row
    meta : JSON-able settings (kind, image shape, patch, k, weights, h, noise, ...)
    """

    mean_x: Array
    components: Array | None
    coef: Array
    mean_y: Array
    metric: Array
    features: Array
    residuals: Array
    meta: dict[str, Any] = field(default_factory=dict)

    def arrays(self) -> dict[str, Array]:
        return {name: getattr(self, name) for name in MODEL_ARRAYS
                if getattr(self, name) is not None}

    def to_backend(self, backend: Backend) -> KnnDenoiser:
        """The same model with its arrays on ``backend`` (device copies)."""
        moved = {name: backend.to_device(np.asarray(value)) if isinstance(value, np.ndarray)
                 else backend.to_device(backend.to_host(value))
                 for name, value in self.arrays().items()}
        moved.setdefault("components", None)
        return KnnDenoiser(**moved, meta=dict(self.meta))


def _symmetric_eigh_desc(matrix: Array) -> tuple[Array, Array]:
    """Eigenvalues (descending) and eigenvectors of a symmetric matrix."""
    xp = array_namespace(matrix)
    values, vectors = xp.linalg.eigh(matrix)
    return xp.flip(values), xp.flip(vectors, axis=1)


def fit_knn_denoiser(noisy: Array, clean: Array, *, components: int | None = 64,
                     k: int = 30, weights: str = "gaussian", h: float = 0.25,
                     ridge: float = 1e-3, target_columns: Array | None = None,
                     meta: dict[str, Any] | None = None) -> KnnDenoiser:
    """Fit the linear + nearest-neighbour-residual denoiser on paired rows.

    Parameters
    ----------
    noisy : (n, D) array
        Noisy rows (whole images or patches, flattened), values 0..255 (or beyond, unclipped).
    clean : (n, D') array
        The matching clean rows.
    components : int or None, default=64
        PCA components of the noisy rows kept as features (None or >= D: all, no PCA).
    k : int, default=30
    weights : {"uniform", "distance", "gaussian"}, default="gaussian"
        ``gaussian`` weighs neighbour i by exp(-(d_i^2 - d_1^2) / (h d_k^2)): a bandwidth
        that adapts to each query's own neighbourhood.
    h : float, default=0.25
    ridge : float, default=1e-3
        Ridge penalty relative to the mean feature variance (keeps the solve well posed).
    target_columns : (T,) int array, optional
        Columns of ``clean`` the model predicts (a patch model predicts the centre pixel); the
        search space is still built from every column, so it sees the whole clean patch.
    meta : dict, optional
        Settings stored with the model.

    Returns
    -------
    KnnDenoiser
    """
    xp = array_namespace(noisy, clean)
    if weights not in WEIGHTS:
        raise ValueError(f"weights {weights!r} is not one of {', '.join(WEIGHTS)}")
    rows, dims = noisy.shape
    if rows < 2:
        raise ValueError(f"need at least 2 training rows, got {rows}")
    x = xp.astype(noisy, xp.float32)
    y = xp.astype(clean, xp.float32)
    mean_x = xp.mean(x, axis=0)
    mean_y = xp.mean(y, axis=0)
    centred = x - mean_x
    basis = None
    if components is not None and components < dims:
        covariance = (centred.T @ centred) / rows
        _, vectors = _symmetric_eigh_desc(covariance)
        basis = vectors[:, :components]
        centred = centred @ basis
    d = centred.shape[1]
    gram = (centred.T @ centred) / rows
    penalty = ridge * float(xp.sum(xp.linalg.diagonal(gram))) / d + 1e-6
    eye = xp.eye(d, dtype=xp.float32, device=device(gram))
    coef_all = xp.linalg.solve(gram + penalty * eye, (centred.T @ (y - mean_y)) / rows)
    # distances between linear predictions: |(z1 - z2) W|^2 = (z1 - z2) W W^T (z1 - z2)^T
    values, vectors = _symmetric_eigh_desc(coef_all @ coef_all.T)
    rank = max(1, int(xp.sum(xp.astype(values > float(values[0]) * 1e-6, xp.int32))))
    metric = vectors[:, :rank] * xp.sqrt(clip(values[:rank], 0.0, None))
    if target_columns is not None:
        coef = xp.take(coef_all, target_columns, axis=1)
        target_mean = xp.take(mean_y, target_columns, axis=0)
        target = xp.take(y, target_columns, axis=1)
    else:
        coef, target_mean, target = coef_all, mean_y, y
    residuals = target - (centred @ coef + target_mean)
    settings = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "k": int(min(k, rows)),
                "weights": weights, "h": float(h), "features": int(dims),
                "components": int(d), "search_dims": rank, "rows": int(rows), **(meta or {})}
    return KnnDenoiser(mean_x=mean_x, components=basis, coef=coef, mean_y=target_mean,
                       metric=metric, features=centred @ metric, residuals=residuals,
                       meta=settings)


def neighbour_weights(distances: Array, *, weights: str, h: float) -> Array:
    """(m, k) weights from (m, k) neighbour distances (nearest first); rows need not sum to 1."""
    xp = array_namespace(distances)
    if weights == "uniform":
        return xp.ones_like(distances)
    if weights == "distance":
        return 1.0 / (distances + 1e-6)
    squared = distances * distances
    scale = h * squared[:, -1:] + 1e-12
    return xp.exp(-(squared - squared[:, :1]) / scale)


def predict(model: KnnDenoiser, noisy: Array, *, backend: Backend, k: int | None = None,
            batch: int = 65536) -> Array:
    """Denoised targets for noisy rows, ``batch`` rows per neighbour search (bounded memory).

    Parameters
    ----------
    model : KnnDenoiser
        With arrays on ``backend`` (see :meth:`KnnDenoiser.to_backend`).
    noisy : (m, D) array
    k : int, optional
        Neighbours to average (default: the model's own).
    batch : int, default=65536

    Returns
    -------
    (m, T) float32 array
    """
    xp = backend.xp
    meta = model.meta
    dims = model.mean_x.shape[0]
    if noisy.shape[1] != dims:
        raise ValueError(f"rows have {noisy.shape[1]} values but the model expects {dims}")
    k = min(int(k or meta["k"]), model.features.shape[0])
    parts = []
    for start in range(0, noisy.shape[0], batch):
        stop = min(start + batch, noisy.shape[0])  # in-bounds slices, as the standard asks
        rows = xp.astype(noisy[start:stop, :], xp.float32) - model.mean_x
        if model.components is not None:
            rows = rows @ model.components
        linear = rows @ model.coef + model.mean_y
        distances, indices = backend.kneighbors(model.features, rows @ model.metric, k=k)
        weight = neighbour_weights(xp.astype(distances, xp.float32), weights=meta["weights"],
                                   h=meta["h"])
        gathered = xp.take(model.residuals, xp.reshape(indices, (-1,)), axis=0)
        gathered = xp.reshape(gathered, (indices.shape[0], k, model.residuals.shape[1]))
        correction = xp.sum(weight[:, :, None] * gathered, axis=1) / xp.sum(weight, axis=1,
                                                                                keepdims=True)
        parts.append(linear + correction)
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


def denoise_patchwise(model: KnnDenoiser, image: Array, *, backend: Backend,
                      k: int | None = None, batch: int = 65536) -> Array:
    """Denoise an (H, W, C) image with a ``patch`` model: each pixel from its noisy patch."""
    xp = backend.xp
    patch = int(model.meta["patch"])
    height, width = image.shape[:2]
    padded = reflect_pad(xp.astype(image, xp.float32), patch // 2)
    rows_per_batch = max(1, batch // max(width, 1))
    parts = []
    for start in range(0, height, rows_per_batch):
        stop = min(height, start + rows_per_batch)
        values = predict(model, patch_rows(padded, patch, start, stop, width),
                         backend=backend, k=k, batch=batch)
        parts.append(xp.reshape(values, (stop - start, width, image.shape[2])))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


# --------------------------------------------------------------------------- model files
def save_model(model: KnnDenoiser, backend: Backend) -> bytes:
    """The model as ``.npz`` bytes: float32 arrays plus the settings as a JSON string.

    Nothing is pickled, so :func:`load_model` reads it with ``allow_pickle=False``.
    """
    import io

    buffer = io.BytesIO()
    arrays = {name: np.ascontiguousarray(backend.to_host(value), dtype=np.float32)
              for name, value in model.arrays().items()}
    np.savez(buffer, meta=np.asarray(json.dumps(model.meta, sort_keys=True)), **arrays)
    return buffer.getvalue()


def load_model(path: Any) -> KnnDenoiser:
    """Read a model written by :func:`save_model`; ValueError names the member that is wrong.

    The file is untrusted: the zip directory, every member's ``.npy`` header and the JSON
    settings are judged against what a model of its kind can be (members, dtypes, shapes,
    :data:`MAX_MODEL_BYTES`) before any array is inflated, and nothing goes through pickle.
    """
    with open_npz(path, "model") as archive:
        members = read_headers(archive, max_bytes=MAX_MODEL_BYTES)
        expected = ("meta", *MODEL_ARRAYS)
        extra = [name for name in members if name not in expected]
        if extra:
            name = members[extra[0]].info.filename[:80]
            raise NpzError(f"member {name!r}: not part of a gpupix denoiser model "
                           f"(it holds {', '.join(expected)})")
        missing = [name for name in expected if name not in members and name != "components"]
        if missing:
            raise NpzError(f"not a gpupix denoiser model (missing {', '.join(missing)})")
        meta_member = members.pop("meta")
        if meta_member.dtype.kind != "U" or meta_member.shape != () \
                or meta_member.data_bytes > MAX_META_BYTES:
            raise NpzError(f"member 'meta.npy': expected one JSON string of at most "
                           f"{MAX_META_BYTES // 4:,} characters, got shape {meta_member.shape} "
                           f"of {meta_member.dtype.str}")
        meta = _model_meta(str(read_member(archive, meta_member)[()]))
        expected_shapes = _model_shapes(meta, with_components="components" in members)
        for name, member in members.items():
            if member.dtype != np.dtype("<f4") or member.fortran_order:
                raise NpzError(f"member '{name}.npy': expected float32 in C order, got "
                               f"{member.dtype.str}{' (Fortran order)' * member.fortran_order}")
            if member.shape != expected_shapes[name]:
                raise NpzError(f"member '{name}.npy': shape {member.shape} is not the "
                               f"{expected_shapes[name]} a {meta['kind']} model with these "
                               "settings has")
        contents: dict[str, Any] = {name: read_member(archive, member, _finite)
                                    for name, member in members.items()}
    contents.setdefault("components", None)
    return KnnDenoiser(**contents, meta=meta)


# A model is loaded whole into memory (and onto the device): its arrays may hold this much.
MAX_MODEL_BYTES = 4 << 30
MAX_META_BYTES = 4 * 65_536  # numpy stores the JSON as UTF-32
MAX_WHOLE_VALUES = 4096      # kind: whole fits a (values x values) covariance: 64x64 grey
MAX_PATCH = 15
MAX_K = 1000
# key -> (type, required for kind) of the settings fit_knn_denoiser and fit_denoiser store
_META_KEYS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "format": (str, ("whole", "patch")), "version": (int, ("whole", "patch")),
    "kind": (str, ("whole", "patch")), "channels": (int, ("whole", "patch")),
    "k": (int, ("whole", "patch")), "weights": (str, ("whole", "patch")),
    "h": ((int, float), ("whole", "patch")), "features": (int, ("whole", "patch")),
    "components": (int, ("whole", "patch")), "search_dims": (int, ("whole", "patch")),
    "rows": (int, ("whole", "patch")), "height": (int, ("whole",)),
    "width": (int, ("whole",)), "patch": (int, ("patch",)),
    "noise": ((dict, type(None)), ()), "paired": (bool, ()), "seed": (int, ()),
}


def _model_meta(text: str) -> dict[str, Any]:
    """The settings a model was written with, each of the type and range it can have."""
    where = "member 'meta.npy'"
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise NpzError(f"{where}: not JSON ({str(exc)[:80]})") from None
    if not isinstance(meta, dict):
        raise NpzError(f"{where}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != MODEL_FORMAT:
        raise NpzError(f"{where}: format {_short(meta.get('format'))} is not "
                       f"{MODEL_FORMAT!r}")
    if meta.get("version") != MODEL_VERSION:
        raise NpzError(f"{where}: model version {_short(meta.get('version'))} is not "
                       f"{MODEL_VERSION} (refit it with this gpupix)")
    kind = meta.get("kind")
    if "kind" not in meta:
        raise NpzError(f"{where}: no 'kind' setting (whole or patch)")
    if kind not in ("whole", "patch"):
        raise NpzError(f"{where}: kind {_short(kind)} is not 'whole' or 'patch'")
    for key, value in meta.items():
        if key not in _META_KEYS:
            raise NpzError(f"{where}: unknown setting {_short(key)}")
        kind_of, _ = _META_KEYS[key]
        if not isinstance(value, kind_of) or (kind_of is int and isinstance(value, bool)):
            names = " or ".join(t.__name__.replace("NoneType", "null")
                                for t in (kind_of if isinstance(kind_of, tuple) else (kind_of,)))
            raise NpzError(f"{where}: {key} is {_short(value)}, not {names}")
    for key, (_, required) in _META_KEYS.items():
        if kind in required and key not in meta:
            raise NpzError(f"{where}: no {key!r} setting, which a {kind} model has")
    channels, features = meta["channels"], meta["features"]
    problems = {
        "channels": channels not in (1, 3),
        "k": not 1 <= meta["k"] <= min(MAX_K, meta["rows"]),  # the fit takes min(k, rows)
        "weights": meta["weights"] not in WEIGHTS,
        "h": not (math.isfinite(meta["h"]) and meta["h"] > 0),
        "components": not 1 <= meta["components"] <= features,
        "search_dims": not 1 <= meta["search_dims"] <= meta["components"],
        "rows": meta["rows"] < 2,  # the fit needs two training rows
    }
    if kind == "whole":
        problems["features"] = not (1 <= features <= MAX_WHOLE_VALUES and features ==
                                    meta["height"] * meta["width"] * channels)
        problems["height"] = not 1 <= meta["height"] <= MAX_WHOLE_VALUES
        problems["width"] = not 1 <= meta["width"] <= MAX_WHOLE_VALUES
    else:
        patch = meta["patch"]
        problems["patch"] = not (1 <= patch <= MAX_PATCH and patch % 2 == 1)
        problems["features"] = features != patch * patch * channels
    for key, bad in problems.items():
        if bad:
            raise NpzError(f"{where}: {key} {_short(meta[key])} is not possible for a {kind} "
                           "model with these settings")
    return meta


def _model_shapes(meta: dict[str, Any], *, with_components: bool) -> dict[str, tuple[int, ...]]:
    """The shape of every array a model with these (checked) settings has."""
    features, components = meta["features"], meta["components"]
    if not with_components and components != features:
        raise NpzError(f"member 'components.npy' is missing, but {components} PCA components "
                       f"of {features} values are recorded")
    targets = features if meta["kind"] == "whole" else meta["channels"]
    rows, search = meta["rows"], meta["search_dims"]
    shapes = {"mean_x": (features,), "coef": (components, targets), "mean_y": (targets,),
              "metric": (components, search), "features": (rows, search),
              "residuals": (rows, targets)}
    if with_components:
        shapes["components"] = (features, components)
    return shapes


def _finite(array: np.ndarray) -> str | None:
    flat = array.reshape(-1)
    for start in range(0, flat.size, 1 << 22):  # blocks: no mask as large as the array
        if not np.isfinite(flat[start:start + (1 << 22)]).all():
            return "holds NaN or infinite values"
    return None


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else f"a {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------- self-similar
def patch_pca(image: Array, *, patch: int, components: int, max_samples: int = 20000
              ) -> tuple[Array, Array]:
    """PCA of an image's patches on a regular grid of at most ``max_samples`` of them.

    Returns ``(basis (patch*patch*C, components), eigenvalues (patch*patch*C,) descending)``;
    the smallest eigenvalues are the noise variance where the image has no texture left.
    """
    xp = array_namespace(image)
    height, width, channels = image.shape
    rows, cols = max(height - patch + 1, 1), max(width - patch + 1, 1)
    step = max(1, math.ceil(math.sqrt(rows * cols / max_samples)))
    padded = image if height >= patch and width >= patch else reflect_pad(image, patch)
    parts = [padded[dy:dy + rows:step, dx:dx + cols:step, :]
             for dy in range(patch) for dx in range(patch)]
    samples = xp.reshape(xp.stack(parts, axis=2), (-1, patch * patch * channels))
    centred = samples - xp.mean(samples, axis=0)
    values, vectors = _symmetric_eigh_desc((centred.T @ centred) / samples.shape[0])
    return vectors[:, :components], values


def estimate_sigma(eigenvalues: Array) -> float:
    """Noise standard deviation from patch-PCA eigenvalues: the mean of the lower half."""
    xp = array_namespace(eigenvalues)
    tail = eigenvalues[eigenvalues.shape[0] // 2:]
    return math.sqrt(max(float(xp.mean(clip(tail, 0.0, None))), 0.0))


@dataclass(frozen=True)
class SelfResult:
    image: Array       # (H, W, C) float32
    sigma: float       # the noise level used (estimated unless given)


def denoise_self(image: Array, *, patch: int = 3, window: int = 7, components: int = 4,
                 h: float = 1.0, sigma: float | None = None, tile: int = 128) -> SelfResult:
    """Self-similar denoising: non-local means in patch-PCA space with patch aggregation.

    Parameters
    ----------
    image : (H, W, C) array of 0..255 values
    patch : int, default=3
        Odd patch side.
    window : int, default=7
        Odd side of the search window: each patch is compared with the ``window**2 - 1``
        patches whose centres are at most ``window // 2`` pixels away.
    components : int, default=4
        PCA components of the patches in which patch distances are measured (fewer
        dimensions, less noise in the distances).
    h : float, default=1.0
        Filter strength: the weight of a pair is exp(-d^2 / (2 h sigma^2 components)).
    sigma : float, optional
        Noise standard deviation; estimated from the patch PCA when not given.
    tile : int, default=128
        Tile side: memory is bounded by a tile (plus a margin), whatever the image size.

    Returns
    -------
    SelfResult
    """
    xp = array_namespace(image)
    if patch % 2 == 0 or window % 2 == 0:
        raise ValueError(f"patch and window must be odd, got {patch} and {window}")
    height, width, channels = image.shape
    values = xp.astype(image, xp.float32)
    dims = patch * patch * channels
    components = max(1, min(components, dims))
    basis, eigenvalues = patch_pca(values, patch=patch, components=components)
    if sigma is None:
        sigma = estimate_sigma(eigenvalues)
    if sigma <= 0:
        return SelfResult(image=values, sigma=0.0)
    radius, reach = patch // 2, window // 2
    margin = reach + 2 * radius
    # channels first: each plane is contiguous, so the per-offset passes stream memory
    padded = xp.permute_dims(reflect_pad(values, margin), (2, 0, 1))
    per_offset = xp.reshape(basis, (patch, patch, channels, components))
    scale = -1.0 / (2.0 * h * sigma * sigma * components)
    out = _by_tiles(values, tile, lambda top, left, rows, cols: _self_tile(
        padded, per_offset, scale, patch=patch, reach=reach, top=top, left=left,
        rows=rows, cols=cols))
    return SelfResult(image=out, sigma=float(sigma))


def _self_tile(padded: Array, per_offset: Array, scale: float, *, patch: int, reach: int,
               top: int, left: int, rows: int, cols: int) -> Array:
    """One tile of :func:`denoise_self`; ``padded`` is (C, H + 2m, W + 2m), m = reach + 2r."""
    xp = array_namespace(padded)
    radius = patch // 2
    margin = reach + 2 * radius
    # features of the patch centred at every pixel of the tile grown by radius + reach
    grid_rows, grid_cols = rows + 2 * (radius + reach), cols + 2 * (radius + reach)
    y0, x0 = top + margin - radius - reach - radius, left + margin - radius - reach - radius
    features = None
    for dy in range(patch):
        for dx in range(patch):
            window = padded[:, y0 + dy:y0 + dy + grid_rows, x0 + dx:x0 + dx + grid_cols]
            term = xp.tensordot(xp.permute_dims(per_offset[dy, dx, ...], (1, 0)), window,
                                axes=1)
            features = term if features is None else features + term
    features = features * math.sqrt(-scale)  # so that a pair's weight is exp(-|diff|^2)
    sy, sx = top + margin, left + margin
    # the patch itself: weight 1 from each of the patch*patch patches covering a pixel
    total = padded[:, sy:sy + rows, sx:sx + cols] * float(patch * patch)
    weight_sum = xp.full((rows, cols), float(patch * patch), dtype=xp.float32,
                         device=device(padded))
    offsets = [(oy, ox) for oy in range(0, reach + 1) for ox in range(-reach, reach + 1)
               if oy > 0 or ox > 0]
    for oy, ox in offsets:  # half the window: the pair (c, c+o) also serves c+o with -o
        ys, xs = max(0, -oy), max(0, -ox)
        ye, xe = grid_rows - max(0, oy), grid_cols - max(0, ox)
        diff = features[:, ys:ye, xs:xe] - features[:, ys + oy:ye + oy, xs + ox:xe + ox]
        pair = xp.exp(-xp.sum(diff * diff, axis=0))
        covering = box_sum(pair, patch)  # summed weight of the pairs whose patches cover a pixel
        a, b = reach - ys, reach - xs
        forward = covering[a:a + rows, b:b + cols]
        total += forward * padded[:, sy + oy:sy + oy + rows, sx + ox:sx + ox + cols]
        weight_sum += forward
        backward = covering[a - oy:a - oy + rows, b - ox:b - ox + cols]
        total += backward * padded[:, sy - oy:sy - oy + rows, sx - ox:sx - ox + cols]
        weight_sum += backward
    return total / weight_sum


def denoise_self_knn(image: Array, *, backend: Backend, patch: int = 5, k: int = 32,
                     stride: int = 2, components: int = 8, h: float = 1.0,
                     sigma: float | None = None, tile: int = 128) -> SelfResult:
    """Self-similar denoising by k nearest patches anywhere in a tile, through the backend.

    Every ``stride``-th patch (a grid that covers each pixel) looks up its ``k`` nearest
    patches among all patches of its tile (plus a margin), in ``components`` PCA features,
    with ``backend.kneighbors`` (a KD-tree on cpu, brute force on cuda); its estimate is their
    weighted average (weight exp(-d^2 / (2 h sigma^2 components))), and the overlapping
    patch estimates are averaged. The search is global within a tile: ``tile`` bounds the
    memory and the neighbour search (one query batch per tile).

    Parameters
    ----------
    image : (H, W, C) array of 0..255 values
    backend : Backend
    patch : int, default=5
    k : int, default=32
    stride : int, default=2
        At most ``patch``, so that every pixel is covered.
    components, h, sigma, tile
        As in :func:`denoise_self`.

    Returns
    -------
    SelfResult
    """
    xp = array_namespace(image)
    if patch % 2 == 0 or not 1 <= stride <= patch:
        raise ValueError(f"patch must be odd and stride 1..patch, got {patch} and {stride}")
    height, width, channels = image.shape
    values = xp.astype(image, xp.float32)
    components = max(1, min(components, patch * patch * channels))
    basis, eigenvalues = patch_pca(values, patch=patch, components=components)
    if sigma is None:
        sigma = estimate_sigma(eigenvalues)
    if sigma <= 0:
        return SelfResult(image=values, sigma=0.0)
    radius = patch // 2
    margin = 2 * radius + stride
    padded = xp.permute_dims(reflect_pad(values, margin), (2, 0, 1))
    per_offset = xp.reshape(basis, (patch, patch, channels, components))
    scale = -1.0 / (2.0 * h * sigma * sigma * components)
    out = _by_tiles(values, tile, lambda top, left, rows, cols: _knn_tile(
        padded, per_offset, scale, backend=backend, patch=patch, k=k, stride=stride,
        top=top, left=left, rows=rows, cols=cols))
    return SelfResult(image=out, sigma=float(sigma))


def _knn_tile(padded: Array, per_offset: Array, scale: float, *, backend: Backend, patch: int,
              k: int, stride: int, top: int, left: int, rows: int, cols: int) -> Array:
    """One tile of :func:`denoise_self_knn`; ``padded`` is (C, H + 2m, W + 2m), m = 2r + s."""
    xp = array_namespace(padded)
    channels, padded_height, padded_width = padded.shape
    radius = patch // 2
    margin = 2 * radius + stride
    reach = radius + stride  # candidate centres: the tile grown by this much
    grid_rows, grid_cols = rows + 2 * reach, cols + 2 * reach
    y0, x0 = top + margin - reach - radius, left + margin - reach - radius  # patch corners
    features = None
    for dy in range(patch):
        for dx in range(patch):
            window = padded[:, y0 + dy:y0 + dy + grid_rows, x0 + dx:x0 + dx + grid_cols]
            term = xp.tensordot(xp.permute_dims(per_offset[dy, dx, ...], (1, 0)), window,
                                axes=1)
            features = term if features is None else features + term
    dims = features.shape[0]
    candidates = xp.reshape(xp.permute_dims(features, (1, 2, 0)), (grid_rows * grid_cols, dims))
    # references: centres 0, s, 2s, ... of the tile (grid index reach + i*s) covering every row
    count_y = max(1, math.ceil((rows - 1 - radius) / stride) + 1)
    count_x = max(1, math.ceil((cols - 1 - radius) / stride) + 1)
    ref_grid = features[:, reach:reach + (count_y - 1) * stride + 1:stride,
                        reach:reach + (count_x - 1) * stride + 1:stride]
    queries = xp.reshape(xp.permute_dims(ref_grid, (1, 2, 0)), (count_y * count_x, dims))
    k = min(k, candidates.shape[0])
    distances, indices = backend.kneighbors(candidates, queries, k=k)
    distances = xp.astype(distances, xp.float32)
    weight = xp.exp(distances * distances * scale)
    weight = weight / xp.sum(weight, axis=1, keepdims=True)
    # neighbour centres in padded coordinates, as flat indices into each channel plane
    grid_y, grid_x = indices // grid_cols, indices % grid_cols
    centres = (grid_y + (y0 + radius)) * padded_width + (grid_x + (x0 + radius))
    centres = xp.reshape(centres, (-1,))
    planes = xp.reshape(padded, (channels, padded_height * padded_width))
    span_y, span_x = (count_y - 1) * stride + patch, (count_x - 1) * stride + patch
    total = xp.zeros((channels, span_y, span_x), dtype=xp.float32, device=device(padded))
    count = xp.zeros((span_y, span_x), dtype=xp.float32, device=device(padded))
    ones = xp.ones((count_y, count_x), dtype=xp.float32, device=device(padded))
    for dy in range(patch):
        for dx in range(patch):
            shift = (dy - radius) * padded_width + (dx - radius)
            gathered = xp.reshape(xp.take(planes, centres + shift, axis=1),
                                  (channels, queries.shape[0], k))
            estimate = xp.reshape(xp.sum(gathered * weight, axis=2),
                                  (channels, count_y, count_x))
            # reference i's pixel at offset (dy, dx) lands at row i*s + dy of ``total``
            rows_at = slice(dy, dy + (count_y - 1) * stride + 1, stride)
            cols_at = slice(dx, dx + (count_x - 1) * stride + 1, stride)
            total[:, rows_at, cols_at] += estimate
            count[rows_at, cols_at] += ones
    # ``total`` row 0 is tile row -radius
    return (total[:, radius:radius + rows, radius:radius + cols]
            / count[radius:radius + rows, radius:radius + cols])


def _by_tiles(values: Array, tile: int, estimate: Any) -> Array:
    """Run ``estimate(top, left, rows, cols) -> (C, rows, cols)`` over ``tile``-sized tiles of
    an (H, W, C) image and assemble the (H, W, C) result."""
    xp = array_namespace(values)
    height, width, channels = values.shape
    out = xp.empty((channels, height, width), dtype=xp.float32, device=device(values))
    for top, bottom, left, right in tiles(height, width, tile):
        out[:, top:bottom, left:right] = estimate(top, left, bottom - top, right - left)
    return xp.permute_dims(out, (1, 2, 0))
