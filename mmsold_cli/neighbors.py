"""Nearest-neighbour search over the training set.

Three exact-or-approximate backends behind one interface,
``index.query(Q, k) -> (sqdist, idx)`` with rows sorted by distance:

* ``kdtree`` — scipy's cKDTree: exact, no compile step, builds in
  milliseconds; the choice for low dimension.
* ``brute`` — exact search by blocked BLAS: ``‖q‖² + ‖x‖² − 2 q·x`` one
  block of queries at a time, so memory stays bounded.  Beats tree search
  from about ten dimensions up to tens of thousands of points.
* ``nndescent`` — pynndescent's approximate graph search, for large training
  sets in high dimension.  Its import and numba compilation cost tens of
  seconds in a fresh process, so ``auto`` picks it only where exact search
  would be slower still.

The model file stores no index object (no pickle): a k-d tree is rebuilt on
load in milliseconds, brute force needs nothing, and pynndescent is rebuilt
from the stored training k-NN graph (``init_graph``), skipping the descent.
"""

from __future__ import annotations

import numpy as np

from .errors import MmsoldError

__all__ = ["INDEX_KINDS", "choose_index", "build_index", "knn_graph", "KDTreeIndex", "BruteIndex", "NNDescentIndex"]

INDEX_KINDS = ("auto", "kdtree", "brute", "nndescent")

#: Memory budget of one brute-force block of squared distances, in floats.
_BLOCK_FLOATS = 4_000_000


def choose_index(n: int, d: int) -> str:
    """The backend ``auto`` resolves to for ``n`` points in ``d`` dimensions.

    k-d trees lose to a linear scan as d grows (the ``2^d`` rule of thumb);
    measured here, cKDTree wins up to d ≈ 8.  Exact BLAS search costs
    ``n·d`` per query and stays cheaper than pynndescent's start-up up to
    about 20 million ``n·d``.
    """
    if d <= 8:
        return "kdtree"
    if n * d <= 20_000_000:
        return "brute"
    return "nndescent"


class KDTreeIndex:
    """Exact search with :class:`scipy.spatial.cKDTree`."""

    kind = "kdtree"

    def __init__(self, X: np.ndarray):
        from scipy.spatial import cKDTree

        self.X = X
        self.tree = cKDTree(X, balanced_tree=False, compact_nodes=False)

    def query(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        dist, idx = self.tree.query(Q, k=k, workers=-1)
        if k == 1:
            dist, idx = dist[:, None], idx[:, None]
        return dist * dist, idx.astype(np.int64, copy=False)


class BruteIndex:
    """Exact search by blocked matrix products."""

    kind = "brute"

    def __init__(self, X: np.ndarray):
        self.X = X
        self.sqnorm = np.einsum("ij,ij->i", X, X)

    def query(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = self.X.shape[0]
        m = Q.shape[0]
        out_d = np.empty((m, k))
        out_i = np.empty((m, k), dtype=np.int64)
        step = max(1, _BLOCK_FLOATS // n)
        for s in range(0, m, step):
            q = Q[s : s + step]
            d2 = self.sqnorm[None, :] - 2.0 * (q @ self.X.T)
            part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(q), 1))
            pd = np.take_along_axis(d2, part, axis=1)
            order = np.argsort(pd, axis=1, kind="stable")
            out_i[s : s + step] = np.take_along_axis(part, order, axis=1)
            qn = np.einsum("ij,ij->i", q, q)
            out_d[s : s + step] = np.maximum(np.take_along_axis(pd, order, axis=1) + qn[:, None], 0.0)
        return out_d, out_i


class NNDescentIndex:
    """Approximate search with pynndescent (imported lazily: it is slow to import)."""

    kind = "nndescent"

    def __init__(self, X: np.ndarray, graph: np.ndarray | None = None, random_state: int = 0):
        from pynndescent import NNDescent

        self.X = X
        kw = {}
        if graph is not None:
            kw["init_graph"] = graph
        self.nnd = NNDescent(X, n_neighbors=min(30, X.shape[0] - 1), random_state=random_state,
                             low_memory=True, **kw)
        self.nnd.prepare()

    def query(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        idx, dist = self.nnd.query(Q, k=k)
        idx = idx.astype(np.int64)
        # recompute exact squared distances (pynndescent returns float32 distances)
        diff = self.X[idx] - Q[:, None, :]
        d2 = np.einsum("mkd,mkd->mk", diff, diff)
        order = np.argsort(d2, axis=1, kind="stable")
        return np.take_along_axis(d2, order, axis=1), np.take_along_axis(idx, order, axis=1)


def build_index(X: np.ndarray, kind: str = "auto", graph: np.ndarray | None = None):
    """Build the search structure ``kind`` over training points X of shape (n, d)."""
    if kind not in INDEX_KINDS:
        raise MmsoldError(f"index must be one of {', '.join(INDEX_KINDS)}, got {kind!r}")
    if kind == "auto":
        kind = choose_index(*X.shape)
    if kind == "kdtree":
        return KDTreeIndex(X)
    if kind == "brute":
        return BruteIndex(X)
    return NNDescentIndex(X, graph=graph)


def knn_graph(X: np.ndarray, k: int, index=None) -> tuple[np.ndarray, np.ndarray]:
    """Each training point's k nearest other training points.

    Returns
    -------
    sqdist : array of shape (n, k)
    idx : array of shape (n, k), int64; a point is never its own neighbour
    """
    n = X.shape[0]
    k = min(k, n - 1)
    if index is None:
        index = build_index(X)
    d2, idx = index.query(X, k + 1)
    # drop self (duplicates may put self at any of the zero-distance slots)
    self_mask = idx == np.arange(n)[:, None]
    has_self = self_mask.any(axis=1)
    keep = ~self_mask
    keep[~has_self, -1] = False  # self not found: drop the farthest instead
    return d2[keep].reshape(n, k), idx[keep].reshape(n, k)
