"""The numba kernel of :func:`mmsold_cli.metrics.uniformity.farthest_points`.

Farthest-point sampling keeps every point's squared distance to the seeds chosen so far and takes the
largest next; the NumPy reference makes two (N, 3) temporaries a seed, 23 s for 1,000 seeds of a
1,000,000-point cloud.  The kernel updates the distances in place in one pass a seed, summing the squares in
the reference's order and taking the first of equal largest, so it picks the same points.
"""

from __future__ import annotations

import numpy as np

from .._numba import import_numba

numba = import_numba()

__all__ = ["farthest_points"]


@numba.njit(cache=True, nogil=True)
def _farthest(P, idx):
    n = P.shape[0]
    d = np.empty(n)
    c = P[idx[0]]
    for j in range(n):
        d[j] = (P[j, 0] - c[0]) ** 2 + (P[j, 1] - c[1]) ** 2 + (P[j, 2] - c[2]) ** 2
    for i in range(1, idx.shape[0]):
        best = 0
        for j in range(1, n):
            if d[j] > d[best]:
                best = j
        idx[i] = best
        c = P[best]
        for j in range(n):
            v = (P[j, 0] - c[0]) ** 2 + (P[j, 1] - c[1]) ** 2 + (P[j, 2] - c[2]) ** 2
            if v < d[j]:
                d[j] = v


def farthest_points(P, m: int, *, start: int = 0) -> np.ndarray:
    """:func:`mmsold_cli.metrics.uniformity.farthest_points` of a (N, 3) cloud: the same m indices."""
    P = np.ascontiguousarray(P, dtype=np.float64)
    idx = np.empty(min(int(m), len(P)), dtype=np.int64)
    idx[0] = start
    _farthest(P, idx)
    return idx
