"""Job registry: the name in ``job:`` -> the class that runs one image of it."""

from __future__ import annotations

from gpupix.config import JobConfig
from gpupix.jobs.base import Job, Processed
from gpupix.jobs.corrupt import CorruptJob
from gpupix.jobs.denoise import DenoiseJob, FitDenoiserJob
from gpupix.jobs.hints import GENERIC, ReportHints
from gpupix.jobs.inpaint import InpaintJob
from gpupix.jobs.quantize import QuantizeJob

__all__ = ["Job", "Processed", "JOBS", "ReportHints", "make_job", "report_hints"]

JOBS: dict[str, type] = {"quantize": QuantizeJob}
JOBS.update({"fit_denoiser": FitDenoiserJob, "denoise": DenoiseJob})
JOBS.update({"corrupt": CorruptJob, "inpaint": InpaintJob})


def make_job(config: JobConfig) -> Job:
    return JOBS[config.job](config)


def report_hints(job: str) -> ReportHints:
    """How the report shows ``job``'s images (generic hints for a name it does not know)."""
    kind = JOBS.get(job)
    return getattr(kind, "report_hints", GENERIC) if kind is not None else GENERIC
