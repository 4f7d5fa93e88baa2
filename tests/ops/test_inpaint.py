import numpy as np
import pytest

from gpupix.backends import CpuBackend
from gpupix.ops.inpaint import (
    _RIDGE,
    _jitter,
    choose_k,
    inpaint,
    predict,
    tile_neighbours,
)
from tests.conftest import gradient_image


def random_mask(shape, fraction, seed=0, holes=()):
    missing = np.random.default_rng(seed).random(shape) < fraction
    for y, x, size in holes:
        missing[y:y + size, x:x + size] = True
    return missing


def brute_force(image, missing, k):
    """Every missing pixel's k nearest known pixels by exhaustive search (NumPy, float64).

    Pixel positions carry the module's documented fixed offsets (``_jitter``), which make
    grid distances distinct; the test below also checks the true distances without them.
    """
    known_rows, known_cols = np.nonzero(~missing)
    query_rows, query_cols = np.nonzero(missing)
    jy, jx = _jitter(np, known_rows.astype(float), known_cols.astype(float))
    dy = (known_rows + jy)[None, :] - query_rows[:, None]
    dx = (known_cols + jx)[None, :] - query_cols[:, None]
    order = np.argsort(np.hypot(dy, dx), axis=1, kind="stable")[:, :k]
    n_rows, n_cols = known_rows[order], known_cols[order]
    return query_rows, query_cols, n_rows, n_cols


def reference_predictions(image, missing, k):
    """knn (1/d weights), knn_linear (uniform weights, ridge LS) and vote, one pixel at a time."""
    q_rows, q_cols, n_rows, n_cols = brute_force(image, missing, k)
    jy, jx = _jitter(np, n_rows.astype(float), n_cols.astype(float))
    out = {"knn": [], "knn_linear": [], "vote": []}
    for i in range(len(q_rows)):
        colours = image[n_rows[i], n_cols[i]].astype(float)
        dy = (n_rows[i] - q_rows[i]).astype(float)
        dx = (n_cols[i] - q_cols[i]).astype(float)
        distance = np.hypot(dy + jy[i], dx + jx[i])
        w = 1 / distance
        out["knn"].append(w @ colours / w.sum())
        offsets = np.stack([dx, dy], axis=1)
        centre = offsets.mean(axis=0)
        scatter = np.cov(offsets.T, bias=True)
        scatter[np.diag_indices(2)] *= 1 + _RIDGE
        cross = (offsets - centre).T @ (colours - colours.mean(axis=0)) / k
        slopes = np.linalg.solve(scatter, cross)
        out["knn_linear"].append(colours.mean(axis=0) - centre @ slopes)
        codes = [tuple(c) for c in colours.astype(int)]
        counts = {c: codes.count(c) for c in codes}
        out["vote"].append(np.array(max(codes, key=lambda c: counts[c])))  # first = nearest
    return q_rows, q_cols, n_rows, n_cols, {m: np.array(v) for m, v in out.items()}


def test_neighbours_and_predictions_match_brute_force():
    image = gradient_image(18, 22, seed=4)
    image[::3, ::4] = [10, 200, 30]  # repeated colours, so the vote has a majority to find
    missing = random_mask(image.shape[:2], 0.35, seed=5, holes=[(4, 6, 5)])
    k = 7
    q_rows, q_cols, n_rows, n_cols, expected = reference_predictions(image, missing, k)
    backend = CpuBackend()
    colours = image.astype(np.float32)
    nb = tile_neighbours(backend, colours, ~missing, missing, (0, 18, 0, 22), k=k, halo=2)
    np.testing.assert_array_equal(nb.rows, q_rows)
    np.testing.assert_array_equal(nb.cols, q_cols)
    np.testing.assert_array_equal(nb.rows[:, None] + nb.dy.astype(int), n_rows)
    np.testing.assert_array_equal(nb.cols[:, None] + nb.dx.astype(int), n_cols)
    # without the offsets: the true distances are the k smallest true distances
    known_rows, known_cols = np.nonzero(~missing)
    true = np.hypot(known_rows[None] - q_rows[:, None], known_cols[None] - q_cols[:, None])
    np.testing.assert_allclose(np.hypot(nb.dy, nb.dx), np.sort(true, axis=1)[:, :k])
    np.testing.assert_allclose(predict(nb, method="knn", weights="distance"), expected["knn"],
                               rtol=1e-4)
    np.testing.assert_allclose(predict(nb, method="knn_linear", weights="uniform"),
                               expected["knn_linear"], rtol=1e-3, atol=1e-2)
    votes = predict(nb, method="vote", weights="uniform")
    np.testing.assert_array_equal(votes, expected["vote"])


@pytest.mark.parametrize("method", ["knn", "knn_linear", "vote"])
def test_inpaint_fills_only_missing_pixels(any_backend, method):
    image = gradient_image(20, 24)
    missing = random_mask(image.shape[:2], 0.3, holes=[(5, 5, 6)])
    out = any_backend.to_host(inpaint(any_backend.to_device(image),
                                      any_backend.to_device(missing),
                                      backend=any_backend, k=6, method=method))
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out[~missing], image[~missing])
    error = np.abs(out.astype(int) - image)[missing].mean()
    assert error < 20  # a smooth image: every method lands near the truth
    if any_backend.name != "cpu":  # the cpu result is the oracle for the others
        cpu = CpuBackend()
        np.testing.assert_array_equal(out, cpu.to_host(inpaint(image, missing, backend=cpu, k=6,
                                                              method=method)))


def test_linear_recovers_a_ramp_exactly_where_the_mean_cannot():
    rows, cols = np.mgrid[0:40, 0:40]
    ramp = np.stack([5 * cols + 20, 2 * rows + 40, 200 - 2 * cols - rows], axis=-1)
    image = ramp.astype(np.uint8)
    missing = random_mask((40, 40), 0.3, holes=[(10, 10, 4)])
    missing[:, :2] = True  # a border strip: the neighbours are all on one side
    missing[:, 2:4] = False  # (and near, so it is not treated as the inside of a hole)
    backend = CpuBackend()
    linear = inpaint(image, missing, backend=backend, k=12, method="knn_linear")
    mean = inpaint(image, missing, backend=backend, k=12, method="knn")
    # exact but for the ridge, which shrinks a slope by 3%: under 2 levels here
    assert np.abs(linear.astype(int) - image)[missing].max() <= 2
    assert np.abs(mean.astype(int) - image)[missing].max() > 10


@pytest.mark.parametrize("method", ["knn", "knn_linear"])
def test_deep_inside_a_hole_the_mean_of_many_neighbours(method):
    image = gradient_image(40, 40, seed=6)
    missing = np.zeros((40, 40), bool)
    missing[12:28, 8:30] = True
    out = inpaint(image, missing, backend=CpuBackend(), k=4, method=method)
    q_rows, q_cols, n_rows, n_cols = brute_force(image, missing, 256)
    for y, x in [(20, 19), (15, 12)]:  # 8 and 3 pixels from the nearest known pixel
        i = np.flatnonzero((q_rows == y) & (q_cols == x))[0]
        jy, jx = _jitter(np, n_rows[i].astype(float), n_cols[i].astype(float))
        w = np.hypot(n_rows[i] + jy - y, n_cols[i] + jx - x) ** -6.0
        expected = w @ image[n_rows[i], n_cols[i]] / w.sum()
        np.testing.assert_allclose(out[y, x], expected, atol=0.51)


@pytest.mark.parametrize("method", ["knn", "knn_linear", "vote"])
def test_tiles_leave_no_seams(method):
    image = gradient_image(70, 90, seed=2)
    # a hole larger than a tile and its first halo: the tile must widen its search
    missing = random_mask(image.shape[:2], 0.4, seed=3, holes=[(10, 20, 30), (50, 70, 15)])
    backend = CpuBackend()
    whole = inpaint(image, missing, backend=backend, k=9, method=method, tile=1024)
    tiled = inpaint(image, missing, backend=backend, k=9, method=method, tile=16)
    difference = np.abs(whole.astype(int) - tiled)
    # float summation order may move a value across a rounding boundary: at most 1 level
    assert difference.max() <= 1
    assert (difference == 0).mean() > 0.995


def test_no_missing_pixels_returns_the_image():
    image = gradient_image(8, 8)
    out = inpaint(image, np.zeros((8, 8), bool), backend=CpuBackend())
    np.testing.assert_array_equal(out, image)


def test_nothing_known_is_an_error():
    with pytest.raises(ValueError, match="no known pixel"):
        inpaint(gradient_image(8, 8), np.ones((8, 8), bool), backend=CpuBackend())


def test_fewer_known_pixels_than_k():
    image = gradient_image(6, 6)
    missing = np.ones((6, 6), bool)
    missing[2, 3] = missing[4, 1] = False
    out = inpaint(image, missing, backend=CpuBackend(), k=10)
    assert out.shape == image.shape and (out[~missing] == image[~missing]).all()


def test_auto_k_averages_noise_on_a_smooth_image():
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:96, 0:96]
    smooth = np.stack([rows + cols, 2 * cols, 255 - 2 * rows], axis=-1) * 0.6 + 20
    image = np.clip(np.rint(smooth + rng.normal(0, 12, smooth.shape)), 0, 255).astype(np.uint8)
    missing = random_mask(image.shape[:2], 0.3, seed=1)
    choice = choose_k(image, missing, backend=CpuBackend(), method="knn", seed=0)
    assert len(choice.rmse) == 20 and choice.held_out > 0
    assert choice.rmse[choice.k - 1] == min(choice.rmse)
    assert choice.k >= 8  # noise wants many neighbours averaged
    assert choice.rmse[0] > 1.3 * min(choice.rmse)


def test_auto_k_stays_small_on_fine_detail():
    rows, cols = np.mgrid[0:96, 0:96]
    stripes = np.where((cols // 2) % 2 == 0, 230, 20)
    image = np.stack([stripes, stripes, 255 - stripes], axis=-1).astype(np.uint8)
    missing = random_mask(image.shape[:2], 0.3, seed=1)
    choice = choose_k(image, missing, backend=CpuBackend(), method="knn", seed=0)
    assert choice.k <= 4  # 2-pixel stripes: far neighbours are the other colour


def test_auto_k_under_every_backend(any_backend):
    image = gradient_image(40, 40)
    missing = random_mask(image.shape[:2], 0.3, seed=1)
    choice = choose_k(any_backend.to_device(image), any_backend.to_device(missing),
                      backend=any_backend, method="knn_linear", seed=0, tile=16)
    reference = choose_k(image, missing, backend=CpuBackend(), method="knn_linear", seed=0,
                         tile=16)
    assert choice.k == reference.k
    # the neighbours are re-ranked in float64 (exact_kneighbors), so only float32 sums in a
    # device's order differ: ~1e-6 relative
    np.testing.assert_allclose(choice.rmse, reference.rmse, rtol=1e-4)


def test_auto_k_does_not_depend_on_tiles():
    image = gradient_image(50, 60)
    missing = random_mask(image.shape[:2], 0.3, seed=1)
    a = choose_k(image, missing, backend=CpuBackend(), method="knn", tile=16)
    b = choose_k(image, missing, backend=CpuBackend(), method="knn", tile=512)
    assert a.k == b.k
    np.testing.assert_allclose(a.rmse, b.rmse, rtol=1e-5)



def test_cuda_glue_runs_inpaint_with_standins(fake_cuda):
    """cuML brute force (float32 distances) through the cuda backend's glue: same fill."""
    image = gradient_image(40, 50)
    missing = random_mask(image.shape[:2], 0.3, seed=2, holes=[(10, 10, 12)])
    on_device = inpaint(fake_cuda.to_device(image), fake_cuda.to_device(missing),
                        backend=fake_cuda, k=8, method="knn_linear", tile=16)
    out = fake_cuda.to_host(on_device)
    reference = inpaint(image, missing, backend=CpuBackend(), k=8, method="knn_linear", tile=16)
    # float32 distances swap near-ties; the op re-ranks them in float64: the cpu's fill
    np.testing.assert_array_equal(out, reference)
    choice = choose_k(fake_cuda.to_device(image), fake_cuda.to_device(missing),
                      backend=fake_cuda, method="knn", tile=16)
    expected = choose_k(image, missing, backend=CpuBackend(), method="knn", tile=16)
    assert choice.k == expected.k
    np.testing.assert_allclose(choice.rmse, expected.rmse, rtol=1e-6)


def test_auto_k_on_a_large_image_hides_whole_tiles_up_to_the_cap():
    image = gradient_image(64, 64)
    missing = random_mask(image.shape[:2], 0.3, seed=1)
    full = choose_k(image, missing, backend=CpuBackend(), method="knn", tile=16)
    capped = choose_k(image, missing, backend=CpuBackend(), method="knn", tile=16,
                      holdout_max=40)
    assert full.held_out > 100
    # whole tiles (16x16: about 9 hidden pixels each) until 40 are hidden
    assert 40 <= capped.held_out < 40 + 30
    assert len(capped.rmse) == 20
    # a smaller sample, the same curve: the full sweep's choice is near the capped minimum
    assert capped.rmse[full.k - 1] <= 1.1 * min(capped.rmse)


def test_deep_pixels_in_bands_match_one_band(monkeypatch):
    import gpupix.ops.inpaint as module

    image = gradient_image(48, 40, seed=8)
    missing = random_mask(image.shape[:2], 0.2, seed=8, holes=[(8, 6, 24)])
    one = inpaint(image, missing, backend=CpuBackend(), k=6, method="knn")
    monkeypatch.setattr(module, "_DEEP_BAND", 40)  # one row per band
    banded = inpaint(image, missing, backend=CpuBackend(), k=6, method="knn")
    np.testing.assert_array_equal(one, banded)
