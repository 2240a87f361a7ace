r"""Tracked neighbours: each particle's c nearest training points, carried across steps.

Langevin particles move a fraction of their neighbourhood's radius per step,
so last step's neighbours are a good start for this step's.  The update
re-ranks a candidate pool made of the particle's previous neighbours and
their neighbours in the training set's k-NN graph (``Model.knn_idx_``),

.. math::

    C_i = N_{\text{prev}}(i) \cup \bigcup_{j \in N_{\text{prev}}(i)} G(j), \qquad
    N(i) = \text{the } c \text{ points of } C_i \text{ nearest to } z_i,

and falls back to a full query of the index when the pool is *stale*: when the
particle has moved more than ``stale`` times its neighbourhood radius since
its last full query, or on the first call.

where
    * :math:`N_{\text{prev}}(i)` are particle i's c neighbours at the previous call,
    * :math:`G(j)` the g nearest training points of training point j,
    * :math:`z_i` the particle's new position.

One re-rank costs :math:`c(g+1)` distance evaluations (with repeats skipped)
instead of a search over all n points.  :func:`track_numpy` is the slow
reference of the numba kernel; the tests compare the tracked neighbours with
exact search (recall).
"""

from __future__ import annotations

import numpy as np

__all__ = ["TrackedNeighbours", "track_numpy", "recall"]


def track_numpy(X: np.ndarray, graph: np.ndarray, Z: np.ndarray, pool: np.ndarray, c: int):
    """Reference re-rank (NumPy, one particle at a time).

    Parameters
    ----------
    X : array of shape (n, d)
    graph : array of shape (n, g), int
    Z : array of shape (m, d)
    pool : array of shape (m, c0), int, the previous neighbours
    c : int

    Returns
    -------
    sqdist : array of shape (m, c), ascending
    idx : array of shape (m, c), int64
    """
    m = Z.shape[0]
    out_d = np.empty((m, c))
    out_i = np.empty((m, c), dtype=np.int64)
    for p in range(m):
        cand = np.unique(np.concatenate([pool[p], graph[pool[p]].ravel()]))
        d2 = np.sum((X[cand] - Z[p]) ** 2, axis=1)
        order = np.lexsort((cand, d2))[:c]
        out_d[p], out_i[p] = d2[order], cand[order]
    return out_d, out_i


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Share of the exact neighbours (rows of ``exact``) present in the rows of ``found``."""
    hits = 0
    for a, b in zip(found, exact):
        hits += np.intersect1d(a, b).size
    return hits / exact.size


class TrackedNeighbours:
    """Each particle's c nearest training points, updated by graph re-ranking.

    Parameters
    ----------
    X : array of shape (n, d)
    graph : array of shape (n, g), int
        Each training point's nearest other points (``Model.knn_idx_``).
    index : object with ``query(Q, k)``
        Exact (or approximate) index for the full queries.
    c : int
        Neighbours kept per particle.
    stale : float
        A particle whose distance from where it was last fully queried
        exceeds ``stale`` × (its c-th neighbour distance then) is queried
        afresh.

    Attributes
    ----------
    n_full, n_tracked : int
        Rows answered by full queries and by re-ranking, so far.
    """

    def __init__(self, X, graph, index, c: int, stale: float = 0.5):
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        # int32 graph and neighbour lists (as stored): half the memory of int64
        self._int = np.int32 if X.shape[0] < 2**31 else np.int64
        self.graph = np.ascontiguousarray(graph, dtype=self._int)
        self.index = index
        self.c = int(min(c, X.shape[0]))
        self.stale = float(stale)
        self.n_full = 0
        self.n_tracked = 0
        self.reset()

    def reset(self):
        """Forget all particles (the next query is a full one)."""
        self.idx = self._anchor = self._radius = None

    def _full(self, Z, distances):
        """Full queries, 1,024 rows at a time (an exact search's working lists are ~2c values per row).

        Returns (sqdist or None, idx, distance to the c-th neighbour).
        """
        m = Z.shape[0]
        d2 = np.empty((m, self.c)) if distances else None
        idx = np.empty((m, self.c), dtype=self._int)
        radius = np.empty(m)
        for a in range(0, m, 1024):
            b = min(a + 1024, m)
            d2_b, idx[a:b] = self.index.query(Z[a:b], self.c)
            radius[a:b] = np.sqrt(d2_b[:, -1])
            if distances:
                d2[a:b] = d2_b
        self.n_full += m
        return d2, idx, radius

    def query(self, Z: np.ndarray, *, distances: bool = True):
        """The c nearest training points of each row of Z, tracked from the previous call.

        Rows are matched to the previous call's rows by position; a call with a
        different number of rows starts afresh.

        Returns
        -------
        sqdist : array of shape (m, c), ascending; None if ``distances`` is False
            (rows re-ranked from the pool then keep no (m, c) distance array)
        idx : array of shape (m, c), int32 (int64 beyond 2³¹ training points); the next call
            re-ranks it in place (copy it to keep it)
        """
        Z = np.ascontiguousarray(Z, dtype=np.float64)
        if self.idx is None or self.idx.shape[0] != Z.shape[0]:
            d2, idx, self._radius = self._full(Z, distances)
            # float32 anchors: the staleness test compares a distance with half a neighbour radius
            self._anchor = Z.astype(np.float32)
        else:
            from .tracking_numba import track

            # the new lists replace the old in their array (the caller's copy from the last call included)
            d2, idx = track(self.X, self.graph, Z, self.idx, self.c, distances=distances, out=self.idx)
            self.n_tracked += Z.shape[0]
            moved = np.empty(Z.shape[0])
            for s in range(0, Z.shape[0], 1024):  # in row blocks: no (m, d) temporaries
                diff = Z[s : s + 1024] - self._anchor[s : s + 1024]
                moved[s : s + 1024] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
            rows = np.flatnonzero(moved > self.stale * self._radius)
            if rows.size:
                d2_rows, idx[rows], self._radius[rows] = self._full(Z[rows], distances)
                if distances:
                    d2[rows] = d2_rows
                self._anchor[rows] = Z[rows]
        self.idx = idx  # the distances go to the caller only (a (B, c) array less between steps)
        return d2, idx
