"""What many tests do: write a job file, read a run's metrics rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def write_job(folder: Path, config: dict[str, Any] | str, name: str = "job.yaml") -> Path:
    """Write ``folder/name``: a mapping as YAML, or YAML text as given; return its path."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def metrics_rows(out_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``out_dir/metrics.jsonl``, in file order; a non-standard JSON token
    (NaN, Infinity) fails the test: the file is strict JSON."""
    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token} in metrics.jsonl")

    text = (Path(out_dir) / "metrics.jsonl").read_text()
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def rows_by_name(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The rows keyed by their input's file name (each input once)."""
    rows = metrics_rows(out_dir)
    by_name = {Path(row["input"]).name: row for row in rows}
    assert len(by_name) == len(rows), "an input has more than one row"
    return by_name
