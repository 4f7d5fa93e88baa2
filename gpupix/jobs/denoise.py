"""The denoising jobs.

``denoise``: image -> denoised PNG, by self-similarity (``method: self``) or with a model
written by ``fit_denoiser`` (``method: model``). With ``denoise.noise`` the inputs are taken as
clean: they are corrupted first (seeded per image), and the row scores the result against them.

``fit_denoiser``: every input -> one ``model.npz``. It is a whole-set job: the pipeline calls
:meth:`FitDenoiserJob.run_whole_set`, which streams the images (bounded by ``samples``), fits
the model, scores it on held-out images and writes it atomically.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from gpupix.backends.base import Array, Backend
from gpupix.errors import ConfigError, ImageError
from gpupix.io import (
    OUTPUT_SUFFIXES,
    DecodedImage,
    InputItem,
    decode,
    encode_image,
    read_ahead,
    write_atomic,
)
from gpupix.jobs.base import Encoded, ImageJob, Processed, WholeSetJob, WholeSetResult
from gpupix.jobs.hints import ReportHints
from gpupix.ops._xp import array_namespace, clip
from gpupix.ops.denoise import (
    MAX_WHOLE_VALUES,
    KnnDenoiser,
    denoise_patchwise,
    denoise_self,
    denoise_self_knn,
    fit_knn_denoiser,
    load_model,
    patches_at,
    predict,
    reflect_pad,
    save_model,
)
from gpupix.ops.metrics import compute_metrics, psnr, rmse
from gpupix.ops.noise import NoiseModel
from gpupix.settings import NoiseConfig, Section, odd, shown


class FitDenoiserConfig(Section):
    path_fields: ClassVar[tuple[str, ...]] = ("clean",)

    kind: Literal["whole", "patch"] = "whole"
    noise: NoiseConfig = NoiseConfig()
    clean: str | None = None          # paired mode: folder of clean images named as the inputs
    copies: int = Field(4, ge=1, le=64)
    patch: int = Field(5, ge=1, le=15)
    samples: int = Field(100_000, ge=100, le=20_000_000)
    components: int | None = Field(None, ge=1, le=4096)   # None: 64 (whole), 16 (patch)
    k: int = Field(30, ge=1, le=1000)
    weights: Literal["uniform", "distance", "gaussian"] = "gaussian"
    h: float = Field(0.25, gt=0, le=100)
    ridge: float = Field(1e-3, ge=0, le=100)
    holdout: float = Field(0.2, ge=0, lt=1)
    model: str = "model.npz"

    @field_validator("patch")
    @classmethod
    def _patch_is_odd(cls, value: int) -> int:
        return odd(value)

    @model_validator(mode="after")
    def _resolved_components(self) -> FitDenoiserConfig:
        if self.components is None:  # resolved here so summary.json shows it
            object.__setattr__(self, "components", 64 if self.kind == "whole" else 16)
        return self

    @field_validator("model")
    @classmethod
    def _plain_file_name(cls, name: str) -> str:
        if not name.endswith(".npz") or "/" in name or "\\" in name:
            raise ValueError(f"must be a file name ending in .npz (written in output.dir), "
                             f"got {shown(name)}")
        return name

    def check_paths(self, name: str) -> None:
        if self.clean is not None and not Path(self.clean).is_dir():
            raise ConfigError(f"{name}.clean: {self.clean!r} is not a directory (of clean "
                              "images named as the inputs)")


class DenoiseConfig(Section):
    path_fields: ClassVar[tuple[str, ...]] = ("model",)

    method: Literal["self", "model"] = "self"
    model: str | None = None          # method model: a .npz written by fit_denoiser
    noise: NoiseConfig | None = None  # corrupt the (clean) inputs first, then score the result
    difference: bool = False          # with noise: also write |denoised - clean| as name.diff.png
    k: int | None = Field(None, ge=1, le=1000)  # model: its own (null); global search: 32
    search: Literal["window", "global"] = "window"   # method self: where neighbours are sought
    patch: int | None = Field(None, ge=1, le=15)     # None: 3 (window), 5 (global)
    window: int = Field(7, ge=3, le=41)
    stride: int = Field(2, ge=1, le=15)              # global: every stride-th patch queries
    components: int | None = Field(None, ge=1, le=64)  # None: 4 (window), 8 (global)
    h: float = Field(1.0, gt=0, le=100)
    sigma: float | None = Field(None, gt=0, le=255)
    tile: int = Field(128, ge=16, le=8192)
    batch: int = Field(65536, ge=256, le=16_777_216)

    @field_validator("patch", "window")
    @classmethod
    def _patch_is_odd(cls, value: int | None) -> int | None:
        return value if value is None else odd(value)

    @model_validator(mode="after")
    def _model_for_method(self) -> DenoiseConfig:
        if self.method == "model" and not self.model:
            raise ValueError("method 'model' needs denoise.model: path to a fit_denoiser .npz")
        if self.method == "self" and self.model:
            raise ValueError("denoise.model is given but method is 'self'; "
                             "use method: model to use it")
        if self.difference and self.noise is None:
            raise ValueError("denoise.difference needs denoise.noise: the difference is taken "
                             "against the clean input")
        if self.method == "self":  # the defaults, resolved here so summary.json shows them
            wide = self.search == "global"
            defaults = {"patch": 5 if wide else 3, "components": 8 if wide else 4,
                        "k": 32 if wide else None}
            for key, value in defaults.items():
                if getattr(self, key) is None:
                    object.__setattr__(self, key, value)
        if self.search == "global" and self.patch is not None and self.stride > self.patch:
            raise ValueError(f"denoise.stride ({self.stride}) must be at most denoise.patch "
                             f"({self.patch}), or some pixels are in no patch")
        return self

    def check_paths(self, name: str) -> None:
        if self.model is not None and not Path(self.model).is_file():
            raise ConfigError(f"{name}.model: {self.model!r} does not exist (write one with a "
                              "fit_denoiser job)")


Row = dict[str, Any]


def noise_model(settings: NoiseConfig) -> NoiseModel:
    return NoiseModel(**settings.model_dump())


def image_rng(seed: int, values: np.ndarray) -> np.random.Generator:
    """A generator per image, fixed by the seed and the pixels (not by the read order)."""
    return np.random.default_rng([seed, zlib.crc32(np.ascontiguousarray(values).data)])


def is_grey(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def channels_of(image: DecodedImage) -> np.ndarray:
    """(H, W, 1) for a grey image (one channel is enough), else (H, W, 3), uint8."""
    rgb = image.rgb
    return np.ascontiguousarray(rgb[..., :1] if is_grey(rgb) else rgb)


def _with_alpha(values: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """(H, W, 1|3) values and an optional alpha plane -> an array Pillow can encode."""
    if values.shape[2] == 1:
        values = values[..., 0] if alpha is None else np.repeat(values, 3, axis=2)
    return values if alpha is None else np.dstack([values, alpha])


def to_uint8(values: Array, backend: Backend) -> np.ndarray:
    return backend.to_host(device_uint8(values, backend))


def device_uint8(values: Array, backend: Backend) -> Array:
    """``values`` rounded and clipped to uint8, left on the device."""
    xp = backend.xp
    return xp.astype(clip(xp.round(values), 0.0, 255.0), xp.uint8)


def as_rgb(values: Array) -> Array:
    """(H, W, 3) from (H, W, 1|3), in the array's own namespace."""
    if values.shape[2] == 3:
        return values
    xp = array_namespace(values)
    return xp.concat([values] * 3, axis=2)


class DenoiseJob(ImageJob):
    name = "denoise"
    settings_model = DenoiseConfig
    report_hints = ReportHints(input_label="noisy", output_label="denoised",
                               diff_against_input=True,
                               columns=("psnr", "psnr_noisy", "ssim", "sigma"))

    def __init__(self, config: Any, *, model: KnnDenoiser | None = None) -> None:
        """``model``: an already fitted denoiser (the Python API), instead of reading
        ``denoise.model``."""
        super().__init__(config)
        self.noise = noise_model(self.settings.noise) if self.settings.noise else None
        self.model: KnnDenoiser | None = model
        if self.settings.method == "model" and model is None:
            path = Path(self.settings.model)
            if not path.is_file():
                raise ConfigError(f"denoise.model: {str(path)!r} does not exist "
                                  "(write one with a fit_denoiser job)")
            try:
                self.model = load_model(path)
            except ValueError as exc:
                raise ConfigError(f"denoise.model: {path}: {exc}") from None
        self._on_device: dict[int, KnnDenoiser] = {}
        self._lock = threading.Lock()

    def output_relatives(self, item: InputItem) -> list[Path]:
        outputs = [item.relative.with_suffix(OUTPUT_SUFFIXES[self.config.output.format])]
        if self.noise is not None:  # the corrupted input, to look at next to the result
            outputs.append(item.relative.with_name(item.relative.stem + ".noisy.png"))
        if self.settings.difference:  # what denoising got wrong, as in the seed
            outputs.append(item.relative.with_name(item.relative.stem + ".diff.png"))
        return outputs

    def _device_model(self, backend: Backend) -> KnnDenoiser:
        with self._lock:
            model = self._on_device.get(id(backend))
            if model is None:
                model = self._on_device[id(backend)] = self.model.to_backend(backend)
            return model

    def process(self, item: InputItem | None, image: DecodedImage, backend: Backend
                ) -> Processed:
        xp = backend.xp
        settings = self.settings
        values = channels_of(image)
        clean = backend.to_device(values)
        if self.noise is not None:
            noisy = self.noise.apply(clean, image_rng(self.config.seed, values), backend)
        else:
            noisy = xp.astype(clean, xp.float32)
        metrics: dict[str, Any] = {}
        if settings.method == "self" and settings.search == "global":
            result = denoise_self_knn(noisy, backend=backend, patch=settings.patch or 5,
                                      k=settings.k or 32, stride=settings.stride,
                                      components=settings.components or 8, h=settings.h,
                                      sigma=settings.sigma, tile=settings.tile)
            denoised = result.image
            metrics["sigma"] = round(result.sigma, 3)
        elif settings.method == "self":
            result = denoise_self(noisy, patch=settings.patch or 3, window=settings.window,
                                  components=settings.components or 4, h=settings.h,
                                  sigma=settings.sigma, tile=settings.tile)
            denoised = result.image
            metrics["sigma"] = round(result.sigma, 3)
        else:
            denoised = self._with_model(noisy, image, backend)
        out_d = device_uint8(denoised, backend)
        out = backend.to_host(out_d)
        noisy_u8 = to_uint8(noisy, backend) if self.noise is not None else None
        if self.noise is not None:  # scored on the device copies: nothing goes up again
            scores = compute_metrics(self.config.metrics, as_rgb(clean), as_rgb(out_d),
                                     backend=backend)
            metrics.update({name: round(value, 4) for name, value in scores.items()})
            metrics["psnr_noisy"] = round(psnr(clean, noisy), 4)
            metrics["rmse_noisy"] = round(rmse(clean, noisy), 4)
        alpha = image.pixels[..., 3] if image.has_alpha else None
        difference = None
        if settings.difference:
            difference = np.abs(out.astype(np.int16) - values.astype(np.int16)).astype(np.uint8)
        return Processed(payload={"denoised": out, "noisy": noisy_u8, "alpha": alpha,
                                  "difference": difference}, metrics=metrics)

    def _with_model(self, noisy: Array, image: DecodedImage, backend: Backend) -> Array:
        xp = backend.xp
        model = self._device_model(backend)
        meta = model.meta
        height, width, channels = noisy.shape
        where = f"model {self.settings.model}"
        if meta["channels"] == 1 and channels == 3:
            raise ImageError(f"{where} was trained on grey images; this one has colour")
        if meta["channels"] == 3 and channels == 1:
            noisy = xp.concat([noisy, noisy, noisy], axis=2)
            channels = 3
        if meta["kind"] == "whole":
            if (height, width) != (meta["height"], meta["width"]):
                raise ImageError(f"image is {width}x{height} but {where} was trained on "
                                 f"{meta['width']}x{meta['height']} images (kind: whole); "
                                 "use a kind: patch model or method: self for other sizes")
            rows = xp.reshape(noisy, (1, height * width * channels))
            values = predict(model, rows, backend=backend, k=self.settings.k,
                             batch=self.settings.batch)
            return xp.reshape(values, (height, width, channels))
        return denoise_patchwise(model, noisy, backend=backend, k=self.settings.k,
                                 batch=self.settings.batch)

    def encode(self, processed: Processed) -> Encoded:
        payload = processed.payload
        output = self.config.output
        contents = [encode_image(_with_alpha(payload["denoised"], payload["alpha"]),
                                 format=output.format, quality=output.quality)]
        if payload["noisy"] is not None:
            contents.append(encode_image(_with_alpha(payload["noisy"], payload["alpha"])))
        if payload["difference"] is not None:
            contents.append(encode_image(_with_alpha(payload["difference"], None)))
        return Encoded(contents)


class FitDenoiserJob(WholeSetJob):
    """Fit one :class:`~gpupix.ops.denoise.KnnDenoiser` from every input image."""

    name = "fit_denoiser"
    settings_model = FitDenoiserConfig
    report_hints = ReportHints(input_label="training image", output_label="model")

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.noise = noise_model(self.settings.noise)

    def output_relatives(self, item: InputItem) -> list[Path]:
        """Every input goes into the one model file."""
        return [Path(self.settings.model)]

    def run_whole_set(self, items: list[InputItem], output_dir: Path, backend: Backend,
                      advance: Callable[[Row], None]) -> WholeSetResult:
        """Read, fit, score on held-out images, write the model; one row per input."""
        settings = self.settings
        model_path = output_dir / settings.model
        if model_path.exists() and not self.config.output.overwrite:
            rows = [{"input": str(item.path), "output": str(model_path), "status": "skipped",
                     "error": None, "seconds": 0.0} for item in items]
            for row in rows:
                advance(row)
            return WholeSetResult(rows, {"model": {
                "path": str(model_path), "fitted": False,
                "reason": "exists (output.overwrite: false)"}})
        rng = np.random.default_rng(self.config.seed)
        order = rng.permutation(len(items))
        held = int(math.floor(settings.holdout * len(items)))
        if len(items) - held < 2:
            held = 0
        holdout = {int(i) for i in order[:held]}
        training = _Training(self, backend, max(len(items) - held, 1))
        rows: list[Row] = []
        held_images: list[tuple[InputItem, np.ndarray, np.ndarray | None, Row]] = []
        for index, (item, pair, row) in enumerate(self._read(items, output_dir)):
            if row["status"] == "ok":
                try:
                    if index in holdout:
                        row["role"] = "holdout"
                        training.check_shape(item, pair[0])
                        held_images.append((item, pair[0], pair[1], row))
                        continue
                    row["role"] = "train"
                    training.add(item, *pair)
                except ImageError as exc:
                    row.update(status="failed", error=str(exc))
            rows.append(row)
            advance(row)
        if not training.rows:
            errors = [r["error"] for r in rows if r["status"] == "failed"]
            first = f" (first error: {errors[0]})" if errors else ""
            raise ConfigError(f"input.paths: no usable training image among {len(items)}"
                              f"{first}")
        start = time.perf_counter()
        model = training.fit()
        fit_seconds = time.perf_counter() - start
        for item, clean, noisy, row in held_images:
            try:
                row.update(self._score(model, item, clean, noisy, backend))
            except (ImageError, ValueError) as exc:
                row.update(status="failed", error=f"{item.path}: {exc}")
            rows.append(row)
            advance(row)
        data = save_model(model, backend)
        write_atomic(model_path, data, root=output_dir)
        return WholeSetResult(rows, {"model": {
            "path": str(model_path), "bytes": len(data), "fitted": True,
            "fit_seconds": round(fit_seconds, 3), **model.meta}})

    def _read(self, items: list[InputItem], output_dir: Path):
        """Yield (item, (clean, noisy or None), row) in input order, decoding ahead."""
        model_path = str(output_dir / self.settings.model)

        def load(item: InputItem) -> tuple[tuple[np.ndarray, np.ndarray | None], Row]:
            start = time.perf_counter()
            image = decode(item.path)
            noisy = None
            clean = channels_of(image)
            if self.settings.clean is not None:  # the input is the noisy one of a pair
                clean_path = Path(self.settings.clean) / item.relative
                if not clean_path.is_file():
                    raise ImageError(f"{item.path}: no clean image {str(clean_path)!r} in "
                                     "fit_denoiser.clean")
                clean_image = decode(clean_path)
                if clean_image.rgb.shape != image.rgb.shape:
                    raise ImageError(f"{item.path}: {image.rgb.shape[1]}x{image.rgb.shape[0]} "
                                     f"but its clean image is {clean_image.rgb.shape[1]}x"
                                     f"{clean_image.rgb.shape[0]}")
                noisy, clean = image.rgb, clean_image.rgb
                if is_grey(noisy) and is_grey(clean):
                    noisy, clean = noisy[..., :1], clean[..., :1]
                noisy = np.ascontiguousarray(noisy, dtype=np.float32)
                clean = np.ascontiguousarray(clean)
            height, width = image.rgb.shape[:2]
            row = {"input": str(item.path), "output": model_path, "status": "ok",
                   "error": None, "seconds": round(time.perf_counter() - start, 4),
                   "width": width, "height": height, "bytes_in": image.bytes_in,
                   "bytes_out": 0}
            return (clean, noisy), row

        workers = self.config.batch.io_workers
        with ThreadPoolExecutor(workers, thread_name_prefix="gpupix-read") as pool:
            for item, future in read_ahead(items, load, pool=pool,
                                           depth=self.config.batch.size):
                try:
                    pair, row = future.result()
                except (ImageError, OSError, ValueError) as exc:
                    message = str(exc) if isinstance(exc, ImageError) else \
                        f"{item.path}: {type(exc).__name__}: {exc}"
                    yield item, (None, None), {"input": str(item.path), "output": model_path,
                                               "status": "failed", "error": message,
                                               "seconds": 0.0}
                    continue
                yield item, pair, row

    def _score(self, model: KnnDenoiser, item: InputItem, clean: np.ndarray,
               noisy: np.ndarray | None, backend: Backend) -> Row:
        """Metrics of the fitted model on a held-out image (never seen by the fit)."""
        start = time.perf_counter()
        clean_d = backend.to_device(clean)
        if noisy is None:
            noisy_d = self.noise.apply(clean_d, image_rng(self.config.seed, clean), backend)
        else:
            noisy_d = backend.to_device(noisy)
        if clean.shape[2] > model.meta["channels"]:
            raise ImageError("has colour but the training images are grey")
        if clean.shape[2] != model.meta["channels"]:  # a grey image, a colour model
            xp = backend.xp
            clean_d = xp.concat([clean_d] * 3, axis=2)
            noisy_d = xp.concat([noisy_d] * 3, axis=2)
        if model.meta["kind"] == "whole":
            xp = backend.xp
            rows = xp.reshape(noisy_d, (1, -1))
            denoised = xp.reshape(predict(model, rows, backend=backend), noisy_d.shape)
        else:
            denoised = denoise_patchwise(model, noisy_d, backend=backend)
        out = device_uint8(denoised, backend)
        return {"psnr": round(psnr(clean_d, out), 4), "rmse": round(rmse(clean_d, out), 4),
                "psnr_noisy": round(psnr(clean_d, noisy_d), 4),
                "rmse_noisy": round(rmse(clean_d, noisy_d), 4),
                "seconds": round(time.perf_counter() - start, 4)}


class _Training:
    """Training rows gathered with bounded memory (at most ``samples`` rows)."""

    def __init__(self, job: FitDenoiserJob, backend: Backend, images: int) -> None:
        self.job = job
        self.settings = job.settings
        self.backend = backend
        self.images = images
        self.paired = self.settings.clean is not None
        self.copies = 1 if self.paired else self.settings.copies
        self.rng = np.random.default_rng(job.config.seed)
        self.shape: tuple[int, int] | None = None
        self.rows: list[tuple[Array, Array, int]] = []  # (noisy, clean, channels)
        self.seen = 0  # whole kind: images offered to the reservoir

    def check_shape(self, item: InputItem, clean: np.ndarray) -> None:
        if self.settings.kind != "whole":
            return
        shape = clean.shape[:2]
        values = shape[0] * shape[1] * clean.shape[2]
        if values > MAX_WHOLE_VALUES:  # the PCA and the linear map are (values x values)
            raise ImageError(f"{item.path}: {shape[1]}x{shape[0]}x{clean.shape[2]} is "
                             f"{values} values, more than the {MAX_WHOLE_VALUES} a kind: whole "
                             "model takes (64x64 grey); use kind: patch")
        if self.shape is None:
            self.shape = shape
        elif shape != self.shape:
            raise ImageError(f"{item.path}: {shape[1]}x{shape[0]} but the first image is "
                             f"{self.shape[1]}x{self.shape[0]}; kind: whole needs one size "
                             "(use kind: patch for images of any size)")

    def _noisy_copies(self, clean: np.ndarray, noisy: np.ndarray | None) -> list[Array]:
        backend = self.backend
        if noisy is not None:
            return [backend.to_device(noisy)]
        clean_d = backend.to_device(clean)
        rng = image_rng(self.job.config.seed + 1, clean)  # not the held-out images' draws
        return [self.job.noise.apply(clean_d, rng, backend) for _ in range(self.copies)]

    def add(self, item: InputItem, clean: np.ndarray, noisy: np.ndarray | None) -> None:
        self.check_shape(item, clean)
        if self.settings.kind == "whole":
            self._add_whole(clean, noisy)
        else:
            self._add_patches(clean, noisy)

    def _add_whole(self, clean: np.ndarray, noisy: np.ndarray | None) -> None:
        xp = self.backend.xp
        capacity = max(1, self.settings.samples // self.copies)
        self.seen += 1
        slot = len(self.rows)
        if slot >= capacity:  # reservoir sampling: every image is kept with equal odds
            slot = int(self.rng.integers(0, self.seen))
            if slot >= capacity:
                return
        clean_d = self.backend.to_device(clean)
        noisy_rows = xp.stack([xp.reshape(n, (-1,)) for n in self._noisy_copies(clean, noisy)])
        clean_rows = xp.reshape(xp.astype(clean_d, xp.float32), (1, -1))
        entry = (noisy_rows, clean_rows, clean.shape[2])
        if slot == len(self.rows):
            self.rows.append(entry)
        else:
            self.rows[slot] = entry

    def _add_patches(self, clean: np.ndarray, noisy: np.ndarray | None) -> None:
        xp = self.backend.xp
        patch = self.settings.patch
        height, width = clean.shape[:2]
        per_copy = max(1, math.ceil(self.settings.samples / (self.images * self.copies)))
        clean_padded = reflect_pad(xp.astype(self.backend.to_device(clean), xp.float32),
                                   patch // 2)
        for noisy_d in self._noisy_copies(clean, noisy):
            count = min(per_copy, height * width)
            flat = self.rng.choice(height * width, size=count, replace=False)
            rows = self.backend.to_device((flat // width).astype(np.int64))
            cols = self.backend.to_device((flat % width).astype(np.int64))
            noisy_padded = reflect_pad(noisy_d, patch // 2)
            self.rows.append((patches_at(noisy_padded, patch, rows, cols),
                              patches_at(clean_padded, patch, rows, cols), clean.shape[2]))

    def fit(self) -> KnnDenoiser:
        xp = self.backend.xp
        settings = self.settings
        channels = max(c for _, _, c in self.rows)
        noisy_parts, clean_parts = [], []
        for noisy, clean, c in self.rows:
            if c != channels:  # a grey image in a colour set: repeat its channel
                noisy, clean = _grey_rows_to_rgb(xp, noisy), _grey_rows_to_rgb(xp, clean)
            if settings.kind == "whole":
                clean = xp.concat([clean] * noisy.shape[0], axis=0)
            noisy_parts.append(noisy)
            clean_parts.append(clean)
        noisy_all = xp.concat(noisy_parts, axis=0)
        clean_all = xp.concat(clean_parts, axis=0)
        target = None
        meta: dict[str, Any] = {"kind": settings.kind, "channels": channels,
                                "noise": None if self.paired else self.job.noise.describe(),
                                "paired": self.paired, "seed": self.job.config.seed}
        if settings.kind == "whole":
            meta.update(height=self.shape[0], width=self.shape[1])
        else:
            patch = settings.patch
            centre = (patch // 2) * patch + patch // 2
            target = self.backend.to_device(np.arange(centre * channels,
                                                      (centre + 1) * channels))
            meta.update(patch=patch)
        components = settings.components or (64 if settings.kind == "whole" else 16)
        return fit_knn_denoiser(noisy_all, clean_all, components=components,
                                k=settings.k, weights=settings.weights, h=settings.h,
                                ridge=settings.ridge, target_columns=target, meta=meta)


def _grey_rows_to_rgb(xp: Any, rows: Array) -> Array:
    """Rows of (…, 1)-channel values in (position, channel) order -> 3 channels."""
    count = rows.shape[0]
    expanded = xp.reshape(rows, (count, -1, 1))
    return xp.reshape(xp.concat([expanded] * 3, axis=2), (count, -1))
