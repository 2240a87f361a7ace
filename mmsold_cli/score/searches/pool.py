r"""``pool``: every draw of a particle uses the particle's own c tracked nearest training points.

The pool (:class:`~mmsold_cli.neighbors.tracking.TrackedNeighbours`) is re-ranked each
step from last step's neighbours and their neighbours in the training k-NN
graph; a particle that moved too far is queried afresh.  Exact enough when the
draws' nearest points stay inside the pool (L = 0).
"""

from __future__ import annotations

import numpy as np

from .base import Search, antithetic_draws, draw_counts, score_key

__all__ = ["PoolSearch"]


class PoolSearch(Search):
    """Tracked pools of ``c`` neighbours per particle (default POOL_FACTOR × K); numba fused or NumPy.

    Parameters
    ----------
    X : array of shape (n, d)
    graph : array of shape (n, g), int — the training k-NN graph (``Model.knn_idx_``)
    index : object with ``query(Q, k)`` for the full queries
    K : int
    c : int, optional
    backend : {"numba", "numpy"}
    """

    name = "pool"

    def __init__(self, X, graph, index, K: int, c: int | None = None, backend: str = "numba"):
        from ...defaults import POOL_FACTOR
        from ...errors import MmsoldError
        from ...neighbors.tracking import TrackedNeighbours

        if graph is None:
            raise MmsoldError("search 'pool' needs the training k-NN graph (graph=model.knn_idx_)")
        self.X, self.backend = X, backend
        self.tracker = TrackedNeighbours(X, graph, index, POOL_FACTOR * int(K) if c is None else int(c))

    def new_particles(self):
        self.tracker.reset()

    def barycentre_mean(self, Z, t, sigma, M, rng, *, out=None, score=False):
        m, d = Z.shape
        if self.backend == "numba":
            from ..smoothed_numba import pool_barycentre_mean

            Z = np.ascontiguousarray(Z, dtype=np.float64)
            Mg, n_pairs = draw_counts(M, sigma)
            if sigma == 0:
                G, key, start = np.zeros((1, m, d)), None, 0
            else:
                G, (key, start) = None, score_key(rng, m, d, Mg)
            _, pool = self.tracker.query(Z, distances=False)
            return pool_barycentre_mean(self.X, Z, G, pool, t, sigma=sigma, n_pairs=n_pairs, key=key, start=start,
                                        n_normals=Mg, score=score, out=out)
        from ..smoothed import barycentre_candidates

        U = antithetic_draws(rng, M, Z.shape, sigma)
        _, pool = self.tracker.query(Z)
        Mu = U.shape[0]
        idx = np.broadcast_to(pool, (Mu,) + pool.shape).reshape(Mu * m, -1)
        B = barycentre_candidates(self.X, (Z[None] + U).reshape(Mu * m, d), idx, t).reshape(Mu, m, d).mean(axis=0)
        return self.finish(B, Z, t, out, score)
