import numpy as np
import pytest

from gpupix.backends import CpuBackend
from gpupix.ops.noise import NoiseModel, apply_noise
from tests.backends.standins import StrictBackend


def _noisy(backend, model, clean, seed=0):
    out = model.apply(backend.to_device(clean), np.random.default_rng(seed), backend)
    return backend.to_host(out)


def test_gaussian_statistics(any_backend):
    clean = np.full((200, 200, 3), 128, np.uint8)
    noisy = _noisy(any_backend, NoiseModel("gaussian", sigma=20), clean)
    noise = noisy - 128.0
    assert noisy.dtype == np.float32 and noisy.shape == clean.shape
    assert abs(noise.mean()) < 0.3 and abs(noise.std() - 20) < 0.3


def test_gaussian_is_clipped_unless_asked_not_to(any_backend):
    clean = np.full((100, 100, 1), 250, np.uint8)
    clipped = _noisy(any_backend, NoiseModel("gaussian", sigma=30), clean)
    raw = _noisy(any_backend, NoiseModel("gaussian", sigma=30, clip=False), clean)
    assert clipped.max() == 255 and clipped.min() >= 0
    assert raw.max() > 300


def test_uniform_is_the_classic_randint(any_backend):
    clean = np.zeros((300, 300, 1), np.uint8)
    noisy = _noisy(any_backend, NoiseModel("uniform", low=0, high=500, clip=False), clean)
    assert noisy.min() >= 0 and noisy.max() <= 499
    np.testing.assert_array_equal(noisy, np.rint(noisy))  # integers, as randint draws
    assert abs(noisy.mean() - 249.5) < 2
    assert abs(noisy.std() - np.sqrt((500**2 - 1) / 12)) < 2


def test_salt_and_pepper_fraction_and_shared_channels(any_backend):
    clean = np.full((300, 300, 3), 100, np.uint8)
    noisy = _noisy(any_backend, NoiseModel("salt_pepper", amount=0.1), clean)
    salt = (noisy == 255).all(axis=2)
    pepper = (noisy == 0).all(axis=2)
    kept = (noisy == 100).all(axis=2)
    assert (salt | pepper | kept).all()  # a pixel's channels change together
    assert abs(salt.mean() - 0.05) < 0.01 and abs(pepper.mean() - 0.05) < 0.01


def test_same_seed_same_noise_on_every_backend():
    clean = np.random.default_rng(3).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    for kind in ("gaussian", "uniform", "salt_pepper"):
        model = NoiseModel(kind)
        np.testing.assert_array_equal(_noisy(CpuBackend(), model, clean, seed=5),
                                      _noisy(StrictBackend(), model, clean, seed=5))
    a = _noisy(CpuBackend(), NoiseModel(), clean, seed=1)
    b = _noisy(CpuBackend(), NoiseModel(), clean, seed=2)
    assert not np.array_equal(a, b)


def test_apply_noise_by_hand(xp):
    clean = xp.asarray(np.array([[[10.0], [250.0]]], np.float32))
    draws = xp.asarray(np.array([[[-20.0], [20.0]]], np.float32))
    out = np.from_dlpack(apply_noise(clean, draws, kind="gaussian"))
    np.testing.assert_array_equal(out[..., 0], [[0.0, 255.0]])
    codes = xp.asarray(np.array([[0, 1]], np.int8))
    out = np.from_dlpack(apply_noise(clean, codes, kind="salt_pepper"))
    np.testing.assert_array_equal(out[..., 0], [[10.0, 255.0]])


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="speckle"):
        NoiseModel("speckle")
