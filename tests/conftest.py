"""Shared fixtures: backends (cpu, cuda when usable), array namespaces, synthetic images."""

from __future__ import annotations

import array_api_compat.numpy as xp_numpy
import array_api_strict
import numpy as np
import pytest

from gpupix.backends import CpuBackend, CudaBackend
from tests.backends.standins import StrictBackend


def _cuda_param():
    reason = CudaBackend.unavailable_reason()
    marks = [pytest.mark.gpu]
    if reason is not None:
        marks.append(pytest.mark.skip(reason=f"cuda backend unusable: {reason}"))
    return pytest.param("cuda", marks=marks)


@pytest.fixture(params=["cpu", _cuda_param()])
def backend(request):
    """Every real backend; cuda skips with the reason when no GPU stack answers."""
    return CpuBackend() if request.param == "cpu" else CudaBackend()


@pytest.fixture(params=["cpu", "strict", _cuda_param()])
def any_backend(request):
    """Real backends plus the array_api_strict one, for ops that must not lean on NumPy."""
    if request.param == "cpu":
        return CpuBackend()
    if request.param == "strict":
        return StrictBackend()
    return CudaBackend()


@pytest.fixture
def fake_cuda(monkeypatch):
    """The cuda backend with CuPy and cuML replaced by CPU stand-ins, so its glue runs in CI."""
    import sys

    from gpupix.backends import cuda as cuda_module
    from tests.backends.standins import make_fake_cuml, make_fake_cupy, make_fake_cupyx_ndimage

    cupy = make_fake_cupy()
    cuml, cluster, neighbors = make_fake_cuml()
    for name, module in {"cupy": cupy, "cuml": cuml, "cuml.cluster": cluster,
                         "cuml.neighbors": neighbors, **make_fake_cupyx_ndimage(cupy)}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(cuda_module, "_modules", lambda: (cupy, cuml, xp_numpy))
    return CudaBackend()


@pytest.fixture(params=["numpy", "strict"])
def xp(request):
    return xp_numpy if request.param == "numpy" else array_api_strict


def gradient_image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient with mild noise: many distinct colours."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([255 * x / max(width - 1, 1), 255 * y / max(height - 1, 1),
                      128 + 100 * np.sin(x / 7.0) * np.cos(y / 5.0)], axis=-1)
    image += rng.normal(0, 4, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def few_colour_image(colours: int = 5, height: int = 40, width: int = 40, seed: int = 1
                     ) -> tuple[np.ndarray, np.ndarray]:
    """An image made of exactly ``colours`` distinct colours, and that palette."""
    rng = np.random.default_rng(seed)
    palette = rng.choice(256, size=(colours, 3)).astype(np.uint8)
    while len(np.unique(palette, axis=0)) < colours:
        palette = rng.choice(256, size=(colours, 3)).astype(np.uint8)
    labels = rng.integers(0, colours, size=(height, width))
    labels.ravel()[:colours] = np.arange(colours)  # every colour present
    return palette[labels], palette


@pytest.fixture
def gradient():
    return gradient_image()


def pytest_collection_modifyitems(items):
    """Tests that send signals to whole `gpupix run` processes are marked ``signals`` (slow
    to start; `make test-fast` leaves them out with the ``slow`` and ``browser`` ones)."""
    for item in items:
        if item.path.name == "test_interrupt.py":
            item.add_marker(pytest.mark.signals)


@pytest.fixture(scope="module")
def dask_cluster():
    """A local Dask cluster (two one-thread worker processes) for one test module; closed
    after it, so no later test sees its connections."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        yield cluster


def builtin_jobs() -> set[str]:
    """The job kinds gpupix ships (the tests register an example kind of their own)."""
    from gpupix.jobs import JOBS

    return {name for name, job in JOBS.items() if job.__module__.startswith("gpupix.")}
