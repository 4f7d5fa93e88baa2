"""matplotlib figures: the metrics' distributions over the batch and per-image curves.

The object-oriented API (no pyplot) keeps no global state and needs no GUI backend. A metric
is drawn only where a picture says more than its numbers: constants are given once in the
overview; a metric known for fewer than :data:`MIN_HISTOGRAM` images is a strip of dots, and
a batch of fewer images gets no figure (the table has every value).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from gpupix.report.cards import Card, curve_data, value
from gpupix.report.pictures import save
from gpupix.rows import REPORT_DIR, Row

MIN_HISTOGRAM = 5    # fewer values than this: dots, not bars
HISTOGRAM_LIMIT = 12
CURVE_LIMIT = 50     # per-image curves drawn; later cards list their values
BLUE, ORANGE = "#4c72b0", "#dd8452"
PANEL = (3.4, 2.4)  # inches a metric's panel takes, margins included
MARGINS = (0.55, 0.2, 0.45, 0.3, 0.65, 0.75)  # left, right, bottom, top, between x, between y


def available() -> bool:
    """Whether matplotlib is installed, without importing it (a second of start-up, paid
    only when a figure is drawn)."""
    import importlib.util
    import sys

    if "matplotlib.figure" in sys.modules:  # imported already, or blocked (None)
        return sys.modules["matplotlib.figure"] is not None
    return importlib.util.find_spec("matplotlib") is not None


def distribution_series(rows: list[Row], columns: list[str]) -> list[tuple[str, np.ndarray]]:
    """The values of each varying column over the images done (at most HISTOGRAM_LIMIT)."""
    done = [r for r in rows if r.get("status") in ("ok", "skipped")]
    series = []
    for key in columns:
        values = np.asarray([v for v in (value(r, key) for r in done) if v is not None])
        if len(np.unique(values)) >= 2:  # one value, or none, is no distribution
            series.append((key, values))
    return series[:HISTOGRAM_LIMIT]


def distribution_figure(series: list[tuple[str, np.ndarray]]) -> Any:
    """One figure, a panel per metric: a histogram, or a strip of dots for a few values.

    Counts are whole images (integer ticks); x ticks are few and never overlap (at most four
    ticks, compact labels, margins sized for them).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(series))
    lines = math.ceil(len(series) / columns)
    width, height = PANEL[0] * columns, PANEL[1] * lines
    figure = Figure(figsize=(width, height), dpi=80)
    # margins fixed in inches: constrained layout measures every label and would double the
    # figure's cost; short tick labels (four ticks, scientific notation) fit these
    left, right, bottom, top, gap_x, gap_y = MARGINS
    figure.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                           top=1 - top / height, wspace=gap_x / (PANEL[0] - gap_x),
                           hspace=gap_y / (PANEL[1] - gap_y))
    for position, (key, values) in enumerate(series, start=1):
        axes = figure.add_subplot(lines, columns, position)
        axes.set_title(f"{key}  (mean {values.mean():.4g}, {len(values)} images)", fontsize=9)
        axes.tick_params(labelsize=7)
        axes.xaxis.set_major_locator(MaxNLocator(nbins=4, min_n_ticks=2))
        axes.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useOffset=False)
        axes.xaxis.get_offset_text().set_fontsize(7)
        if len(values) < MIN_HISTOGRAM:
            axes.plot(values, np.zeros_like(values), "o", color=BLUE, alpha=0.7)
            axes.set_yticks([])
            axes.spines[["left", "right", "top"]].set_visible(False)
            continue
        axes.hist(values, bins=_bins(values), color=BLUE)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("images", fontsize=7)
    return figure


def _bins(values: np.ndarray) -> Any:
    """Whole numbers over a short range: one bar per value; otherwise about n/4 bars."""
    low, high = float(values.min()), float(values.max())
    if np.all(values == np.round(values)) and high - low <= 30:
        return np.arange(low - 0.5, high + 1.5)
    return min(30, max(5, len(values) // 4))


def distribution_plot(rows: list[Row], columns: list[str], target: Path,
                      output_dir: Path) -> str | None:
    """Write the distributions' figure to ``target``; its href, or None when there is none."""
    done = sum(r.get("status") in ("ok", "skipped") for r in rows)
    series = distribution_series(rows, columns) if done >= MIN_HISTOGRAM else []
    if not series:
        return None
    figure = distribution_figure(series)
    save(target, output_dir, lambda out: figure.savefig(out, format="png"))
    return f"{REPORT_DIR}/plots/{target.name}"


def draw_curves(cards: list[Card], output_dir: Path) -> list[str]:
    """Curves for the first CURVE_LIMIT cards that have one (the rest list values)."""
    curves = [(card, *data) for card in cards
              if (data := curve_data(card.row)) != (None, None)][:CURVE_LIMIT]
    if not curves:
        return []  # no curve: matplotlib is not even imported
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    drawn = []
    for card, k_curve, sweep in curves:
        figure = Figure(figsize=(2.6, 1.9), dpi=80, layout="constrained")
        axes = figure.add_subplot()
        axes.tick_params(labelsize=7)
        axes.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        if k_curve is not None:
            ks, errors = k_curve
            axes.plot(ks, errors, "o-", markersize=3, color=BLUE)
            best = int(np.argmin(errors))
            axes.plot([ks[best]], [errors[best]], "o", color=ORANGE)
            axes.set_xlabel("K", fontsize=8)
            axes.set_ylabel("validation error", fontsize=8)
        else:
            ks, inertia, psnr = sweep
            axes.plot(ks, inertia, "o-", markersize=3, color=BLUE)
            axes.set_xlabel("k", fontsize=8)
            axes.set_ylabel("inertia", fontsize=8, color=BLUE)
            if psnr is not None:
                twin = axes.twinx()
                twin.plot(ks, psnr, "s--", markersize=3, color=ORANGE)
                twin.set_ylabel("PSNR [dB]", fontsize=8, color=ORANGE)
                twin.tick_params(labelsize=7)
        name = f"thumbs/{card.index:05d}-curve.png"
        save(output_dir / REPORT_DIR / name, output_dir,
             lambda out, figure=figure: figure.savefig(out, format="png"))
        card.curve = f"{REPORT_DIR}/{name}"
        drawn.append(card.curve)
    return drawn
