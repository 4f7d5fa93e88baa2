"""The inpaint job: fill the missing pixels of each image from its nearest known pixels.

Which pixels are missing comes from ``inpaint.mask``: a mask file beside the image (white =
missing), the transparent pixels, or a key colour; ``auto`` takes the first of these that
exists. An image with no missing pixel passes through unchanged, with a note.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from gpupix.backends.base import Array, Backend
from gpupix.errors import ConfigError, ImageError
from gpupix.io import (
    IMAGE_SUFFIXES,
    MASK_SUFFIX,
    OUTPUT_SUFFIXES,
    DecodedImage,
    InputItem,
    _glob_base,
    decode,
    encode_image,
    is_glob,
    open_image,
)
from gpupix.jobs.base import Encoded, ImageJob, Processed
from gpupix.jobs.hints import ReportHints
from gpupix.jobs.quantize import metric_grid
from gpupix.ops.corrupt import KEY_COLOUR
from gpupix.ops.inpaint import choose_k, inpaint
from gpupix.ops.inpaint_smooth import ENERGIES
from gpupix.ops.metrics import compute_metrics, psnr
from gpupix.settings import Section, shown


class InpaintConfig(Section):
    path_fields: ClassVar[tuple[str, ...]] = ("reference",)

    mask: Literal["auto", "file", "key_color", "alpha"] = "auto"
    mask_suffix: str = Field(MASK_SUFFIX, min_length=1)
    key_color: str = "#{:02x}{:02x}{:02x}".format(*KEY_COLOUR)
    # RGB distance to key_color that still counts as keyed: marks saved as JPEG (quality 90)
    # come back blurred; 80 finds 95% of their pixels (exact matching: 5%) and no pixel of
    # the photos tried; 0 is exact matching (for saturated art near the key colour)
    key_tolerance: float = Field(80.0, ge=0.0, le=441.7)
    k: int | Literal["auto"] = "auto"
    weights: Literal["uniform", "distance"] = "distance"
    method: Literal["smooth", "knn", "knn_linear", "vote", "exemplar"] = "smooth"
    reference: str | None = None
    tile: int = Field(256, ge=16, le=16_384)

    @field_validator("mask_suffix")
    @classmethod
    def _a_name_ending(cls, suffix: str) -> str:
        # the mask is the file beside its image: a suffix with a separator would name another
        if "/" in suffix or "\\" in suffix:
            raise ValueError(f"must end a file name (no / or \\), got {shown(suffix)}")
        return suffix

    @field_validator("key_color")
    @classmethod
    def _hex_colour(cls, value: str) -> str:
        text = value.strip().lstrip("#")
        if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
            from PIL import ImageColor

            try:  # a colour name, as corrupt's mark takes one: magenta, black, ...
                rgb = ImageColor.getrgb(value.strip())[:3]
            except ValueError:
                raise ValueError(f"must be a colour like '#ff00ff' or a name like 'magenta', "
                                 f"got {shown(value)}") from None
            return "#{:02x}{:02x}{:02x}".format(*rgb)
        return "#" + text.lower()

    @field_validator("k")
    @classmethod
    def _k_in_range(cls, k: int | str) -> int | str:
        if k != "auto" and not 1 <= k <= 64:
            raise ValueError(f"must be 1..64 or auto, got {shown(k)}")
        return k

    @model_validator(mode="after")
    def _k_fits_the_method(self) -> InpaintConfig:
        energies = len(ENERGIES)
        if self.method == "smooth" and self.k != "auto" and self.k > energies:
            raise ValueError(f"with method smooth, k numbers its energies 1..{energies} (or "
                             f"auto: chosen per image); got {self.k}. Neighbour counts are "
                             "for method knn, knn_linear or vote (exemplar: candidate "
                             "squares)")
        return self

    @property
    def key_rgb(self) -> tuple[int, int, int]:
        text = self.key_color.lstrip("#")
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)

    def check_paths(self, name: str) -> None:
        if self.reference is not None and not Path(self.reference).is_dir():
            raise ConfigError(f"{name}.reference: {self.reference!r} is not a directory")



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


class InpaintJob(ImageJob):
    name = "inpaint"
    settings_model = InpaintConfig

    report_hints = ReportHints(input_label="damaged", output_label="repaired",
                               key_color_panel=True,
                               columns=("psnr_missing", "psnr", "ssim", "k", "missing_pixels"),
                               marks=("missing_pixels",))

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

    def process(self, item: InputItem | None, image: DecodedImage, backend: Backend
                ) -> Processed:
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
            if s.method == "smooth":  # what k numbers: the energy's weights
                metrics["tension"], metrics["stiffness"] = ENERGIES[k - 1]
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

    def encode(self, processed: Processed) -> Encoded:
        output = self.config.output
        return Encoded([encode_image(processed.payload["image"], format=output.format,
                                     quality=output.quality)])
