"""The numba kernel of :mod:`mmsold_cli.neighbors.tracking`: re-rank each particle's pool and its graph neighbours.

Serial ``nogil`` kernel over plain arrays; :func:`~mmsold_cli._threads.run_rows` spreads the particles over threads.
"""

from __future__ import annotations

import numpy as np

from .._numba import import_numba

numba = import_numba()

from .._threads import run_rows  # noqa: E402
from .walk_numba import insert_sorted  # noqa: E402

__all__ = ["track"]


@numba.njit(cache=True, nogil=True)
def _track(X, graph, Z, pool, c, out_d, out_i, r0, r1):
    m, d = Z.shape
    n = X.shape[0]
    c0 = pool.shape[1]
    g = graph.shape[1]
    seen = np.zeros(n, np.int64)  # seen[j] == p + 1: j already offered for particle p
    bd = np.empty(c)
    bi = np.empty(c, out_i.dtype)  # built here, then copied: out_i may be the pool itself
    keep_d = out_d.shape[0] > 0  # an empty out_d: the caller wants the indices only
    for p in range(r0, r1):
        for j in range(c):
            bd[j] = np.inf
            bi[j] = -1
        worst = np.inf
        tag = p + 1
        for a in range(c0 * (g + 1)):
            if a < c0:
                j = pool[p, a]
            else:
                j = graph[pool[p, (a - c0) // g], (a - c0) % g]
            if seen[j] == tag:
                continue
            seen[j] = tag
            d2 = 0.0
            for k in range(d):
                t = X[j, k] - Z[p, k]
                d2 += t * t
            if d2 < worst or (d2 == worst and j < bi[c - 1]):
                insert_sorted(bd, bi, c, d2, j)
                worst = bd[c - 1]
        for j in range(c):
            out_i[p, j] = bi[j]
        if keep_d:
            for j in range(c):
                out_d[p, j] = bd[j]


def track(X, graph, Z, pool, c, *, distances=True, out=None):
    """Re-rank each particle's previous neighbours and their graph neighbours (see :mod:`mmsold_cli.neighbors.tracking`).

    ``out``: where the new lists go, shape (m, c), of pool's integer type; ``out=pool`` writes them over the
    pool itself (same width c, C-contiguous), no second (m, c) array.

    Returns
    -------
    sqdist : array of shape (m, c), ascending (ties by index); None when ``distances`` is False
    idx : array of shape (m, c), of pool's integer type (int32 or int64)
    """
    m = Z.shape[0]
    given = pool
    pool = np.ascontiguousarray(pool, dtype=np.int32 if pool.dtype == np.int32 else np.int64)
    out_d = np.empty((m, c) if distances else (0, c))
    if out is None:
        out_i = np.empty((m, c), dtype=pool.dtype)
    elif out is given and pool is given and pool.shape[1] == c:
        out_i = pool
    else:
        raise ValueError(f"out must be the pool itself (C-contiguous, width {c}) or None, got shape "
                         f"{getattr(out, 'shape', None)}")
    run_rows(_track, m, X, graph, np.ascontiguousarray(Z, dtype=np.float64), pool, int(c), out_d, out_i, min_rows=64)
    return (out_d if distances else None), out_i
