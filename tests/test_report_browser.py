"""report.html in a real browser: headless Chromium renders it, every picture decodes, and
the table sorts. Skipped where Debian's ``chromium`` is not installed (``.ci/run`` installs it).

Set ``GPUPIX_REPORT_SCREENSHOT=/some/file.png`` to keep the screenshot for a person to look at.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gpupix import report
from gpupix.config import validate_config
from gpupix.pipeline import run_job
from tests.conftest import gradient_image

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed "
                       "(apt-get install chromium; .ci/run does)"),
]
IMAGES = report.PAGE_SIZE + 4  # two pages of cards


def chromium(user_data: Path, *arguments: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={user_data}"]
    done = subprocess.run([str(CHROMIUM), *flags, *arguments], capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def selfcheck(user_data: Path, page: Path, column: str = "") -> tuple[dict, str]:
    """The page's own record of what rendered, after every picture loaded; and the DOM."""
    anchor = "#selfcheck" + (f"={column}" if column else "")
    dom = chromium(user_data, "--window-size=1280,900", "--dump-dom",
                   page.as_uri() + anchor).stdout
    found = re.search(r'data-selfcheck="([^"]*)"', dom)
    assert found, "the page's script did not run: " + dom[:300]
    return json.loads(html.unescape(found.group(1))), dom


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    (root / "images").mkdir()
    for i in range(IMAGES - 1):
        Image.fromarray(gradient_image(36 + i % 5, 48, seed=i)).save(root / "images" / f"{i}.png")
    (root / "images" / "zz-broken.png").write_bytes(b"not an image")
    config = validate_config({"job": "quantize", "input": {"paths": [str(root / "images")]},
                              "output": {"dir": str(root / "out")}, "backend": "cpu",
                              "quantize": {"k": 6}, "batch": {"size": 8}})
    run_job(config)
    return root / "out"


def test_chromium_renders_the_report(run_dir, tmp_path):
    page = run_dir / "report.html"
    shot = tmp_path / "report.png"
    chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000",
             page.as_uri())
    if os.environ.get("GPUPIX_REPORT_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["GPUPIX_REPORT_SCREENSHOT"])
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (2000, 1280, 3)
    assert pixels.std() > 25  # not blank
    assert len(np.unique(pixels.reshape(-1, 3) // 8, axis=0)) > 500  # thumbnails, not just text

    check, _ = selfcheck(tmp_path / "profile", page)
    assert check["cards"] == IMAGES and check["pages"] == 2
    assert check["visible"] == report.PAGE_SIZE  # one page at a time
    assert check["images"] == page.read_text().count("<img ")
    assert check["broken"] == 0, check["brokenSources"]
    assert check["pageWidth"] <= check["windowWidth"]  # nothing widens the page
    assert check["tableWidth"] <= check["tableBox"]  # every column of quantize's table fits
    view = check["view"]  # the first thumbnail's larger view, opened as by a click
    assert view and view["src"].startswith("report/") and (run_dir / view["src"]).is_file()
    assert view["width"] > 160


def test_a_missing_thumbnail_is_seen_as_broken(run_dir, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(run_dir, copy)
    victim = sorted((copy / "report" / "thumbs").glob("*.jpg"))[-1]  # the last card's pictures
    victim.unlink()
    source = f"report/thumbs/{victim.name}"
    check, _ = selfcheck(tmp_path / "profile", copy / "report.html")
    expected = (copy / "report.html").read_text().count(f"src='{source}'")
    assert expected >= 3 and check["broken"] == expected
    assert set(check["brokenSources"]) == {source}


def column_values(page: str, name: str) -> list[float | None]:
    """A column of the summary table, top to bottom (None for an empty cell)."""
    table = re.split(r"<table class=.sortable.>", page)[1].split("</table>")[0]
    header = [cell.replace("<wbr>", "") for cell in
              re.findall(r"<th[^>]*>(.*?)</th>", table.split("</thead>")[0])]
    column = header.index(name)
    values = []
    for row in table.split("<tbody>")[1].split("</tr>")[:-1]:
        cell = re.findall(r"<td data-v=.([^'\"]*).", row)[column]
        values.append(float(cell) if cell else None)
    return values


def test_the_table_sorts_by_a_metric_in_the_browser(run_dir, tmp_path):
    written = column_values((run_dir / "report.html").read_text(), "psnr")
    _, dom = selfcheck(tmp_path / "profile", run_dir / "report.html", column="psnr")
    values = column_values(dom, "psnr")
    numbers = [v for v in values if v is not None]
    assert len(numbers) == IMAGES - 1 and numbers == sorted(numbers)
    assert [v for v in written if v is not None] != numbers  # the browser did reorder them
    assert sorted(numbers) == sorted(v for v in written if v is not None)
    assert values[-1] is None  # the failed image (no psnr) sorts last
