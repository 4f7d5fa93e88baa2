import numpy as np
import pytest
from sklearn.cluster import KMeans

from gpupix.backends import CpuBackend
from gpupix.backends.lloyd import weighted_lloyd


def _problem(seed: int, n: int = 3000, d: int = 6, k: int = 32):
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.normal(rng.uniform(0, 255, d), rng.uniform(2, 30), (n // 10, d))
                             for _ in range(10)]).astype(np.float32)
    weights = rng.integers(1, 50, len(points)).astype(np.float64)
    init = points[rng.choice(len(points), k, replace=False)]
    return points, weights, init


def _inertia(points, weights, centres, labels):
    return float(np.sum(weights * np.sum((points - centres[labels]) ** 2, axis=1)))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 8, 64])
def test_same_fit_as_scikit_learn_lloyd_from_the_same_start(seed, k):
    points, weights, init = _problem(seed, k=k)
    centres, labels = weighted_lloyd(points, weights, init, max_iter=50)
    oracle = KMeans(k, init=init, n_init=1, max_iter=50, tol=1e-4, algorithm="lloyd").fit(
        points, sample_weight=weights)
    ours = _inertia(points, weights, centres, labels)
    assert ours == pytest.approx(oracle.inertia_, rel=2e-3)
    assert centres.dtype == np.float32 and labels.dtype == np.int32
    assert centres.shape == init.shape and labels.shape == (len(points),)


def test_labels_are_the_nearest_centres():
    points, weights, init = _problem(3, k=40)
    centres, labels = weighted_lloyd(points, weights, init, max_iter=7)
    squared = ((points[:, None, :].astype(np.float64) - centres[None]) ** 2).sum(axis=2)
    best = squared.min(axis=1)
    # the nearest, up to float32 rounding of a near tie
    assert np.all(squared[np.arange(len(points)), labels] <= best * (1 + 1e-5) + 1e-3)


def test_centres_are_weighted_means_of_their_points_at_convergence():
    points, weights, init = _problem(4, k=16)
    centres, labels = weighted_lloyd(points, weights, init, max_iter=500, tol=0.0)
    for c in range(16):
        mine = labels == c
        mean = np.average(points[mine], axis=0, weights=weights[mine])
        np.testing.assert_allclose(centres[c], mean, rtol=1e-4, atol=1e-3)


def test_weights_pull_the_centre():
    points = np.array([[0.0], [10.0]], np.float32)
    centres, _ = weighted_lloyd(points, np.array([3.0, 1.0]), np.array([[5.0]]), max_iter=5)
    assert centres[0, 0] == pytest.approx(2.5)


def test_an_emptied_centre_moves_to_a_point():
    points = np.array([[0.0, 0], [1, 0], [100, 0], [101, 0]], np.float32)
    init = np.array([[0.5, 0], [100.5, 0], [1000, 1000]], np.float32)  # third owns nothing
    centres, labels = weighted_lloyd(points, None, init, max_iter=10)
    assert np.all(np.isfinite(centres))
    assert len(np.unique(labels)) == 3  # the empty one took a point of its own


def test_max_iter_bounds_the_work():
    points, weights, init = _problem(5, k=32)
    one, _ = weighted_lloyd(points, weights, init, max_iter=1)
    many, _ = weighted_lloyd(points, weights, init, max_iter=100)
    assert not np.allclose(one, many)


def test_backend_kmeans_seeds_itself_and_repeats():
    points, weights, _ = _problem(6, k=8)
    backend = CpuBackend()
    first = backend.kmeans(points, n_clusters=8, sample_weight=weights, seed=3)
    again = backend.kmeans(points, n_clusters=8, sample_weight=weights, seed=3)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
