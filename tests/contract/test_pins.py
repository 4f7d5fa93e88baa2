"""The installed GPU stack is the one the ``cuda`` extra and docker/Dockerfile.gpu pin."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

import pytest

from tests.contract._real import PACKAGE, real

pytestmark = pytest.mark.contract

real("cuml")
from packaging.requirements import Requirement  # noqa: E402  (a dependency of cuML's)

ROOT = PACKAGE.parent


def _cuda_extra() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    requirements = [Requirement(r) for r in project["optional-dependencies"]["cuda"]]
    return {r.name: r for r in requirements}


def test_installed_versions_satisfy_the_cuda_extra():
    for name, requirement in _cuda_extra().items():
        assert requirement.specifier.contains(metadata.version(name), prereleases=True), name


def test_the_cupy_pin_is_at_least_as_strict_as_cumls():
    declared = [Requirement(r) for r in metadata.requires("cuml-cu12") or []]
    [cumls] = [r for r in declared if r.name == "cupy-cuda12x" and r.marker is None]
    ours = _cuda_extra()["cupy-cuda12x"]
    assert {str(s) for s in cumls.specifier} <= {str(s) for s in ours.specifier}
    assert cumls.extras <= ours.extras  # [ctk]: the CUDA components CuPy loads


def test_the_dockerfile_base_is_the_cuda_release_of_the_wheels():
    dockerfile = (ROOT / "docker" / "Dockerfile.gpu").read_text("utf-8")
    base = re.search(r"^ARG CUDA_VERSION=(\d+)\.(\d+)", dockerfile, re.M)
    runtime = metadata.version("nvidia-cuda-runtime-cu12").split(".")[:2]
    assert base is not None and list(base.groups()) == runtime
