"""The corrupt and inpaint jobs end to end: mask sources, failures, metrics, determinism."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gpupix.backends import CpuBackend
from gpupix.config import validate_config
from gpupix.errors import ConfigError
from gpupix.pipeline import run_job
from tests.conftest import gradient_image


def run(tmp_path: Path, job: str, section: dict, inputs: str = "images", out: str = "out",
        **extra) -> dict[str, dict]:
    data = {"job": job, "input": {"paths": [inputs]}, "output": {"dir": out},
            "backend": "cpu", job: section, **extra}
    config = validate_config(data, base_dir=tmp_path)
    result = run_job(config, CpuBackend())
    return {Path(r["input"]).name: r for r in result.rows}


def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture
def clean(tmp_path):
    image = gradient_image(40, 50, seed=3)
    save(tmp_path / "clean" / "g.png", image)
    return image


def test_corrupt_writes_damage_and_mask_reproducibly(tmp_path, clean):
    rows = run(tmp_path, "corrupt", {"drop": 0.3, "holes": {"count": 1, "size": 8}},
               inputs="clean")
    row = rows["g.png"]
    assert row["status"] == "ok" and 0.3 < row["missing_fraction"] < 0.45
    damaged, mask = load(tmp_path / "out" / "g.png"), load(tmp_path / "out" / "g.mask.png")
    missing = mask == 255
    assert set(np.unique(mask)) == {0, 255} and missing.sum() == row["missing_pixels"]
    assert (damaged[missing] == [255, 0, 255]).all()
    np.testing.assert_array_equal(damaged[~missing], clean[~missing])
    again = run(tmp_path, "corrupt", {"drop": 0.3, "holes": {"count": 1, "size": 8}},
                inputs="clean", out="again")
    assert again["g.png"]["missing_pixels"] == row["missing_pixels"]
    first, second = tmp_path / "out" / "g.png", tmp_path / "again" / "g.png"
    assert first.read_bytes() == second.read_bytes()
    run(tmp_path, "corrupt", {"drop": 0.3}, inputs="clean", out="other", seed=1)
    assert (load(tmp_path / "other" / "g.mask.png") != mask).any()


def test_corrupt_then_inpaint_scores_against_the_reference(tmp_path, clean):
    run(tmp_path, "corrupt", {"drop": 0.3}, inputs="clean", out="damaged")
    rows = run(tmp_path, "inpaint", {"method": "knn_linear", "reference": "clean"},
               inputs="damaged", metrics=["psnr", "ssim"])
    assert list(rows) == ["g.png"]  # the mask beside it is not an input
    row = rows["g.png"]
    assert row["status"] == "ok" and row["mask_source"] == "file"
    assert 1 <= row["k"] <= 20 and len(row["k_curve"]) == 20
    assert row["k_curve"][row["k"] - 1] == min(row["k_curve"])
    assert row["psnr_missing"] > 25 and row["psnr"] > row["psnr_missing"]
    assert 0.8 < row["ssim"] <= 1
    repaired = load(tmp_path / "out" / "g.png")
    missing = load(tmp_path / "damaged" / "g.mask.png") == 255
    np.testing.assert_array_equal(repaired[~missing], clean[~missing])
    assert not (repaired[missing] == [255, 0, 255]).all(axis=1).any()


def damaged_copy(image, missing, colour=(255, 0, 255)):
    damaged = image.copy()
    damaged[missing] = colour
    return damaged


@pytest.fixture
def holes():
    missing = np.zeros((40, 50), bool)
    missing[10:18, 20:30] = True
    missing[30, 5] = True
    return missing


def test_mask_from_key_colour(tmp_path, clean, holes):
    save(tmp_path / "images" / "k.png", damaged_copy(clean, holes, (0, 255, 0)))
    row = run(tmp_path, "inpaint", {"mask": "auto", "key_color": "#00ff00", "k": 6})["k.png"]
    assert row["mask_source"] == "key_color" and row["missing_pixels"] == holes.sum()
    out = load(tmp_path / "out" / "k.png")
    assert np.abs(out.astype(int) - clean)[holes].mean() < 20


def test_mask_from_alpha(tmp_path, clean, holes):
    rgba = np.dstack([clean, np.where(holes, 0, 255).astype(np.uint8)])
    save(tmp_path / "images" / "a.png", rgba)
    for mode in ("alpha", "auto"):
        row = run(tmp_path, "inpaint", {"mask": mode, "k": 6}, out=f"out-{mode}")["a.png"]
        assert row["mask_source"] == "alpha" and row["missing_pixels"] == holes.sum()
        out = load(tmp_path / f"out-{mode}" / "a.png")
        assert out.shape == (40, 50, 4) and (out[..., 3] == 255).all()  # filled = opaque


def test_mask_from_file_wins_in_auto(tmp_path, clean, holes):
    # the image also has magenta pixels that are NOT in the mask file: the file decides
    decoy = holes.copy()
    decoy[0, 0] = True
    save(tmp_path / "images" / "f.png", damaged_copy(clean, decoy))
    save(tmp_path / "images" / "f.mask.png", np.where(holes, 255, 0).astype(np.uint8))
    for mode in ("file", "auto"):
        rows = run(tmp_path, "inpaint", {"mask": mode, "k": 4}, out=f"out-{mode}")
        assert list(rows) == ["f.png"]
        assert rows["f.png"]["mask_source"] == "file"
        assert rows["f.png"]["missing_pixels"] == holes.sum()
        out = load(tmp_path / f"out-{mode}" / "f.png")
        assert (out[0, 0] == [255, 0, 255]).all()  # not in the mask: left as it is


def test_mismatched_mask_fails_that_image_only(tmp_path, clean, holes):
    save(tmp_path / "images" / "bad.png", damaged_copy(clean, holes))
    save(tmp_path / "images" / "bad.mask.png", np.zeros((10, 10), np.uint8))
    save(tmp_path / "images" / "good.png", damaged_copy(clean, holes))
    rows = run(tmp_path, "inpaint", {"k": 4})
    assert rows["good.png"]["status"] == "ok"
    bad = rows["bad.png"]
    assert bad["status"] == "failed"
    assert "bad.mask.png" in bad["error"] and "10x10" in bad["error"]
    assert "50x40" in bad["error"] and "same size" in bad["error"]


@pytest.mark.parametrize("section, message", [
    ({"mask": "file"}, "is not beside it"),
    ({"mask": "alpha"}, "has no alpha channel"),
])
def test_unavailable_mask_source_fails_clearly(tmp_path, clean, holes, section, message):
    save(tmp_path / "images" / "x.png", damaged_copy(clean, holes))
    row = run(tmp_path, "inpaint", section)["x.png"]
    assert row["status"] == "failed" and message in row["error"] and "x.png" in row["error"]


def test_image_without_missing_pixels_passes_through(tmp_path, clean):
    save(tmp_path / "images" / "c.png", clean)
    # the synthetic gradient reaches (255, 0, 228), near magenta: exact key matching here
    row = run(tmp_path, "inpaint", {"reference": "clean", "key_tolerance": 0},
              metrics=["psnr"])["c.png"]
    assert row["status"] == "ok" and row["missing_pixels"] == 0
    assert "copied unchanged" in row["notes"]
    np.testing.assert_array_equal(load(tmp_path / "out" / "c.png"), clean)


def test_every_pixel_missing_fails(tmp_path):
    save(tmp_path / "images" / "m.png", np.full((8, 8, 3), [255, 0, 255], np.uint8))
    row = run(tmp_path, "inpaint", {})["m.png"]
    assert row["status"] == "failed" and "every pixel is missing" in row["error"]


@pytest.mark.parametrize("settings", [{"method": "knn", "k": 8}, {"method": "smooth"}])
def test_transparent_pixels_are_never_neighbours(tmp_path, holes, settings):
    image = np.zeros((40, 50, 3), np.uint8)
    image[:, :25] = [200, 50, 50]  # left half: red and opaque; right half: black, transparent
    alpha = np.full((40, 50), 255, np.uint8)
    alpha[:, 25:] = 0
    image[holes] = [255, 0, 255]
    save(tmp_path / "images" / "t.png", np.dstack([image, alpha]))
    row = run(tmp_path, "inpaint", {"mask": "key_color", **settings})["t.png"]
    assert row["status"] == "ok" and row["mask_source"] == "key_color"
    out = load(tmp_path / "out" / "t.png")
    assert (out[holes, :3] == [200, 50, 50]).all()  # only red pixels could be neighbours
    assert (out[holes, 3] == 255).all() and (out[~holes, 3] == alpha[~holes]).all()


def test_metrics_jsonl_holds_the_k_curve(tmp_path, clean, holes):
    save(tmp_path / "images" / "k.png", damaged_copy(clean, holes))
    run(tmp_path, "inpaint", {"k": "auto", "method": "knn"})
    row = json.loads((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()[0])
    assert len(row["k_curve"]) == 20 and row["k_held_out"] > 0


@pytest.mark.parametrize("section, message", [
    ({"k": 0}, "inpaint.k: must be 1..64 or auto"),
    ({"k": 65}, "inpaint.k: must be 1..64 or auto"),
    ({"k": 7}, "inpaint: with method smooth, k numbers its energies 1..6"),
    ({"k": "many"}, "inpaint.k"),
    ({"key_color": "pinkish"}, "inpaint.key_color: must be a colour"),
    ({"method": "magic"}, "inpaint.method"),
    ({"reference": "nowhere"}, "inpaint.reference"),
])
def test_inpaint_config_errors(tmp_path, section, message):
    (tmp_path / "images").mkdir()
    data = {"job": "inpaint", "input": {"paths": ["images"]}, "output": {"dir": "out"},
            "inpaint": section}
    with pytest.raises(ConfigError, match=message):
        validate_config(data, source="job.yaml", base_dir=tmp_path)


@pytest.mark.parametrize("section, message", [
    ({"drop": 1.0}, "corrupt.drop"),
    ({"noise": "pink"}, "corrupt.noise"),
    ({"low": 5, "high": 5}, "low < high"),
    ({"holes": {"count": 1, "size": 0}}, "corrupt.holes.size"),
])
def test_corrupt_config_errors(tmp_path, section, message):
    data = {"job": "corrupt", "input": {"paths": ["images"]}, "output": {"dir": "out"},
            "corrupt": section}
    with pytest.raises(ConfigError, match=message):
        validate_config(data, source="job.yaml")
