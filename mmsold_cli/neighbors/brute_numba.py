"""Numba kernels of the brute-force k-NN index (:class:`~mmsold_cli.neighbors.indexes.BruteIndex`).

Row-wise top-k of a distance matrix, the float32 screen plus float64
re-rank of :func:`screened_knn`, and the float64 distances of given candidates
(:func:`candidate_sqdist`, what an approximate index's answers are sorted by).
Serial ``nogil`` kernels over plain arrays (``cache=True`` holds across
processes); :func:`~mmsold_cli._threads.run_rows` spreads the rows over threads.
"""

from __future__ import annotations

import numpy as np

from .._numba import import_numba

numba = import_numba()

from .._threads import run_rows  # noqa: E402

__all__ = ["topk_rows", "screened_knn", "candidate_sqdist", "candidate_sqdist_numpy"]


@numba.njit(cache=True, nogil=True, inline="always")
def _insert(bd, bi, v, j):
    """Insert (v, j) into the ascending list (bd, bi), dropping its last entry; returns the new last value.

    Call only when v < bd[-1]."""
    pos = bd.shape[0] - 1
    while pos > 0 and bd[pos - 1] > v:
        bd[pos] = bd[pos - 1]
        bi[pos] = bi[pos - 1]
        pos -= 1
    bd[pos] = v
    bi[pos] = j
    return bd[bd.shape[0] - 1]



@numba.njit(cache=True, nogil=True)
def _topk_rows(D, add, k, out_d, out_i, r0, r1):
    """The k smallest of each row of D (plus add[row]), ascending: an insertion list per row."""
    m, n = D.shape
    for p in range(r0, r1):
        bd = out_d[p]
        bi = out_i[p]
        for j in range(k):
            bd[j] = np.inf
            bi[j] = -1
        worst = np.inf
        row = D[p]
        for j in range(n):
            if row[j] < worst:
                worst = _insert(bd, bi, row[j], j)
        a = add[p]
        for j in range(k):
            v = bd[j] + a
            bd[j] = v if v > 0.0 else 0.0


def topk_rows(D, add, k):
    """Row-wise k smallest of ``D + add[:, None]`` (clipped at 0), ascending.

    Parameters
    ----------
    D : array of shape (m, n)
    add : array of shape (m,)
    k : int, at most n

    Returns
    -------
    vals : array of shape (m, k)
    idx : array of shape (m, k), int64
    """
    D = np.ascontiguousarray(D, dtype=np.float64)
    m = D.shape[0]
    out_d = np.empty((m, k))
    out_i = np.empty((m, k), dtype=np.int64)
    run_rows(_topk_rows, m, D, np.ascontiguousarray(add, dtype=np.float64), int(k), out_d, out_i, min_rows=16)
    return out_d, out_i


@numba.njit(cache=True, nogil=True)
def _merge_screen(G, sqn, col0, best_s, best_i, r0, r1):
    """Merge one tile of float32 dot products into each row's running list of best screened values.

    The screened value of point j is ``sqn[j] - 2 q·x_j`` (the squared distance minus ‖q‖²).
    """
    nc = G.shape[1]
    kk = best_s.shape[1]
    for p in range(r0, r1):
        bd = best_s[p]
        bi = best_i[p]
        worst = bd[kk - 1]
        for j in range(nc):
            v = sqn[col0 + j] - 2.0 * G[p, j]
            if v < worst:
                worst = _insert(bd, bi, v, col0 + j)


@numba.njit(cache=True, nogil=True)
def _rerank(X, Q, qn, best_s, best_i, eps, k, out_d, out_i, ok, r0, r1):
    """Exact float64 distances of the screened candidates, the k best, and whether the screen certifies them."""
    d = X.shape[1]
    kk = best_s.shape[1]
    bd = np.empty(k)
    bi = np.empty(k, np.int64)
    for p in range(r0, r1):
        for j in range(k):
            bd[j] = np.inf
            bi[j] = -1
        for a in range(kk):
            j = best_i[p, a]
            if j < 0:
                continue
            d2 = 0.0
            for c in range(d):
                t = X[j, c] - Q[p, c]
                d2 += t * t
            if d2 < bd[k - 1]:
                _insert(bd, bi, d2, j)
        for j in range(k):
            out_d[p, j] = bd[j]
            out_i[p, j] = bi[j]
        # every point left out has screened value ≥ best_s[p, kk-1], hence true value ≥ that − eps
        ok[p] = best_i[p, kk - 1] < 0 or best_s[p, kk - 1] - eps[p] >= bd[k - 1] - qn[p]


def screened_knn(X, X32, sqn, Q, k, margin=None, tile=None):
    r"""Exact k nearest neighbours by a float32 screen and a float64 re-rank.

    Dot products in float32 (tiled: one chunk of training points stays in
    cache while blocks of queries stream past) rank the candidates; the best
    ``k + margin`` are re-ranked exactly.  With :math:`u = 2^{-24}` the
    screened value :math:`\|x\|^2 - 2\,\mathrm{fl}_{32}(q\cdot x)` is within

    .. math:: \varepsilon = 2\,(\gamma_d + 2u)\,\|q\|\max_j\|x_j\|, \qquad \gamma_d = \frac{d u}{1 - d u}

    of :math:`\|q-x\|^2 - \|q\|^2`, so the result is exact when the last
    screened candidate's value minus ε is no below the k-th exact distance
    minus :math:`\|q\|^2`.  Rows where it is not (near-ties at the margin) are
    returned in ``bad`` for an exact float64 search.

    ``X32`` (X in float32) may be None: each chunk of training points is then
    converted as it is used (3 ms for 60,000 × 64 points per call), so the
    index holds no second copy of the training set.  ``tile`` = (query rows,
    training points) per product; by default 1,024 rows and as many points as
    keep the float32 chunk at ≤ 1 MB (at most 4,096 points, at least 1,024).

    Returns
    -------
    sqdist : array of shape (m, k)
    idx : array of shape (m, k), int64
    bad : array of row indices that need the exact search
    """
    n, d = X.shape
    m = Q.shape[0]
    kk = min(n, k + (k if margin is None else margin))
    best_s = np.full((m, kk), np.inf)
    best_i = np.full((m, kk), -1, dtype=np.int64)
    Q32 = Q.astype(np.float32)
    # a float32 chunk of X of ≤ 1 MB stays in cache while blocks of 1,024 query rows stream past: a block's merge
    # is shared by the threads (run_rows gives each at least 64 rows; blocks of 64 were merged on one) and the
    # products are few and large (docs/performance.md §9)
    qb, xc = (1024, max(1024, min(4096, (1 << 18) // d))) if tile is None else tile
    for c0 in range(0, n, xc):
        Xc = X32[c0 : c0 + xc] if X32 is not None else X[c0 : c0 + xc].astype(np.float32)
        for r0 in range(0, m, qb):
            G = Q32[r0 : r0 + qb] @ Xc.T
            run_rows(_merge_screen, G.shape[0], G, sqn, c0, best_s[r0 : r0 + qb], best_i[r0 : r0 + qb], min_rows=64)
    qn = np.einsum("ij,ij->i", Q, Q)
    u = 2.0**-24
    eps = 2.0 * (d * u / (1 - d * u) + 2 * u) * np.sqrt(qn) * np.sqrt(sqn.max())
    out_d = np.empty((m, k))
    out_i = np.empty((m, k), dtype=np.int64)
    ok = np.empty(m, dtype=np.bool_)
    run_rows(_rerank, m, X, Q, qn, best_s, best_i, eps, int(k), out_d, out_i, ok, min_rows=64)
    return out_d, out_i, np.flatnonzero(~ok)


@numba.njit(cache=True, nogil=True)
def _candidate_sqdist(X, Q, idx, out, r0, r1):
    d = X.shape[1]
    for p in range(r0, r1):
        for a in range(idx.shape[1]):
            j = idx[p, a]
            if j < 0:
                out[p, a] = np.inf
                continue
            d2 = 0.0
            for c in range(d):
                t = X[j, c] - Q[p, c]
                d2 += t * t
            out[p, a] = d2


def candidate_sqdist(X, Q, idx):
    """Squared float64 distances from each query to its candidates: array (m, k), inf where ``idx`` is −1.

    The kernel of :func:`candidate_sqdist_numpy` (its oracle): one pass over the candidates' rows, no
    (m, k, d) temporary (437 MB for a block of 4,096 rows of 17 candidates at 784-D).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    Q = np.ascontiguousarray(Q, dtype=np.float64)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    out = np.empty(idx.shape)
    run_rows(_candidate_sqdist, idx.shape[0], X, Q, idx, out, min_rows=64)
    return out


def candidate_sqdist_numpy(X, Q, idx):
    """NumPy reference of :func:`candidate_sqdist`, in blocks of 4,096 rows."""
    out = np.empty(idx.shape)
    for s in range(0, idx.shape[0], 4096):
        diff = X[np.maximum(idx[s : s + 4096], 0)] - Q[s : s + 4096, None, :]
        out[s : s + 4096] = np.einsum("mkd,mkd->mk", diff, diff)
    out[idx < 0] = np.inf
    return out
