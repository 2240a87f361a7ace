r"""``index``: the K nearest training points of each draw by the model's index, plus L remainder points.

The estimator of the score's definition (:mod:`mmsold_cli.score.smoothed`): each
draw :math:`q = z + u` gets its own K nearest points and L points drawn uniformly
from the other n − K, weighted :math:`(n-K)/L`.
"""

from __future__ import annotations

import numpy as np

from ...rng.streams import REMAINDER, as_step_stream
from .base import Search, antithetic_draws

__all__ = ["IndexSearch"]


class IndexSearch(Search):
    """K nearest by ``index.query`` (+ L remainder points), barycentres by a numba kernel or NumPy.

    Parameters
    ----------
    X : array of shape (n, d)
    index : object with ``query(Q, k) -> (sqdist, idx)``
    K, L : int
    backend : {"numba", "numpy"}
    """

    name = "index"

    def __init__(self, X, index, K: int, L: int = 0, backend: str = "numba"):
        n = X.shape[0]
        self.X, self.index, self.K, self.L, self.backend = X, index, int(min(K, n)), int(L), backend
        self.logw = None
        if self.L > 0:
            self.logw = np.concatenate([np.zeros(self.K), np.full(self.L, np.log((n - self.K) / self.L))])

    def candidates(self, Q, rng, M: int = 1):
        """Neighbour (and remainder) indices of the M·m queries Q (draw-major): array of shape (M m, K + L)."""
        from ..smoothed import remainder_indices

        _, idx = self.index.query(Q, self.K)
        if self.L > 0:
            m = Q.shape[0] // M
            # the remainder's words particle-major, as every draw of the step: split-invariant
            words = as_step_stream(rng).words(REMAINDER, (m, M, self.L))
            words = np.ascontiguousarray(np.moveaxis(words, 1, 0)).reshape(M * m, self.L)
            idx = np.concatenate([idx, remainder_indices(words, idx, self.X.shape[0], self.L)], axis=1)
        return idx

    def barycentre_mean(self, Z, t, sigma, M, rng, *, out=None, score=False):
        from ..smoothed import barycentre_candidates

        m, d = Z.shape
        U = antithetic_draws(rng, M, Z.shape, sigma)
        Mu = U.shape[0]
        Q = (Z[None] + U).reshape(Mu * m, d)
        idx = self.candidates(Q, rng, Mu)
        if self.backend == "numba":
            from ..smoothed_numba import barycentre_mean

            B = barycentre_mean(self.X, Q.reshape(Mu, m, d), np.ascontiguousarray(idx).reshape(Mu, m, -1), t,
                                self.logw)
        else:
            B = barycentre_candidates(self.X, Q, idx, t, self.logw).reshape(Mu, m, d).mean(axis=0)
        return self.finish(B, Z, t, out, score)
