import numpy as np
import pytest
from skimage import color as skcolor

from gpupix.ops import color
from tests.backends.standins import to_numpy
from tests.conftest import gradient_image


@pytest.fixture
def pixels():
    return gradient_image(16, 24).astype(np.float32)


def test_lab_matches_scikit_image(xp, pixels):
    lab = to_numpy(color.rgb_to_lab(xp.asarray(pixels)))
    np.testing.assert_allclose(lab, skcolor.rgb2lab(pixels / 255.0), atol=2e-3)


@pytest.mark.parametrize("space", ["rgb", "lab", "oklab"])
def test_round_trip(xp, pixels, space):
    back = to_numpy(color.space_to_rgb(color.rgb_to_space(xp.asarray(pixels), space), space))
    np.testing.assert_allclose(back, pixels, atol=0.02)


def test_oklab_reference_values(xp):
    # Ottosson's published values: white -> (1, 0, 0); pure red -> (0.628, 0.225, 0.126)
    values = to_numpy(color.rgb_to_oklab(xp.asarray([[255.0, 255.0, 255.0], [255.0, 0.0, 0.0]])))
    np.testing.assert_allclose(values[0], [1.0, 0.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(values[1], [0.628, 0.225, 0.126], atol=1e-3)


def test_ciede2000_matches_scikit_image(xp, pixels):
    a = skcolor.rgb2lab(pixels / 255.0)
    b = skcolor.rgb2lab(pixels[::-1, ::-1] / 255.0)
    ours = to_numpy(color.ciede2000(xp.asarray(a), xp.asarray(b)))
    np.testing.assert_allclose(ours, skcolor.deltaE_ciede2000(a, b), rtol=1e-5, atol=1e-5)


def test_ciede2000_sharma_reference_pair(xp):
    # Sharma, Wu and Dalal (2005), pair 1: dE00 = 2.0425
    lab1 = xp.asarray([[50.0, 2.6772, -79.7751]])
    lab2 = xp.asarray([[50.0, 0.0, -82.7485]])
    assert float(to_numpy(color.ciede2000(lab1, lab2))[0]) == pytest.approx(2.0425, abs=1e-4)
