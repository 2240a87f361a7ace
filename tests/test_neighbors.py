"""Neighbour indices against scipy's exact k-d tree: the grid, brute-force BLAS and the training graph."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from mmsold_cli.datasets import moons
from mmsold_cli.errors import MmsoldError
from mmsold_cli.neighbors.indexes import BruteIndex, GridIndex, build_index, choose_index, have_faiss, knn_graph


def _same_neighbours(d2, idx, X, Q, k):
    """Distances equal the k-d tree's; every index found is at its stated distance (ties may differ)."""
    dk, _ = cKDTree(X).query(Q, k)
    dk = dk.reshape(len(Q), k) ** 2
    np.testing.assert_allclose(d2, dk, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.sum((X[idx] - Q[:, None, :]) ** 2, axis=-1), d2, rtol=1e-12, atol=1e-12)
    assert np.all(np.diff(d2, axis=1) >= 0)


def _clouds(rng):
    yield "moons", moons(800, random_state=1)
    yield "gauss3", rng.standard_normal((1500, 3)) * [2.0, 1.0, 0.3]
    yield "line1", rng.random((500, 1))
    yield "flat2", rng.standard_normal((400, 2)) * [1.0, 0.0]  # zero extent along one axis
    yield "dupes", np.repeat(rng.standard_normal((50, 2)), 6, axis=0)  # many exact ties


@pytest.mark.parametrize("k", [1, 7, 16])
def test_grid_equals_kdtree(rng, k):
    for _name, X in _clouds(rng):
        d = X.shape[1]
        Q = np.concatenate([
            X[rng.integers(0, len(X), 300)] + 0.05 * rng.standard_normal((300, d)),
            20.0 * rng.standard_normal((20, d)),  # far outside the grid
        ])
        g = GridIndex(X, k=k)
        d2, idx = g.query(Q, k)
        _same_neighbours(d2, idx, X, Q, k)


def test_grid_any_cell_size_is_exact(rng):
    """Cell size only changes the speed: a grid far too fine or far too coarse is still exact."""
    X = moons(600, random_state=2)
    Q = X[:100] + 0.3 * rng.standard_normal((100, 2))
    for radius in (1e-4, 0.05, 10.0):
        d2, idx = GridIndex(X, radius=radius, max_cells=10**5).query(Q, 9)
        _same_neighbours(d2, idx, X, Q, 9)


@pytest.mark.parametrize("d", [6, 16])
def test_brute_equals_kdtree(rng, d):
    """d = 6: float64 products; d = 16: float32 screen + certified float64 re-rank."""
    X = rng.standard_normal((3000, d)) * np.linspace(2.0, 0.2, d) + 5.0  # offset: large ‖q‖, ‖x‖
    Q = np.concatenate([X[:300] + 0.3 * rng.standard_normal((300, d)), 4 * rng.standard_normal((50, d))])
    d2, idx = BruteIndex(X).query(Q, 12)
    _same_neighbours(d2, idx, X, Q, 12)


def test_screen_flags_rows_it_cannot_certify(rng):
    """Exact ties across the screen's margin cannot be certified; those rows are searched in float64."""
    from mmsold_cli.neighbors.brute_numba import screened_knn

    X = np.repeat(rng.standard_normal((40, 10)), 10, axis=0)  # every point ten times
    b = BruteIndex(X)
    Q = X[::10] + 1e-3
    d2, idx, bad = screened_knn(X, X.astype(np.float32), b.sqnorm, Q, 5, margin=3)
    assert bad.size == len(Q)  # the 6th..10th copies tie with the 5th
    d2, idx = b.query(Q, 5)
    _same_neighbours(d2, idx, X, Q, 5)


def test_knn_graph_excludes_self_and_is_exact(rng):
    X = rng.standard_normal((700, 2))
    for kind in ("kdtree", "brute", "grid"):
        d2, idx = knn_graph(X, 5, build_index(X, kind))
        assert not np.any(idx == np.arange(700)[:, None])
        dk, _ = cKDTree(X).query(X, 6)
        np.testing.assert_allclose(d2, dk[:, 1:] ** 2, atol=1e-12)


def test_grid_refuses_high_dimension(rng):
    with pytest.raises(MmsoldError, match="dimension"):
        build_index(rng.standard_normal((50, 5)), "grid")


def test_choose_index_by_size_and_dimension():
    assert choose_index(2000, 2) == "kdtree"
    assert choose_index(60_000, 64) == "brute"
    assert choose_index(1_000_000, 64) == ("ivf" if have_faiss() else "nndescent")


def test_screen_without_a_float32_copy_is_the_same_search(rng):
    """screened_knn converting X chunk by chunk (X32=None) equals the run with a stored float32 copy."""
    from mmsold_cli.neighbors.brute_numba import screened_knn

    X = rng.standard_normal((5000, 16))
    sqn = np.einsum("ij,ij->i", X, X)
    for m in (3, 700):
        Q = rng.standard_normal((m, 16))
        a = screened_knn(X, X.astype(np.float32), sqn, Q, 8, tile=(256, 2048))
        b = screened_knn(X, None, sqn, Q, 8, tile=(256, 2048))
        c = screened_knn(X, None, sqn, Q, 8)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(a[1][np.setdiff1d(np.arange(m), a[2])],
                                      c[1][np.setdiff1d(np.arange(m), c[2])])


def _ivf_model(rng, tmp_path):
    from mmsold_cli.model import Model

    X = np.repeat(rng.standard_normal((40, 16)), 75, axis=0) + 0.3 * rng.standard_normal((3000, 16))
    return Model(index="ivf").fit(X), X


def test_ivf_lists_rebuild_the_same_index(rng, tmp_path):
    """A model file keeps the ivf index's lists: the loaded index is built from them (no k-means, no assignment)
    and answers as the first did; a file without them still loads and builds its own."""
    faiss = pytest.importorskip("faiss")
    import h5py

    from mmsold_cli.io.model_file import load_model, save_model
    from mmsold_cli.neighbors.indexes import IVFIndex

    model, X = _ivf_model(rng, tmp_path)
    Q = X[rng.integers(0, len(X), 300)] + 0.2 * rng.standard_normal((300, 16))
    ref = model.index_.query(Q, 8)
    centroids, assign = model.index_.lists()
    assert centroids.shape == (model.index_.index.nlist, 16) and assign.shape == (3000,)
    nearest = np.argmin(((X[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)  # each point in its centroid's list
    assert assign.min() >= 0 and np.mean(assign == nearest) > 0.999
    path = save_model(model, tmp_path / "m.h5")
    loaded = load_model(path)

    def no_training(*args, **kwargs):
        raise AssertionError("the k-means ran")

    trained = faiss.IndexIVFFlat.train
    faiss.IndexIVFFlat.train = no_training
    try:
        got = loaded.index_.query(Q, 8)
    finally:
        faiss.IndexIVFFlat.train = trained
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_array_equal(got[0], ref[0])
    for a, b in zip(loaded.index_.lists(), (centroids, assign)):
        np.testing.assert_array_equal(a, b)
    # an IVFIndex given the lists directly: the same
    np.testing.assert_array_equal(IVFIndex(X, lists=(centroids, assign)).query(Q, 8)[1], ref[1])

    with h5py.File(path, "a") as f:  # a file from before the lists: its own k-means, the same kind of answers
        del f["ivf_centroids"], f["ivf_lists"]
    old = load_model(path)
    assert old.index_.lists() is None
    d2, _ = old.index_.query(Q, 8)
    assert np.all(np.diff(d2, axis=1) >= 0) and old.index_.lists() is not None


@pytest.mark.parametrize("damage", ["out of range", "wrong shape"])
def test_damaged_ivf_lists_are_refused(rng, tmp_path, damage):
    pytest.importorskip("faiss")
    import h5py

    from mmsold_cli.io.model_file import load_model, save_model

    model, _ = _ivf_model(rng, tmp_path)
    path = save_model(model, tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        lists = f["ivf_lists"][()]
        del f["ivf_lists"]
        if damage == "out of range":
            lists[7] = len(f["ivf_centroids"])
        else:
            lists = lists[:-1]
        f["ivf_lists"] = lists
    with pytest.raises(MmsoldError, match="damaged model file: /ivf_"):
        load_model(path)


def test_candidate_distances_kernel_equals_numpy(rng):
    """The float64 distances an approximate index sorts its answers by: the kernel and its NumPy oracle agree,
    and a −1 (no candidate) is infinitely far, not the last training point."""
    from mmsold_cli.neighbors.brute_numba import candidate_sqdist, candidate_sqdist_numpy

    X = rng.standard_normal((500, 37)) * 10.0
    Q = rng.standard_normal((5000, 37)) * 10.0
    idx = rng.integers(0, 500, (5000, 9))
    idx[::7, -2:] = -1
    a, b = candidate_sqdist(X, Q, idx), candidate_sqdist_numpy(X, Q, idx)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
    assert np.isinf(a[::7, -2:]).all() and np.isfinite(a[1::7]).all()
    j = 3
    assert a[j, 0] == pytest.approx(((X[idx[j, 0]] - Q[j]) ** 2).sum(), rel=1e-13)
