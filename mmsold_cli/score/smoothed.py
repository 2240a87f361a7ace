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

__all__ = [
    "barycentre_exact",
    "score_exact",
    "smoothed_score_exact",
    "antithetic_draws",
    "antithetic_normals",
    "remainder_indices",
    "barycentre_candidates",
    "SmoothedScore",
    "SEARCHES",
]

_BLOCK_FLOATS = 1_000_000


def barycentre_exact(X: np.ndarray, Q: np.ndarray, t: float) -> np.ndarray:
    r"""Exact barycentre :math:`b_t(q)` over all n training points.

    Parameters
    ----------
    X : array of shape (n, d)
    Q : array of shape (m, d)
    t : float

    Returns
    -------
    B : array of shape (m, d)
    """
    X = np.asarray(X, dtype=np.float64)
    half_xn = 0.5 * np.einsum("ij,ij->i", X, X)
    inv_t2 = 1.0 / (t * t)
    out = np.empty(Q.shape, dtype=np.float64)
    step = max(1, _BLOCK_FLOATS // X.shape[0])
    for s in range(0, Q.shape[0], step):
        G = Q[s : s + step] @ X.T  # q·x; the logit −‖q−x‖²/2t² is (q·x − ‖x‖²/2)/t² up to a per-row constant
        G -= half_xn
        G *= inv_t2
        G -= G.max(axis=1, keepdims=True)
        np.maximum(G, -700.0, out=G)  # weights below e^-700 are 0 to double precision; spares exp's slow tail
        np.exp(G, out=G)
        out[s : s + step] = (G @ X) / G.sum(axis=1)[:, None]
    return out


def score_exact(X: np.ndarray, Z: np.ndarray, t: float) -> np.ndarray:
    """Exact closed-form score :math:`s_t(z)`: array of shape (m, d)."""
    return (barycentre_exact(X, Z, t) - Z) / (t * t)


def smoothed_score_exact(X: np.ndarray, Z: np.ndarray, t: float, U: np.ndarray) -> np.ndarray:
    """Smoothed score with given draws U of shape (M, m, d), every barycentre exact."""
    B = np.mean([barycentre_exact(X, Z + u, t) for u in U], axis=0)
    return (B - Z) / (t * t)


def antithetic_normals(rng: np.random.Generator, M: int, shape: tuple) -> tuple[np.ndarray, int]:
    """Standard normals for M draws in antithetic pairs, without the mirrored half.

    Returns ``(G, n_pairs)``: G of shape (M − M // 2, m, d) for shape (m, d); the draws are
    ``G[r]`` for every r and ``−G[r]`` for r < n_pairs = M // 2 (an odd M's
    last row is unpaired).  One key from ``rng``
    (:func:`mmsold_cli.rng.normals.new_key`), its normals taken particle-major,
    ``G[r, p] =`` normals ``(p Mg + r) d …`` — the numbers the fused kernels
    draw themselves from the same key.
    """
    from ..rng.normals import from_key, new_key

    m, d = shape
    return np.moveaxis(from_key(new_key(rng), (m, M - M // 2, d)), 1, 0), M // 2


def antithetic_draws(rng: np.random.Generator, M: int, shape: tuple, sigma: float) -> np.ndarray:
    """M Gaussian draws of standard deviation sigma in pairs (u, −u): shape (M, *shape).

    The pairs first, then (odd M) the unpaired draw; the same random stream as
    :func:`antithetic_normals`.
    """
    G, k = antithetic_normals(rng, M, shape)
    return np.concatenate([sigma * G[:k], -sigma * G[:k], sigma * G[k:]], axis=0)


def remainder_indices(rng: np.random.Generator, nn_idx: np.ndarray, n: int, L: int) -> np.ndarray:
    """L indices per row drawn uniformly without replacement from {0..n−1} minus that row's neighbours.

    Draws ranks in [0, n−K) and maps each past the sorted neighbour indices.

    Parameters
    ----------
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
    # law is uniform up to collisions of order L²/(n−K), negligible for L ≪ n.
    r = np.sort(rng.integers(0, n - K - L + 1, size=(m, L)), axis=1) + np.arange(L)
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


#: Neighbour-search strategies of :class:`SmoothedScore` (see its Notes).
SEARCHES = ("auto", "grid", "grid-knn", "index", "pool", "all")


class SmoothedScore:
    """The smoothed closed-form score of a fitted model, as a callable.

    ``score(Z, t, rng)`` returns the estimate of :math:`s_{\\sigma,t}` at the
    rows of Z (shape (m, d)).  It counts its barycentre evaluations in
    ``n_evals`` (one per particle and draw).

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
    search : {"auto", "grid", "grid-knn", "index", "pool", "all"}
        Which candidates each barycentre is taken over (see Notes).
    graph : array of shape (n, g), int, optional
        The training k-NN graph (``Model.knn_idx_``), needed by ``"pool"``.
    pool : int, optional
        Tracked neighbours per particle for ``"pool"`` (default 4 K).
    grid : GridIndex, optional
        A cell grid built earlier by :meth:`grid` for the same X, σ and K
        (reused instead of built again).

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
      :func:`mmsold_cli.sampling.sample` picks it for the Langevin samplers
      when d > 3: on MNIST PCA-64 at the latent defaults the drift differs
      from the exact one by 2.3 % (4K = 64 pool; the K = 16 index search:
      1.6e-7) with the same sample precision, recall and sliced W2.
    * ``"all"``: all n points (``K >= n``): the exact barycentre by dense
      matrix products (:func:`barycentre_exact`), the brute-force score.

    ``"auto"`` is ``"all"`` when K ≥ n, ``"grid"`` for the numba backend,
    L = 0 and d ≤ 3, and ``"index"`` otherwise.  ``search`` holds the
    resolved choice.
    """

    def __init__(self, X, index, *, sigma, M=4, K=16, L=0, backend="numba", search="auto", graph=None, pool=None,
                 grid=None):
        from ..errors import MmsoldError
        from ..neighbors.indexes import GRID_MAX_DIM

        self.X = X
        self.index = index
        self.sigma = float(sigma)
        self.M = int(M) if sigma > 0 else 1
        n, d = X.shape
        self.K = int(min(K, n))
        self.L = int(min(L, n - self.K))
        self.backend = backend
        self.n_evals = 0
        self._logw = None
        if self.L > 0:
            self._logw = np.concatenate([np.zeros(self.K), np.full(self.L, np.log((n - self.K) / self.L))])
        if search not in SEARCHES:
            raise MmsoldError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
        if self.K >= n:
            search = "all"
        elif search == "auto":
            search = "grid" if backend == "numba" and self.L == 0 and d <= GRID_MAX_DIM else "index"
        if search in ("grid", "grid-knn"):
            if d > GRID_MAX_DIM:
                raise MmsoldError(f"search {search!r} needs dimension ≤ {GRID_MAX_DIM}, got {d}")
            if backend != "numba":
                raise MmsoldError(f"search {search!r} needs the numba backend, got {backend!r}")
        if search in ("grid", "grid-knn", "pool") and self.L > 0:
            raise MmsoldError(f"search {search!r} takes no remainder points (L = 0), got L = {self.L}")
        self.search = search
        self._grid = grid
        self.tracker = None
        if search == "pool":
            from ..neighbors.tracking import TrackedNeighbours

            if graph is None:
                raise MmsoldError("search 'pool' needs the training k-NN graph (graph=model.knn_idx_)")
            self.tracker = TrackedNeighbours(X, graph, index, 4 * self.K if pool is None else int(pool))

    def grid(self):
        """The cell grid of the fused paths, built on first use (milliseconds).

        Its cells are sized for the typical K-th neighbour distance of a
        perturbed query (a training point plus one draw of σ).
        """
        if self._grid is None:
            from ..neighbors.indexes import GridIndex

            rng = np.random.default_rng(0)
            X = self.X
            q = X[rng.integers(0, X.shape[0], 256)] + self.sigma * rng.standard_normal((256, X.shape[1]))
            self._grid = GridIndex(X, radius=GridIndex.typical_radius(X, q, self.K), k=self.K)
        return self._grid

    def draws(self, rng, shape, sigma=None):
        """The perturbations u for one step: array of shape (M, *shape).

        One key from ``rng``: the draws the fused kernels make themselves
        (:func:`antithetic_normals`).
        """
        sigma = self.sigma if sigma is None else sigma
        if sigma == 0:
            return np.zeros((1,) + tuple(shape))
        return antithetic_draws(rng, self.M, shape, sigma)

    def candidates(self, Q, rng):
        """Neighbour (and remainder) indices of each query: array of shape (m, K+L)."""
        n = self.X.shape[0]
        if self.K >= n:
            return np.broadcast_to(np.arange(n), (Q.shape[0], n))
        _, idx = self.index.query(Q, self.K)
        if self.L > 0:
            idx = np.concatenate([idx, remainder_indices(rng, idx, n, self.L)], axis=1)
        return idx

    def barycentre(self, Z, t, rng, sigma=None, *, into_z=False):
        """Mean over the draws of :math:`\\hat b_t(z+u)`: array of shape (m, d).

        ``sigma`` overrides the smoothing scale for this call (σ-CFDM rescales
        it with time).  ``into_z`` (the fused kernels only; Z a C-contiguous
        float64 array): return the score :math:`(\\hat b - z)/t^2` written
        over Z instead.
        """
        if self.search in ("grid", "grid-knn") or (self.search == "pool" and self.backend == "numba"):
            from ..rng.normals import new_key

            sigma = self.sigma if sigma is None else sigma
            # The kernels draw their normals from the key and mirror the pairs themselves: no array of normals.
            Z = np.ascontiguousarray(Z, dtype=np.float64)
            m = Z.shape[0]
            G, key, n_pairs = (np.zeros((1, m, Z.shape[1])), None, 0) if sigma == 0 else \
                (None, new_key(rng), self.M // 2)
            Mg = 1 if sigma == 0 else self.M - self.M // 2
            self.n_evals += (Mg + n_pairs) * m
            # into_z: the kernels write the score over Z (no (m, d) result array)
            kw = dict(sigma=sigma, n_pairs=n_pairs, key=key, n_normals=Mg, score=into_z, out=Z if into_z else None)
            if self.search == "pool":
                from .smoothed_numba import pool_barycentre_mean

                _, pool = self.tracker.query(Z, distances=False)
                return pool_barycentre_mean(self.X, Z, G, pool, t, **kw)
            from ..neighbors.search_numba import grid_bary_mean

            return grid_bary_mean(self.grid(), Z, G, self.K, t, exact_k=self.search == "grid-knn", **kw)
        if into_z:
            raise ValueError(f"into_z needs a fused kernel (search grid, grid-knn or numba pool), got {self.search!r}")
        U = self.draws(rng, Z.shape, sigma)
        M, m, d = U.shape
        X = self.X
        self.n_evals += M * m
        if self.search == "pool":
            _, pool = self.tracker.query(Z)
            idx = np.broadcast_to(pool, (M,) + pool.shape).reshape(M * m, -1)
            return barycentre_candidates(X, (Z[None] + U).reshape(M * m, d), idx, t).reshape(M, m, d).mean(axis=0)
        Q = (Z[None] + U).reshape(M * m, d)
        if self.search == "all" and self.L == 0:  # every point: dense BLAS, as the brute-force score
            return barycentre_exact(X, Q, t).reshape(M, m, d).mean(axis=0)
        idx = self.candidates(Q, rng)
        if self.backend == "numba":
            from .smoothed_numba import barycentre_mean

            return barycentre_mean(X, Q.reshape(M, m, d), np.ascontiguousarray(idx).reshape(M, m, -1),
                                   t, self._logw)
        B = barycentre_candidates(X, Q, idx, t, self._logw)
        return B.reshape(M, m, d).mean(axis=0)

    def __call__(self, Z, t, rng, *, overwrite_z=False):
        """The score at the rows of Z; ``overwrite_z``: written over Z (a sampler's Z is not needed after it)."""
        fused = self.search in ("grid", "grid-knn") or (self.search == "pool" and self.backend == "numba")
        if overwrite_z and fused and isinstance(Z, np.ndarray) and Z.flags.c_contiguous and Z.dtype == np.float64:
            return self.barycentre(Z, t, rng, into_z=True)
        S = self.barycentre(Z, t, rng)
        S -= Z  # in place: (b − z)/t² without two more (m, d) temporaries
        S /= t * t
        return S
