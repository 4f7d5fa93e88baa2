"""The CPU stand-ins (tests/backends/standins.py) against what they stand in for.

A stand-in may accept fewer parameters than the real thing, but each it has must exist on
the real one with the same kind (positional, keyword-only) and default, so a test that passes
on the stand-in passes the same arguments the real class takes.
"""

from __future__ import annotations

import inspect

import pytest

from tests.backends.standins import make_fake_cuml, make_fake_cupy
from tests.contract._real import real, resolve

pytestmark = pytest.mark.contract

cupy = real("cupy")
real("cuml")
from cuml.cluster import KMeans  # noqa: E402
from cuml.neighbors import NearestNeighbors  # noqa: E402


def _differences(fake, genuine) -> list[str]:
    fake_params = inspect.signature(fake).parameters
    real_params = inspect.signature(genuine).parameters
    problems = []
    for name, param in fake_params.items():
        if name not in real_params:
            problems.append(f"{name}: not a parameter of the real one")
            continue
        other = real_params[name]
        if param.kind is not other.kind:
            problems.append(f"{name}: {param.kind.description} here, "
                            f"{other.kind.description} in the real one")
        if param.default != other.default:
            problems.append(f"{name}: default {param.default!r} here, {other.default!r} there")
    return problems


@pytest.mark.parametrize("name, real_class, methods", [
    ("KMeans", KMeans, ("__init__", "fit")),
    ("NearestNeighbors", NearestNeighbors, ("__init__", "fit", "kneighbors")),
])
def test_cuml_standins_have_the_real_signatures(name, real_class, methods):
    _, cluster, neighbors = make_fake_cuml()
    fake_class = getattr(cluster if name == "KMeans" else neighbors, name)
    problems = {method: _differences(getattr(fake_class, method), getattr(real_class, method))
                for method in methods}
    assert problems == {method: [] for method in methods}


FAKE_CUPY_NAMES = ("asarray", "asnumpy", "ascontiguousarray", "stack", "float32", "float64",
                   "int32", "int64",
                   "cuda.runtime.getDeviceCount", "cuda.runtime.getDeviceProperties",
                   "cuda.Device", "cuda.get_current_stream")


def test_every_fake_cupy_name_exists_in_cupy():
    fake = make_fake_cupy()
    for dotted in FAKE_CUPY_NAMES:
        resolve(fake, dotted)  # the stand-in has it
        resolve(cupy, dotted)  # and so does CuPy
    public = {n for n in vars(fake) if not n.startswith("_")} - {"calls", "counts"}
    assert public <= {n.split(".")[0] for n in FAKE_CUPY_NAMES}


@pytest.mark.parametrize("function", ["asarray", "asnumpy", "ascontiguousarray"])
def test_fake_cupy_functions_have_the_real_signatures(function):
    assert _differences(getattr(make_fake_cupy(), function), getattr(cupy, function)) == []


def test_the_float32_standin_is_the_formula_cuml_names():
    """cuML maps metric='euclidean' to L2SqrtExpanded (sqrt of |q|^2 + |f|^2 - 2 q.f)."""
    from pathlib import Path

    import cuml.neighbors.nearest_neighbors as module

    source = (Path(module.__file__).parent / "nearest_neighbors.pyx").read_text("utf-8")
    assert '"euclidean": DistanceType.L2SqrtExpanded' in source
