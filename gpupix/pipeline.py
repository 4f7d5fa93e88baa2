"""run_job(config, backend, executor): the whole job, knowing no CLI and no YAML.

It plans the work (inputs -> outputs, skips for resume, duplicate names), hands the rest to
an executor, streams one metrics row per image into ``metrics.jsonl`` and ends with
``summary.json``. A ``stop`` event ends a run early but cleanly: the images done so far are
recorded, and a rerun of the same job does exactly the remaining ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gpupix
from gpupix.backends import Backend, get_backend
from gpupix.config import JobConfig
from gpupix.errors import ConfigError, GpupixError
from gpupix.executors import make_executor
from gpupix.io import (
    TEMP_PREFIX,
    InputItem,
    discover,
    remove_stale_temporaries,
    until_stopped,
    write_atomic,
)
from gpupix.jobs import JOBS, ImageJob, Job, WholeSetJob, make_job
from gpupix.output_dir import LOCK_FILE, OutputLock, foreign_links, inside, open_append
from gpupix.rows import (
    METRICS_FILE,
    REPORT_DIR,
    REPORT_FILE,
    SUMMARY_FILE,
    Row,
    failed_row,
    read_rows,
    row_key,
    skipped_row,
    to_json,
)

QUALITY_EXIT_CODE = 99
# The run's own names at the top of output.dir (the report's page and folder included): an
# input whose output would take one of them is refused before anything is written.
RUN_FILES = (METRICS_FILE, SUMMARY_FILE, REPORT_FILE, REPORT_DIR, LOCK_FILE)


def reserved_names() -> tuple[str, ...]:
    """The run's own names and every job kind's own files (a shared palette)."""
    return RUN_FILES + tuple(name for job in JOBS.values() for name in job.own_files)


class StopRequest(threading.Event):
    """A stop request that also says whether the run can honour it between images.

    ``between_images`` is True only while the executor runs (it stops after the images in
    flight). Before that, and during steps that cannot stop part-way (a pass over all inputs
    for a shared palette, a whole-set fit), it is False: a signal handler should then
    interrupt at once (KeyboardInterrupt) rather than wait for the step to end.
    """

    between_images = False


class Reporter:
    """Progress callbacks; the CLI passes a rich progress bar, tests and libraries pass none."""

    def start(self, total: int) -> None: ...

    def advance(self, row: Row) -> None: ...


@dataclass
class RunSummary:
    rows: list[Row]
    summary: dict[str, Any]
    output_dir: Path
    counts: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    remaining: int = 0
    report: Path | None = None

    @property
    def exit_code(self) -> int:
        """0 when every image is done (ok or skipped), 1 when any failed, 99 when any missed
        its ``min_quality`` (as pngquant does; those rows have ``quality_failed``)."""
        if any(r.get("status") == "failed" and r.get("quality_failed") for r in self.rows):
            return QUALITY_EXIT_CODE
        return 1 if self.counts.get("failed", 0) else 0


def prepare_output_dir(config: JobConfig) -> Path:
    """Create output.dir, refuse links where the run writes its own files, probe writing."""
    output_dir = Path(config.output.dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"output.dir: {str(output_dir)!r} exists and is not a directory")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"output.dir: cannot create {str(output_dir)!r} ({exc})") from None
    try:  # fail now, as a config error, rather than once per image
        probe, probe_path = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=output_dir)
        os.close(probe)
        os.unlink(probe_path)
    except OSError as exc:
        raise ConfigError(f"output.dir: cannot write in {str(output_dir)!r} "
                          f"({exc.strerror or exc})") from None
    links = foreign_links(output_dir, reserved_names())
    if links:
        more = f" (and {len(links) - 1} more)" if len(links) > 1 else ""
        raise ConfigError(f"output.dir: {str(links[0])!r} is a symbolic link{more}; gpupix "
                          "writes its own files (metrics.jsonl, summary.json, report/, ...) "
                          "only as real files and folders, and never follows or removes a "
                          "link it did not create: remove it")
    return output_dir


def recipe_of(config: JobConfig, job: Job, output_dir: Path) -> str:
    """A digest of what makes an output: the job's settings, seed, metrics, output format,
    gpupix's version, and the files the job says decide every output (a shared or given
    palette). A rerun redoes an output whose recipe differs, so ``overwrite: false`` means
    "do not redo what is already right"."""
    data = {"gpupix": gpupix.__version__, "job": config.job,
            "section": config.section.model_dump(mode="json"), "seed": config.seed,
            "metrics": list(config.metrics), "format": config.output.model_dump(
                mode="json", exclude={"dir", "overwrite"})}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
    for path in job.recipe_files(output_dir):  # read after prepare wrote them
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes()[: 1 << 20])
    return digest.hexdigest()[:16]


def check_output_names(items: list[InputItem], outputs_of: Callable[[InputItem], list[Path]],
                       output_dir: Path) -> None:
    """Refuse (ConfigError, exit 2) an input whose output would leave output.dir or take one
    of the run's own names; ``gpupix validate`` runs the same check."""
    reserved = reserved_names()
    for item in items:
        for relative in outputs_of(item):
            target = output_dir / relative
            if relative.is_absolute() or not inside(output_dir, target) \
                    or ".." in relative.parts:
                raise ConfigError(f"input.paths: {item.path}: its output {str(target)!r} "
                                  "would be outside output.dir; refused")
            first = relative.parts[0] if relative.parts else ""
            if first in reserved or first.startswith(TEMP_PREFIX):
                raise ConfigError(
                    f"input.paths: {item.path} would be written as {str(relative)!r}, which "
                    f"is the run's own {first!r} in output.dir (metrics.jsonl, summary.json, "
                    "report.html, report/, palette.*, .gpupix.lock are kept for gpupix); "
                    "rename it or move it out of the inputs")


def plan(items: list[InputItem], outputs_of: Callable[[InputItem], list[Path]],
         output_dir: Path, *, overwrite: bool, previous: dict[str, Row],
         recipe: str | None = None
         ) -> tuple[list[tuple[InputItem, list[Path]]], list[Row], int]:
    """Split items into work to do and rows already settled (skipped, or duplicate names).

    An output is skipped only when every file exists and its row's ``recipe`` is
    ``recipe``; one made with other settings is redone. Returns ``(work, settled, redone)``.
    """
    work: list[tuple[InputItem, list[Path]]] = []
    settled: list[Row] = []
    redone = 0
    claimed: dict[Path, InputItem] = {}
    for item in items:
        outputs = [output_dir / relative for relative in outputs_of(item)]
        clash = next((claimed[p] for p in outputs if p in claimed), None)
        if clash is not None:
            settled.append(failed_row(item, outputs, f"{item.path}: output {outputs[0]} is "
                                      f"already the output of {clash.path}; rename one input"))
            continue
        claimed.update({p: item for p in outputs})
        exists = all(p.is_file() and not p.is_symlink() for p in outputs)
        earlier = previous.get(str(item.path), {})
        if not overwrite and exists and (recipe is None or earlier.get("recipe") == recipe):
            settled.append(skipped_row(item, outputs, earlier))
        else:
            redone += exists and not overwrite
            work.append((item, outputs))
    return work, settled, redone


def summarize(config: JobConfig, rows: list[Row], backend: Backend, wall_seconds: float
              ) -> dict[str, Any]:
    counts = {status: sum(r["status"] == status for r in rows)
              for status in ("ok", "skipped", "failed")}
    done = [r for r in rows if r["status"] == "ok"]
    means: dict[str, float] = {}
    numeric = sorted({k for r in done for k, v in r.items()
                      if isinstance(v, int | float) and not isinstance(v, bool)})
    for key in numeric:
        values = [r[key] for r in done if isinstance(r.get(key), int | float)
                  and math.isfinite(r[key])]
        if values:
            means[key] = round(sum(values) / len(values), 4)
    pixels = sum(r.get("width", 0) * r.get("height", 0) for r in done)
    return {
        "job": config.job,
        "images": len(rows),
        "counts": counts,
        "failures": [{"input": r["input"], "error": r["error"]} for r in rows
                     if r["status"] == "failed"],
        "means": means,
        "totals": {"bytes_in": sum(r.get("bytes_in", 0) for r in done),
                   "bytes_out": sum(r.get("bytes_out", 0) for r in done),
                   "pixels": pixels},
        "wall_seconds": round(wall_seconds, 3),
        "images_per_second": round(len(done) / wall_seconds, 3) if wall_seconds > 0 else None,
        "backend": backend.describe(),
        "versions": {"gpupix": gpupix.__version__, "python": platform.python_version()},
        "config": config.model_dump(mode="json"),
    }


def inputs_of(config: JobConfig, job: Job) -> list[InputItem]:
    """The job's inputs (a job may leave some alone: inpaint's mask files), their output
    names checked; what ``gpupix validate`` counts and ``run_job`` runs."""
    items = [item for item in discover(config.input.paths, recursive=config.input.recursive)
             if job.accepts(item)]
    if isinstance(job, ImageJob):
        check_output_names(items, job.output_relatives, Path(config.output.dir))
    return items


def run_job(config: JobConfig, backend: Backend | None = None, executor: Any = None,
            reporter: Reporter | None = None, *, stop: threading.Event | None = None
            ) -> RunSummary:
    """Run ``config`` over its inputs; rows for every input end up in metrics.jsonl.

    ``stop``, when set during the run (the CLI sets it on SIGINT/SIGTERM), makes the
    executor take no new image; the rows so far and ``summary.json`` are still written, and
    the result says ``interrupted`` and how many images remain for a rerun.
    """
    started = time.perf_counter()
    reporter = reporter or Reporter()
    stop = stop if stop is not None else threading.Event()
    backend = backend or get_backend(config.backend)
    job = make_job(config)
    items = inputs_of(config, job)
    output_dir = prepare_output_dir(config)
    with OutputLock(output_dir):  # one run at a time per output.dir
        remove_stale_temporaries(output_dir)  # a killed run's; never a live process's
        if isinstance(job, WholeSetJob):  # one result fitted from every input
            return run_whole_set(config, job, items, output_dir, backend, reporter, started)
        assert isinstance(job, ImageJob)
        return _run_images(config, job, items, output_dir, backend, executor, reporter, stop,
                           started)


def _run_images(config: JobConfig, job: ImageJob, items: list[InputItem], output_dir: Path,
                backend: Backend, executor: Any, reporter: Reporter, stop: threading.Event,
                started: float) -> RunSummary:
    metrics_path = output_dir / METRICS_FILE
    previous = {row["input"]: row for row in read_rows(metrics_path)
                if row.get("status") in ("ok", "skipped")}
    state = job.prepare(items, backend)  # a pass over all inputs first (a shared palette)
    job.use_state(state)
    recipe = recipe_of(config, job, output_dir)
    work, settled, redone = plan(items, job.output_relatives, output_dir,
                                 overwrite=config.output.overwrite, previous=previous,
                                 recipe=recipe)
    executor = executor or make_executor(config, stop=stop)
    reporter.start(len(items))
    rows_by_input: dict[str, Row] = {}
    done = 0
    writing_to = metrics_path  # named in the one-line error if the disk refuses a write
    try:
        stop.between_images = True  # from here on a stop ends the run cleanly
        with open_append(metrics_path, root=output_dir) as stream:
            for row in settled:
                rows_by_input[row_key(row)] = row
                reporter.advance(row)
            results = executor.run(until_stopped(work, stop), job, backend, state)
            try:
                for row in results:
                    if row["status"] == "ok":
                        row["recipe"] = recipe
                    rows_by_input[row_key(row)] = row
                    stream.write(to_json(row) + "\n")  # one write per row: a kill tears one
                    stream.flush()
                    done += 1
                    reporter.advance(row)
            finally:  # on an error here, the executor cancels its queued work now
                getattr(results, "close", lambda: None)()
                stop.between_images = False
        remove_stale_temporaries(output_dir)  # a worker killed mid-write leaves its temporary
        rows = sorted(rows_by_input.values(), key=lambda r: (r["output"], r["input"]))
        write_atomic(metrics_path, "".join(to_json(r) + "\n" for r in rows).encode(),
                     root=output_dir)
        summary = summarize(config, rows, backend, time.perf_counter() - started)
        summary.update(job.summary_extra(rows))
        summary["redone"] = redone  # outputs that existed but were made with other settings
        remaining = len(work) - done
        if stop.is_set() and remaining:
            summary["interrupted"] = True
            summary["remaining"] = remaining
        writing_to = output_dir / SUMMARY_FILE
        write_atomic(output_dir / SUMMARY_FILE, (to_json(summary, indent=2) + "\n").encode(),
                     root=output_dir)
    except OSError as exc:  # disk full, folder removed under us: one line, not a traceback
        raise GpupixError(f"{writing_to}: cannot write ({exc.strerror or exc}); outputs written so "
                          "far are complete, rerun to finish") from None
    # an interrupted run stops now; `gpupix report OUTPUT_DIR` writes its report later
    report = None if "interrupted" in summary else write_run_report(config, output_dir, rows,
                                                                     summary)
    return RunSummary(rows=rows, summary=summary, output_dir=output_dir,
                      counts=summary["counts"], interrupted="interrupted" in summary,
                      remaining=remaining, report=report)


def write_run_report(config: JobConfig, output_dir: Path, rows: list[Row],
                     summary: dict[str, Any]) -> Path | None:
    """report.html after a run (``report: true``); a disk error is one line, as above."""
    if not config.report:
        return None
    from gpupix.report import write_report

    try:
        return write_report(output_dir, rows, summary)
    except OSError as exc:
        raise GpupixError(f"{output_dir / REPORT_FILE}: cannot write the report "
                          f"({exc.strerror or exc}); outputs, metrics.jsonl and summary.json "
                          "are complete: `gpupix report OUTPUT_DIR` writes it again") from None


def run_whole_set(config: JobConfig, job: WholeSetJob, items: list[InputItem], output_dir: Path,
                  backend: Backend, reporter: Reporter, started: float) -> RunSummary:
    """Run a job that fits one result from the whole input set (e.g. ``fit_denoiser``).

    The job reads the images itself (with bounded memory) and returns one row per input;
    rows and summary are written as for per-image jobs, with what the job adds to the
    summary (e.g. the model's file and settings).
    """
    reporter.start(len(items))
    result = job.run_whole_set(items, output_dir, backend, reporter.advance)
    rows = sorted(result.rows, key=lambda r: r["input"])
    write_atomic(output_dir / METRICS_FILE,
                 "".join(to_json(r) + "\n" for r in rows).encode(), root=output_dir)
    summary = summarize(config, rows, backend, time.perf_counter() - started)
    summary.update(result.summary)
    write_atomic(output_dir / SUMMARY_FILE, (to_json(summary, indent=2) + "\n").encode(),
                 root=output_dir)
    report = write_run_report(config, output_dir, rows, summary)
    return RunSummary(rows=rows, summary=summary, output_dir=output_dir,
                      counts=summary["counts"], report=report)
