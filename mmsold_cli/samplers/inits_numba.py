"""The numba kernel of :func:`mmsold_cli.samplers.inits.spatial_order`: k-d tree leaf order, level by level.

A plain serial ``nogil`` kernel; :func:`mmsold_cli.samplers.inits.spatial_order_numpy` is the reference it
must equal (the tests compare the permutations).
"""

from __future__ import annotations

import numpy as np

from .._numba import import_numba

numba = import_numba()

__all__ = ["leaf_order"]

#: Cells of at most SMALL points are sorted in place by insertion, larger ones by a merge sort.
SMALL = 32


@numba.njit(cache=True, nogil=True)
def _leaf_order(X, order, leaf):
    n, d = X.shape  # X's rows are kept in the order's order, so every pass reads them in sequence
    starts = np.zeros(1, np.int64)
    lo, hi = np.empty(d), np.empty(d)
    while True:
        m = starts.shape[0]
        ends = np.empty(m, np.int64)
        ends[: m - 1] = starts[1:]
        ends[m - 1] = n
        if (ends - starts).max() <= leaf:
            return
        # every cell sorted along its widest axis (first of equal spreads), stably: as NumPy's lexsort by
        # (cell, key), cells at or under ``leaf`` included, since the reference sorts them too
        for c in range(m):
            a, b = starts[c], ends[c]
            lo[:] = X[a]
            hi[:] = X[a]
            for r in range(a + 1, b):
                for k in range(d):
                    lo[k] = min(lo[k], X[r, k])
                    hi[k] = max(hi[k], X[r, k])
            best, axis = -1.0, 0
            for k in range(d):
                if hi[k] - lo[k] > best:
                    best, axis = hi[k] - lo[k], k
            if b - a <= SMALL:  # in place (stable insertion): the many small cells of the deep levels
                for r in range(a + 1, b):
                    row, i, v = X[r].copy(), order[r], X[r, axis]
                    q = r
                    while q > a and X[q - 1, axis] > v:
                        X[q] = X[q - 1]
                        order[q] = order[q - 1]
                        q -= 1
                    X[q] = row
                    order[q] = i
                continue
            perm = np.argsort(X[a:b, axis], kind="mergesort")
            rows, ids = X[a:b].copy(), order[a:b].copy()
            for r in range(b - a):
                X[a + r] = rows[perm[r]]
                order[a + r] = ids[perm[r]]
        split = 0
        for c in range(m):
            if ends[c] - starts[c] > leaf:
                split += 1
        new = np.empty(m + split, np.int64)
        q = 0
        for c in range(m):
            new[q] = starts[c]
            q += 1
            if ends[c] - starts[c] > leaf:
                new[q] = starts[c] + (ends[c] - starts[c]) // 2
                q += 1
        starts = new


def leaf_order(X: np.ndarray, leaf: int) -> np.ndarray:
    """The leaf-order permutation of the rows of X (n, d) float64, of int32 when n < 2³¹."""
    n = X.shape[0]
    order = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    _leaf_order(np.array(X, dtype=np.float64, order="C"), order, int(leaf))  # a copy: its rows are permuted
    return order
