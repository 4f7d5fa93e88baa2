"""The quantize job: image -> palette PNG, with size accounting and quality metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gpupix.backends.base import Backend
from gpupix.config import JobConfig
from gpupix.io import DecodedImage, InputItem, encode_palette_png
from gpupix.jobs.base import Processed
from gpupix.ops.metrics import compute_metrics
from gpupix.ops.quantize import quantize

# CIEDE2000 and SSIM are costly per pixel; above this many pixels they are measured on a
# regular grid of pixels (every n-th row and column), which keeps them unbiased and cheap.
METRIC_PIXELS = 1 << 20


def count_unique_colours(rgb: np.ndarray, visible: np.ndarray | None = None) -> int:
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


class QuantizeJob:
    name = "quantize"

    def __init__(self, config: JobConfig) -> None:
        self.config = config
        self.settings = config.quantize

    def output_relatives(self, item: InputItem) -> list[Path]:
        return [item.relative.with_suffix(".png")]

    def process(self, image: DecodedImage, backend: Backend) -> Processed:
        xp = backend.xp
        settings = self.settings
        rgb_host = np.ascontiguousarray(image.rgb)
        transparent = image.pixels[..., 3] == 0 if image.has_alpha else None
        if transparent is not None and not transparent.any():
            transparent = None
        visible = None if transparent is None else ~transparent
        if visible is not None and not visible.any():  # nothing to fit: one transparent entry
            palette = np.zeros((1, 3), np.uint8)
            indices = np.zeros(rgb_host.shape[:2], np.uint8)
            return self._result(image, rgb_host, palette, indices, np.zeros(1, np.uint8), visible,
                                backend)
        k = settings.k - (transparent is not None)  # one entry is reserved for transparency
        rgb = backend.to_device(rgb_host)
        weights = None if visible is None else backend.to_device(visible.reshape(-1))
        result = quantize(rgb, k=k, backend=backend, color_space=settings.color_space,
                          seed=self.config.seed, max_iter=settings.max_iter, weights=weights)
        palette = backend.to_host(result.palette)
        indices = backend.to_host(result.indices)
        alpha = None
        if transparent is not None:
            palette = np.concatenate([np.zeros((1, 3), np.uint8), palette])
            indices = np.where(transparent, 0, indices.astype(np.uint16) + 1).astype(np.uint8)
            alpha = np.zeros(1, np.uint8)  # tRNS: entry 0 transparent, the rest opaque
        del xp
        return self._result(image, rgb_host, palette, indices, alpha, visible, backend)

    def _result(self, image: DecodedImage, rgb: np.ndarray, palette: np.ndarray,
                indices: np.ndarray, alpha: np.ndarray | None, visible: np.ndarray | None,
                backend: Backend) -> Processed:
        metrics: dict[str, object] = {
            "unique_colours_in": count_unique_colours(rgb, visible),
            "colours_out": int(len(palette)),
        }
        if image.has_alpha and (image.pixels[..., 3] % 255 != 0).any():
            metrics["notes"] = "partial alpha flattened to opaque"
        if self.config.metrics:
            step = metric_grid(rgb.shape)
            reference = rgb[::step, ::step]
            quantized = palette[indices[::step, ::step]]
            if visible is not None:  # transparent pixels are not judged
                quantized = np.where(visible[::step, ::step, None], quantized, reference)
            values = compute_metrics(self.config.metrics, backend.to_device(reference),
                                     backend.to_device(np.ascontiguousarray(quantized)))
            metrics.update({name: round(value, 4) for name, value in values.items()})
        payload = {"indices": indices, "palette": palette, "alpha": alpha}
        return Processed(payload=payload, metrics=metrics)

    def encode(self, processed: Processed) -> list[bytes]:
        p = processed.payload
        return [encode_palette_png(p["indices"], p["palette"], alpha=p["alpha"])]
