"""report.html: what it shows, that it stays offline and relative, and how it is rebuilt."""

from __future__ import annotations

import html
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from gpupix import report
from gpupix.cli import app
from gpupix.config import load_config
from gpupix.pipeline import run_job
from gpupix.report import pictures, plots
from tests.conftest import gradient_image

runner = CliRunner()
ATTRIBUTE = re.compile(r"""(?:src|href)\s*=\s*['"]([^'"]*)['"]""")


def make_run(tmp_path: Path, *, images: int = 3, broken: bool = True, size: int = 200,
             **settings) -> Path:
    source = tmp_path / "images"
    source.mkdir()
    for i in range(images):
        Image.fromarray(gradient_image(size + 10 * i, size, seed=i)).save(source / f"img{i}.png")
    if broken:
        (source / "broken.png").write_bytes(b"not an image")
    config = {"job": "quantize", "input": {"paths": ["images"]}, "output": {"dir": "out"},
              "backend": "cpu", "quantize": {"k": 8}, **settings}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One run shared by the tests that only read it (others copy it first)."""
    root = tmp_path_factory.mktemp("finished")
    run_job(load_config(make_run(root)))
    return root / "out"


@pytest.fixture
def finished_copy(finished, tmp_path) -> Path:
    shutil.copytree(finished, tmp_path / "out")
    return tmp_path / "out"


def cards(page: str) -> list[str]:
    return re.findall(r"<article class='card[^']*' id='img-(\d+)'", page)


def card_of(page: str, index: int) -> str:
    return page.split(f"id='img-{index}'")[1].split("</article>")[0]


def panel_pixels(out: Path, page: str, index: int, label: str) -> np.ndarray:
    """A panel's thumbnail, cropped from its card's sprite as the page shows it."""
    found = re.search(rf"<img src='([^']+)' alt='{re.escape(label)}'[^>]*data-x='(\d+)' "
                      r"data-w='(\d+)' data-h='(\d+)'", card_of(page, index))
    assert found, label
    x, width, height = (int(v) for v in found.groups()[1:])
    with Image.open(out / found.group(1)) as sprite:
        return np.asarray(sprite.convert("RGB"))[:height, x:x + width].astype(int)


def test_a_run_writes_a_report_with_a_card_per_image(finished):
    page = (finished / "report.html").read_text()
    assert len(cards(page)) == 4  # three images and the broken one
    failure = next(json.loads(line) for line in (finished / "metrics.jsonl").open()
                   if '"failed"' in line)
    assert html.escape(failure["error"]) in page.split("id='plots'")[0]  # header: the reason
    assert "<table class='sortable'>" in page and "data-type='num'>psnr</th>" in page
    assert "quantize:\n  k: 8" in page  # the config as YAML
    assert "cpu on cpu" in page and "images/s" in page
    # three images: no histogram of three values; the table has them
    assert not (finished / "report" / "plots" / "distributions.png").exists()
    assert "3 finished images: too few for a distribution" in page
    assert page.count("alt='original'") == 3 and page.count("alt='quantized'") == 3
    assert html.escape(failure["error"]) in card_of(page, 0)
    assert page.count("colour scatter<br>") == 3


def test_links_are_relative_and_resolve_and_nothing_is_fetched(finished):
    page = (finished / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "url(" not in page
    links = ATTRIBUTE.findall(page)
    assert links
    for link in links:
        assert not link.startswith(("/", "file:", "data:")) and ":" not in link.split("/")[0]
        if link.startswith("#"):
            assert f"id='{link[1:]}'" in page
        elif "broken" not in link:  # the failed input's link still points at it
            assert (finished / link).exists(), link
    assert "<link" not in page and "<script src" not in page


def test_thumbnails_are_small_never_full_size_copies(finished):
    page = (finished / "report.html").read_text()
    sizes = [(int(w), int(h)) for w, h in re.findall(r"data-w='(\d+)' data-h='(\d+)'", page)]
    assert len(sizes) == 3 * 4 and all(max(size) <= pictures.THUMB_SIZE for size in sizes)
    assert sizes[0] == (pictures.THUMB_SIZE, pictures.THUMB_SIZE)  # 200x200 -> 160x160
    for sprite in (finished / "report" / "thumbs").iterdir():  # one per card shown
        with Image.open(sprite) as image:
            assert image.height <= pictures.THUMB_SIZE, sprite.name
    original = panel_pixels(finished, page, 1, "original")
    with Image.open(json.loads((finished / "metrics.jsonl").read_text().splitlines()[1])[
            "input"]) as source:
        expected = np.asarray(source.convert("RGB").resize(original.shape[1::-1])).astype(int)
    assert np.abs(original - expected).mean() < 6  # the picture, scaled down


def test_palette_swatches_are_the_output_palette_with_its_shares(finished):
    page = (finished / "report.html").read_text()
    card = page.split("id='img-1'")[1].split("</article>")[0]
    shown = dict(re.findall(r"<li><i style='background:(#[0-9a-f]{6})'></i>#[0-9a-f]{6} "
                            r"([0-9.]+)%</li>", card))
    row = json.loads((finished / "metrics.jsonl").read_text().splitlines()[1])
    with Image.open(row["output"]) as image:
        colours = image.convert("RGB").getcolors()
    total = sum(count for count, _ in colours)
    expected = {"#{:02x}{:02x}{:02x}".format(*rgb): 100 * count / total for count, rgb in colours}
    assert set(shown) == set(expected)
    for code, share in shown.items():
        assert abs(float(share) - expected[code]) < 0.06


def test_report_false_writes_none(tmp_path):
    result = run_job(load_config(make_run(tmp_path, broken=False, size=48, report=False)))
    assert result.report is None
    assert not (tmp_path / "out" / "report.html").exists()
    assert not (tmp_path / "out" / "report").exists()


def test_gpupix_report_rebuilds_from_the_files_of_a_run(finished_copy):
    finished = finished_copy
    first = (finished / "report.html").read_text()
    (finished / "report.html").unlink()
    (finished / "report" / "keep.txt").write_text("not the report's")
    for thumb in list((finished / "report" / "thumbs").iterdir())[::2]:
        thumb.unlink()
    stale = finished / "report" / "thumbs" / "99999-in.jpg"  # from an earlier, larger run
    stale.write_bytes(b"old")
    result = runner.invoke(app, ["report", str(finished)])
    assert result.exit_code == 0, result.output
    again = (finished / "report.html").read_text()
    assert cards(again) == cards(first)
    assert (finished / "report" / "keep.txt").exists()  # only thumbs/ and plots/ are replaced
    assert not stale.exists()
    for link in ATTRIBUTE.findall(again):
        if link.startswith("report/"):
            assert (finished / link).is_file()


def test_gpupix_report_of_an_unfinished_run_says_so(finished_copy):
    finished = finished_copy
    (finished / "summary.json").unlink()
    assert runner.invoke(app, ["report", str(finished)]).exit_code == 0
    page = (finished / "report.html").read_text()
    assert "summary.json was not found" in page and len(cards(page)) == 4


def test_gpupix_report_of_a_folder_without_a_run_exits_2(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "metrics.jsonl" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_without_matplotlib_the_report_says_so(tmp_path, monkeypatch):
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    run_job(load_config(make_run(tmp_path, broken=False, size=48)))
    page = (tmp_path / "out" / "report.html").read_text()
    assert "matplotlib is not installed" in page
    assert not list((tmp_path / "out" / "report" / "plots").iterdir())
    assert len(cards(page)) == 3 and "alt='quantized'" in page


def test_past_a_page_images_load_lazily(tmp_path):
    rows = [{"input": str(tmp_path / f"missing{i}.png"), "output": str(tmp_path / f"o{i}.png"),
             "status": "failed", "error": f"missing{i}.png: gone"}
            for i in range(report.PAGE_SIZE + 5)]
    source = tmp_path / "missing60.png"
    Image.fromarray(gradient_image(20, 20)).save(source)
    rows.append({"input": str(source), "output": str(tmp_path / "o60.png"), "status": "failed",
                 "error": "x"})
    page = report.write_report(tmp_path, rows, None).read_text()
    assert len(cards(page)) == report.PAGE_SIZE + 6
    last = page.split(f"id='img-{report.PAGE_SIZE + 5}'")[1].split("</article>")[0]
    assert "loading='lazy'" in last
    first = page.split("id='img-0'")[1].split("</article>")[0]
    assert "missing0.png: gone" in first and "<img" not in first  # nothing to show, no img


def test_generic_cards_from_row_fields(tmp_path):
    """An inpaint-like row: damaged input, mask, reference, K curve; no quantize code runs."""
    clean = gradient_image(40, 60)
    mask = np.zeros((40, 60), np.uint8)
    mask[:, :30] = 255  # left half missing
    damaged = clean.copy()
    damaged[mask > 0] = 0
    repaired = clean.copy()
    repaired[:, :30] = np.clip(repaired[:, :30].astype(int) + 40, 0, 255)
    for name, pixels in (("clean", clean), ("mask", mask), ("damaged", damaged),
                         ("repaired", repaired)):
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
    row = {"input": str(tmp_path / "damaged.png"), "output": "repaired.png", "status": "ok",
           "error": None, "width": 60, "height": 40, "reference": "clean.png",
           "mask": "mask.png", "psnr": 20.5, "mask_source": "file",
           "k_curve": {"k": [1, 2, 3, 4], "error": [9.0, 7.0, 6.5, 6.8]}, "k": 3}
    summary = {"job": "inpaint", "config": {"inpaint": {"key_color": "#00ff00"}}}
    page = report.write_report(tmp_path, [row], summary).read_text()
    for label in ("damaged (missing in the key colour)", "repaired", "clean original",
                  "mask (white = missing)", "difference from clean original", "K search"):
        assert f"alt='{label}'" in page or f"{label}</figcaption>" in page, label
    assert "mask_source</dt><dd>file" in page and "psnr</dt><dd>20.5" in page
    assert (tmp_path / "report" / "thumbs" / "00000-curve.png").is_file()
    shown = panel_pixels(tmp_path, page, 0, "damaged (missing in the key colour)")
    assert shown.shape[:2] == (40, 60)
    assert np.abs(shown[5:-5, 3:25] - (0, 255, 0)).max() < 40  # missing: the key colour
    assert np.abs(shown[5:-5, 35:] - clean[5:-5, 35:]).max() < 40
    heat = panel_pixels(tmp_path, page, 0, "difference from clean original")
    assert heat[:, :28].mean() > 3 * heat[:, 32:].mean()  # the error is where the damage was


def test_heat_map_levels_are_the_rgb_distance():
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0] = (3, 4, 0)      # distance 5
    b[1, 1] = (200, 0, 0)    # beyond the scale: saturates
    heat, thumb = pictures.heat_map(b, a)
    level = int(5 * 255 / pictures.ERROR_SCALE)
    assert (heat[0, 0] == pictures.HEAT_LUT[level]).all()
    assert (heat[0, 1] == pictures.HEAT_LUT[0]).all()
    assert (heat[1, 1] == pictures.HEAT_LUT[255]).all()
    assert (thumb == heat).all()  # small: the thumbnail is the view


def test_scatter_dots_take_their_palette_colours():
    palette = np.array([[200, 30, 30], [30, 160, 40], [40, 60, 210]], np.uint8)
    labels = np.random.default_rng(0).integers(0, 3, (30, 30))
    source = np.clip(palette[labels].astype(int) + 8, 0, 255).astype(np.uint8)
    canvas, limit = pictures.scatter(source, labels.astype(np.uint8), palette, None, seed=0)
    assert 16 <= limit <= 128 and canvas.shape == (160, 160, 3)
    colours = {tuple(c) for c in canvas.reshape(-1, 3)}
    background = {(250, 250, 250), (200, 200, 200), (30, 30, 30)}
    assert colours - background == {tuple(int(v) for v in c) for c in palette}


def test_a_clean_input_written_out_noisy_is_shown_as_the_clean_original(tmp_path):
    """A denoise row with ``noise``: input clean, outputs [denoised, NAME.noisy.png]."""
    clean = gradient_image(30, 30)
    noisy = np.clip(clean.astype(int) + 30, 0, 255).astype(np.uint8)
    Image.fromarray(clean).save(tmp_path / "a.png")
    (tmp_path / "out").mkdir()
    Image.fromarray(clean).save(tmp_path / "out" / "a.png")
    Image.fromarray(noisy).save(tmp_path / "out" / "a.noisy.png")
    Path(tmp_path / "out" / "model.npz").write_bytes(b"npz")
    rows = [{"input": str(tmp_path / "a.png"), "output": str(tmp_path / "out" / "a.png"),
             "status": "ok", "outputs": [str(tmp_path / "out" / "a.png"),
                                         str(tmp_path / "out" / "a.noisy.png")]},
            {"input": str(tmp_path / "a.png"), "output": "model.npz", "status": "ok"}]
    page = report.write_report(tmp_path / "out", rows, {"job": "denoise"}).read_text()
    first = page.split("id='img-0'")[1].split("</article>")[0]
    labels = re.findall(r"<figcaption>([^<]*)<br>", first)
    assert labels == ["noisy", "denoised", "clean original", "difference from clean original"]
    heat = panel_pixels(tmp_path / "out", page, 0, "difference from clean original")
    assert heat.max() < 20  # the output is the clean image: no difference
    second = page.split("id='img-1'")[1].split("</article>")[0]
    assert "<a href='model.npz'>model.npz</a>" in second  # a model file: linked, not shown
    assert "alt='denoised'" not in second and "cannot read" not in second


def test_curves_beyond_the_limit_or_without_matplotlib_are_listed(tmp_path, monkeypatch):
    Image.fromarray(gradient_image(20, 20)).save(tmp_path / "a.png")
    sweep = {"k": [2, 4, 8], "inertia": [90.0, 40.0, 15.0], "psnr": [22.0, 27.5, 31.25]}
    rows = [{"input": str(tmp_path / "a.png"), "output": str(tmp_path / "a.png"),
             "status": "ok", "sweep": sweep} for _ in range(3)]
    monkeypatch.setattr(plots, "CURVE_LIMIT", 2)
    page = report.write_report(tmp_path, rows, {"job": "quantize"}).read_text()
    assert page.count("alt='curve'") == 2 and page.count("k sweep values") == 1
    assert "<td>31.25</td>" in page.split("id='img-2'")[1]
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    page = report.write_report(tmp_path, rows, {"job": "quantize"}).read_text()
    assert "alt='curve'" not in page and page.count("k sweep values") == 3
    assert "matplotlib is not installed" in page


def test_inpaint_rows_as_the_inpaint_job_writes_them(tmp_path):
    """k_curve as a list (K = 1, 2, ...), the mask file found beside the input."""
    image = gradient_image(24, 24)
    Image.fromarray(image).save(tmp_path / "a.png")
    mask = np.zeros((24, 24), np.uint8)
    mask[:8] = 255
    Image.fromarray(mask).save(tmp_path / "a.hole.png")
    row = {"input": str(tmp_path / "a.png"), "output": str(tmp_path / "a.png"), "status": "ok",
           "mask_source": "file", "k_curve": [5.0, 3.0, 3.5], "k": 2, "reference": None}
    summary = {"job": "inpaint", "config": {"inpaint": {"mask_suffix": ".hole.png"}}}
    page = report.write_report(tmp_path, [row], summary).read_text()
    assert "alt='mask (white = missing)'" in page and "alt='clean original'" not in page
    shown = panel_pixels(tmp_path, page, 0, "damaged (missing in the key colour)")
    assert np.abs(shown[:7] - (255, 0, 255)).max() < 40
    assert np.abs(shown[9:] - image[9:]).max() < 40
    assert "alt='curve'" in page


# ---------------------------------------------------------------------------- what a user saw


def metric_rows(tmp_path: Path, count: int, **columns) -> list[dict]:
    """``count`` ok rows over one small picture, with the given metric per image."""
    Image.fromarray(gradient_image(20, 20)).save(tmp_path / "a.png")
    return [{"input": str(tmp_path / f"{i}.png"), "output": str(tmp_path / "a.png"),
             "status": "ok", "width": 20, "height": 20,
             **{key: values[i] for key, values in columns.items()}} for i in range(count)]


def test_a_constant_is_one_number_not_a_column_or_a_histogram(tmp_path):
    rows = metric_rows(tmp_path, 8, psnr=[20.0 + i for i in range(8)], bits_raw=[9600] * 8,
                       bits_indices=[100 * i for i in range(8)])
    page = report.write_report(tmp_path, rows, {"job": "quantize"}).read_text()
    assert "data-type='num'>psnr</th>" in page
    assert "data-type='num'>bits_<wbr>indices</th>" in page  # wraps after an underscore
    assert "data-type='num'>bits_<wbr>raw</th>" not in page  # not a column ...
    assert "<b>bits_raw</b> 9,600" in page.split("id='plots'")[0]  # ... but once, above
    assert "bits_raw</dt><dd>9,600" in card_of(page, 0)  # and on every card
    assert [key for key, _ in plots.distribution_series(rows, ["psnr", "bits_raw"])] == ["psnr"]
    assert (tmp_path / "report" / "plots" / "distributions.png").is_file()


def test_only_constants_draw_no_figure(tmp_path):
    rows = metric_rows(tmp_path, 6, bits_raw=[9600] * 6, bits_palette=[384] * 6)
    page = report.write_report(tmp_path, rows, {"job": "quantize"}).read_text()
    assert not (tmp_path / "report" / "plots" / "distributions.png").exists()
    assert "same value for every image" in page.split("id='table'")[0]


def test_a_few_images_draw_no_histogram(tmp_path):
    rows = metric_rows(tmp_path, 2, psnr=[20.0, 31.0])
    page = report.write_report(tmp_path, rows, {"job": "quantize"}).read_text()
    assert not (tmp_path / "report" / "plots" / "distributions.png").exists()
    assert "2 finished images: too few for a distribution" in page
    assert "data-type='num'>psnr</th>" in page  # the values are in the table


def drawn(figure):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


@pytest.mark.parametrize("count", [1, 2, 5])
def test_histogram_counts_are_whole_images_and_x_labels_never_overlap(count):
    rng = np.random.default_rng(0)
    series = [("psnr", rng.normal(30, 4, 40)), ("bits_indices", rng.uniform(1e5, 9e5, 40)),
              ("seconds", rng.uniform(0.001, 0.002, 40)), ("k", rng.integers(2, 9, 40)),
              ("delta_e", np.array([1.5, 2.0, 7.25]))][-count:]  # delta_e: three images have it
    figure = distribution_figure = plots.distribution_figure(series)
    renderer = drawn(figure)
    axes = distribution_figure.axes
    assert len(axes) == len(series)
    for ax, (key, values) in zip(axes, series, strict=True):
        labels = [t for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
        boxes = [t.get_window_extent(renderer) for t in labels]
        assert len(boxes) >= 2, key
        for left, right in zip(boxes, boxes[1:], strict=False):
            assert left.x1 < right.x0, (key, [t.get_text() for t in labels])
        if len(values) < plots.MIN_HISTOGRAM:
            assert list(ax.get_yticks()) == [], key  # a strip of dots: no counts
            continue
        ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), (key, ticks)
    boxes = [ax.get_tightbbox(renderer) for ax in axes]  # panels do not overlap each other
    for box in boxes:  # nor leave the figure
        assert 0 <= box.x0 and box.x1 <= figure.bbox.x1 and 0 <= box.y0 <= box.y1 <= \
            figure.bbox.y1, box
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)


def test_a_whole_number_metric_gets_a_bar_per_value():
    values = np.array([4, 4, 5, 8, 8, 8, 6])
    figure = plots.distribution_figure([("k", values)])
    drawn(figure)
    bars = figure.axes[0].patches
    assert len(bars) == 5 and sorted(b.get_height() for b in bars) == [0, 1, 1, 2, 3]


def test_a_click_opens_a_larger_view_written_into_report(finished):
    page = (finished / "report.html").read_text()
    card = card_of(page, 1)
    links = re.findall(r"<a class='view' href='([^']+)' data-view='([^']+)' data-vx='(\d+)' "
                       r"data-vw='(\d+)' data-vh='(\d+)'[^>]*>\s*<span class='crop'[^>]*>"
                       r"<img src='[^']+' alt='([^']+)'", card)
    labels = [link[-1] for link in links]
    assert labels[:3] == ["original", "quantized", "difference from original"]
    for full, view, _, width, height, label in links:
        assert view.startswith("report/views/") and (finished / view).is_file()
        assert (finished / full).is_file()  # the file itself, or the view without one
        if label != "colour scatter":  # a 160-px drawing; the pictures are not scaled down
            assert max(int(width), int(height)) == 200, label
    original = [link for link in links if link[-1] == "original"][0]
    with Image.open(finished / original[1]) as sprite:
        x, width, height = (int(v) for v in original[2:5])
        shown = np.asarray(sprite.convert("RGB"))[:height, x:x + width].astype(int)
    row = json.loads((finished / "metrics.jsonl").read_text().splitlines()[1])
    with Image.open(row["input"]) as source:
        expected = np.asarray(source.convert("RGB")).astype(int)
    assert shown.shape == expected.shape and np.abs(shown - expected).mean() < 4  # JPEG
    assert original[0].endswith("img0.png") and "data-full=" in card


def test_a_large_image_has_a_view_of_at_most_view_size(tmp_path):
    Image.fromarray(gradient_image(700, 1000)).save(tmp_path / "big.png")
    rows = [{"input": str(tmp_path / "big.png"), "output": str(tmp_path / "big.png"),
             "status": "ok"}]
    page = report.write_report(tmp_path, rows, {"job": "denoise"}).read_text()
    view = re.search(r"data-view='([^']+)' data-vx='0' data-vw='(\d+)' data-vh='(\d+)'", page)
    assert view and (int(view.group(2)), int(view.group(3))) == (pictures.VIEW_SIZE, 448)
    with Image.open(tmp_path / view.group(1)) as sprite:
        assert sprite.height == 448
    thumb = re.search(r"data-w='(\d+)' data-h='(\d+)'", page)
    assert (int(thumb.group(1)), int(thumb.group(2))) == (pictures.THUMB_SIZE, 112)


def test_a_small_image_reuses_its_thumbnails_as_views(tmp_path):
    rows = metric_rows(tmp_path, 1)
    page = report.write_report(tmp_path, rows, None).read_text()
    assert "data-view='report/thumbs/00000.jpg'" in page
    assert not list((tmp_path / "report" / "views").iterdir())


def test_long_names_are_cut_in_the_table_not_the_page(tmp_path):
    long = "a" * 200 + ".png"
    Image.fromarray(gradient_image(20, 20)).save(tmp_path / long)
    rows = [{"input": str(tmp_path / long), "output": str(tmp_path / long), "status": "ok"}]
    page = report.write_report(tmp_path, rows, None).read_text()
    assert f"class='name' title='{long}'" in page
    css = (Path(report.__file__).parent / "static" / "report.css").read_text()
    assert "text-overflow:ellipsis" in css and ".scroll{" in css


# ---------------------------------------------------------------------------- the package


def test_the_report_never_names_a_job():
    """Cards come from the job's ReportHints: no job name is written in the report's code."""
    from gpupix.jobs import JOBS

    folder = Path(report.__file__).parent
    sources = [p for p in folder.rglob("*") if p.suffix in (".py", ".j2", ".js", ".css")]
    assert len(sources) >= 9
    for path in sources:
        code = path.read_text()
        for name in JOBS:
            assert not re.search(rf"['\"]{name}['\"]", code), (path.name, name)


def test_a_job_is_guessed_from_its_marks(monkeypatch):
    from gpupix.jobs import JOBS, ReportHints
    from gpupix.report import cards

    assert cards.guess_job([{"input": "a", "colors_out": 8}]) == "quantize"
    assert cards.guess_job([{"input": "a", "missing_pixels": 3}]) == "inpaint"
    assert cards.guess_job([{"input": "a", "psnr": 3.0}]) == "job"

    class Blur:
        report_hints = ReportHints(input_label="sharp", output_label="blurred",
                                   diff_against_input=True, marks=("blur_radius",))

    monkeypatch.setitem(JOBS, "blur", Blur)
    assert cards.guess_job([{"input": "a"}, {"input": "b", "blur_radius": 2}]) == "blur"


def test_a_new_job_kind_gets_its_cards_from_its_hints(tmp_path, monkeypatch):
    from gpupix.jobs import JOBS, ReportHints

    class Blur:
        report_hints = ReportHints(input_label="sharp", output_label="blurred",
                                   diff_against_input=True, key_color_panel=True,
                                   columns=("radius",))

    monkeypatch.setitem(JOBS, "blur", Blur)
    image = gradient_image(24, 24)
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(image // 2).save(tmp_path / "b.png")
    mask = np.zeros((24, 24), np.uint8)
    mask[:6] = 255
    Image.fromarray(mask).save(tmp_path / "a.gone.png")
    row = {"input": str(tmp_path / "a.png"), "output": str(tmp_path / "b.png"), "status": "ok",
           "mask_source": "file", "radius": 2.0, "psnr": 12.0}
    summary = {"job": "blur", "config": {"blur": {"key_color": "#00ff00",
                                                  "mask_suffix": ".gone.png"}}}
    page = report.write_report(tmp_path, [row, dict(row, radius=3.0)], summary).read_text()
    labels = re.findall(r"<figcaption>([^<]*)<br>", card_of(page, 0))
    assert labels == ["sharp (missing in the key colour)", "blurred",
                      "mask (white = missing)", "difference from sharp"]
    shown = panel_pixels(tmp_path, page, 0, "sharp (missing in the key colour)")
    assert np.abs(shown[:5] - (0, 255, 0)).max() < 40
    header = re.findall(r"<th data-type='num'>([^<]*)</th>", page)
    assert header[:2] == ["#", "size"] and header[2] == "radius"  # the job's columns first


def test_templates_and_static_files_are_package_data():
    """``pip install .`` (not editable) ships every template and static file."""
    import fnmatch
    import tomllib

    root = Path(__file__).parents[1]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["gpupix.report"]
    folder = root / "gpupix" / "report"
    files = [p.relative_to(folder).as_posix() for sub in ("templates", "static")
             for p in (folder / sub).iterdir()]
    assert len(files) >= 4
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in data), name


def test_values_are_escaped_by_the_template_engine(tmp_path):
    from gpupix.report import render

    assert render.environment().autoescape("report.html.j2")
    name = "<b onmouseover='x'>&.png"
    Image.fromarray(gradient_image(20, 20)).save(tmp_path / name)
    rows = [{"input": str(tmp_path / name), "output": str(tmp_path / name), "status": "ok",
             "note": "<script>alert(1)</script>"}]
    page = report.write_report(tmp_path, rows, None).read_text()
    assert "<b onmouseover" not in page and page.count("<script") == 1
    assert "&lt;b onmouseover=&#39;x&#39;&gt;&amp;.png" in page
    assert "href='%3Cb%20onmouseover%3D%27x%27%3E%26.png'" in page  # a URL: quoted
