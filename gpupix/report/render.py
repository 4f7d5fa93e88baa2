"""The page: Jinja2 templates (``templates/``) with autoescaping, and the static CSS and JS.

Every value reaches the page through the template engine, which escapes it for HTML; a URL
goes through the ``urlencode`` filter first. The stylesheet and the script are package files
(``static/``), inlined so that ``report.html`` opens from disk with nothing fetched.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import PurePath
from typing import Any

import jinja2
from markupsafe import Markup

from gpupix.report import cards
from gpupix.report.pictures import HEAT_ANCHORS, rgb_to_hex


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gpupix.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"),
                                            default_for_string=True, default=True),
        trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=lambda number, key: cards.fmt(key, number),
                       pct=lambda share: f"{share:.1%}",
                       basename=lambda path: PurePath(str(path)).name)
    env.globals.update(value=cards.value, metric_items=cards.metric_items,
                       curve_table=cards.curve_table)
    env.globals["heat_gradient"] = ",".join(rgb_to_hex(c) for c in HEAT_ANCHORS)
    return env


@cache
def static(name: str) -> Markup:
    """A file of ``static/``, to be inlined as it is (it is ours, not data)."""
    return Markup(resources.files("gpupix.report").joinpath("static", name).read_text("utf-8"))


def render_page(**context: Any) -> str:
    return environment().get_template("report.html.j2").render(
        css=static("report.css"), js=static("report.js"), **context)
