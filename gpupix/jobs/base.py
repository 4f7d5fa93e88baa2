"""The contract between the pipeline and a job kind: every hook, with its default, in one place.

Two kinds of job share :class:`Job`:

- :class:`ImageJob` turns each input image into its output files: the pipeline plans the
  outputs (:meth:`ImageJob.output_relatives`, no side effects), may run one pass over the
  whole input set first (:meth:`ImageJob.prepare`, whose returned state the executors hand
  to every copy of the job through :meth:`ImageJob.use_state`), then computes images
  (:meth:`ImageJob.process_batch`, one image at a time unless the job batches) and encodes
  each result (:meth:`ImageJob.encode`, in a writer thread).
- :class:`WholeSetJob` fits one result from every input (``fit_denoiser``): it reads the
  images itself and returns a row per input.

A job kind is one module: its settings model (a :class:`~gpupix.config.Section`), its class
with ``name``, ``settings_model`` and ``report_hints``, and one :func:`gpupix.jobs.register`
line. Executors rebuild a job from its class and config alone (plus the prepared state), so
no hook may keep state that the executors do not ship.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from gpupix.jobs.hints import GENERIC, ReportHints
from gpupix.rows import IMAGE_ERRORS, Row

if TYPE_CHECKING:
    from gpupix.backends.base import Backend
    from gpupix.config import JobConfig, Section
    from gpupix.io import DecodedImage, InputItem


@dataclass
class Processed:
    """One image's result on the host: ``payload`` for :meth:`ImageJob.encode`, and its metrics."""

    payload: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Encoded:
    """What :meth:`ImageJob.encode` made: file contents aligned with the outputs, and metrics
    only known once encoded (the file's size ratio), merged into the row."""

    files: list[bytes]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class WholeSetResult:
    """A whole-set job's rows (one per input) and what it adds to ``summary.json``."""

    rows: list[Row]
    summary: dict[str, Any] = field(default_factory=dict)


class Job(ABC):
    """What every job kind declares; see the module docstring for the life of a run."""

    name: ClassVar[str]
    settings_model: ClassVar[type[Section]]
    report_hints: ClassVar[ReportHints] = GENERIC
    # Outputs whose exact colours are the point (palette images, masks): a lossy output
    # format is refused in the config.
    exact_colors: ClassVar[bool] = False
    # Files the job writes at the top of output.dir besides each image's outputs (a shared
    # palette): no input's output may take these names.
    own_files: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: JobConfig) -> None:
        self.config = config

    @property
    def settings(self) -> Any:
        """This job's section of the config (``config.quantize`` for quantize)."""
        return self.config.section

    def recipe_files(self, output_dir: Path) -> list[Path]:
        """Files whose content decides every output (a palette they are mapped onto): a
        rerun redoes the outputs when one of them changed."""
        return []

    def accepts(self, item: InputItem) -> bool:
        """Whether a discovered file is an input of this job (inpaint leaves masks alone)."""
        return True

    def output_relatives(self, item: InputItem) -> list[Path]:
        """Paths below output.dir for ``item``, the main output first. Pure: planning,
        ``gpupix validate`` and remote workers all call it."""
        return []


class ImageJob(Job):
    """A job that makes each image's outputs from that image (and any prepared state)."""

    @abstractmethod
    def output_relatives(self, item: InputItem) -> list[Path]: ...

    def prepare(self, items: list[InputItem], backend: Backend) -> Any:
        """One pass over every input before any image is processed (a shared palette).

        Returns host data (picklable) that every copy of the job needs, or None; the
        pipeline passes it to :meth:`use_state` here and the executors on each worker.
        """
        return None

    def use_state(self, state: Any) -> None:
        """Take the state :meth:`prepare` returned (called before the first image)."""

    @abstractmethod
    def process(self, item: InputItem | None, image: DecodedImage, backend: Backend
                ) -> Processed:
        """Compute one image on the backend; host arrays and metrics back. ``item`` is None
        for an in-memory image (the Python API). Raise ImageError to fail the image."""

    def process_batch(self, batch: Sequence[tuple[InputItem | None, DecodedImage]],
                      backend: Backend) -> list[Processed | BaseException]:
        """Compute several images in one call, a result or the image's error for each.

        The default runs :meth:`process` per image; a job that gains from batches (one
        transfer to the device, passes over the whole batch) overrides it.
        """
        results: list[Processed | BaseException] = []
        for item, image in batch:
            try:
                results.append(self.process(item, image, backend))
            except IMAGE_ERRORS as exc:
                results.append(exc)
        return results

    @abstractmethod
    def encode(self, processed: Processed) -> Encoded:
        """File contents aligned with :meth:`output_relatives` (runs in a writer thread;
        must not change ``processed``)."""

    def summary_extra(self, rows: list[Row]) -> dict[str, Any]:
        """Fields this job adds to ``summary.json`` (none by default)."""
        return {}


class WholeSetJob(Job):
    """A job that fits one result from the whole input set and writes it once."""

    @abstractmethod
    def run_whole_set(self, items: list[InputItem], output_dir: Path, backend: Backend,
                      advance: Callable[[Row], None]) -> WholeSetResult:
        """Read the inputs (bounded memory), fit, write; one row per input, each passed to
        ``advance`` as it is settled."""
