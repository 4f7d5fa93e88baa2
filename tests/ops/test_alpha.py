import numpy as np
import pytest

from gpupix.ops.alpha import premultiply, quantize_rgba, unpremultiply


def test_premultiply_round_trip(any_backend):
    rgba = np.array([[10, 200, 30, 255], [100, 50, 250, 128], [255, 255, 255, 1]], np.uint8)
    values = premultiply(any_backend.to_device(rgba))
    np.testing.assert_allclose(any_backend.to_host(values)[1], [50.196, 25.098, 125.49, 128],
                               atol=1e-2)
    colours, alpha = unpremultiply(values)
    np.testing.assert_array_equal(any_backend.to_host(alpha), rgba[:, 3])
    np.testing.assert_array_equal(any_backend.to_host(colours)[:2], rgba[:2, :3])


def test_few_rgba_colours_come_back_exactly(any_backend):
    entries = np.array([[200, 20, 20, 255], [20, 200, 20, 160], [20, 20, 200, 128],
                        [250, 250, 0, 200]], np.uint8)
    labels = np.random.default_rng(0).integers(0, 4, (20, 20))
    labels.ravel()[:4] = np.arange(4)
    image = entries[labels]
    result = quantize_rgba(any_backend.to_device(image), k=8, backend=any_backend)
    colours = any_backend.to_host(result.colours)
    alpha = any_backend.to_host(result.alpha)
    indices = any_backend.to_host(result.indices)
    out = np.dstack([colours[indices], alpha[indices]])
    assert np.abs(out.astype(int) - image).max() <= 1


def test_alpha_is_fitted_not_flattened():
    # one colour at many opacities: the palette must spread over alpha
    backend_free = np.zeros((16, 64, 4), np.uint8)
    backend_free[..., :3] = (40, 90, 200)
    backend_free[..., 3] = np.linspace(8, 255, 64).astype(np.uint8)[None, :]
    from gpupix.backends import CpuBackend

    result = quantize_rgba(backend_free, k=8, backend=CpuBackend())
    out_alpha = result.alpha[result.indices].astype(int)
    assert len(np.unique(result.alpha)) == 8
    assert np.abs(out_alpha - backend_free[..., 3]).mean() < 12


@pytest.mark.parametrize("bits", [0, 7, 8])
def test_histogram_bits_outside_range_are_refused(bits):
    from gpupix.backends import CpuBackend

    rgba = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="bits"):
        quantize_rgba(rgba, k=4, backend=CpuBackend(), bits=bits)
