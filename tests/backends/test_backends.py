import sys

import numpy as np
import pytest

from gpupix.backends import CpuBackend, CudaBackend, backend_status, get_backend
from gpupix.errors import BackendUnavailableError, ConfigError
from gpupix.ops.quantize import quantize
from tests.backends.standins import FakeDeviceArray, make_fake_cupy
from tests.conftest import gradient_image


def test_importing_gpupix_imports_no_gpu_library_or_dask():
    import subprocess

    code = ("import sys, gpupix, gpupix.cli, gpupix.pipeline, gpupix.backends;"
            "bad=[m for m in ('cupy','cuml','dask','distributed') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_auto_is_cpu_without_cuda_and_status_says_why():
    if CudaBackend.available():
        pytest.skip("a GPU is usable here")
    assert get_backend("auto").name == "cpu"
    assert backend_status()["cuda"]
    with pytest.raises(BackendUnavailableError, match="cuda"):
        get_backend("cuda")


def test_unknown_backend_name_is_a_config_error():
    with pytest.raises(ConfigError, match="backend"):
        get_backend("tpu")


def check_kneighbors(backend):
    """k=4 among 200 random points: exact indices; distances within the float32 bound."""
    rng = np.random.default_rng(0)
    fit, query = rng.random((200, 2)) * 50, rng.random((30, 2)) * 50
    distances, indices = backend.kneighbors(backend.to_device(fit), backend.to_device(query), k=4)
    distances, indices = backend.to_host(distances), backend.to_host(indices)
    brute = np.linalg.norm(query[:, None] - fit[None], axis=-1)
    expected = np.argsort(brute, axis=1)[:, :4]
    np.testing.assert_array_equal(indices, expected)  # no near-tie among these points
    true = np.take_along_axis(brute, expected, 1)
    if backend.exact_kneighbors:
        np.testing.assert_allclose(distances, true, rtol=1e-6)
    else:  # cuML: |q|^2 + |f|^2 - 2 q.f in float32; its error in d^2 scales with the norms
        eps = np.finfo(np.float32).eps
        bound = 2 * (2 + 3) * eps * ((query**2).sum(1)[:, None] + (fit**2).sum(1).max())
        assert np.all(np.abs(distances.astype(float) ** 2 - true**2) <= bound)
    assert distances.dtype == np.float32 and indices.dtype == np.int64


def test_kneighbors_matches_brute_force(backend):
    check_kneighbors(backend)


def test_float32_standin_kneighbors_within_the_stated_bound(fake_cuda):
    check_kneighbors(fake_cuda)


def test_kneighbors_k1_keeps_neighbour_axis(backend):
    fit = backend.to_device(np.array([[0.0, 0.0], [10.0, 0.0]]))
    distances, indices = backend.kneighbors(fit, backend.to_device(np.array([[9.0, 0.0]])), k=1)
    assert backend.to_host(indices).tolist() == [[1]]
    assert backend.to_host(distances).shape == (1, 1)


def test_weighted_kmeans_finds_weighted_centres(backend):
    X = np.array([[0.0], [1.0], [10.0], [11.0]], dtype=np.float32)
    w = np.array([1.0, 3.0, 1.0, 1.0], dtype=np.float32)
    centres, labels = backend.kmeans(backend.to_device(X), n_clusters=2,
                                     sample_weight=backend.to_device(w), seed=0)
    centres = np.sort(backend.to_host(centres).ravel())
    np.testing.assert_allclose(centres, [0.75, 10.5], atol=1e-5)
    assert backend.to_host(labels).dtype == np.int32



def test_cuda_probe_reports_missing_device(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", make_fake_cupy(device_count=0))
    assert "0 CUDA devices" in CudaBackend.unavailable_reason()
    assert not CudaBackend.available()


def test_cuda_glue_runs_quantize_with_standins(fake_cuda):
    assert fake_cuda.describe()["device"] == "Fake GPU"
    image = gradient_image()
    on_device = fake_cuda.to_device(image)
    assert isinstance(on_device, FakeDeviceArray)
    result = quantize(on_device, k=8, backend=fake_cuda, color_space="oklab", seed=0)
    palette, indices = fake_cuda.to_host(result.palette), fake_cuda.to_host(result.indices)
    reference = quantize(image, k=8, backend=CpuBackend(), color_space="oklab", seed=0)
    # cuML's and scikit-learn's K-means differ in init, so compare quality, not bytes
    error = np.mean((palette[indices].astype(float) - image) ** 2)
    reference_error = np.mean((reference.palette[reference.indices].astype(float) - image) ** 2)
    assert palette.dtype == np.uint8 and indices.shape == image.shape[:2]
    assert error <= reference_error * 1.1
    fake_cuda.synchronize()
    assert "synchronize" in sys.modules["cupy"].calls
