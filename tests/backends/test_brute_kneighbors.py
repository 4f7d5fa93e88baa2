import numpy as np
import pytest
from scipy.spatial import cKDTree

from gpupix.backends.cpu import BRUTE_FORCE_DIMS, CpuBackend, brute_kneighbors


@pytest.mark.parametrize("k", [1, 7, 50])
def test_brute_force_matches_the_kd_tree(k):
    rng = np.random.default_rng(0)
    fit, queries = rng.normal(size=(50, 30)), rng.normal(size=(33, 30))
    distances, indices = brute_kneighbors(fit, queries, k=k, block=200)  # several blocks
    expected_d, expected_i = cKDTree(fit).query(queries, k=k)
    expected_d, expected_i = expected_d.reshape(33, k), expected_i.reshape(33, k)
    np.testing.assert_array_equal(indices, expected_i)
    np.testing.assert_allclose(distances, expected_d, rtol=1e-5)
    assert distances.dtype == np.float32 and indices.dtype == np.int64


def test_cpu_backend_uses_it_in_high_dimensions():
    rng = np.random.default_rng(1)
    fit = rng.normal(size=(40, BRUTE_FORCE_DIMS + 1))
    distances, indices = CpuBackend().kneighbors(fit, fit[:5], k=3)
    np.testing.assert_array_equal(indices[:, 0], np.arange(5))
    np.testing.assert_allclose(distances[:, 0], 0, atol=1e-3)
