"""Results -> one self-contained HTML file (``report.html``) and its pictures (``report/``).

A person opens one file instead of a notebook: the run's header (job, config, backend,
versions, totals, throughput, failures), the metrics' distributions, a summary table sortable
by any metric and one card per image with thumbnails of what went in and what came out (a
click opens a larger view). Everything is built from the files of a run (``metrics.jsonl``,
``summary.json`` and the images they name), so ``gpupix report OUTPUT_DIR`` rebuilds exactly
what the run wrote.

The package, in the order the data flows:

- :mod:`~gpupix.report.checks`: the rows and the summary read back as untrusted data;
- :mod:`~gpupix.report.cards`: what each card, the table and the overview show, from row
  fields and the job's :class:`~gpupix.jobs.ReportHints` (never from the job's name);
- :mod:`~gpupix.report.pictures`: thumbnails, larger views, heat map, palette, scatter;
- :mod:`~gpupix.report.plots`: matplotlib's distributions and curves;
- :mod:`~gpupix.report.render`: the Jinja2 templates (``templates/``, autoescaped) and the
  CSS and JS (``static/``), inlined so the page opens offline.

The page links only relative paths and loads nothing from the network. Only
``report/thumbs``, ``report/views`` and ``report/plots`` are written: an input folder named
``report`` would have its outputs there, so they are not emptied, only stripped of pictures
this report no longer uses.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from gpupix.errors import ConfigError
from gpupix.forked import forked_map, usable_cores
from gpupix.io import write_atomic
from gpupix.output_dir import make_dirs, regular_files, remove_file
from gpupix.report import plots
from gpupix.report.cards import (
    Card,
    JobView,
    build_card,
    numeric_columns,
    overview_facts,
    split_constants,
    write_pictures,
)
from gpupix.report.checks import checked_row, checked_summary, read_summary
from gpupix.report.pictures import ERROR_SCALE, THUMB_SIZE, VIEW_SIZE
from gpupix.report.render import render_page
from gpupix.rows import METRICS_FILE, REPORT_DIR, REPORT_FILE, SUMMARY_FILE, Row, read_rows

__all__ = ["write_report", "rebuild_report", "PAGE_SIZE", "THUMB_SIZE", "VIEW_SIZE"]

PAGE_SIZE = 50
EAGER_CARDS = 6  # cards above the fold load at once; the rest as they scroll into view
SWATCH_LIMIT = 16
FAILURE_LIMIT = 200
ASSET_FOLDERS = ("thumbs", "views", "plots")


def write_report(output_dir: str | Path, rows: list[Row], summary: dict[str, Any] | None, *,
                 workers: int | None = None) -> Path:
    """Write ``report.html`` and ``report/`` into ``output_dir``; return the HTML file's path.

    Parameters
    ----------
    output_dir : path
        The run's output folder; every link in the page is relative to it.
    rows : list of dict
        The run's metrics rows (as in ``metrics.jsonl``).
    summary : dict or None
        The run's ``summary.json``; None for a run that did not finish (the header then says
        so and counts from ``rows``).
    workers : int, optional
        Processes (or threads, for a few images) making the cards' pictures; default: one
        per core, at most 4.
    """
    started = time.perf_counter()
    output_dir = Path(output_dir)
    checked = [checked_row(row) for row in rows]  # the files of a run are data, not markup
    rows = [row for row, _ in checked]
    summary = checked_summary(summary)
    assets = output_dir / REPORT_DIR
    for sub in ASSET_FOLDERS:  # only what a report writes: never the run's outputs
        make_dirs(assets / sub, root=output_dir)  # a link planted below is refused
    job = JobView.of(summary, rows)
    workers = workers or min(4, usable_cores())
    built = forked_map(_build_card, len(rows), (rows, [problems for _, problems in checked],
                                                job, output_dir), workers=workers)
    cards = [card for card, _ in built]
    used = {src for _, written in built for src in written}
    columns, constants = split_constants(rows, numeric_columns(rows, job.hints))
    plot_note = distributions = None
    if not plots.available():
        plot_note = "Plots are not drawn: matplotlib is not installed."
    else:
        distributions = plots.distribution_plot(rows, columns,
                                                assets / "plots" / "distributions.png",
                                                output_dir)
        used.update(plots.draw_curves(cards, output_dir))
    used.add(distributions)
    _remove_stale(output_dir, used)
    done = sum(row.get("status") in ("ok", "skipped") for row in rows)
    config = (summary or {}).get("config")
    page = render_page(
        title=f"gpupix {job.name}: {len(rows)} images", cards=cards, columns=columns,
        counts={s: sum(r.get("status") == s for r in rows) for s in ("ok", "skipped", "failed")},
        finished=summary is not None, facts=overview_facts(summary or {}, rows, job),
        constants=constants,
        config_yaml=yaml.safe_dump(config, sort_keys=False) if config else "",
        failures=[(i, r) for i, r in enumerate(rows) if r.get("status") == "failed"],
        distributions=distributions, plot_note=plot_note,
        no_plot=f"{done} finished image{'s' if done != 1 else ''}: too few for a "
                f"distribution (at least {plots.MIN_HISTOGRAM}); the table has every value."
        if done < plots.MIN_HISTOGRAM else "Every metric has the same value for every image.",
        has_heat=any(p.label.startswith("difference") and p.thumb for c in cards
                     for p in c.panels),
        has_scatter=any(p.label == "colour scatter" for c in cards for p in c.panels),
        page_size=PAGE_SIZE, eager_cards=EAGER_CARDS, swatch_limit=SWATCH_LIMIT,
        failure_limit=FAILURE_LIMIT, error_scale=f"{ERROR_SCALE:g}", thumb_size=THUMB_SIZE,
        view_size=VIEW_SIZE, report_seconds=time.perf_counter() - started)
    target = output_dir / REPORT_FILE
    write_atomic(target, page.encode("utf-8"), root=output_dir)
    return target


def _build_card(shared: tuple[list[Row], list[list[str]], JobView, Path], index: int
                ) -> tuple[Card, list[str]]:
    """One card with its pictures written; what goes back is small (the pictures are files)."""
    rows, problems, job, output_dir = shared
    card = build_card(index, rows[index], job=job, output_dir=output_dir)
    card.problems += problems[index]
    return card, write_pictures(card, output_dir)


def _remove_stale(output_dir: Path, used: set[str | None]) -> None:
    """Delete the pictures of an earlier report that this one does not use.

    Files are overwritten in place rather than the folders emptied first: on a rebuild that
    is several times cheaper than unlinking and creating thousands of small files.
    """
    for sub in ASSET_FOLDERS:  # regular files only: a link is never followed or removed
        folder = output_dir / REPORT_DIR / sub
        for name in regular_files(folder, root=output_dir):
            if f"{REPORT_DIR}/{sub}/{name}" not in used:
                remove_file(folder / name, root=output_dir)


def rebuild_report(output_dir: str | Path) -> Path:
    """Write the report of a finished (or interrupted) run from the files in ``output_dir``.

    Raises :class:`ConfigError` when the folder holds no run (no ``metrics.jsonl``).
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise ConfigError(f"{str(output_dir)!r} is not a directory (expected a run's output.dir)")
    metrics = output_dir / METRICS_FILE
    if not metrics.is_file():
        raise ConfigError(f"{str(output_dir)!r} holds no {METRICS_FILE}; is it a run's "
                          "output.dir?")
    summary = read_summary(output_dir / SUMMARY_FILE)
    rows = sorted(read_rows(metrics), key=lambda r: (str(r.get("output")), str(r["input"])))
    return write_report(output_dir, rows, summary)
