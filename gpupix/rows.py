"""Result rows: one JSON object per image in ``metrics.jsonl``, and the run's file names.

Every row is built here (:func:`ok_row`, :func:`failed_row`, :func:`skipped_row`), written
as strict JSON (:func:`to_json`) and read back as untrusted data (:func:`read_rows`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpupix.errors import ImageError

if TYPE_CHECKING:
    from gpupix.io import DecodedImage, InputItem

Row = dict[str, Any]

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
REPORT_DIR = "report"
MAX_ROW_CHARS = 1 << 20  # a row is a few KB; a longer line was not written by gpupix
# Per-image failures: a row says `failed`, the batch goes on. Anything else stops the run.
IMAGE_ERRORS: tuple[type[BaseException], ...] = (ImageError, OSError, ValueError, MemoryError)


@dataclass(frozen=True)
class ImageFacts:
    """What a row needs from a decoded image, without holding its pixels."""

    width: int
    height: int
    bytes_in: int
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, image: DecodedImage) -> ImageFacts:
        height, width = image.pixels.shape[:2]
        return cls(width=width, height=height, bytes_in=image.bytes_in, notes=list(image.notes))


def describe_failure(item: InputItem, exc: BaseException) -> str:
    """One line naming the file: ImageError messages already do; others get the path added."""
    if isinstance(exc, ImageError):  # a job's own message may not know the path: add it
        return str(exc) if str(item.path) in str(exc) else f"{item.path}: {exc}"
    return f"{item.path}: {type(exc).__name__}: {exc}"


def failed_row(item: InputItem, outputs: list[Path], error: str | BaseException,
               seconds: float = 0.0) -> Row:
    """A failed image's row; given an exception, its one-line description and any fields it
    carries (a QualityError's achieved quality)."""
    fields: dict[str, Any] = {}
    if isinstance(error, BaseException):
        fields = dict(getattr(error, "fields", {}))
        error = describe_failure(item, error)
    return {"input": str(item.path), "output": str(outputs[0]), "status": "failed",
            "error": error, "seconds": round(seconds, 4), **fields}


def ok_row(item: InputItem, outputs: list[Path], facts: ImageFacts, metrics: dict[str, Any],
           seconds: float, sizes: list[int]) -> Row:
    """A written image's row: its facts, the job's metrics and the decoder's notes."""
    row: Row = {"input": str(item.path), "output": str(outputs[0]), "status": "ok", "error": None,
                "seconds": round(seconds, 4), "width": facts.width, "height": facts.height,
                "bytes_in": facts.bytes_in, "bytes_out": sizes[0]}
    if len(outputs) > 1:
        row["outputs"] = [str(p) for p in outputs]
    row.update(metrics)
    job_note = metrics.get("notes")
    notes = [*facts.notes, *([job_note] if job_note else [])]
    if notes:  # the decoder's notes (e.g. frames dropped) and the job's are both kept
        row["notes"] = "; ".join(notes)
    return row


def skipped_row(item: InputItem, outputs: list[Path], earlier: Row) -> Row:
    """An output already right: its earlier row, marked skipped."""
    return {**earlier, "input": str(item.path), "output": str(outputs[0]), "status": "skipped",
            "error": None}


def row_key(row: Row) -> str:
    return row["input"] + "\0" + row["output"]


def to_json(value: Any, **options: Any) -> str:
    """Strict JSON: non-finite floats (an identical image's PSNR is inf) are written as null.

    ``json.dumps`` would write ``Infinity``, which most JSON readers refuse.
    """
    return json.dumps(_finite(value), allow_nan=False, **options)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def read_rows(path: Path) -> list[Row]:
    """Rows of a metrics.jsonl; a torn last line (a killed run) is ignored.

    The file is read back as data: a line longer than :data:`MAX_ROW_CHARS` is skipped
    without being held whole, and so is one that is not a JSON object with a string input.
    """
    rows: list[Row] = []
    if not path.is_file():
        return rows
    with open(path, encoding="utf-8", errors="replace", newline="\n") as handle:
        while line := handle.readline(MAX_ROW_CHARS + 1):
            if len(line) > MAX_ROW_CHARS:  # skip the rest of this line, a piece at a time
                while line and not line.endswith("\n"):
                    line = handle.readline(MAX_ROW_CHARS)
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):  # torn, too deep, or an int of 5000 digits
                continue
            if isinstance(row, dict) and isinstance(row.get("input"), str):
                rows.append(row)
    return rows
