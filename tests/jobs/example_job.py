"""A job kind added the way a new one is: this module and its one ``register`` line.

``invert`` writes each image's photographic negative. Nothing else in gpupix names it: the
config takes an ``invert:`` section, ``gpupix validate`` and ``run_job`` run it, the report
draws its cards from its hints, and the conformance suite (test_conformance.py) checks it.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from gpupix.io import OUTPUT_SUFFIXES, encode_image
from gpupix.jobs import Encoded, ImageJob, Processed, ReportHints, register
from gpupix.settings import Section


class InvertConfig(Section):
    strength: float = Field(1.0, ge=0.0, le=1.0)  # 1: the full negative; 0: a copy


class InvertJob(ImageJob):
    name = "invert"
    settings_model = InvertConfig
    report_hints = ReportHints(input_label="positive", output_label="negative",
                               columns=("mean_change",), marks=("mean_change",))

    def output_relatives(self, item):
        return [item.relative.with_suffix(OUTPUT_SUFFIXES[self.config.output.format])]

    def process(self, item, image, backend):
        xp = backend.xp
        rgb = backend.to_device(np.ascontiguousarray(image.rgb))
        values = xp.astype(rgb, xp.float32)
        inverted = values + self.settings.strength * (255.0 - 2.0 * values)
        result = backend.to_host(xp.astype(xp.round(inverted), xp.uint8))
        change = float(np.abs(result.astype(np.float32) - image.rgb).mean())
        return Processed({"image": result}, {"mean_change": round(change, 4)})

    def encode(self, processed):
        return Encoded([encode_image(processed.payload["image"],
                                     format=self.config.output.format)])


register(InvertJob)
