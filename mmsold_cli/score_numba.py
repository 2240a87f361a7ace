"""Fused numba kernel for the smoothed barycentre.

One pass per query over its candidate points computes the squared distance,
the running (online) softmax and the weighted sum, then averages over the M
draws, all without materialising the (m, c, d) gather that the NumPy
reference :func:`mmsold_cli.score.barycentre_candidates` builds.  The kernel
takes plain arrays only, so ``cache=True`` holds across processes.
"""

from __future__ import annotations

import numpy as np

from ._config import numba_cache_dir

numba_cache_dir()

import numba  # noqa: E402

__all__ = ["barycentre_mean"]


@numba.njit(parallel=True, fastmath=False, cache=True, nogil=True)
def _bary_mean(X, Q, idx, inv2t2, logw, out):
    M, m, d = Q.shape
    c = idx.shape[2]
    use_logw = logw.shape[0] == c
    for p in numba.prange(m):
        acc = np.zeros(d)
        num = np.empty(d)
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
                    sc = np.exp(mx - lg)
                    den *= sc
                    for k in range(d):
                        num[k] *= sc
                    mx = lg
                w = np.exp(lg - mx)
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
    _bary_mean(np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(Q, dtype=np.float64),
               np.ascontiguousarray(idx, dtype=np.int64), 1.0 / (2.0 * t * t), lw, out)
    return out
