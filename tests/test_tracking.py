"""Tracked neighbours: the numba re-rank equals its NumPy reference and keeps recall ≥ 0.99 against exact search."""

import numpy as np

from mmsold_cli import fit_moments, sample
from mmsold_cli.datasets import moons
from mmsold_cli.neighbors.tracking import TrackedNeighbours, recall, track_numpy
from mmsold_cli.neighbors.tracking_numba import track


def _trajectory(n=600, P=200, steps=25):
    X = moons(n, random_state=4)
    model = fit_moments(X)
    Zs = []
    sample(model, P, random_state=0, steps=steps, callback=lambda info: Zs.append(info["z"].reshape(-1, 2).copy()))
    return model, Zs


def test_kernel_equals_numpy(rng):
    X = rng.standard_normal((400, 3))
    from mmsold_cli.neighbors.indexes import knn_graph

    _, graph = knn_graph(X, 8)
    Z = rng.standard_normal((80, 3))
    pool = rng.integers(0, 400, (80, 12))
    d_nb, i_nb = track(X, graph, Z, pool, 10)
    d_np, i_np = track_numpy(X, graph, Z, pool, 10)
    np.testing.assert_array_equal(i_nb, i_np)
    np.testing.assert_allclose(d_nb, d_np, rtol=1e-14)


def test_recall_along_a_langevin_run():
    """Neighbours tracked through a real MM-SOLD run match exact search (recall ≥ 0.99 at every step)."""
    model, Zs = _trajectory()
    for c in (16, 48):
        tr = TrackedNeighbours(model.X_, model.knn_idx_, model.index_, c)
        recs = []
        for z in Zs:
            d2, idx = tr.query(z)
            exact = model.index_.query(z, c)[1]
            recs.append(recall(idx, exact))
            np.testing.assert_allclose(d2, np.sum((model.X_[idx] - z[:, None]) ** 2, -1), rtol=1e-12)
        assert min(recs) >= 0.99, (c, recs)
        assert tr.n_tracked > tr.n_full  # most rows were re-ranked, not searched


def test_stale_rows_are_queried_afresh(rng):
    model, Zs = _trajectory(steps=2)
    tr = TrackedNeighbours(model.X_, model.knn_idx_, model.index_, 16, stale=0.5)
    tr.query(Zs[0])
    jumped = Zs[0] + 5.0  # every particle far away: the graph walk from the old pool cannot reach
    full_before = tr.n_full
    d2, idx = tr.query(jumped)
    assert tr.n_full - full_before == len(jumped)
    assert recall(idx, model.index_.query(jumped, 16)[1]) == 1.0


def test_new_batch_shape_starts_afresh(rng):
    model, Zs = _trajectory(steps=2)
    tr = TrackedNeighbours(model.X_, model.knn_idx_, model.index_, 8)
    tr.query(Zs[0])
    z = Zs[1][:50]
    d2, idx = tr.query(z)
    assert recall(idx, model.index_.query(z, 8)[1]) == 1.0
    assert tr.n_full == len(Zs[0]) + 50


def _latent_like(rng, n=3000, d=12):
    """Points near a 3-D curved sheet in 12-D, the regime of latent codes (d > 3)."""
    u = rng.uniform(-1, 1, (n, 3))
    A = rng.standard_normal((3, d))
    return np.tanh(u @ A) + 0.05 * rng.standard_normal((n, d))


def test_pool_search_tracks_and_queries(rng):
    model = fit_moments(_latent_like(rng))
    res = sample(model, 300, random_state=0, steps=8, search="pool")
    assert res.settings["search"] == "pool"
    assert res.diagnostics["tracked_rows"] > res.diagnostics["full_query_rows"] >= 300
    assert sample(model, 300, random_state=0, steps=2, sampler="cfdm").settings["search"] == "index"
    assert sample(model, 300, random_state=0, steps=2, search="index").settings["search"] == "index"


def test_each_batch_starts_from_a_full_query(rng):
    """Equal-sized batches must not inherit the previous batch's neighbours: one full query per particle each."""
    model = fit_moments(_latent_like(rng))
    res = sample(model, 4 * 100, random_state=0, steps=1, P=100, batch_size=100, search="pool")  # 4 batches
    assert res.diagnostics["full_query_rows"] == 400
    assert res.diagnostics["tracked_rows"] == 0


def test_pool_recall_of_the_score_neighbours_in_higher_dimension(rng):
    """Along a 12-D run at the latent defaults, the K nearest of each particle are in its tracked pool (≥ 0.99)."""
    model = fit_moments(_latent_like(rng))
    Zs = []
    sample(model, 300, random_state=0, steps=20, callback=lambda info: Zs.append(info["z"].reshape(-1, 12).copy()))
    tr = TrackedNeighbours(model.X_, model.knn_idx_, model.index_, 64)
    recs = []
    for z in Zs:
        _, idx = tr.query(z)
        recs.append(recall(idx, model.index_.query(z, 16)[1]))
    assert min(recs) >= 0.99, recs
    assert tr.n_tracked > tr.n_full


def test_defaults_switch_from_spacing_to_length_scale_above_three_dimensions(rng):
    from mmsold_cli.defaults import length_scale

    model = fit_moments(_latent_like(rng))
    st = sample(model, 200, random_state=0, steps=1).settings
    ell = length_scale(model)
    np.testing.assert_allclose([st["t"], st["sigma"]], [0.3 * ell, 0.75 * ell], rtol=1e-12)
    m2 = fit_moments(moons(500, random_state=0))
    st2 = sample(m2, 100, random_state=0, steps=1).settings
    np.testing.assert_allclose([st2["t"], st2["sigma"]], [2 * m2.spacing_, m2.spacing_], rtol=1e-12)


def test_indices_only_query_matches(rng):
    """distances=False gives the same int32 neighbour lists, through full queries and re-ranks alike."""
    model, Zs = _trajectory(steps=8)
    a = TrackedNeighbours(model.X_, model.knn_idx_, model.index_, 24, stale=0.05)
    b = TrackedNeighbours(model.X_, model.knn_idx_, model.index_, 24, stale=0.05)
    for z in Zs:
        d2, ia = a.query(z)
        none, ib = b.query(z, distances=False)
        assert none is None and ib.dtype == np.int32
        np.testing.assert_array_equal(ia, ib)
    assert b.n_full > len(Zs[0])  # some rows went stale and were searched again
