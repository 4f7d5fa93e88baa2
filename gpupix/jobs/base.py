"""What the pipeline needs from a job: where outputs go, how one image is processed, encoded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gpupix.backends.base import Backend
from gpupix.io import DecodedImage, InputItem


@dataclass
class Processed:
    """One image's result on the host: ``payload`` for :meth:`Job.encode`, and its metrics."""

    payload: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)


class Job(Protocol):
    name: str

    def output_relatives(self, item: InputItem) -> list[Path]:
        """Paths below the output directory; the first is the main output."""
        ...

    def process(self, image: DecodedImage, backend: Backend) -> Processed:
        """Compute on the backend; return host arrays and metrics. Raise ImageError to fail."""
        ...

    def encode(self, processed: Processed) -> list[bytes]:
        """File contents aligned with :meth:`output_relatives` (runs in a writer thread)."""
        ...

    # Optional: ``prepare(items: list[InputItem], backend: Backend) -> None``. When a job has
    # it, run_job calls it once with every input before any image is processed (a pass over
    # the whole input set, e.g. the quantize job's shared palette). Not part of the Protocol,
    # so jobs without it still satisfy it.
