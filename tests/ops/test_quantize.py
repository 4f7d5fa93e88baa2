import numpy as np
import pytest
from sklearn.cluster import KMeans

from gpupix.backends import CpuBackend
from gpupix.ops._xp import bincount
from gpupix.ops.quantize import color_histogram, quantize
from tests.backends.standins import to_numpy
from tests.conftest import few_colour_image, gradient_image


def _run(backend, image, **options):
    result = quantize(backend.to_device(image), backend=backend, **options)
    return backend.to_host(result.palette), backend.to_host(result.indices)


def test_bincount_fallback_matches_numpy(xp):
    codes = np.array([5, 1, 1, 7, 5, 5], dtype=np.int32)
    weights = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    counts = to_numpy(bincount(xp, xp.asarray(codes), minlength=9))
    sums = to_numpy(bincount(xp, xp.asarray(codes), minlength=9, weights=xp.asarray(weights)))
    np.testing.assert_array_equal(counts, np.bincount(codes, minlength=9))
    np.testing.assert_allclose(sums, np.bincount(codes, weights, minlength=9))


def test_standard_only_bincount_route():
    import array_api_strict as strict

    assert not hasattr(strict, "bincount")  # so the test above took the sort-based route


def test_histogram_keeps_exact_bin_means(any_backend):
    image = np.array([[[0, 0, 0], [2, 2, 2], [200, 10, 10]]], dtype=np.uint8)
    histogram = color_histogram(any_backend.to_device(image), bits=6)
    colours = any_backend.to_host(histogram.colours)
    counts = any_backend.to_host(histogram.counts)
    # 0 and 2 share a 6-bit bin: its mean is (1, 1, 1) from 2 pixels
    np.testing.assert_allclose(colours, [[1, 1, 1], [200, 10, 10]])
    np.testing.assert_array_equal(counts, [2, 1])


@pytest.mark.parametrize("colours", [2, 5, 16])
def test_fewer_colours_than_k_is_lossless(any_backend, colours):
    image, palette = few_colour_image(colours)
    got_palette, indices = _run(any_backend, image, k=32)
    assert len(got_palette) == colours
    np.testing.assert_array_equal(got_palette[indices], image)


@pytest.mark.parametrize("k", [2, 16, 256])
@pytest.mark.parametrize("space", ["rgb", "lab", "oklab", "rgb_lab"])
def test_output_shapes_and_palette_size(any_backend, k, space):
    image = gradient_image(40, 40)
    palette, indices = _run(any_backend, image, k=k, color_space=space)
    assert palette.dtype == np.uint8 and palette.shape[1] == 3
    assert 2 <= len(palette) <= k
    assert indices.shape == image.shape[:2] and indices.dtype == np.uint8
    assert indices.max() < len(palette)


def test_strict_matches_numpy_exactly():
    from tests.backends.standins import StrictBackend

    image = gradient_image(30, 30)
    cpu = _run(CpuBackend(), image, k=8)
    strict = _run(StrictBackend(), image, k=8)
    np.testing.assert_array_equal(cpu[0], strict[0])
    np.testing.assert_array_equal(cpu[1], strict[1])


def test_greyscale_stays_grey(backend):
    grey = gradient_image(30, 30)[..., :1].repeat(3, axis=2)
    palette, _ = _run(backend, grey, k=8)
    assert (palette[:, 0] == palette[:, 1]).all() and (palette[:, 1] == palette[:, 2]).all()


def test_transparent_pixels_do_not_shape_the_palette(backend):
    image = np.zeros((20, 20, 3), np.uint8)
    image[:, :10] = (250, 0, 0)
    image[:, 10:] = (0, 0, 250)
    weights = np.ones(400, bool)
    weights.reshape(20, 20)[:, 10:] = False  # the blue half is transparent
    palette, _ = _run(backend, image, k=4, weights=backend.to_device(weights))
    assert palette.tolist() == [[250, 0, 0]]


def test_quality_close_to_scikit_learn_on_all_pixels(backend):
    """The histogram fit must not lose against K-means run on every pixel."""
    image = gradient_image(64, 64, seed=5)
    palette, indices = _run(backend, image, k=16, color_space="rgb")
    ours = np.mean((palette[indices].astype(float) - image) ** 2)
    pixels = image.reshape(-1, 3).astype(float)
    model = KMeans(16, n_init=1, random_state=0).fit(pixels)
    reference = np.mean((model.cluster_centers_[model.labels_] - pixels) ** 2)
    assert ours <= reference * 1.10, (ours, reference)


def test_deterministic_for_a_seed(backend):
    image = gradient_image(40, 40)
    first = _run(backend, image, k=12, seed=3)
    second = _run(backend, image, k=12, seed=3)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_k_out_of_range_is_refused():
    with pytest.raises(ValueError, match="k"):
        quantize(gradient_image(8, 8), k=300, backend=CpuBackend())
