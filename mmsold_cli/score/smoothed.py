r"""The closed-form score of the blurred training set, and its smoothed estimate.

The training points :math:`x_1,\dots,x_n` blurred by Gaussian noise of level
:math:`t` give the mixture :math:`p_t = \frac1n\sum_j \mathcal N(x_j, t^2 I)`,
whose score has the closed form [1]_

.. math::

    s_t(z) = \frac{b_t(z) - z}{t^2}, \qquad
    b_t(z) = \sum_j w_j(z)\, x_j, \qquad
    w(z) = \mathrm{softmax}_j\!\left(-\frac{\|z-x_j\|^2}{2t^2}\right).

Langevin dynamics on :math:`s_t` collapse onto the training points.  The
smoothed score [1]_, [2]_

.. math::

    s_{\sigma,t}(z) = \mathbb E_{u\sim\mathcal N(0,\sigma^2 I)}[s_t(z+u)]
                    = \frac{\mathbb E_u[b_t(z+u)] - z}{t^2}

is estimated with :math:`M` draws in antithetic pairs :math:`(u,-u)`, averaging
only the barycentre and keeping :math:`-z` exact (a control variate: the naive
estimate :math:`\mathbb E[(z+u) - b]/t^2` carries the noise of :math:`u`).
Each barycentre is evaluated on the :math:`K` nearest training points of
:math:`z+u` plus :math:`L` points drawn uniformly from the other
:math:`n-K`, whose weights are multiplied by :math:`(n-K)/L` [2]_:

.. math::

    \hat b_t(q) = \frac{\sum_{j\in N_K(q)} e^{\ell_j} x_j + \frac{n-K}{L}\sum_{j\in R} e^{\ell_j} x_j}
                       {\sum_{j\in N_K(q)} e^{\ell_j} + \frac{n-K}{L}\sum_{j\in R} e^{\ell_j}},
    \qquad \ell_j = -\frac{\|q-x_j\|^2}{2t^2}

where
    * :math:`N_K(q)` are the :math:`K` nearest training points of :math:`q`,
    * :math:`R` are :math:`L` indices drawn without replacement from the rest.

With :math:`K=n` and :math:`L=0` the estimate is exact for the given draws;
:func:`barycentre_exact` (all points, BLAS) is the oracle the tests use.

References
----------
.. [1] Z. Yao, D. Paulin, arXiv:2605.14276, 2026 (smoothed closed-form score).
.. [2] C. Scarvelis, H. Sáez de Ocáriz Borde, J. Solomon, "Closed-Form
   Diffusion Models", arXiv:2310.12395 (TMLR 2025), Sec. 4 and Fig. 5.
"""

from __future__ import annotations

import numpy as np

from .searches.base import antithetic_draws, antithetic_normals

__all__ = [
    "antithetic_draws",
    "antithetic_normals",
    "barycentre_exact",
    "score_exact",
    "smoothed_score_exact",
    "remainder_indices",
    "barycentre_candidates",
    "SmoothedScore",
]

_BLOCK_FLOATS = 1_000_000


def barycentre_exact(X: np.ndarray, Q: np.ndarray, t: float, row0: int | None = None) -> np.ndarray:
    r"""Exact barycentre :math:`b_t(q)` over all n training points.

    Parameters
    ----------
    X : array of shape (n, d)
    Q : array of shape (m, d)
    t : float
    row0 : int, optional
        Index of Q's first row in a larger set of queries (a sampling run's rows): the products then run on
        blocks of one fixed shape, placed at multiples of the block size in that numbering (a partial block padded
        with zero rows), so each row's barycentre is the same bit for bit whichever rows it is computed with.
        BLAS rounds a row of a product differently by the product's shape.

    Returns
    -------
    B : array of shape (m, d)
    """
    X = np.asarray(X, dtype=np.float64)
    half_xn = 0.5 * np.einsum("ij,ij->i", X, X)
    inv_t2 = 1.0 / (t * t)
    m = Q.shape[0]
    out = np.empty(Q.shape, dtype=np.float64)
    step = max(1, _BLOCK_FLOATS // X.shape[0])
    first = 0 if row0 is None else -(int(row0) % step)
    pad = None if row0 is None else np.zeros((step, Q.shape[1]))
    for s in range(first, m, step):
        a, b = max(s, 0), min(s + step, m)
        if pad is None:
            Qb = Q[a:b]
        else:
            pad[:] = 0.0
            pad[a - s : b - s] = Q[a:b]
            Qb = pad
        G = Qb @ X.T  # q·x; the logit −‖q−x‖²/2t² is (q·x − ‖x‖²/2)/t² up to a per-row constant
        G -= half_xn
        G *= inv_t2
        G -= G.max(axis=1, keepdims=True)
        np.maximum(G, -700.0, out=G)  # weights below e^-700 are 0 to double precision; spares exp's slow tail
        np.exp(G, out=G)
        Bb = (G @ X) / G.sum(axis=1)[:, None]
        out[a:b] = Bb if pad is None else Bb[a - s : b - s]
    return out


def score_exact(X: np.ndarray, Z: np.ndarray, t: float) -> np.ndarray:
    """Exact closed-form score :math:`s_t(z)`: array of shape (m, d)."""
    return (barycentre_exact(X, Z, t) - Z) / (t * t)


def smoothed_score_exact(X: np.ndarray, Z: np.ndarray, t: float, U: np.ndarray) -> np.ndarray:
    """Smoothed score with given draws U of shape (M, m, d), every barycentre exact."""
    B = np.mean([barycentre_exact(X, Z + u, t) for u in U], axis=0)
    return (B - Z) / (t * t)


def remainder_indices(words: np.ndarray, nn_idx: np.ndarray, n: int, L: int) -> np.ndarray:
    """L indices per row drawn uniformly without replacement from {0..n−1} minus that row's neighbours.

    Draws ranks in [0, n−K) and maps each past the sorted neighbour indices.

    Parameters
    ----------
    words : array of shape (m, L), uint64
        Uniform random words (:meth:`mmsold_cli.rng.streams.StepStream.words`).
    nn_idx : array of shape (m, K)
    n : int
    L : int, at most n − K

    Returns
    -------
    idx : array of shape (m, L), int64
    """
    m, K = nn_idx.shape
    # Distinct ranks in O(L log L) instead of an O(n) permutation per row:
    # sorted draws from [0, n−K−L] plus 0..L−1 are strictly increasing.  The
    # law is uniform up to collisions of order L²/(n−K), negligible for L ≪ n
    # (and the modulo's bias is below 2⁻⁴⁰ for any n here).
    r = np.sort((words % np.uint64(n - K - L + 1)).astype(np.int64), axis=1) + np.arange(L)
    s = np.sort(nn_idx, axis=1)
    for j in range(K):
        r += s[:, j : j + 1] <= r
    return r


def barycentre_candidates(X: np.ndarray, Q: np.ndarray, idx: np.ndarray, t: float,
                          logw: np.ndarray | None = None) -> np.ndarray:
    r"""Softmax barycentre of each query over its own candidate points (NumPy).

    Parameters
    ----------
    X : array of shape (n, d)
    Q : array of shape (m, d)
    idx : array of shape (m, c), candidate indices into X
    t : float
    logw : array of shape (c,), optional
        Added to the logits column-wise (the remainder's :math:`\log\frac{n-K}{L}`).

    Returns
    -------
    B : array of shape (m, d)
    """
    C = X[idx]  # (m, c, d)
    diff = C - Q[:, None, :]
    logits = -np.einsum("mcd,mcd->mc", diff, diff) / (2.0 * t * t)
    if logw is not None:
        logits = logits + logw
    logits -= logits.max(axis=1, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(axis=1, keepdims=True)
    return np.einsum("mc,mcd->md", w, C)


class SmoothedScore:
    """The smoothed closed-form score of a fitted model, as a callable.

    ``score(Z, t, rng, out=None)`` returns the estimate of :math:`s_{\\sigma,t}` at the
    rows of Z (shape (m, d)), written into ``out`` when given (which may be Z).  It
    counts its barycentre evaluations in ``n_evals`` (one per particle and draw).
    ``rng`` is a step stream (:mod:`mmsold_cli.rng.streams`); a NumPy generator is
    accepted and then draws fresh numbers each call.

    Parameters
    ----------
    X : array of shape (n, d)
        Training points.
    index : object with ``query(Q, k)``
        Neighbour index over X (see :mod:`mmsold_cli.neighbors.indexes`).
    sigma : float
        Smoothing scale σ ≥ 0 (0: the plain closed-form score, one draw).
    M : int
        Draws per step (rounded up to even when σ > 0 for antithetic pairs).
    K : int
        Nearest neighbours per barycentre; ``K >= n`` means exact.
    L : int
        Random remainder points per barycentre.
    backend : {"numba", "numpy"}
        The fused numba kernels or the NumPy reference they must agree with.
    search : {"auto", "grid", "grid-knn", "index", "pool", "all"} or Search
        Which candidates each barycentre is taken over (see Notes and
        :mod:`mmsold_cli.score.searches`); a :class:`~mmsold_cli.score.searches.Search`
        instance is used as it is.
    graph : array of shape (n, g), int, optional
        The training k-NN graph (``Model.knn_idx_``), needed by ``"pool"``.
    pool : int, optional
        Tracked neighbours per particle for ``"pool"`` (default 4 K).
    sampler : str, optional
        The sampler the score serves; ``auto`` picks ``pool`` only for one whose
        particles persist from step to step (see :func:`~mmsold_cli.score.searches.resolve_search`).
    owner : object, optional
        What a grid is cached on (the model), so calls with the same X, σ and K share one.

    Notes
    -----
    * ``"index"``: the K nearest training points of each draw z + u by the
      model's index, plus L remainder points; the definition above.
    * ``"grid-knn"``: the same K nearest points, found on a cell grid
      (:class:`~mmsold_cli.neighbors.indexes.GridIndex`, d ≤ 3) by a kernel fused
      with the softmax and the barycentre (L = 0).
    * ``"grid"``: every training point of one block of grid cells shared by
      the particle's M draws — their cells plus rings, added while the draws
      take turns until each one's inscribed ball holds at least K block points
      (a draw keeps the block it was certified on): a certified superset of
      every draw's K nearest (about 4 K points), so closer to the exact
      barycentre than ``"index"`` (0.4 % from it on the 2-D moons at the
      defaults, the K nearest 4 %), and cheaper than ``"grid-knn"`` because
      no selection is needed and the block is gathered once for all draws (L = 0).
    * ``"pool"``: every draw of a particle uses the particle's own c tracked
      nearest points (:class:`~mmsold_cli.neighbors.tracking.TrackedNeighbours`),
      re-ranked each step from last step's and their graph neighbours.  Exact
      enough when the draws' nearest points stay inside the pool (L = 0).
      ``auto`` picks it for the Langevin samplers when d > 3.
    * ``"all"``: all n points (``K >= n``): the exact barycentre by dense
      matrix products (:func:`barycentre_exact`), the brute-force score.

    ``search`` holds the resolved name, ``strategy`` the search object.
    """

    def __init__(self, X, index, *, sigma, M=4, K=16, L=0, backend="numba", search="auto", graph=None, pool=None,
                 sampler=None, owner=None):
        from .searches import Search, make_search, resolve_search

        self.X = X
        self.sigma = float(sigma)
        self.M = int(M) if sigma > 0 else 1
        n, d = X.shape
        self.K = int(min(K, n))
        self.L = int(min(L, n - self.K))
        self.backend = backend
        self.n_evals = 0
        if isinstance(search, Search):
            self.strategy = search
        else:
            name = resolve_search(search, n=n, d=d, sampler=sampler, K=self.K, L=self.L, backend=backend)
            self.strategy = make_search(name, X, index=index, graph=graph, K=self.K, L=self.L, sigma=self.sigma,
                                        backend=backend, pool=pool, owner=owner, sampler=sampler)
        self.search = self.strategy.name

    def grid(self):
        """The cell grid of a grid search."""
        return self.strategy.grid

    def draws(self, rng, shape, sigma=None):
        """The perturbations u for one step: array of shape (M, *shape), the numbers the searches draw."""
        from .searches import antithetic_draws

        return antithetic_draws(rng, self.M, shape, self.sigma if sigma is None else sigma)

    def new_particles(self):
        """A new batch of particles: forget tracked neighbours."""
        self.strategy.new_particles()

    def barycentre(self, Z, t, rng, sigma=None, *, out=None):
        """Mean over the draws of :math:`\\hat b_t(z+u)`: array of shape (m, d).

        ``sigma`` overrides the smoothing scale for this call (σ-CFDM rescales it with time).
        """
        sigma = self.sigma if sigma is None else float(sigma)
        M = self.M if sigma > 0 else 1
        self.n_evals += M * Z.shape[0]
        return self.strategy.barycentre_mean(Z, t, sigma, M, rng, out=out)

    def __call__(self, Z, t, rng, *, out=None):
        """The score :math:`(\\bar b - z)/t^2` at the rows of Z, into ``out`` if given (it may be Z itself)."""
        M = self.M if self.sigma > 0 else 1
        self.n_evals += M * Z.shape[0]
        return self.strategy.barycentre_mean(Z, t, self.sigma, M, rng, out=out, score=True)

