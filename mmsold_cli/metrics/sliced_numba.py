"""The numba kernel of sliced W2's one-dimensional distances (:func:`mmsold_cli.metrics.points.quantile_sq`).

Between two sorted samples the squared W2 distance is the integral of the squared difference of their
quantile functions, a sum over the merged breakpoints i/m and j/n.  The NumPy reference gathers both samples
at every breakpoint (two arrays of m + n values per direction, 9 of the 18 s sliced W2 took for 4,000,000
points against 1,000,000); the kernel walks the two sorted rows once, in step.
"""

from __future__ import annotations

import numpy as np

from .._numba import import_numba

numba = import_numba()

from .._threads import run_rows  # noqa: E402

__all__ = ["quantile_sq"]


@numba.njit(cache=True, nogil=True)
def _merge(pa, pb, out, r0, r1):
    m, n = pa.shape[1], pb.shape[1]
    for r in range(r0, r1):
        a, b = pa[r], pb[r]
        i = j = 0
        q = 0.0
        s = 0.0
        while i < m and j < n:
            qa = (i + 1) / m  # the next breakpoint of each quantile function
            qb = (j + 1) / n
            nq = qa if qa < qb else qb
            diff = a[i] - b[j]
            s += (nq - q) * diff * diff
            q = nq
            if qa <= qb:
                i += 1
            if qb <= qa:
                j += 1
        out[r] = s


def quantile_sq(pa, pb) -> np.ndarray:
    """:func:`mmsold_cli.metrics.points.quantile_sq`: pa (k, m), pb (k, n), each row sorted; array (k,)."""
    pa = np.ascontiguousarray(pa, dtype=np.float64)
    pb = np.ascontiguousarray(pb, dtype=np.float64)
    out = np.empty(pa.shape[0])
    run_rows(_merge, pa.shape[0], pa, pb, out, min_rows=1)
    return out
