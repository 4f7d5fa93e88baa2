"""Every job kind end to end on the strict backend, whose arrays refuse ``np.asarray``.

array_api_strict's "device1" behaves as a GPU does for host conversions: an op or job that
turns a device array into NumPy without ``backend.to_host`` fails here, in CI, instead of on
the first CUDA machine. Each output is also compared with the cpu backend's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gpupix.backends import CpuBackend
from gpupix.config import load_config
from gpupix.pipeline import run_job
from tests.backends.standins import StrictBackend
from tests.conftest import builtin_jobs, gradient_image


def _images(folder: Path, count: int = 2, size: tuple[int, int] = (24, 28)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(gradient_image(*size, seed=i)).save(folder / f"im{i}.png")
    return folder


def _glyphs(folder: Path, count: int = 24) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        tile = np.zeros((8, 8), np.uint8)
        y, x = rng.integers(0, 5, 2)
        tile[y:y + 3, x:x + 3] = 255
        Image.fromarray(tile).save(folder / f"g{i:02d}.png")
    return folder


def _job(tmp_path: Path, name: str, backend: str, **config) -> Path:
    config.setdefault("output", {})
    config["output"]["dir"] = f"out_{name}_{backend}"
    config.setdefault("executor", {"kind": "local"})
    path = tmp_path / f"{name}_{backend}.yaml"
    path.write_text(yaml.safe_dump({"backend": "cpu", "seed": 0, **config}))
    return path


# one job file per kind and mode; the corrupt job's output feeds inpaint
JOBS_TO_RUN = {
    "quantize": dict(job="quantize", input={"paths": ["images"]},
                     quantize={"k": 8}, metrics=["psnr", "delta_e", "ssim"]),
    "quantize_auto": dict(job="quantize", input={"paths": ["images"]},
                          quantize={"k": "auto", "target": {"psnr": 30}, "max_k": 32}),
    "quantize_shared": dict(job="quantize", input={"paths": ["images"]},
                            quantize={"k": 8, "palette": "shared",
                                      "dither": {"floyd_steinberg": 0.8}}),
    "corrupt": dict(job="corrupt", input={"paths": ["images"]},
                    corrupt={"drop": 0.3, "holes": {"count": 1, "size": 6}}),
    "inpaint": dict(job="inpaint", input={"paths": ["out_corrupt_cpu"]},
                    inpaint={"k": "auto", "method": "knn_linear", "reference": "images"},
                    metrics=["psnr", "ssim"]),
    "denoise": dict(job="denoise", input={"paths": ["images"]},
                    denoise={"method": "self", "noise": {"kind": "gaussian", "sigma": 25}},
                    metrics=["psnr"]),
    "fit_denoiser": dict(job="fit_denoiser", input={"paths": ["glyphs"]},
                         output={"overwrite": True},
                         fit_denoiser={"kind": "whole", "copies": 2, "components": 8, "k": 5,
                                       "noise": {"kind": "gaussian", "sigma": 50}}),
    "denoise_model": dict(job="denoise", input={"paths": ["glyphs"]},
                          denoise={"method": "model",
                                   "model": "out_fit_denoiser_cpu/model.npz",
                                   "noise": {"kind": "gaussian", "sigma": 50}},
                          metrics=["psnr"]),
}


def _outputs(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


@pytest.mark.slow
def test_every_job_kind_runs_on_the_strict_device(tmp_path):
    _images(tmp_path / "images")
    _glyphs(tmp_path / "glyphs")
    assert {spec["job"] for spec in JOBS_TO_RUN.values()} == builtin_jobs()  # every kind
    for name, spec in JOBS_TO_RUN.items():
        results = {}
        for backend in (CpuBackend(), StrictBackend()):
            path = _job(tmp_path, name, backend.name, **yaml.safe_load(yaml.safe_dump(spec)))
            summary = run_job(load_config(path), backend=backend)
            failed = [row for row in summary.rows if row.get("status") != "ok"]
            assert not failed and summary.rows, f"{name} on {backend.name}: {failed}"
            assert summary.summary["backend"]["backend"] == backend.name
            results[backend.name] = _outputs(summary.output_dir)
        cpu, strict = results["cpu"], results["strict"]
        assert cpu.keys() == strict.keys(), name
        for file, expected in cpu.items():
            np.testing.assert_array_equal(strict[file], expected, err_msg=f"{name}: {file}")
