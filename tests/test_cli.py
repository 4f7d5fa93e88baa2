"""End to end through the typer app: every config in configs/, exit codes, resume."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from gpupix.cli import app
from tests.conftest import gradient_image
from tests.helpers import metrics_rows as rows

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def make_job(tmp_path: Path, images: int = 3, **quantize) -> Path:
    source = tmp_path / "images"
    source.mkdir(exist_ok=True)
    for i in range(images):
        Image.fromarray(gradient_image(24 + i, 32, seed=i)).save(source / f"img{i}.png")
    config = {"job": "quantize", "input": {"paths": ["images"]}, "output": {"dir": "out"},
              "backend": "cpu", "quantize": {"k": 8, **quantize},
              "metrics": ["psnr", "delta_e", "ssim"]}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def in_copy(path: str, base: Path, tmp_path: Path) -> str:
    """A path into examples/ (e.g. examples/digits) points into the copy; others at its root."""
    try:
        relative = (base / path).resolve().relative_to(ROOT / "examples")
    except ValueError:
        return str(tmp_path / "examples")
    return str(tmp_path / "examples" / relative)


@pytest.mark.parametrize("config", [  # the main job in test-fast, every config in make test
    pytest.param(path, marks=() if path.name == "quantize.yaml" else pytest.mark.slow)
    for path in sorted((ROOT / "configs").glob("*.yaml"))], ids=lambda p: p.name)
def test_every_shipped_config_runs(tmp_path, config):
    data = yaml.safe_load(config.read_text())
    # run on a copy of the examples so outputs land in tmp_path
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    data["input"]["paths"] = [in_copy(p, config.parent, tmp_path) for p in data["input"]["paths"]]
    data["output"]["dir"] = str(tmp_path / "out")
    section = data.get(data["job"]) or {}
    if section.get("reference"):  # clean originals to score against: the examples themselves
        section["reference"] = str(tmp_path / "examples")
    job = tmp_path / config.name
    job.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["run", str(job), "--backend", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    got = rows(tmp_path / "out")
    assert got and all(r["status"] == "ok" for r in got)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"]["ok"] == len(got)


def test_quantize_outputs_palette_pngs_with_metrics(tmp_path):
    result = runner.invoke(app, ["run", str(make_job(tmp_path)), "--quiet"])
    assert result.exit_code == 0, result.output
    for row in rows(tmp_path / "out"):
        assert row["status"] == "ok" and row["colors_out"] <= 8
        assert row["psnr"] > 15 and 0 < row["ssim"] <= 1 and row["delta_e"] > 0
        assert row["unique_colors_in"] > 8 and row["bytes_out"] > 0
        output = Image.open(row["output"])
        assert output.mode == "P" and output.size == (32, row["height"])


def test_progress_and_summary_are_printed(tmp_path):
    result = runner.invoke(app, ["run", str(make_job(tmp_path))])
    assert result.exit_code == 0
    assert "ok / skipped / failed" in result.output and "3 / 0 / 0" in result.output


def test_a_bad_image_fails_alone_with_exit_1(tmp_path):
    job = make_job(tmp_path)
    (tmp_path / "images" / "broken.png").write_bytes(b"not an image at all")
    result = runner.invoke(app, ["run", str(job), "--quiet"])
    assert result.exit_code == 1
    by_name = {Path(r["input"]).name: r for r in rows(tmp_path / "out")}
    assert by_name["broken.png"]["status"] == "failed"
    assert "broken.png" in by_name["broken.png"]["error"]
    assert sum(r["status"] == "ok" for r in by_name.values()) == 3
    assert "broken.png" in result.output


def test_rerun_resumes_and_overwrite_redoes(tmp_path):
    job = make_job(tmp_path)
    assert runner.invoke(app, ["run", str(job), "--quiet"]).exit_code == 0
    first = {r["input"]: r for r in rows(tmp_path / "out")}
    (tmp_path / "out" / "img1.png").unlink()
    assert runner.invoke(app, ["run", str(job), "--quiet"]).exit_code == 0
    second = {r["input"]: r for r in rows(tmp_path / "out")}
    statuses = sorted(r["status"] for r in second.values())
    assert statuses == ["ok", "skipped", "skipped"]
    redone = next(r for r in second.values() if r["status"] == "ok")
    assert redone["input"].endswith("img1.png")
    skipped = next(r for r in second.values() if r["status"] == "skipped")
    assert skipped["psnr"] == first[skipped["input"]]["psnr"]  # earlier metrics are kept
    result = runner.invoke(app, ["run", str(job), "--quiet", "--set", "output.overwrite=true"])
    assert result.exit_code == 0
    assert all(r["status"] == "ok" for r in rows(tmp_path / "out"))


def test_outputs_are_deterministic(tmp_path):
    job = make_job(tmp_path)
    runner.invoke(app, ["run", str(job), "--quiet"])
    first = (tmp_path / "out" / "img0.png").read_bytes()
    runner.invoke(app, ["run", str(job), "--quiet", "--set", "output.overwrite=true",
                        "--set", "batch.io_workers=1", "--set", "batch.size=1"])
    assert (tmp_path / "out" / "img0.png").read_bytes() == first


def test_transparency_is_kept(tmp_path):
    job = make_job(tmp_path, images=0)
    rgba = np.dstack([gradient_image(20, 20), np.full((20, 20), 255, np.uint8)])
    rgba[:5, :, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "images" / "alpha.png")
    assert runner.invoke(app, ["run", str(job), "--quiet"]).exit_code == 0
    out = np.asarray(Image.open(tmp_path / "out" / "alpha.png").convert("RGBA"))
    assert (out[:5, :, 3] == 0).all() and (out[5:, :, 3] == 255).all()
    assert rows(tmp_path / "out")[0]["colors_out"] <= 8


@pytest.mark.parametrize("args, message", [
    (["--set", "quantize.k=1000"], "quantize.k: must be 2..256"),
    (["--set", "bogus"], "expected key.path=value"),
    (["--backend", "gpu"], "backend"),
])
def test_invalid_command_lines_exit_2_with_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["run", str(make_job(tmp_path)), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_input_is_a_config_error(tmp_path):
    job = make_job(tmp_path)
    result = runner.invoke(app, ["run", str(job), "--set", "input.paths=[nowhere]"])
    assert result.exit_code == 2 and "input.paths[0]" in result.output


def test_output_dir_that_is_a_file_is_refused(tmp_path):
    job = make_job(tmp_path)
    (tmp_path / "out").write_text("a file")
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 2 and "output.dir" in result.output


def test_validate_and_info(tmp_path):
    job = make_job(tmp_path)
    assert runner.invoke(app, ["validate", str(job)]).exit_code == 0
    bad = runner.invoke(app, ["validate", str(job), "--set", "quantize.k=1"])
    assert bad.exit_code == 2 and "quantize.k" in bad.output
    info = runner.invoke(app, ["info"])
    assert info.exit_code == 0 and "backend cpu: usable" in info.output
    assert "backend cuda:" in info.output


@pytest.mark.parametrize(("section", "message"), [
    ({"job": "denoise", "denoise": {"method": "model", "model": "missing.npz"}},
     "denoise.model: "),
    ({"job": "quantize", "quantize": {"palette": "missing.json"}}, "quantize.palette: "),
    ({"job": "quantize", "quantize": {"palette": "bad.json"}}, "is not a usable palette"),
    ({"job": "inpaint", "inpaint": {"reference": "nowhere"}}, "inpaint.reference: "),
    ({"job": "fit_denoiser", "fit_denoiser": {"clean": "nowhere"}}, "fit_denoiser.clean: "),
    ({"job": "quantize", "input": {"paths": ["missing-folder"]}}, "input.paths[0]: "),
])
def test_validate_refuses_exactly_what_run_refuses(tmp_path, section, message):
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(gradient_image(8, 8)).save(images / "a.png")
    (tmp_path / "bad.json").write_text('{"colours": [[1, 2]]}')
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"input": {"paths": ["in"]}, "output": {"dir": "out"},
                                   **section}))
    checked = runner.invoke(app, ["validate", str(job)])
    ran = runner.invoke(app, ["run", str(job), "--quiet"])
    assert checked.exit_code == ran.exit_code == 2
    assert message in checked.output and message in ran.output
    assert checked.output.strip().splitlines()[-1] == ran.output.strip().splitlines()[-1]
    assert not (tmp_path / "out" / "metrics.jsonl").exists()
