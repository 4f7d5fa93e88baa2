"""The inpaint job: fill the missing pixels of each image from its nearest known pixels.

Which pixels are missing comes from ``inpaint.mask``: a mask file beside the image (white =
missing), the transparent pixels, or a key colour; ``auto`` takes the first of these that
exists. An image with no missing pixel passes through unchanged, with a note.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gpupix.backends.base import Array, Backend
from gpupix.config import JobConfig
from gpupix.errors import ImageError
from gpupix.io import (
    IMAGE_SUFFIXES,
    OUTPUT_SUFFIXES,
    DecodedImage,
    InputItem,
    _glob_base,
    decode,
    encode_image,
    is_glob,
    open_image,
)
from gpupix.jobs.base import Processed
from gpupix.jobs.hints import ReportHints
from gpupix.jobs.quantize import metric_grid
from gpupix.ops.inpaint import choose_k, inpaint
from gpupix.ops.metrics import compute_metrics, psnr


def read_mask(mask_path: Path, image_path: Path, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool, True where the mask file is light (> 127 after conversion to grey).

    The mask is an untrusted picture like the image: it is opened by
    :func:`gpupix.io.open_image` (decoder allowlist, decompression bomb guard) and its
    declared size is compared with the image's before any pixel is decoded. Raises
    :class:`ImageError` (this image fails, the batch goes on).
    """
    with open_image(mask_path) as (mask, _):
        size = mask.size
        if size != (shape[1], shape[0]):
            raise ImageError(
                f"{mask_path}: mask is {size[0]}x{size[1]} but its image "
                f"{image_path.name} is {shape[1]}x{shape[0]}; they must be the same size")
        grey = np.asarray(mask.convert("L"))
    return grey > 127


def keyed_pixels(rgb: np.ndarray, key: tuple[int, int, int], tolerance: float) -> np.ndarray:
    """(H, W) bool: pixels within ``tolerance`` (RGB distance) of the key colour."""
    difference = rgb.astype(np.int32) - np.asarray(key, np.int32)
    return np.einsum("hwc,hwc->hw", difference, difference) <= tolerance * tolerance


class InpaintJob:
    name = "inpaint"

    report_hints = ReportHints(input_label="damaged", output_label="repaired",
                               key_colour_panel=True,
                               columns=("psnr_missing", "psnr", "ssim", "k", "missing_pixels"),
                               marks=("missing_pixels",))

    def __init__(self, config: JobConfig) -> None:
        self.config = config
        self.settings = config.inpaint

    def accepts(self, item: InputItem) -> bool:
        """Mask files found among the inputs are masks, not images to repair."""
        return not item.path.name.endswith(self.settings.mask_suffix)

    def output_relatives(self, item: InputItem) -> list[Path]:
        return [item.relative.with_suffix(OUTPUT_SUFFIXES[self.config.output.format])]

    def find_missing(self, image: DecodedImage) -> tuple[np.ndarray, str]:
        """The (H, W) missing-pixel mask and where it came from (file, alpha, key_color)."""
        s = self.settings
        shape = image.pixels.shape[:2]
        path = image.path or Path("image")
        mask_path = path.with_name(path.stem + s.mask_suffix)
        if s.mask == "file" or (s.mask == "auto" and mask_path.is_file()):
            if not mask_path.is_file():
                raise ImageError(f"{path}: inpaint.mask is 'file' but {mask_path.name} "
                                 "is not beside it")
            return read_mask(mask_path, path, shape), "file"
        if s.mask == "alpha" and not image.has_alpha:
            raise ImageError(f"{path}: inpaint.mask is 'alpha' but the image has no alpha "
                             "channel")
        if image.has_alpha and s.mask in ("alpha", "auto"):
            transparent = image.pixels[..., 3] == 0
            if s.mask == "alpha" or transparent.any():
                return transparent, "alpha"
        return keyed_pixels(image.rgb, s.key_rgb, s.key_tolerance), "key_color"

    def process(self, image: DecodedImage, backend: Backend) -> Processed:
        s = self.settings
        missing, source = self.find_missing(image)
        rgb = np.ascontiguousarray(image.rgb)
        n_missing = int(missing.sum())
        metrics: dict[str, object] = {"mask_source": source, "missing_pixels": n_missing,
                                      "missing_fraction": round(n_missing / missing.size, 6)}
        if n_missing == 0:
            metrics["notes"] = (f"no missing pixel found (mask: {s.mask}, looked at: "
                                f"{source}); copied unchanged")
            result = rgb
            device_result = device_missing = None
        else:
            # transparent pixels' colours mean nothing: they are never neighbours
            usable = ~missing & (image.pixels[..., 3] > 0) if image.has_alpha else ~missing
            if not usable.any():
                raise ImageError(f"{image.path}: every pixel is missing or transparent "
                                 f"({source}); nothing to inpaint from")
            device_rgb = backend.to_device(rgb)
            device_missing = backend.to_device(missing)
            device_known = backend.to_device(usable)
            k = s.k
            if k == "auto":
                # the masks as they are on the host: the hold-out is drawn there
                choice = choose_k(device_rgb, missing, backend=backend, method=s.method,
                                  weights=s.weights, seed=self.config.seed, tile=s.tile,
                                  known=usable)
                k = choice.k
                metrics["k_curve"] = [round(v, 4) for v in choice.rmse]  # hold-out RMSE, k=1..
                metrics["k_held_out"] = choice.held_out
            metrics["k"] = k
            device_result = inpaint(device_rgb, device_missing, backend=backend, k=k,
                                    method=s.method, weights=s.weights, tile=s.tile,
                                    known=device_known)
            result = backend.to_host(device_result)
        metrics.update(self._reference_metrics(image, result, missing, backend,
                                               device_result, device_missing))
        if image.has_alpha:  # filled pixels become opaque; the rest keep their alpha
            alpha = np.where(missing, 255, image.pixels[..., 3]).astype(np.uint8)
            result = np.dstack([result, alpha])
        return Processed(payload={"image": result}, metrics=metrics)

    def _relatives_of(self, path: Path) -> list[Path]:
        """Where ``path`` sits below the input folders or globs (as its output does): found
        from the config alone, so a job rebuilt on a Dask worker finds the same reference."""
        found = []
        for entry in self.config.input.paths:
            base = Path(_glob_base(entry)) if is_glob(entry) else Path(entry)
            if base.is_dir() and path.is_relative_to(base):
                found.append(path.relative_to(base))
        return found

    def _reference(self, image: DecodedImage) -> Path | None:
        reference = Path(self.settings.reference)
        path = image.path or Path("image")
        candidates = [reference / relative for relative in self._relatives_of(path)]
        candidates.append(reference / path.name)
        candidates += [reference / (path.stem + suffix) for suffix in sorted(IMAGE_SUFFIXES)]
        return next((c for c in candidates if c.is_file()), None)

    def _reference_metrics(self, image: DecodedImage, result: np.ndarray, missing: np.ndarray,
                           backend: Backend, device_result: Array | None = None,
                           device_missing: Array | None = None) -> dict[str, object]:
        """PSNR/SSIM/... against the clean original, over the image and the missing pixels.

        The device copies of the result and the mask, when the fill left them there, are
        used as they are: only the original goes up, once.
        """
        if self.settings.reference is None:
            return {}
        found = self._reference(image)
        if found is None:
            return {"reference": None}
        original = decode(found).rgb
        if original.shape != result.shape:
            raise ImageError(f"{found}: reference is {original.shape[1]}x{original.shape[0]} "
                             f"but {image.path} is {result.shape[1]}x{result.shape[0]}")
        metrics: dict[str, object] = {"reference": str(found)}
        if not self.config.metrics and not missing.any():
            return metrics
        device_original = backend.to_device(np.ascontiguousarray(original))
        if device_result is None:
            device_result = backend.to_device(result)
        if self.config.metrics:
            step = metric_grid(result.shape)
            values = compute_metrics(self.config.metrics, device_original[::step, ::step, :],
                                     device_result[::step, ::step, :], backend=backend)
            metrics.update({name: round(value, 4) for name, value in values.items()})
        if missing.any():
            if device_missing is None:
                device_missing = backend.to_device(missing)
            value = psnr(device_original, device_result, device_missing)
            metrics["psnr_missing"] = round(value, 4)
        return metrics

    def encode(self, processed: Processed) -> list[bytes]:
        output = self.config.output
        return [encode_image(processed.payload["image"], format=output.format,
                             quality=output.quality)]
