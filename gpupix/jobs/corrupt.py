"""The corrupt job: clean image -> damaged image + its mask, seeded and reproducible.

Test data for the inpaint (and denoise) jobs: ``NAME.png`` is the damaged image and
``NAME.mask.png`` beside it is white where pixels were removed.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from gpupix.backends.base import Backend
from gpupix.io import MASK_SUFFIX, OUTPUT_SUFFIXES, DecodedImage, InputItem, encode_image
from gpupix.jobs.base import Encoded, ImageJob, Processed
from gpupix.jobs.hints import ReportHints
from gpupix.ops.corrupt import corrupt
from gpupix.ops.noise import NoiseModel
from gpupix.settings import Section


class HolesConfig(Section):
    count: int = Field(0, ge=0, le=100_000)
    size: int = Field(40, ge=1, le=65_535)


class CorruptConfig(Section):
    drop: float = Field(0.3, ge=0.0, le=0.99)
    holes: HolesConfig = HolesConfig()
    noise: Literal["none", "gaussian", "uniform", "salt_pepper"] = "none"
    sigma: float = Field(25.0, ge=0.0, le=1000.0)
    low: int = Field(0, ge=-1000, le=1000)
    high: int = Field(500, ge=-1000, le=1000)
    amount: float = Field(0.05, ge=0.0, le=1.0)
    mark: Literal["magenta", "black", "transparent"] = "magenta"

    @model_validator(mode="after")
    def _low_below_high(self) -> CorruptConfig:
        if self.low >= self.high:
            raise ValueError(f"uniform noise needs low < high, got low={self.low}, "
                             f"high={self.high}")
        return self



def image_seed(seed: int, path: Path | None) -> list[int]:
    """The random stream of one image: the job's seed and its file name (so each image gets
    its own damage, the same on every run and backend)."""
    name = path.name if path is not None else ""
    return [seed, zlib.crc32(name.encode("utf-8"))]


class CorruptJob(ImageJob):
    name = "corrupt"
    settings_model = CorruptConfig
    exact_colors = True  # the key colour marks the missing pixels; a blur would lose them

    report_hints = ReportHints(input_label="clean", output_label="damaged",
                               input_is_damage_source=True, columns=("psnr", "dropped"))

    def output_relatives(self, item: InputItem) -> list[Path]:
        damaged = item.relative.with_suffix(OUTPUT_SUFFIXES[self.config.output.format])
        return [damaged, damaged.with_name(damaged.stem + MASK_SUFFIX)]

    def process(self, item: InputItem | None, image: DecodedImage, backend: Backend
                ) -> Processed:
        s = self.settings
        rgb = np.ascontiguousarray(image.rgb)
        noise = None if s.noise == "none" else NoiseModel(
            kind=s.noise, sigma=s.sigma, low=s.low, high=s.high, amount=s.amount)
        damaged, missing = corrupt(
            backend.to_device(rgb), backend=backend,
            rng=np.random.default_rng(image_seed(self.config.seed, image.path)),
            drop=s.drop, holes=s.holes.count, hole_size=s.holes.size, noise=noise,
            mark=s.mark)
        damaged, missing = backend.to_host(damaged), backend.to_host(missing)
        if image.has_alpha:  # the input's own transparency is kept
            alpha = image.pixels[..., 3]
            if s.mark == "transparent":
                alpha = np.where(missing, 0, alpha).astype(np.uint8)
            damaged = np.dstack([damaged[..., :3], alpha])
        known = ~missing
        difference = damaged[..., :3].astype(np.float64) - rgb
        metrics: dict[str, object] = {
            "missing_pixels": int(missing.sum()),
            "missing_fraction": round(float(missing.mean()), 6),
            # how much the noise changed the pixels that were kept (0 without noise)
            "noise_rmse": round(float(np.sqrt((difference[known] ** 2).mean())), 4)
            if known.any() else 0.0,
        }
        mask = np.where(missing, 255, 0).astype(np.uint8)
        return Processed(payload={"damaged": damaged, "mask": mask}, metrics=metrics)

    def encode(self, processed: Processed) -> Encoded:
        damaged = encode_image(processed.payload["damaged"], format=self.config.output.format)
        return Encoded([damaged, encode_image(processed.payload["mask"])])
