import math

import numpy as np
import pytest

from gpupix.backends import CpuBackend
from gpupix.ops.denoise import (
    denoise_patchwise,
    denoise_self,
    denoise_self_knn,
    fit_knn_denoiser,
    load_model,
    patch_rows,
    patches_at,
    predict,
    reflect_indices,
    reflect_pad,
    save_model,
)
from tests.backends.standins import StrictBackend


def psnr(a, b):
    return 10 * math.log10(255**2 / np.mean((np.asarray(a, float) - b) ** 2))


def shapes_image(size=64, seed=0):
    """Flat regions, edges and a gradient: what self-similarity should keep."""
    y, x = np.mgrid[0:size, 0:size]
    image = np.zeros((size, size, 3), np.float32)
    image[...] = (40, 60, 90)
    image[(x - size / 3) ** 2 + (y - size / 3) ** 2 < (size / 5) ** 2] = (220, 200, 60)
    image[size // 2:, size // 2:] = (30, 180, 120)
    image[:, :, 2] += 60 * x / size
    return image


@pytest.mark.parametrize("n, pad", [(1, 3), (2, 5), (5, 2), (9, 4), (3, 7)])
def test_reflect_indices_match_numpy_pad(n, pad):
    values = np.arange(n)
    expected = np.pad(values, pad, mode="reflect") if n > 1 else np.zeros(n + 2 * pad)
    np.testing.assert_array_equal(values[reflect_indices(n, pad)], expected)


def test_reflect_pad_and_patches(any_backend):
    image = np.arange(5 * 6 * 2, dtype=np.float32).reshape(5, 6, 2)
    padded = any_backend.to_device(image)
    padded = reflect_pad(padded, 1)
    host = any_backend.to_host(padded)
    np.testing.assert_array_equal(host, np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="reflect"))
    rows = any_backend.to_host(patch_rows(padded, 3, 1, 3, 6))
    assert rows.shape == (12, 18)
    # the patch centred on (2, 4): rows 1..3, cols 3..5, (dy, dx, channel) order
    np.testing.assert_array_equal(rows[6 + 4], image[1:4, 3:6, :].reshape(-1))
    at = patches_at(padded, 3, any_backend.to_device(np.array([2, 1])),
                    any_backend.to_device(np.array([4, 0])))
    np.testing.assert_array_equal(any_backend.to_host(at)[0], rows[6 + 4])
    np.testing.assert_array_equal(any_backend.to_host(at)[1], rows[0])


def _pairs(n=400, dims=16, sigma=30.0, seed=0):
    """Clean rows near a few prototypes (a curved set a linear map cannot fit), noisy copies."""
    prototypes = np.random.default_rng(99).uniform(0, 255, (6, dims))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, n)
    mix = rng.uniform(0, 1, (n, 1))
    clean = prototypes[labels] * mix + prototypes[(labels + 1) % 6] * (1 - mix) ** 2
    noisy = clean + rng.normal(0, sigma, clean.shape)
    return noisy.astype(np.float32), clean.astype(np.float32)


def test_training_rows_come_back_exactly_with_k1(any_backend):
    noisy, clean = _pairs()
    model = fit_knn_denoiser(any_backend.to_device(noisy), any_backend.to_device(clean),
                             components=None, k=1)
    got = any_backend.to_host(predict(model, any_backend.to_device(noisy),
                                      backend=any_backend))
    # linear prediction + the row's own residual is its clean row
    np.testing.assert_allclose(got, clean, atol=0.05)


@pytest.mark.parametrize("weights", ["uniform", "distance", "gaussian"])
def test_learned_model_beats_linear_and_noise(weights):
    backend = CpuBackend()
    noisy, clean = _pairs(2000)
    test_noisy, test_clean = _pairs(300, seed=1)
    model = fit_knn_denoiser(noisy, clean, components=8, k=20, weights=weights)
    got = predict(model, test_noisy, backend=backend, batch=64)  # several batches
    linear = fit_knn_denoiser(noisy, clean, components=8, k=1)
    rows = (test_noisy - linear.mean_x) @ linear.components @ linear.coef + linear.mean_y
    error = np.sqrt(np.mean((got - test_clean) ** 2))
    assert error < 0.7 * np.sqrt(np.mean((test_noisy - test_clean) ** 2))
    assert error < 0.8 * np.sqrt(np.mean((rows - test_clean) ** 2))


def test_strict_and_numpy_agree_on_the_learned_model():
    noisy, clean = _pairs(300)
    results = []
    for backend in (CpuBackend(), StrictBackend()):
        model = fit_knn_denoiser(backend.to_device(noisy), backend.to_device(clean),
                                 components=8, k=10)
        results.append(backend.to_host(predict(model, backend.to_device(noisy[:50]),
                                               backend=backend)))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-3, atol=0.05)


def test_model_file_round_trip_without_pickle(tmp_path):
    backend = CpuBackend()
    noisy, clean = _pairs(200)
    meta = {"kind": "whole", "channels": 1, "height": 4, "width": 4}  # 16 values a row
    model = fit_knn_denoiser(noisy, clean, components=8, k=7, meta=meta)
    path = tmp_path / "model.npz"
    path.write_bytes(save_model(model, backend))
    with np.load(path, allow_pickle=False) as data:  # nothing needs pickle
        assert data["meta"].dtype.kind == "U"
    loaded = load_model(path)
    assert loaded.meta == model.meta and loaded.meta["k"] == 7
    np.testing.assert_array_equal(predict(loaded, noisy[:20], backend=backend),
                                  predict(model, noisy[:20], backend=backend))


def test_bad_model_files_say_why(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        load_model(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="'weights.npy': not part of a gpupix denoiser model"):
        load_model(tmp_path / "other.npz")
    np.savez(tmp_path / "bare.npz", meta=np.asarray("{}"))
    with pytest.raises(ValueError, match="missing mean_x"):
        load_model(tmp_path / "bare.npz")


def test_patch_model_denoises_an_image_of_any_size():
    backend = CpuBackend()
    rng = np.random.default_rng(0)
    clean = shapes_image(48)
    noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.float32)
    from gpupix.ops.denoise import patches_at as at

    padded_n, padded_c = reflect_pad(noisy, 2), reflect_pad(clean, 2)
    rows, cols = np.divmod(rng.choice(48 * 48, 1500, replace=False), 48)
    centre = 12 * 3
    model = fit_knn_denoiser(at(padded_n, 5, rows, cols), at(padded_c, 5, rows, cols),
                             components=16, k=10, target_columns=np.arange(centre, centre + 3),
                             meta={"patch": 5})
    other = shapes_image(40)[::-1].copy()  # another size, flipped
    other_noisy = np.clip(other + rng.normal(0, 25, other.shape), 0, 255).astype(np.float32)
    out = denoise_patchwise(model, other_noisy, backend=backend, batch=300)
    assert out.shape == other.shape
    assert psnr(other, out) > psnr(other, other_noisy) + 4


def test_self_mode_improves_a_noisy_synthetic_image():
    rng = np.random.default_rng(0)
    clean = shapes_image(64)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.float32)
    result = denoise_self(noisy)
    assert result.image.shape == clean.shape and result.image.dtype == np.float32
    assert psnr(clean, result.image) > psnr(clean, noisy) + 6
    assert 14 < result.sigma < 24  # estimated from the patch PCA
    given = denoise_self(noisy, sigma=20.0)
    assert given.sigma == 20.0 and psnr(clean, given.image) > psnr(clean, noisy) + 6


def test_self_mode_tiles_do_not_show():
    rng = np.random.default_rng(1)
    noisy = np.clip(shapes_image(70) + rng.normal(0, 20, (70, 70, 3)), 0, 255)
    whole = denoise_self(noisy.astype(np.float32), tile=128).image
    tiled = denoise_self(noisy.astype(np.float32), tile=16).image
    np.testing.assert_allclose(tiled, whole, atol=1e-3)


def test_self_mode_keeps_a_clean_flat_image():
    flat = np.full((20, 24, 1), 77.0, np.float32)
    result = denoise_self(flat)
    np.testing.assert_allclose(result.image, flat)


def test_self_mode_under_array_api_strict(any_backend):
    rng = np.random.default_rng(2)
    noisy = np.clip(shapes_image(32) + rng.normal(0, 20, (32, 32, 3)), 0, 255)
    noisy = noisy.astype(np.float32)
    got = denoise_self(any_backend.to_device(noisy), window=5, tile=20)
    expected = denoise_self(noisy, window=5, tile=20)
    np.testing.assert_allclose(any_backend.to_host(got.image), expected.image, atol=1e-2)
    assert abs(got.sigma - expected.sigma) < 1e-3


def test_global_knn_self_mode_improves_and_agrees_under_strict():
    rng = np.random.default_rng(3)
    clean = shapes_image(40)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.float32)
    cpu = denoise_self_knn(noisy, backend=CpuBackend(), tile=24)
    assert psnr(clean, cpu.image) > psnr(clean, noisy) + 5
    strict_backend = StrictBackend()
    strict = denoise_self_knn(strict_backend.to_device(noisy), backend=strict_backend, tile=24)
    np.testing.assert_allclose(strict_backend.to_host(strict.image), cpu.image, atol=0.05)


@pytest.mark.parametrize("stride", [1, 3])
def test_global_knn_with_k1_returns_the_image(stride):
    # each reference patch's nearest patch is itself: every estimate is the input
    noisy = np.random.default_rng(4).uniform(0, 255, (23, 17, 3)).astype(np.float32)
    out = denoise_self_knn(noisy, backend=CpuBackend(), k=1, patch=3, stride=stride, tile=10)
    np.testing.assert_allclose(out.image, noisy, atol=1e-3)
