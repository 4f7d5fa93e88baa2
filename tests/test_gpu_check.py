"""``make gpu-check``'s script, run here with the CPU stand-ins for CuPy and cuML.

On a GPU machine the same functions run with the real cuda backend; here they show that the
script works end to end and that the stand-ins agree with the cpu backend within the stated
tolerances.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from gpupix.backends import CpuBackend, CudaBackend

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_it_says_why_and_passes(gpu_check, capsys, tmp_path):
    if CudaBackend.available():
        pytest.skip("a GPU is usable here")
    assert gpu_check.main(["--out", str(tmp_path / "figures.json")]) == 0
    assert "gpu-check: SKIPPED" in capsys.readouterr().out
    assert not (tmp_path / "figures.json").exists()


def test_every_job_kind_has_a_tolerance(gpu_check):
    from tests.conftest import builtin_jobs

    assert gpu_check.TOLERANCES.keys() == gpu_check.JOB_SPECS.keys()
    assert {spec["job"] for spec in gpu_check.JOB_SPECS.values()} == builtin_jobs()


@pytest.mark.slow
def test_agreement_and_benchmarks_on_the_standins(gpu_check, fake_cuda, tmp_path):
    figures = gpu_check.agreement(fake_cuda, tmp_path, quick=True)
    assert figures.keys() == gpu_check.JOB_SPECS.keys()
    outside = {name: f for name, f in figures.items() if not f["within_tolerance"]}
    assert outside == {}
    assert figures["corrupt"]["max_diff"] == 0 and figures["inpaint"]["max_diff"] <= 1
    timings = gpu_check.benchmarks([CpuBackend(), fake_cuda], side=32)
    assert len(timings) == 3
    assert all(row["cpu"] > 0 and row["cuda"] > 0 and "cpu_over_cuda" in row
               for row in timings.values())
