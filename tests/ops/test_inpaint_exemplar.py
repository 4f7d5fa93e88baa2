import numpy as np
import pytest

from gpupix.backends import CpuBackend
from gpupix.ops.inpaint import choose_k, inpaint
from gpupix.ops.inpaint_exemplar import exemplar_fill
from tests.backends.standins import StrictBackend
from tests.conftest import gradient_image


def stripes(height=64, width=72):
    """Vertical stripes 4 px wide in red, horizontal bands 6 px high in green: a texture a
    smooth fill cannot continue across a hole."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([((x // 4) % 2) * 200 + 20, ((y // 6) % 2) * 150 + 50, 0 * x + 100],
                    axis=-1).astype(np.uint8)


def square_hole(shape, top, left, side):
    missing = np.zeros(shape, bool)
    missing[top:top + side, left:left + side] = True
    return missing


def psnr_missing(clean, out, missing):
    error = ((clean.astype(float) - out) ** 2)[missing].mean()
    return 10 * np.log10(255.0**2 / max(error, 1e-10))


@pytest.mark.parametrize("side", [16, 24, 32])
def test_reproduces_a_periodic_texture_far_better_than_smooth(side):
    image = stripes()
    missing = square_hole(image.shape[:2], 18, 20, side)
    backend = CpuBackend()
    exemplar = inpaint(image, missing, backend=backend, k=16, method="exemplar")
    smooth = inpaint(image, missing, backend=backend, k=1, method="smooth")
    assert psnr_missing(image, exemplar, missing) > psnr_missing(image, smooth, missing) + 20


def test_exact_on_known_pixels_and_fills_every_missing_one():
    image = gradient_image(60, 70, seed=3)
    missing = square_hole(image.shape[:2], 10, 12, 20)
    missing[40:44, :] = True  # a scratch across the image
    marked = image.copy()
    marked[missing] = (255, 0, 255)
    out = inpaint(marked, missing, backend=CpuBackend(), k=None, method="exemplar")
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out[~missing], image[~missing])
    # no key colour left: every missing pixel was written from the known image
    assert not np.all(out[missing] == (255, 0, 255), axis=-1).any()
    # a gradient does not repeat: copies land a few levels off, not far off (mid-grey: 6 dB)
    assert psnr_missing(image, out, missing) > 15


def test_copies_only_known_colours_on_a_few_colour_image():
    image = stripes()
    missing = square_hole(image.shape[:2], 30, 30, 20)
    out = inpaint(image, missing, backend=CpuBackend(), k=16, method="exemplar")
    known_colours = {tuple(c) for c in image[~missing]}
    assert {tuple(c) for c in out[missing]} <= known_colours


def test_deterministic():
    image = gradient_image(50, 60, seed=5)
    missing = square_hole(image.shape[:2], 12, 15, 18)
    first = inpaint(image, missing, backend=CpuBackend(), k=8, method="exemplar")
    second = inpaint(image, missing, backend=CpuBackend(), k=8, method="exemplar")
    np.testing.assert_array_equal(first, second)


def test_array_api_strict_matches_numpy():
    image = stripes(48, 56)
    missing = square_hole(image.shape[:2], 14, 16, 16)
    missing[40:43, :] = True
    expected = inpaint(image, missing, backend=CpuBackend(), k=8, method="exemplar")
    strict = StrictBackend()
    out = inpaint(strict.to_device(image), strict.to_device(missing), backend=strict, k=8,
                  method="exemplar")
    np.testing.assert_array_equal(strict.to_host(out), expected)


def test_pixels_neither_known_nor_missing_are_kept_and_never_copied():
    image = stripes()
    missing = square_hole(image.shape[:2], 20, 20, 16)
    known = np.ones(missing.shape, bool)
    known[:, 60:] = False  # e.g. transparent: their colours mean nothing
    marked = image.copy()
    marked[:, 60:] = (255, 0, 255)
    out = inpaint(marked, missing, backend=CpuBackend(), k=16, method="exemplar", known=known)
    np.testing.assert_array_equal(out[:, 60:], marked[:, 60:])
    assert not np.all(out[missing] == (255, 0, 255), axis=-1).any()


def test_no_whole_square_known_falls_back_to_the_smooth_fill():
    image = gradient_image(20, 20, seed=1)
    missing = np.zeros((20, 20), bool)
    missing[::4, :] = True  # every known run is shorter than a 9x9 square
    out = exemplar_fill(image.astype(np.float32), missing, ~missing, backend=CpuBackend())
    np.testing.assert_array_equal(out[~missing], image[~missing])
    assert np.isfinite(out).all() and psnr_missing(image, out, missing) > 20


def test_k_auto_takes_the_default_candidate_count():
    image = gradient_image(30, 30)
    missing = square_hole(image.shape[:2], 5, 5, 10)
    choice = choose_k(image, missing, backend=CpuBackend(), method="exemplar")
    assert choice.k == 16 and choice.rmse == []


def test_patch_must_be_odd():
    image = gradient_image(30, 30).astype(np.float32)
    missing = square_hole(image.shape[:2], 5, 5, 10)
    with pytest.raises(ValueError, match="odd"):
        exemplar_fill(image, missing, ~missing, backend=CpuBackend(), patch=8)


def test_the_inpaint_job_runs_method_exemplar(tmp_path):
    from PIL import Image

    from gpupix.config import validate_config
    from gpupix.pipeline import run_job

    image = stripes()
    missing = square_hole(image.shape[:2], 20, 24, 20)
    damaged = image.copy()
    damaged[missing] = (255, 0, 255)
    (tmp_path / "images").mkdir()
    Image.fromarray(damaged).save(tmp_path / "images" / "s.png")
    Image.fromarray(image).save(tmp_path / "s.png")
    config = validate_config({"job": "inpaint", "input": {"paths": ["images"]},
                              "output": {"dir": "out"}, "backend": "cpu",
                              "inpaint": {"method": "exemplar", "reference": "."}},
                             base_dir=tmp_path)
    row = run_job(config, CpuBackend()).rows[0]
    assert row["status"] == "ok" and row["k"] == 16 and row["k_curve"] == []
    assert row["missing_pixels"] == missing.sum() and row["psnr_missing"] > 60


def test_cuda_glue_runs_exemplar_with_standins(fake_cuda):
    """The candidate search goes through the cuda backend's kneighbors (cuML stand-in)."""
    image = stripes(48, 56)
    missing = square_hole(image.shape[:2], 14, 16, 16)
    out = fake_cuda.to_host(inpaint(fake_cuda.to_device(image), fake_cuda.to_device(missing),
                                    backend=fake_cuda, k=8, method="exemplar"))
    expected = inpaint(image, missing, backend=CpuBackend(), k=8, method="exemplar")
    np.testing.assert_array_equal(out[~missing], image[~missing])
    # float32 distances may order near-equal candidates differently; the re-rank decides
    assert psnr_missing(image, out, missing) >= psnr_missing(image, expected, missing) - 1
