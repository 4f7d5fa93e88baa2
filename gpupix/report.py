"""Results -> one self-contained HTML file (``report.html``) and its pictures (``report/``).

A person opens one file instead of a notebook: the run's header (job, config, backend,
versions, totals, throughput, failures), a summary table sortable by any metric, histograms
of the metrics over the batch and one card per image with thumbnails of what went in and what
came out. Everything is built from the files of a run (``metrics.jsonl``, ``summary.json``
and the images they name), so ``gpupix report OUTPUT_DIR`` rebuilds exactly what the run wrote.

The page links only relative paths, loads nothing from the network (its CSS and its few lines
of JavaScript are inline) and works offline. Thumbnails are at most :data:`THUMB_SIZE` pixels
on a side (never full-size copies); a card's thumbnails share one file in ``report/thumbs``
(a sprite the page crops), plots are in ``report/plots``. Only those two folders are
rewritten: an input folder named ``report`` would have its outputs there, so they are not
emptied, only stripped of pictures this report no longer uses.

Cards are drawn from row fields, so every job gets one without code here:

- ``input``, ``output`` (paths): always; ``outputs`` (list): further outputs, shown by name;
- ``reference`` (the clean original), ``mask`` (white = missing), ``damaged``, ``noisy``
  (paths, absolute or relative to the output folder): extra panels when present;
- ``palette`` (``"#rrggbb"`` list) and ``palette_shares`` (fractions): swatches; when absent and
  the output is a palette PNG they are read from its palette and index histogram;
- ``k_curve`` (``{"k": [...], "error": [...]}``) and ``sweep`` (``{"k": [...],
  "inertia": [...], "psnr": [...]}``): curves;
- every other number: the card's metrics, a column of the table and a histogram.

A difference heat map ``|output - reference|`` is drawn when a reference is known, or against
the input for jobs whose input is the image the output should stay close to (quantize,
denoise). Costs: each file is decoded once per card and every view (thumbnail, heat map,
palette, colour scatter) is derived from that one decode, and a card writes one file;
matplotlib draws one figure of
histograms per run and per-image curves only for the first :data:`CURVE_LIMIT` cards that
have one (later cards list the values); the a*-b* colour scatter is rasterized with NumPy,
which makes it cheap enough for every card. All of this runs on the host (Pillow, NumPy).
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import yaml
from PIL import Image

from gpupix.errors import ConfigError, GpupixError, ImageError
from gpupix.io import IMAGE_SUFFIXES, decode, open_image, write_atomic
from gpupix.output_dir import make_dirs, regular_files, remove_file
from gpupix.rows import METRICS_FILE, REPORT_DIR, REPORT_FILE, SUMMARY_FILE, Row, read_rows

THUMB_SIZE = 160
PAGE_SIZE = 50
EAGER_CARDS = 6  # cards above the fold load at once; the rest as they scroll into view
CURVE_LIMIT = 50
SCATTER_SAMPLE = 1500
SCATTER_SIZE = 160
ERROR_SCALE = 64.0  # RGB distance at which the heat map saturates: the same scale on every card
SWATCH_LIMIT = 16
HISTOGRAM_LIMIT = 12
FAILURE_LIMIT = 200
KEY_COLOR = "#ff00ff"

INPUT_LABEL = {"quantize": "original", "inpaint": "damaged", "denoise": "noisy",
               "corrupt": "clean"}
OUTPUT_LABEL = {"quantize": "quantized", "inpaint": "repaired", "denoise": "denoised",
                "corrupt": "damaged"}
DIFF_AGAINST_INPUT = frozenset({"quantize", "denoise"})
PATH_FIELDS = ("damaged", "noisy", "reference", "mask")
PATH_LABEL = {"damaged": "damaged", "noisy": "noisy", "reference": "clean original",
              "mask": "mask (white = missing)"}
# Shown elsewhere on a card, or not numbers a person compares.
NOT_METRICS = frozenset({"width", "height", "bytes_in", "bytes_out", "palette_shares"})
PREFERRED_COLUMNS = ("psnr", "psnr_missing", "ssim", "delta_e", "rmse", "k", "colours_out",
                     "unique_colours_in", "bytes_in", "bytes_out", "bytes_ratio", "seconds")
# inferno-like anchors for the heat map: dark = no difference, bright = ERROR_SCALE or more
_HEAT_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9],
                          [252, 255, 164]], dtype=np.float32)
_HEAT_LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_HEAT_ANCHORS)),
                                _HEAT_ANCHORS[:, c]) for c in range(3)], axis=1).astype(np.uint8)


@dataclass
class Panel:
    """One picture on a card: a thumbnail (path below the output folder) or why there is none."""

    label: str
    thumb: str | None = None
    link: str | None = None
    caption: str = ""
    problem: str | None = None
    size: tuple[int, int] = (0, 0)   # of the thumbnail
    zoom: int = 1                     # shown enlarged by this whole factor
    offset: int = 0                   # where the thumbnail starts in its card's sprite
    sprite: tuple[int, int] = (0, 0)  # the sprite's size
    image: Image.Image | None = None  # until the sprite is written


@dataclass
class Card:
    index: int
    row: Row
    panels: list[Panel] = field(default_factory=list)
    palette: list[tuple[str, float]] = field(default_factory=list)
    palette_note: str = ""
    palette_bar: str | None = None
    curve: str | None = None
    problems: list[str] = field(default_factory=list)
    files: list[tuple[str, str | None]] = field(default_factory=list)  # outputs not pictures


# ---------------------------------------------------------------------------- entry points


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
        Threads making thumbnails (Pillow and NumPy release the GIL); default: up to 4.
    """
    started = time.perf_counter()
    output_dir = Path(output_dir)
    checked = [_checked_row(row) for row in rows]  # the files of a run are data, not markup
    rows = [row for row, _ in checked]
    summary = _checked_summary(summary)
    assets = output_dir / REPORT_DIR
    for sub in ("thumbs", "plots"):  # only what a report writes: never the run's outputs
        make_dirs(assets / sub, root=output_dir)  # a link planted below is refused
    job = (summary or {}).get("job") or _guess_job(rows)
    config = (summary or {}).get("config") or {}
    inpaint = config.get("inpaint") if isinstance(config.get("inpaint"), dict) else {}
    key_color = _hex_to_rgb(str(inpaint.get("key_color", KEY_COLOR)))
    mask_suffix = inpaint.get("mask_suffix")
    if not isinstance(mask_suffix, str) or not mask_suffix or set(mask_suffix) & set("/\\\0"):
        mask_suffix = ".mask.png"  # a name beside the input, never a path elsewhere
    workers = workers or min(4, os.cpu_count() or 1)

    def build(pair: tuple[int, Row]) -> Card:
        card = _build_card(pair[0], pair[1], job=job, output_dir=output_dir,
                           key_color=key_color, mask_suffix=mask_suffix)
        card.problems += checked[pair[0]][1]
        return card

    with ThreadPoolExecutor(workers, thread_name_prefix="gpupix-report") as pool:
        cards = list(pool.map(build, enumerate(rows)))
    plotting = _matplotlib()
    plot_note = None
    distributions = None
    if plotting is None:
        plot_note = ("Plots are not drawn: matplotlib is not installed "
                     "(pip install 'gpupix[report]').")
    else:
        distributions = _distribution_plot(rows, assets / "plots" / "distributions.png")
        _draw_curves(cards, output_dir)
    _remove_stale(output_dir, cards, distributions)
    page = _render_page(job=job, rows=rows, summary=summary, cards=cards,
                        distributions=distributions, plot_note=plot_note,
                        report_seconds=time.perf_counter() - started)
    target = output_dir / REPORT_FILE
    write_atomic(target, page.encode("utf-8"), root=output_dir)
    return target


def _remove_stale(output_dir: Path, cards: list[Card], distributions: str | None) -> None:
    """Delete the pictures of an earlier report that this one does not use.

    Files are overwritten in place rather than the folders emptied first: on a rebuild that
    is several times cheaper than unlinking and creating thousands of small files.
    """
    used = {distributions} | {panel.thumb for card in cards for panel in card.panels} | {
        card.curve for card in cards}
    for sub in ("thumbs", "plots"):  # regular files only: a link is never followed or removed
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
    summary = None
    summary_path = output_dir / SUMMARY_FILE
    if summary_path.is_file():
        try:
            with open(summary_path, "rb") as handle:
                text = handle.read(MAX_SUMMARY_BYTES + 1)
            if len(text) > MAX_SUMMARY_BYTES:
                raise ValueError(f"more than {MAX_SUMMARY_BYTES:,} bytes")
            summary = json.loads(text.decode("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise GpupixError(f"{summary_path}: unreadable ({_cut(str(exc), 160)})") from None
        if not isinstance(summary, dict):
            summary = None
    rows = sorted(read_rows(metrics), key=lambda r: (str(r.get("output")), str(r["input"])))
    return write_report(output_dir, rows, summary)


# ---------------------------------------------------------------------------- per-image work


def _build_card(index: int, row: Row, *, job: str, output_dir: Path,
                key_color: tuple[int, int, int], mask_suffix: str = ".mask.png") -> Card:
    """Thumbnails, heat map, palette and scatter of one row; a problem never stops the report."""
    card = Card(index=index, row=row)
    stem = f"thumbs/{index:05d}"
    input_path = _locate(row.get("input"), output_dir)
    output_path = _locate(row.get("output"), output_dir) if row.get("status") != "failed" \
        else None

    source = _read(input_path, card)
    mask = None
    mask_path = _locate(row.get("mask"), output_dir)
    if mask_path is None and row.get("mask_source") == "file" and input_path is not None:
        mask_path = input_path.with_name(input_path.stem + mask_suffix)  # inpaint's mask file
    if mask_path is not None:
        mask_image = _read(mask_path, card)
        if mask_image is not None:
            mask = mask_image[..., :3].max(axis=2) > 127
    named = {_locate(row.get(f), output_dir) for f in PATH_FIELDS} - {None}
    extras = [] if output_path is None else [
        (path, _extra_label(path, output_path)) for path in
        (_locate(p, output_dir) for p in row.get("outputs", [])[1:]) if path not in named]
    # an input written out again damaged or noisy beside the result is the clean original
    input_is_clean = job != "corrupt" and (
        any(label in ("noisy", "damaged") for _, label in extras)
        or any(row.get(f) for f in ("noisy", "damaged")))
    input_label = "clean original" if input_is_clean else INPUT_LABEL.get(job, "input")
    shown_source = source
    if source is not None and mask is not None and job == "inpaint":
        if mask.shape == source.shape[:2]:  # missing pixels in the key colour, whatever the mask
            shown_source = source.copy()
            shown_source[mask, :3] = key_color
            input_label += " (missing in the key colour)"
        else:
            card.problems.append(f"mask is {_size(mask)}, image is {_size(source)}")
    card.panels.append(_panel(input_label, shown_source, input_path, output_dir,
                              error=None if source is not None else card.problems[-1:]))

    for name in ("damaged", "noisy"):
        path = _locate(row.get(name), output_dir)
        if path is not None and path != input_path:
            pixels = _read(path, card)
            card.panels.append(_panel(PATH_LABEL[name], pixels, path, output_dir,
                                      error=card.problems[-1:]))

    output = indices = palette = alpha = None
    if output_path is not None and output_path.suffix.lower() not in IMAGE_SUFFIXES:
        card.files.append((output_path.name, _href(output_path, output_dir)))
        output_path = None  # not a picture (a model file): linked, not shown
    if output_path is not None:
        output, indices, palette, alpha = _read_output(output_path, card)
        card.panels.append(_panel(OUTPUT_LABEL.get(job, "output"), output, output_path,
                                  output_dir, error=card.problems[-1:]))

    reference = None
    reference_path = _locate(row.get("reference"), output_dir)
    if reference_path is not None:
        reference = _read(reference_path, card)
        card.panels.append(_panel(PATH_LABEL["reference"], reference, reference_path,
                                  output_dir, error=card.problems[-1:]))
    if mask is not None:
        card.panels.append(_panel(PATH_LABEL["mask"], mask.astype(np.uint8) * 255,
                                  mask_path, output_dir))
    for path, label in extras:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            card.files.append((path.name, _href(path, output_dir)))
            continue
        card.panels.append(_panel(label, _read(path, card), path, output_dir,
                                  error=card.problems[-1:]))

    if input_is_clean:  # seed order: noisy (or damaged) | result | clean
        first = [p for p in card.panels[1:] if p.label in ("noisy", "damaged")]
        card.panels = first + [p for p in card.panels[1:] if p not in first] + card.panels[:1]
    if reference is not None:
        against, against_name = reference, "clean original"
    elif input_is_clean or job in DIFF_AGAINST_INPUT:
        against, against_name = source, input_label.split(" (")[0]
    else:
        against, against_name = None, ""
    if output is not None and against is not None:
        if output.shape[:2] == against.shape[:2]:
            heat = _heat_map(output, against)
            card.panels.append(_panel(f"difference from {against_name}", heat, None,
                                      output_dir, caption=f"RGB distance, 0 to {ERROR_SCALE:g}+"))
        else:
            card.problems.append(f"no difference map: output is {_size(output)}, "
                                 f"{against_name} is {_size(against)}")

    _palette(card, row, indices, palette, alpha)
    if indices is not None and palette is not None and source is not None \
            and source.shape[:2] == indices.shape:
        canvas, limit = _scatter(source, indices, palette, alpha, seed=index)
        card.panels.append(_panel("colour scatter", canvas, None, output_dir,
                                  caption=f"a* \u2192, b* \u2191, \u00b1{limit:g}"))
    _write_sprite(card, output_dir / REPORT_DIR / f"{stem}.jpg", output_dir)
    return card


def _locate(value: Any, output_dir: Path) -> Path | None:
    """A path from a row: absolute, relative to where the run ran, or to the output folder."""
    if not value:
        return None
    path = Path(str(value))
    if path.is_absolute() or path.exists():
        return path
    return output_dir / path


def _read(path: Path | None, card: Card) -> np.ndarray | None:
    if path is None:
        return None
    try:
        return decode(path).pixels
    except (ImageError, OSError) as exc:
        card.problems.append(str(exc))
        return None


def _read_output(path: Path, card: Card
                 ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None,
                            np.ndarray | None]:
    """The output's pixels, and for a palette PNG its indices, palette and per-entry alpha."""
    try:
        with open_image(path) as (image, _):
            palette_png = image.mode == "P"
            if palette_png:
                image.load()
                indices = np.asarray(image)
                raw = image.getpalette() or []
                transparency = image.info.get("transparency")
        if not palette_png:  # any other picture: the engine's own decoder (modes, EXIF)
            return decode(path).pixels, None, None, None
    except (OSError, ValueError, ImageError) as exc:
        card.problems.append(f"{path}: cannot read the output ({exc})")
        return None, None, None, None
    entries = max(int(indices.max(initial=0)) + 1, len(raw) // 3)
    palette = np.zeros((entries, 3), np.uint8)
    palette.ravel()[: len(raw)] = raw[: entries * 3]
    alpha = np.full(entries, 255, np.uint8)
    if isinstance(transparency, bytes):
        alpha[: len(transparency)] = np.frombuffer(transparency, np.uint8)[:entries]
    elif isinstance(transparency, int) and transparency < entries:
        alpha[transparency] = 0
    pixels = palette[indices]
    if (alpha < 255).any():
        pixels = np.dstack([pixels, alpha[indices]])
    return pixels, indices, palette, alpha


def _panel(label: str, pixels: np.ndarray | None, path: Path | None, output_dir: Path, *,
           error: list[str] | None = None, caption: str = "") -> Panel:
    """A panel and its thumbnail (in memory until :func:`_write_sprite`), or why none."""
    panel = Panel(label=label, link=_href(path, output_dir) if path is not None else None)
    if pixels is None:
        panel.problem = error[0] if error else "not available"
        return panel
    height, width = pixels.shape[:2]
    panel.caption = caption or f"{width}\u00d7{height}"
    image = Image.fromarray(pixels)
    if max(width, height) > THUMB_SIZE:
        image.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    panel.image = image
    panel.size = image.size
    # small images are shown enlarged by a whole factor, pixels kept sharp (a palette stays one)
    panel.zoom = max(1, THUMB_SIZE // max(image.size))
    return panel


def _save(target: Path, output_dir: Path, draw: Any) -> None:
    """``draw(stream)`` into memory, then one atomic write below output.dir (no link)."""
    buffer = io.BytesIO()
    draw(buffer)
    write_atomic(target, buffer.getvalue(), root=output_dir)


def _write_sprite(card: Card, target: Path, output_dir: Path) -> None:
    """All of a card's thumbnails side by side in one file, shown cropped by the page.

    One file a card rather than one a picture: on a loaded disk, creating (or truncating)
    a file costs more than encoding a thumbnail. JPEG at 4:4:4 keeps the scatter's dots and
    the heat map's colours sharp; PNG when a thumbnail has transparency.
    """
    shown = [panel for panel in card.panels if panel.image is not None]
    if not shown:
        return
    alpha = any(panel.image.mode in ("RGBA", "LA", "PA") for panel in shown)
    mode = "RGBA" if alpha else "RGB"
    width = sum(panel.size[0] for panel in shown)
    height = max(panel.size[1] for panel in shown)
    sprite = Image.new(mode, (width, height), (0, 0, 0, 0) if alpha else (255, 255, 255))
    offset = 0
    for panel in shown:
        sprite.paste(panel.image.convert(mode), (offset, 0))
        panel.offset, panel.image = offset, None
        offset += panel.size[0]
    if alpha:
        target = target.with_suffix(".png")
        _save(target, output_dir, lambda out: sprite.save(out, format="PNG", compress_level=1))
    else:
        _save(target, output_dir,
              lambda out: sprite.save(out, format="JPEG", quality=90, subsampling=0))
    for panel in shown:
        panel.thumb = f"{REPORT_DIR}/thumbs/{target.name}"
        panel.sprite = (width, height)


def _heat_map(output: np.ndarray, against: np.ndarray) -> np.ndarray:
    """Per-pixel RGB distance, at full resolution (row blocks bound the memory), as colours."""
    height, width = output.shape[:2]
    error = np.empty((height, width), np.float32)
    for top in range(0, height, 256):
        block = slice(top, top + 256)
        diff = output[block, :, :3].astype(np.float32) - against[block, :, :3].astype(np.float32)
        error[block] = np.sqrt(np.einsum("ijc,ijc->ij", diff, diff))
    for image in (output, against):  # transparent pixels are not judged
        if image.shape[2] == 4:
            error[image[..., 3] == 0] = 0.0
    if max(height, width) > THUMB_SIZE:  # average the error, not the images
        scale = THUMB_SIZE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        error = np.asarray(Image.fromarray(error, "F").resize(size, Image.Resampling.BOX))
    level = np.clip(error * (255.0 / ERROR_SCALE), 0, 255).astype(np.uint8)
    return _HEAT_LUT[level]


def _palette(card: Card, row: Row, indices: np.ndarray | None, palette: np.ndarray | None,
             alpha: np.ndarray | None) -> None:
    """Swatches with hex codes and pixel shares, and a bar of every entry sized by its share."""
    entries: list[tuple[str, float]] = []
    if isinstance(row.get("palette"), list) and row["palette"]:
        codes = [str(c) for c in row["palette"]]
        shares = row.get("palette_shares")
        if not (isinstance(shares, list) and len(shares) == len(codes)):
            shares = [1.0 / len(codes)] * len(codes)
            card.palette_note = "shares not recorded; entries shown equally"
        entries = [(c, float(s)) for c, s in zip(codes, shares, strict=True)]
    elif indices is not None and palette is not None:
        counts = np.bincount(indices.ravel(), minlength=len(palette)).astype(np.float64)
        if alpha is not None:
            transparent = int(counts[alpha == 0].sum())
            counts[alpha == 0] = 0
            if transparent:
                card.palette_note = f"plus a transparent entry ({transparent:,} pixels)"
        total = counts.sum()
        if total:
            entries = [(_rgb_to_hex(palette[i]), counts[i] / total)
                       for i in range(len(palette)) if counts[i] > 0]
    if not entries:
        return
    entries.sort(key=lambda e: -e[1])
    card.palette = entries
    # the bar is a CSS gradient with hard stops: no picture to write, exact colours
    total = max(sum(share for _, share in entries), 1e-12)
    stops, left = [], 0.0
    for code, share in entries:
        right = left + 100.0 * share / total
        stops.append(f"{code} {left:.2f}% {right:.2f}%")
        left = right
    card.palette_bar = f"linear-gradient(90deg,{','.join(stops)})"


def _scatter(source: np.ndarray, indices: np.ndarray, palette: np.ndarray,
             alpha: np.ndarray | None, *, seed: int) -> tuple[np.ndarray, float]:
    """a*-b* (CIELAB) scatter of a pixel sample, each dot in its palette entry's colour.

    Rasterized with NumPy rather than matplotlib: a few hundred microseconds, so every card
    can have one. Returns the (160, 160, 3) picture and the limit: the axes span +-limit
    around the neutral axis (the cross).
    """
    from gpupix.ops.color import rgb_to_lab

    rng = np.random.default_rng(seed)
    flat = rng.integers(0, indices.size, size=min(SCATTER_SAMPLE, indices.size))
    labels = indices.ravel()[flat]
    if alpha is not None:
        keep = alpha[labels] > 0
        flat, labels = flat[keep], labels[keep]
    colours = source[..., :3].reshape(-1, 3)[flat].astype(np.float32)
    lab = np.asarray(rgb_to_lab(colours))
    used = np.unique(labels)
    centres = np.asarray(rgb_to_lab(palette[used].astype(np.float32)))
    extent = np.abs(np.concatenate([lab[:, 1:], centres[:, 1:]])) if len(lab) else np.zeros(1)
    limit = float(max(16.0, math.ceil(float(extent.max(initial=0)) / 8.0) * 8.0))
    size = SCATTER_SIZE
    canvas = np.full((size, size, 3), 250, np.uint8)
    middle = size // 2
    canvas[middle, :] = canvas[:, middle] = 200

    def position(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.rint((values[:, 1] / limit + 1) * (size - 1) / 2).astype(int)
        y = np.rint((1 - values[:, 2] / limit) * (size - 1) / 2).astype(int)
        return np.clip(x, 1, size - 3), np.clip(y, 1, size - 3)

    x, y = position(lab)
    for dx in (0, 1):
        for dy in (0, 1):
            canvas[y + dy, x + dx] = palette[labels]
    cx, cy = position(centres)
    for radius, colours in ((4, np.uint8(30)), (3, palette[used][:, None])):
        offsets = np.arange(-radius, radius + 1)
        px = np.clip(cx[:, None] + offsets[None, :], 0, size - 1)  # (entries, side)
        py = np.clip(cy[:, None] + offsets[None, :], 0, size - 1)
        canvas[py[:, :, None], px[:, None, :]] = colours if np.ndim(colours) == 0 \
            else colours[:, :, None]
    return canvas, limit


def _extra_label(path: Path, main: Path | None) -> str:
    """A further output's label from its name: ``img.mask.png`` beside ``img.png`` -> mask."""
    if main is not None and path.name.startswith(main.stem + "."):
        return path.name[len(main.stem) + 1:].rsplit(".", 1)[0] or path.name
    return path.name


# ---------------------------------------------------------------------------- plots


def _matplotlib() -> Any | None:
    """matplotlib's Figure class, or None when the ``report`` extra is not installed.

    The object-oriented API (no pyplot) keeps no global state and needs no GUI backend.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def _numeric_columns(rows: list[Row]) -> list[str]:
    found = {key for row in rows for key, value in row.items()
             if _is_number(value) and key not in ("width", "height")}
    if any(_is_number(r.get("bytes_in")) and _is_number(r.get("bytes_out")) for r in rows):
        found.add("bytes_ratio")
    ordered = [key for key in PREFERRED_COLUMNS if key in found]
    return ordered + sorted(found - set(ordered))


def _value(row: Row, key: str) -> float | None:
    if key == "bytes_ratio":
        if _is_number(row.get("bytes_in")) and _is_number(row.get("bytes_out")) \
                and row["bytes_in"]:
            return row["bytes_out"] / row["bytes_in"]
        return None
    value = row.get(key)
    return float(value) if _is_number(value) and math.isfinite(value) else None


def _distribution_plot(rows: list[Row], target: Path) -> str | None:
    """One figure: a histogram per metric over the images that were done."""
    from matplotlib.figure import Figure

    done = [r for r in rows if r.get("status") in ("ok", "skipped")]
    series = []
    for key in _numeric_columns(done):
        values = [v for v in (_value(r, key) for r in done) if v is not None]
        if len(set(values)) >= 2 and key not in ("bytes_in", "bytes_out"):  # not constants
            series.append((key, np.asarray(values)))
    series = series[:HISTOGRAM_LIMIT]
    if not series:
        return None
    columns = min(3, len(series))
    lines = math.ceil(len(series) / columns)
    figure = Figure(figsize=(3.2 * columns, 2.3 * lines), dpi=80)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.1, top=0.9, wspace=0.3, hspace=0.6)
    for position, (key, values) in enumerate(series, start=1):
        axes = figure.add_subplot(lines, columns, position)
        axes.hist(values, bins=min(30, max(5, len(values) // 4)), color="#4c72b0")
        axes.set_title(f"{key}  (mean {values.mean():.4g})", fontsize=9)
        axes.tick_params(labelsize=7)
        axes.set_ylabel("images", fontsize=7)
    _save(target, target.parents[2], lambda out: figure.savefig(out, format="png"))
    return f"{REPORT_DIR}/plots/{target.name}"


def _draw_curves(cards: list[Card], output_dir: Path) -> None:
    """Matplotlib curves for the first CURVE_LIMIT cards that have one (the rest list values)."""
    from matplotlib.figure import Figure

    drawn = 0
    for card in cards:
        k_curve, sweep = _curve_data(card.row)
        if k_curve is None and sweep is None:
            continue
        if drawn >= CURVE_LIMIT:
            break
        figure = Figure(figsize=(2.6, 1.9), dpi=80, layout="constrained")
        axes = figure.add_subplot()
        axes.tick_params(labelsize=7)
        if k_curve is not None:
            ks, errors = k_curve
            axes.plot(ks, errors, "o-", markersize=3, color="#4c72b0")
            best = int(np.argmin(errors))
            axes.plot([ks[best]], [errors[best]], "o", color="#dd8452")
            axes.set_xlabel("K", fontsize=8)
            axes.set_ylabel("validation error", fontsize=8)
        else:
            ks, inertia, psnr = sweep
            axes.plot(ks, inertia, "o-", markersize=3, color="#4c72b0")
            axes.set_xlabel("k", fontsize=8)
            axes.set_ylabel("inertia", fontsize=8, color="#4c72b0")
            if psnr is not None:
                twin = axes.twinx()
                twin.plot(ks, psnr, "s--", markersize=3, color="#dd8452")
                twin.set_ylabel("PSNR [dB]", fontsize=8, color="#dd8452")
                twin.tick_params(labelsize=7)
        name = f"thumbs/{card.index:05d}-curve.png"
        _save(output_dir / REPORT_DIR / name, output_dir,
              lambda out, figure=figure: figure.savefig(out, format="png"))
        card.curve = f"{REPORT_DIR}/{name}"
        drawn += 1


def _curve_data(row: Row) -> tuple[tuple[list[float], list[float]] | None,
                                   tuple[list[float], list[float], list[float] | None] | None]:
    k_curve = sweep = None
    data = row.get("k_curve")
    if _series(data):  # inpaint's form: the error for K = 1, 2, ...
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


def _series(values: Any) -> list[float]:
    if not isinstance(values, list) or not all(_is_number(v) for v in values):
        return []
    return [float(v) for v in values]


# ---------------------------------------------------------------------------- HTML


def _render_page(*, job: str, rows: list[Row], summary: dict[str, Any] | None,
                 cards: list[Card], distributions: str | None, plot_note: str | None,
                 report_seconds: float) -> str:
    counts = {s: sum(r.get("status") == s for r in rows) for s in ("ok", "skipped", "failed")}
    title = f"gpupix {job}: {len(rows)} images"
    parts = [
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>",
        f"<body data-cards='{len(cards)}'>",
        f"<header><h1>{_e(title)}</h1><p class='counts'>"
        f"<span class='ok'>{counts['ok']} ok</span> <span class='skipped'>{counts['skipped']} "
        f"skipped</span> <span class='failed'>{counts['failed']} failed</span></p>",
        "<nav><a href='#overview'>overview</a> <a href='#plots'>distributions</a> "
        "<a href='#table'>table</a> <a href='#images'>images</a></nav></header><main>",
        _overview(summary, rows),
        _plots_section(distributions, plot_note),
        _table(rows, cards),
        _cards_section(cards, plot_note),
        f"</main><footer>Written by gpupix in {report_seconds:.2f} s. Thumbnails are at most "
        f"{THUMB_SIZE} px; click one for the full-size file.</footer>",
        f"<script>{_JS}</script></body></html>\n",
    ]
    return "\n".join(parts)


def _overview(summary: dict[str, Any] | None, rows: list[Row]) -> str:
    out = ["<section id='overview'><h2>Overview</h2>"]
    if summary is None:
        out.append("<p class='warn'>summary.json was not found: the run did not finish. "
                   "What follows is counted from metrics.jsonl.</p>")
        summary = {}
    facts: list[tuple[str, str]] = [("job", str(summary.get("job", _guess_job(rows))))]
    backend = summary.get("backend") or {}
    if backend:
        facts.append(("backend", f"{backend.get('backend', '?')} on {backend.get('device', '?')}"))
    versions = dict(summary.get("versions") or {})
    versions.update({k: v for k, v in backend.items() if k not in ("backend", "device")})
    if versions:
        facts.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    done = [r for r in rows if r.get("status") == "ok"]
    facts.append(("images", f"{len(rows)} ({sum(r.get('status') == 'ok' for r in rows)} ok, "
                            f"{sum(r.get('status') == 'skipped' for r in rows)} skipped, "
                            f"{sum(r.get('status') == 'failed' for r in rows)} failed)"))
    wall = summary.get("wall_seconds")
    if _is_number(wall):
        pixels = (summary.get("totals") or {}).get("pixels") or sum(
            r.get("width", 0) * r.get("height", 0) for r in done)
        rate = summary.get("images_per_second")
        throughput = f"{wall:.2f} s"
        if _is_number(rate):
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
    shown = [k for k in PREFERRED_COLUMNS if k in means and k not in ("bytes_in", "bytes_out")]
    if shown:
        facts.append(("means", ", ".join(f"{k} {means[k]:.4g}" for k in shown)))
    out.append("<table class='facts'>" + "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts) + "</table>")
    config = summary.get("config")
    if config:
        out.append("<details><summary>config (YAML)</summary><pre>"
                   f"{_e(yaml.safe_dump(config, sort_keys=False))}</pre></details>")
    failures = [r for r in rows if r.get("status") == "failed"]
    if failures:
        out.append(f"<h3 class='failed'>{len(failures)} failed</h3><ul class='failures'>")
        listed = [(i, r) for i, r in enumerate(rows) if r.get("status") == "failed"]
        for index, row in listed[:FAILURE_LIMIT]:
            out.append(f"<li><a href='#img-{index}'>{_e(Path(str(row['input'])).name)}</a>: "
                       f"{_e(str(row.get('error')))}</li>")
        if len(listed) > FAILURE_LIMIT:
            out.append(f"<li>and {len(listed) - FAILURE_LIMIT} more (see the table)</li>")
        out.append("</ul>")
    out.append("</section>")
    return "\n".join(out)


def _plots_section(distributions: str | None, plot_note: str | None) -> str:
    body = (f"<p class='warn'>{_e(plot_note)}</p>" if plot_note else
            f"<img class='plot' src='{_e(distributions)}' alt='histograms of the metrics'>"
            if distributions else "<p>Fewer than two finished images: nothing to plot.</p>")
    return f"<section id='plots'><h2>Distributions over the batch</h2>{body}</section>"


def _table(rows: list[Row], cards: list[Card]) -> str:
    columns = _numeric_columns(rows)
    head = ("<tr><th data-type='num'>#</th><th>image</th><th>status</th><th data-type='num'>"
            "size</th>" + "".join(f"<th data-type='num'>{_e(c)}</th>" for c in columns) +
            "<th>error</th></tr>")
    body = []
    for card in cards:
        row = card.row
        cells = [f"<td data-v='{card.index}'>{card.index + 1}</td>",
                 f"<td data-v='{_e(_name(row))}'><a href='#img-{card.index}'>{_e(_name(row))}"
                 "</a></td>",
                 f"<td data-v='{_e(str(row.get('status')))}' class='{_e(str(row.get('status')))}'>"
                 f"{_e(str(row.get('status')))}</td>"]
        pixels = (row.get("width") or 0) * (row.get("height") or 0)
        cells.append(f"<td data-v='{_e(pixels)}'>{_e(row.get('width', ''))}\u00d7"
                     f"{_e(row.get('height', ''))}</td>" if pixels else "<td data-v=''></td>")
        for column in columns:
            value = _value(row, column)
            cells.append("<td data-v=''></td>" if value is None else
                         f"<td data-v='{_e(repr(value))}'>{_e(_fmt(column, value))}</td>")
        cells.append(f"<td class='error'>{_e(str(row.get('error') or ''))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ("<section id='table'><h2>Summary table</h2><p class='hint'>Click a column to sort "
            "(again to reverse).</p><div class='scroll'><table class='sortable'><thead>"
            f"{head}</thead><tbody>{''.join(body)}</tbody></table></div></section>")


def _cards_section(cards: list[Card], plot_note: str | None) -> str:
    legend = "<p class='hint'>"
    if any(p.label.startswith("difference") for card in cards for p in card.panels):
        legend += (f"Difference maps: <span class='scale'></span> RGB distance 0 \u2192 "
                   f"{ERROR_SCALE:g} or more. ")
    if any(p.label == "colour scatter" for card in cards for p in card.panels):
        legend += ("Colour scatters: a* (right: red, left: green) against b* (up: yellow, "
                   "down: blue) of a pixel sample, each dot in the colour of its palette entry, "
                   "entries outlined.")
    if len(cards) > PAGE_SIZE:
        legend += f" {PAGE_SIZE} images a page."
    legend += "</p>"
    if plot_note:
        legend += f"<p class='warn'>{_e(plot_note)} Curves are listed as values.</p>"
    items = "\n".join(_card_html(card) for card in cards)
    return (f"<section id='images'><h2>Images</h2>{legend}<div class='pager'></div>"
            f"<div id='cards'>{items}</div><div class='pager'></div></section>")


def _card_html(card: Card) -> str:
    row = card.row
    lazy = " loading='lazy'" if card.index >= EAGER_CARDS else ""
    status = str(row.get("status"))
    out = [f"<article class='card card-{_e(status)}' id='img-{card.index}'>",
           f"<h3>{card.index + 1}. {_e(_name(row))} <small class='{_e(status)}'>{_e(status)}"
           "</small></h3>"]
    if row.get("error"):
        out.append(f"<p class='error'>{_e(str(row['error']))}</p>")
    out.append("<div class='panels'>")
    for panel in card.panels:
        if panel.thumb:
            zoom = panel.zoom
            sharp = " class='px'" if zoom > 1 else ""
            image = (f"<span class='crop' style='width:{panel.size[0] * zoom}px;height:"
                     f"{panel.size[1] * zoom}px'><img src='{_e(panel.thumb)}' "
                     f"alt='{_e(panel.label)}' width='{panel.sprite[0] * zoom}' "
                     f"height='{panel.sprite[1] * zoom}' style='margin-left:"
                     f"-{panel.offset * zoom}px' data-x='{panel.offset}' "
                     f"data-w='{panel.size[0]}' data-h='{panel.size[1]}'{sharp}{lazy}></span>")
            if panel.link:
                image = f"<a href='{_e(panel.link)}'>{image}</a>"
        else:
            image = f"<div class='missing'>{_e(panel.problem or 'not available')}</div>"
        out.append(f"<figure>{image}<figcaption>{_e(panel.label)}"
                   f"<br><span>{_e(panel.caption)}</span></figcaption></figure>")
    if card.curve:
        out.append(f"<figure><img class='curve' src='{_e(card.curve)}' alt='curve'{lazy}>"
                   f"<figcaption>{'K search' if 'k_curve' in row else 'k sweep'}</figcaption>"
                   "</figure>")
    out.append("</div><div class='facts'>")
    if card.palette:
        out.append(_palette_html(card))
    out.append(_metrics_html(row))
    if card.files:
        out.append("<p>" + " ".join(f"<a href='{_e(link)}'>{_e(name)}</a>" if link else _e(name)
                                    for name, link in card.files) + "</p>")
    if not card.curve:
        out.append(_curve_values_html(row))
    shown = {panel.problem for panel in card.panels}
    for problem in (p for p in card.problems if p not in shown):
        out.append(f"<p class='warn'>{_e(problem)}</p>")
    out.append("</div></article>")
    return "".join(out)


def _palette_html(card: Card) -> str:
    out = [f"<div class='palette'><b>palette</b> ({len(card.palette)} colours)"]
    if card.palette_bar:
        out.append(f"<div class='bar' title='every entry, sized by its share' "
                   f"style='background:{_e(card.palette_bar)}'></div>")
    out.append("<ul>")
    for code, share in card.palette[:SWATCH_LIMIT]:
        out.append(f"<li><i style='background:{_e(code)}'></i>{_e(code)} "
                   f"{_e(f'{share:.1%}')}</li>")
    out.append("</ul>")
    if len(card.palette) > SWATCH_LIMIT:
        rest = sum(s for _, s in card.palette[SWATCH_LIMIT:])
        out.append(f"<p>and {len(card.palette) - SWATCH_LIMIT} more ({_e(f'{rest:.1%}')} of "
                   "pixels)</p>")
    if card.palette_note:
        out.append(f"<p>{_e(card.palette_note)}</p>")
    out.append("</div>")
    return "".join(out)


def _metrics_html(row: Row) -> str:
    items = []
    if _is_number(row.get("bytes_in")) and _is_number(row.get("bytes_out")):
        pixels = (row.get("width") or 0) * (row.get("height") or 0)
        bits = f", {8 * row['bytes_out'] / pixels:.2f} bits/px" if pixels else ""
        ratio = f" ({row['bytes_out'] / row['bytes_in']:.1%})" if row["bytes_in"] else ""
        items.append(("bytes", f"{row['bytes_in']:,} \u2192 {row['bytes_out']:,}{ratio}{bits}"))
    for key, value in row.items():
        if key in NOT_METRICS or key in ("input", "output", "status", "error", *PATH_FIELDS):
            continue
        if _is_number(value):
            items.append((key, _fmt(key, float(value))))
        elif isinstance(value, str) and len(value) <= 200:
            items.append((key, value))
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>"


def _curve_values_html(row: Row) -> str:
    k_curve, sweep = _curve_data(row)
    if k_curve is None and sweep is None:
        return ""
    if k_curve is not None:
        header, lines = ("K", "error"), list(zip(*k_curve, strict=True))
    else:
        ks, inertia, psnr = sweep
        header = ("k", "inertia", "PSNR")
        lines = list(zip(ks, inertia, psnr or [math.nan] * len(ks), strict=True))
    cells = "".join("<tr>" + "".join(f"<td>{_e(f'{v:.4g}')}</td>" for v in line) + "</tr>"
                    for line in lines)
    return (f"<details><summary>{'K search' if k_curve else 'k sweep'} values</summary><table>"
            "<tr>" + "".join(f"<th>{h}</th>" for h in header) + f"</tr>{cells}</table></details>")


# ---------------------------------------------------------------------------- reading back
# metrics.jsonl and summary.json are read back as data a person or a program may have
# edited: every value is checked for the type gpupix writes before the page uses it (and
# every value is escaped where it is written, numbers included).

MAX_SUMMARY_BYTES = 16 << 20
MAX_TEXT = 1000          # a free-text field (notes, a mask source) longer than this is dropped
MAX_PATH_TEXT = 8192     # input, output and the other path fields
MAX_ERROR_TEXT = 2000    # an error message is cut, not dropped
MAX_SERIES = 10_000      # values in a curve or a list of outputs
PATH_KEYS = ("input", "output", *PATH_FIELDS)
STATUSES = ("ok", "skipped", "failed")
_HEX = frozenset("0123456789abcdefABCDEF")


def _checked_row(row: Any) -> tuple[Row, list[str]]:
    """The row with every field of the type gpupix writes; the others are left out, named.

    Known fields are held to their own type (``width`` a whole number, ``palette`` a list of
    ``#rrggbb``, paths strings); any other field is kept when it is a finite number, a
    boolean, a short string, a list of numbers or a mapping of such lists (curves).
    """
    if not isinstance(row, dict):
        return {"input": "?", "status": "failed", "error": "not a row"}, []
    clean: Row = {}
    dropped: list[str] = []
    for key, value in row.items():
        if not isinstance(key, str) or len(key) > 100:
            dropped.append(_cut(repr(key), 40))
            continue
        if isinstance(value, float) and not math.isfinite(value):
            value = None  # as metrics.jsonl has it (an identical output's PSNR is infinite)
        elif isinstance(value, tuple):
            value = list(value)
        if _field_ok(key, value):
            clean[key] = value
        elif key == "error" and isinstance(value, str):
            clean[key] = _cut(value, MAX_ERROR_TEXT)
        elif key == "status":
            clean[key] = "failed"
            clean.setdefault("error", f"status {_cut(repr(value), 40)} is not one of "
                                      f"{', '.join(STATUSES)}")
        else:
            dropped.append(key)
    clean.setdefault("input", "?")
    problems = [f"metrics.jsonl: {', '.join(dropped[:10])}{' ...' if len(dropped) > 10 else ''}"
                " not of the type gpupix writes; not shown"] if dropped else []
    return clean, problems


def _field_ok(key: str, value: Any) -> bool:
    if key in PATH_KEYS:
        return value is None or (isinstance(value, str) and 0 < len(value) <= MAX_PATH_TEXT
                                 and "\0" not in value)
    if key == "status":
        return value in STATUSES
    if key == "error":
        return value is None or (isinstance(value, str) and len(value) <= MAX_ERROR_TEXT)
    if key in ("width", "height", "bytes_in", "bytes_out"):
        return _is_number(value) and float(value).is_integer() and 0 <= value < 2**53
    if key == "outputs":
        return isinstance(value, list) and len(value) <= MAX_SERIES and all(
            _field_ok("output", item) and item is not None for item in value)
    if key == "palette":
        return isinstance(value, list) and len(value) <= 256 and all(
            _is_hex_colour(code) for code in value)
    if key == "palette_shares":
        return _numbers(value)
    return _plain_value(value)


def _plain_value(value: Any) -> bool:
    """A metric: a finite number, a boolean, a short string, numbers, or curves of numbers."""
    if value is None or isinstance(value, bool) or _is_number(value):
        return True
    if isinstance(value, str):
        return len(value) <= MAX_TEXT
    if isinstance(value, list):
        return _numbers(value)
    if isinstance(value, dict):
        return len(value) <= 16 and all(isinstance(k, str) and len(k) <= 100 and _numbers(v)
                                        for k, v in value.items())
    return False


def _numbers(value: Any) -> bool:
    """A list of numbers; ``null`` (an infinite value in metrics.jsonl) may be among them."""
    return isinstance(value, list | tuple) and len(value) <= MAX_SERIES and all(
        v is None or isinstance(v, float) or _is_number(v) for v in value)


def _is_hex_colour(code: Any) -> bool:
    return isinstance(code, str) and len(code) == 7 and code[0] == "#" and set(code[1:]) <= _HEX


def _checked_summary(summary: Any) -> dict[str, Any] | None:
    """summary.json with the fields the page uses held to their types (others left out)."""
    if not isinstance(summary, dict):
        return None
    clean: dict[str, Any] = {}
    if isinstance(summary.get("job"), str) and len(summary["job"]) <= 40:
        clean["job"] = summary["job"]
    for key in ("wall_seconds", "images_per_second"):
        if _is_number(summary.get(key)):
            clean[key] = summary[key]
    for key in ("backend", "versions"):
        value = summary.get(key)
        if isinstance(value, dict):
            clean[key] = {k: v for k, v in value.items() if isinstance(k, str) and len(k) <= 100
                          and isinstance(v, str | int | float) and len(str(v)) <= MAX_TEXT}
    for key in ("totals", "means"):
        value = summary.get(key)
        if isinstance(value, dict):
            clean[key] = {k: v for k, v in value.items() if isinstance(k, str)
                          and len(k) <= 100 and _is_number(v)}
    config = summary.get("config")
    if isinstance(config, dict) and _plain_tree(config, depth=6, budget=[10_000]):
        clean["config"] = config  # only shown (as escaped YAML) and two inpaint settings read
    return clean


def _plain_tree(value: Any, *, depth: int, budget: list[int]) -> bool:
    """JSON made of a bounded number of plain values, at most ``depth`` levels deep."""
    budget[0] -= 1
    if budget[0] < 0 or depth < 0:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and len(k) <= 100 and
                   _plain_tree(v, depth=depth - 1, budget=budget) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_tree(v, depth=depth - 1, budget=budget) for v in value)
    if isinstance(value, str):
        return len(value) <= MAX_PATH_TEXT
    return value is None or isinstance(value, bool) or _is_number(value)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------- helpers


def _href(path: Path, output_dir: Path) -> str | None:
    """A relative URL from the report to ``path`` (None where no relative path exists)."""
    try:
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(output_dir))
    except ValueError:  # another drive on Windows
        return None
    return quote(Path(relative).as_posix(), safe="/")


def _name(row: Row) -> str:
    return Path(str(row.get("input", "?"))).name


def _guess_job(rows: Iterable[Row]) -> str:
    for row in rows:
        if "colours_out" in row:
            return "quantize"
    return "job"


def _size(pixels: np.ndarray) -> str:
    return f"{pixels.shape[1]}x{pixels.shape[0]}"


def _hex_to_rgb(code: str) -> tuple[int, int, int]:
    code = code.lstrip("#")
    if len(code) != 6:
        return (255, 0, 255)
    try:
        return (int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16))
    except ValueError:
        return (255, 0, 255)


def _rgb_to_hex(rgb: Any) -> str:
    red, green, blue = (int(v) for v in rgb)
    return f"#{red:02x}{green:02x}{blue:02x}"


def _is_number(value: Any) -> bool:
    """A finite int or float that converts to float (JSON ints can have any length)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) if isinstance(value, float) else abs(value) < 2**63


def _fmt(key: str, value: float) -> str:
    if key == "bytes_ratio":
        return f"{value:.1%}"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


_HEAT_CSS = ", ".join(_rgb_to_hex(c) for c in _HEAT_ANCHORS)

_CSS = """
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",sans-serif;
font-size:14px;color:#222;background:#f6f6f4}
body{margin:0}header{background:#233;color:#eee;padding:12px 20px}
header h1{margin:0 0 4px;font-size:20px}header nav a{color:#9cf;margin-right:12px}
.counts span{margin-right:10px;font-weight:600}.counts .ok{color:#7d7}
.counts .skipped{color:#ccc}.counts .failed{color:#f88}
main{padding:8px 20px}section{margin:18px 0}h2{font-size:17px;border-bottom:1px solid #ccc}
table.facts th{text-align:left;padding-right:14px;vertical-align:top;color:#555}
pre{background:#fff;border:1px solid #ddd;padding:8px;max-height:320px;overflow:auto}
.warn{color:#a60}.failed{color:#b22}.skipped{color:#777}.ok{color:#282}
.error{color:#b22;font-size:12px}.hint{color:#555}
img.plot{max-width:100%;background:#fff;border:1px solid #ddd}
.scroll{max-height:420px;overflow:auto;border:1px solid #ddd;background:#fff}
table.sortable{border-collapse:collapse;font-size:12px;width:100%}
table.sortable th{position:sticky;top:0;background:#e8ecef;cursor:pointer;padding:4px 6px;
text-align:right;white-space:nowrap}
table.sortable th[data-dir=asc]::after{content:" \\25b2"}
table.sortable th[data-dir=desc]::after{content:" \\25bc"}
table.sortable td{padding:2px 6px;text-align:right;border-top:1px solid #eee}
table.sortable td:nth-child(2),table.sortable td:last-child{text-align:left}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;margin:10px 0;padding:8px 12px}
.card h3{margin:2px 0 6px;font-size:14px}.card.card-failed{border-color:#e99}
[hidden]{display:none!important}
.panels{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;width:168px;text-align:center}
.crop{display:inline-block;overflow:hidden;border:1px solid #ccc;vertical-align:top;
background:repeating-conic-gradient(#ddd 0 25%,#fff 0 50%) 0 0/12px 12px}
.crop img{display:block;max-width:none}img.curve{border:1px solid #ccc}
img.px{image-rendering:pixelated}figcaption{font-size:12px}figcaption span{color:#666}
.missing{width:160px;height:100px;display:flex;align-items:center;justify-content:center;
background:#f3e6e6;color:#933;font-size:11px;overflow:hidden;padding:4px;box-sizing:border-box}
.card .facts{display:flex;flex-wrap:wrap;gap:18px;margin-top:6px;font-size:12px}
.palette ul{list-style:none;padding:0;margin:4px 0;columns:2;column-gap:12px}
.palette li{white-space:nowrap;font-family:ui-monospace,monospace}
.palette i{display:inline-block;width:12px;height:12px;border:1px solid #888;margin-right:4px;
vertical-align:middle}.palette .bar{width:160px;height:12px;border:1px solid #888;margin-top:3px}
dl{display:grid;grid-template-columns:auto auto;gap:1px 10px;margin:0}dt{color:#555}dd{margin:0}
.pager button{margin:2px;padding:2px 8px}.pager button[disabled]{font-weight:700}
.scale{display:inline-block;width:120px;height:10px;vertical-align:middle;
background:linear-gradient(90deg,HEAT)}
footer{color:#777;font-size:12px;padding:12px 20px}
""".replace("HEAT", _HEAT_CSS)

_JS = """
(function(){
'use strict';
var PAGE=PAGE_SIZE;
function val(row,col,num){var c=row.cells[col];var v=c.getAttribute('data-v');
 if(v===null)v=c.textContent;if(!num)return v.toLowerCase();
 var f=parseFloat(v);return isNaN(f)?null:f;}
document.querySelectorAll('table.sortable').forEach(function(table){
 var heads=table.tHead.rows[0].cells;
 Array.prototype.forEach.call(heads,function(th,col){
  th.addEventListener('click',function(){
   var dir=th.getAttribute('data-dir')==='asc'?'desc':'asc';
   Array.prototype.forEach.call(heads,function(o){o.removeAttribute('data-dir');});
   th.setAttribute('data-dir',dir);
   var num=th.getAttribute('data-type')==='num',body=table.tBodies[0];
   var rows=Array.prototype.slice.call(body.rows),sign=dir==='asc'?1:-1;
   rows.sort(function(a,b){var x=val(a,col,num),y=val(b,col,num);
    if(x===y)return 0;if(x===null)return 1;if(y===null)return -1;
    return (x<y?-1:1)*sign;});
   rows.forEach(function(r){body.appendChild(r);});
  });
 });
});
var cards=Array.prototype.slice.call(document.querySelectorAll('#cards > .card'));
var pages=Math.max(1,Math.ceil(cards.length/PAGE)),current=-1;
function show(page){
 if(page===current)return;current=page;
 cards.forEach(function(card,i){card.hidden=Math.floor(i/PAGE)!==page;});
 document.querySelectorAll('.pager').forEach(function(pager){
  pager.textContent='';if(pages<2)return;
  for(var p=0;p<pages;p++){var b=document.createElement('button');
   b.textContent=String(p+1);b.disabled=p===page;
   b.addEventListener('click',(function(q){return function(){show(q);
    document.getElementById('images').scrollIntoView();};})(p));
   pager.appendChild(b);}
 });
}
function fromHash(){var id=location.hash.slice(1);var el=id&&document.getElementById(id);
 if(el&&el.classList.contains('card')){show(Math.floor(cards.indexOf(el)/PAGE));
  el.scrollIntoView();}}
show(0);fromHash();window.addEventListener('hashchange',fromHash);
// #selfcheck[=column] (used by the tests): every picture loads before the load event, which
// then sorts by the column if one is named and records what rendered. Synchronous, so a DOM
// dump right after load sees it.
var selfcheck=location.hash.indexOf('#selfcheck')===0;
if(selfcheck)Array.prototype.forEach.call(document.images,function(img){img.loading='eager';});
window.addEventListener('load',function(){
 if(!selfcheck)return;
 var column=decodeURIComponent(location.hash.slice('#selfcheck='.length));
 document.querySelectorAll('table.sortable th').forEach(function(th){
  if(column&&th.textContent===column)th.click();});
 var images=Array.prototype.slice.call(document.images),broken=[];
 images.forEach(function(img){if(!(img.complete&&img.naturalWidth>0))
  broken.push(img.getAttribute('src'));});
 var visible=cards.filter(function(card){return !card.hidden;}).length;
 document.documentElement.setAttribute('data-selfcheck',JSON.stringify({cards:cards.length,
  visible:visible,images:images.length,broken:broken.length,brokenSources:broken.slice(0,10),
  pages:pages}));
});
})();
""".replace("PAGE_SIZE", str(PAGE_SIZE))
