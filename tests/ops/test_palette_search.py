import math

import numpy as np
import pytest

from gpupix.backends import CpuBackend
from gpupix.ops.metrics import psnr
from gpupix.ops.palette_search import (
    HistogramAccumulator,
    HistogramScorer,
    smallest_k,
    sweep_k,
    total_square,
    warm_start,
)
from gpupix.ops.quantize import assign, colour_histogram, fit_palette
from tests.conftest import few_colour_image, gradient_image


def _scorer(backend, image, **options):
    rgb = backend.to_device(image)
    histogram = colour_histogram(rgb)
    return histogram, HistogramScorer(histogram, backend=backend, color_space="oklab",
                                      square_sum=total_square(rgb), **options)


def test_histogram_psnr_is_the_pixel_psnr(any_backend):
    # every pixel of a bin takes its bin's entry, so one scalar makes the PSNR exact
    image = gradient_image(40, 48)
    histogram, scorer = _scorer(any_backend, image)
    palette = fit_palette(histogram, k=7, backend=any_backend, seed=0)
    fit = scorer.score(palette, k=7)
    labels = any_backend.to_host(assign(histogram, palette, backend=any_backend))
    quantized = any_backend.to_host(palette)[labels.reshape(image.shape[:2])]
    assert fit.psnr == pytest.approx(psnr(image, quantized), abs=1e-6)


def test_histogram_delta_e_estimate_is_close():
    backend = CpuBackend()
    image = gradient_image(40, 48)
    histogram, scorer = _scorer(backend, image, with_delta_e=True)
    palette = fit_palette(histogram, k=12, backend=backend)
    fit = scorer.score(palette, k=12)
    from gpupix.jobs.quantize import pixel_quality

    labels = assign(histogram, palette, backend=backend).reshape(image.shape[:2])
    measured = pixel_quality("delta_e", image, palette[labels], None)
    assert fit.delta_e == pytest.approx(measured, rel=0.1)  # bin spread is left out


@pytest.mark.parametrize("colours", [5, 12])
def test_auto_k_finds_the_known_number_of_colours(colours):
    # k colours are exact (PSNR inf); k - 1 must merge two distinct colours
    backend = CpuBackend()
    image, _ = few_colour_image(colours, 48, 48, seed=3)
    rgb = backend.to_device(image)
    histogram = colour_histogram(rgb)
    result = smallest_k(histogram, metric="psnr", goal=60.0, backend=backend,
                        square_sum=total_square(rgb), max_k=64)
    assert result.met and result.fit.k == colours
    assert len(result.fit.palette) == colours and math.isinf(result.fit.psnr)
    # k - 1 was fitted as a fixed-k run fits it, and misses
    full = {k: q for k, q, kind in result.tried if kind == "full"}
    assert full[colours - 1] < 60.0
    fixed = fit_palette(histogram, k=colours - 1, backend=backend)
    labels = assign(histogram, fixed, backend=backend).reshape(image.shape[:2])
    assert psnr(image, fixed[labels]) < 60.0


def test_auto_k_is_minimal_for_a_psnr_target_on_a_gradient():
    backend = CpuBackend()
    image = gradient_image(48, 64)
    rgb = backend.to_device(image)
    histogram = colour_histogram(rgb)
    result = smallest_k(histogram, metric="psnr", goal=21.0, backend=backend,
                        square_sum=total_square(rgb), max_k=128)
    k = result.fit.k
    assert result.met and result.fit.psnr >= 21.0
    for size, expect_met in ((k, True), (k - 1, False)):  # the fixed-k runs agree
        palette = fit_palette(histogram, k=size, backend=backend)
        labels = assign(histogram, palette, backend=backend).reshape(image.shape[:2])
        assert (psnr(image, palette[labels]) >= 21.0) is expect_met


def test_delta_e_target_is_verified_on_pixels():
    backend = CpuBackend()
    image = gradient_image(48, 64)
    rgb = backend.to_device(image)
    histogram = colour_histogram(rgb)
    from gpupix.jobs.quantize import pixel_quality

    def verify(fit):
        labels = assign(histogram, fit.palette, backend=backend).reshape(image.shape[:2])
        return pixel_quality("delta_e", image, fit.palette[labels], None)

    result = smallest_k(histogram, metric="delta_e", goal=4.5, backend=backend,
                        square_sum=total_square(rgb), max_k=128, verify=verify)
    assert result.met and result.verified is not None and result.verified <= 4.5


def test_unreachable_target_gives_max_k_and_says_so():
    backend = CpuBackend()
    image = gradient_image(48, 64)
    rgb = backend.to_device(image)
    result = smallest_k(colour_histogram(rgb), metric="psnr", goal=60.0, backend=backend,
                        square_sum=total_square(rgb), max_k=8)
    assert not result.met and result.fit.k == 8 and result.fit.psnr < 60.0


def test_warm_start_grows_and_shrinks():
    backend = CpuBackend()
    histogram, scorer = _scorer(backend, gradient_image(40, 48))
    fit = scorer.score(fit_palette(histogram, k=8, backend=backend), k=8)
    assert warm_start(scorer, fit, 12).shape == (12, 3)
    smaller = warm_start(scorer, fit, 5)
    assert smaller.shape == (5, 3)
    # the entries kept are the ones holding the most pixels
    held = np.bincount(fit.labels, weights=scorer.counts, minlength=len(fit.palette))
    from gpupix.ops.color import rgb_to_space

    kept = rgb_to_space(fit.palette, "oklab")[np.sort(np.argsort(-held, kind="stable")[:5])]
    np.testing.assert_allclose(smaller, kept)


def test_sweep_has_the_report_shape_and_falls():
    backend = CpuBackend()
    image = gradient_image(40, 48)
    rgb = backend.to_device(image)
    curve = sweep_k(colour_histogram(rgb), backend=backend, square_sum=total_square(rgb),
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
        accumulator.add(colour_histogram(rgb), backend, total_square(rgb))
    merged = accumulator.histogram(backend)
    whole = colour_histogram(image)
    np.testing.assert_array_equal(merged.occupied, whole.occupied)
    np.testing.assert_allclose(merged.counts, whole.counts)
    np.testing.assert_allclose(merged.colours, whole.colours, rtol=1e-5)
    assert accumulator.square_sum == pytest.approx(total_square(image))
