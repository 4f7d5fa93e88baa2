"""The commands a shell user guesses: one per job (flags from its config section), the
version, a hint when `run` is given an image, colour values in --set, and suggestions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

import gpupix
from gpupix.cli import app
from gpupix.config import section_model
from gpupix.jobs import JOBS
from tests.conftest import gradient_image

runner = CliRunner()


def _images(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for seed in range(2):
        path = folder / f"g{seed}.png"
        Image.fromarray(gradient_image(24, 30, seed=seed)).save(path)
        paths.append(path)
    return paths


def test_every_job_has_a_command_with_a_flag_per_section_key():
    for job in JOBS:
        result = runner.invoke(app, [job.replace("_", "-"), "--help"], terminal_width=200)
        assert result.exit_code == 0, result.output
        for key in section_model(job).model_fields:
            assert f"--{key.replace('_', '-')}" in result.output, (job, key)


def test_quantize_command_writes_what_the_job_file_writes(tmp_path):
    images = _images(tmp_path / "in")
    result = runner.invoke(app, ["quantize", *map(str, images), "-o", str(tmp_path / "a"),
                                 "--k", "5", "--dither", "floyd_steinberg", "--quiet",
                                 "--set", "report=false"])
    assert result.exit_code == 0, result.output
    job = tmp_path / "job.yaml"
    job.write_text(f"job: quantize\ninput: {{paths: ['{tmp_path / 'in'}']}}\n"
                   f"output: {{dir: '{tmp_path / 'b'}'}}\nreport: false\n"
                   "quantize: {k: 5, dither: floyd_steinberg}\n")
    assert runner.invoke(app, ["run", str(job), "--quiet"]).exit_code == 0
    for image in images:
        assert (tmp_path / "a" / image.name).read_bytes() == \
            (tmp_path / "b" / image.name).read_bytes()


def test_command_errors_are_one_line_config_errors(tmp_path):
    images = _images(tmp_path / "in")
    result = runner.invoke(app, ["quantize", str(images[0]), "-o", str(tmp_path / "o"),
                                 "--k", "1000"])
    assert result.exit_code == 2
    assert "error: gpupix quantize: quantize.k: must be 2..256" in result.output
    result = runner.invoke(app, ["inpaint", str(images[0]), "-o", str(tmp_path / "o"),
                                 "--set", "inpaint.metod=knn"])
    assert result.exit_code == 2
    assert "inpaint.metod: unknown key; did you mean inpaint.method?" in result.output


def test_run_given_an_image_suggests_the_command(tmp_path):
    image = _images(tmp_path / "in")[0]
    result = runner.invoke(app, ["run", str(image)])
    assert result.exit_code == 2
    assert "is an image, not a job file" in result.output
    assert f"gpupix quantize {image} -o OUTPUT_DIR" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"gpupix {gpupix.__version__}"


def test_hash_colour_in_set_and_named_colours(tmp_path):
    rgb = gradient_image(20, 20)
    rgb[3:6, 3:6] = (0, 255, 0)
    (tmp_path / "in").mkdir()
    Image.fromarray(rgb).save(tmp_path / "in" / "x.png")
    for value in ("#00ff00", "lime"):
        out = tmp_path / f"out{value.strip('#')}"
        result = runner.invoke(app, ["inpaint", str(tmp_path / "in" / "x.png"), "-o", str(out),
                                     "--quiet", "--set", f"inpaint.key_color={value}",
                                     "--set", "inpaint.k=2", "--set", "report=false",
                                     "--set", "inpaint.key_tolerance=0"])
        assert result.exit_code == 0, result.output
        row = (out / "metrics.jsonl").read_text()
        assert '"missing_pixels": 9' in row and '"mask_source": "key_color"' in row
        filled = np.asarray(Image.open(out / "x.png"))
        assert not (filled[3:6, 3:6] == (0, 255, 0)).all(axis=2).any()


def test_validate_counts_the_images(tmp_path):
    _images(tmp_path / "in")
    job = tmp_path / "job.yaml"
    job.write_text(f"job: quantize\ninput: {{paths: ['{tmp_path / 'in'}']}}\n"
                   f"output: {{dir: '{tmp_path / 'o'}'}}\n")
    result = runner.invoke(app, ["validate", str(job)])
    assert result.exit_code == 0
    assert "valid quantize job; input.paths match 2 images" in result.output


def test_key_colour_marks_survive_jpeg(tmp_path):
    """Magenta scribbles saved as JPEG (quality 90) are still found by the default tolerance."""
    import io

    from PIL import ImageDraw

    rgb = gradient_image(96, 128, seed=3)
    picture = Image.fromarray(rgb)
    ImageDraw.Draw(picture).line([(5, 10), (120, 80), (20, 90)], fill=(255, 0, 255), width=9)
    truth = np.all(np.asarray(picture) == (255, 0, 255), axis=2)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    jpeg = np.asarray(Image.open(buffer))
    exact = gpupix.inpaint(jpeg, key_color="magenta", key_tolerance=0, k=2, backend="cpu")
    tolerant = gpupix.inpaint(jpeg, key_color="magenta", k=2, backend="cpu")
    assert exact.metrics["missing_pixels"] < 0.5 * truth.sum()
    assert tolerant.metrics["missing_pixels"] >= 0.9 * truth.sum()
    assert tolerant.metrics["missing_pixels"] <= 1.1 * truth.sum()


def test_output_formats(tmp_path):
    """webp (lossless) for palette images; jpeg at a quality for the photo jobs; jpeg
    refused where it would blur exact colours."""
    images = _images(tmp_path / "in")
    result = runner.invoke(app, ["quantize", str(images[0]), "-o", str(tmp_path / "q"),
                                 "--k", "6", "-q", "--set", "output.format=webp"])
    assert result.exit_code == 0, result.output
    webp = Image.open(tmp_path / "q" / "g0.webp")
    assert webp.format == "WEBP"
    png_run = runner.invoke(app, ["quantize", str(images[0]), "-o", str(tmp_path / "p"),
                                  "--k", "6", "-q"])
    assert png_run.exit_code == 0
    indexed = Image.open(tmp_path / "p" / "g0.png").convert("RGB")
    np.testing.assert_array_equal(np.asarray(webp.convert("RGB")), np.asarray(indexed))
    result = runner.invoke(app, ["denoise", str(images[0]), "-o", str(tmp_path / "d"), "-q",
                                 "--set", "output.format=jpeg", "--set", "output.quality=80"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "d" / "g0.jpg").format == "JPEG"
    result = runner.invoke(app, ["quantize", str(images[0]), "-o", str(tmp_path / "j"),
                                 "--set", "output.format=jpeg"])
    assert result.exit_code == 2 and "output.format: jpeg would blur" in result.output


def test_console_summary_says_what_matters_per_job(tmp_path):
    images = _images(tmp_path / "in")
    result = runner.invoke(app, ["denoise", *map(str, images), "-o", str(tmp_path / "d"),
                                 "--noise", "{sigma: 25}", "--set", "report=false"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "dB noisy ->" in result.output and "mean estimated sigma" in result.output
    result = runner.invoke(app, ["quantize", *map(str, images), "-o", str(tmp_path / "q"),
                                 "--k", "auto", "--target", "{psnr: 80}", "--max-k", "4",
                                 "--set", "report=false"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "2 of 2 images missed their target" in result.output
    result = runner.invoke(app, ["fit-denoiser", *map(str, images), "-o", str(tmp_path / "f"),
                                 "--kind", "patch", "--set", "report=false"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "model.npz" in result.output and "kind patch" in result.output
    assert "bytes in -> out" not in result.output  # a model is not a smaller copy of inputs
