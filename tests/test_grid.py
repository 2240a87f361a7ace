"""GridIndex's compact cell table and fixed-point in-cell offsets against a dense table built here."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from mmsold_cli.neighbors.grid_numba import _first_point
from mmsold_cli.neighbors.indexes import GridIndex


def _sphere(rng, n):
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True) * [3.0, 2.0, 1.0]


def _clouds(rng):
    """(name, X, radius): sparse sets whose bounding boxes are mostly empty cells and rows."""
    yield "gaps1", np.concatenate([rng.random(150), 5 + rng.random(150), [2.5]])[:, None], None
    yield "clusters2", np.concatenate([rng.standard_normal((200, 2)) * 0.05 + c for c in ((0, 0), (3, 1), (1, 4))]), 0.4
    yield "surface3", _sphere(rng, 1200), 0.4
    # a lattice of multiples of the cell side: points on cell faces, the largest at lo + (dims − 1) s exactly
    g = np.arange(0.0, 2.01, 0.25)
    yield "lattice3", np.stack(np.meshgrid(g, g[:5], g[::2], indexing="ij"), -1).reshape(-1, 3) - 1.0, 0.5
    yield "dupes3", np.repeat(_sphere(rng, 40), 7, axis=0), None  # exact duplicates: several points a cell
    yield "flat2", rng.standard_normal((300, 2)) * [1.0, 0.0], None  # zero extent: one cell on that axis
    yield "one_point2", np.tile([[0.3, -1.0]], (25, 1)), None


def _dense(g, X):
    """The dense table of every cell of the bounding box (what the grid used to store), the cells' ids and indices."""
    cells = np.minimum(np.floor((X - g.lo) / g.s), g.dims - 1).astype(np.int64)
    cid = cells @ np.cumprod(np.concatenate([[1], g.dims[:-1]]))
    return np.searchsorted(np.sort(cid), np.arange(np.prod(g.dims) + 1)), cid, cells


@pytest.mark.parametrize("which", range(7))
def test_compact_table_equals_dense(rng, which):
    name, X, radius = list(_clouds(rng))[which]
    g = GridIndex(X, radius=radius)
    n, d = X.shape
    starts, cid, cells = _dense(g, X)
    # the points sorted cell by cell, ties in their original order
    np.testing.assert_array_equal(g.perm, np.argsort(cid, kind="stable"))
    np.testing.assert_array_equal(g.Xs, X[g.perm])
    assert g.perm.dtype == np.int32 and g.F.dtype == np.uint32 and g.F.shape == (max(d, 2), n)
    # the tables list exactly the non-empty cells, each with its first point
    nonempty = np.flatnonzero(np.diff(starts))
    np.testing.assert_array_equal(g.cell_start, np.append(starts[nonempty], n))
    bits = np.unpackbits(g.cell_bits.view(np.uint8), bitorder="little")
    np.testing.assert_array_equal(np.flatnonzero(bits), nonempty)
    # any cell id (one past the last cell included) finds its dense entry, so any run of cells [a, b] its
    # points starts[a] .. starts[b + 1]: every row and x range as the dense table, empty ones included
    ids = np.arange(np.prod(g.dims) + 1)
    got = np.array([_first_point(g.cell_bits, g.cell_rank, g.cell_start, b) for b in ids])
    np.testing.assert_array_equal(got, starts)
    g0 = g.dims[0]
    empty_runs = [(r, a) for r in range(len(starts) // g0) for a in range(g0 - 1)
                  if starts[r * g0 + a] == starts[r * g0 + a + 2]]
    assert empty_runs or name == "one_point2"  # runs that hit no non-empty cell were asked
    # offsets in the cell in units of 2^-24, the cell index mod 256 in the top byte
    np.testing.assert_array_equal(g.F[:d] >> 24, (cells[g.perm] & 255).T)
    off = (g.F[:d] & 0xFFFFFF).T * 2.0**-24
    np.testing.assert_allclose(cells[g.perm] + off, (g.Xs - g.lo) / g.s, rtol=0, atol=2**-25 + 1e-15)
    assert not g.F[d:].any()
    if name == "lattice3":  # points on cell corners, the top ones at lo + (dims − 1) s: the last cells' corners
        assert not (g.F & 0xFFFFFF).any() and np.all(g.Xs.max(axis=0) == g.lo + (g.dims - 1) * g.s)


def test_compact_table_in_1d(rng):
    """In 1-D all cells are one row (here ~10^6 cells, most empty, beyond 256 of them the top byte repeats)."""
    X = np.sort(rng.random(3000))[:, None] ** 3  # denser at 0: most cells to the right are empty
    g = GridIndex(X, radius=1e-5, max_cells=10**6)
    assert g.dims[0] > 10**5
    starts, _, _ = _dense(g, X)
    for b in np.concatenate([rng.integers(0, g.dims[0] + 1, 3000), [0, g.dims[0] - 1, g.dims[0]]]):
        assert _first_point(g.cell_bits, g.cell_rank, g.cell_start, b) == starts[b]
    Q = X[::7] + 1e-4
    d2, idx = g.query(Q, 5)
    np.testing.assert_allclose(d2, cKDTree(X).query(Q, 5)[0] ** 2, rtol=1e-12, atol=1e-15)


def test_table_memory_follows_the_points(rng):
    """A 3-D surface in a bounding box of ~10^8 cells: the tables take 4 bytes a non-empty cell plus 12 per 64
    cells, and building them makes no array over all cells (the old dense table: 400 MB)."""
    import tracemalloc

    X = _sphere(rng, 20_000)
    g = GridIndex(X, radius=0.02, max_cells=10**8)
    n_cells = int(np.prod(g.dims))
    assert n_cells > 2 * 10**7
    assert g.F.nbytes + g.perm.nbytes == 16 * len(X)
    assert g.cell_start.nbytes + g.cell_bits.nbytes + g.cell_rank.nbytes <= 4 * len(g.cell_start) + 12 * (
        n_cells // 64 + 1)
    tracemalloc.start()
    GridIndex(X, radius=0.02, max_cells=10**8)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40 * len(X) + n_cells // 4 + 2**20  # the occupancy bits and ranks: 12 bytes per 64 cells
