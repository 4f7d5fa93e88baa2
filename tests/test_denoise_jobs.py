"""fit_denoiser and denoise through the CLI: training, loading, pairing, errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from gpupix.cli import app
from tests import helpers
from tests.conftest import gradient_image
from tests.helpers import metrics_rows as rows

runner = CliRunner()


def tiles(folder: Path, count: int = 60, size: int = 8, seed: int = 0) -> Path:
    """Little grey glyphs: a bar or a square at a random place, like digits."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        tile = np.zeros((size, size), np.uint8)
        y, x = rng.integers(0, size - 3, 2)
        if i % 2:
            tile[y:y + 3, x:x + 3] = 255
        else:
            tile[:, x] = 200
        Image.fromarray(tile).save(folder / f"t{i:03d}.png")
    return folder


def write_job(tmp_path: Path, name: str, **config) -> Path:
    return helpers.write_job(tmp_path, {"backend": "cpu", **config}, name=f"{name}.yaml")


def fit(tmp_path: Path, images: str = "train", **settings) -> Path:
    settings.setdefault("noise", {"kind": "gaussian", "sigma": 60})
    job = write_job(tmp_path, "fit", job="fit_denoiser", input={"paths": [images]},
                    output={"dir": "model_out"}, fit_denoiser=settings)
    result = runner.invoke(app, ["run", str(job), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp_path / "model_out"


def denoise(tmp_path: Path, images: str, model: str | None, **settings):
    settings.setdefault("noise", {"kind": "gaussian", "sigma": 60})
    if model:
        settings.update(method="model", model=model)
    job = write_job(tmp_path, "denoise", job="denoise", input={"paths": [images]},
                    output={"dir": "denoised"}, denoise=settings, metrics=["psnr", "rmse"])
    return runner.invoke(app, ["run", str(job), "--quiet"])


@pytest.mark.slow  # a fit, then a run
def test_fit_whole_then_load_and_denoise(tmp_path):
    tiles(tmp_path / "train", 200)
    tiles(tmp_path / "test", 10, seed=1)
    out = fit(tmp_path, kind="whole", holdout=0.25)
    summary = json.loads((out / "summary.json").read_text())
    model = summary["model"]
    assert model["fitted"] and model["kind"] == "whole" and model["channels"] == 1
    assert (model["height"], model["width"]) == (8, 8) and model["rows"] == 150 * 4
    got = rows(out)
    assert len(got) == 200 and all(r["status"] == "ok" for r in got)
    held = [r for r in got if r["role"] == "holdout"]
    assert len(held) == 50 and np.mean([r["psnr"] - r["psnr_noisy"] for r in held]) > 3
    result = denoise(tmp_path, "test", "model_out/model.npz")
    assert result.exit_code == 0, result.output
    scored = rows(tmp_path / "denoised")
    gains = [r["psnr"] - r["psnr_noisy"] for r in scored]
    assert np.mean(gains) > 3, gains
    image = Image.open(tmp_path / "denoised" / "t000.png")
    assert image.mode == "L" and image.size == (8, 8)
    assert (tmp_path / "denoised" / "t000.noisy.png").is_file()


def test_a_whole_model_refuses_another_size_clearly(tmp_path):
    tiles(tmp_path / "train", 20)
    tiles(tmp_path / "big", 2, size=16)
    fit(tmp_path, kind="whole", holdout=0)
    result = denoise(tmp_path, "big", "model_out/model.npz")
    assert result.exit_code == 1
    failed = rows(tmp_path / "denoised")
    assert all(r["status"] == "failed" for r in failed)
    assert "image is 16x16 but model" in failed[0]["error"]
    assert "trained on 8x8 images" in failed[0]["error"] and "t000.png" in failed[0]["error"]


def test_whole_kind_fails_odd_sized_training_images_alone(tmp_path):
    tiles(tmp_path / "train", 12)
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "train" / "zz_odd.png")
    job = write_job(tmp_path, "fit", job="fit_denoiser", input={"paths": ["train"]},
                    output={"dir": "model_out"}, fit_denoiser={"holdout": 0})
    result = runner.invoke(app, ["run", str(job), "--quiet"])
    assert result.exit_code == 1
    by_name = {Path(r["input"]).name: r for r in rows(tmp_path / "model_out")}
    assert by_name["zz_odd.png"]["status"] == "failed"
    assert "kind: whole needs one size" in by_name["zz_odd.png"]["error"]
    assert (tmp_path / "model_out" / "model.npz").is_file()


def test_paired_folders_and_a_patch_model_on_other_sizes(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    for i in range(3):
        clean = gradient_image(40 + 4 * i, 36, seed=i)
        noisy = np.clip(clean + rng.normal(0, 30, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(clean).save(tmp_path / "clean" / f"p{i}.png")
        Image.fromarray(noisy).save(tmp_path / "noisy" / f"p{i}.png")
    out = fit(tmp_path, "noisy", kind="patch", clean="clean", patch=5, samples=3000,
              components=24, holdout=0)
    model = json.loads((out / "summary.json").read_text())["model"]
    assert model["paired"] and model["noise"] is None and model["patch"] == 5
    Image.fromarray(gradient_image(30, 50, seed=7)).save(tmp_path / "photo.png")
    result = denoise(tmp_path, "photo.png", "model_out/model.npz",
                     noise={"kind": "gaussian", "sigma": 30})
    assert result.exit_code == 0, result.output
    row = rows(tmp_path / "denoised")[0]
    assert row["width"] == 50 and row["psnr"] > row["psnr_noisy"] + 2


def test_missing_clean_partner_fails_that_image(tmp_path):
    tiles(tmp_path / "noisy", 6)
    tiles(tmp_path / "clean", 5)
    job = write_job(tmp_path, "fit", job="fit_denoiser", input={"paths": ["noisy"]},
                    output={"dir": "model_out"}, fit_denoiser={"clean": "clean", "holdout": 0})
    result = runner.invoke(app, ["run", str(job), "--quiet"])
    assert result.exit_code == 1
    failed = [r for r in rows(tmp_path / "model_out") if r["status"] == "failed"]
    assert len(failed) == 1 and "no clean image" in failed[0]["error"]


def test_refit_is_skipped_unless_overwrite(tmp_path):
    tiles(tmp_path / "train", 10)
    out = fit(tmp_path, holdout=0)
    before = (out / "model.npz").stat().st_mtime_ns
    result = runner.invoke(app, ["run", str(tmp_path / "fit.yaml"), "--quiet"])
    assert result.exit_code == 0
    assert all(r["status"] == "skipped" for r in rows(out))
    assert (out / "model.npz").stat().st_mtime_ns == before


def test_self_mode_on_a_noisy_image_without_reference(tmp_path):
    Image.fromarray(gradient_image(40, 40)).save(tmp_path / "g.png")
    job = write_job(tmp_path, "d", job="denoise", input={"paths": ["g.png"]},
                    output={"dir": "out"}, denoise={"method": "self"})
    result = runner.invoke(app, ["run", str(job), "--quiet"])
    assert result.exit_code == 0, result.output
    row = rows(tmp_path / "out")[0]
    assert "psnr" not in row and abs(row["sigma"] - 4) < 1.5  # the gradient has sigma-4 noise
    assert Image.open(tmp_path / "out" / "g.png").size == (40, 40)


@pytest.mark.parametrize("settings, message", [
    ({"method": "model"}, "denoise: method 'model' needs denoise.model"),
    ({"method": "model", "model": "nowhere.npz"}, "denoise.model: "),
    ({"patch": 4}, "denoise.patch: must be odd"),
    ({"noise": {"kind": "uniform", "low": 9, "high": 3}}, "must be below noise.high"),
])
def test_bad_denoise_settings_exit_2(tmp_path, settings, message):
    Image.fromarray(gradient_image(10, 10)).save(tmp_path / "g.png")
    job = write_job(tmp_path, "d", job="denoise", input={"paths": ["g.png"]},
                    output={"dir": "out"}, denoise=settings)
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_a_file_that_is_no_model_is_a_config_error(tmp_path):
    Image.fromarray(gradient_image(10, 10)).save(tmp_path / "g.png")
    (tmp_path / "m.npz").write_bytes(b"nope")
    result = denoise(tmp_path, "g.png", "m.npz")
    assert result.exit_code == 2 and "not a readable .npz model" in result.output


def test_nothing_to_train_on_is_one_line(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "bad.png").write_bytes(b"no image")
    job = write_job(tmp_path, "fit", job="fit_denoiser", input={"paths": ["train"]},
                    output={"dir": "model_out"})
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 2
    assert "no usable training image" in result.output and "bad.png" in result.output


@pytest.mark.parametrize("seed", [0, 4])  # 4 holds out every colour image, 0 trains on one
def test_a_colour_image_held_out_from_grey_training_fails_alone(tmp_path, seed):
    tiles(tmp_path / "train", 12)
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200
    for name in ("a_colour.png", "b_colour.png", "c_colour.png"):
        Image.fromarray(colour).save(tmp_path / "train" / name)
    job = write_job(tmp_path, "fit", job="fit_denoiser", input={"paths": ["train"]},
                    output={"dir": "model_out"}, fit_denoiser={"holdout": 0.5}, seed=seed)
    result = runner.invoke(app, ["run", str(job), "--quiet"])
    got = rows(tmp_path / "model_out")
    assert len(got) == 15 and (tmp_path / "model_out" / "model.npz").is_file()
    channels = json.loads((tmp_path / "model_out" / "summary.json").read_text())["model"][
        "channels"]
    held_colour = [r for r in got
                   if r.get("role") == "holdout" and "colour" in Path(r["input"]).name]
    failed = [r for r in got if r["status"] == "failed"]
    assert channels == (1 if seed == 4 else 3)
    if channels == 1:  # every colour image was held out: each fails, alone
        assert len(held_colour) == 3 and failed == held_colour
        assert all("has colour but the training images are grey" in r["error"] for r in failed)
    else:  # a colour image was trained on: grey ones are expanded, nothing fails
        assert not failed
    assert result.exit_code == (1 if failed else 0)


def test_global_search_through_the_job(tmp_path):
    Image.fromarray(gradient_image(36, 44)).save(tmp_path / "g.png")
    result = denoise(tmp_path, "g.png", None, method="self", search="global", tile=20,
                     noise={"kind": "gaussian", "sigma": 25})
    assert result.exit_code == 0, result.output
    row = rows(tmp_path / "denoised")[0]
    assert row["psnr"] > row["psnr_noisy"] + 3


def test_global_stride_must_not_leave_gaps(tmp_path):
    Image.fromarray(gradient_image(10, 10)).save(tmp_path / "g.png")
    job = write_job(tmp_path, "d", job="denoise", input={"paths": ["g.png"]},
                    output={"dir": "out"},
                    denoise={"search": "global", "patch": 3, "stride": 4})
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 2 and "denoise.stride (4) must be at most" in result.output


def test_difference_image_is_the_absolute_error(tmp_path):
    clean = gradient_image(20, 24)
    Image.fromarray(clean).save(tmp_path / "g.png")
    result = denoise(tmp_path, "g.png", None, difference=True)
    assert result.exit_code == 0, result.output
    denoised = np.asarray(Image.open(tmp_path / "denoised" / "g.png")).astype(int)
    difference = np.asarray(Image.open(tmp_path / "denoised" / "g.diff.png"))
    np.testing.assert_array_equal(difference, np.abs(denoised - clean))
    assert difference.max() > 0
    row = rows(tmp_path / "denoised")[0]
    assert len(row["outputs"]) == 3
    rmse = np.sqrt(np.mean(difference.astype(float) ** 2))
    assert abs(row["rmse"] - rmse) < 1e-3


def test_difference_needs_noise(tmp_path):
    Image.fromarray(gradient_image(10, 10)).save(tmp_path / "g.png")
    job = write_job(tmp_path, "d", job="denoise", input={"paths": ["g.png"]},
                    output={"dir": "out"}, denoise={"difference": True})
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 2 and "denoise.difference needs denoise.noise" in result.output


def test_whole_kind_refuses_large_images_with_advice(tmp_path):
    (tmp_path / "train").mkdir()
    for i in range(2):
        Image.fromarray(gradient_image(40, 40, seed=i)).save(tmp_path / "train" / f"b{i}.png")
    job = write_job(tmp_path, "fit", job="fit_denoiser", input={"paths": ["train"]},
                    output={"dir": "model_out"})
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 2
    assert "4800 values, more than the 4096" in result.output and "kind: patch" in result.output
