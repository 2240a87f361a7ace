r"""Start distributions for samplers begun at a finite noise level.

A sampler started at a finite noise level needs a start law :math:`q` close to
the noised data law there; Fassina et al. [1]_ bound the sampling error by
:math:`\mathrm{KL}(p_T\,\|\,q)` plus the discretisation and score errors, and
fit :math:`q` to shorten the horizon.  Here :math:`p_T` is known in closed form,

.. math::

    p_T = \frac1n\sum_j \mathcal N\big(a\,x_j,\ s^2 I\big),

with :math:`(a, s) = (T, 1-T)` for σ-CFDM's interpolant and :math:`(1, t)` for
the Langevin samplers' blurred law.  The starts:

* ``gaussian`` — :math:`\mathcal N(0, I)` in the sampler's own coordinates, the
  classic start (exact for σ-CFDM at T = 0; for MM-SOLD and SOLD the
  standard normal in Y, :math:`Z\sim\mathcal N(\hat\mu,\hat\Sigma)`);
* ``moments`` — :math:`\mathcal N(a\mu,\ a^2\Sigma + s^2 I)`, the moments of
  :math:`p_T`: the Gaussian minimising :math:`\mathrm{KL}(p_T\|q)` (moment
  projection), training-free;
* ``gmm`` — :math:`\sum_c \pi_c\,\mathcal N(a\mu_c,\ a^2\Sigma_c + s^2 I)` where
  :math:`(\pi_c, \mu_c, \Sigma_c)` are the share, mean and covariance of cell c
  of a k-means partition of the training set into C cells: for a fixed
  partition, each component is the moment projection of :math:`p_T`'s
  components in its cell, the :math:`\mathrm{KL}(p_T\|q)`-optimal choice.
  C = 1 gives ``moments``, C = n gives :math:`p_T`; the paper's learned start
  made cheap;
* ``data`` — exact draws :math:`a\,x_i + s\,\varepsilon` from :math:`p_T`.

:func:`start_divergence` reports a sample-based estimate of
:math:`\mathrm{KL}(p_T\|q) = \mathbb E_{p_T}[\log p_T - \log q]` (both log
densities in closed form, the expectation by Monte Carlo over exact draws of
:math:`p_T`) and the unbiased RBF MMD² between draws of q and of :math:`p_T`.

References
----------
.. [1] T. Fassina, G. Cardoso, S. Le Corff, T. Romary, "Initialization-Aware
   Score-Based Diffusion Sampling", arXiv:2603.00772, 2026.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "GaussianMixture",
    "spatial_order",
    "spatial_order_numpy",
    "start_indices",
    "STARTS",
    "GMM_COMPONENTS",
    "standard_gaussian",
    "moments_gaussian",
    "fit_gmm",
    "mixture_sample",
    "mixture_logpdf",
    "noised_sample",
    "noised_logpdf",
    "start_gaussian",
    "start_moments",
    "start_gmm",
    "start_data",
    "start_divergence",
]

#: Components of the ``gmm`` start (capped by n).
GMM_COMPONENTS = 32
_BLOCK_FLOATS = 4_000_000
_LOG2PI = np.log(2 * np.pi)


class GaussianMixture(NamedTuple):
    """Weights (C,), means (C, d) and lower Cholesky factors (C, d, d) of a Gaussian mixture."""

    weights: np.ndarray
    means: np.ndarray
    chols: np.ndarray


def standard_gaussian(d: int) -> GaussianMixture:
    """:math:`\\mathcal N(0, I_d)` as a one-component mixture."""
    return GaussianMixture(np.ones(1), np.zeros((1, d)), np.eye(d)[None])


def _component(Xc, a, s):
    d = Xc.shape[1]
    mu = Xc.mean(axis=0)
    D = Xc - mu
    cov = a * a * (D.T @ D) / Xc.shape[0] + s * s * np.eye(d)
    return a * mu, np.linalg.cholesky(cov)


def moments_gaussian(X, a: float, s: float) -> GaussianMixture:
    """The moment-matched Gaussian of :math:`p_T`: mean aμ, covariance a²Σ + s²I."""
    m, L = _component(X, a, s)
    return GaussianMixture(np.ones(1), m[None], L[None])


def fit_gmm(X, a: float, s: float, n_components: int = GMM_COMPONENTS, *, rng) -> GaussianMixture:
    """Moment projection of :math:`p_T` on a k-means partition of X into ``n_components`` cells.

    Parameters
    ----------
    X : array of shape (n, d)
    a, s : float
        Scale of the data and of the noise in :math:`p_T` (s > 0).
    n_components : int
        Cells C (capped by n; empty cells are dropped).
    rng : numpy.random.Generator

    Returns
    -------
    GaussianMixture with at most C components
    """
    from scipy.cluster.vq import kmeans2

    C = int(min(n_components, X.shape[0]))
    if C <= 1:
        return moments_gaussian(X, a, s)
    _, labels = kmeans2(X, C, minit="++", seed=rng)
    counts = np.bincount(labels, minlength=C)
    cells = np.flatnonzero(counts)
    means, chols = zip(*(_component(X[labels == c], a, s) for c in cells))
    return GaussianMixture(counts[cells] / X.shape[0], np.array(means), np.array(chols))


def mixture_sample(mix: GaussianMixture, m: int, rng) -> np.ndarray:
    """m draws from a Gaussian mixture: array of shape (m, d).

    Components are chosen by systematic sampling (one uniform offset, shuffled):
    each draw still follows the mixture, and every component gets its share
    of the m draws to within one, without multinomial noise.
    """
    u = (rng.random() + np.arange(m)) / m
    c = np.minimum(np.searchsorted(np.cumsum(mix.weights), u, side="right"), mix.weights.shape[0] - 1)
    c = c[rng.permutation(m)]
    eps = rng.standard_normal((m, mix.means.shape[1]))
    return mix.means[c] + np.einsum("mij,mj->mi", mix.chols[c], eps)


def mixture_logpdf(mix: GaussianMixture, Z) -> np.ndarray:
    """Log density of a Gaussian mixture at the rows of Z: array of shape (m,)."""
    from scipy.linalg import solve_triangular
    from scipy.special import logsumexp

    m, d = Z.shape
    out = np.empty((mix.weights.shape[0], m))
    for c, (w, mu, L) in enumerate(zip(mix.weights, mix.means, mix.chols)):
        r = solve_triangular(L, (Z - mu).T, lower=True)
        logdet = 2 * np.log(np.diag(L)).sum()
        out[c] = np.log(w) - 0.5 * (np.einsum("ij,ij->j", r, r) + logdet + d * _LOG2PI)
    return logsumexp(out, axis=0)


def noised_sample(X, a: float, s: float, m: int, rng, order=None) -> np.ndarray:
    """m exact draws :math:`a x_i + s\\varepsilon` from :math:`p_T`: array of shape (m, d).

    With ``order`` (a spatial order of X, :func:`spatial_order`)
    the training points are picked by :func:`start_indices`
    (stratified, every region its share); otherwise independently.
    """
    if order is None:
        idx = rng.integers(0, X.shape[0], size=m)
    else:
        idx = start_indices(order, m, rng)
    return a * X[idx] + s * rng.standard_normal((m, X.shape[1]))


def noised_logpdf(X, a: float, s: float, Z) -> np.ndarray:
    """Exact log density of :math:`p_T` at the rows of Z (all n components, in blocks): shape (m,)."""
    from scipy.special import logsumexp

    n, d = X.shape
    A = a * X
    an = np.einsum("ij,ij->i", A, A)
    out = np.empty(Z.shape[0])
    step = max(1, _BLOCK_FLOATS // n)
    for i in range(0, Z.shape[0], step):
        q = Z[i : i + step]
        d2 = np.maximum(np.einsum("ij,ij->i", q, q)[:, None] + an[None] - 2 * q @ A.T, 0.0)
        out[i : i + step] = logsumexp(-d2 / (2 * s * s), axis=1)
    return out - np.log(n) - 0.5 * d * (_LOG2PI + 2 * np.log(s))


def start_gaussian(X, m: int, a: float, s: float, *, rng, **_) -> np.ndarray:
    """m draws of :math:`\\mathcal N(0, I)`: array of shape (m, d)."""
    return rng.standard_normal((m, X.shape[1]))


def start_moments(X, m: int, a: float, s: float, *, rng, **_) -> np.ndarray:
    """m draws of the moment-matched Gaussian of :math:`p_T`: array of shape (m, d)."""
    return mixture_sample(moments_gaussian(X, a, s), m, rng)


def start_gmm(X, m: int, a: float, s: float, *, rng, n_components: int = GMM_COMPONENTS, mixture=None,
              **_) -> np.ndarray:
    """m draws of the k-means moment-projection mixture (:func:`fit_gmm`): array of shape (m, d)."""
    mix = fit_gmm(X, a, s, n_components, rng=rng) if mixture is None else mixture
    return mixture_sample(mix, m, rng)


def start_data(X, m: int, a: float, s: float, *, rng, order=None, **_) -> np.ndarray:
    """m exact draws from :math:`p_T` (stratified over ``order`` if given): array of shape (m, d)."""
    return noised_sample(X, a, s, m, rng, order)


STARTS = {"gaussian": start_gaussian, "moments": start_moments, "gmm": start_gmm, "data": start_data}


def start_divergence(name: str, X, a: float, s: float, *, m: int = 2000, n_components: int = GMM_COMPONENTS,
                     random_state=0) -> dict:
    """Sample-based distance of a start law to :math:`p_T`.

    Parameters
    ----------
    name : {"gaussian", "moments", "gmm", "data"}
    X : array of shape (n, d)
    a, s : float
    m : int
        Draws of each law.
    n_components : int
        For ``gmm``.
    random_state : int or None

    Returns
    -------
    dict
        ``kl``: Monte Carlo estimate of :math:`\\mathrm{KL}(p_T\\|q)` over m exact
        draws of :math:`p_T` (nats); ``mmd2``: unbiased RBF MMD² between m draws of
        q and m fresh draws of :math:`p_T`.
    """
    from ..metrics.points import mmd2_rbf
    from ..validation import check_random_state

    rng = check_random_state(random_state)
    d = X.shape[1]
    P = noised_sample(X, a, s, m, rng)
    mix = None
    if name == "data":
        kl = 0.0
    else:
        mix = {"gaussian": lambda: standard_gaussian(d), "moments": lambda: moments_gaussian(X, a, s),
               "gmm": lambda: fit_gmm(X, a, s, n_components, rng=rng)}[name]()
        kl = float(np.mean(noised_logpdf(X, a, s, P) - mixture_logpdf(mix, P)))
    Q = STARTS[name](X, m, a, s, rng=rng, n_components=n_components, mixture=mix)
    P2 = noised_sample(X, a, s, m, rng)
    return {"kl": kl, "mmd2": mmd2_rbf(Q, P2, random_state=rng.integers(2**31))}


#: Above this dimension :func:`spatial_order` splits along the leading principal components only.
ORDER_DIMS = 8


#: Above this many points :func:`spatial_order` runs its numba kernel (the same permutation): NumPy takes
#: 0.2 s on 60,000 points and 4.9 s on 1,000,000 (against 1.9 s), and the kernel's first compile 4–5 s.
ORDER_NUMBA_ABOVE = 200_000


def spatial_order(X: np.ndarray, leaf: int = 4, backend: str = "auto") -> np.ndarray:
    """A permutation of the training points in k-d tree leaf order (neighbours stay adjacent).

    Median splits on each cell's widest axis, level by level: every cell is sorted (stably) along its widest
    axis and cut at its middle, until no cell holds more than ``leaf`` points.  Above ORDER_DIMS dimensions
    the tree is built on the leading principal components: the same regions at a fraction of the cost.
    ``backend``: "numba" (:func:`mmsold_cli.samplers.inits_numba.leaf_order`), "numpy"
    (:func:`spatial_order_numpy`, the reference) or "auto" (numba above ORDER_NUMBA_ABOVE points).
    """
    X = _order_coordinates(X)
    if backend == "numpy" or (backend == "auto" and X.shape[0] <= ORDER_NUMBA_ABOVE):
        return spatial_order_numpy(X, leaf)
    from .inits_numba import leaf_order

    return leaf_order(X, leaf)


def _order_coordinates(X):
    X = np.asarray(X, dtype=np.float64)
    if X.shape[1] > ORDER_DIMS:
        # each level reads every column once: 60,000 × 64 took 1 s, 1,000,000 × 64 would take ~20 s
        Xc = X - X.mean(axis=0)
        _, V = np.linalg.eigh(Xc.T @ Xc)
        X = Xc @ V[:, -ORDER_DIMS:]
    return X


def spatial_order_numpy(X: np.ndarray, leaf: int = 4) -> np.ndarray:
    """:func:`spatial_order` in NumPy, one vectorised pass per tree level, a column at a time (no SciPy import:
    23 MB of resident memory)."""
    X = _order_coordinates(X)  # a no-op on coordinates already projected (ORDER_DIMS columns)
    n, d = X.shape
    order = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    starts = np.zeros(1, dtype=np.int64)
    while True:
        lengths = np.diff(np.append(starts, n))
        if lengths.max() <= leaf:
            return order
        spread = np.empty((len(starts), d))
        for k in range(d):
            col = X[order, k]
            spread[:, k] = np.maximum.reduceat(col, starts) - np.minimum.reduceat(col, starts)
        seg = np.repeat(np.arange(len(starts)), lengths)
        key = X[order, np.argmax(spread, axis=1)[seg]]
        order = order[np.lexsort((key, seg))]  # sorted along its widest axis within each cell
        starts = np.sort(np.concatenate([starts, (starts + lengths // 2)[lengths > leaf]]))


def start_indices(order: np.ndarray, m: int, rng) -> np.ndarray:
    """m training-point indices by systematic sampling along a spatial order.

    Particles rarely cross between well-separated modes within a run, so the
    start fixes each region's share of the samples.  Taking every (n/m)-th
    point along the k-d tree leaf order, from a random offset, gives every
    region its share of the training set to within one point (stratified
    sampling), where independent draws would add multinomial noise on top of
    the training set's own.  When m > n each point is used ⌊m/n⌋ or ⌈m/n⌉
    times.  The result is shuffled so ensembles mix all regions.
    """
    n = order.shape[0]
    pos = np.floor((rng.random() + np.arange(m)) * (n / m)).astype(np.int64) % n
    return order[pos[rng.permutation(m)]]
