import numpy as np
import pytest

from gpupix.ops.dither import LOOKUP_BITS, floyd_steinberg, nearest_table
from tests.conftest import gradient_image

BLACK_WHITE = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)


def reference_floyd_steinberg(rgb, palette, strength=1.0):
    """The textbook raster-order loop, with the same nearest-entry table."""
    table = nearest_table(palette)
    work = rgb.astype(np.float32)
    height, width = rgb.shape[:2]
    indices = np.zeros((height, width), np.uint8)
    shift = 8 - LOOKUP_BITS
    for y in range(height):
        for x in range(width):
            value = np.clip(work[y, x], 0, 255)
            q = value.astype(np.uint8) >> shift
            index = table[(int(q[0]) << 12) | (int(q[1]) << 6) | int(q[2])]
            indices[y, x] = index
            error = (value - palette[index]) * strength
            for dy, dx, weight in ((0, 1, 7), (1, -1, 3), (1, 0, 5), (1, 1, 1)):
                if 0 <= y + dy < height and 0 <= x + dx < width:
                    work[y + dy, x + dx] += error * np.float32(weight / 16)
    return indices


@pytest.mark.parametrize("shape", [(9, 13), (14, 5), (1, 7), (6, 1), (30, 40)])
def test_matches_the_raster_order_loop(shape):
    image = gradient_image(*shape, seed=2)
    palette = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 128, 255],
                        [90, 200, 40]], np.uint8)
    got = floyd_steinberg(image, palette)
    expected = reference_floyd_steinberg(image, palette)
    # the same dependencies in another summation order: float32 rounding may flip a tie
    assert np.mean(got == expected) >= 0.99


def test_strength_zero_is_plain_nearest_entry():
    image = gradient_image(20, 30)
    palette = np.array([[0, 0, 0], [255, 255, 255], [200, 30, 30]], np.uint8)
    table = nearest_table(palette)
    q = image >> (8 - LOOKUP_BITS)
    codes = (q[..., 0].astype(int) << 12) | (q[..., 1].astype(int) << 6) | q[..., 2]
    np.testing.assert_array_equal(floyd_steinberg(image, palette, strength=0.0), table[codes])


@pytest.mark.parametrize("grey", [64, 128, 200])
def test_flat_grey_becomes_the_right_share_of_white(grey):
    image = np.full((64, 64, 3), grey, np.uint8)
    indices = floyd_steinberg(image, BLACK_WHITE)
    assert indices.mean() == pytest.approx(grey / 255, abs=0.01)
    assert floyd_steinberg(image, BLACK_WHITE, strength=0.0).std() == 0  # no dither: flat


def test_masked_pixels_neither_take_nor_pass_error():
    image = gradient_image(24, 24)
    mask = np.ones((24, 24), bool)
    mask[8:16, 8:16] = False
    other = image.copy()
    other[~mask] = 255 - other[~mask]
    first = floyd_steinberg(image, BLACK_WHITE, mask=mask)
    second = floyd_steinberg(other, BLACK_WHITE, mask=mask)
    np.testing.assert_array_equal(first, second)
    assert (first[~mask] == 0).all()


def test_strength_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="strength"):
        floyd_steinberg(np.zeros((2, 2, 3), np.uint8), BLACK_WHITE, strength=1.5)
