"""Counter offsets: a kernel called on rows [a, b) of a batch with ``start`` = a · (normals per row) gives
bit for bit the numbers the whole-batch call gives those rows (the ``from_key(key, shape, start)`` convention)."""

import numpy as np
import pytest

from mmsold_cli import fit_moments
from mmsold_cli.datasets import moons
from mmsold_cli.neighbors.grid_numba import grid_bary_mean
from mmsold_cli.neighbors.indexes import GridIndex
from mmsold_cli.rng.normals import from_key, new_key
from mmsold_cli.samplers import stiefel, stiefel_numba
from mmsold_cli.score.smoothed_numba import pool_barycentre_mean

ROWS = [(0, 137), (137, 900), (900, 1200)]  # uneven pieces; the middle one runs on both threads


def _moons_job(rng, m=1200):
    X = moons(2000, random_state=3)
    t = 2 * fit_moments(X).spacing_
    Z = X[rng.integers(0, len(X), m)] + t * rng.standard_normal((m, 2))
    return X, Z, t


@pytest.mark.parametrize("exact_k", [True, False])
@pytest.mark.parametrize("n_pairs", [0, 2])
def test_grid_bary_mean_rows_with_start(rng, exact_k, n_pairs):
    X, Z, t = _moons_job(rng)
    grid = GridIndex(X, radius=2 * t, k=16)
    key, Mg, d = new_key(rng), 3, Z.shape[1]
    kw = dict(sigma=t / 2, n_pairs=n_pairs, n_normals=Mg)
    whole = grid_bary_mean(grid, Z, None, 16, t, exact_k, key=key, **kw)
    for a, b in ROWS:
        part = grid_bary_mean(grid, Z[a:b], None, 16, t, exact_k, key=key, start=a * Mg * d, **kw)
        np.testing.assert_array_equal(part, whole[a:b])
    # the offset is used: a call without it gives rows [a, b) other numbers
    assert not np.array_equal(grid_bary_mean(grid, Z[137:900], None, 16, t, exact_k, key=key, **kw), whole[137:900])
    # and the key's numbers are from_key's, particle-major
    G = np.moveaxis(from_key(key, (len(Z), Mg, d)), 1, 0)
    np.testing.assert_array_equal(grid_bary_mean(grid, Z, G, 16, t, exact_k, sigma=t / 2, n_pairs=n_pairs), whole)


@pytest.mark.parametrize("score", [False, True])
def test_pool_barycentre_mean_rows_with_start(rng, score):
    X, Z, t = _moons_job(rng)
    pool = np.argsort(((Z[:, None] - X[None]) ** 2).sum(-1), axis=1)[:, :24].astype(np.int32)
    key, Mg, d = new_key(rng), 2, Z.shape[1]
    kw = dict(sigma=t / 2, n_pairs=2, n_normals=Mg, key=key, score=score)
    whole = pool_barycentre_mean(X, Z, None, pool, t, **kw)
    for a, b in ROWS:
        part = pool_barycentre_mean(X, Z[a:b], None, pool[a:b], t, start=a * Mg * d, **kw)
        np.testing.assert_array_equal(part, whole[a:b])
    assert not np.array_equal(pool_barycentre_mean(X, Z[137:900], None, pool[137:900], t, **kw), whole[137:900])


def _langevin_job(rng, E=300, P=20, d=3):
    Y = stiefel.uniform(E, P, d, rng)
    A = rng.standard_normal((d, d))
    L = np.linalg.cholesky(A @ A.T + np.eye(d))
    return Y, rng.standard_normal((E, P, d)), L


@pytest.mark.parametrize("lm", [True, False])
@pytest.mark.parametrize("refuse", [False, True])
def test_langevin_step_rows_with_start(rng, monkeypatch, lm, refuse):
    """Ensembles [a, b) with start = a P d: the whole step's numbers, the SVD fall-back included."""
    if refuse:  # the iteration refuses ensemble 150 of the batch (row 150 − a of a piece): the SVD path
        real = stiefel_numba._langevin_step

        def refuse_one(Y, S, L, h, lm, p0, p1, src, ok, e0, e1):
            e = (150 * Y.shape[1] * Y.shape[2] - src[5]) // (Y.shape[1] * Y.shape[2])
            keep = Y[e].copy() if 0 <= e < Y.shape[0] else None
            real(Y, S, L, h, lm, p0, p1, src, ok, e0, e1)
            if keep is not None and e0 <= e < e1:
                Y[e] = keep
                ok[e] = False

        monkeypatch.setattr(stiefel_numba, "_langevin_step", refuse_one)
    Y0, S, L = _langevin_job(rng)
    E, P, d = Y0.shape
    key, prev = new_key(rng), new_key(rng)
    whole = Y0.copy()
    stiefel_numba.langevin_step(whole, S, 0.01, L, key, prev, lm=lm)
    for a, b in [(0, 37), (37, 220), (220, 300)]:
        part = Y0[a:b].copy()
        assert stiefel_numba.langevin_step(part, S[a:b], 0.01, L, key, prev, a * P * d, lm=lm) is None
        np.testing.assert_array_equal(part, whole[a:b])
    # the noise is normal start + p d + k of each key: the NumPy integrator step on those numbers
    xi = from_key(key, (E, P, d))
    noise = (from_key(prev, (E, P, d)) + xi) * 0.5 if lm else xi
    ref = stiefel.step(Y0, np.sqrt(2 * 0.01) * noise + 0.01 * (S @ L))
    np.testing.assert_allclose(whole, ref, rtol=0, atol=1e-12)


def test_langevin_step_lm_needs_the_previous_key(rng):
    Y0, S, L = _langevin_job(rng, E=4)
    with pytest.raises(ValueError, match="prev_key"):
        stiefel_numba.langevin_step(Y0, S, 0.01, L, new_key(rng), None, lm=True)
    Y = Y0.copy()
    stiefel_numba.langevin_step(Y, S, 0.01, L, new_key(rng), None, lm=False)  # EM ignores it
    assert np.isfinite(Y).all() and not np.array_equal(Y, Y0)
