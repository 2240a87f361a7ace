r"""``walk``: every draw of a particle uses the particle's beam, walked along the training k-NN graph each step.

The beam (:class:`~mmsold_cli.neighbors.walk.WalkNeighbours`) holds the c training
points nearest the particle; each step re-measures it at the particle's new
position and expands its nearest entries' graph neighbours (no search over all
n points, ever: first beams start from anchors).  The numba kernel fuses the
walk, the draws and the softmax: with the beam's distances
:math:`D_j = \|x_j - z\|^2` known, a draw u costs one dot product per point,

.. math::

    \|x_j - z - u\|^2 = D_j - 2\,u\cdot(x_j - z) + \|u\|^2,

(the last term cancels in the softmax; the antithetic twin −u costs nothing more),
and the draws' weights are summed before the one weighted pass over the beam,
:math:`\bar b - z = \sum_j \bar\omega_j (x_j - z)`, :math:`\bar\omega_j = \frac1M\sum_r w_{rj}`.
Exact enough when every draw's nearest points are in the beam (L = 0).

The numba kernel reads the training points from a float32 copy (:func:`rows_of`) and computes in float64:
the walk is bound by the latency of fetching rows it has not seen, and half the bytes per row is 45 % more
particle-steps/s on MNIST PCA-64 (docs/performance.md §9).  The score is then the exact one of the training
points rounded to float32, a relative change of at most 6·10⁻⁸ in each coordinate.
"""

from __future__ import annotations

import numpy as np

from .base import Search, antithetic_draws, draw_counts, score_key

__all__ = ["WalkSearch", "walk_graph_of", "rows_of"]


def walk_graph_of(model, graph=None):
    """The walk graph of a fitted model (k-NN graph plus reverse edges), made once and kept on the model;
    ``graph`` itself when there is no model."""
    if model is None or not hasattr(model, "knn_idx_"):
        return graph
    cached = model.__dict__.get("_walk_graph")
    if cached is None:
        from ...neighbors.walk import walk_graph

        cached = model.__dict__["_walk_graph"] = walk_graph(model.knn_idx_, model.knn_sqdist_)
    return cached


def rows_of(model, X):
    """The float32 copy of the training points X the numba walk reads; made once and kept on the model when
    X is the model's own."""
    if model is None or getattr(model, "X_", None) is not X:
        return np.ascontiguousarray(X, dtype=np.float32)
    cached = model.__dict__.get("_rows32")
    if cached is None:
        cached = model.__dict__["_rows32"] = np.ascontiguousarray(X, dtype=np.float32)
    return cached


class WalkSearch(Search):
    """Walked beams of ``c`` training points per particle (default POOL_FACTOR × K); numba fused or NumPy.

    Parameters
    ----------
    X : array of shape (n, d)
    graph : array of shape (n, g), int — the graph to walk (:func:`walk_graph_of` the model; −1 pads)
    K : int
    c : int, optional — beam width
    backend : {"numba", "numpy"}
    width : int, optional — the beam's first ``width`` entries are expanded once while they stay in the beam
        (default :func:`~mmsold_cli.defaults.walk_width` of n)
    renew : int, optional — the first ``renew`` entries are expanded at every step (default
        :data:`~mmsold_cli.defaults.WALK_RENEW`)
    rows : array of shape (n, d), float32, optional — X rounded to float32, read by the numba kernel
        (:func:`rows_of`; made from X when not given)
    first : object with ``query(Q, k)``, optional — the index first beams come from (default: anchors, see
        :class:`~mmsold_cli.neighbors.walk.WalkNeighbours`); σ-CFDM's first queries lie far from the data
    """

    name = "walk"

    def __init__(self, X, graph, K: int, c: int | None = None, backend: str = "numba", width: int | None = None,
                 renew: int | None = None, rows=None, first=None):
        from ...defaults import POOL_FACTOR, WALK_RENEW, walk_width
        from ...errors import MmsoldError
        from ...neighbors.walk import WalkNeighbours

        if graph is None:
            raise MmsoldError("search 'walk' needs the training k-NN graph (graph=model.knn_idx_)")
        self.X, self.backend = np.ascontiguousarray(X, dtype=np.float64), backend
        c = POOL_FACTOR * int(K) if c is None else int(c)
        self.tracker = WalkNeighbours(self.X, graph, c, width=walk_width(self.X.shape[0]) if width is None else width,
                                      renew=WALK_RENEW if renew is None else renew, index=first)
        self.rows = None if backend != "numba" else rows_of(None, self.X) if rows is None else rows

    def new_particles(self):
        self.tracker.reset()

    def barycentre_mean(self, Z, t, sigma, M, rng, *, out=None, score=False):
        m, d = Z.shape
        tr = self.tracker
        if self.backend == "numba":
            from ..smoothed_numba import walk_barycentre_mean

            Z = np.ascontiguousarray(Z, dtype=np.float64)
            if tr.idx is None or tr.idx.shape[0] != m:
                tr.start(Z)
            else:
                tr.n_walked += m
            Mg, n_pairs = draw_counts(M, sigma)
            if sigma == 0:
                G, key, start = np.zeros((1, m, d)), None, 0
            else:
                G, (key, start) = None, score_key(rng, m, d, Mg)
            return walk_barycentre_mean(self.rows, tr.graph, Z, tr.idx, t, expanded=tr.expanded, width=tr.width,
                                        max_expand=tr.width, renew=tr.renew,
                                        sigma=sigma, n_pairs=n_pairs, G=G, key=key, start=start, n_normals=Mg,
                                        score=score, out=out)
        from ...neighbors.walk import walk_numpy
        from ..smoothed import barycentre_candidates

        U = antithetic_draws(rng, M, Z.shape, sigma)
        if tr.idx is None or tr.idx.shape[0] != m:
            tr.start(Z)
        _, tr.idx = walk_numpy(self.X, tr.graph, Z, tr.idx, width=tr.width, max_expand=tr.width, renew=tr.renew,
                               expanded=tr.expanded)
        tr.idx = tr.idx.astype(tr._int)
        Mu = U.shape[0]
        idx = np.broadcast_to(tr.idx, (Mu,) + tr.idx.shape).reshape(Mu * m, -1)
        B = barycentre_candidates(self.X, (Z[None] + U).reshape(Mu * m, d), idx, t).reshape(Mu, m, d).mean(axis=0)
        return self.finish(B, Z, t, out, score)
