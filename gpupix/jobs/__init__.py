"""Job registry: the name in ``job:`` -> the job class, its settings model and report hints.

Adding a job kind is one module (a :class:`~gpupix.jobs.base.ImageJob` or
:class:`~gpupix.jobs.base.WholeSetJob` subclass with ``name``, ``settings_model`` and
``report_hints``) and one :func:`register` line below. The config's job section, its CLI
command, the report's cards and the conformance tests follow from the registry.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from gpupix.jobs.base import Encoded, ImageJob, Job, Processed, WholeSetJob, WholeSetResult
from gpupix.jobs.hints import GENERIC, ReportHints

if TYPE_CHECKING:
    from gpupix.config import JobConfig

__all__ = ["JOBS", "Encoded", "ImageJob", "Job", "Processed", "ReportHints", "WholeSetJob",
           "WholeSetResult", "make_job", "register", "report_hints"]

JOBS: dict[str, type[Job]] = {}


def register(job_class: type[Job]) -> type[Job]:
    """Make ``job_class`` runnable as ``job: <its name>`` (usable as a class decorator)."""
    name = job_class.name
    if not name.isidentifier():
        raise ValueError(f"a job name is a config section name; {name!r} is not one")
    JOBS[name] = job_class
    cli = sys.modules.get("gpupix.cli")
    if cli is not None:  # registered after the command line was built: add its command
        cli.add_job_command(name)
    return job_class


def make_job(config: JobConfig) -> Job:
    return JOBS[config.job](config)


def report_hints(job: str) -> ReportHints:
    """How the report shows ``job``'s images (generic hints for a name it does not know)."""
    kind = JOBS.get(job)
    return kind.report_hints if kind is not None else GENERIC


def _register_builtin() -> None:
    from gpupix.jobs.corrupt import CorruptJob
    from gpupix.jobs.denoise import DenoiseJob, FitDenoiserJob
    from gpupix.jobs.inpaint import InpaintJob
    from gpupix.jobs.quantize import QuantizeJob

    register(QuantizeJob)
    register(FitDenoiserJob)
    register(DenoiseJob)
    register(CorruptJob)
    register(InpaintJob)


_register_builtin()
