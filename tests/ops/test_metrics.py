import math

import numpy as np
import pytest
from skimage import color as skcolor
from skimage import metrics as skmetrics

from gpupix.ops import metrics
from tests.conftest import gradient_image


@pytest.fixture
def pair():
    clean = gradient_image(40, 50)
    noisy = np.clip(clean + np.random.default_rng(3).normal(0, 12, clean.shape), 0, 255)
    return clean, noisy.astype(np.uint8)


def test_psnr_matches_scikit_image(xp, pair):
    clean, noisy = pair
    expected = skmetrics.peak_signal_noise_ratio(clean, noisy, data_range=255)
    assert metrics.psnr(xp.asarray(clean), xp.asarray(noisy)) == pytest.approx(expected)


def test_psnr_identical_is_infinite(xp, pair):
    clean, _ = pair
    assert metrics.psnr(xp.asarray(clean), xp.asarray(clean)) == math.inf


def test_psnr_over_mask_counts_only_masked_pixels(xp, pair):
    clean, noisy = pair
    mask = np.zeros(clean.shape[:2], bool)
    mask[:10] = True
    expected = skmetrics.peak_signal_noise_ratio(clean[:10], noisy[:10], data_range=255)
    assert metrics.psnr(xp.asarray(clean), xp.asarray(noisy), xp.asarray(mask)) == \
        pytest.approx(expected)


@pytest.mark.parametrize("channels", [None, 3])
def test_ssim_matches_scikit_image(xp, pair, channels):
    clean, noisy = pair
    if channels is None:
        clean, noisy = clean[..., 0], noisy[..., 0]
    expected = skmetrics.structural_similarity(
        clean, noisy, data_range=255, channel_axis=None if channels is None else -1)
    assert metrics.ssim(xp.asarray(clean), xp.asarray(noisy)) == pytest.approx(expected, abs=1e-9)


def test_delta_e_matches_scikit_image(xp, pair):
    clean, noisy = pair
    expected = skcolor.deltaE_ciede2000(skcolor.rgb2lab(clean), skcolor.rgb2lab(noisy)).mean()
    assert metrics.delta_e(xp.asarray(clean), xp.asarray(noisy)) == pytest.approx(expected,
                                                                                  rel=1e-4)


def test_shape_mismatch_is_refused(xp):
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.psnr(xp.zeros((2, 2)), xp.zeros((2, 3)))


@pytest.fixture(scope="module")
def quantized_photo():
    """A real photo (scikit-image's chelsea, 150 x 200) and its 32-colour palette image."""
    from skimage import data

    from gpupix.backends import CpuBackend
    from gpupix.ops.quantize import quantize

    photo = np.ascontiguousarray(data.chelsea()[::2, ::2])
    result = quantize(photo, k=32, backend=CpuBackend())
    return photo, result.palette, result.indices


def test_delta_e_over_distinct_pairs_matches_scikit_image_on_a_photo(xp, quantized_photo):
    photo, palette, indices = quantized_photo
    out = palette[indices]
    expected = skcolor.deltaE_ciede2000(skcolor.rgb2lab(photo), skcolor.rgb2lab(out)).mean()
    # exact up to float32 CIELAB/CIEDE2000 arithmetic: 1e-5 relative on the mean
    assert metrics.delta_e(xp.asarray(photo), xp.asarray(out)) == pytest.approx(expected,
                                                                               rel=1e-5)


def test_palette_metrics_match_scikit_image_on_a_photo(any_backend, quantized_photo):
    photo, palette, indices = quantized_photo
    out = palette[indices]
    to = any_backend.to_device
    values = metrics.palette_metrics(["psnr", "rmse", "delta_e", "ssim"], to(photo),
                                     to(palette), to(indices), backend=any_backend)
    assert values["psnr"] == pytest.approx(
        skmetrics.peak_signal_noise_ratio(photo, out, data_range=255), rel=1e-12)
    assert values["rmse"] == pytest.approx(
        math.sqrt(skmetrics.mean_squared_error(photo, out)), rel=1e-12)
    assert values["delta_e"] == pytest.approx(skcolor.deltaE_ciede2000(
        skcolor.rgb2lab(photo), skcolor.rgb2lab(out)).mean(), rel=1e-5)
    assert values["ssim"] == pytest.approx(skmetrics.structural_similarity(
        photo, out, data_range=255, channel_axis=-1), abs=1e-9)
    assert list(values) == ["psnr", "rmse", "delta_e", "ssim"]


def test_palette_metrics_of_an_exact_palette_image():
    palette = np.array([[0, 0, 0], [255, 10, 3], [7, 200, 90]], np.uint8)
    indices = np.random.default_rng(0).integers(0, 3, (20, 30)).astype(np.uint8)
    values = metrics.palette_metrics(["psnr", "delta_e"], palette[indices], palette, indices)
    assert values == {"psnr": math.inf, "delta_e": 0.0}


@pytest.mark.parametrize("window", [2, 3, 7])
def test_backend_box_mean_matches_the_array_api_one(any_backend, window):
    x = np.random.default_rng(1).random((3, 23, 18))
    expected = metrics._box_mean(x, window)
    got = any_backend.to_host(any_backend.box_mean(any_backend.to_device(x), window))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_float_ssim_through_the_cuda_glue_uses_the_device_filter(fake_cuda, quantized_photo):
    photo, palette, indices = quantized_photo
    reference, out = photo.astype(np.float64), palette[indices].astype(np.float64)
    calls = fake_cuda._cupy.calls
    calls.clear()
    value = metrics.ssim(fake_cuda.to_device(reference), fake_cuda.to_device(out),
                         backend=fake_cuda)
    assert calls.count("uniform_filter") == 5
    assert value == pytest.approx(skmetrics.structural_similarity(
        reference, out, data_range=255, channel_axis=-1), abs=1e-9)


@pytest.mark.parametrize("window", [3, 7, 15])
def test_integer_ssim_matches_float_ssim_and_scikit_image(quantized_photo, window):
    """uint8 images take exact integer box sums (int64 past window 13); floats the filter."""
    from gpupix.backends import CpuBackend

    photo, palette, indices = quantized_photo
    out = palette[indices]
    expected = skmetrics.structural_similarity(photo, out, data_range=255, channel_axis=-1,
                                               win_size=window)
    assert metrics.ssim(photo, out, window=window) == pytest.approx(expected, abs=1e-9)
    assert metrics.ssim(photo.astype(np.float64), out.astype(np.float64), window=window,
                        backend=CpuBackend()) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("names", [["psnr"], ["rmse", "psnr"], ["delta_e", "psnr"]])
def test_palette_psnr_alone_or_with_delta_e_agrees(quantized_photo, names):
    photo, palette, indices = quantized_photo
    values = metrics.palette_metrics(names, photo, palette, indices)
    assert values["psnr"] == pytest.approx(
        skmetrics.peak_signal_noise_ratio(photo, palette[indices], data_range=255), rel=1e-12)
    assert list(values) == names
