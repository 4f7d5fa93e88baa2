"""Bad and unusual input files, each next to a good image in one batch run through the CLI.

For each case: the good image is still written, metrics.jsonl (strict JSON) records the
bad file's failure and reason, and the exit code is 1 when anything failed, else 0.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

import gpupix.io
from gpupix.cli import app
from gpupix.errors import ImageError
from gpupix.io import decode
from tests import badfiles
from tests.conftest import gradient_image
from tests.helpers import metrics_rows as strict_rows

runner = CliRunner()
RED, BLUE = (220, 20, 20), (20, 20, 220)


def job_file(tmp_path: Path, inputs: list[str], *, k: int = 8, out: str = "out",
             recursive: bool = False, **extra) -> Path:
    config = {"job": "quantize", "input": {"paths": inputs, "recursive": recursive},
              "output": {"dir": out},
              "backend": "cpu", "quantize": {"k": k}, "metrics": ["psnr", "ssim"], **extra}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_folder(tmp_path: Path, make_case: Callable[[Path], str], **options):
    """A folder with one good image and the case's file; returns (result, rows by name)."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(gradient_image(16, 20)).save(folder / "good.png")
    name = make_case(folder)
    result = runner.invoke(app, ["run", str(job_file(tmp_path, ["in"], **options)), "--quiet"])
    rows = {Path(r["input"]).name: r for r in strict_rows(tmp_path / "out")}
    assert rows["good.png"]["status"] == "ok", rows
    assert (tmp_path / "out" / "good.png").is_file()
    return result, rows, name


def two_colour(height: int, width: int, split: int) -> np.ndarray:
    image = np.empty((height, width, 3), np.uint8)
    image[:, :split], image[:, split:] = RED, BLUE
    return image


# --- files that must fail alone -------------------------------------------------------------

def zero_byte(folder: Path) -> str:
    (folder / "zero.png").write_bytes(b"")
    return "zero.png"


def text_as_png(folder: Path) -> str:
    (folder / "notes.png").write_text("this is a text file, not an image\n")
    return "notes.png"


def eps_as_png(folder: Path) -> str:  # Pillow would hand this to Ghostscript
    (folder / "vector.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")
    return "vector.png"


def truncated_png(folder: Path) -> str:
    badfiles.write(folder / "cut.png", badfiles.truncated(
        badfiles.png_bytes(gradient_image(32, 32))))
    return "cut.png"


def truncated_jpeg(folder: Path) -> str:
    image = Image.fromarray(gradient_image(64, 64))
    badfiles.write(folder / "cut.jpg", badfiles.truncated(badfiles.jpeg_bytes(image)))
    return "cut.jpg"


def bad_crc_png(folder: Path) -> str:
    badfiles.write(folder / "crc.png", badfiles.bad_crc_png(gradient_image(12, 12)))
    return "crc.png"


def bomb_png(folder: Path) -> str:
    badfiles.write(folder / "bomb.png", badfiles.bomb_png())
    return "bomb.png"


def symlink_loop(folder: Path) -> str:
    os.symlink("loop-b.png", folder / "loop-a.png")
    os.symlink("loop-a.png", folder / "loop-b.png")
    return "loop-a.png"


def dangling_symlink(folder: Path) -> str:
    os.symlink("gone.png", folder / "link.png")
    return "link.png"


def fifo(folder: Path) -> str:  # opening it would block forever
    os.mkfifo(folder / "pipe.png")
    return "pipe.png"


FAILING = {
    "zero-byte": (zero_byte, r"empty file \(0 bytes\)"),
    "text named .png": (text_as_png, r"not an image in a supported format"),
    "EPS named .png": (eps_as_png, r"not an image in a supported format"),
    "truncated PNG": (truncated_png, r"truncated PNG"),
    "truncated JPEG": (truncated_jpeg, r"(?i)truncated"),
    "bad CRC PNG": (bad_crc_png, r"corrupt PNG \(bad CRC in chunk IDAT"),
    "decompression bomb": (bomb_png, r"declares 900,000,000 pixels.*decompression bomb guard"),
    "symlink loop": (symlink_loop, r"symbolic link loop"),
    "dangling symlink": (dangling_symlink, r"broken symbolic link"),
    "FIFO": (fifo, r"is a FIFO, not an image file"),
}


@pytest.mark.parametrize("case", FAILING, ids=list(FAILING))
def test_a_bad_file_fails_alone_with_its_reason(tmp_path, case):
    make, reason = FAILING[case]
    result, rows, name = run_folder(tmp_path, make)
    assert result.exit_code == 1, result.output
    row = rows[name]
    assert row["status"] == "failed"
    assert name in row["error"]  # one line naming the file
    assert "\n" not in row["error"]
    assert re.search(reason, row["error"]), row["error"]
    assert not (tmp_path / "out" / Path(name).with_suffix(".png")).exists()
    assert name in result.output  # --quiet still prints each failure, one line each


def test_permission_denied_is_reported(tmp_path, monkeypatch):
    """The open() refusal path, simulated so it also runs as root (root reads mode 000)."""
    real_open = open

    def refusing_open(path, *args, **kwargs):
        if Path(path).name == "locked.png":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(gpupix.io, "open", refusing_open, raising=False)

    def locked(folder: Path) -> str:
        badfiles.write(folder / "locked.png", badfiles.png_bytes(gradient_image(8, 8)))
        return "locked.png"

    result, rows, name = run_folder(tmp_path, locked)
    assert result.exit_code == 1
    assert rows[name]["status"] == "failed"
    assert rows[name]["error"].endswith("locked.png: cannot read (permission denied)")


def test_unreadable_file_fails_alone(tmp_path):
    """A real mode-000 file. Root reads those anyway, so as root the run is a subprocess
    dropped to the ``nobody`` user (uid 65534) in a folder it may use."""
    if os.geteuid() != 0:
        def unreadable(folder: Path) -> str:
            path = badfiles.write(folder / "secret.png",
                                  badfiles.png_bytes(gradient_image(8, 8)))
            path.chmod(0)
            return "secret.png"

        result, rows, name = run_folder(tmp_path, unreadable)
        assert result.exit_code == 1
        assert rows[name]["error"].endswith("secret.png: cannot read (permission denied)")
        return
    import shutil
    import subprocess
    import sys
    import tempfile

    root = Path(__file__).resolve().parents[1]
    scratch = Path(tempfile.mkdtemp(prefix="gpupix-nobody-"))
    try:
        scratch.chmod(0o777)
        (scratch / "in").mkdir()
        Image.fromarray(gradient_image(8, 8)).save(scratch / "in" / "good.png")
        badfiles.write(scratch / "in" / "secret.png", badfiles.png_bytes(gradient_image(8, 8)))
        (scratch / "in" / "secret.png").chmod(0)
        (scratch / "in").chmod(0o755)
        job = job_file(scratch, ["in"])
        job.chmod(0o644)
        try:
            process = subprocess.run(
                [sys.executable, "-m", "gpupix.cli", "run", str(job), "--quiet"], cwd=root,
                user=65534, group=65534, capture_output=True, text=True, timeout=120,
                env={**os.environ, "HOME": str(scratch)})
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"cannot run as the nobody user here: {exc}")
        if "ModuleNotFoundError" in process.stderr or "Permission denied: '" in process.stderr:
            pytest.skip(f"nobody cannot run Python here: {process.stderr.strip()[-200:]}")
        assert process.returncode == 1, process.stderr
        rows = {Path(r["input"]).name: r for r in strict_rows(scratch / "out")}
        assert rows["good.png"]["status"] == "ok"
        assert rows["secret.png"]["error"].endswith("secret.png: cannot read (permission denied)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_bomb_is_refused_before_allocating(tmp_path):
    path = badfiles.write(tmp_path / "bomb.png", badfiles.bomb_png(30000, 30000))
    assert path.stat().st_size < 1000
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match=r"30000|900,000,000"):
            decode(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak:,} bytes allocated for a refused image"


def test_bomb_below_pillows_own_limit_is_refused_by_ours(tmp_path):
    # 10000 x 10000 = 1e8 pixels: past our limit (89.5 M), below twice it (Pillow's error)
    path = badfiles.write(tmp_path / "big.png", badfiles.bomb_png(10000, 10000))
    with pytest.raises(ImageError, match=r"declares 10000x10000 = 100,000,000 pixels"):
        decode(path)


# --- files that must decode, and how ------------------------------------------------------------

def output_rgba(tmp_path: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(tmp_path / "out" / Path(name).with_suffix(".png").name)
                      .convert("RGBA"))


def test_cmyk_jpeg(tmp_path):
    def cmyk(folder: Path) -> str:
        Image.fromarray(two_colour(16, 16, 8)).convert("CMYK").save(folder / "cmyk.jpg",
                                                                     quality=95)
        return "cmyk.jpg"

    result, rows, name = run_folder(tmp_path, cmyk, k=2)
    assert result.exit_code == 0 and rows[name]["status"] == "ok"
    out = output_rgba(tmp_path, name).astype(int)
    # colours survive CMYK -> RGB: reddish on the left, bluish on the right
    assert out[8, 2, 0] > out[8, 2, 2] + 100 and out[8, 13, 2] > out[8, 13, 0] + 100


@pytest.mark.parametrize("channels", [1, 2, 3, 4], ids=["grey", "grey+alpha", "RGB", "RGBA"])
def test_16_bit_png(tmp_path, channels):
    high = np.zeros((4, 6, channels), np.uint16)
    high[:, 3:, 0] = 65535  # white (grey) or red on the right
    if channels in (2, 4):
        high[..., -1] = 65535  # opaque
    array = high[..., 0] if channels == 1 else high

    def deep(folder: Path) -> str:
        badfiles.write(folder / "deep.png", badfiles.png16(array))
        return "deep.png"

    result, rows, name = run_folder(tmp_path, deep)
    assert result.exit_code == 0 and rows[name]["status"] == "ok"
    out = output_rgba(tmp_path, name)
    expected_right = (255, 255, 255) if channels <= 2 else (255, 0, 0)
    assert tuple(out[0, 5, :3]) == expected_right and tuple(out[0, 0, :3]) == (0, 0, 0)
    assert (out[..., 3] == 255).all()


def test_la_keeps_transparency(tmp_path):
    def la(folder: Path) -> str:
        grey = np.tile(np.linspace(0, 255, 10).astype(np.uint8), (6, 1))
        alpha = np.full_like(grey, 255)
        alpha[:2] = 0
        Image.fromarray(np.dstack([grey, alpha]), "LA").save(folder / "la.png")
        return "la.png"

    result, rows, name = run_folder(tmp_path, la)
    assert result.exit_code == 0
    out = output_rgba(tmp_path, name)
    assert (out[:2, :, 3] == 0).all() and (out[2:, :, 3] == 255).all()


def test_palette_with_transparency(tmp_path):
    def palette(folder: Path) -> str:
        image = Image.new("P", (6, 4), 0)
        image.putpalette([0, 0, 0, 200, 30, 30, 30, 30, 200])
        image.paste(1, (0, 0, 3, 4))
        image.paste(2, (3, 0, 6, 2))
        image.save(folder / "pal.png", transparency=0)
        return "pal.png"

    result, rows, name = run_folder(tmp_path, palette)
    assert result.exit_code == 0
    out = output_rgba(tmp_path, name)
    assert (out[2:, 3:, 3] == 0).all()  # index 0 stays transparent
    assert tuple(out[0, 0]) == (200, 30, 30, 255) and tuple(out[0, 5]) == (30, 30, 200, 255)


@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (29, 1)], ids=["1x1", "1xN", "Nx1"])
def test_tiny_images(tmp_path, shape):
    def tiny(folder: Path) -> str:
        Image.fromarray(gradient_image(*shape)).save(folder / "tiny.png")
        return "tiny.png"

    result, rows, name = run_folder(tmp_path, tiny)
    assert result.exit_code == 0, result.output
    row = rows[name]
    assert (row["height"], row["width"]) == shape
    assert output_rgba(tmp_path, name).shape[:2] == shape
    if shape == (1, 1):  # identical output: infinite PSNR is written as JSON null
        assert row["psnr"] is None


def test_exif_rotated_jpeg_comes_out_upright(tmp_path):
    stored = two_colour(8, 24, 4)  # red in the first 4 stored columns

    def rotated(folder: Path) -> str:
        image = Image.fromarray(stored)
        exif = image.getexif()
        exif[0x0112] = 6  # display rotated 90 degrees clockwise
        image.save(folder / "phone.jpg", exif=exif, quality=95)
        return "phone.jpg"

    result, rows, name = run_folder(tmp_path, rotated, k=2)
    assert result.exit_code == 0
    out = output_rgba(tmp_path, name).astype(int)
    assert out.shape[:2] == (24, 8)  # upright: as tall as the stored image is wide
    top, bottom = out[1, 4], out[20, 4]  # stored column 0 is the top row once upright
    assert top[0] > top[2] + 100 and bottom[2] > bottom[0] + 100


def test_animated_gif_uses_its_first_frame_and_says_so(tmp_path):
    def animated(folder: Path) -> str:
        frames = [Image.new("RGB", (10, 6), c).convert("P", palette=Image.Palette.ADAPTIVE) for c in
                  (RED, BLUE, (20, 200, 20))]
        frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:],
                       duration=50, loop=0)
        return "anim.gif"

    result, rows, name = run_folder(tmp_path, animated)
    assert result.exit_code == 0
    assert rows[name]["notes"] == "3 frames: only the first is used"
    out = output_rgba(tmp_path, name)
    assert {tuple(c) for c in out.reshape(-1, 4)} == {(*RED, 255)}


# --- folders and names ----------------------------------------------------------------------

def test_duplicate_output_names_are_never_overwritten(tmp_path):
    for folder, colour in (("a", RED), ("b", BLUE)):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (4, 4), colour).save(tmp_path / folder / "same.png")
    Image.new("RGB", (4, 4), (9, 9, 9)).save(tmp_path / "a" / "same.jpg")  # same.png again
    job = job_file(tmp_path, ["a", "b"])
    for _ in range(2):  # a rerun must not let a loser overwrite the winner either
        result = runner.invoke(app, ["run", str(job), "--quiet"])
        assert result.exit_code == 1
        rows = {r["input"]: r for r in strict_rows(tmp_path / "out")}
        # inputs are taken in name order, then in the order of input.paths: a/same.jpg wins
        winner = rows[str(tmp_path / "a" / "same.jpg")]
        assert winner["status"] in ("ok", "skipped")
        for loser in ("a/same.png", "b/same.png"):
            error = rows[str(tmp_path / loser)]["error"]
            assert error.startswith(str(tmp_path / loser)) and "rename one input" in error
            assert "is already the output of " + str(tmp_path / "a" / "same.jpg") in error
        written = np.asarray(Image.open(tmp_path / "out" / "same.png").convert("RGB"))
        assert written[0, 0].tolist() == [9, 9, 9]


def test_nonexistent_input_path_exits_2_naming_file_and_field(tmp_path):
    job = job_file(tmp_path, ["nowhere"])
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert str(job) in result.output and "input.paths[0]" in result.output
    assert "does not exist" in result.output


@pytest.mark.parametrize("inputs", [["empty"], ["empty/*.png"]], ids=["folder", "glob"])
def test_empty_input_exits_0_with_0_images(tmp_path, inputs):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("not an image")
    job = job_file(tmp_path, inputs)
    result = runner.invoke(app, ["run", str(job), "--quiet"])
    assert result.exit_code == 0
    assert "0 images found" in result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["images"] == 0 and strict_rows(tmp_path / "out") == []


def test_directory_symlink_loop_with_recursive_glob_terminates(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    Image.fromarray(gradient_image(8, 8)).save(tmp_path / "in" / "sub" / "x.png")
    os.symlink("..", tmp_path / "in" / "sub" / "up")  # in/sub/up/sub/up/... forever
    for inputs in (["in/**/*.png"], ["in"]):
        job = job_file(tmp_path, inputs, recursive=True)
        result = runner.invoke(app, ["run", str(job), "--quiet", "--set",
                                     "output.overwrite=true"])
        assert result.exit_code == 0, result.output
        rows = strict_rows(tmp_path / "out")
        assert [Path(r["input"]).name for r in rows] == ["x.png"]  # once, not once per loop


def test_a_fifo_named_as_input_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe.png").st_mode)
    with pytest.raises(ImageError, match="is a FIFO"):
        decode(tmp_path / "pipe.png")


def test_a_folder_in_the_way_of_an_output_fails_that_image_only(tmp_path):
    """A directory named like an output is not 'already done': the image fails, and says so."""
    def blocked(folder: Path) -> str:
        Image.fromarray(gradient_image(8, 8)).save(folder / "blocked.png")
        (tmp_path / "out" / "blocked.png").mkdir(parents=True)
        return "blocked.png"

    result, rows, name = run_folder(tmp_path, blocked)
    assert result.exit_code == 1
    assert rows[name]["status"] == "failed" and "Is a directory" in rows[name]["error"]
    assert rows[name]["error"].startswith(str(tmp_path / "in" / "blocked.png"))
