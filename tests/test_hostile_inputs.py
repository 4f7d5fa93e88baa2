"""Hostile inputs: job files, models, masks, palettes, names and run records built to hurt.

Each case is one a careless or hostile user can make in a few bytes; each must end in one
line naming the file (exit 2 for what the whole job depends on, a failed row for one image),
in bounded time and memory, and never run code or markup it was handed.
"""

from __future__ import annotations

import io
import json
import re
import resource
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from gpupix.cli import app
from tests.conftest import gradient_image
from tests.helpers import write_job

runner = CliRunner()

HEAD = "job: quantize\ninput: {paths: [images]}\noutput: {dir: out}\nbackend: cpu\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    Image.fromarray(gradient_image(8, 8)).save(tmp_path / "images" / "a.png")
    return tmp_path


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
    assert "more than 1,048,576 bytes; a job file is a few settings" in line


def test_a_job_file_that_never_ends_is_read_bounded():
    result = runner.invoke(app, ["validate", "/dev/zero"])
    line = one_line_error(result)
    assert line.startswith("error: /dev/zero: more than 1,048,576 bytes")


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


# ---------------------------------------------------------------------------- model files


def real_model_members() -> dict[str, np.ndarray]:
    """The members of a real (small) patch model, as fit_denoiser writes them."""
    from gpupix.backends import CpuBackend
    from gpupix.ops.denoise import fit_knn_denoiser, save_model

    rng = np.random.default_rng(0)
    clean = rng.uniform(0, 255, (300, 27)).astype(np.float32)  # 3x3 RGB patches
    noisy = clean + rng.normal(0, 20, clean.shape).astype(np.float32)
    model = fit_knn_denoiser(noisy, clean, components=6, k=5,
                             target_columns=np.arange(12, 15),  # the centre pixel
                             meta={"kind": "patch", "channels": 3, "patch": 3,
                                   "noise": None, "paired": True, "seed": 0})
    data = save_model(model, CpuBackend())
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def write_npz(path: Path, members: dict[str, bytes | np.ndarray], *,
              compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, content in members.items():
            raw = content if isinstance(content, bytes) else npy_bytes(content)
            archive.writestr(f"{name}.npy", raw)
    return path


def with_meta(members: dict, **changes) -> dict:
    meta = json.loads(str(members["meta"]))
    meta.update(changes)
    meta = {k: v for k, v in meta.items() if v is not DROP}
    return {**members, "meta": np.asarray(json.dumps(meta))}


DROP = object()


def huge_header(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\0" * 64


def bomb_member(inflated: int) -> Callable[[Path], None]:
    """A deflated features.npy of zeros: a few hundred KB that inflate to ``inflated``."""
    def write(path: Path) -> None:
        members = real_model_members()
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, array in members.items():
                if name != "features":
                    archive.writestr(f"{name}.npy", npy_bytes(array))
            rows = inflated // (4 * members["features"].shape[1])
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {
                "descr": "<f4", "fortran_order": False,
                "shape": (rows, members["features"].shape[1])})
            with archive.open("features.npy", "w", force_zip64=True) as member:
                member.write(header.getvalue())
                zeros = bytes(1 << 20)
                left = rows * 4 * members["features"].shape[1]
                while left:
                    member.write(zeros[:min(left, len(zeros))])
                    left -= min(left, len(zeros))
    return write


MODEL_CASES = {
    "missing kind": (lambda m: with_meta(m, kind=DROP), "no 'kind' setting"),
    "kind of the wrong type": (lambda m: with_meta(m, kind=["patch"]), "kind a list"),
    "extra member": (lambda m: {**m, "payload": np.zeros(3, np.float32)},
                     "'payload.npy': not part of"),
    "meta not a string": (lambda m: {**m, "meta": np.zeros(3)}, "'meta.npy': expected one JSON"),
    "meta not an object": (lambda m: {**m, "meta": np.asarray("[1, 2]")},
                           "'meta.npy': expected a JSON object"),
    "meta deeply nested": (lambda m: {**m, "meta": np.asarray("[" * 30_000 + "]" * 30_000)},
                           "'meta.npy': not JSON"),
    "unknown setting": (lambda m: with_meta(m, executor={"address": "tcp://evil:8786"}),
                        "unknown setting 'executor'"),
    "wrong setting type": (lambda m: with_meta(m, k="5"), "k is '5', not int"),
    "impossible patch": (lambda m: with_meta(m, patch=4), "patch 4 is not possible"),
    "wrong shape": (lambda m: {**m, "features": m["features"][:, :1].copy()},
                    "'features.npy': shape"),
    "wrong dtype": (lambda m: {**m, "coef": m["coef"].astype(np.float64)},
                    "'coef.npy': expected float32"),
    "pickled objects": (lambda m: {**m, "mean_y": np.array([None], dtype=object)},
                        "'mean_y.npy': holds Python objects"),
    "NaN values": (lambda m: {**m, "residuals": np.full_like(m["residuals"], np.nan)},
                   "'residuals.npy': holds NaN"),
    "1e6 x 1e6 header": (lambda m: {**m, "features": huge_header((10**6, 10**6))},
                         "'features.npy': its header declares shape (1000000, 1000000)"),
    "header larger than its data": (lambda m: {**m, "metric": huge_header((2000, 2000))},
                                    "'metric.npy': its header declares"),
}


def run_with_model(folder: Path, model: Path):
    text = ("job: denoise\ninput: {paths: [images]}\noutput: {dir: out}\nbackend: cpu\n"
            f"denoise: {{method: model, model: {model.name}}}\n")
    job = write_job(folder, text)
    return job, runner.invoke(app, ["run", str(job), "--quiet"])


def test_a_real_model_passes_the_checks(folder):
    model = write_npz(folder / "model.npz", real_model_members())
    job, result = run_with_model(folder, model)
    assert result.exit_code == 0, result.output
    from gpupix.ops.denoise import load_model

    assert load_model(model).meta["patch"] == 3
    compressed = write_npz(folder / "small.npz", real_model_members(),
                           compression=zipfile.ZIP_DEFLATED)  # np.savez_compressed's form
    assert load_model(compressed).meta["kind"] == "patch"


@pytest.mark.parametrize("case", list(MODEL_CASES), ids=list(MODEL_CASES))
def test_a_bad_model_is_one_line_naming_file_and_member(folder, case):
    make, fragment = MODEL_CASES[case]
    model = write_npz(folder / "model.npz", make(real_model_members()))
    job, result = run_with_model(folder, model)
    line = one_line_error(result)
    assert f"denoise.model: {model}" in line and fragment in line, line
    assert "allow_pickle" not in line
    assert len(line) < len(str(job)) + len(str(model)) + 300, line
    assert not (folder / "out" / "a.png").exists()


@pytest.mark.slow  # writes a 256 MiB member
def test_a_zip_bomb_model_is_refused_before_inflating(folder):
    model = folder / "model.npz"
    bomb_member(256 << 20)(model)
    assert model.stat().st_size < 2 << 20
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    job, result = run_with_model(folder, model)
    line = one_line_error(result)
    assert time.perf_counter() - start < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000
    assert f"{model}" in line and "'features.npy'" in line and "zip bomb" in line, line


def test_a_model_over_the_size_budget_is_refused(folder, monkeypatch):
    from gpupix.ops import denoise as ops_denoise

    monkeypatch.setattr(ops_denoise, "MAX_MODEL_BYTES", 4096)
    model = write_npz(folder / "model.npz", real_model_members())
    line = one_line_error(run_with_model(folder, model)[1])
    assert "inflate to more than 4.0 KiB together" in line


# ---------------------------------------------------------------------------- masks, palettes

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"


@pytest.fixture
def eps_decoder_calls(monkeypatch) -> list[str]:
    """Every time Pillow's EPS decoder (Ghostscript behind it) is asked to open a file."""
    from PIL import EpsImagePlugin

    calls: list[str] = []
    original = EpsImagePlugin.EpsImageFile._open

    def spy(self):
        calls.append("eps")
        return original(self)

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", spy)
    return calls


def inpaint_folder(folder: Path, mask_bytes: bytes) -> Path:
    """a.png with a hostile a.mask.png, b.png whose missing pixels are magenta."""
    image = gradient_image(16, 16)
    Image.fromarray(image).save(folder / "images" / "a.png")
    image[4:8, 4:8] = (255, 0, 255)
    Image.fromarray(image).save(folder / "images" / "b.png")
    (folder / "images" / "a.mask.png").write_bytes(mask_bytes)
    return write_job(folder, HEAD.replace("job: quantize", "job: inpaint"))


def test_an_eps_mask_never_reaches_the_eps_decoder(folder, eps_decoder_calls):
    job = inpaint_folder(folder, EPS)
    result = runner.invoke(app, ["run", str(job), "--quiet"])
    assert result.exit_code == 1, result.output
    rows = {Path(r["input"]).name: r for r in map(
        json.loads, (folder / "out" / "metrics.jsonl").read_text().splitlines())}
    assert rows["a.png"]["status"] == "failed" and rows["b.png"]["status"] == "ok"
    assert "a.mask.png: not an image in a supported format" in rows["a.png"]["error"]
    assert eps_decoder_calls == []
    assert (folder / "out" / "summary.json").is_file()


def test_a_mask_bomb_fails_its_image_and_the_batch_finishes(folder):
    from tests.badfiles import bomb_png

    job = inpaint_folder(folder, bomb_png(60000, 60000))
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "DecompressionBombError" not in result.output
    rows = [json.loads(line) for line in (folder / "out" / "metrics.jsonl").read_text()
            .splitlines()]
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "a.mask.png: declares" in failed[0]["error"]
    assert "decompression bomb guard" in failed[0]["error"] and "\n" not in failed[0]["error"]
    assert sum(r["status"] == "ok" for r in rows) == 1
    assert (folder / "out" / "summary.json").is_file()
    assert (folder / "out" / "report.html").is_file()
    assert "ok / skipped / failed" in result.output  # the summary was printed


def test_a_mask_of_another_size_fails_before_decoding(folder, monkeypatch):
    from PIL import ImageFile

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((9, 7), np.uint8)).save(buffer, format="PNG")
    job = inpaint_folder(folder, buffer.getvalue())
    loads = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: (
        loads.append(getattr(self, "filename", None) or self.size), original(self))[1])
    result = runner.invoke(app, ["run", str(job), "--quiet"])
    assert result.exit_code == 1
    assert "a.mask.png: mask is 7x9 but its image a.png is 16x16" in result.output
    assert (7, 9) not in loads  # the mask's pixels were never decoded


def quantize_with_palette(folder: Path, name: str, content: bytes):
    (folder / name).write_bytes(content)
    job = write_job(folder, HEAD + f"quantize: {{palette: {name}}}\n")
    return job, runner.invoke(app, ["run", str(job), "--quiet"])


@pytest.mark.parametrize("name, content, fragment", [
    ("palette.png", EPS, "not an image in a supported format"),
    ("palette.png", b"GIF89a" + bytes(20), "not an image in a supported format"),
    ("palette.json", b"[" * 100_000 + b"]" * 100_000, "RecursionError"),
    ("palette.json", b'{"format": "gpupix-palette", "colours": [[0, 0, 0]], "x": "'
     + b"y" * (2 << 20) + b'"}', "a palette.json is a few KB"),
    ("palette.json", b'{"format": "gpupix-palette", "colours": [[true, 0, 0]]}',
     "whole values 0..255"),
    ("palette.json", b'{"format": "gpupix-palette", "colours": [[1.5, 0, 0]]}',
     "whole values 0..255"),
    ("palette.json", b'{"format": "gpupix-palette", "colours": [["0", 0, 0]]}',
     "whole values 0..255"),
    ("palette.json", b'{"format": "gpupix-palette", "colours": [[0, 0, 0]], "alpha": [300]}',
     "alpha must list"),
], ids=["eps", "not png", "deep json", "huge json", "bool", "float", "string", "alpha"])
def test_a_hostile_palette_file_is_one_line(folder, eps_decoder_calls, name, content,
                                            fragment):
    job, result = quantize_with_palette(folder, name, content)
    line = one_line_error(result)
    assert "quantize.palette" in line and str(folder / name) in line and fragment in line
    assert len(line) < 600 and eps_decoder_calls == []


def test_a_palette_png_bomb_header_is_refused(folder):
    from tests.badfiles import bomb_png

    job, result = quantize_with_palette(folder, "palette.png", bomb_png(60000, 60000))
    line = one_line_error(result)
    assert "quantize.palette" in line and "decompression bomb guard" in line


def test_a_palette_png_with_a_long_trns_keeps_its_colours(folder):
    from tests.badfiles import PNG_SIGNATURE, png_chunk

    header = png_chunk(b"IHDR", (16).to_bytes(4, "big") * 2 + bytes([8, 3, 0, 0, 0]))
    rows = b"".join(b"\x00" + bytes([0] * 8 + [1] * 8) for _ in range(16))
    import zlib

    data = (PNG_SIGNATURE + header + png_chunk(b"PLTE", bytes([255, 0, 0, 0, 0, 255]))
            + png_chunk(b"tRNS", bytes([10]) * 256) + png_chunk(b"IDAT", zlib.compress(rows))
            + png_chunk(b"IEND", b""))
    (folder / "swatch.png").write_bytes(data)
    from gpupix.palette_io import load_palette

    colours, alpha = load_palette(folder / "swatch.png")
    assert colours.tolist() == [[255, 0, 0], [0, 0, 255]] and alpha.tolist() == [10, 10]


# ---------------------------------------------------------------------------- printed paths


def test_markup_in_folder_and_file_names_is_printed_not_parsed(tmp_path):
    images = tmp_path / "images"
    (images / "sub[").mkdir(parents=True)
    Image.fromarray(gradient_image(8, 8)).save(images / "a.png")
    (images / "sub[" / "x].png").write_bytes(b"not an image")
    (images / "[bold red]b.png").write_bytes(b"not an image either")
    (images / ":thumbs_up:.png").write_bytes(b"nor this")
    job = write_job(tmp_path, "job: quantize\ninput: {paths: [images], recursive: true}\n"
                              "output: {dir: 'out[/x]'}\nbackend: cpu\nquantize: {k: 4}\n")
    result = runner.invoke(app, ["run", str(job)], env={"COLUMNS": "1000"})
    assert result.exit_code == 1, result.output  # some failed; not a crash
    assert "MarkupError" not in result.output and "Traceback" not in result.output
    assert "sub[/x].png: not an image" in result.output
    assert "[bold red]b.png: not an image" in result.output
    assert ":thumbs_up:.png: not an image" in result.output
    assert f"{tmp_path}/out[/x]" in result.output
    assert (tmp_path / "out[" / "x]" / "summary.json").is_file()


@pytest.mark.parametrize("quiet", [True, False])
def test_a_newline_in_a_file_name_cannot_forge_a_line(tmp_path, quiet):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(gradient_image(8, 8)).save(images / "a.png")
    (images / "b\nfailed: forged.png").write_bytes(b"not an image")
    (images / "c\x1b[2J.png").write_bytes(b"not an image")
    job = write_job(tmp_path, HEAD)
    result = runner.invoke(app, ["run", str(job), *(["--quiet"] if quiet else [])],
                           env={"COLUMNS": "1000"})
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert not any(line.startswith("failed: forged") for line in lines)
    assert "\x1b[2J" not in result.output
    assert any("b\\nfailed: forged.png" in line for line in lines)
    if quiet:
        assert len(lines) == 2 and all(line.startswith("failed: ") for line in lines)


def test_config_errors_print_control_characters_escaped(tmp_path):
    job = tmp_path / "job\nerror: forged.yaml"
    job.write_text("job: nope\n")
    result = runner.invoke(app, ["validate", str(job)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "job\\nerror: forged.yaml" in result.output


# ---------------------------------------------------------------------------- report from files


def hostile_run(tmp_path: Path) -> Path:
    """A finished run whose metrics.jsonl and summary.json were edited by someone else."""
    out = tmp_path / "out"
    out.mkdir()
    Image.fromarray(gradient_image(8, 8)).save(tmp_path / "a.png")
    xss = "<img src=x onerror=alert(1)>"
    rows = [
        {"input": str(tmp_path / "a.png"), "output": str(tmp_path / "a.png"), "status": "ok",
         "width": xss, "height": 8, "psnr": 30.0, "bytes_in": 10, "bytes_out": xss,
         "palette": ["red;background-image:url(http://attacker.example/x)", "#00ff00"],
         "palette_shares": [0.5, xss], "notes": "</dd><script>alert(1)</script>",
         f"<script>{xss}": 1.0, "k_curve": [1.0, xss], "outputs": xss, "huge": 10**400,
         "nested": {"a": {"b": [1]}}, "error": None},
        {"input": xss, "output": None, "status": f"<b>{xss}</b>", "error": f"<i>{xss}</i>"},
        {"input": str(tmp_path / "a.png"), "status": "ok", "mask_source": "file",
         "output": str(tmp_path / "a.png"), "psnr": float("inf")},
        ["not", "a", "row"],
    ]
    lines = [json.dumps(row) for row in rows if isinstance(row, dict)]
    lines += ["[" * 50_000 + "]" * 50_000, '{"input": 1' + "0" * 5000 + "}", "{broken"]
    (out / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    summary = {"job": xss, "wall_seconds": xss, "images_per_second": "fast",
               "totals": {"bytes_in": xss, "pixels": "many"}, "means": {"psnr": xss},
               "backend": {"backend": xss, "device": {"nested": xss}},
               "versions": {"gpupix": xss},
               "config": {"inpaint": {"mask_suffix": "/../../etc/passwd", "key_color": xss},
                          "executor": {"kind": "dask", "address": "tcp://attacker:8786"}}}
    (out / "summary.json").write_text(json.dumps(summary))
    return out


def test_gpupix_report_escapes_and_checks_every_value(tmp_path):
    out = hostile_run(tmp_path)
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "<img src=x" not in page and "onerror=alert(1)>" not in page
    assert page.count("<script") == 1  # the page's own
    assert "url(http" not in page and "background-image" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # shown, as text
    # the reader is told what was left out, and the rest of the row is still shown
    note = re.search(r"metrics.jsonl: ([^<]*) not of the type gpupix writes", page)
    assert note and note.group(1).split(", ")[:4] == ["width", "bytes_out", "palette",
                                                     "palette_shares"], note
    assert "psnr</dt><dd>30" in page and "<dt>height</dt>" not in page


@pytest.mark.parametrize("config", [{"inpaint": ["not", "a", "section"]}, ["a list"],
                                    {"inpaint": {"key_color": 7, "mask_suffix": None}},
                                    {"deep": json.loads("[" * 500 + "]" * 500)}])
def test_a_recorded_config_of_the_wrong_shape_is_ignored(tmp_path, config):
    out = hostile_run(tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "config": config}))
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output


def test_a_summary_json_cannot_bring_a_dask_address(tmp_path, monkeypatch):
    """gpupix report reads a recorded config as data: no executor is built from it."""
    import distributed

    from gpupix import config as config_module
    from gpupix.executors import dask as dask_executor

    def refuse(*args, **kwargs):
        raise AssertionError("a Dask client was created from a file gpupix reads as data")

    monkeypatch.setattr(distributed, "Client", refuse)
    monkeypatch.setattr(dask_executor.DaskExecutor, "__init__", refuse)
    built = []
    monkeypatch.setattr(config_module, "validate_config",
                        lambda *a, **k: built.append(a) or pytest.fail("config rebuilt"))
    out = hostile_run(tmp_path)
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    assert built == []


def test_data_files_never_become_settings(folder, monkeypatch):
    """A palette.json or a model's settings naming an executor change nothing: the only
    config is the job file the user runs (and their --set)."""
    from gpupix import config as config_module
    from gpupix.palette_io import palette_json

    palette = json.loads(palette_json(np.array([[0, 0, 0], [255, 255, 255]]), None))
    palette["executor"] = {"kind": "dask", "address": "tcp://attacker:8786"}
    (folder / "p.json").write_text(json.dumps(palette))
    built = []
    real = config_module.validate_config
    monkeypatch.setattr(config_module, "validate_config",
                        lambda *a, **k: built.append(a) or real(*a, **k))
    job = write_job(folder, HEAD + "quantize: {palette: p.json}\n")
    result = runner.invoke(app, ["run", str(job), "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(built) == 1 and "address" not in json.dumps(built[0][0])
    summary = json.loads((folder / "out" / "summary.json").read_text())
    assert summary["config"]["executor"] == {"kind": "local", "address": None,
                                             "n_workers": None, "chunk": 64, "retries": 2}


# ---------------------------------------------------------------------------- neighbours


@pytest.mark.parametrize("field", ["input.paths", "output.dir", "quantize.palette"])
def test_a_nul_character_in_a_setting_is_one_line(folder, field):
    section, key = field.split(".")
    value = '["a\\0b"]' if field == "input.paths" else '"a\\0b.json"'
    text = HEAD.replace("backend: cpu\n", "") if section != "quantize" else HEAD
    job = write_job(folder, text + f"{section}: {{{key}: {value}}}\n"
                    if section == "quantize" else text)
    args = ["validate", str(job)] + ([] if section == "quantize" else
                                     ["--set", f'{field}={value}'])
    line = one_line_error(runner.invoke(app, args))
    assert f"{field}: holds a NUL character" in line


def test_a_rerun_over_an_edited_metrics_jsonl_does_not_crash(folder):
    job = write_job(folder, HEAD + "quantize: {k: 4}\n")
    assert runner.invoke(app, ["run", str(job), "--quiet"]).exit_code == 0
    metrics = folder / "out" / "metrics.jsonl"
    row = json.loads(metrics.read_text().splitlines()[0])
    edited = [{**row, "width": "x", "height": 10**9, "error": "<b>"},
              {"input": ["not", "a", "path"], "status": "ok"},
              "[" * 50_000 + "]" * 50_000, '{"input": 1' + "0" * 5000 + "}"]
    metrics.write_text("\n".join(e if isinstance(e, str) else json.dumps(e) for e in edited))
    result = runner.invoke(app, ["run", str(job)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    summary = json.loads((folder / "out" / "summary.json").read_text())
    assert summary["counts"] == {"ok": 0, "skipped": 1, "failed": 0}
    page = (folder / "out" / "report.html").read_text()
    assert "<b>" not in page.split("<body")[1].replace("<b>palette</b>", "")


def test_a_mask_suffix_cannot_reach_another_folder(folder):
    job = write_job(folder, HEAD.replace("job: quantize", "job: inpaint")
                    + "inpaint: {mask_suffix: /../../etc/passwd}\n")
    line = one_line_error(runner.invoke(app, ["validate", str(job)]))
    assert "inpaint.mask_suffix: must end a file name" in line


def test_a_real_run_reports_every_field_it_wrote(folder):
    """The row checks accept everything gpupix itself writes, an infinite PSNR included."""
    # a.png has 64 pixels, so k=256 reproduces it exactly: its PSNR is infinite (null)
    job = write_job(folder, HEAD + "quantize: {k: 256, sweep: true}\n")
    assert runner.invoke(app, ["run", str(job), "--quiet"]).exit_code == 0
    page = (folder / "out" / "report.html").read_text()
    assert "not of the type gpupix writes" not in page
    assert runner.invoke(app, ["report", str(folder / "out")]).exit_code == 0
    assert "not of the type gpupix writes" not in (folder / "out" / "report.html").read_text()


@pytest.mark.parametrize("value, fragment", [
    ("2001-13-01", "cannot read '2001-13-01' as timestamp (month must be in 1..12)"),
    ("!!float abc", "cannot read 'abc' as float"),
    ("!!int 0x", "cannot read '0x' as int"),
    ("{? [1, 2] : 3}", "found unhashable key"),
], ids=["bad date", "bad float", "bad int", "unhashable key"])
def test_a_value_yaml_cannot_build_is_one_line(folder, value, fragment):
    job = write_job(folder, HEAD + f"seed: {value}\n")
    line = one_line_error(runner.invoke(app, ["validate", str(job)]))
    assert "line 5" in line and fragment in line, line


def test_a_huge_line_in_metrics_jsonl_is_skipped_unheld(tmp_path):
    import tracemalloc

    from gpupix.rows import read_rows

    metrics = tmp_path / "metrics.jsonl"
    with open(metrics, "w") as handle:
        handle.write(json.dumps({"input": "a"}) + "\n" + '{"input": "')
        for _ in range(48):  # one 48 MiB line
            handle.write("x" * (1 << 20))
        handle.write('"}\n' + json.dumps({"input": "b"}) + "\n" + '{"input": "c"')
    tracemalloc.start()
    try:
        rows = read_rows(metrics)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r["input"] for r in rows] == ["a", "b"]
    assert peak < 16 << 20  # a few pieces of 1 MiB, never the whole line
