"""The Python face of gpupix: one function per job, for notebooks and scripts.

Each function builds the same validated config a YAML job file gives (so the keyword options
are exactly the keys of the job's section, with the same one-line errors) and runs the same
job class on one in-memory image. Nothing here is a second implementation.

>>> import numpy as np, gpupix
>>> rgb = np.zeros((8, 8, 3), np.uint8); rgb[:, 4:] = 200
>>> q = gpupix.quantize(rgb, k=4, metrics=["psnr"])
>>> q.palette.shape[1], q.indices.shape, int(q.metrics["colors_out"])
(3, (8, 8), 2)
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gpupix.errors import ConfigError

if TYPE_CHECKING:
    from gpupix.backends.base import Backend
    from gpupix.config import JobConfig
    from gpupix.ops.denoise import KnnDenoiser
    from gpupix.pipeline import RunSummary

DEFAULT_METRICS = ("psnr", "delta_e", "ssim")
_MEMORY = "<memory>"  # stands in for input and output paths: the API touches no file


# ---------------------------------------------------------------------------- results
@dataclass
class QuantizeResult:
    """A palette image. ``palette`` : (m, 3) or (m, 4) uint8 (RGBA when the image has
    transparency); ``indices`` : (H, W) uint8; ``rgb`` : the palette image as (H, W, 3|4)."""

    palette: Any
    indices: Any
    metrics: dict[str, Any]
    original: np.ndarray = field(repr=False)

    @property
    def rgb(self) -> Any:
        return self.palette[self.indices]  # NumPy or CuPy fancy indexing, on the same device

    def save(self, path: str | Path) -> Path:
        """Write the indexed PNG (smallest bit depth, tRNS for transparency)."""
        from gpupix.io import encode_palette_png

        palette, indices = _host(self.palette), _host(self.indices)
        alpha = palette[:, 3] if palette.shape[1] == 4 else None
        path = Path(path)
        path.write_bytes(encode_palette_png(indices, palette[:, :3], alpha=alpha))
        return path

    def _repr_html_(self) -> str:
        palette = _host(self.palette)
        swatches = "".join(
            f'<span title="#{r:02x}{g:02x}{b:02x}" style="display:inline-block;width:14px;'
            f'height:14px;background:#{r:02x}{g:02x}{b:02x}"></span>'
            for r, g, b in palette[:, :3].tolist())
        return _figure([("original", self.original), ("quantized", _host(self.rgb))],
                       self.metrics, extra=f"<div>{len(palette)} colours: {swatches}</div>")


@dataclass
class ImageResult:
    """A repaired or denoised image: ``rgb`` (H, W, 3|4) uint8 and its ``metrics``."""

    rgb: Any
    metrics: dict[str, Any]
    original: np.ndarray = field(repr=False)
    label: str = "result"

    def save(self, path: str | Path) -> Path:
        from PIL import Image

        path = Path(path)
        Image.fromarray(_host(self.rgb)).save(path)
        return path

    def _repr_html_(self) -> str:
        return _figure([("input", self.original), (self.label, _host(self.rgb))], self.metrics)


# ---------------------------------------------------------------------------- functions
def quantize(image: Any, *, backend: str = "auto", seed: int = 0,
             metrics: Sequence[str] = DEFAULT_METRICS, **options: Any) -> QuantizeResult:
    """Reduce ``image`` to a palette of at most ``k`` colours.

    Parameters
    ----------
    image : (H, W, 3|4) uint8 NumPy or CuPy array, (H, W) grey, or a PIL image
    backend : {"auto", "cpu", "cuda"}, default="auto"
    seed : int, default=0
    metrics : subset of {"psnr", "rmse", "delta_e", "ssim"}
    **options
        The keys of a quantize job's ``quantize:`` section: ``k`` (2..256 or "auto"),
        ``target``, ``min_quality``, ``max_k``, ``color_space``, ``dither``, ``palette`` (a
        palette.json/.png to reuse), ``max_iter``, ``sweep``.

    Returns
    -------
    QuantizeResult
        On the input's device: a CuPy input gives CuPy ``palette`` and ``indices``.
    """
    from gpupix.jobs.quantize import QuantizeJob

    pixels, on_device = _as_pixels(image)
    if options.get("palette") == "shared":
        raise ConfigError("quantize.palette: 'shared' fits one palette over a set of images; "
                          "for one image use the default per_image, or run a job")
    config = _config("quantize", options, backend=backend, seed=seed, metrics=metrics)
    chosen = _backend(config)
    job = QuantizeJob(config)
    if config.quantize.fixed_palette is not None:
        job.use_state(job.prepare([], chosen))  # reads the palette file
    processed = job.process(None, _decoded(pixels), chosen)
    payload = processed.payload
    palette = payload["palette"]
    if payload["alpha"] is not None:
        palette = np.concatenate([palette, payload["alpha"][:, None]], axis=1)
    palette, indices = np.ascontiguousarray(palette), payload["indices"]
    if on_device:
        palette, indices = chosen.to_device(palette), chosen.to_device(indices)
    return QuantizeResult(palette=palette, indices=indices, metrics=dict(processed.metrics),
                          original=pixels)


def inpaint(image: Any, mask: Any = None, *, backend: str = "auto", seed: int = 0,
            metrics: Sequence[str] = DEFAULT_METRICS, **options: Any) -> ImageResult:
    """Fill the missing pixels of ``image`` from its known pixels.

    Parameters
    ----------
    image : (H, W, 3|4) uint8 array or PIL image
    mask : (H, W) bool array, optional
        True where a pixel is missing. Without it, the missing pixels are the transparent
        ones, or those of ``key_color`` (as the YAML job's ``mask: auto`` finds them).
    **options
        The keys of an inpaint job's ``inpaint:`` section (``k``, ``method``, ``weights``,
        ``key_color``, ``tile``, ...). ``mask: file`` reads files and is for jobs only.
    """
    from gpupix.jobs.inpaint import InpaintJob

    pixels, on_device = _as_pixels(image)
    rgba_in = pixels.shape[2] == 4
    if options.get("mask") == "file" or "reference" in options or "mask_suffix" in options:
        raise ConfigError("inpaint.mask: file masks, mask_suffix and reference name files "
                          "beside the inputs; pass mask=array to gpupix.inpaint instead")
    if mask is not None:
        if "mask" in options:
            raise ConfigError("inpaint.mask: give either mask=array or mask=... in options")
        missing = _host(mask)
        if missing.shape != pixels.shape[:2]:
            raise ConfigError(f"mask: shape {missing.shape} is not the image's "
                              f"{pixels.shape[:2]}")
        missing = missing.astype(bool)
        alpha = pixels[..., 3] if rgba_in else np.full(pixels.shape[:2], 255, np.uint8)
        # the job's alpha mask is the one way in for an array: missing = transparent
        pixels_for_job = np.dstack([pixels[..., :3], np.where(missing, 0, np.maximum(alpha, 1))
                                    ]).astype(np.uint8)
        options = {**options, "mask": "alpha"}
    else:
        pixels_for_job = pixels
        if options.get("mask", "auto") == "auto":  # never look for a file beside no file
            has_clear = rgba_in and bool((pixels[..., 3] == 0).any())
            options = {**options, "mask": "alpha" if has_clear else "key_color"}
    config = _config("inpaint", options, backend=backend, seed=seed, metrics=metrics)
    chosen = _backend(config)
    processed = InpaintJob(config).process(None, _decoded(pixels_for_job), chosen)
    result = processed.payload["image"]
    row = dict(processed.metrics)
    if mask is not None:
        row["mask_source"] = "array"
        result = result[..., :3]
        if rgba_in:  # filled pixels opaque, the others keep the alpha they had
            result = np.dstack([result, np.where(missing, 255, pixels[..., 3])]).astype(np.uint8)
    if on_device:
        result = chosen.to_device(np.ascontiguousarray(result))
    return ImageResult(rgb=result, metrics=row, original=pixels, label="inpainted")


def denoise(image: Any, *, model: KnnDenoiser | str | Path | None = None,
            backend: str = "auto", seed: int = 0, metrics: Sequence[str] = DEFAULT_METRICS,
            **options: Any) -> ImageResult:
    """Denoise ``image``: by self-similarity (default), or with a model from
    :func:`fit_denoiser` (or the path of a ``.npz`` a fit_denoiser job wrote).

    ``**options`` are the keys of a denoise job's ``denoise:`` section. With ``noise=...``
    the image is taken as clean, corrupted first, and the result scored against it.
    """
    from gpupix.jobs.denoise import DenoiseJob

    pixels, on_device = _as_pixels(image)
    preloaded = None
    if model is not None:
        if "model" in options or options.get("method", "model") != "model":
            raise ConfigError("denoise.model: give model=... once, with method 'model'")
        if isinstance(model, str | Path):
            options = {**options, "method": "model", "model": str(model)}
        else:
            preloaded = model
            options = {**options, "method": "model", "model": _MEMORY}
    config = _config("denoise", options, backend=backend, seed=seed, metrics=metrics)
    chosen = _backend(config)
    job = DenoiseJob(config, model=preloaded)
    processed = job.process(None, _decoded(pixels), chosen)
    payload = processed.payload
    result = payload["denoised"]
    if result.shape[2] == 1:
        result = np.repeat(result, 3, axis=2)
    if payload["alpha"] is not None:
        result = np.dstack([result, payload["alpha"]])
    row = dict(processed.metrics)
    if on_device:
        result = chosen.to_device(np.ascontiguousarray(result))
    return ImageResult(rgb=result, metrics=row, original=pixels, label="denoised")


def fit_denoiser(clean_images: Iterable[Any], *, noisy_images: Iterable[Any] | None = None,
                 backend: str = "auto", seed: int = 0, **options: Any) -> KnnDenoiser:
    """Fit a KNN denoiser from clean images (noise simulated by ``noise=``) or from
    noisy/clean pairs (``noisy_images``, aligned with ``clean_images``).

    ``**options`` are the keys of a fit_denoiser job's section (``kind``, ``noise``,
    ``patch``, ``k``, ``components``, ...). The model has ``save(path, backend)`` through
    :func:`gpupix.ops.denoise.save_model`; pass it to :func:`denoise` as ``model=``.
    """
    from gpupix.io import InputItem
    from gpupix.jobs.denoise import FitDenoiserJob, _Training, channels_of

    if "clean" in options or "model" in options or "holdout" in options:
        raise ConfigError("fit_denoiser: clean, model and holdout name files of a job; pass "
                          "noisy_images=... for pairs and save the returned model yourself")
    config = _config("fit_denoiser", options, backend=backend, seed=seed, metrics=())
    chosen = _backend(config)
    job = FitDenoiserJob(config)
    cleans = [_as_pixels(image)[0] for image in clean_images]
    noisies: list[Any] = [None] * len(cleans)
    if noisy_images is not None:
        noisies = [_as_pixels(image)[0] for image in noisy_images]
        if len(noisies) != len(cleans):
            raise ConfigError(f"noisy_images: {len(noisies)} images for {len(cleans)} clean")
    if not cleans:
        raise ConfigError("clean_images: no image given")
    training = _Training(job, chosen, len(cleans))
    for index, (clean, noisy) in enumerate(zip(cleans, noisies, strict=True)):
        name = Path(f"clean_images[{index}]")
        clean_values = channels_of(_decoded(clean))
        noisy_values = None
        if noisy is not None:  # a pair keeps its colour channels as they are
            clean_values, noisy_values = clean[..., :3], noisy[..., :3]
        training.add(InputItem(relative=name, path=name), clean_values, noisy_values)
    return training.fit()


def sweep(image: Any, *, ks: Iterable[int] = range(2, 65), backend: str = "auto",
          seed: int = 0, color_space: str = "rgb_lab", max_iter: int = 100
          ) -> dict[str, list[Any]]:
    """The elbow curve: for each k, the K-means ``inertia`` (in the fit space), the image's
    exact ``psnr`` and its mean CIEDE2000 ``delta_e`` (estimated from the colour histogram's
    bin means). Each k is warm-started from the one before, so a long range stays cheap.

    Returns ``{"k": [...], "inertia": [...], "psnr": [...], "delta_e": [...]}``.
    """
    from gpupix.ops.palette_search import sweep_k, total_square
    from gpupix.ops.quantize import color_histogram

    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 2 or ks[-1] > 256:
        raise ConfigError(f"ks: every k must be 2..256, got {ks[:1] + ks[-1:]}")
    settings = _config("quantize", {"color_space": color_space, "max_iter": max_iter},
                       backend=backend, seed=seed, metrics=())
    chosen = _backend(settings)
    pixels, _ = _as_pixels(image)
    rgb = chosen.to_device(np.ascontiguousarray(pixels[..., :3]))
    weights = None
    if pixels.shape[2] == 4:  # transparent pixels do not count
        weights = chosen.to_device((pixels[..., 3] > 0).reshape(-1))
    histogram = color_histogram(rgb, bits=6, weights=weights)
    return sweep_k(histogram, backend=chosen, square_sum=total_square(rgb, weights),
                   ks=ks, color_space=settings.quantize.color_space, seed=seed,
                   max_iter=settings.quantize.max_iter, with_delta_e=True)


def run(config: str | Path, overrides: Mapping[str, Any] | None = None, *,
        backend: str | None = None) -> RunSummary:
    """Run a YAML job file, as ``gpupix run`` does; ``overrides`` are ``--set`` pairs
    (``{"quantize.k": 8}``). Returns the run's summary (rows, counts, exit_code, report)."""
    import json

    from gpupix.config import load_config
    from gpupix.pipeline import run_job

    assignments = [f"{key}={json.dumps(value)}" for key, value in (overrides or {}).items()]
    if backend is not None:
        assignments.append(f"backend={json.dumps(backend)}")
    return run_job(load_config(config, overrides=assignments))


# ---------------------------------------------------------------------------- helpers
def _config(job: str, options: Mapping[str, Any], *, backend: str, seed: int,
            metrics: Sequence[str]) -> JobConfig:
    """The JobConfig a YAML file with this section would give; errors are one line."""
    from pydantic import ValidationError

    from gpupix.config import _format_error, job_config_model

    data = {"job": job, "input": {"paths": [_MEMORY]}, "output": {"dir": _MEMORY},
            "backend": backend, "seed": seed, "metrics": list(metrics), "report": False,
            job: dict(options)}
    try:
        return job_config_model().model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"gpupix.{job}(): {_format_error(first)}{more}") from None


def _backend(config: JobConfig) -> Backend:
    from gpupix.backends import get_backend

    return get_backend(config.backend)


def _decoded(pixels: np.ndarray) -> Any:
    from gpupix.io import DecodedImage

    mode = "RGBA" if pixels.shape[2] == 4 else "RGB"
    return DecodedImage(pixels=pixels, mode=mode, bytes_in=int(pixels.nbytes))


def _as_pixels(image: Any) -> tuple[np.ndarray, bool]:
    """(H, W, 3|4) uint8 host pixels, and whether the input lived on a GPU (CuPy)."""
    on_device = hasattr(image, "__cuda_array_interface__")
    if hasattr(image, "getbands") and hasattr(image, "convert"):  # a PIL image
        from gpupix.io import _to_uint8_array

        array = _to_uint8_array(image, Path("image"))
    else:
        array = _host(image)
    if array.dtype != np.uint8:
        raise ConfigError(f"image: expected uint8 pixels, got {array.dtype}; convert first, "
                          "e.g. skimage.util.img_as_ubyte(image)")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or 0 in array.shape[:2]:
        raise ConfigError(f"image: expected an (H, W, 3) or (H, W, 4) array, got shape "
                          f"{tuple(array.shape)}")
    return np.ascontiguousarray(array), on_device


def _host(array: Any) -> np.ndarray:
    if hasattr(array, "__cuda_array_interface__"):
        return array.get()  # CuPy: one download
    return np.asarray(array)


def _png_data_uri(pixels: np.ndarray, width: int = 256) -> str:
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(pixels))
    if picture.width > width:
        picture = picture.resize((width, max(1, round(picture.height * width / picture.width))),
                                 Image.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure(pictures: list[tuple[str, np.ndarray]], metrics: Mapping[str, Any],
            extra: str = "") -> str:
    cells = "".join(
        f'<figure style="display:inline-block;margin:4px"><img src="{_png_data_uri(p)}" '
        f'style="image-rendering:pixelated"><figcaption>{html.escape(name)}</figcaption>'
        "</figure>" for name, p in pictures)
    shown = {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
    table = ", ".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in shown.items())
    return f"<div>{cells}{extra}<div style='font-size:smaller'>{table}</div></div>"
