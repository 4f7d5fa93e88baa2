"""The ``gpupix`` command: parse, call the pipeline, map GpupixError to an exit code."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from gpupix.errors import BackendUnavailableError, ConfigError, GpupixError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Batch image engine: palettes, inpainting, denoising; GPU or CPU.")

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def _version(value: bool) -> None:
    if value:
        import gpupix

        typer.echo(f"gpupix {gpupix.__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit")
        ] = False) -> None:
    """Batch image engine: palettes, inpainting, denoising; GPU or CPU."""


def _quoted(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))

BackendOption = Annotated[str | None, typer.Option(
    "--backend", help="auto | cpu | cuda (overrides the config's backend)")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config value: key.path=value (repeatable)")]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {printable(message)}", err=True)
    return typer.Exit(code)


# Control characters (a newline, an escape sequence) and invisible format characters (a
# right-to-left override) in a file name would let it forge or hide lines of our output.
_UNPRINTABLE = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"))


def printable(text: object) -> str:
    """``text`` for a terminal: every control or invisible character written as an escape.

    ``a<newline>failed: x.png`` stays one line (``a\\nfailed: x.png``), so a file name
    cannot forge a line of gpupix's output, nor an escape sequence repaint the terminal; an
    undecodable byte of a file name (a lone surrogate) is shown, not an encoding error.
    """
    import unicodedata

    text = str(text)
    if text.isprintable():  # the common case, in C
        return text
    return "".join(char if unicodedata.category(char) not in _UNPRINTABLE
                   else char.encode("unicode_escape").decode("ascii") for char in text)


def _markup_safe(text: object) -> str:
    """``text`` for rich: printable, and ``[`` read as a bracket, not as markup."""
    from rich.markup import escape

    return escape(printable(text))


def _naming_file(message: str, config: Path | str) -> str:
    """Config errors found after loading (input paths, output folder) name the file too."""
    return message if message.startswith(str(config)) else f"{config}: {message}"


@contextmanager
def _stop_on_signals() -> Iterator[tuple[Any, list[int]]]:
    """SIGINT and SIGTERM set a stop event (the run ends after the images in flight).

    A second signal, or one while the run is not between images (loading, a shared palette
    pass, a whole-set fit), raises KeyboardInterrupt at once. Yields the event and the list the
    received signal numbers go into. Outside the main thread, signals cannot be handled;
    the defaults are left alone.
    """
    from gpupix.pipeline import StopRequest

    stop = StopRequest()
    received: list[int] = []

    def handle(signum: int, _frame: object) -> None:
        received.append(signum)
        if stop.is_set() or not stop.between_images:
            raise KeyboardInterrupt  # a second signal, or a step that cannot stop part-way
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, handle)
    try:
        yield stop, received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _interrupted_exit(signum: int | None, message: str) -> typer.Exit:
    """128 + the signal's number, as a shell reports a process ended by that signal."""
    number = signum or signal.SIGINT
    name = signal.Signals(number).name
    return _fail(f"interrupted by {name}: {message}", 128 + number)


def _load(config: Path, backend: str | None, overrides: list[str] | None):
    from gpupix.config import load_config

    assignments = list(overrides or [])
    if backend is not None:
        assignments.append(f"backend={backend}")
    return load_config(config, assignments)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML job file")],
    backend: BackendOption = None,
    overrides: SetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary")
                     ] = False,
) -> None:
    """Run a job: stream the input images through a backend into the output folder.

    SIGINT (Ctrl-C) or SIGTERM stops it after the images in flight, keeps every finished
    output and its metrics row, and exits 130 or 143; rerunning does the remaining images.
    """
    if config.suffix.lower() not in (".yaml", ".yml", ".json") and config.suffix.lower() in \
            _IMAGE_SUFFIXES:
        raise _fail(f"{config} is an image, not a job file; to quantize it, run: gpupix "
                    f"quantize {_quoted(config)} -o OUTPUT_DIR [--k 32] (see gpupix --help)", 2)
    _execute(lambda: _load(config, backend, overrides), str(config), quiet=quiet)


def _execute(load: Any, label: str, *, quiet: bool) -> None:
    """Load the config, run it with a progress bar and clean stops, print, exit."""
    from gpupix.backends import get_backend
    from gpupix.pipeline import run_job

    with _stop_on_signals() as (stop, received):
        try:
            job_config = load()
            chosen = get_backend(job_config.backend)
            reporter = None if quiet else _progress_reporter()
            try:
                result = run_job(job_config, chosen, reporter=reporter, stop=stop)
            finally:
                if reporter is not None:
                    reporter.stop()
        except ConfigError as exc:
            raise _fail(_naming_file(str(exc), label), 2) from None
        except BackendUnavailableError as exc:
            raise _fail(_naming_file(str(exc), label), 2) from None
        except GpupixError as exc:
            raise _fail(str(exc), 1) from None
        except KeyboardInterrupt:  # a second signal, or Ctrl-C before the handlers were set
            raise _interrupted_exit(received[-1] if received else None,
                                    "aborted; outputs on disk are complete, rerun to finish"
                                    ) from None
    if not quiet:
        _print_summary(result)
    else:
        for row in result.rows:
            if row["status"] == "failed":
                typer.echo(f"failed: {printable(row['error'])}", err=True)
    if result.interrupted:
        total = len(result.rows) + result.remaining
        raise _interrupted_exit(received[0] if received else None,
                                f"{result.remaining} of {total} images not done yet; outputs "
                                "on disk are complete, rerun the same command to finish")
    if result.summary["images"] == 0:
        typer.echo(f"{printable(label)}: 0 images found in input.paths; nothing to do",
                   err=True)
    raise typer.Exit(result.exit_code)


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="YAML job file")],
    overrides: SetOption = None,
) -> None:
    """Check a job file without touching any image."""
    try:
        job_config = _load(config, None, overrides)
    except ConfigError as exc:
        raise _fail(_naming_file(str(exc), config), 2) from None
    from gpupix.jobs import make_job
    from gpupix.pipeline import inputs_of

    try:
        found = len(inputs_of(job_config, make_job(job_config)))
    except ConfigError as exc:
        raise _fail(_naming_file(str(exc), config), 2) from None
    typer.echo(f"{printable(config)}: valid {job_config.job} job; input.paths match {found} images")


@app.command()
def info() -> None:
    """Versions, and which backends can run here (and why not)."""
    import gpupix
    from gpupix.backends import backend_status, get_backend

    typer.echo(f"gpupix {gpupix.__version__} (Python {sys.version.split()[0]})")
    for name, reason in backend_status().items():
        typer.echo(f"  backend {name}: {'usable' if reason is None else 'unusable: ' + reason}")
    typer.echo(f"  backend auto -> {get_backend('auto').name}")
    for key, value in get_backend("cpu").describe().items():
        typer.echo(f"  {key}: {value}")


@app.command()
def report(
    output_dir: Annotated[Path, typer.Argument(help="A run's output folder (output.dir)")],
) -> None:
    """Rebuild report.html from a run's metrics.jsonl, summary.json and images."""
    from gpupix.report import rebuild_report

    try:
        path = rebuild_report(output_dir)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    except GpupixError as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(f"report: {printable(path)}")


class _RichReporter:
    """A rich progress bar: images done / total, images per second, failures so far."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
        )
        self.task = None
        self.failed = 0
        self.done = 0
        self.started = 0.0

    def start(self, total: int) -> None:
        import time

        self.started = time.perf_counter()
        self.progress.start()
        self.task = self.progress.add_task("images", total=total, rate="", failed="")

    def advance(self, row: dict) -> None:
        import time

        self.done += 1
        self.failed += row["status"] == "failed"
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(self.task, advance=1, rate=f"{self.done / elapsed:.1f} img/s",
                             failed=f"[red]{self.failed} failed" if self.failed else "")

    def stop(self) -> None:
        self.progress.stop()


def _progress_reporter() -> _RichReporter:
    return _RichReporter()


def _print_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    summary = result.summary
    console = Console(emoji=False)  # a file named :smile:.png is printed as named
    counts = summary["counts"]
    table = Table(title=f"gpupix {summary['job']}: {summary['images']} images "
                  f"in {summary['wall_seconds']:.2f}s on "
                  f"{_markup_safe(summary['backend']['device'])}", show_header=False)
    table.add_column()
    table.add_column(overflow="fold")  # a long path wraps, never ends in an ellipsis
    table.add_row("ok / skipped / failed",
                  f"{counts['ok']} / {counts['skipped']} / {counts['failed']}")
    if summary["images_per_second"]:
        table.add_row("throughput", f"{summary['images_per_second']:.2f} images/s")
    if summary.get("redone"):
        table.add_row("redone", f"{summary['redone']} (made earlier with other settings)")
    totals = summary["totals"]
    if totals["bytes_in"] and totals["bytes_out"]:
        table.add_row("bytes in -> out", f"{totals['bytes_in']:,} -> {totals['bytes_out']:,} "
                      f"({totals['bytes_out'] / totals['bytes_in']:.1%})")
    for label, value in _job_lines(summary, result.rows):
        table.add_row(label, _markup_safe(value))
    table.add_row("output", _markup_safe(result.output_dir))
    if getattr(result, "report", None) is not None:
        table.add_row("report", _markup_safe(result.report))
    console.print(table)
    for failure in summary["failures"][:10]:
        console.print(f"[red]failed[/red] {_markup_safe(failure['error'])}", highlight=False)
    if len(summary["failures"]) > 10:
        console.print(f"... and {len(summary['failures']) - 10} more in metrics.jsonl")


def _mean(summary: dict, key: str) -> float | None:
    value = summary["means"].get(key)
    return value if isinstance(value, int | float) else None


def _job_lines(summary: dict, rows: list[dict]) -> list[tuple[str, str]]:
    """What matters in each job's results, for the console summary."""
    lines: list[tuple[str, str]] = []
    means = {key: _mean(summary, key) for key in ("psnr", "delta_e", "ssim", "rmse",
                                                  "psnr_noisy", "sigma", "psnr_missing",
                                                  "missing_fraction", "k", "k_chosen",
                                                  "colors_out")}
    # lines follow from the fields the rows carry, never from the job's name
    if means["psnr_noisy"] is not None and means["psnr"] is not None:
        lines.append(("mean psnr", f"{means['psnr_noisy']:.2f} dB noisy -> "
                                   f"{means['psnr']:.2f} dB denoised"))
        means["psnr"] = None
    if means["sigma"] is not None:
        lines.append(("mean estimated sigma", f"{means['sigma']:.3g}"))
    if means["psnr_missing"] is not None:
        lines.append(("mean psnr (missing pixels)", f"{means['psnr_missing']:.2f} dB"))
    if means["missing_fraction"] is not None:
        lines.append(("mean missing", f"{means['missing_fraction']:.1%} of the pixels"))
    for key, label in (("psnr", "mean psnr"), ("delta_e", "mean delta_e"),
                       ("ssim", "mean ssim"), ("rmse", "mean rmse"),
                       ("colors_out", "mean colours"), ("k", "mean k")):
        if means[key] is not None:
            lines.append((label, f"{means[key]:.4g}"))
    targeted = [row for row in rows if "target_met" in row and row.get("status") == "ok"]
    if targeted:
        missed = sum(not row["target_met"] for row in targeted)
        lines.append(("k: auto", f"mean k {means['k_chosen'] or 0:.1f}; {missed} of "
                                 f"{len(targeted)} images missed their target"))
    refused = sum(bool(row.get("quality_failed")) for row in rows)
    if refused:
        lines.append(("min_quality", f"{refused} images missed it and were not written"))
    model = summary.get("model")
    if isinstance(model, dict):
        if model.get("fitted"):
            lines.append(("model", f"{model.get('path')} ({model.get('bytes', 0):,} bytes, "
                                   f"kind {model.get('kind')}, fitted in "
                                   f"{model.get('fit_seconds', 0):.2f} s)"))
        else:
            lines.append(("model", f"{model.get('path')}: not fitted ({model.get('reason')})"))
    return lines


# ---------------------------------------------------------------- one command per job
def _job_command(job: str) -> Any:
    """``gpupix JOB IMAGES... -o DIR [--FIELD VALUE ...]``: the same run as a job file with
    those inputs, that output folder and those ``JOB:`` settings. The flags are generated
    from the job's config section, so every key of the YAML section is a flag."""
    import inspect

    from gpupix.config import section_model

    model = section_model(job)
    fields = model.model_fields
    parameters = [
        inspect.Parameter("images", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=Annotated[list[str], typer.Argument(
                              help="Image files, folders or globs", show_default=False)]),
        inspect.Parameter("output", inspect.Parameter.KEYWORD_ONLY,
                          annotation=Annotated[str, typer.Option(
                              "--output", "-o", help="Output folder (output.dir)")]),
        inspect.Parameter("recursive", inspect.Parameter.KEYWORD_ONLY, default=False,
                          annotation=Annotated[bool, typer.Option(
                              "--recursive", "-r", help="Walk folders recursively")]),
        inspect.Parameter("overwrite", inspect.Parameter.KEYWORD_ONLY, default=False,
                          annotation=Annotated[bool, typer.Option(
                              "--overwrite", help="Redo outputs that already exist")]),
        inspect.Parameter("backend", inspect.Parameter.KEYWORD_ONLY, default=None,
                          annotation=BackendOption),
        inspect.Parameter("overrides", inspect.Parameter.KEYWORD_ONLY, default=None,
                          annotation=SetOption),
        inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False,
                          annotation=Annotated[bool, typer.Option(
                              "--quiet", "-q", help="No progress bar or summary")]),
    ]
    for name, info in fields.items():
        default = info.default
        shown = default.model_dump() if hasattr(default, "model_dump") else default
        mapping = "Config" in str(info.annotation)  # a nested section: a YAML mapping
        parameters.append(inspect.Parameter(
            f"section_{name}", inspect.Parameter.KEYWORD_ONLY, default=None,
            annotation=Annotated[str | None, typer.Option(
                f"--{name.replace('_', '-')}", show_default=False,
                metavar="MAPPING" if mapping else "VALUE",
                help=f"{job}.{name} (default: {shown!r})")]))

    def command(**values: Any) -> None:
        section = {key[len("section_"):]: value for key, value in values.items()
                   if key.startswith("section_") and value is not None}
        label = f"gpupix {job}"

        def load() -> Any:
            from gpupix.config import apply_override, validate_config

            data: dict[str, Any] = {
                "job": job, "input": {"paths": list(values["images"]),
                                      "recursive": values["recursive"]},
                "output": {"dir": values["output"], "overwrite": values["overwrite"]},
                job: {}}
            for key, raw in section.items():
                apply_override(data, f"{job}.{key}={raw}", source=f"--{key}")
            assignments = list(values["overrides"] or [])
            if values["backend"] is not None:
                assignments.append(f"backend={values['backend']}")
            for assignment in assignments:
                apply_override(data, assignment)
            return validate_config(data, source=label, base_dir=Path.cwd())

        _execute(load, label, quiet=values["quiet"])

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__name__ = job
    command.__doc__ = (f"Run the {job} job on IMAGES into -o DIR. Every key of a job file's "
                       f"{job}: section is a flag (values are YAML: --target '{{psnr: 38}}'); "
                       "the same pipeline as gpupix run.")
    return command


def add_job_command(job: str) -> None:
    """``gpupix <job> IMAGES -o DIR``: a command for a registered job kind."""
    name = job.replace("_", "-")
    if not any(info.name == name for info in app.registered_commands):
        app.command(name=name)(_job_command(job))


def _register_job_commands() -> None:
    from gpupix.jobs import JOBS

    for job in JOBS:
        add_job_command(job)


_register_job_commands()


def main() -> None:  # pragma: no cover - console entry point
    logging.basicConfig(level=logging.WARNING)
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
