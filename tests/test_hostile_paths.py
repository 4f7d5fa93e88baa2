"""output.dir is the only place gpupix writes, renames or deletes; no link it did not make is
followed, replaced or removed; a rerun never lies about what made an output."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from gpupix.cli import app
from gpupix.output_dir import (
    TEMP_PREFIX,
    OutputLock,
    UnsafePathError,
    remove_stale_temporaries,
    write_atomic,
)
from tests.conftest import gradient_image
from tests.helpers import rows_by_name as rows

runner = CliRunner()


def image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gradient_image(12, 14, seed=seed)).save(path)
    return path


def job_file(folder: Path, **config) -> Path:
    base = {"job": "quantize", "backend": "cpu", "quantize": {"k": 4}, "report": False}
    base.update(config)
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def run(job: Path, *extra: str):
    return runner.invoke(app, ["run", str(job), "--quiet", *extra])


# ------------------------------------------------------------------ 1. paths leave output.dir
def test_a_glob_climbing_out_of_its_folder_never_writes_beside_the_inputs(tmp_path):
    victim = image(tmp_path / "victim.png")
    before = victim.read_bytes()
    image(tmp_path / "in" / "sub" / "x.png")
    pattern = f"{tmp_path}/in/*/../../*.png"
    job = job_file(tmp_path, input={"paths": [pattern]}, output={"dir": str(tmp_path / "out")})
    result = run(job)
    assert result.exit_code == 0, result.output
    assert victim.read_bytes() == before  # the input is untouched
    assert (tmp_path / "out" / "victim.png").is_file()  # its output is inside output.dir
    assert runner.invoke(app, ["validate", str(job)]).exit_code == 0


def test_write_atomic_refuses_paths_outside_its_root(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(UnsafePathError, match="outside output.dir"):
        write_atomic(tmp_path / "out" / ".." / "x.png", b"x", root=tmp_path / "out")
    with pytest.raises(UnsafePathError, match="outside output.dir"):
        write_atomic(tmp_path / "elsewhere.png", b"x", root=tmp_path / "out")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "elsewhere.png").exists()


# ------------------------------------------------------------------ 2. links below output.dir
@pytest.mark.parametrize("link, target_kind", [
    ("report/plots", "folder"), ("report/thumbs/00000.jpg", "file"),
    ("metrics.jsonl", "file"), ("summary.json", "file"), ("report.html", "file"),
    ("report", "folder")])
def test_links_where_the_run_writes_its_files_are_refused_and_never_followed(
        tmp_path, link, target_kind):
    image(tmp_path / "in" / "a.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep me")
    out = tmp_path / "out"
    (out / Path(link).parent).mkdir(parents=True, exist_ok=True)
    target = elsewhere if target_kind == "folder" else elsewhere / "precious.txt"
    os.symlink(target, out / link)
    job = job_file(tmp_path, input={"paths": ["in"]}, output={"dir": "out"}, report=True)
    result = run(job)
    assert result.exit_code == 2, result.output
    assert "is a symbolic link" in result.output and "\n" not in result.output.strip()
    assert (elsewhere / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["precious.txt"]
    assert (out / link).is_symlink()  # not removed either


def test_an_output_that_is_a_link_fails_alone_and_its_target_is_untouched(tmp_path):
    image(tmp_path / "in" / "a.png")
    image(tmp_path / "in" / "b.png", seed=1)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "out").mkdir()
    os.symlink(victim, tmp_path / "out" / "a.png")
    result = run(job_file(tmp_path, input={"paths": ["in"]}, output={"dir": "out"}))
    assert result.exit_code == 1
    assert victim.read_text() == "keep me" and (tmp_path / "out" / "a.png").is_symlink()
    by_name = rows(tmp_path / "out")
    assert by_name["a.png"]["status"] == "failed"
    assert "symbolic link" in by_name["a.png"]["error"]
    assert by_name["b.png"]["status"] == "ok"


def test_a_folder_link_below_the_root_is_not_followed_even_when_made_mid_run(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, root / "sub")  # as if planted after the up-front checks
    with pytest.raises(UnsafePathError, match="symbolic link"):
        write_atomic(root / "sub" / "x.png", b"data", root=root)
    assert list(elsewhere.iterdir()) == []


def test_stale_report_pictures_are_removed_but_links_among_them_are_not(tmp_path):
    from gpupix.report import write_report

    out = tmp_path / "out"
    thumbs = out / "report" / "thumbs"
    thumbs.mkdir(parents=True)
    (thumbs / "99999.jpg").write_bytes(b"old")  # a stale picture of an earlier report
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, thumbs / "99998.jpg")
    write_report(out, [], {"job": "quantize", "images": 0, "counts": {}})
    assert not (thumbs / "99999.jpg").exists()
    assert (thumbs / "99998.jpg").is_symlink() and victim.read_text() == "keep me"


# ------------------------------------------------------------------ 3, 4. reserved names
@pytest.mark.parametrize("relative", ["report/thumbs/x.png", "palette.png",
                                      "summary.json/x.png", "report.html/y.png"])
def test_inputs_whose_outputs_would_be_the_runs_own_files_are_refused(tmp_path, relative):
    image(tmp_path / "in" / relative)
    job = job_file(tmp_path, input={"paths": ["in"], "recursive": True},
                   output={"dir": "out"}, quantize={"k": 4, "palette": "shared"})
    for command in ("validate", "run"):
        result = runner.invoke(app, [command, str(job), "--quiet"] if command == "run"
                               else [command, str(job)])
        assert result.exit_code == 2, result.output
        assert "kept for gpupix" in result.output and "\n" not in result.output.strip()
    assert not (tmp_path / "out" / relative).exists()


# ------------------------------------------------------------------ 9. a rerun never lies
def test_a_rerun_with_other_settings_redoes_the_outputs(tmp_path):
    for i in range(3):
        image(tmp_path / "in" / f"{i}.png", seed=i)
    job = job_file(tmp_path, input={"paths": ["in"]}, output={"dir": "out"},
                   quantize={"k": 8})
    assert run(job).exit_code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"]["ok"] == 3 and summary["redone"] == 0
    assert run(job).exit_code == 0  # same settings: nothing to redo
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"] == {"ok": 0, "skipped": 3, "failed": 0}
    assert run(job, "--set", "quantize.k=3").exit_code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"]["ok"] == 3 and summary["redone"] == 3
    for i in range(3):
        assert len(Image.open(tmp_path / "out" / f"{i}.png").getpalette()) // 3 <= 3
    recipes = {row["recipe"] for row in rows(tmp_path / "out").values()}
    assert len(recipes) == 1


# ------------------------------------------------------------------ 10. one run per folder
def test_a_second_run_on_the_same_folder_is_refused_with_the_pid(tmp_path):
    image(tmp_path / "in" / "a.png")
    (tmp_path / "out").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from gpupix.output_dir import OutputLock; "
         f"lock = OutputLock({str(tmp_path / 'out')!r}); lock.acquire(); print('held', "
         "flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run(job_file(tmp_path, input={"paths": ["in"]}, output={"dir": "out"}))
        assert result.exit_code == 2
        assert f"in use by another gpupix run (pid {holder.pid})" in result.output
    finally:
        holder.kill()
        holder.wait()
    assert run(job_file(tmp_path, input={"paths": ["in"]}, output={"dir": "out"})
               ).exit_code == 0  # the lock went with the process


def test_only_temporaries_of_dead_processes_are_cleaned(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / f"{TEMP_PREFIX}{dead.pid}-aaaa").write_bytes(b"x")
        (tmp_path / f"{TEMP_PREFIX}{live.pid}-bbbb").write_bytes(b"x")
        assert remove_stale_temporaries(tmp_path) == 1
        assert [p.name for p in tmp_path.iterdir()] == [f"{TEMP_PREFIX}{live.pid}-bbbb"]
    finally:
        live.kill()
        live.wait()


def test_lock_refuses_a_link(tmp_path):
    from gpupix.errors import ConfigError

    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "victim", tmp_path / "out" / ".gpupix.lock")
    with pytest.raises(ConfigError, match="symbolic link"):
        OutputLock(tmp_path / "out").acquire()
    assert not (tmp_path / "victim").exists()


# ------------------------------------------------------------------ 11. file modes
def test_files_get_the_mode_the_umask_gives(tmp_path):
    inputs = image(tmp_path / "in" / "a.png")
    os.chmod(inputs, 0o644)
    old = os.umask(0o022)
    try:
        job = job_file(tmp_path, input={"paths": ["in"]}, output={"dir": "out"}, report=True)
        assert run(job).exit_code == 0
        assert run(job, "--set", "output.overwrite=true").exit_code == 0  # overwritten too
    finally:
        os.umask(old)
    out = tmp_path / "out"
    for path in (out / "a.png", out / "metrics.jsonl", out / "summary.json",
                 out / "report.html"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


# ------------------------------------------------------------------ 12. ~ and $VARS
def test_home_and_variables_are_expanded_in_path_fields(tmp_path, monkeypatch):
    image(tmp_path / "in" / "a.png")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GPUPIX_TEST_IN", str(tmp_path / "in"))
    job = job_file(tmp_path, input={"paths": ["$GPUPIX_TEST_IN"]}, output={"dir": "~/x"})
    assert runner.invoke(app, ["validate", str(job)]).exit_code == 0
    assert run(job).exit_code == 0
    assert (tmp_path / "home" / "x" / "a.png").is_file()
    assert not (tmp_path / "~").exists()
    job = job_file(tmp_path, input={"paths": ["in"]}, output={"dir": "${GPUPIX_NOT_SET}/x"})
    for command in ("validate", "run"):
        result = runner.invoke(app, [command, str(job)])
        assert result.exit_code == 2
        assert "output.dir" in result.output and "not set" in result.output


# ------------------------------------------------------------------ 13. names with [ ] * ?
@pytest.mark.parametrize("folder", ["photos [2024]", "what?", "star*"])
def test_an_existing_path_with_glob_characters_is_taken_literally(tmp_path, folder):
    image(tmp_path / folder / "a.png")
    job = job_file(tmp_path, input={"paths": [folder]}, output={"dir": "out"})
    result = run(job)
    assert result.exit_code == 0, result.output
    assert rows(tmp_path / "out")["a.png"]["status"] == "ok"


def test_output_dir_named_through_a_link_is_resolved_once(tmp_path):
    image(tmp_path / "in" / "a.png")
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "named")
    result = run(job_file(tmp_path, input={"paths": ["in"]}, output={"dir": "named"}))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "real" / "a.png").is_file()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "named" / "a.png")),
                                  np.asarray(Image.open(tmp_path / "real" / "a.png")))
