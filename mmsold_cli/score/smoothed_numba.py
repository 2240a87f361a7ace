"""Fused numba kernels for the smoothed barycentre.

One pass per query over its candidate points computes the squared distance,
the running (online) softmax and the weighted sum, then averages over the M
draws, all without materialising the (m, c, d) gather that the NumPy
reference :func:`mmsold_cli.score.smoothed.barycentre_candidates` builds.  The kernels
take plain arrays only, so ``cache=True`` holds across processes; they are
serial and ``nogil``, and :func:`~mmsold_cli._threads.run_rows` spreads
the particles over threads.
"""

from __future__ import annotations

import numpy as np

from .._numba import import_numba

numba = import_numba()


from .._fastexp import exp_nonpos  # noqa: E402
from .._threads import run_rows  # noqa: E402
from ..neighbors.walk_numba import expanded_flags, measure_row, seen_size, walk_row  # noqa: E402
from ..rng.normals_numba import draws_of, kernel_draws  # noqa: E402

__all__ = ["barycentre_mean", "pool_barycentre_mean", "walk_barycentre_mean"]


@numba.njit(cache=True, nogil=True)
def _bary_mean(X, Q, idx, inv2t2, logw, out, r0, r1):
    M, m, d = Q.shape
    c = idx.shape[2]
    use_logw = logw.shape[0] == c
    acc = np.empty(d)
    num = np.empty(d)
    for p in range(r0, r1):
        for k in range(d):
            acc[k] = 0.0
        for r in range(M):
            mx = -np.inf
            den = 0.0
            for k in range(d):
                num[k] = 0.0
            for j in range(c):
                xi = idx[r, p, j]
                d2 = 0.0
                for k in range(d):
                    diff = X[xi, k] - Q[r, p, k]
                    d2 += diff * diff
                lg = -d2 * inv2t2
                if use_logw:
                    lg += logw[j]
                if lg > mx:
                    # rescale what has been summed so far to the new maximum
                    sc = exp_nonpos(mx - lg)
                    den *= sc
                    for k in range(d):
                        num[k] *= sc
                    mx = lg
                w = exp_nonpos(lg - mx)
                den += w
                for k in range(d):
                    num[k] += w * X[xi, k]
            for k in range(d):
                acc[k] += num[k] / den
        for k in range(d):
            out[p, k] = acc[k] / M


def barycentre_mean(X, Q, idx, t, logw=None):
    """Mean over draws of the candidate softmax barycentre.

    Parameters
    ----------
    X : array of shape (n, d), float64
    Q : array of shape (M, m, d), the perturbed queries
    idx : array of shape (M, m, c), int64 candidate indices
    t : float
    logw : array of shape (c,), optional extra log-weights

    Returns
    -------
    B : array of shape (m, d)
    """
    M, m, d = Q.shape
    out = np.empty((m, d))
    lw = np.empty(0) if logw is None else np.ascontiguousarray(logw, dtype=np.float64)
    run_rows(_bary_mean, m, np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(Q, dtype=np.float64),
             np.ascontiguousarray(idx, dtype=np.int64), 1.0 / (2.0 * t * t), lw, out, min_rows=64)
    return out


@numba.njit(cache=True, nogil=True)
def _pool_bary_mean(X, Z, G, nz, Mg, sigma, n_pairs, pool, inv2t2, score_scale, out, r0, r1):
    m, d = Z.shape
    M = Mg + n_pairs  # draws σ G[r] for every r, and −σ G[r] for r < n_pairs
    gen = G.shape[0] == 0  # no array: the particle's normals come from the key source nz
    c = pool.shape[1]
    C = np.empty((c, d))
    lg = np.empty(c)
    q = np.empty(d)
    num = np.empty(d)
    acc = np.empty(d)
    gb = np.empty(Mg * d if gen else 0)
    for p in range(r0, r1):
        if gen:  # this particle's normals (a call per particle: 128 of them at d = 64, no per-call overhead to share)
            draws_of(nz, p, np.int64(1), Mg * d, gb)
        for j in range(c):  # gather the particle's candidates once for all draws
            xi = pool[p, j]
            for k in range(d):
                C[j, k] = X[xi, k]
        for k in range(d):
            acc[k] = 0.0
        for r in range(M):
            # the order of antithetic_draws: the pairs' + halves, their − halves, the unpaired draw
            g = r if r < n_pairs else r - n_pairs
            sg = -sigma if n_pairs <= r < 2 * n_pairs else sigma
            for k in range(d):
                q[k] = Z[p, k] + sg * (gb[g * d + k] if gen else G[g, p, k])
            mn = np.inf
            for j in range(c):
                d2 = 0.0
                for k in range(d):
                    t = C[j, k] - q[k]
                    d2 += t * t
                lg[j] = d2
                if d2 < mn:
                    mn = d2
            for j in range(c):
                lg[j] = exp_nonpos((mn - lg[j]) * inv2t2)
            den = 0.0
            for k in range(d):
                num[k] = 0.0
            for j in range(c):
                w = lg[j]
                den += w
                for k in range(d):
                    num[k] += w * C[j, k]
            for k in range(d):
                acc[k] += num[k] / den
        for k in range(d):  # the barycentre, or (score_scale = 1/t²) the score (b − z)/t²; out may be Z
            out[p, k] = acc[k] / M if score_scale == 0.0 else (acc[k] / M - Z[p, k]) * score_scale


def pool_barycentre_mean(X, Z, G, pool, t, *, sigma=1.0, n_pairs=0, out=None, key=None, start=0, n_normals=0,
                         score=False):
    r"""Mean over draws of the softmax barycentre of z + u over the particle's own pool.

    The draws are :math:`u = \sigma G_r` for every r and :math:`u = -\sigma G_r`
    for r < ``n_pairs``, in the order of :func:`~mmsold_cli.score.smoothed.antithetic_draws`
    (antithetic pairs mirrored here, not stored; the defaults take ``G`` as the
    draws themselves).

    Every draw of particle p uses the same candidates ``pool[p]`` (e.g. its
    tracked neighbours, :mod:`mmsold_cli.neighbors.tracking`); the NumPy equivalent is
    :func:`mmsold_cli.score.smoothed.barycentre_candidates` with the pool repeated per draw.

    Parameters
    ----------
    X : array of shape (n, d)
    Z : array of shape (m, d)
    G : array of shape (Mg, m, d), or None with ``key``
    pool : array of shape (m, c), int32 or int64
    t : float
    sigma : float
    n_pairs : int, at most Mg
    out : array of shape (m, d), optional
        Written in place (a C-contiguous float64 array); may be Z itself when ``score`` is set.
    key : array of shape (2,), uint64, optional
        Draw G in the kernel, as :func:`mmsold_cli.neighbors.grid_numba.grid_bary_mean` does (Mg = ``n_normals``).
    start : int
        With ``key``: the index of the first normal, as in :func:`mmsold_cli.neighbors.grid_numba.grid_bary_mean`.
    score : bool
        Return the score :math:`(\bar b - z)/t^2` instead of the barycentre :math:`\bar b`.

    Returns
    -------
    B : array of shape (m, d)
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    out = np.empty(Z.shape) if out is None else out
    G, Mg, nz = kernel_draws(G, key, n_normals, start)
    run_rows(_pool_bary_mean, Z.shape[0], np.ascontiguousarray(X, dtype=np.float64), Z, G, nz, Mg,
             float(sigma), int(n_pairs),
             np.ascontiguousarray(pool, dtype=np.int32 if pool.dtype == np.int32 else np.int64), 1.0 / (2.0 * t * t),
             1.0 / (t * t) if score else 0.0, out, min_rows=64)
    return out


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz", "arcp", "afn"})
def _walk_bary_mean(X, graph, Z, beams, expanded, width, max_expand, renew, n_seen, G, nz, Mg, sigma, n_pairs, inv2t2,
                    score_scale, out, r0, r1):
    m, d = Z.shape
    M = Mg + n_pairs  # draws σ G[r] for every r, and −σ G[r] for r < n_pairs
    gen = G.shape[0] == 0  # no array: the particle's normals come from the key source nz
    c = beams.shape[1]
    bd = np.empty(c)
    bi = np.empty(c, beams.dtype)
    bx = np.zeros(c, np.bool_)
    seen = np.zeros(n_seen, np.int64)
    dots = np.empty((Mg, c))
    lg = np.empty(c)
    om = np.empty(c)
    acc = np.empty(d)
    z = np.empty(d)
    gb = np.empty(Mg * d if gen else 0)
    for p in range(r0, r1):
        for k in range(d):
            z[k] = Z[p, k]
        measure_row(X, z, beams[p], expanded[p], bd, bi, bx)
        walk_row(X, graph, z, bd, bi, bx, width, max_expand, renew, seen, p + 1)
        cv = 0  # valid entries (a training set smaller than the beam leaves empty slots)
        for s in range(c):
            beams[p, s] = bi[s]
            expanded[p, s] = bx[s]
            if bi[s] >= 0:
                cv = s + 1
        if gen:
            draws_of(nz, p, np.int64(1), Mg * d, gb)
        # ‖x − z − u‖² = ‖x − z‖² − 2 u·(x − z) + ‖u‖²: the last term is the same for every x (it cancels in the
        # softmax) and the first is the beam's distance, so a draw costs one dot product per point, and its
        # antithetic twin −u none
        # two draws per pass over a row (an odd last one paired with itself): the pass is bound by its loads
        # (a float32 row converted, z, the draws), and a second draw's product reuses the first two
        for s in range(cv):
            j = bi[s]
            for r in range(0, Mg, 2):
                r2 = min(r + 1, Mg - 1)
                t = 0.0
                t2 = 0.0
                if gen:
                    g1 = gb[r * d : (r + 1) * d]
                    g2 = gb[r2 * d : (r2 + 1) * d]
                else:
                    g1 = G[r, p]
                    g2 = G[r2, p]
                x = X[j]
                for k in range(d):
                    v = x[k] - z[k]
                    t += g1[k] * v
                    t2 += g2[k] * v
                dots[r, s] = t
                dots[r2, s] = t2
        for s in range(cv):
            om[s] = 0.0
        for r in range(M):
            # the order of antithetic_draws: the pairs' + halves, their − halves, the unpaired draw
            g = r if r < n_pairs else r - n_pairs
            sg = -sigma if n_pairs <= r < 2 * n_pairs else sigma
            mx = -np.inf
            for s in range(cv):
                lg[s] = (2.0 * sg * dots[g, s] - bd[s]) * inv2t2
                if lg[s] > mx:
                    mx = lg[s]
            den = 0.0
            for s in range(cv):
                lg[s] = exp_nonpos(lg[s] - mx)
                den += lg[s]
            for s in range(cv):
                om[s] += lg[s] / den
        # the mean barycentre minus z, Σ_s ω_s (x_s − z) / M: one pass over the beam for all draws
        for k in range(d):
            acc[k] = 0.0
        for s in range(cv):
            j = bi[s]
            w = om[s] / M
            for k in range(d):
                acc[k] += w * (X[j, k] - z[k])
        for k in range(d):  # the barycentre, or (score_scale = 1/t²) the score (b − z)/t²; out may be Z
            out[p, k] = z[k] + acc[k] if score_scale == 0.0 else acc[k] * score_scale


def walk_barycentre_mean(X, graph, Z, beams, t, *, width, max_expand, renew=None, expanded=None, sigma=1.0, n_pairs=0,
                         G=None, key=None, start=0, n_normals=0, score=False, out=None):
    r"""Walk each particle's beam to Z (:mod:`mmsold_cli.neighbors.walk`), then the mean barycentre over it.

    Every draw of particle p uses the walked beam (updated in ``beams``, in place); the draws and their
    order are those of :func:`pool_barycentre_mean`, whose NumPy equivalent is
    :func:`mmsold_cli.score.smoothed.barycentre_candidates` with the beam repeated per draw.

    Parameters
    ----------
    X : array of shape (n, d), float32 or float64 (read as stored; the arithmetic is float64)
    graph : array of shape (n, g), of the beams' integer type
    Z : array of shape (m, d)
    beams : array of shape (m, c), int32 or int64, C-contiguous — read and rewritten (−1: empty slot)
    t : float
    width, max_expand, renew : int — the walk's (see :func:`mmsold_cli.neighbors.walk.walk_numpy`; ``renew``
        defaults to all)
    expanded : array of shape (m, c), bool, C-contiguous, optional — the beams' expanded flags, read and
        rewritten with the beams (default: none expanded)
    sigma, n_pairs, G, key, start, n_normals, score, out : as for :func:`pool_barycentre_mean`

    Returns
    -------
    B : array of shape (m, d)
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    out = np.empty(Z.shape) if out is None else out
    G, Mg, nz = kernel_draws(G, key, n_normals, start)
    if not (beams.flags.c_contiguous and beams.dtype in (np.int32, np.int64) and graph.dtype == beams.dtype):
        raise ValueError("beams must be C-contiguous int32 or int64, of the graph's integer type")
    expanded = expanded_flags(expanded, beams.shape)
    run_rows(_walk_bary_mean, Z.shape[0], X, graph, Z, beams, expanded, int(width), int(max_expand),
             beams.shape[1] if renew is None else int(renew),
             seen_size(beams.shape[1], graph.shape[1], int(max_expand)), G, nz, Mg, float(sigma),
             int(n_pairs), 1.0 / (2.0 * t * t), 1.0 / (t * t) if score else 0.0, out, min_rows=64)
    return out
