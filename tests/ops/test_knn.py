"""Exact neighbours on a backend whose distances are float32, as cuML's are.

The cuda stand-in computes cuML's euclidean brute force (|q|^2 + |f|^2 - 2 q.f in float32);
these tests show that this swaps neighbours at pixel coordinates, and that the re-rank in
``exact_kneighbors`` (and so the inpaint op) gives the cpu backend's exact answer on it.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpupix.backends import CpuBackend
from gpupix.ops._knn import exact_kneighbors
from gpupix.ops.inpaint import _jitter, inpaint


def jittered_grid(rng, size=64, origin=240, fraction=0.5):
    """Known pixels of a size x size window at coordinates near ``origin`` (as a tile's halo
    region far from the image corner), with inpaint's fixed offsets, and the missing ones."""
    rows, cols = np.mgrid[origin:origin + size, origin:origin + size]
    known = rng.random(rows.shape) >= fraction
    kr, kc = rows[known].astype(float), cols[known].astype(float)
    jy, jx = _jitter(np, kr, kc)
    fit = np.stack([kr + jy, kc + jx], axis=1)
    queries = np.stack([rows[~known], cols[~known]], axis=1).astype(float)
    return fit, queries


def float64_neighbours(fit, queries, k):
    squared = ((queries[:, None, :] - fit[None, :, :]) ** 2).sum(axis=2)
    order = np.argsort(squared, axis=1, kind="stable")[:, :k]
    return np.sqrt(np.take_along_axis(squared, order, axis=1)), order


def test_the_float32_standin_swaps_neighbours_at_pixel_coordinates(fake_cuda):
    fit, queries = jittered_grid(np.random.default_rng(0))
    _, expected = float64_neighbours(fit, queries, 8)
    _, indices = fake_cuda.kneighbors(fake_cuda.to_device(fit), fake_cuda.to_device(queries),
                                      k=8)
    swapped = np.any(fake_cuda.to_host(indices) != expected, axis=1).sum()
    assert swapped > 10  # the device's float32 arithmetic is really being emulated


@pytest.mark.parametrize("extra", [0, 4])
def test_exact_kneighbors_restores_the_float64_order(fake_cuda, extra):
    fit, queries = jittered_grid(np.random.default_rng(0))
    expected_d, expected_i = float64_neighbours(fit, queries, 8)
    distances, indices = exact_kneighbors(fake_cuda, fake_cuda.to_device(fit),
                                          fake_cuda.to_device(queries), k=8, extra=extra)
    np.testing.assert_array_equal(fake_cuda.to_host(indices), expected_i)
    np.testing.assert_allclose(fake_cuda.to_host(distances), expected_d, rtol=1e-12)
    cpu_d, cpu_i = exact_kneighbors(CpuBackend(), fit, queries, k=8)
    np.testing.assert_array_equal(cpu_i, expected_i)


def test_exact_kneighbors_with_k_equal_to_every_row(fake_cuda):
    fit, queries = jittered_grid(np.random.default_rng(1), size=4)
    count = fit.shape[0]
    _, indices = exact_kneighbors(fake_cuda, fake_cuda.to_device(fit),
                                  fake_cuda.to_device(queries), k=count)
    np.testing.assert_array_equal(fake_cuda.to_host(indices),
                                  float64_neighbours(fit, queries, count)[1])


@pytest.fixture(scope="module")
def astronaut_crop():
    data = pytest.importorskip("skimage.data")
    image = np.ascontiguousarray(data.astronaut()[100:260, 180:340])
    missing = np.random.default_rng(3).random(image.shape[:2]) < 0.5
    return image, missing


@pytest.mark.slow
@pytest.mark.parametrize("method", ["knn", "knn_linear"])
def test_inpaint_on_the_float32_standin_is_the_cpu_result_at_any_tile(fake_cuda,
                                                                      astronaut_crop, method):
    """160x160 of astronaut, half the pixels dropped: the neighbour sets are exact, so the fill
    is the cpu backend's, byte for byte, at every tile size. (``knn_linear`` on the cpu itself
    differs by 1 level in a handful of values between tile sizes: float32 rounding of the fit
    in differently shaped batches, not a neighbour choice; ``knn`` does not.)"""
    image, missing = astronaut_crop
    results = []
    for tile in (160, 48):
        cpu = inpaint(image, missing, backend=CpuBackend(), k=8, method=method, tile=tile)
        out = fake_cuda.to_host(inpaint(fake_cuda.to_device(image),
                                        fake_cuda.to_device(missing), backend=fake_cuda, k=8,
                                        method=method, tile=tile))
        np.testing.assert_array_equal(out, cpu, err_msg=f"tile {tile}")
        results.append(out)
    if method == "knn":
        np.testing.assert_array_equal(results[0], results[1])


def test_the_rerank_is_array_api_only():
    """The re-rank on array_api_strict's device1 (np.asarray refuses, as on CuPy)."""
    from tests.backends.standins import StrictBackend, float32_expanded_kneighbors, to_numpy

    class Float32Strict(StrictBackend):
        exact_kneighbors = False

        def kneighbors(self, fit_X, query_X, *, k):
            distances, indices = float32_expanded_kneighbors(to_numpy(fit_X),
                                                             to_numpy(query_X), k)
            return self.to_device(distances), self.to_device(indices)

    backend = Float32Strict()
    fit, queries = jittered_grid(np.random.default_rng(2), size=32)
    _, indices = exact_kneighbors(backend, backend.to_device(fit), backend.to_device(queries),
                                  k=8)
    np.testing.assert_array_equal(backend.to_host(indices),
                                  float64_neighbours(fit, queries, 8)[1])
