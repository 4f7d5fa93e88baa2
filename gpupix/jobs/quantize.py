"""The quantize job: image -> palette PNG, with size accounting and quality metrics.

Per image: the palette is fitted on the image's colour histogram (``k`` fixed, or ``k:
auto``: the fewest colours that reach ``target``), or it is one palette for the whole input
set (``palette: shared``, fitted in :meth:`QuantizeJob.prepare` on a histogram merged over
every input), or a palette given back from a file. Pixels are assigned the nearest entry,
or dithered (Floyd-Steinberg, on the host). Images with partial transparency are fitted in
premultiplied RGBA (:mod:`gpupix.ops.alpha`). ``min_quality`` refuses images that miss it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from gpupix.backends.base import Backend
from gpupix.errors import ImageError, QualityError
from gpupix.io import (
    OUTPUT_SUFFIXES,
    DecodedImage,
    InputItem,
    decode,
    encode_palette_image,
    read_ahead,
    write_atomic,
)
from gpupix.jobs.base import Encoded, ImageJob, Processed
from gpupix.jobs.hints import ReportHints
from gpupix.ops.alpha import quantize_rgba
from gpupix.ops.color import ciede2000, rgb_to_lab
from gpupix.ops.dither import floyd_steinberg
from gpupix.ops.metrics import compute_metrics, delta_e, palette_metrics, psnr_from_mse
from gpupix.ops.palette_search import (
    ROUGH_BITS,
    HistogramAccumulator,
    smallest_k,
    smallest_k_by_runs,
    smallest_k_histogram,
    sweep_k,
    total_square,
)
from gpupix.ops.quantize import assign, color_histogram, fit_palette, quantize
from gpupix.palette_io import load_palette, palette_json, palette_png
from gpupix.settings import QualityTarget, Section, shown

# CIEDE2000 and SSIM are costly per pixel; above this many pixels they are measured on a
# regular grid of pixels (every n-th row and column), which keeps them unbiased and cheap.
METRIC_PIXELS = 1 << 20
PALETTE_JSON = "palette.json"
_ON_DEVICE = "_on_device"  # an extra's key that never reaches a row: the device copies
PALETTE_PNG = "palette.png"


class QuantizeConfig(Section):
    k: int | Literal["auto"] = 16
    color_space: Literal["rgb", "lab", "oklab", "rgb_lab"] = "rgb_lab"
    max_iter: int = Field(100, ge=1, le=10_000)
    target: QualityTarget | None = None
    min_quality: QualityTarget | None = None
    max_k: int = 256
    palette: str = "per_image"
    dither: Literal["none", "floyd_steinberg"] = "none"
    dither_strength: float = Field(1.0, ge=0.0, le=1.0)
    sweep: bool = False
    skip_if_larger: bool = False

    @field_validator("k", "max_k")
    @classmethod
    def _k_fits_a_palette(cls, k: int | str) -> int | str:
        if k != "auto" and not 2 <= k <= 256:  # type: ignore[operator]
            raise ValueError("must be 2..256 (a palette PNG holds at most 256 colours), "
                             f"got {shown(k)}")
        return k

    @field_validator("k", mode="before")
    @classmethod
    def _k_is_auto_or_whole(cls, k: Any) -> Any:
        # one message for the union int | "auto", not one per member
        if k != "auto" and (isinstance(k, bool) or not isinstance(k, int)):
            raise ValueError("must be auto or a whole number 2..256")
        return k

    @model_validator(mode="before")
    @classmethod
    def _dither_mapping(cls, data: Any) -> Any:
        # `dither: {floyd_steinberg: 0.8}` is `dither: floyd_steinberg` at strength 0.8
        if isinstance(data, dict) and isinstance(data.get("dither"), dict):
            dither = data["dither"]
            if len(dither) != 1:
                raise ValueError("dither: expected one method and its strength, "
                                 f"got {shown(dither)}")
            (method, strength), = dither.items()
            data = {**data, "dither": method, "dither_strength": strength}
        return data

    @field_validator("palette")
    @classmethod
    def _palette_source(cls, palette: str) -> str:
        if palette not in ("per_image", "shared") and not palette.endswith((".json", ".png")):
            raise ValueError("must be per_image, shared, or the path of a palette.json or "
                             "palette.png to reuse")
        return palette

    @model_validator(mode="after")
    def _consistent(self) -> QuantizeConfig:
        if self.k == "auto" and self.target is None:
            raise ValueError("k: auto needs a target, e.g. target: {psnr: 38}")
        if self.k != "auto" and self.target is not None:
            raise ValueError(f"target is used only with k: auto, but k is {self.k}")
        if self.palette not in ("per_image", "shared") and (self.k == "auto" or self.sweep):
            raise ValueError(f"palette {shown(self.palette)} is a fixed palette: k: auto and sweep "
                             "do not apply")
        return self

    @property
    def fixed_palette(self) -> str | None:
        """The path of a palette to reuse, or None when the palette is fitted here."""
        return None if self.palette in ("per_image", "shared") else self.palette

    def resolve_paths(self, resolve: Callable[[str, str], str], name: str) -> QuantizeConfig:
        if self.fixed_palette is None:  # per_image, shared: names, not paths
            return self
        return self.model_copy(update={"palette": resolve(self.palette, f"{name}.palette")})

    def check_paths(self, name: str) -> None:
        if self.fixed_palette is not None:  # read as run reads it: ConfigError naming it
            load_palette(self.fixed_palette, field=f"{name}.palette")



def count_unique_colors(rgb: np.ndarray, visible: np.ndarray | None = None) -> int:
    """Number of distinct RGB colours, through a 2**24 presence table (no sort)."""
    codes = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    if visible is not None:
        codes = codes[visible]
    seen = np.zeros(1 << 24, dtype=bool)
    seen[codes.ravel()] = True
    return int(np.count_nonzero(seen))


def metric_grid(shape: tuple[int, ...]) -> int:
    """Stride that brings an image of ``shape`` to at most :data:`METRIC_PIXELS` pixels."""
    pixels = shape[0] * shape[1]
    return max(1, int(np.ceil(np.sqrt(pixels / METRIC_PIXELS))))


def size_accounting(height: int, width: int, colours: int, *, alpha_in: bool,
                    alpha_out: bool) -> dict[str, float | int]:
    """Bits of the raw image against palette + indices (the classic palette-compression count).

    A palette entry costs 24 bits (32 with alpha), an index ceil(log2(colours)) bits (at
    least 1), a raw pixel 24 bits (32 when the input has alpha). For 128 x 128 pixels and 16
    colours: 16 x 24 + 16,384 x 4 = 65,920 bits against 393,216.
    """
    pixels = height * width
    bits_per_index = max(1, math.ceil(math.log2(max(colours, 1))))
    bits_palette = colours * (32 if alpha_out else 24)
    bits_indices = pixels * bits_per_index
    bits_raw = pixels * (32 if alpha_in else 24)
    return {"bits_palette": bits_palette, "bits_per_index": bits_per_index,
            "bits_indices": bits_indices, "bits_raw": bits_raw,
            "theoretical_ratio": round(bits_raw / (bits_palette + bits_indices), 4)}


def add_transparent_entry(palette: np.ndarray, alpha: np.ndarray | None = None, *,
                          last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``palette`` with one fully transparent entry (black, alpha 0) first, or last to keep
    a given palette's indices; the other entries keep their alpha (opaque when None)."""
    alpha = np.full(len(palette), 255, np.uint8) if alpha is None else np.asarray(alpha, np.uint8)
    clear_colour, clear_alpha = np.zeros((1, 3), np.uint8), np.zeros(1, np.uint8)
    if last:
        return np.concatenate([palette, clear_colour]), np.concatenate([alpha, clear_alpha])
    return np.concatenate([clear_colour, palette]), np.concatenate([clear_alpha, alpha])


def premultiplied_rgb(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 -> (H, W, 3) uint8 colour x alpha / 255: the image over black (host)."""
    values = rgba[..., :3].astype(np.float32) * (rgba[..., 3:4].astype(np.float32) / 255.0)
    return np.rint(values).astype(np.uint8)


def image_quality(metric: str, reference: np.ndarray, result: np.ndarray,
                  visible: np.ndarray | None) -> float:
    """``psnr`` over every (visible) pixel, or mean CIEDE2000 on the metric grid (host)."""
    if metric == "psnr":
        a = reference.astype(np.float64)
        b = result.astype(np.float64)
        squared = ((a - b) ** 2).mean(axis=-1)
        mse = float(squared[visible].mean() if visible is not None else squared.mean())
        return psnr_from_mse(mse)
    step = metric_grid(reference.shape)
    a, b = reference[::step, ::step], result[::step, ::step]
    if visible is None:  # one CIEDE2000 per distinct pair of colours
        return delta_e(a, b)
    difference = ciede2000(rgb_to_lab(a.astype(np.float32)), rgb_to_lab(b.astype(np.float32)))
    if visible is not None:
        return float(difference[visible[::step, ::step]].mean())
    return float(difference.mean())


class QuantizeJob(ImageJob):
    name = "quantize"
    settings_model = QuantizeConfig
    exact_colors = True  # a palette image: a lossy format would add colours
    own_files = (PALETTE_JSON, PALETTE_PNG)  # palette: shared writes them

    report_hints = ReportHints(input_label="original", output_label="quantized",
                               diff_against_input=True,
                               columns=("psnr", "delta_e", "ssim", "k", "colors_out",
                                        "bytes_ratio"),
                               marks=("colors_out",))

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        # (colours (m, 3) uint8, alpha (m,) uint8 or None): one palette for every image
        self.fixed: tuple[np.ndarray, np.ndarray | None] | None = None

    def output_relatives(self, item: InputItem) -> list[Path]:
        return [item.relative.with_suffix(OUTPUT_SUFFIXES[self.config.output.format])]

    def recipe_files(self, output_dir: Path) -> list[Path]:
        """The palette every image is mapped onto: given, or written by ``prepare``."""
        if self.settings.palette == "per_image":
            return []
        return [Path(self.settings.fixed_palette or output_dir / PALETTE_JSON)]

    # ---------------------------------------------------------------- shared palette
    def prepare(self, items: list[InputItem], backend: Backend) -> dict[str, Any] | None:
        """``palette: shared``: fit one palette on a histogram merged over every input
        (``palette: path``: read it).

        One streamed pass (a reader pool decodes ahead, at most ``batch.io_workers`` images
        held): each image adds its bin counts and colour sums to fixed-size tables, so memory
        does not grow with the number of images. Unreadable images are left out here; they
        fail in the per-image pass. Writes ``palette.json`` and ``palette.png``.
        """
        if self.settings.fixed_palette is not None:  # a bad file: ConfigError, exit 2
            colours, alpha = load_palette(self.settings.fixed_palette)
            return {"colours": colours, "alpha": alpha}
        if self.settings.palette != "shared":
            return None
        settings = self.settings
        accumulator = HistogramAccumulator()
        transparent_seen = False
        workers = self.config.batch.io_workers
        with ThreadPoolExecutor(workers, thread_name_prefix="gpupix-prepare") as pool:
            for _item, future in read_ahead(items, _decode_or_none, pool=pool, depth=workers):
                image = future.result()
                if image is None:
                    continue
                visible = None
                if image.has_alpha:
                    visible = image.pixels[..., 3] > 0
                    transparent_seen |= not visible.all()
                rgb = backend.to_device(np.ascontiguousarray(image.rgb))
                weights = None if visible is None else backend.to_device(visible.reshape(-1))
                histogram = color_histogram(rgb, bits=accumulator.bits, weights=weights)
                accumulator.add(histogram, backend, total_square(rgb, weights))
                del image, rgb, histogram
        if accumulator.images == 0:
            raise ImageError("palette: shared: no input image could be read to fit a palette")
        merged = accumulator.histogram(backend)
        reserve = int(transparent_seen)
        info: dict[str, Any] = {"images": accumulator.images,
                                "color_space": settings.color_space}
        if settings.k == "auto":
            target = settings.target
            assert target is not None
            result = smallest_k_histogram(
                merged, metric=target.metric, goal=target.value, backend=backend,
                square_sum=accumulator.square_sum, max_k=settings.max_k - reserve,
                color_space=settings.color_space, seed=self.config.seed,
                max_iter=settings.max_iter)
            palette = backend.to_host(result.palette)
            info.update({"target": str(target), "target_met": result.met,
                         "estimated_quality": _round(result.quality)})
        else:
            palette = backend.to_host(fit_palette(
                merged, k=settings.k - reserve, backend=backend,
                color_space=settings.color_space, seed=self.config.seed,
                max_iter=settings.max_iter))
        alpha = None
        if reserve:
            palette, alpha = add_transparent_entry(palette)
        output_dir = Path(self.config.output.dir)
        write_atomic(output_dir / PALETTE_JSON, palette_json(palette, alpha, **info),
                     root=output_dir)
        write_atomic(output_dir / PALETTE_PNG, palette_png(palette, alpha), root=output_dir)
        return {"colours": palette, "alpha": alpha}

    def use_state(self, state: dict[str, Any] | None) -> None:
        """The palette every image is mapped onto (shared or given)."""
        if state is None:
            return
        self.fixed = (np.asarray(state["colours"], np.uint8),
                      None if state["alpha"] is None else np.asarray(state["alpha"], np.uint8))

    # ---------------------------------------------------------------- one image
    def process(self, item: InputItem | None, image: DecodedImage, backend: Backend
                ) -> Processed:
        rgb = np.ascontiguousarray(image.rgb)
        alpha_channel = image.pixels[..., 3] if image.has_alpha else None
        transparent = None if alpha_channel is None else alpha_channel == 0
        if transparent is not None and not transparent.any():
            transparent = None
        visible = None if transparent is None else ~transparent
        partial = alpha_channel is not None and bool(
            ((alpha_channel > 0) & (alpha_channel < 255)).any())
        notes: list[str] = []  # the executor adds the decoder's own notes
        extra: dict[str, Any] = {}
        if visible is not None and not visible.any():  # nothing to fit: one transparent entry
            palette, alpha = add_transparent_entry(np.zeros((0, 3), np.uint8))
            indices = np.zeros(rgb.shape[:2], np.uint8)
            return self._result(image, rgb, palette, indices, alpha, visible, backend, notes,
                                extra, partial=False)
        if self.fixed is not None:
            palette, alpha, indices = self._apply_fixed(rgb, visible, backend, notes)
            if partial:
                notes.append("partial alpha flattened to opaque (fixed palette)")
                partial = False
        elif partial:
            palette, alpha, indices = self._fit_rgba(image.pixels, visible, backend, notes,
                                                     extra)
        else:
            palette, alpha, indices = self._fit_rgb(rgb, visible, backend, notes, extra)
            on_device = extra.pop(_ON_DEVICE, None)
            return self._result(image, rgb, palette, indices, alpha, visible, backend, notes,
                                extra, partial=partial, on_device=on_device)
        return self._result(image, rgb, palette, indices, alpha, visible, backend, notes, extra,
                            partial=partial)

    def _fit_rgb(self, rgb_host: np.ndarray, visible: np.ndarray | None, backend: Backend,
                 notes: list[str], extra: dict[str, Any]
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        settings, seed = self.settings, self.config.seed
        reserve = int(visible is not None)  # one entry is reserved for transparency
        rgb = backend.to_device(rgb_host)
        weights = None if visible is None else backend.to_device(visible.reshape(-1))
        options = {"backend": backend, "color_space": settings.color_space, "seed": seed,
                   "max_iter": settings.max_iter, "weights": weights}
        if settings.k == "auto":
            target = settings.target
            assert target is not None
            search = smallest_k(rgb, metric=target.metric, goal=target.value,
                                max_k=settings.max_k - reserve, **options)
            palette_dev, indices_dev = search.palette, search.indices
            extra.update({"target": str(target), "target_met": search.met,
                          "k_chosen": int(search.k),
                          "search_fits": {"rough": len(search.tried) - search.full_fits,
                                          "full": search.full_fits},
                          "search": [[k, _round(q)] for k, q, kind in search.tried
                                     if kind == "full"]})
            if not search.met:
                notes.append(f"target {target} not reached with max_k {settings.max_k} "
                             f"(achieved {search.quality:.4g})")
        else:
            result = quantize(rgb, k=settings.k - reserve, **options)
            palette_dev, indices_dev = result.palette, result.indices
        if settings.sweep:
            histogram = color_histogram(rgb, bits=ROUGH_BITS, weights=weights)
            extra["sweep"] = sweep_k(histogram, backend=backend,
                                     square_sum=total_square(rgb, weights),
                                     max_k=settings.max_k - reserve,
                                     color_space=settings.color_space, seed=seed,
                                     max_iter=settings.max_iter)
        palette = backend.to_host(palette_dev)
        if self._dithering:
            # host-side: on cuda the palette was copied back, and the image is the host copy
            indices = floyd_steinberg(rgb_host, palette, strength=settings.dither_strength,
                                      mask=visible)
        else:
            indices_dev = backend.xp.reshape(indices_dev, rgb_host.shape[:2])
            indices = backend.to_host(indices_dev)
            if visible is None:  # the metrics read these copies: nothing goes up again
                extra[_ON_DEVICE] = (rgb, palette_dev, indices_dev)
        return self._with_transparent_entry(palette, indices, visible)

    @property
    def _dithering(self) -> bool:
        return self.settings.dither == "floyd_steinberg" and self.settings.dither_strength > 0

    @staticmethod
    def _with_transparent_entry(palette: np.ndarray, indices: np.ndarray,
                                visible: np.ndarray | None
                                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        if visible is None:
            return palette, None, indices
        palette, alpha = add_transparent_entry(palette)  # tRNS: entry 0 transparent
        indices = np.where(visible, indices.astype(np.uint16) + 1, 0).astype(np.uint8)
        return palette, alpha, indices

    def _apply_fixed(self, rgb_host: np.ndarray, visible: np.ndarray | None, backend: Backend,
                     notes: list[str]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Map an image onto the shared or given palette: opaque entries take the visible
        pixels, the first fully transparent entry takes the transparent ones."""
        assert self.fixed is not None
        palette, alpha = self.fixed
        opaque = np.arange(len(palette)) if alpha is None else np.nonzero(alpha == 255)[0]
        if len(opaque) == 0:
            raise ImageError("the palette has no opaque entry to map colours to")
        clear = [] if alpha is None else np.nonzero(alpha == 0)[0]
        if visible is not None and len(clear) == 0:
            if len(palette) >= 256:
                raise ImageError("the image has transparent pixels but the palette has no "
                                 "transparent entry and no room for one")
            notes.append("transparent entry appended to the palette")
            palette, alpha = add_transparent_entry(palette, alpha, last=True)
            clear = [len(palette) - 1]
        entries = palette[opaque]
        if self._dithering:  # host-side, as for fitted palettes
            local = floyd_steinberg(rgb_host, entries, strength=self.settings.dither_strength,
                                    mask=visible)
        else:
            rgb = backend.to_device(rgb_host)
            weights = None if visible is None else backend.to_device(visible.reshape(-1))
            histogram = color_histogram(rgb, weights=weights)
            labels = assign(histogram, backend.to_device(entries), backend=backend,
                            color_space=self.settings.color_space)
            local = backend.to_host(labels).reshape(rgb_host.shape[:2])
        indices = opaque.astype(np.uint8)[local]
        if visible is not None:
            indices = np.where(visible, indices, np.uint8(clear[0])).astype(np.uint8)
        return palette, alpha, indices

    def _fit_rgba(self, pixels: np.ndarray, visible: np.ndarray | None, backend: Backend,
                  notes: list[str], extra: dict[str, Any]
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        settings = self.settings
        reserve = int(visible is not None)
        if settings.dither != "none":
            notes.append("partial alpha: not dithered")
        if settings.sweep:
            notes.append("partial alpha: no sweep")
        weights = None if visible is None else backend.to_device(visible.reshape(-1))
        rgba = backend.to_device(np.ascontiguousarray(pixels))

        def run(k: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, float]:
            result = quantize_rgba(rgba, k=k, backend=backend, seed=self.config.seed,
                                   max_iter=settings.max_iter, weights=weights)
            colours, alpha = backend.to_host(result.colours), backend.to_host(result.alpha)
            indices = backend.to_host(result.indices)
            quality = math.nan
            if settings.target is not None:  # judged as the metrics are: premultiplied colour
                quality = image_quality(
                    settings.target.metric, premultiplied_rgb(pixels),
                    premultiplied_rgb(np.dstack([colours[indices], alpha[indices]])), visible)
            return (colours, alpha), indices, quality

        if settings.k == "auto":
            target = settings.target
            assert target is not None
            search = smallest_k_by_runs(run, metric=target.metric, goal=target.value,
                                        max_k=settings.max_k - reserve)
            (colours, alpha), indices = search.palette, search.indices
            extra.update({"target": str(target), "target_met": search.met,
                          "k_chosen": int(search.k),
                          "search_fits": {"rough": 0, "full": search.full_fits},
                          "search": [[k, _round(q)] for k, q, _ in search.tried]})
            if not search.met:
                notes.append(f"target {target} not reached with max_k {settings.max_k} "
                             f"(achieved {search.quality:.4g})")
        else:
            (colours, alpha), indices, _ = run(settings.k - reserve)
        if visible is not None:
            colours = np.concatenate([np.zeros((1, 3), np.uint8), colours])
            alpha = np.concatenate([np.zeros(1, np.uint8), alpha])
            indices = np.where(visible, indices.astype(np.uint16) + 1, 0).astype(np.uint8)
        return colours, alpha, indices

    # ---------------------------------------------------------------- metrics and sizes
    def _result(self, image: DecodedImage, rgb: np.ndarray, palette: np.ndarray,
                indices: np.ndarray, alpha: np.ndarray | None, visible: np.ndarray | None,
                backend: Backend, notes: list[str], extra: dict[str, Any], *, partial: bool,
                on_device: tuple[Any, Any, Any] | None = None) -> Processed:
        """Metrics, sizes and the payload. ``on_device``: the image, palette and indices
        already on the device (opaque images, not dithered), so the metrics move nothing."""
        settings = self.settings
        height, width = rgb.shape[:2]
        metrics: dict[str, Any] = {
            "unique_colors_in": count_unique_colors(rgb, visible),
            "colors_out": int(len(palette)),
        }
        metrics.update(size_accounting(height, width, len(palette), alpha_in=image.has_alpha,
                                       alpha_out=alpha is not None))
        if partial:
            # judged as seen: colour premultiplied by alpha (composited over black)
            assert alpha is not None
            reference_rgb = premultiplied_rgb(image.pixels)
            result_rgb = premultiplied_rgb(np.dstack([palette[indices], alpha[indices]]))
            alpha_error = image.pixels[..., 3].astype(np.float64) - alpha[indices]
            metrics["alpha_rmse"] = round(float(np.sqrt(np.mean(alpha_error**2))), 4)
            notes.append("metrics on colour premultiplied by alpha")
        else:
            reference_rgb = rgb
            result_rgb = None  # palette[indices], built on the host only where needed
            if visible is not None:  # transparent pixels are not judged
                result_rgb = np.where(visible[..., None], palette[indices], rgb)
        if self.config.metrics:
            step = metric_grid(rgb.shape)
            reference_grid = None
            if on_device is None:
                reference_grid = backend.to_device(
                    np.ascontiguousarray(reference_rgb[::step, ::step]))
            if partial or visible is not None:  # pixels that are not palette[indices]
                values = compute_metrics(
                    self.config.metrics, reference_grid,
                    backend.to_device(np.ascontiguousarray(result_rgb[::step, ::step])),
                    backend=backend)
            elif on_device is not None:  # from (colour, index) pairs, on the device copies
                rgb_dev, palette_dev, indices_dev = on_device
                values = palette_metrics(self.config.metrics, rgb_dev[::step, ::step, :],
                                         palette_dev, indices_dev[::step, ::step],
                                         backend=backend)
            else:  # from (colour, index) pairs: no result image but SSIM's
                values = palette_metrics(
                    self.config.metrics, reference_grid, backend.to_device(palette),
                    backend.to_device(np.ascontiguousarray(indices[::step, ::step])),
                    backend=backend)
            if visible is not None:  # transparent pixels are not judged, by any metric
                for name in ("psnr", "delta_e"):
                    if name in values:
                        values[name] = image_quality(name, reference_rgb, result_rgb, visible)
                if "rmse" in values:
                    psnr_visible = image_quality("psnr", reference_rgb, result_rgb, visible)
                    values["rmse"] = 255.0 * 10 ** (-psnr_visible / 20)
            metrics.update({name: round(value, 4) for name, value in values.items()})
        judged_by = settings.target or settings.min_quality
        if judged_by is not None:  # the output's own quality, measured on its pixels
            if result_rgb is None:
                result_rgb = palette[indices]
            metrics["quality_metric"] = judged_by.metric
            metrics["quality"] = _round(image_quality(judged_by.metric, reference_rgb,
                                                      result_rgb, visible))
            if judged_by.metric in metrics:  # one number: what is reported is what is judged
                metrics[judged_by.metric] = metrics["quality"]
        metrics.update(extra)
        if notes:
            metrics["notes"] = "; ".join(notes)
        if settings.min_quality is not None:
            self._check_min_quality(image, settings.min_quality, reference_rgb, result_rgb,
                                    visible, metrics)
        payload = {"indices": indices, "palette": palette, "alpha": alpha,
                   "bytes_in": image.bytes_in, "path": image.path}
        return Processed(payload=payload, metrics=metrics)

    def _check_min_quality(self, image: DecodedImage, minimum: QualityTarget,
                           reference: np.ndarray, result: np.ndarray,
                           visible: np.ndarray | None, metrics: dict[str, Any]) -> None:
        achieved = metrics.get("quality")
        if achieved is None or metrics.get("quality_metric") != minimum.metric:
            achieved = _round(image_quality(minimum.metric, reference, result, visible))
        if not minimum.met_by(achieved):
            where = image.path if image.path is not None else "image"
            raise QualityError(
                f"{where}: {minimum.metric} {achieved:.4g} misses min_quality {minimum} "
                f"with {metrics['colors_out']} colours; not written",
                fields={"quality_failed": True, "quality_metric": minimum.metric,
                        "quality": achieved, "colors_out": metrics["colors_out"]})

    def encode(self, processed: Processed) -> Encoded:
        p = processed.payload
        data = encode_palette_image(p["indices"], p["palette"], alpha=p["alpha"],
                                    format=self.config.output.format)
        metrics: dict[str, Any] = {}
        notes = processed.metrics.get("notes")
        path = p["path"]
        if self.settings.skip_if_larger and len(data) > p["bytes_in"]:
            suffix = OUTPUT_SUFFIXES[self.config.output.format]
            if path is not None and path.suffix.lower() == suffix:
                metrics["kept_input"] = True
                metrics["palette_png_bytes"] = len(data)
                note = (f"palette PNG ({len(data)} bytes) is larger than the input; "
                        "input kept (the quality metrics describe the palette PNG)")
                metrics["notes"] = "; ".join(filter(None, [notes, note]))
                data = Path(path).read_bytes()
            else:
                note = (f"skip_if_larger keeps only {suffix} inputs (the output's format); "
                        "palette image written")
                metrics["notes"] = "; ".join(filter(None, [notes, note]))
        metrics["actual_ratio"] = round(p["bytes_in"] / max(len(data), 1), 4)
        return Encoded([data], metrics)


def _round(value: float) -> float:
    return round(value, 4) if math.isfinite(value) else value


def _decode_or_none(item: InputItem) -> DecodedImage | None:
    try:
        return decode(item.path)
    except (ImageError, OSError, ValueError, MemoryError):
        return None

