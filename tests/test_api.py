"""The Python API: the documented examples run as written, options are the YAML keys with
the same one-line errors, results agree with the job a YAML file runs, and importing gpupix
stays light."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gpupix
from gpupix.errors import ConfigError
from tests.conftest import gradient_image

ROOT = Path(__file__).resolve().parents[1]


def _doc_blocks() -> list[str]:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_docs_api_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    blocks = _doc_blocks()
    assert len(blocks) >= 6
    namespace: dict = {}
    for block in blocks:
        exec(compile(block.replace("/tmp/", f"{tmp_path}/"), "docs/api.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "(16, 3) (255, 384) (255, 384, 3)" in out
    assert "(8, 4) [0 0 0 0]" in out
    assert "quantize.k: must be 2..256" in out
    assert (tmp_path / "chelsea-16.png").is_file()
    assert namespace["summary"].exit_code == 0
    assert (tmp_path / "gpupix-api-run" / "summary.json").is_file()


def test_quantize_matches_the_yaml_job(tmp_path):
    rgb = gradient_image(40, 50)
    Image.fromarray(rgb).save(tmp_path / "g.png")
    job = tmp_path / "job.yaml"
    job.write_text(f"job: quantize\ninput: {{paths: [{tmp_path / 'g.png'}]}}\n"
                   f"output: {{dir: {tmp_path / 'out'}}}\nquantize: {{k: 7}}\nreport: false\n")
    summary = gpupix.run(job, backend="cpu")
    assert summary.exit_code == 0
    written = Image.open(tmp_path / "out" / "g.png")
    q = gpupix.quantize(rgb, k=7, backend="cpu")
    np.testing.assert_array_equal(np.asarray(written), q.indices)
    np.testing.assert_array_equal(np.asarray(written.getpalette()[:21]).reshape(7, 3),
                                  q.palette)
    row = json.loads((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["psnr"] == q.metrics["psnr"]
    np.testing.assert_array_equal(q.rgb, q.palette[q.indices])


def test_options_are_the_section_keys_with_one_line_errors():
    rgb = gradient_image(16, 16)
    with pytest.raises(ConfigError, match=r"^gpupix.quantize\(\): quantize.kk: unknown key; "
                                          r"did you mean quantize.k\?$"):
        gpupix.quantize(rgb, kk=3)
    with pytest.raises(ConfigError, match="k: auto needs a target"):
        gpupix.quantize(rgb, k="auto")
    with pytest.raises(ConfigError, match="inpaint.method"):
        gpupix.inpaint(rgb, np.zeros((16, 16), bool), method="nope")
    with pytest.raises(ConfigError, match=r"expected an \(H, W, 3\)"):
        gpupix.quantize(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ConfigError, match="expected uint8"):
        gpupix.quantize(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ConfigError, match="mask: shape"):
        gpupix.inpaint(rgb, np.zeros((3, 3), bool))


def test_inpaint_with_an_array_mask_fills_only_the_missing_pixels():
    rgb = gradient_image(32, 32)
    mask = np.zeros((32, 32), bool)
    mask[10:14, 10:14] = True
    damaged = rgb.copy()
    damaged[mask] = 0
    r = gpupix.inpaint(damaged, mask, backend="cpu", k=4)
    assert r.metrics["mask_source"] == "array" and r.metrics["missing_pixels"] == 16
    np.testing.assert_array_equal(r.rgb[~mask], rgb[~mask])
    error = np.abs(r.rgb[mask].astype(int) - rgb[mask]).mean()
    assert error < 12, error  # a smooth gradient: neighbours predict it well
    rgba = np.dstack([damaged, np.full((32, 32), 200, np.uint8)])
    r = gpupix.inpaint(rgba, mask, backend="cpu", k=4)
    assert r.rgb.shape == (32, 32, 4)
    assert (r.rgb[mask, 3] == 255).all() and (r.rgb[~mask, 3] == 200).all()


def test_named_key_colour_and_alpha_masks():
    rgb = gradient_image(24, 24)
    rgb[5:8, 5:8] = (255, 0, 255)
    r = gpupix.inpaint(rgb, key_color="magenta", backend="cpu", k=3)
    assert r.metrics["mask_source"] == "key_color" and r.metrics["missing_pixels"] == 9
    rgba = np.dstack([gradient_image(24, 24), np.full((24, 24), 255, np.uint8)])
    rgba[2:4, 2:4, 3] = 0
    r = gpupix.inpaint(rgba, backend="cpu", k=3)
    assert r.metrics["mask_source"] == "alpha" and r.metrics["missing_pixels"] == 4


def test_sweep_curve_improves_with_k():
    curve = gpupix.sweep(gradient_image(), ks=[2, 4, 8, 16], backend="cpu")
    assert curve["k"] == [2, 4, 8, 16]
    assert all(a < b for a, b in zip(curve["psnr"], curve["psnr"][1:], strict=False))
    assert all(a > b for a, b in zip(curve["inertia"], curve["inertia"][1:], strict=False))
    assert all(a > b for a, b in zip(curve["delta_e"], curve["delta_e"][1:], strict=False))
    with pytest.raises(ConfigError, match="every k must be 2..256"):
        gpupix.sweep(gradient_image(), ks=[1, 4])


def test_results_show_themselves_in_jupyter():
    q = gpupix.quantize(gradient_image(), k=4, backend="cpu", metrics=["psnr"])
    page = q._repr_html_()
    assert page.count("data:image/png;base64,") == 2 and page.count("title=\"#") == 4
    assert "psnr" in page


def test_cuda_input_stays_on_the_device(fake_cuda):
    rgb = gradient_image(20, 20)
    q = gpupix.quantize(rgb, k=4, backend="cpu")
    device = fake_cuda.to_device(rgb)
    on_device = gpupix.quantize(_FakeCupyArray(device), k=4, backend="cuda")
    from tests.backends.standins import FakeDeviceArray

    assert isinstance(on_device.palette, FakeDeviceArray)  # came back through cupy.asarray
    assert isinstance(on_device.indices, FakeDeviceArray)
    np.testing.assert_array_equal(fake_cuda.to_host(on_device.palette), q.palette)
    on_host = gpupix.quantize(rgb, k=4, backend="cuda")  # a NumPy input gets NumPy back
    assert type(on_host.palette) is np.ndarray


class _FakeCupyArray(np.ndarray):
    """A host array that says it is a CUDA array (as CuPy's do), with CuPy's ``get``."""

    def __new__(cls, array):
        return np.asarray(array).view(cls)

    @property
    def __cuda_array_interface__(self):
        return {}

    def get(self):
        return np.asarray(self).view(np.ndarray)


def test_import_gpupix_is_light():
    code = ("import sys, gpupix; heavy = [m for m in ('sklearn', 'scipy', 'cupy', "
            "'matplotlib', 'dask', 'numpy') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


@pytest.mark.slow  # the walkthrough page; test-fast runs the API page
def test_walkthrough_runs(tmp_path, monkeypatch, capsys):
    """docs/walkthrough.md, cell by cell, writing its pictures into a temporary folder."""
    monkeypatch.chdir(ROOT)
    text = (ROOT / "docs" / "walkthrough.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    namespace: dict = {}
    for block in blocks:
        code = block.replace("docs/img/", f"{tmp_path}/").replace(
            '"../out/walkthrough"', repr(str(tmp_path / "run")))
        exec(compile(code, "docs/walkthrough.md", "exec"), namespace)
    for picture in re.findall(r"\]\(img/([\w.-]+)\)", text):
        assert (tmp_path / picture).is_file(), picture
        assert (ROOT / "docs" / "img" / picture).is_file(), picture  # committed with the doc
    assert namespace["summary"].exit_code == 0
    assert "colours reach" in capsys.readouterr().out


def test_every_function_runs_on_the_cuda_glue(fake_cuda):
    """The API on the cuda backend (CuPy and cuML stand-ins): same results as on cpu."""
    rgb = gradient_image(32, 40)
    mask = np.zeros((32, 40), bool)
    mask[8:12, 8:14] = True
    for backend in ("cpu", "cuda"):
        q = gpupix.quantize(rgb, k=6, backend=backend, metrics=["psnr"])
        r = gpupix.inpaint(rgb, mask, k=3, backend=backend, metrics=["psnr"])
        d = gpupix.denoise(rgb, backend=backend, metrics=["psnr"])
        c = gpupix.sweep(rgb, ks=[2, 4], backend=backend)
        if backend == "cpu":
            expected = (q, r, d, c)
    np.testing.assert_array_equal(q.indices, expected[0].indices)
    np.testing.assert_array_equal(r.rgb, expected[1].rgb)
    np.testing.assert_allclose(d.rgb, expected[2].rgb, atol=1)
    assert c["k"] == expected[3]["k"]
    np.testing.assert_allclose(c["psnr"], expected[3]["psnr"], atol=1e-3)
