"""What the report reads back from a run's files is data, never markup or settings.

``metrics.jsonl`` and ``summary.json`` may have been edited by a person or a program: every
value is checked for the type gpupix writes before the page uses it, and a field of any
other type is left out and named on its card. (Escaping is the template engine's.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gpupix.errors import GpupixError
from gpupix.rows import Row

PATH_FIELDS = ("damaged", "noisy", "reference", "mask")  # row fields naming further pictures

MAX_SUMMARY_BYTES = 16 << 20
MAX_TEXT = 1000          # a free-text field (notes, a mask source) longer than this is dropped
MAX_PATH_TEXT = 8192     # input, output and the other path fields
MAX_ERROR_TEXT = 2000    # an error message is cut, not dropped
MAX_SERIES = 10_000      # values in a curve or a list of outputs
PATH_KEYS = ("input", "output", *PATH_FIELDS)
STATUSES = ("ok", "skipped", "failed")
_HEX = frozenset("0123456789abcdefABCDEF")


def checked_row(row: Any) -> tuple[Row, list[str]]:
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
            dropped.append(cut(repr(key), 40))
            continue
        if isinstance(value, float) and not math.isfinite(value):
            value = None  # as metrics.jsonl has it (an identical output's PSNR is infinite)
        elif isinstance(value, tuple):
            value = list(value)
        if _field_ok(key, value):
            clean[key] = value
        elif key == "error" and isinstance(value, str):
            clean[key] = cut(value, MAX_ERROR_TEXT)
        elif key == "status":
            clean[key] = "failed"
            clean.setdefault("error", f"status {cut(repr(value), 40)} is not one of "
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
        return is_number(value) and float(value).is_integer() and 0 <= value < 2**53
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
    if value is None or isinstance(value, bool) or is_number(value):
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
        v is None or isinstance(v, float) or is_number(v) for v in value)


def _is_hex_colour(code: Any) -> bool:
    return isinstance(code, str) and len(code) == 7 and code[0] == "#" and set(code[1:]) <= _HEX


def checked_summary(summary: Any) -> dict[str, Any] | None:
    """summary.json with the fields the page uses held to their types (others left out)."""
    if not isinstance(summary, dict):
        return None
    clean: dict[str, Any] = {}
    if isinstance(summary.get("job"), str) and len(summary["job"]) <= 40:
        clean["job"] = summary["job"]
    for key in ("wall_seconds", "images_per_second"):
        if is_number(summary.get(key)):
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
                          and len(k) <= 100 and is_number(v)}
    config = summary.get("config")
    if isinstance(config, dict) and _plain_tree(config, depth=6, budget=[10_000]):
        clean["config"] = config  # shown as YAML; the job's key_color, mask_suffix read
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
    return value is None or isinstance(value, bool) or is_number(value)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_number(value: Any) -> bool:
    """A finite int or float that converts to float (JSON ints can have any length)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) if isinstance(value, float) else abs(value) < 2**63


def read_summary(path: Path) -> dict[str, Any] | None:
    """A run's ``summary.json`` as data (None when absent or not an object); bounded in size.

    Raises :class:`GpupixError` when the file is there but cannot be read as JSON.
    """
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle:
            text = handle.read(MAX_SUMMARY_BYTES + 1)
        if len(text) > MAX_SUMMARY_BYTES:
            raise ValueError(f"more than {MAX_SUMMARY_BYTES:,} bytes")
        summary = json.loads(text.decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise GpupixError(f"{path}: unreadable ({cut(str(exc), 160)})") from None
    return summary if isinstance(summary, dict) else None
