"""Every cuML call gpupix makes, with its exact arguments, against the real cuML classes.

The calls are not listed by hand: the cuda backend's own code runs (its K-means with both
kinds of ``init``, its neighbour search) with spies in place of cuML that record each
constructor and method call and each attribute read; then every recorded call must bind to
``inspect.signature`` of the real class, and every attribute must exist on it. The real
estimators are also constructed with the recorded keywords (that needs no GPU).
"""

from __future__ import annotations

import inspect
import sys

import array_api_compat.numpy as xp_numpy
import numpy as np
import pytest

from tests.backends.standins import make_fake_cuml, make_fake_cupy
from tests.contract._real import binds, real

pytestmark = pytest.mark.contract

real("cupy")
cuml = real("cuml")
from cuml.cluster import KMeans  # noqa: E402
from cuml.neighbors import NearestNeighbors  # noqa: E402

REAL = {"KMeans": KMeans, "NearestNeighbors": NearestNeighbors}


def _spy(cls, calls: list, reads: list):
    """A subclass of the stand-in ``cls`` that records calls and public attribute reads."""
    name = cls.__name__

    class Spy(cls):
        def __init__(self, *args, **kwargs):
            calls.append((name, "__init__", args, kwargs))
            super().__init__(*args, **kwargs)

        def __getattribute__(self, attribute):
            value = super().__getattribute__(attribute)
            if not attribute.startswith("_") and not callable(value):
                reads.append((name, attribute))
            return value

    for method in ("fit", "kneighbors"):
        if hasattr(cls, method):
            def wrapper(self, *args, _method=method, **kwargs):
                calls.append((name, _method, args, kwargs))
                return getattr(cls, _method)(self, *args, **kwargs)

            setattr(Spy, method, wrapper)
    Spy.__name__ = name
    return Spy


@pytest.fixture(scope="module")
def recorded():
    """(calls, reads) of the cuda backend's kmeans (default and array init) and kneighbors."""
    from gpupix.backends import cuda as cuda_module

    calls: list = []
    reads: list = []
    cupy = make_fake_cupy()
    fake_cuml, cluster, neighbors = make_fake_cuml()
    cluster.KMeans = _spy(cluster.KMeans, calls, reads)
    neighbors.NearestNeighbors = _spy(neighbors.NearestNeighbors, calls, reads)
    patch = pytest.MonkeyPatch()
    for name, module in {"cupy": cupy, "cuml": fake_cuml, "cuml.cluster": cluster,
                         "cuml.neighbors": neighbors}.items():
        patch.setitem(sys.modules, name, module)
    patch.setattr(cuda_module, "_modules", lambda: (cupy, fake_cuml, xp_numpy))
    try:
        backend = cuda_module.CudaBackend()
        rng = np.random.default_rng(0)
        X = backend.to_device(rng.random((60, 3)).astype(np.float32))
        weights = backend.to_device(rng.random(60).astype(np.float32) + 0.1)
        backend.kmeans(X, n_clusters=4, sample_weight=weights, seed=1, max_iter=20)
        backend.kmeans(X, n_clusters=4, seed=1, init=X[:4])
        backend.kmeans(X, n_clusters=4)  # no weights
        backend.kneighbors(X, X[:7], k=3)
    finally:
        patch.undo()
    return calls, reads


def test_the_backend_was_recorded(recorded):
    calls, reads = recorded
    made = {(name, method) for name, method, _, _ in calls}
    assert made == {("KMeans", "__init__"), ("KMeans", "fit"),
                    ("NearestNeighbors", "__init__"), ("NearestNeighbors", "fit"),
                    ("NearestNeighbors", "kneighbors")}
    assert {attribute for _, attribute in reads} >= {"cluster_centers_", "labels_"}


def test_every_call_binds_to_the_real_signature(recorded):
    calls, _ = recorded
    problems = [binds(getattr(REAL[name], method), args, kwargs, method=True)
                for name, method, args, kwargs in calls]
    assert [p for p in problems if p] == []


def test_the_real_estimators_accept_the_recorded_settings(recorded):
    calls, _ = recorded
    for name, method, args, kwargs in calls:
        if method != "__init__":
            continue
        model = REAL[name](*args, **kwargs)  # stores parameters; no device needed
        params = model.get_params()
        for key, value in kwargs.items():
            if isinstance(value, str | int | float):
                assert params[key] == value, (name, key)


def test_the_string_options_are_ones_cuml_documents(recorded):
    calls, _ = recorded
    inits = [kw["init"] for name, m, _, kw in calls if name == "KMeans" and m == "__init__"]
    # gpupix seeds K-means itself (the same K-means++ on both backends) and passes the
    # centres as an array, which cuML documents as a starting point
    assert inits and not any(isinstance(init, str) for init in inits)
    assert "array" in KMeans.__doc__ and "init" in KMeans.__doc__
    neighbour_settings = [kw for name, m, _, kw in calls
                          if name == "NearestNeighbors" and m == "__init__"]
    assert all(kw["algorithm"] == "brute" and kw["metric"] == "euclidean"
               for kw in neighbour_settings)
    assert "'brute'" in NearestNeighbors.__doc__
    searches = [kw for name, m, _, kw in calls if m == "kneighbors"]
    assert all("two_pass_precision" not in kw for kw in searches)


def test_every_attribute_read_exists_on_the_real_class(recorded):
    _, reads = recorded
    missing = []
    for name, attribute in sorted(set(reads)):
        if attribute == "n_neighbors" and name == "NearestNeighbors":  # the stand-in's own
            continue
        try:
            inspect.getattr_static(REAL[name], attribute)
        except AttributeError:
            missing.append(f"{name}.{attribute}")
    assert missing == []
