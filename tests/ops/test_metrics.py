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
