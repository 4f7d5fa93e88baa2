"""The cpu backend's sparse solve: banded Cholesky per connected block, SuperLU for the rest."""

import numpy as np
import pytest
import scipy.sparse as sparse
from scipy.sparse.linalg import spsolve

from gpupix.backends import cpu
from gpupix.backends.cpu import solve_spd


def grid_energy(height, width, tension=0.1):
    """L^2 - tension L + I on a height x width grid (Neumann borders): symmetric positive
    definite, 13 entries a row, a band of twice the width in row-major order."""
    def second_difference(n):
        diagonal = np.full(n, -2.0)
        diagonal[0] = diagonal[-1] = -1.0
        return sparse.diags([np.ones(n - 1), diagonal, np.ones(n - 1)], [-1, 0, 1])

    lap = (sparse.kron(sparse.identity(height), second_difference(width))
           + sparse.kron(second_difference(height), sparse.identity(width)))
    return (lap @ lap - tension * lap + sparse.identity(height * width)).tocoo()


def shuffled_triplets(blocks, rng):
    """The blocks as one block-diagonal matrix whose unknowns are interleaved (as two holes
    side by side are in row-major order), each entry split into two duplicates."""
    matrix = sparse.block_diag(blocks).tocoo()
    n = matrix.shape[0]
    order = rng.permutation(n)  # new position of each unknown
    rows, cols = order[matrix.row], order[matrix.col]
    half = matrix.data * rng.random(matrix.data.shape)
    triplets = (np.concatenate([rows, rows]), np.concatenate([cols, cols]),
                np.concatenate([half, matrix.data - half]))
    dense_order = sparse.coo_matrix((matrix.data, (rows, cols)), shape=(n, n)).tocsc()
    return triplets, dense_order


@pytest.mark.parametrize("band_max", [cpu.BAND_MAX, 0], ids=["banded", "all SuperLU"])
def test_blocks_solved_as_bands_or_by_superlu_match_a_direct_solve(monkeypatch, band_max):
    monkeypatch.setattr(cpu, "BAND_MAX", band_max)
    rng = np.random.default_rng(0)
    # two holes, one single unknown, and a block too wide for a band (90 columns)
    blocks = [grid_energy(9, 7), grid_energy(5, 12, tension=0.0),
              sparse.identity(1) * 3.0, grid_energy(4, 90)]
    (rows, cols, values), matrix = shuffled_triplets(blocks, rng)
    rhs = rng.normal(size=(matrix.shape[0], 3))
    got = solve_spd(rows, cols, values, rhs)
    np.testing.assert_allclose(got, spsolve(matrix, rhs), rtol=1e-8, atol=1e-10)


def test_a_block_that_is_not_positive_definite_is_left_to_superlu():
    rng = np.random.default_rng(1)
    indefinite = (grid_energy(6, 6) - 2.5 * sparse.identity(36)).tocoo()  # still regular
    (rows, cols, values), matrix = shuffled_triplets([grid_energy(5, 5), indefinite], rng)
    rhs = rng.normal(size=(matrix.shape[0], 2))
    np.testing.assert_allclose(solve_spd(rows, cols, values, rhs), spsolve(matrix, rhs),
                               rtol=1e-8, atol=1e-10)
