r"""``grid`` and ``grid-knn`` (d ≤ 3, numba): candidates from a cell grid, fused with the draws and the softmax.

* ``grid-knn``: the exact K nearest points of each draw, found on the grid.
* ``grid``: every point of one block of cells shared by the particle's M draws
  — their cells plus rings, grown while the draws take turns until each one's
  inscribed ball holds at least K block points: a certified superset of every
  draw's K nearest (about 4 K points), closer to the exact barycentre than the
  K nearest and cheaper, since the block is gathered once for all draws.

Both draw their normals in the kernel from the step's key at the rows' counters.
"""

from __future__ import annotations

import weakref

import numpy as np

from .base import Search, draw_counts, score_key

__all__ = ["GridSearch", "grid_for"]

# A grid depends on (X, σ, K) only; densify and repeated sample() calls on one model reuse it.
_GRIDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def grid_for(owner, X, sigma: float, K: int):
    """The cell grid of X sized for the typical K-th neighbour distance of a point plus one draw of σ.

    Cached per ``owner`` (a model; None: not cached).
    """
    from ...neighbors.indexes import GridIndex

    cache = _GRIDS.setdefault(owner, {}) if owner is not None else {}
    key = (float(sigma), int(K))
    if key not in cache:
        rng = np.random.default_rng(0)
        q = X[rng.integers(0, X.shape[0], 256)] + sigma * rng.standard_normal((256, X.shape[1]))
        cache[key] = GridIndex(X, radius=GridIndex.typical_radius(X, q, K), k=K)
    return cache[key]


class GridSearch(Search):
    """Block (``exact_k=False``) or exact-K (``exact_k=True``) barycentres on a grid (numba only)."""

    def __init__(self, X, K: int, sigma: float, *, exact_k: bool = False, owner=None):
        self.X, self.K, self.exact_k = X, int(min(K, X.shape[0])), bool(exact_k)
        self.name = "grid-knn" if exact_k else "grid"
        self.grid = grid_for(owner, X, sigma, self.K)

    def barycentre_mean(self, Z, t, sigma, M, rng, *, out=None, score=False):
        from ...neighbors.grid_numba import grid_bary_mean

        Z = np.ascontiguousarray(Z, dtype=np.float64)
        m, d = Z.shape
        Mg, n_pairs = draw_counts(M, sigma)
        if sigma == 0:
            G, key, start = np.zeros((1, m, d)), None, 0
        else:
            G, (key, start) = None, score_key(rng, m, d, Mg)
        return grid_bary_mean(self.grid, Z, G, self.K, t, exact_k=self.exact_k, sigma=sigma, n_pairs=n_pairs,
                              key=key, start=start, n_normals=Mg, score=score, out=out)
