import numpy as np
import pytest
from scipy.spatial import cKDTree

from gpupix.backends import CpuBackend
from gpupix.backends.cpu import nearest_row


@pytest.mark.parametrize("rows, dims", [(1, 3), (16, 3), (64, 6), (256, 6), (700, 4)])
def test_nearest_row_agrees_with_a_kd_tree(rows, dims):
    rng = np.random.default_rng(rows)
    fit = rng.uniform(0, 255, (rows, dims))
    queries = rng.uniform(0, 255, (5000, dims))
    distances, indices = nearest_row(fit, queries, block=4096)  # several blocks
    expected_d, expected_i = cKDTree(fit).query(queries, k=1)
    np.testing.assert_array_equal(indices[:, 0], expected_i)
    np.testing.assert_allclose(distances[:, 0], expected_d, rtol=1e-6)
    assert distances.dtype == np.float32 and indices.dtype == np.int64
    assert distances.shape == indices.shape == (5000, 1)


def test_a_tie_goes_to_the_lower_index():
    fit = np.array([[0.0, 0, 0], [10, 0, 0], [0, 0, 0]])  # rows 0 and 2 are one colour
    _, indices = nearest_row(fit, np.array([[5.0, 0, 0], [1, 0, 0], [9, 0, 0]]))
    assert indices[:, 0].tolist() == [0, 0, 1]  # 5 is halfway: the lower index


def test_the_backend_uses_it_for_palettes_only(monkeypatch):
    import gpupix.backends.cpu as cpu

    calls = []
    monkeypatch.setattr(cpu, "nearest_row", lambda f, q: calls.append(len(f)) or (
        np.zeros((len(q), 1), np.float32), np.zeros((len(q), 1), np.int64)))
    backend = CpuBackend()
    rng = np.random.default_rng(0)
    backend.kneighbors(rng.random((256, 3)), rng.random((10, 3)), k=1)
    backend.kneighbors(rng.random((5000, 3)), rng.random((10, 3)), k=1)  # a KD-tree
    backend.kneighbors(rng.random((256, 3)), rng.random((10, 3)), k=3)  # a KD-tree
    assert calls == [256]
