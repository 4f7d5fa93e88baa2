"""Bad job files and command lines: each exits 2 with one line naming the file and the field."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from gpupix.cli import app
from tests.conftest import gradient_image
from tests.helpers import write_job

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    Image.fromarray(gradient_image(8, 8)).save(tmp_path / "images" / "a.png")
    return tmp_path


def good_config(**changes) -> dict:
    config = {"job": "quantize", "input": {"paths": ["images"]}, "output": {"dir": "out"},
              "backend": "cpu", "quantize": {"k": 8}}
    config.update(changes)
    return config


def assert_config_error(result, job: Path, *fragments: str) -> str:
    """Exit 2, one line, naming the file and each fragment (the field, the reason)."""
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line, line
    assert line.startswith(f"error: {job}:"), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("text, fragments", [
    ("job: quantize\ninput: {paths: [images]\noutput: {dir: out}\n",
     ["invalid YAML at line 3, column 1"]),
    ("job: quantize\n  input: x\n", ["invalid YAML at line 2, column 8"]),
    ("job: quantize\n\tinput: x\n", ["invalid YAML at line 2"]),
], ids=["unclosed flow", "bad indent", "tab"])
def test_invalid_yaml_shows_line_and_column(folder, command, text, fragments):
    job = write_job(folder, text)
    assert_config_error(runner.invoke(app, [command, str(job)]), job, *fragments)


@pytest.mark.parametrize("changes, fragments", [
    ({"colour": 3}, ["colour: unknown key"]),
    ({"quantize": {"k": 8, "kk": 3}}, ["quantize.kk: unknown key"]),
    ({"batch": {"sise": 3}}, ["batch.sise: unknown key"]),
    ({"quantize": {"k": "many"}}, ["quantize.k:", "'many'"]),
    ({"batch": {"size": [4]}}, ["batch.size:"]),
    ({"input": {"paths": 5}}, ["input.paths:"]),
    ({"output": {"dir": "out", "overwrite": "perhaps"}}, ["output.overwrite:", "'perhaps'"]),
    ({"backend": "gpu"}, ["backend:", "'gpu'"]),
    ({"quantize": {"k": 1000}}, ["quantize.k: must be 2..256"]),
    ({"quantize": {"k": 1}}, ["quantize.k: must be 2..256"]),
    ({"batch": {"size": 0}}, ["batch.size:", "0"]),
    ({"seed": -1}, ["seed:", "-1"]),
    ({"metrics": ["psnr", "beauty"]}, ["metrics.1:", "'beauty'"]),
    ({"job": "sharpen"}, ["job:", "'sharpen'"]),
], ids=lambda v: str(v)[:40])
def test_bad_fields_name_the_field(folder, changes, fragments):
    job = write_job(folder, good_config(**changes))
    assert_config_error(runner.invoke(app, ["validate", str(job)]), job, *fragments)
    assert_config_error(runner.invoke(app, ["run", str(job)]), job, *fragments)
    assert not (folder / "out").exists()  # nothing was started


def test_a_python_tag_is_refused_and_never_constructed(folder):
    marker = folder / "pwned"
    text = (f"job: !!python/object/apply:os.system ['touch {marker}']\n"
            "input: {paths: [images]}\noutput: {dir: out}\n")
    job = write_job(folder, text)
    assert_config_error(runner.invoke(app, ["run", str(job)]), job, "invalid YAML at line 1",
                        "python/object/apply:os.system")
    assert not marker.exists()


@pytest.mark.parametrize("assignment, fragments", [
    ("bogus", ["--set 'bogus': expected key.path=value"]),
    ("=3", ["expected key.path=value"]),
    ("quantize.nope=3", ["quantize.nope: unknown key"]),
    ("nosuch.section.k=3", ["nosuch: unknown key"]),
    ("input.paths.first=x", ["input.paths is not a section"]),
    ("quantize.k=[", ["--set quantize.k: invalid YAML at line 1"]),
    ("quantize.k=abc", ["quantize.k:", "'abc'"]),
    ("quantize.k=0", ["quantize.k: must be 2..256"]),
    ("batch.io_workers=-2", ["batch.io_workers:"]),
], ids=lambda v: str(v)[:30])
def test_bad_set_exits_2_naming_file_and_field(folder, assignment, fragments):
    job = write_job(folder, good_config())
    for command in ("run", "validate"):
        result = runner.invoke(app, [command, str(job), "--set", assignment])
        assert_config_error(result, job, *fragments)


@pytest.mark.parametrize("inputs, output", [
    (["images"], "images"),
    (["images"], "images/out"),
    (["images/*.png"], "images"),
    (["images/**/*.png"], "images/deep/out"),
    (["images/a.png"], "images"),
], ids=["equal", "inside", "glob base", "inside recursive glob", "file's own folder"])
def test_output_inside_the_inputs_is_refused(folder, inputs, output):
    job = write_job(folder, good_config(input={"paths": inputs, "recursive": True},
                                        output={"dir": output}))
    before = sorted(p.name for p in (folder / "images").iterdir())
    for command in ("validate", "run"):
        result = runner.invoke(app, [command, str(job)])
        assert_config_error(result, job, "output.dir:", "input.paths[0]",
                            "choose an output folder outside the inputs")
    assert sorted(p.name for p in (folder / "images").iterdir()) == before


@pytest.mark.parametrize("inputs, output", [
    (["images"], "images-out"),
    (["images/a.png"], "images/out"),
], ids=["sibling", "below a file input's folder"])
def test_output_beside_the_inputs_is_allowed(folder, inputs, output):
    job = write_job(folder, good_config(input={"paths": inputs}, output={"dir": output}))
    assert runner.invoke(app, ["run", str(job), "--quiet"]).exit_code == 0


def test_output_dir_that_is_a_file(folder):
    (folder / "out").write_text("a file")
    job = write_job(folder, good_config())
    assert_config_error(runner.invoke(app, ["run", str(job)]), job, "output.dir:",
                        "exists and is not a directory")


def test_output_dir_below_a_file(folder):
    (folder / "plain").write_text("a file")
    job = write_job(folder, good_config(output={"dir": "plain/out"}))
    assert_config_error(runner.invoke(app, ["run", str(job)]), job, "output.dir: cannot create")


def _unwritable_directory(tmp_path: Path) -> Path | None:
    """A directory this process cannot create files in: mode 0o500, or sysfs as root."""
    if os.geteuid() != 0:
        path = tmp_path / "readonly"
        path.mkdir()
        path.chmod(0o500)
        return path
    for candidate in ("/sys/kernel", "/sys", "/proc/self"):
        try:
            handle, name = tempfile.mkstemp(dir=candidate)
        except OSError:
            return Path(candidate)
        os.close(handle)
        os.unlink(name)
    return None


def test_read_only_output_dir_exits_2_before_any_image(folder):
    target = _unwritable_directory(folder)
    if target is None:
        pytest.skip("no directory here refuses writes to this user (root without sysfs)")
    job = write_job(folder, good_config(output={"dir": str(target)}))
    assert_config_error(runner.invoke(app, ["run", str(job)]), job, "output.dir: cannot write in")


def test_missing_config_file(tmp_path):
    job = tmp_path / "absent.yaml"
    assert_config_error(runner.invoke(app, ["run", str(job)]), job, "config file not found")


def test_config_that_is_not_a_mapping(folder):
    job = write_job(folder, "- just\n- a list\n")
    assert_config_error(runner.invoke(app, ["run", str(job)]), job, "expected a mapping")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to fill a disk")
def test_disk_full_while_writing_metrics_is_one_line_exit_1(folder, monkeypatch):
    import gpupix.pipeline

    job = write_job(folder, good_config())
    # every write of metrics.jsonl gets ENOSPC (a link to /dev/full itself is refused now)
    monkeypatch.setattr(gpupix.pipeline, "open_append",
                        lambda path, root: open("/dev/full", "a", encoding="utf-8"))
    result = runner.invoke(app, ["run", str(job), "--quiet"])
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert "\n" not in line, repr(line)
    assert "metrics.jsonl: cannot write (No space left on device)" in line
    assert not any(p.name.startswith(".gpupix-tmp-") for p in (folder / "out").iterdir())
