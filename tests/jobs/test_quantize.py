"""The quantize job's user-facing options, end to end through the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from gpupix.cli import app
from gpupix.config import validate_config
from gpupix.errors import ConfigError
from gpupix.jobs.base import Processed
from gpupix.jobs.quantize import QuantizeJob, size_accounting
from gpupix.palette_io import load_palette, palette_json
from tests.conftest import few_colour_image, gradient_image
from tests.helpers import rows_by_name as rows

runner = CliRunner()


def job_file(tmp_path: Path, images: dict[str, np.ndarray], *, out: str = "out",
             folder: str = "images", **quantize) -> Path:
    source = tmp_path / folder
    source.mkdir(exist_ok=True)
    for name, pixels in images.items():
        Image.fromarray(pixels).save(source / name)
    config = {"job": "quantize", "input": {"paths": [folder]}, "output": {"dir": out},
              "backend": "cpu", "quantize": quantize, "metrics": ["psnr"]}
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(path: Path, *args: str):
    return runner.invoke(app, ["run", str(path), "--quiet", *args])


def test_bit_accounting_matches_seed_004():
    sizes = size_accounting(128, 128, 16, alpha_in=False, alpha_out=False)
    assert sizes["bits_palette"] + sizes["bits_indices"] == 16 * 24 + 128 * 128 * 4 == 65_920
    assert sizes["bits_raw"] == 393_216
    assert sizes["theoretical_ratio"] == pytest.approx(393_216 / 65_920, abs=1e-4)
    with_alpha = size_accounting(10, 10, 5, alpha_in=True, alpha_out=True)
    assert with_alpha == {"bits_palette": 5 * 32, "bits_per_index": 3, "bits_indices": 300,
                          "bits_raw": 3200, "theoretical_ratio": round(3200 / 460, 4)}


def test_rows_carry_the_size_accounting(tmp_path):
    image, _ = few_colour_image(16, 128, 128, seed=4)
    path = job_file(tmp_path, {"a.png": image}, k=16)
    assert run(path).exit_code == 0
    row = rows(tmp_path / "out")["a.png"]
    assert row["colors_out"] == 16
    assert row["bits_palette"] + row["bits_indices"] == 65_920 and row["bits_raw"] == 393_216
    assert row["actual_ratio"] == pytest.approx(row["bytes_in"] / row["bytes_out"], abs=1e-3)


def test_auto_k_finds_the_number_of_colours(tmp_path):
    image, _ = few_colour_image(9, 48, 48, seed=5)
    path = job_file(tmp_path, {"a.png": image}, k="auto", target={"psnr": 50}, max_k=64)
    assert run(path).exit_code == 0
    row = rows(tmp_path / "out")["a.png"]
    assert row["colors_out"] == 9 and row["k_chosen"] == 9 and row["target_met"] is True
    assert dict(row["search"])[8] < 50  # k - 1 was tried as a fixed-k run and missed
    out = np.asarray(Image.open(tmp_path / "out" / "a.png").convert("RGB"))
    np.testing.assert_array_equal(out, image)


def test_unreachable_target_says_so_in_the_row(tmp_path):
    path = job_file(tmp_path, {"g.png": gradient_image(32, 32)}, k="auto",
                    target={"psnr": 60}, max_k=8)
    assert run(path).exit_code == 0
    row = rows(tmp_path / "out")["g.png"]
    assert row["target_met"] is False and row["colors_out"] == 8
    assert "not reached with max_k 8" in row["notes"]


def test_min_quality_missed_exits_99_and_writes_nothing(tmp_path):
    images = {"g.png": gradient_image(32, 32), "few.png": few_colour_image(3, 20, 20)[0]}
    path = job_file(tmp_path, images, k=4, min_quality={"psnr": 40})
    result = run(path)
    assert result.exit_code == 99
    got = rows(tmp_path / "out")
    assert got["g.png"]["status"] == "failed" and got["g.png"]["quality_failed"] is True
    assert got["g.png"]["quality"] < 40 and "min_quality psnr >= 40" in got["g.png"]["error"]
    assert not (tmp_path / "out" / "g.png").exists()
    assert got["few.png"]["status"] == "ok" and (tmp_path / "out" / "few.png").exists()
    assert "g.png" in result.output


def test_shared_palette_is_saved_and_reused_on_new_images(tmp_path):
    frames = {f"f{i}.png": gradient_image(24, 32, seed=i) for i in range(3)}
    path = job_file(tmp_path, frames, k=8, palette="shared")
    assert run(path).exit_code == 0
    out = tmp_path / "out"
    colours, alpha = load_palette(out / "palette.json")
    assert len(colours) == 8 and alpha is None
    png_colours, _ = load_palette(out / "palette.png")
    np.testing.assert_array_equal(png_colours, colours)
    for name in frames:
        written = Image.open(out / name)
        palette = np.asarray(written.getpalette(), np.uint8).reshape(-1, 3)[:8]
        np.testing.assert_array_equal(palette, colours)
    # new images, the same colours
    fresh = {"new.png": gradient_image(20, 20, seed=9)}
    again = job_file(tmp_path, fresh, out="out2", folder="more", k=8,
                     palette=str(out / "palette.json"))
    assert run(again).exit_code == 0
    used = np.asarray(Image.open(tmp_path / "out2" / "new.png").convert("RGB")).reshape(-1, 3)
    assert {tuple(c) for c in used} <= {tuple(c) for c in colours}


def test_shared_palette_with_transparency_reserves_one_entry(tmp_path):
    rgba = np.dstack([gradient_image(20, 20), np.full((20, 20), 255, np.uint8)])
    rgba[:4, :, 3] = 0
    path = job_file(tmp_path, {"a.png": rgba, "b.png": gradient_image(20, 20, seed=3)}, k=6,
                    palette="shared")
    assert run(path).exit_code == 0
    colours, alpha = load_palette(tmp_path / "out" / "palette.json")
    assert len(colours) == 6 and alpha is not None and list(alpha).count(0) == 1
    out = np.asarray(Image.open(tmp_path / "out" / "a.png").convert("RGBA"))
    assert (out[:4, :, 3] == 0).all() and (out[4:, :, 3] == 255).all()


def test_a_missing_palette_file_is_a_config_error(tmp_path):
    path = job_file(tmp_path, {"a.png": gradient_image(8, 8)}, palette="nowhere/palette.json")
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "quantize.palette" in result.output


@pytest.mark.slow  # k: auto
def test_binary_alpha_round_trip_with_auto_k(tmp_path):
    rgba = np.dstack([few_colour_image(6, 24, 24)[0], np.full((24, 24), 255, np.uint8)])
    rgba[:, :5, 3] = 0
    path = job_file(tmp_path, {"a.png": rgba}, k="auto", target={"psnr": 50}, max_k=32)
    assert run(path).exit_code == 0
    out = np.asarray(Image.open(tmp_path / "out" / "a.png").convert("RGBA"))
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    visible = rgba[..., 3] > 0
    np.testing.assert_array_equal(out[visible][:, :3], rgba[visible][:, :3])
    row = rows(tmp_path / "out")["a.png"]
    assert row["bits_palette"] == row["colors_out"] * 32 and row["bits_raw"] == 24 * 24 * 32


def test_partial_alpha_is_kept(tmp_path):
    rgba = np.zeros((24, 48, 4), np.uint8)
    rgba[..., :3] = few_colour_image(3, 24, 48)[0]
    rgba[..., 3] = np.linspace(0, 255, 48).astype(np.uint8)[None, :]  # column 0: transparent
    path = job_file(tmp_path, {"a.png": rgba}, k=32)
    assert run(path).exit_code == 0
    out = np.asarray(Image.open(tmp_path / "out" / "a.png").convert("RGBA")).astype(int)
    assert (out[:, 0, 3] == 0).all()  # transparent stays transparent
    assert np.abs(out[..., 3] - rgba[..., 3]).mean() < 8  # partial alpha kept, not flattened
    assert len(np.unique(out[..., 3])) > 8
    row = rows(tmp_path / "out")["a.png"]
    assert row["alpha_rmse"] < 12 and "premultiplied" in row["notes"]


def test_dither_spreads_the_error(tmp_path):
    # onto a black-and-white palette: grey 100 becomes about 39% white dots
    (tmp_path / "bw.json").write_bytes(palette_json(np.array([[0, 0, 0], [255] * 3]), None))
    grey = np.full((32, 32, 3), 100, np.uint8)
    outputs = {}
    for dither in ("floyd_steinberg", "none"):
        path = job_file(tmp_path, {"g.png": grey}, out=dither, dither=dither,
                        palette=str(tmp_path / "bw.json"))
        assert run(path).exit_code == 0
        outputs[dither] = np.asarray(Image.open(tmp_path / dither / "g.png").convert("L")) / 255
    assert outputs["floyd_steinberg"].mean() == pytest.approx(100 / 255, abs=0.02)
    assert outputs["none"].std() == 0  # every pixel the same nearest entry


def test_skip_if_larger_keeps_a_png_input(tmp_path):
    image = gradient_image(16, 16)
    source = tmp_path / "tiny.png"
    Image.fromarray(image).save(source)
    config = validate_config({"job": "quantize", "input": {"paths": ["x"]},
                              "output": {"dir": str(tmp_path)},
                              "quantize": {"skip_if_larger": True}})
    job = QuantizeJob(config)
    payload = {"indices": np.zeros((16, 16), np.uint8), "palette": image[0, :2], "alpha": None,
               "bytes_in": 10, "path": source}  # pretend the input was 10 bytes
    processed = Processed(payload=payload, metrics={})
    encoded = job.encode(processed)
    assert encoded.files == [source.read_bytes()] and encoded.metrics["kept_input"] is True
    assert processed.metrics == {}  # encode returns its metrics; it changes nothing
    payload["bytes_in"] = 10**6
    kept = job.encode(Processed(payload=payload, metrics={}))
    assert kept.files[0] != source.read_bytes() and "kept_input" not in kept.metrics


def test_sweep_row_field(tmp_path):
    path = job_file(tmp_path, {"g.png": gradient_image(24, 24)}, k=8, sweep=True, max_k=16)
    assert run(path).exit_code == 0
    sweep = rows(tmp_path / "out")["g.png"]["sweep"]
    assert sweep["k"] == [2, 4, 8, 16] and len(sweep["inertia"]) == len(sweep["psnr"]) == 4


@pytest.mark.parametrize("quantize, message", [
    ({"k": "auto"}, "k: auto needs a target"),
    ({"target": {"psnr": 30}}, "target is used only with k: auto"),
    ({"k": "auto", "target": {"psnr": 30, "delta_e": 2}}, "exactly one of psnr or delta_e"),
    ({"palette": "somewhere"}, "quantize.palette: must be per_image, shared"),
    ({"dither": {"floyd_steinberg": 2}}, "quantize.dither_strength"),
    ({"max_k": 300}, "quantize.max_k: must be 2..256"),
    ({"k": "auto", "target": {"psnr": 30}, "palette": "p.json"}, "is a fixed palette"),
])
def test_config_errors(quantize, message):
    data = {"job": "quantize", "input": {"paths": ["x"]}, "output": {"dir": "o"},
            "quantize": quantize}
    with pytest.raises(ConfigError, match=message):
        validate_config(data)


def test_dither_strength_mapping():
    data = {"job": "quantize", "input": {"paths": ["x"]}, "output": {"dir": "o"},
            "quantize": {"dither": {"floyd_steinberg": 0.5}}}
    settings = validate_config(data).quantize
    assert settings.dither == "floyd_steinberg" and settings.dither_strength == 0.5


@pytest.mark.slow
def test_shared_palette_on_dask_matches_the_local_executor(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    frames = {f"f{i}.png": gradient_image(20, 24, seed=i) for i in range(4)}
    local = job_file(tmp_path, frames, out="local", k=6, palette="shared")
    assert run(local).exit_code == 0
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        remote = job_file(tmp_path, frames, out="dask", k=6, palette="shared")
        result = run(remote, "--set", "executor.kind=dask",
                     "--set", f"executor.address={cluster.scheduler_address}")
    assert result.exit_code == 0, result.output
    for name in [*frames, "palette.json"]:  # the workers mapped onto the client's palette
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_shared_palette_with_auto_k_reaches_the_target_over_all_frames(tmp_path):
    frames = {f"f{i}.png": few_colour_image(7, 20, 20, seed=i % 2)[0] for i in range(4)}
    path = job_file(tmp_path, frames, k="auto", target={"psnr": 50}, max_k=64,
                    palette="shared")
    assert run(path).exit_code == 0
    document = json.loads((tmp_path / "out" / "palette.json").read_text())
    # two distinct 7-colour frames: the fewest colours that keep every frame exact
    distinct = {tuple(c) for image in frames.values() for c in image.reshape(-1, 3)}
    assert document["target_met"] is True and len(document["colours"]) == len(distinct)
    for name, image in frames.items():
        out = np.asarray(Image.open(tmp_path / "out" / name).convert("RGB"))
        np.testing.assert_array_equal(out, image)


def test_partial_alpha_auto_k_finds_the_number_of_rgba_colours(tmp_path):
    entries = np.array([[200, 20, 20, 255], [20, 200, 20, 160], [20, 20, 200, 128],
                        [250, 250, 0, 200], [90, 90, 90, 60], [0, 0, 0, 0]], np.uint8)
    labels = np.random.default_rng(2).integers(0, len(entries), (24, 24))
    labels.ravel()[:len(entries)] = np.arange(len(entries))
    image = entries[labels]
    path = job_file(tmp_path, {"a.png": image}, k="auto", target={"psnr": 45}, max_k=32)
    assert run(path).exit_code == 0
    row = rows(tmp_path / "out")["a.png"]
    # five visible RGBA colours, plus the reserved transparent entry
    assert row["k_chosen"] == 5 and row["colors_out"] == 6 and row["target_met"] is True
    assert dict(row["search"])[4] < 45
    out = np.asarray(Image.open(tmp_path / "out" / "a.png").convert("RGBA")).astype(int)
    assert np.abs(out - image)[image[..., 3] > 0].max() <= 1
    assert (out[image[..., 3] == 0][:, 3] == 0).all()


def test_semi_transparent_metrics_target_and_min_quality_agree(tmp_path):
    """psnr, quality and min_quality measure one thing: the visible pixels' colour as seen
    (premultiplied by alpha); transparent pixels are judged by none of them."""
    import json

    import yaml

    from gpupix.config import load_config
    from gpupix.pipeline import run_job
    from tests.conftest import gradient_image

    rgba = np.dstack([gradient_image(40, 40), np.full((40, 40), 255, np.uint8)])
    rgba[:20, :, 3] = 0            # half transparent: must not lift the PSNR
    rgba[20:30, :, 3] = 128        # partial alpha
    (tmp_path / "in").mkdir()
    from PIL import Image

    Image.fromarray(rgba).save(tmp_path / "in" / "a.png")
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "job": "quantize", "input": {"paths": [str(tmp_path / "in")]},
        "output": {"dir": str(tmp_path / "out")}, "backend": "cpu", "report": False,
        "metrics": ["psnr", "rmse", "delta_e"],
        "quantize": {"k": 6, "min_quality": {"psnr": 10}}}))
    row = run_job(load_config(job)).rows[0]
    assert row["status"] == "ok"
    assert row["quality_metric"] == "psnr" and row["psnr"] == row["quality"]
    assert abs(row["rmse"] - 255 * 10 ** (-row["psnr"] / 20)) < 1e-3
    job.write_text(job.read_text().replace("psnr: 10", f"psnr: {row['psnr'] + 0.01}")
                   .replace(str(tmp_path / "out"), str(tmp_path / "out2")))
    refused = run_job(load_config(job)).rows[0]
    assert refused["status"] == "failed" and refused["quality"] == row["quality"]
    assert json.dumps(refused)  # the row is plain JSON
