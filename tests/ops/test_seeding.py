import numpy as np
import pytest

from gpupix.ops.seeding import kmeans_plus_plus
from tests.backends.standins import to_numpy


def _blobs(rng: np.random.Generator, centres: int, per: int = 50) -> np.ndarray:
    """``centres`` tight clusters 100 apart along a diagonal, ``per`` points each."""
    spots = np.arange(centres, dtype=np.float64)[:, None] * np.array([100.0, 60.0, 30.0])
    return (spots[:, None, :] + rng.normal(0, 1, (centres, per, 3))).reshape(-1, 3)


def test_one_seed_in_each_well_separated_cluster(xp):
    rng = np.random.default_rng(1)
    points = _blobs(rng, 8)
    seeds = to_numpy(kmeans_plus_plus(xp.asarray(points), xp.asarray(np.ones(len(points))), 8))
    clusters = {int(np.argmin(np.abs(np.arange(8) * 100.0 - s[0]))) for s in seeds}
    assert clusters == set(range(8))


def test_seeds_are_distinct_rows_of_the_points(xp):
    rng = np.random.default_rng(2)
    points = rng.uniform(0, 255, (300, 6)).astype(np.float32)
    seeds = to_numpy(kmeans_plus_plus(xp.asarray(points), xp.asarray(rng.uniform(1, 9, 300)), 40))
    assert seeds.shape == (40, 6) and seeds.dtype == np.float32
    rows = {tuple(row) for row in points}
    assert all(tuple(s) in rows for s in seeds)
    assert len({tuple(s) for s in seeds}) == 40


def test_same_seed_same_rows_and_numpy_equals_strict(xp):
    rng = np.random.default_rng(3)
    points, weights = rng.normal(0, 50, (500, 3)), rng.uniform(0, 5, 500)
    first = to_numpy(kmeans_plus_plus(xp.asarray(points), xp.asarray(weights), 16, seed=7))
    again = to_numpy(kmeans_plus_plus(xp.asarray(points), xp.asarray(weights), 16, seed=7))
    plain = kmeans_plus_plus(points, weights, 16, seed=7)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, plain)
    other = kmeans_plus_plus(points, weights, 16, seed=8)
    assert not np.array_equal(plain, other)


def test_weightless_points_are_never_chosen(xp):
    rng = np.random.default_rng(4)
    points = rng.normal(0, 50, (200, 3))
    weights = np.zeros(200)
    weights[::4] = 1.0  # only every fourth point counts
    seeds = to_numpy(kmeans_plus_plus(xp.asarray(points), xp.asarray(weights), 30))
    counted = {tuple(row) for row in points[::4]}
    assert all(tuple(s) in counted for s in seeds)


def test_heavy_points_are_preferred():
    """A point holding most of the weight is the likeliest first pick, over many seeds."""
    rng = np.random.default_rng(5)
    points = rng.normal(0, 50, (100, 3))
    weights = np.ones(100)
    weights[17] = 1000.0
    firsts = [kmeans_plus_plus(points, weights, 1, seed=s)[0] for s in range(40)]
    share = np.mean([np.array_equal(f, points[17]) for f in firsts])
    assert share > 0.8


@pytest.mark.parametrize("k", [0, 11])
def test_k_outside_the_points_is_refused(k):
    with pytest.raises(ValueError, match="k="):
        kmeans_plus_plus(np.zeros((10, 3)), np.ones(10), k)
