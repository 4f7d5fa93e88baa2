import math

import numpy as np
import pytest

from gpupix.backends import CpuBackend
from gpupix.ops.metrics import psnr
from gpupix.ops.palette_search import (
    HistogramAccumulator,
    HistogramScorer,
    pixel_quality,
    smallest_k,
    smallest_k_histogram,
    sweep_k,
    total_square,
    warm_start,
)
from gpupix.ops.quantize import assign, color_histogram, fit_palette, quantize
from tests.conftest import few_colour_image, gradient_image


def _scorer(backend, image, **options):
    rgb = backend.to_device(image)
    histogram = color_histogram(rgb, bits=6)
    return histogram, HistogramScorer(histogram, backend=backend, color_space="rgb_lab",
                                      square_sum=total_square(rgb), **options)


def test_histogram_psnr_is_the_pixel_psnr(any_backend):
    # every pixel of a bin takes its bin's entry, so one scalar makes the PSNR exact
    image = gradient_image(40, 48)
    histogram, scorer = _scorer(any_backend, image)
    palette = fit_palette(histogram, k=7, backend=any_backend, seed=0)
    fit = scorer.score(palette, k=7)
    labels = any_backend.to_host(assign(histogram, palette, backend=any_backend,
                                        color_space="rgb_lab"))
    quantized = any_backend.to_host(palette)[labels.reshape(image.shape[:2])]
    assert fit.psnr == pytest.approx(psnr(image, quantized), abs=1e-6)


def test_histogram_delta_e_estimate_is_close():
    backend = CpuBackend()
    image = gradient_image(40, 48)
    histogram, scorer = _scorer(backend, image, with_delta_e=True)
    palette = fit_palette(histogram, k=12, backend=backend)
    fit = scorer.score(palette, k=12)
    labels = assign(histogram, palette, backend=backend).reshape(image.shape[:2])
    measured = pixel_quality("delta_e", image, palette, labels)
    assert fit.delta_e == pytest.approx(measured, rel=0.1)  # bin spread is left out


@pytest.mark.slow  # k: auto searches
@pytest.mark.parametrize("colours", [5, 12])
def test_auto_k_finds_the_known_number_of_colours(colours):
    # k colours are exact (PSNR inf); k - 1 must merge two distinct colours
    backend = CpuBackend()
    image, _ = few_colour_image(colours, 48, 48, seed=3)
    result = smallest_k(backend.to_device(image), metric="psnr", goal=60.0, backend=backend,
                        max_k=64)
    assert result.met and result.k == colours
    assert len(result.palette) == colours and math.isinf(result.quality)
    np.testing.assert_array_equal(result.palette[result.indices], image)
    # k - 1 was run as a fixed-k run runs it, and missed
    full = {k: q for k, q, kind in result.tried if kind == "full"}
    assert full[colours - 1] < 60.0
    fixed = quantize(image, k=colours - 1, backend=backend)
    assert psnr(image, fixed.palette[fixed.indices]) < 60.0


@pytest.mark.parametrize("metric, goal", [("psnr", 21.0), ("delta_e", 4.5)])
def test_auto_k_is_minimal_against_fixed_k_runs(metric, goal):
    backend = CpuBackend()
    image = gradient_image(48, 64)
    result = smallest_k(image, metric=metric, goal=goal, backend=backend, max_k=128)
    k = result.k
    assert result.met
    for size, expect_met in ((k, True), (k - 1, False)):  # what a user running k gets
        fixed = quantize(image, k=size, backend=backend)
        quality = pixel_quality(metric, image, fixed.palette, fixed.indices)
        assert (quality >= goal if metric == "psnr" else quality <= goal) is expect_met
        if size == k:
            np.testing.assert_array_equal(fixed.indices, result.indices)
            assert quality == pytest.approx(result.quality)


def test_search_on_a_merged_histogram():
    backend = CpuBackend()
    image = gradient_image(48, 64)
    histogram = color_histogram(image, bits=6)
    result = smallest_k_histogram(histogram, metric="psnr", goal=21.0, backend=backend,
                                  square_sum=total_square(image), max_k=128)
    assert result.met and result.indices is None and 8 < result.k < 128
    scorer = HistogramScorer(histogram, backend=backend, color_space="rgb_lab",
                             square_sum=total_square(image))
    smaller = fit_palette(histogram, k=result.k - 1, backend=backend)
    assert scorer.score(smaller, k=result.k - 1).psnr < 21.0


def test_unreachable_target_gives_max_k_and_says_so():
    backend = CpuBackend()
    image = gradient_image(48, 64)
    result = smallest_k(image, metric="psnr", goal=60.0, backend=backend, max_k=8)
    assert not result.met and result.k == 8 and result.quality < 60.0


def test_warm_start_grows_and_shrinks():
    backend = CpuBackend()
    histogram, scorer = _scorer(backend, gradient_image(40, 48))
    fit = scorer.score(fit_palette(histogram, k=8, backend=backend), k=8)
    assert warm_start(scorer, fit, 12).shape == (12, 3)
    smaller = warm_start(scorer, fit, 5)
    assert smaller.shape == (5, 3)
    # the entries kept are the ones holding the most pixels
    held = np.bincount(fit.labels, weights=scorer.counts, minlength=len(fit.palette))
    kept = fit.palette[np.sort(np.argsort(-held, kind="stable")[:5])]
    np.testing.assert_allclose(smaller, kept)


def test_sweep_has_the_report_shape_and_falls():
    backend = CpuBackend()
    image = gradient_image(40, 48)
    rgb = backend.to_device(image)
    curve = sweep_k(color_histogram(rgb, bits=6), backend=backend, square_sum=total_square(rgb),
                    max_k=24)
    assert set(curve) == {"k", "inertia", "psnr"}
    assert curve["k"] == [2, 4, 8, 16, 24]
    assert len(curve["inertia"]) == len(curve["psnr"]) == 5
    assert all(b <= a * 1.01 for a, b in zip(curve["inertia"], curve["inertia"][1:], strict=False))
    assert curve["psnr"][-1] > curve["psnr"][0] + 6


def test_accumulated_histogram_equals_the_whole_one():
    backend = CpuBackend()
    image = gradient_image(40, 48)
    accumulator = HistogramAccumulator()
    for part in (image[:15], image[15:]):
        rgb = backend.to_device(np.ascontiguousarray(part))
        accumulator.add(color_histogram(rgb, bits=6), backend, total_square(rgb))
    merged = accumulator.histogram(backend)
    whole = color_histogram(image, bits=6)
    np.testing.assert_array_equal(merged.occupied, whole.occupied)
    np.testing.assert_allclose(merged.counts, whole.counts)
    np.testing.assert_allclose(merged.colours, whole.colours, rtol=1e-5)
    assert accumulator.square_sum == pytest.approx(total_square(image))


@pytest.mark.slow  # on array_api_strict: 15 s
def test_search_runs_on_any_array_namespace(any_backend):
    # the strict namespace refuses NumPy shortcuts, as CuPy does
    image, _ = few_colour_image(5, 24, 24, seed=3)
    weights = np.ones(24 * 24, bool)
    weights[:10] = False  # some pixels left out (transparent)
    result = smallest_k(any_backend.to_device(image), metric="psnr", goal=60.0,
                        backend=any_backend, weights=any_backend.to_device(weights), max_k=16)
    assert result.met and result.k <= 5
    palette = any_backend.to_host(result.palette)
    indices = any_backend.to_host(result.indices)
    visible = weights.reshape(24, 24)
    np.testing.assert_array_equal(palette[indices][visible], image[visible])
    histogram = color_histogram(any_backend.to_device(gradient_image(16, 16)), bits=6)
    scorer = HistogramScorer(histogram, backend=any_backend, color_space="oklab",
                             square_sum=total_square(any_backend.to_device(gradient_image(16, 16))),
                             with_delta_e=True)
    fit = scorer.score(fit_palette(histogram, k=4, backend=any_backend), k=4)
    assert warm_start(scorer, fit, 7).shape == (7, 3) and warm_start(scorer, fit, 3).shape == (3, 3)


def test_warm_start_draws_on_the_host_after_one_download(fake_cuda):
    """Growing 8 -> 40 centres: one download, one upload of the chosen bins, no per-centre
    wait for the device (it was two: the running total and the search)."""
    import sys

    histogram, scorer = _scorer(fake_cuda, gradient_image(40, 48))
    fit = scorer.score(fit_palette(histogram, k=8, backend=fake_cuda), k=8)
    counts = sys.modules["cupy"].counts
    counts.clear()
    grown = warm_start(scorer, fit, 40)
    assert grown.shape == (40, 3)
    assert dict(counts) == {"download": 1, "upload": 1}
    cpu_histogram, cpu_scorer = _scorer(CpuBackend(), gradient_image(40, 48))
    cpu_fit = cpu_scorer.score(fit_palette(cpu_histogram, k=8, backend=CpuBackend()), k=8)
    if np.array_equal(fake_cuda.to_host(fit.palette), cpu_fit.palette):  # same K-means
        np.testing.assert_array_equal(fake_cuda.to_host(grown),
                                      warm_start(cpu_scorer, cpu_fit, 40))
