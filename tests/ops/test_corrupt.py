import numpy as np
import pytest

from gpupix.backends import CpuBackend
from gpupix.ops.corrupt import corrupt, damage_mask, mark_missing
from gpupix.ops.noise import NoiseModel
from tests.conftest import gradient_image


def rng(seed=0):
    return np.random.default_rng(seed)


def run(backend, image, seed=0, **options):
    damaged, missing = corrupt(backend.to_device(image), backend=backend, rng=rng(seed),
                               **options)
    return backend.to_host(damaged), backend.to_host(missing)


def test_same_seed_same_damage_other_seed_other_damage(any_backend):
    image = gradient_image(30, 40)
    options = {"drop": 0.3, "holes": 2, "hole_size": 6, "noise": NoiseModel(sigma=10)}
    a, mask_a = run(any_backend, image, seed=7, **options)
    b, mask_b = run(any_backend, image, seed=7, **options)
    c, mask_c = run(any_backend, image, seed=8, **options)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(mask_a, mask_b)
    assert (mask_a != mask_c).any() and (a != c).any()
    cpu, _ = run(CpuBackend(), image, seed=7, **options)
    np.testing.assert_array_equal(a, cpu)  # the same damage on every backend


@pytest.mark.parametrize("drop", [0.0, 0.3, 0.9])
def test_drop_fraction(drop):
    missing = damage_mask((200, 200), drop=drop, rng=rng())
    assert abs(missing.mean() - drop) < 0.01


def test_holes_are_squares_of_the_given_size():
    missing = damage_mask((50, 60), drop=0.0, holes=1, hole_size=7, rng=rng(3))
    rows, cols = np.nonzero(missing)
    assert missing.sum() == 49
    assert rows.max() - rows.min() == 6 and cols.max() - cols.min() == 6
    big = damage_mask((5, 6), drop=0.0, holes=1, hole_size=40, rng=rng(3))
    assert big.all()  # a hole larger than the image is clipped to it


def grey(value=128, size=200):
    return np.full((size, size, 3), value, np.uint8)


def test_gaussian_noise_statistics():
    image = grey()
    damaged, _ = run(CpuBackend(), image, drop=0.0, noise=NoiseModel("gaussian", sigma=20))
    difference = damaged.astype(float) - image
    assert abs(difference.mean()) < 0.3 and abs(difference.std() - 20) < 0.5


def test_uniform_noise_statistics():
    damaged, _ = run(CpuBackend(), grey(0), drop=0.0,
                     noise=NoiseModel("uniform", low=10, high=51))
    assert damaged.min() == 10 and damaged.max() == 50
    assert abs(damaged.mean() - 30) < 0.3


def test_salt_and_pepper_statistics():
    damaged, _ = run(CpuBackend(), grey(), drop=0.0,
                     noise=NoiseModel("salt_pepper", amount=0.1))
    changed = (damaged != 128).any(axis=2)
    assert abs(changed.mean() - 0.1) < 0.01
    values = damaged[changed]
    assert set(np.unique(values)) == {0, 255}
    assert (values.min(axis=1) == values.max(axis=1)).all()  # whole pixels, all channels
    assert abs((values[:, 0] == 255).mean() - 0.5) < 0.05


@pytest.mark.parametrize("mark, colour", [("magenta", (255, 0, 255)), ("black", (0, 0, 0))])
def test_marks_cover_removed_pixels_and_noise_the_rest(any_backend, mark, colour):
    image = gradient_image(20, 30)
    damaged, missing = run(any_backend, image, drop=0.3, noise=NoiseModel(sigma=5), mark=mark)
    assert damaged.shape == image.shape and damaged.dtype == np.uint8
    assert 0.2 < missing.mean() < 0.4
    assert (damaged[missing] == colour).all()
    changed = np.abs(damaged.astype(int) - image)[~missing]
    assert 2 < changed.mean() < 6  # sigma 5, rounded and clipped


def test_transparent_mark_adds_alpha(any_backend):
    image = gradient_image(10, 12)
    missing = damage_mask((10, 12), drop=0.4, rng=rng())
    damaged = any_backend.to_host(mark_missing(any_backend.to_device(image),
                                               any_backend.to_device(missing),
                                               mark="transparent"))
    assert damaged.shape == (10, 12, 4)
    np.testing.assert_array_equal(damaged[..., 3] == 0, missing)
    np.testing.assert_array_equal(damaged[~missing, :3], image[~missing])
