"""The fused numba kernels against their NumPy references, and every search strategy against the oracle."""

import numpy as np
import pytest

from mmsold_cli import fit_moments
from mmsold_cli._fastexp import EXP_CUT, exp32_array, exp_nonpos_array
from mmsold_cli.datasets import moons
from mmsold_cli.errors import MmsoldError
from mmsold_cli.neighbors.grid_numba import grid_bary_mean
from mmsold_cli.neighbors.indexes import GridIndex
from mmsold_cli.score.searches import make_search, resolve_search
from mmsold_cli.score.smoothed import (
    SmoothedScore,
    antithetic_draws,
    antithetic_normals,
    barycentre_candidates,
    barycentre_exact,
    remainder_indices,
    smoothed_score_exact,
)
from mmsold_cli.score.smoothed_numba import barycentre_mean, pool_barycentre_mean


def _job(rng, n=800, m=150):
    X = moons(n, random_state=3)
    model = fit_moments(X)
    t = 2 * model.spacing_
    Z = X[rng.integers(0, n, m)] + t * rng.standard_normal((m, 2))
    return model, X, Z, t


def test_exp_nonpos_matches_libm_and_is_zero_below_the_cut():
    x = -np.concatenate([np.linspace(0, -EXP_CUT, 100_001), np.geomspace(1e-300, 1.0, 1000)])
    np.testing.assert_allclose(exp_nonpos_array(x), np.exp(x), rtol=1e-13, atol=0)
    # below the cut 0, never a subnormal weight (e^-700 would be one once divided by a denominator of 10⁸)
    assert np.all(exp_nonpos_array(np.array([EXP_CUT - 1e-9, -100.0, -708.0, -750.0, -1e6, -np.inf])) == 0)
    assert np.isnan(exp_nonpos_array(np.array([np.nan]))[0])


def test_exp32_matches_libm():
    x = np.concatenate([-np.geomspace(1e-8, 86.9, 20001), [0.0, -1e-30]]).astype(np.float32)
    np.testing.assert_allclose(exp32_array(x), np.exp(x.astype(np.float64)), rtol=3e-7, atol=0)
    assert np.all(exp32_array(np.array([-87.5, -1e6, -np.inf], dtype=np.float32)) == 0)


@pytest.mark.parametrize("L", [0, 5])
def test_numba_kernel_equals_numpy(rng, L):
    X = rng.standard_normal((500, 3))
    M, m, K = 4, 60, 12
    Q = rng.standard_normal((M, m, 3))
    idx = np.stack([np.argsort(np.sum((X - q) ** 2, 1))[:K] for q in Q.reshape(-1, 3)])
    logw = None
    if L:
        idx = np.concatenate([idx, remainder_indices(rng.integers(0, 2**64, size=(len(idx), L), dtype=np.uint64), idx, 500, L)], axis=1)
        logw = np.concatenate([np.zeros(K), np.full(L, np.log((500 - K) / L))])
    for t in (0.05, 0.5, 5.0):  # from one dominant point to a nearly flat softmax
        ref = barycentre_candidates(X, Q.reshape(-1, 3), idx, t, logw).reshape(M, m, 3).mean(0)
        out = barycentre_mean(X, Q, idx.reshape(M, m, -1), t, logw)
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-10)


def test_pool_kernel_equals_numpy(rng):
    X = rng.standard_normal((400, 4))
    Z = rng.standard_normal((70, 4))
    U = antithetic_draws(rng, 4, Z.shape, 0.3)
    pool = rng.integers(0, 400, (70, 20))
    ref = np.mean([barycentre_candidates(X, Z + u, pool, 0.4) for u in U], axis=0)
    np.testing.assert_allclose(pool_barycentre_mean(X, Z, U, pool, 0.4), ref, rtol=0, atol=1e-10)


def test_grid_knn_equals_index_search(rng):
    """search="grid-knn" finds the same K nearest as the k-d tree, so the same barycentres."""
    model, X, Z, t = _job(rng)
    for sigma in (0.0, t / 2, 3 * t):
        a = SmoothedScore(X, model.index_, sigma=sigma, K=16, search="grid-knn")
        b = SmoothedScore(X, model.index_, sigma=sigma, K=16, backend="numpy", search="index")
        assert a.search == "grid-knn" and b.search == "index"
        np.testing.assert_allclose(a(Z, t, np.random.default_rng(1)), b(Z, t, np.random.default_rng(1)),
                                   rtol=0, atol=1e-10 / t**2)


def _block_reference(g, Qs, K):
    """NumPy restatement of the shared grid block of one particle's draws Qs (shape (M, d)): the blocks
    spanning the draws' cells plus h rings, h from h0 + 1 and never shrinking; each draw in turn takes
    the first h at which its inscribed ball (to the faces with cells beyond) holds ≥ K block points.
    Returns one array of sorted-point indices per draw."""
    cells = np.minimum(np.floor((g.Xs - g.lo) / g.s), g.dims - 1)
    c = np.clip(np.floor((Qs - g.lo) * (1.0 / g.s)), 0, g.dims - 1)
    lo_c, hi_c = c.min(axis=0), c.max(axis=0)
    h = g.h0 + 1
    out = []
    for q in Qs:
        while True:
            a, b = lo_c - h, hi_c + h
            inside = np.all((cells >= np.maximum(a, 0)) & (cells <= np.minimum(b, g.dims - 1)), axis=1)
            faces = [q[k] - (g.lo[k] + a[k] * g.s) for k in range(len(q)) if a[k] > 0]
            faces += [g.lo[k] + (b[k] + 1) * g.s - q[k] for k in range(len(q)) if b[k] < g.dims[k] - 1]
            beta = max(min(faces), 0.0) if faces else np.inf
            if not faces or np.sum(np.sum((g.Xs[inside] - q) ** 2, axis=1) <= beta * beta) >= K:
                out.append(np.flatnonzero(inside))
                break
            h += 1
    return out


def _block_mean_reference(g, Z, U, t, K=16):
    """NumPy restatement of grid_bary_mean(..., exact_k=False): (barycentres, particles with a shared
    block, particles whose block grew between draws)."""
    ref = np.zeros_like(Z)
    spread_max = 2 * (g.h0 + 1)
    n_shared = n_grown = 0
    for p in range(len(Z)):
        Qs = Z[p] + U[:, p]
        c = np.clip(np.floor((Qs - g.lo) / g.s), 0, g.dims - 1)
        shared = np.all(c.max(axis=0) - c.min(axis=0) <= spread_max)
        n_shared += shared
        blocks = _block_reference(g, Qs, K) if shared else [_block_reference(g, q[None], K)[0] for q in Qs]
        n_grown += len({len(b) for b in blocks}) > 1  # later draws of this particle needed more rings
        for q, cand in zip(Qs, blocks):
            ref[p] += barycentre_candidates(g.Xs, q[None], cand[None], t)[0] / len(U)
            # a certified superset of the exact K nearest
            exact = np.argsort(np.sum((g.Xs - q) ** 2, 1))[:K]
            assert np.isin(exact, cand).all() or np.sum((g.Xs[exact[-1]] - q) ** 2) == np.sum(
                (g.Xs[cand] - q) ** 2, 1).max()
    return ref, n_shared, n_grown


def test_grid_block_equals_numpy_reference(rng):
    model, X, Z, t = _job(rng, m=60)
    sc = SmoothedScore(X, model.index_, sigma=t / 2, K=16)
    assert sc.search == "grid"
    g = sc.grid()
    U = antithetic_draws(rng, 4, Z.shape, t / 2)
    U[:, :3] *= 40  # a few particles whose draws land far apart and outside the data: a block per draw
    ref, n_shared, n_grown = _block_mean_reference(g, Z, U, t)
    assert 40 <= n_shared <= 57 and n_grown >= 1  # both branches ran, and blocks grew between draws
    # float32 distances and weights relative to the particle: barycentres to ~1e-6 t
    got = grid_bary_mean(g, Z, U, 16, t, exact_k=False)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * t)


@pytest.mark.parametrize("d", [1, 3])
def test_grid_kernels_on_sparse_sets(rng, d):
    """Both grid kernels in 1-D (two clusters: a gap of empty cells) and on a 3-D surface (most cells and
    rows of the bounding box empty): the block from the float32 in-cell offsets, and the exact K nearest."""
    from scipy.spatial import cKDTree

    if d == 1:
        X = np.concatenate([rng.random(300), 4.0 + rng.random(300)])[:, None]
    else:
        v = rng.standard_normal((1500, 3))
        X = v / np.linalg.norm(v, axis=1, keepdims=True) * [3.0, 2.0, 1.0]
    sc = SmoothedScore(X, None, sigma=0.0, K=16, search="grid")
    t = 0.5 * GridIndex.typical_radius(X, X, 16)
    sc.sigma = t / 2  # the grid sized as sample() does: for queries perturbed by σ
    g = sc.grid()
    assert len(g.cell_start) - 1 < 0.5 * np.prod(g.dims)  # mostly empty cells
    Z = X[rng.integers(0, len(X), 50)] + t * rng.standard_normal((50, d))
    U = antithetic_draws(rng, 4, Z.shape, t / 2)
    U[:, :2] *= 40  # a block per draw
    ref, n_shared, _ = _block_mean_reference(g, Z, U, t)
    assert 30 <= n_shared <= 48
    got = grid_bary_mean(g, Z, U, 16, t, exact_k=False)
    np.testing.assert_allclose(got[2:], ref[2:], rtol=0, atol=1e-5 * t)
    # the far draws' points lie ~40 cells from the particle: float32 coordinates relative to it err ~40× more
    np.testing.assert_allclose(got[:2], ref[:2], rtol=0, atol=1e-4 * t)
    Q = (Z[None] + U).reshape(-1, d)
    ref = barycentre_candidates(X, Q, cKDTree(X).query(Q, 16)[1], t).reshape(U.shape).mean(axis=0)
    np.testing.assert_allclose(grid_bary_mean(g, Z, U, 16, t, exact_k=True), ref, rtol=0, atol=1e-10)


def test_grid_block_wider_than_256_cells(rng):
    """Particles in a gap of ~2,000 empty cells: their blocks grow past 256 cells along x, where the cell index
    stored mod 256 with each point repeats, so the block is gathered 256 cells at a time."""
    X = np.concatenate([rng.random(40) * 0.01, 1.0 + rng.random(40) * 0.01])[:, None]
    g = GridIndex(X, radius=1e-3)
    assert g.dims[0] > 1000
    Z = np.array([[0.5], [0.3], [0.9], [0.005], [1.004]])
    U = antithetic_draws(rng, 4, Z.shape, 1e-3)
    t = 0.2
    ref, _, _ = _block_mean_reference(g, Z, U, t)
    np.testing.assert_allclose(grid_bary_mean(g, Z, U, 16, t, exact_k=False), ref, rtol=0, atol=1e-5 * t)


@pytest.mark.parametrize("M", [4, 5])
def test_grid_block_mirrors_pairs(rng, M):
    """Passing half the normals with n_pairs gives the same mean as passing all M draws."""
    model, X, Z, t = _job(rng, m=200)
    g = SmoothedScore(X, model.index_, sigma=t / 2, K=16).grid()
    G, k = antithetic_normals(np.random.default_rng(3), M, Z.shape)
    U = antithetic_draws(np.random.default_rng(3), M, Z.shape, t / 2)
    assert k == M // 2 and len(G) == M - k
    for exact in (False, True):
        a = grid_bary_mean(g, Z, G, 16, t, exact, sigma=t / 2, n_pairs=k)
        b = grid_bary_mean(g, Z, U, 16, t, exact)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 if exact else 1e-6 * t)
    pool = np.argsort(((Z[:, None] - X[None]) ** 2).sum(-1), axis=1)[:, :32]
    np.testing.assert_allclose(pool_barycentre_mean(X, Z, G, pool, t, sigma=t / 2, n_pairs=k),
                               pool_barycentre_mean(X, Z, U, pool, t), rtol=0, atol=1e-12)


def _k_is_n_errors(rng, search):
    """Largest |barycentre error| of ``search`` built by make_search with K = n, against the exact estimator for
    the same draws, per (backend, t, step), and the float32 rounding max|X32 − X| of the training points."""
    n = 300
    X = rng.standard_normal((n, 2))
    model = fit_moments(X)
    Z = rng.standard_normal((50, 2))
    steps = (Z, Z + 0.05 * rng.standard_normal(Z.shape))  # a second step: pools re-ranked, beams walked on
    sigma = 0.2
    X32 = X.astype(np.float32).astype(np.float64)
    errors = {}
    for backend in ("numba",) if search in ("all", "grid", "grid-knn") else ("numba", "numpy"):
        for t in (0.3, 3.0):
            strategy = make_search(search, X, index=model.index_, graph=model.knn_idx_, K=n, sigma=sigma,
                                   backend=backend, owner=model)
            est = SmoothedScore(X, model.index_, sigma=sigma, M=4, K=n, search=strategy)
            assert est.search == search and est.strategy is strategy
            for step, Zs in enumerate(steps):
                S = est(Zs, t, np.random.default_rng(5 + step))
                U = est.draws(np.random.default_rng(5 + step), Zs.shape)
                if search == "all":  # barycentre_exact itself: against the softmax over every point, term by term
                    Q = (Zs[None] + U).reshape(-1, 2)
                    every = np.broadcast_to(np.arange(n), (len(Q), n))
                    ref = (barycentre_candidates(X, Q, every, t).reshape(U.shape).mean(axis=0) - Zs) / t**2
                elif search == "walk" and backend == "numba":  # the kernel reads X rounded to float32
                    ref = smoothed_score_exact(X32, Zs, t, U)
                else:
                    ref = smoothed_score_exact(X, Zs, t, U)
                errors[backend, t, step] = np.abs(S - ref).max() * t**2
    return errors, np.abs(X32 - X).max()


@pytest.mark.parametrize("search", ["all", "grid", "grid-knn", "index", "pool", "walk"])
def test_exact_when_k_is_n(rng, search):
    """K = n, L = 0: every strategy is the exact smoothed score for the same draws.

    ``auto`` (and SmoothedScore's own resolution) turns K ≥ n into ``all``, which is the oracle's own
    barycentre_exact; so each strategy is built by make_search and handed over, and its own candidates and kernel
    run.  At t = 0.3 the softmax is sharp; at t = 3 every point weighs at least 5.5e-4, so a strategy that misses
    a point is off by ~1e-3 in a barycentre (5e-3 when the farthest is dropped).  Bounds on the barycentre error
    (t² × the score's), from the measured (seed 12345): the float64 paths at most 2.0e-15 (t = 0.3) and 2.5e-15
    (t = 3), bound 1e-14 (the numba walk reads X rounded to float32, so its oracle is over those points); the grid
    block's float32 offsets 0.35 (t = 0.3) and 1.03 (t = 3) × max|X32 − X| = 1.2e-7, bound 3 × max|X32 − X|."""
    assert resolve_search("auto", n=300, d=2, sampler=None, K=300, L=0, backend="numba") == "all"
    errors, r32 = _k_is_n_errors(rng, search)
    for (backend, t, step), err in errors.items():
        bound = 3 * r32 if search == "grid" else 1e-14
        assert err < bound, (backend, t, step, err, bound)


def test_block_and_pool_are_closer_to_the_oracle_than_knn(rng):
    """The grid block (a superset of the K nearest) and a 4K tracked pool beat the K nearest alone."""
    model, X, Z, t = _job(rng, n=1500, m=300)
    sigma = t / 2
    U = antithetic_draws(np.random.default_rng(9), 4, Z.shape, sigma)
    exact = np.mean([barycentre_exact(X, Z + u, t) for u in U], axis=0)
    err = {}
    for search in ("index", "grid", "pool", "walk"):
        est = SmoothedScore(X, model.index_, sigma=sigma, K=16, search=search, graph=model.knn_idx_, owner=model)
        B = est.barycentre(Z, t, np.random.default_rng(9))
        err[search] = np.linalg.norm(B - exact) / np.linalg.norm(exact - Z)
    assert err["grid"] < 0.5 * err["index"], err
    assert err["pool"] < 0.5 * err["index"], err
    assert err["walk"] < 0.5 * err["index"], err
    assert err["index"] < 0.5, err


def test_bad_search_choices(rng):
    X = rng.standard_normal((100, 5))
    model = fit_moments(X)
    with pytest.raises(MmsoldError, match="one of"):
        SmoothedScore(X, model.index_, sigma=0.1, search="magic")
    with pytest.raises(MmsoldError, match="dimension"):
        SmoothedScore(X, model.index_, sigma=0.1, search="grid")
    with pytest.raises(MmsoldError, match="graph"):
        SmoothedScore(X, model.index_, sigma=0.1, search="pool")
    with pytest.raises(MmsoldError, match="graph"):
        SmoothedScore(X, model.index_, sigma=0.1, search="walk")
    with pytest.raises(MmsoldError, match="L = 0"):
        SmoothedScore(X[:, :2], model.index_, sigma=0.1, L=3, search="grid")
    assert SmoothedScore(X, model.index_, sigma=0.1).search == "index"


def test_grid_cells_sized_for_perturbed_queries(rng):
    """The grid is built for the K-th distance of z + u, so most draws need no ring beyond h0."""
    model, X, Z, t = _job(rng)
    g = SmoothedScore(X, model.index_, sigma=t / 2, K=16).grid()
    assert isinstance(g, GridIndex)
    assert 1 <= g.h0 <= 3


def test_walk_kernel_reads_float32_rows_computes_float64(rng):
    """The walk kernel's barycentres are the NumPy oracle's over X rounded to float32 (to 1e-9), and within the
    rounding's reach of the oracle over X itself (not equal to it: the copy is really float32)."""
    X = 3.0 * rng.standard_normal((1500, 64)) + 100.0
    model = fit_moments(X)
    Z = X[rng.integers(0, 1500, 700)] + 0.05 * rng.standard_normal((700, 64))
    kw = dict(sigma=0.25, M=4, K=16, search="walk", graph=model.knn_idx_, owner=model)
    B = SmoothedScore(X, model.index_, backend="numba", **kw).barycentre(Z, 0.5, np.random.default_rng(1))
    X32 = X.astype(np.float32).astype(np.float64)
    ref32 = SmoothedScore(X32, model.index_, backend="numpy", **kw).barycentre(Z, 0.5, np.random.default_rng(1))
    ref = SmoothedScore(X, model.index_, backend="numpy", **kw).barycentre(Z, 0.5, np.random.default_rng(1))
    np.testing.assert_allclose(B, ref32, rtol=0, atol=1e-9)
    gap = np.abs(B - ref).max()
    assert 1e-9 < gap < 2 * np.abs(X32 - X).max(), gap  # a barycentre moves at most by its rows' rounding
    assert model.__dict__["_rows32"].dtype == np.float32 and model.__dict__["_rows32"].shape == X.shape


@pytest.mark.parametrize("search", ["grid", "pool", "walk"])
def test_kernels_draw_from_the_key_what_draws_gives_numpy(rng, search):
    """The fused kernels make their normals from one key, particle by particle on both threads; the same key's
    normals as an array (antithetic_normals, draws()) give the same barycentres, and the score over Z agrees.
    (The walk kernel reads X rounded to float32: here X is made of float32 numbers, so the oracle is exact.)"""
    d = 2 if search == "grid" else 64
    X = rng.standard_normal((1500, d)).astype(np.float32).astype(np.float64)
    model = fit_moments(X)
    Z = X[rng.integers(0, 1500, 2600)] + 0.05 * rng.standard_normal((2600, d))
    t = 0.5 if d == 64 else 0.1
    kw = dict(sigma=t / 2, M=4, K=16, search=search, graph=model.knn_idx_, owner=model)
    fast = SmoothedScore(X, model.index_, backend="numba", **kw)
    B = fast.barycentre(Z, t, np.random.default_rng(1))
    G, k = antithetic_normals(np.random.default_rng(1), 4, Z.shape)
    assert k == 2 and G.shape == (2, 2600, d)
    U = fast.draws(np.random.default_rng(1), Z.shape)
    np.testing.assert_array_equal(U, np.concatenate([t / 2 * G, -t / 2 * G]))
    if search in ("pool", "walk"):
        fast.new_particles()
        ref = SmoothedScore(X, model.index_, backend="numpy", **kw)
        np.testing.assert_allclose(B, ref.barycentre(Z, t, np.random.default_rng(1)), rtol=0, atol=1e-9)
    else:
        np.testing.assert_array_equal(B, grid_bary_mean(fast.grid(), Z, G, 16, t, False, sigma=t / 2, n_pairs=2))
    Zc = Z.copy()
    S = fast(Zc, t, np.random.default_rng(1), out=Zc)
    assert S is Zc
    np.testing.assert_allclose(S, (B - Z) / t**2, rtol=1e-12, atol=1e-9)
