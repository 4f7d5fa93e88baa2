import numpy as np
import pytest
import scipy.sparse as sparse
from scipy.sparse.linalg import spsolve

from gpupix.backends import CpuBackend
from gpupix.ops import inpaint_smooth
from gpupix.ops.inpaint import choose_k, inpaint
from gpupix.ops.inpaint_smooth import ENERGIES, choose_energy, fill, hole_interiors
from tests.conftest import gradient_image


def random_mask(shape, fraction, seed=0, holes=()):
    missing = np.random.default_rng(seed).random(shape) < fraction
    for y, x, size in holes:
        missing[y:y + size, x:x + size] = True
    return missing


def smooth_image(height=48, width=56):
    """Smooth colour fields without noise: what a spline should get nearly right."""
    y, x = np.mgrid[0:height, 0:width].astype(float)
    image = np.stack([128 + 90 * np.sin(x / 9.0) * np.cos(y / 11.0),
                      60 + 2.0 * y + 0.02 * (x - 20) ** 2,
                      200 - 1.5 * x + 30 * np.cos((x + y) / 13.0)], axis=-1)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def exact_fill(image, missing, tension=0.0, stiffness=0.0):
    """The minimiser of the energy by a direct sparse solve, built independently: the
    Neumann Laplacian as a Kronecker sum of 1-D second differences (SciPy, float64)."""
    height, width = missing.shape

    def second_difference(n):
        diagonal = np.full(n, -2.0)
        diagonal[0] = diagonal[-1] = -1.0
        return sparse.diags([np.ones(n - 1), diagonal, np.ones(n - 1)], [-1, 0, 1])

    lap = (sparse.kron(sparse.identity(height), second_difference(width))
           + sparse.kron(second_difference(height), sparse.identity(width))).tocsr()
    energy = (lap @ lap - tension * lap - stiffness * (lap @ lap @ lap)).tocsr()
    unknown, known = np.flatnonzero(missing.ravel()), np.flatnonzero(~missing.ravel())
    values = image.reshape(-1, image.shape[2]).astype(float)
    rhs = -energy[unknown][:, known] @ values[known]
    solution = spsolve(energy[unknown][:, unknown].tocsc(), rhs)
    out = values.copy()
    out[unknown] = solution.reshape(len(unknown), -1)
    return out.reshape(image.shape)


def cpu_backend(stencil_block):
    backend = CpuBackend()
    backend.stencil_block = stencil_block
    return backend


@pytest.mark.parametrize("stencil_block", [None, 512], ids=["whole", "row blocks"])
@pytest.mark.parametrize("energy", [(0.0, 0.0), (0.3, 0.0), (0.03, 0.3)])
def test_fill_converges_to_the_exact_minimiser(energy, stencil_block):
    image = smooth_image()
    # scattered gaps and a hole, whose interior is solved directly
    missing = random_mask(image.shape[:2], 0.3, seed=1, holes=[(12, 15, 14)])
    assert hole_interiors(~missing).any()
    backend = cpu_backend(stencil_block)
    out = fill(image.astype(np.float32), missing, ~missing, backend=backend,
               tension=energy[0], stiffness=energy[1], fine_iterations=400)
    expected = np.clip(exact_fill(image, missing, *energy), 0, 255)
    np.testing.assert_allclose(out[missing], expected[missing], atol=0.05)
    np.testing.assert_array_equal(out[~missing], image[~missing])


def test_default_steps_are_close_to_the_exact_biharmonic_fill():
    image = gradient_image(60, 70, seed=3)
    missing = random_mask(image.shape[:2], 0.3, seed=2, holes=[(20, 25, 16)])
    out = inpaint(image, missing, backend=CpuBackend(), k=1, method="smooth")
    expected = np.clip(np.rint(exact_fill(image, missing)), 0, 255)
    difference = np.abs(out.astype(int) - expected)[missing]
    assert difference.mean() < 0.3 and difference.max() <= 4  # a few steps, not converged


def test_smooth_beats_the_neighbour_mean_on_a_smooth_image():
    image = smooth_image()
    missing = random_mask(image.shape[:2], 0.3, seed=4, holes=[(10, 30, 12)])
    backend = CpuBackend()

    def error(out):
        return np.sqrt(((out.astype(float) - image) ** 2)[missing].mean())

    smooth = error(inpaint(image, missing, backend=backend, k=None, method="smooth"))
    knn = error(inpaint(image, missing, backend=backend, k=8, method="knn"))
    linear = error(inpaint(image, missing, backend=backend, k=8, method="knn_linear"))
    assert smooth < 0.5 * knn and smooth < linear


@pytest.mark.parametrize("reuse_min", [1 << 40, 1], ids=["fresh arrays", "kept arrays"])
def test_smooth_fills_only_missing_pixels(any_backend, monkeypatch, reuse_min):
    monkeypatch.setattr(inpaint_smooth, "REUSE_MIN", reuse_min)
    image = gradient_image(30, 36)
    missing = random_mask(image.shape[:2], 0.3, holes=[(8, 10, 9)])
    out = any_backend.to_host(inpaint(any_backend.to_device(image),
                                      any_backend.to_device(missing), backend=any_backend,
                                      k=None, method="smooth"))
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out[~missing], image[~missing])
    assert np.abs(out.astype(int) - image)[missing].mean() < 10
    if any_backend.name != "cpu":  # the cpu result is the oracle for the others
        cpu = CpuBackend()
        expected = inpaint(image, missing, backend=cpu, k=None, method="smooth")
        assert np.abs(out.astype(int) - expected).max() <= 1


def test_pixels_neither_missing_nor_known_are_kept_and_ignored():
    image = gradient_image(24, 24, seed=5)
    missing = random_mask(image.shape[:2], 0.2, seed=6)
    transparent = np.zeros_like(missing)
    transparent[:4, :] = True
    transparent &= ~missing
    poisoned = image.copy()
    poisoned[transparent] = 255
    out = inpaint(poisoned, missing, backend=CpuBackend(), k=1, method="smooth",
                  known=~transparent)
    np.testing.assert_array_equal(out[transparent], poisoned[transparent])
    clean = inpaint(image, missing, backend=CpuBackend(), k=1, method="smooth",
                    known=~transparent)
    np.testing.assert_array_equal(out[missing], clean[missing])  # their colour never leaks


def test_tile_does_not_change_the_smooth_fill():
    image = gradient_image(40, 50, seed=7)
    missing = random_mask(image.shape[:2], 0.3, seed=8, holes=[(5, 5, 12)])
    backend = CpuBackend()
    np.testing.assert_array_equal(
        inpaint(image, missing, backend=backend, k=None, method="smooth", tile=16),
        inpaint(image, missing, backend=backend, k=None, method="smooth", tile=1024))


def test_choose_energy_scores_tension_only_when_there_are_holes():
    image = gradient_image(80, 90, seed=9)
    backend = CpuBackend()
    scattered = random_mask(image.shape[:2], 0.3, seed=10)
    choice = choose_energy(image.astype(np.float32), scattered, ~scattered, backend=backend,
                           window=48)
    assert choice.held_out > 0 and choice.tension == 0.0
    assert [ENERGIES[i][0] for i in choice.tried] == [0.0, 0.0]
    holes = random_mask(image.shape[:2], 0.1, seed=11, holes=[(30, 30, 14)])
    choice = choose_energy(image.astype(np.float32), holes, ~holes, backend=backend, window=48)
    tensions = {ENERGIES[i][0] for i in choice.tried}
    assert tensions == set(inpaint_smooth.TENSIONS)
    assert len(choice.rmse) == len(choice.tried)


def test_auto_k_for_smooth_numbers_the_energy(any_backend):
    image = gradient_image(40, 48, seed=12)
    missing = random_mask(image.shape[:2], 0.1, seed=13, holes=[(10, 12, 10)])
    choice = choose_k(any_backend.to_device(image), missing, backend=any_backend,
                      method="smooth")
    assert 1 <= choice.k <= len(ENERGIES) and choice.held_out > 0
    expected = choose_k(image, missing, backend=CpuBackend(), method="smooth")
    assert choice.k == expected.k
    np.testing.assert_allclose(choice.rmse, expected.rmse, rtol=1e-4)


def test_cuda_glue_runs_smooth_with_standins(fake_cuda):
    """The hole interiors go through the cuda backend's sparse solve (cuSOLVER stand-in)."""
    image = gradient_image(40, 50)
    missing = random_mask(image.shape[:2], 0.2, seed=2, holes=[(10, 10, 12)])
    out = fake_cuda.to_host(inpaint(fake_cuda.to_device(image), fake_cuda.to_device(missing),
                                    backend=fake_cuda, k=None, method="smooth"))
    expected = inpaint(image, missing, backend=CpuBackend(), k=None, method="smooth")
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert "spsolve" in fake_cuda._cupy.calls


def test_solve_sparse_sums_duplicates_on_every_backend(any_backend):
    rows = np.array([0, 0, 0, 1, 1, 1, 2, 2], np.int64)
    cols = np.array([0, 0, 1, 0, 1, 2, 1, 2], np.int64)
    values = np.array([1.0, 1.0, -1.0, -1.0, 2.0, -1.0, -1.0, 2.0])  # (0, 0) twice: 2
    matrix = np.array([[2.0, -1, 0], [-1, 2, -1], [0, -1, 2]])
    rhs = np.array([[2.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    solution = any_backend.to_host(any_backend.solve_sparse(
        *(any_backend.to_device(a) for a in (rows, cols, values, rhs))))
    np.testing.assert_allclose(solution, np.linalg.solve(matrix, rhs), atol=1e-12)


def test_holes_too_large_to_factorise_are_left_to_the_iterations(monkeypatch):
    image = smooth_image()
    missing = random_mask(image.shape[:2], 0.2, seed=14, holes=[(10, 12, 16)])
    backend = CpuBackend()
    exact = fill(image.astype(np.float32), missing, ~missing, backend=backend)
    monkeypatch.setattr(inpaint_smooth, "DIRECT_MAX", 10)
    calls = []
    monkeypatch.setattr(backend, "solve_sparse", lambda *a: calls.append(a))
    iterative = fill(image.astype(np.float32), missing, ~missing, backend=backend)
    assert not calls
    np.testing.assert_array_equal(iterative[~missing], image[~missing])
    assert np.abs(iterative - exact)[missing].mean() < 2.0  # close, not exact


@pytest.mark.parametrize("energy", [(0.0, 0.0), (0.3, 0.3)])
def test_steps_in_kept_work_arrays_match_steps_in_fresh_ones(monkeypatch, energy):
    """The conjugate-gradient steps give the same fill whether their arrays are kept in a
    workspace (large images) or made afresh (small ones)."""
    image = smooth_image(40, 44)
    missing = random_mask(image.shape[:2], 0.3, seed=3, holes=((8, 10, 12),))
    tension, stiffness = energy
    fills = []
    for reuse_min in (1 << 40, 1):
        monkeypatch.setattr(inpaint_smooth, "REUSE_MIN", reuse_min)
        fills.append(fill(image.astype(np.float32), missing, ~missing, backend=CpuBackend(),
                          tension=tension, stiffness=stiffness))
    assert np.abs(fills[0][missing] - image[missing]).mean() > 0.01  # something was filled
    np.testing.assert_allclose(fills[1], fills[0], atol=1e-3)


@pytest.mark.parametrize("stiffness", [0.0, 0.3])
@pytest.mark.parametrize("xp_name", ["numpy", "array_api_strict"])
def test_the_operator_in_row_blocks_equals_it_on_the_whole_image(xp_name, stiffness):
    """Each block reaches past its rows by the operator's reach: its rows, borders included,
    come out as from the whole image (the order of the arithmetic per element is the same)."""
    xp = pytest.importorskip(xp_name)
    rng = np.random.default_rng(7)
    host = rng.random((3, 37, 29)).astype(np.float32) * 255
    mask = (rng.random((1, 37, 29)) < 0.4).astype(np.float32)
    u, unknown = xp.asarray(host), xp.asarray(mask)
    blocks = inpaint_smooth.row_blocks((3, 37, 29), 100)
    assert blocks is not None and len(blocks) == 5  # 8 rows each, the last 5
    whole = np.asarray(inpaint_smooth.energy_operator(u, 0.03, stiffness))
    out = xp.zeros_like(u)
    inpaint_smooth.blocked_energy_operator(u, out, blocks, tension=0.03, stiffness=stiffness,
                                           workspace={})
    np.testing.assert_array_equal(np.asarray(out), whole)
    inner = inpaint_smooth.blocked_energy_operator(u, out, blocks, tension=0.03,
                                                   stiffness=stiffness, workspace={},
                                                   mask=unknown)
    np.testing.assert_array_equal(np.asarray(out), whole * mask)
    expected = (host.astype(np.float64) * whole * mask).sum(axis=(1, 2))
    np.testing.assert_allclose(np.asarray(inner)[:, 0, 0], expected, rtol=1e-5)


def test_row_blocks_only_where_the_image_outgrows_eight_blocks():
    assert inpaint_smooth.row_blocks((3, 512, 512), 1 << 18) is None  # 0.75 M elements
    blocks = inpaint_smooth.row_blocks((3, 2048, 2048), 1 << 18)
    assert blocks[0] == (0, 42) and blocks[-1][1] == 2048 and len(blocks) == 49
    assert inpaint_smooth.row_blocks((3, 2048, 2048), None) is None


@pytest.mark.parametrize("energy", [(0.0, 0.0), (0.03, 0.3)])
def test_steps_in_row_blocks_match_whole_image_steps(energy):
    """The two-sweep blocked steps (direction update lagging ahead of the operator) are
    the whole-array steps reordered: the same fill up to rounding."""
    image = smooth_image(64, 44)
    missing = random_mask(image.shape[:2], 0.3, seed=5, holes=((20, 10, 12),))
    fills = [fill(image.astype(np.float32), missing, ~missing, backend=cpu_backend(block),
                  tension=energy[0], stiffness=energy[1]) for block in (None, 300)]
    assert np.abs(fills[0][missing] - image[missing]).mean() > 0.01  # something was filled
    np.testing.assert_allclose(fills[1], fills[0], atol=2e-3)
