"""Hostile inputs: job files, models, masks, palettes, names and run records built to hurt.

Each case is one a careless or hostile user can make in a few bytes; each must end in one
line naming the file (exit 2 for what the whole job depends on, a failed row for one image),
in bounded time and memory, and never run code or markup it was handed.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from gpupix.cli import app
from tests.conftest import gradient_image

runner = CliRunner()

HEAD = "job: quantize\ninput: {paths: [images]}\noutput: {dir: out}\nbackend: cpu\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    Image.fromarray(gradient_image(8, 8)).save(tmp_path / "images" / "a.png")
    return tmp_path


def write_job(folder: Path, text: str) -> Path:
    path = folder / "job.yaml"
    path.write_text(text)
    return path


def one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    line = result.output.strip()
    assert "\n" not in line and line.startswith("error: "), line
    assert "Traceback" not in line
    return line


def billion_laughs() -> str:
    """Nine anchored lists of nine aliases: 600 bytes that stand for 9**9 strings."""
    lines = ["x-laughs:", "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 9):
        lines.append(f"  a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n" + HEAD + "seed: *a8\n"


# ---------------------------------------------------------------------------- job files


@pytest.mark.parametrize("command", ["validate", "run"])
def test_billion_laughs_is_refused_before_it_expands(folder, command):
    job = write_job(folder, billion_laughs())
    assert len(job.read_bytes()) < 700
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = runner.invoke(app, [command, str(job)])
    seconds = time.perf_counter() - start
    line = one_line_error(result)
    assert f"{job}: invalid YAML at line" in line and "aliases" in line
    assert seconds < 1.0
    # ru_maxrss is in KiB on Linux: the expansion would be gigabytes
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000
    assert not (folder / "out").exists()


def test_anchors_and_merge_keys_a_real_job_file_uses_still_work(folder):
    job = write_job(folder, HEAD + "seed: &s 3\nbatch: {size: *s, prefetch: *s}\n"
                    "quantize: {<<: {max_iter: 50, k: 8}, k: 4}\n")
    result = runner.invoke(app, ["validate", str(job)])
    assert result.exit_code == 0, result.output
    from gpupix.config import load_config

    config = load_config(job)
    assert (config.batch.size, config.quantize.k, config.quantize.max_iter) == (3, 4, 50)


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting_is_one_line_not_a_recursion_error(folder, style):
    if style == "flow":
        text = HEAD + "seed: " + "[" * 500 + "]" * 500 + "\n"
    else:
        text = HEAD + "seed:\n" + "".join("  " * depth + "- \n" for depth in range(1, 500))
    job = write_job(folder, text)
    line = one_line_error(runner.invoke(app, ["validate", str(job)]))
    assert "nested more than" in line and str(job) in line


def test_recursive_alias_is_refused(folder):
    job = write_job(folder, HEAD + "x: &loop [*loop]\n")
    line = one_line_error(runner.invoke(app, ["validate", str(job)]))
    assert "recursive" in line


def test_duplicate_key_names_the_key_and_both_lines(folder):
    job = write_job(folder, HEAD + "seed: 1\nseed: 2\n")
    line = one_line_error(runner.invoke(app, ["validate", str(job)]))
    assert "line 6" in line and "duplicate key 'seed'" in line and "first at line 5" in line


def test_nested_duplicate_key(folder):
    job = write_job(folder, HEAD + "quantize:\n  k: 8\n  max_iter: 5\n  k: 16\n")
    line = one_line_error(runner.invoke(app, ["validate", str(job)]))
    assert "duplicate key 'k'" in line and "line 8" in line


@pytest.mark.parametrize("tail, field", [
    ("quantize: {k: '" + "9" * 100_000 + "'}\n", "quantize.k"),
    ("inpaint: {key_color: '" + "f" * 100_000 + "'}\n", "inpaint.key_color"),
    ("seed: [" + ", ".join(["1"] * 5000) + "]\n", "seed"),
    ("quantize: {dither: {" + ", ".join(f"m{i}: 1" for i in range(500)) + "}}\n",
     "quantize"),
    ("x" * 1000 + ": 1\n", "unknown key"),
], ids=["long string", "long colour", "long list", "big mapping", "long key"])
def test_errors_never_echo_a_huge_value(folder, tail, field):
    text = HEAD + tail
    if "inpaint" in tail:
        text = text.replace("job: quantize", "job: inpaint")
    job = write_job(folder, text)
    line = one_line_error(runner.invoke(app, ["validate", str(job)]))
    assert field in line
    assert len(line) < len(str(job)) + 400, line


def test_huge_number_is_refused_with_its_line(folder):
    job = write_job(folder, HEAD + "seed: " + "1" * 5000 + "\n")
    line = one_line_error(runner.invoke(app, ["validate", str(job)]))
    assert "line 5" in line and "5,000 characters" in line


def test_python_tags_are_not_constructed(folder):
    job = write_job(folder, HEAD + "seed: !!python/object/apply:os.system ['echo pwned']\n")
    line = one_line_error(runner.invoke(app, ["validate", str(job)]))
    assert "could not determine a constructor" in line


def test_oversized_job_file_is_refused_unread(folder):
    job = write_job(folder, HEAD + "# " + "x" * (1 << 20) + "\n")
    line = one_line_error(runner.invoke(app, ["validate", str(job)]))
    assert "a job file is at most" in line


@pytest.mark.parametrize("value, fragment", [
    ("&a [*a]", "recursive"),
    ("[" * 200 + "]" * 200, "nested more than"),
    ("{a: 1, a: 2}", "duplicate key 'a'"),
    ("'" + "z" * 10_000 + "'", "got 'zzz"),
], ids=["recursive", "deep", "duplicate", "long"])
def test_set_values_have_the_same_bounds(folder, value, fragment):
    job = write_job(folder, HEAD)
    line = one_line_error(runner.invoke(app, ["validate", str(job), "--set", f"seed={value}"]))
    assert fragment in line and len(line) < len(str(job)) + 300, line


def test_set_aliases_to_a_bomb_are_bounded(folder):
    job = write_job(folder, HEAD)
    value = billion_laughs().split("seed:")[0].replace("\n" + HEAD, "")
    flow = "{" + ", ".join(line.strip() for line in value.splitlines()[1:]) + "}"
    start = time.perf_counter()
    line = one_line_error(runner.invoke(app, ["validate", str(job), "--set", f"seed={flow}"]))
    assert time.perf_counter() - start < 1.0
    assert "aliases" in line


def test_config_yaml_round_trip_still_loads(folder):
    """The bounded loader reads what yaml.safe_dump writes (configs in summary.json)."""
    from gpupix.config import _parse_yaml

    data = {"job": "quantize", "quantize": {"k": 8, "palette": "shared"}, "metrics": ["psnr"]}
    assert _parse_yaml(yaml.safe_dump(data), "t") == data
    assert json.loads(json.dumps(data)) == data
