"""What the page shows, from the rows and the job's report hints: cards, table, overview.

A card is drawn from row fields, and the job's :class:`~gpupix.jobs.ReportHints` say how to
label and compare them; nothing here knows a job by its name.

- ``input``, ``output`` (paths): always; ``outputs`` (list): further outputs, shown by name;
- ``reference`` (the clean original), ``mask`` (white = missing), ``damaged``, ``noisy``
  (paths, absolute or relative to the output folder): extra panels when present;
- ``palette`` (``"#rrggbb"`` list) and ``palette_shares`` (fractions): swatches; when absent and
  the output is a palette PNG they are read from its palette and index histogram;
- ``k_curve`` (``{"k": [...], "error": [...]}`` or a list for K = 1, 2, ...) and ``sweep``
  (``{"k": [...], "inertia": [...], "psnr": [...]}``): curves;
- every other number: the card's metrics, a column of the table and a distribution.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gpupix.io import IMAGE_SUFFIXES
from gpupix.jobs import JOBS, ReportHints, report_hints
from gpupix.report import pictures
from gpupix.report.checks import PATH_FIELDS, is_number
from gpupix.report.pictures import Panel, make_panel, read_output, read_pixels, size_text
from gpupix.rows import REPORT_DIR, Row

KEY_COLOR = (255, 0, 255)      # when the recorded config names none (or a broken one)
MASK_SUFFIX = ".mask.png"
PATH_LABEL = {"damaged": "damaged", "noisy": "noisy", "reference": "clean original",
              "mask": "mask (white = missing)"}
DAMAGED = ("noisy", "damaged")
# Shown elsewhere on a card, or not numbers a person compares.
NOT_METRICS = frozenset({"width", "height", "bytes_in", "bytes_out", "palette_shares"})
NOT_COLUMNS = frozenset({"width", "height", "bytes_in", "bytes_out"})  # size and bytes_ratio
LAST_COLUMNS = ("seconds",)
DONE = ("ok", "skipped")


@dataclass
class Card:
    index: int
    row: Row
    panels: list[Panel] = field(default_factory=list)
    palette: list[tuple[str, float]] = field(default_factory=list)
    palette_note: str = ""
    palette_stops: list[tuple[str, float, float]] = field(default_factory=list)
    curve: str | None = None
    problems: list[str] = field(default_factory=list)
    files: list[tuple[str, str | None]] = field(default_factory=list)  # outputs not pictures

    @property
    def name(self) -> str:
        return Path(str(self.row.get("input", "?"))).name

    @property
    def status(self) -> str:
        return str(self.row.get("status"))


@dataclass(frozen=True)
class JobView:
    """The job's name and hints, and what its recorded config says about missing pixels."""

    name: str
    hints: ReportHints
    key_color: tuple[int, int, int] = KEY_COLOR
    mask_suffix: str = MASK_SUFFIX

    @classmethod
    def of(cls, summary: dict[str, Any] | None, rows: list[Row]) -> JobView:
        summary = summary or {}
        name = summary.get("job") or guess_job(rows)
        section = (summary.get("config") or {}).get(name)
        section = section if isinstance(section, dict) else {}
        key_color = pictures.hex_to_rgb(str(section.get("key_color", "")), KEY_COLOR)
        mask_suffix = section.get("mask_suffix")
        if not isinstance(mask_suffix, str) or not mask_suffix or \
                set(mask_suffix) & set("/\\\0"):
            mask_suffix = MASK_SUFFIX  # a name beside the input, never a path elsewhere
        return cls(name=name, hints=report_hints(name), key_color=key_color,
                   mask_suffix=mask_suffix)


def guess_job(rows: Iterable[Row]) -> str:
    """The job whose hints' ``marks`` (row keys only it writes) a row carries; else "job"."""
    marks = {name: report_hints(name).marks for name in JOBS}
    for row in rows:
        for name, keys in marks.items():
            if any(key in row for key in keys):
                return name
    return "job"


# ---------------------------------------------------------------------------- one card


def build_card(index: int, row: Row, *, job: JobView, output_dir: Path) -> Card:
    """Panels, heat map, palette and scatter of one row; a problem never stops the report.

    The pictures stay in memory: :func:`gpupix.report.pictures.write_sprites` writes them.
    """
    hints = job.hints
    card = Card(index=index, row=row)
    problems = card.problems
    input_path = locate(row.get("input"), output_dir)
    output_path = locate(row.get("output"), output_dir) if row.get("status") != "failed" \
        else None

    def panel(label: str, pixels: np.ndarray | None, path: Path | None, **options: Any) -> None:
        problem = problems[-1] if pixels is None and problems else None
        card.panels.append(make_panel(label, pixels, href(path, output_dir), problem=problem,
                                      **options))

    source = read_pixels(input_path, problems)
    mask = None
    mask_path = locate(row.get("mask"), output_dir)
    if mask_path is None and row.get("mask_source") == "file" and input_path is not None:
        mask_path = input_path.with_name(input_path.stem + job.mask_suffix)
    if mask_path is not None:
        mask_image = read_pixels(mask_path, problems)
        if mask_image is not None:
            mask = mask_image[..., :3].max(axis=2) > 127
    named = {locate(row.get(f), output_dir) for f in PATH_FIELDS} - {None}
    extras = [] if output_path is None else [
        (path, extra_label(path, output_path)) for path in
        (locate(p, output_dir) for p in row.get("outputs", [])[1:]) if path not in named]
    # an input written out again damaged or noisy beside the result is the clean original
    input_is_clean = not hints.input_is_damage_source and (
        any(label in DAMAGED for _, label in extras) or any(row.get(f) for f in DAMAGED))
    input_label = "clean original" if input_is_clean else hints.input_label
    against_name = input_label
    shown_source = source
    if source is not None and mask is not None and hints.key_color_panel:
        if mask.shape == source.shape[:2]:  # missing pixels in the key colour, whatever the mask
            shown_source = source.copy()
            shown_source[mask, :3] = job.key_color
            input_label += " (missing in the key colour)"
        else:
            problems.append(f"mask is {size_text(mask)}, image is {size_text(source)}")
    panel(input_label, shown_source, input_path)

    for name in DAMAGED[::-1]:
        path = locate(row.get(name), output_dir)
        if path is not None and path != input_path:
            panel(PATH_LABEL[name], read_pixels(path, problems), path)

    output = indices = palette = alpha = None
    if output_path is not None and output_path.suffix.lower() not in IMAGE_SUFFIXES:
        card.files.append((output_path.name, href(output_path, output_dir)))
        output_path = None  # not a picture (a model file): linked, not shown
    if output_path is not None:
        output, indices, palette, alpha = read_output(output_path, problems)
        panel(hints.output_label, output, output_path)

    reference = None
    reference_path = locate(row.get("reference"), output_dir)
    if reference_path is not None:
        reference = read_pixels(reference_path, problems)
        panel(PATH_LABEL["reference"], reference, reference_path)
    if mask is not None:
        panel(PATH_LABEL["mask"], mask.astype(np.uint8) * 255, mask_path)
    for path, label in extras:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            card.files.append((path.name, href(path, output_dir)))
        else:
            panel(label, read_pixels(path, problems), path)

    if input_is_clean:  # damaged (or noisy) | result | clean
        first = [p for p in card.panels[1:] if p.label in DAMAGED]
        card.panels = first + [p for p in card.panels[1:] if p not in first] + card.panels[:1]
    if reference is not None:
        against, against_name = reference, PATH_LABEL["reference"]
    elif input_is_clean or hints.diff_against_input:
        against = source
    else:
        against = None
    if output is not None and against is not None:
        if output.shape[:2] == against.shape[:2]:
            view, thumb = pictures.heat_map(output, against)
            panel(f"difference from {against_name}", view, None, thumb_pixels=thumb,
                  caption=f"RGB distance, 0 to {pictures.ERROR_SCALE:g}+")
        else:
            problems.append(f"no difference map: output is {size_text(output)}, "
                            f"{against_name} is {size_text(against)}")

    _palette(card, row, indices, palette, alpha)
    if indices is not None and palette is not None and source is not None \
            and source.shape[:2] == indices.shape:
        canvas, limit = pictures.scatter(source, indices, palette, alpha, seed=index)
        panel("colour scatter", canvas, None, caption=f"a* \u2192, b* \u2191, \u00b1{limit:g}")
    return card


def write_pictures(card: Card, output_dir: Path) -> list[str]:
    """The card's two sprites, ``report/thumbs/NNNNN`` and ``report/views/NNNNN``."""
    assets = output_dir / REPORT_DIR
    name = f"{card.index:05d}"
    return pictures.write_sprites(card.panels, assets / "thumbs" / name,
                                  assets / "views" / name, output_dir,
                                  lambda path: href(path, output_dir) or "")


def _palette(card: Card, row: Row, indices: np.ndarray | None, palette: np.ndarray | None,
             alpha: np.ndarray | None) -> None:
    """Swatches with hex codes and pixel shares, and the stops of a bar sized by share."""
    entries: list[tuple[str, float]] = []
    if isinstance(row.get("palette"), list) and row["palette"]:
        codes = [str(c) for c in row["palette"]]
        shares = row.get("palette_shares")
        if not (isinstance(shares, list) and len(shares) == len(codes)):
            shares = [1.0 / len(codes)] * len(codes)
            card.palette_note = "shares not recorded; entries shown equally"
        entries = [(c, float(s or 0.0)) for c, s in zip(codes, shares, strict=True)]
    elif indices is not None and palette is not None:
        entries, card.palette_note = pictures.palette_shares(indices, palette, alpha)
    if not entries:
        return
    entries.sort(key=lambda e: -e[1])
    card.palette = entries
    total = max(sum(share for _, share in entries), 1e-12)
    left = 0.0
    for code, share in entries:  # a CSS gradient with hard stops: exact colours, no file
        right = left + 100.0 * share / total
        card.palette_stops.append((code, left, right))
        left = right


def locate(value: Any, output_dir: Path) -> Path | None:
    """A path from a row: absolute, relative to where the run ran, or to the output folder."""
    if not value:
        return None
    path = Path(str(value))
    if path.is_absolute() or path.exists():
        return path
    return output_dir / path


def href(path: Path | None, output_dir: Path) -> str | None:
    """``path`` relative to the report, as a POSIX path (the template URL-quotes it)."""
    if path is None:
        return None
    try:
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(output_dir))
    except ValueError:  # another drive on Windows
        return None
    return Path(relative).as_posix()


def extra_label(path: Path, main: Path | None) -> str:
    """A further output's label from its name: ``img.mask.png`` beside ``img.png`` -> mask."""
    if main is not None and path.name.startswith(main.stem + "."):
        return path.name[len(main.stem) + 1:].rsplit(".", 1)[0] or path.name
    return path.name


def metric_items(row: Row) -> list[tuple[str, str]]:
    """The card's facts: bytes before and after, then every number and short text."""
    items = []
    if is_number(row.get("bytes_in")) and is_number(row.get("bytes_out")):
        pixels = (row.get("width") or 0) * (row.get("height") or 0)
        bits = f", {8 * row['bytes_out'] / pixels:.2f} bits/px" if pixels else ""
        ratio = f" ({row['bytes_out'] / row['bytes_in']:.1%})" if row["bytes_in"] else ""
        items.append(("bytes", f"{row['bytes_in']:,} \u2192 {row['bytes_out']:,}{ratio}{bits}"))
    for key, value in row.items():
        if key in NOT_METRICS or key in ("input", "output", "status", "error", *PATH_FIELDS):
            continue
        if is_number(value):
            items.append((key, fmt(key, float(value))))
        elif isinstance(value, str) and len(value) <= 200:
            items.append((key, value))
    return items


# ---------------------------------------------------------------------------- curves


def curve_data(row: Row) -> tuple[tuple[list[float], list[float]] | None,
                                  tuple[list[float], list[float], list[float] | None] | None]:
    """``(ks, errors)`` of a K search and ``(ks, inertia, psnr or None)`` of a k sweep."""
    k_curve = sweep = None
    data = row.get("k_curve")
    if _series(data):  # the list form: the error for K = 1, 2, ...
        k_curve = ([float(k) for k in range(1, len(data) + 1)], _series(data))
    elif isinstance(data, dict) and _series(data.get("k")) and \
            len(_series(data.get("error"))) == len(_series(data.get("k"))):
        k_curve = (_series(data["k"]), _series(data["error"]))
    data = row.get("sweep")
    if isinstance(data, dict) and _series(data.get("k")) and \
            len(_series(data.get("inertia"))) == len(_series(data.get("k"))):
        psnr = _series(data.get("psnr"))
        sweep = (_series(data["k"]), _series(data["inertia"]),
                 psnr if len(psnr) == len(_series(data["k"])) else None)
    return k_curve, sweep


def curve_table(row: Row) -> tuple[str, tuple[str, ...], list[tuple[str, ...]]] | None:
    """A curve as values, for a card without a drawn one: (title, header, lines)."""
    k_curve, sweep = curve_data(row)
    if k_curve is not None:
        return "K search", ("K", "error"), [tuple(f"{v:.4g}" for v in line)
                                            for line in zip(*k_curve, strict=True)]
    if sweep is not None:
        ks, inertia, psnr = sweep
        lines = zip(ks, inertia, psnr or [math.nan] * len(ks), strict=True)
        return "k sweep", ("k", "inertia", "PSNR"), [tuple(f"{v:.4g}" for v in line)
                                                      for line in lines]
    return None


def _series(values: Any) -> list[float]:
    if not isinstance(values, list) or not all(is_number(v) for v in values):
        return []
    return [float(v) for v in values]


# ---------------------------------------------------------------------------- the batch


def value(row: Row, key: str) -> float | None:
    """A row's number for a column (``bytes_ratio`` is derived), or None."""
    if key == "bytes_ratio":
        if is_number(row.get("bytes_in")) and is_number(row.get("bytes_out")) \
                and row["bytes_in"]:
            return row["bytes_out"] / row["bytes_in"]
        return None
    number = row.get(key)
    return float(number) if is_number(number) else None


def numeric_columns(rows: list[Row], hints: ReportHints) -> list[str]:
    """Every metric some row has a number for: the job's columns first, seconds last."""
    found = {key for row in rows for key, number in row.items()
             if is_number(number) and key not in NOT_COLUMNS}
    if any(value(row, "bytes_ratio") is not None for row in rows):
        found.add("bytes_ratio")
    first = [key for key in hints.columns if key in found]
    last = [key for key in LAST_COLUMNS if key in found and key not in first]
    return first + sorted(found - set(first) - set(last)) + last


def split_constants(rows: list[Row], columns: list[str]
                    ) -> tuple[list[str], list[tuple[str, float]]]:
    """Columns that vary over the images done, and those that do not, with their one value.

    A constant (``bits_palette`` when every image has the same K) says nothing as a column or
    a histogram; the overview gives it once. With fewer than two images nothing is constant.
    """
    done = [row for row in rows if row.get("status") in DONE]
    varying, constants = [], []
    for key in columns:
        values = [value(row, key) for row in done]
        numbers = {v for v in values if v is not None}
        if len(done) >= 2 and len(numbers) == 1 and None not in values:
            constants.append((key, numbers.pop()))
        else:
            varying.append(key)
    return varying, constants


def fmt(key: str, number: float) -> str:
    """A metric as text: ratios as percentages, whole numbers with separators."""
    if key == "bytes_ratio":
        return f"{number:.1%}"
    if float(number).is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    return f"{number:.4g}"


def overview_facts(summary: dict[str, Any], rows: list[Row], job: JobView
                   ) -> list[tuple[str, str]]:
    """The header's facts: job, backend, versions, counts, time, bytes, means."""
    facts: list[tuple[str, str]] = [("job", job.name)]
    backend = summary.get("backend") or {}
    if backend:
        facts.append(("backend", f"{backend.get('backend', '?')} on {backend.get('device', '?')}"))
    versions = dict(summary.get("versions") or {})
    versions.update({k: v for k, v in backend.items() if k not in ("backend", "device")})
    if versions:
        facts.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    done = [r for r in rows if r.get("status") == "ok"]
    counts = {s: sum(r.get("status") == s for r in rows) for s in ("ok", "skipped", "failed")}
    facts.append(("images", f"{len(rows)} ({counts['ok']} ok, {counts['skipped']} skipped, "
                            f"{counts['failed']} failed)"))
    wall = summary.get("wall_seconds")
    if is_number(wall):
        pixels = (summary.get("totals") or {}).get("pixels") or sum(
            r.get("width", 0) * r.get("height", 0) for r in done)
        rate = summary.get("images_per_second")
        throughput = f"{wall:.2f} s"
        if is_number(rate):
            throughput += f", {rate:.2f} images/s"
        if wall > 0 and pixels:
            throughput += f", {pixels / wall / 1e6:.2f} Mpx/s"
        facts.append(("time", throughput))
    totals = summary.get("totals") or {
        "bytes_in": sum(r.get("bytes_in", 0) for r in done),
        "bytes_out": sum(r.get("bytes_out", 0) for r in done)}
    if totals.get("bytes_in"):
        facts.append(("bytes in \u2192 out", f"{totals['bytes_in']:,} \u2192 "
                      f"{totals.get('bytes_out', 0):,} "
                      f"({totals.get('bytes_out', 0) / totals['bytes_in']:.1%})"))
    means = summary.get("means") or {}
    shown = [k for k in job.hints.columns if k in means] or \
        [k for k in means if k not in NOT_COLUMNS][:8]
    if shown:
        facts.append(("means", ", ".join(f"{k} {means[k]:.4g}" for k in shown)))
    return facts
