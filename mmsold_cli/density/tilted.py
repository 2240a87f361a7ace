r"""The moment-matched density: MM-SOLD's stationary law as an explicit log-density.

In the mean-field limit the particles of MM-SOLD have the one-particle stationary law [1]_

.. math::

    p^*(z) = \frac{e^{-E^*(z)}}{\mathcal Z}, \qquad
    E^*(z) = V_\sigma(z) + \lambda^\top z + \tfrac12 (z-\mu)^\top \Lambda\, (z-\mu),

an exponential tilt of the naive score-smoothed target :math:`e^{-V_\sigma}`, with

.. math::

    V_\sigma(z) = -\,\mathbb E_u\big[\log p_t(z + u)\big], \qquad
    p_t = \frac1n\sum_j \mathcal N(x_j, t^2 I), \quad u \sim \mathcal N(0, \sigma^2 I),

so that :math:`g = -\nabla V_\sigma = \mathbb E_u[\nabla\log p_t(z+u)]` is exactly the smoothed
score the sampler follows (:mod:`mmsold_cli.score.smoothed`).  The expectation over u is taken
with a fixed set of M draws :math:`u_r` (antithetic pairs, seeded), so :math:`V_\sigma` is a
deterministic, smooth function of z.

**The moment conditions.**  For any density :math:`p \propto e^{-E}` that decays fast enough,
integrating by parts (Stein's identity) gives :math:`\mathbb E_p[\nabla E] = 0` and
:math:`\mathbb E_p[\nabla E\,(z-\mu)^\top] = I`.  With
:math:`\nabla E^* = -g + \lambda + \Lambda (z-\mu)` and the requirement that p* have mean μ and
covariance Σ (the training set's),

.. math::

    \lambda = \mathbb E_{p^*}[g], \qquad
    \Lambda = \big(I + \mathbb E_{p^*}[g\,(z-\mu)^\top]\big)\,\Sigma^{-1}.

The authors solve these with the expectations over the training points (the law p* is built to
match): :math:`\lambda = \overline{g(x_i)}`, :math:`\Lambda = (I + \overline{g(x_i)(x_i-\mu)^\top})
\Sigma^{-1}` (made symmetric) — :meth:`TiltedDensity.fit`.  These are the conditions' plug-in
estimate, not their solution.  The exact solution minimises the convex function

.. math::

    F(\lambda, \Lambda) = \log\mathcal Z(\lambda, \Lambda) + \lambda^\top\mu + \tfrac12\operatorname{tr}(\Lambda\Sigma),

since :math:`\nabla_\lambda F = \mu - \mathbb E_p[z]` and
:math:`\nabla_\Lambda F = \tfrac12(\Sigma - \mathbb E_p[(z-\mu)(z-\mu)^\top])` (p* is an exponential
family in the statistics z and (z−μ)(z−μ)ᵀ); its Hessian is their covariance under p, so Newton's
method from the plug-in estimate converges in a few steps.  In d ≤ 2 the moments are computed by
quadrature on a grid, and ``refine=True`` (the default there) makes p*'s mean and covariance the
training set's to quadrature accuracy.

**The normalising constant** :math:`\mathcal Z = \int e^{-E^*}`: by the same grid in d ≤ 2 (the
test oracle); above, by importance sampling from :math:`q = \mathcal N(\mu, \Sigma + t^2 I)`,

.. math::

    \log\mathcal Z \approx \log\frac1m\sum_{k=1}^m \frac{e^{-E^*(z_k)}}{q(z_k)}, \qquad
    \operatorname{se}(\log\mathcal Z) \approx \frac{\operatorname{sd}(w)}{\sqrt m\,\bar w},

with its standard error reported beside it.

References
----------
.. [1] Z. Yao, D. Paulin, "Training-Free Generative Sampling via Moment-Matched Score
   Smoothing", arXiv:2605.14276, 2026 (the mean-field stationary marginal).
"""

from __future__ import annotations

import numpy as np

from ..errors import MmsoldError

__all__ = ["TiltedDensity", "log_blurred", "smoothed_potential", "smoothed_gradient", "fixed_draws"]

_LOG2PI = float(np.log(2 * np.pi))
_BLOCK_FLOATS = 2_000_000


def fixed_draws(M: int, d: int, sigma: float, random_state=0) -> np.ndarray:
    """M draws of N(0, σ² I) in antithetic pairs, seeded: array (M, d) (σ = 0: one zero draw)."""
    if sigma == 0:
        return np.zeros((1, d))
    rng = np.random.default_rng(random_state)
    half = rng.standard_normal((-(-M // 2), d))
    return sigma * np.concatenate([half, -half])[:M]


def logsumexp_logits(G, half_xn, half_qn, t):
    r""":math:`\log\sum_j \exp\big((G_{ij} - h^x_j - h^q_i)/t^2\big)` for each row i (G = Q Xᵀ, h: half squared
    norms, so the terms are :math:`\mathcal N`'s exponents :math:`-\|q_i - x_j\|^2/2t^2`): the NumPy reference of
    :func:`mmsold_cli.density.tilted_numba.logsumexp_logits`."""
    L = (G - half_xn - half_qn[:, None]) / (t * t)
    top = L.max(axis=1)
    return top + np.log(np.exp(L - top[:, None]).sum(axis=1))


def log_blurred(X: np.ndarray, Q: np.ndarray, t: float, backend: str = "numba") -> np.ndarray:
    r""":math:`\log p_t(q) = \log\frac1n\sum_j \mathcal N(q; x_j, t^2 I)` at the rows of Q (all n points)."""
    lse = logsumexp_logits
    if backend == "numba":
        from .tilted_numba import logsumexp_logits as lse

    n, d = X.shape
    half_xn = 0.5 * np.einsum("ij,ij->i", X, X)
    half_qn = 0.5 * np.einsum("ij,ij->i", Q, Q)
    out = np.empty(Q.shape[0])
    step = max(1, _BLOCK_FLOATS // n)
    for s in range(0, Q.shape[0], step):
        out[s : s + step] = lse(Q[s : s + step] @ X.T, half_xn, half_qn[s : s + step], t)
    return out - np.log(n) - 0.5 * d * (_LOG2PI + 2 * np.log(t))


def smoothed_potential(X: np.ndarray, Z: np.ndarray, t: float, U: np.ndarray, backend: str = "numba") -> np.ndarray:
    r""":math:`V_\sigma(z) = -\frac1M\sum_r \log p_t(z + u_r)` at the rows of Z: shape (m,)."""
    return -np.mean([log_blurred(X, Z + u, t, backend) for u in U], axis=0)


def smoothed_gradient(X: np.ndarray, Z: np.ndarray, t: float, U: np.ndarray) -> np.ndarray:
    r""":math:`g = -\nabla V_\sigma = \frac1M\sum_r \nabla\log p_t(z + u_r)`: the smoothed score, shape (m, d)."""
    from ..score.smoothed import smoothed_score_exact

    return smoothed_score_exact(X, Z, t, U[:, None, :] + np.zeros((1,) + Z.shape))


def _sym(A):
    return 0.5 * (A + A.T)


class TiltedDensity:
    r"""MM-SOLD's stationary density :math:`p^* \propto e^{-E^*}` of a training set (see the module).

    Parameters
    ----------
    t, sigma : float
        The blurred law's noise level and the smoothing scale (the sampler's).
    draws : int
        Fixed draws M of the smoothing (antithetic pairs).
    refine : bool or None
        Solve the moment conditions exactly (Newton on quadrature moments; d ≤ 2 only).
        None: in d ≤ 2 yes, else the plug-in estimate.
    grid : int
        Quadrature points per axis (d ≤ 2).
    n_importance : int
        Importance samples for 𝒵 (d > 2).
    plug_in_points : int
        Training points the plug-in averages run over (a seeded subsample when n is larger: each
        g(x_i) costs n M d).
    random_state : int
        Seed of the draws.
    normalise : bool
        Estimate log 𝒵 (``log_prob`` needs it; a classifier whose biases absorb it does not).
    backend : {"numba", "numpy"}
        The log-sum-exp of :func:`log_blurred`: the numba kernel, or its NumPy reference.

    Attributes
    ----------
    mean_, covariance_ : the training set's moments
    lam_, Lam_ : λ (d,) and Λ (d, d)
    draws_ : array (M, d), the fixed smoothing draws
    log_normaliser_, log_normaliser_se_ : log 𝒵 and its standard error (0 for quadrature; None with
        ``normalise=False``)
    """

    def __init__(self, t: float, sigma: float, *, draws: int = 16, refine=None, grid: int = 160,
                 n_importance: int = 20_000, plug_in_points: int = 2000, random_state: int = 0,
                 normalise: bool = True, backend: str = "numba"):
        self.normalise = normalise
        self.backend = backend
        self.plug_in_points = plug_in_points
        self.t = t
        self.sigma = sigma
        self.draws = draws
        self.refine = refine
        self.grid = grid
        self.n_importance = n_importance
        self.random_state = random_state

    # ---------------------------------------------------------------- fitting

    def fit(self, X):
        """Moments, the plug-in tilt (and its exact refinement in d ≤ 2), and the normalising constant."""
        from ..validation import check_points, check_positive

        X = check_points(X, min_points=2)
        if self.backend not in ("numba", "numpy"):
            raise MmsoldError(f"backend must be numba or numpy, got {self.backend!r}")
        t = check_positive(self.t, "noise t")
        sigma = check_positive(self.sigma, "smoothing sigma", allow_zero=True)
        n, d = X.shape
        self.X_ = X
        self.mean_ = X.mean(axis=0)
        self.covariance_ = np.atleast_2d(np.cov(X, rowvar=False, bias=True))
        self.draws_ = fixed_draws(int(self.draws), d, sigma, self.random_state)
        P = X
        if n > self.plug_in_points:
            P = X[np.random.default_rng(self.random_state).choice(n, int(self.plug_in_points), replace=False)]
        g = smoothed_gradient(X, P, t, self.draws_)
        prec = np.linalg.pinv(self.covariance_)
        self.lam_ = g.mean(axis=0)
        self.Lam_ = _sym((np.eye(d) + g.T @ (P - self.mean_) / len(P)) @ prec)
        refine = d <= 2 if self.refine is None else bool(self.refine)
        if refine and d > 2:
            raise MmsoldError(f"refine=True needs quadrature, so dimension ≤ 2, got d = {d}")
        if d <= 2:
            self._quadrature_setup()
            if refine:
                self._newton()
        self.log_normaliser_, self.log_normaliser_se_ = self.log_normaliser() if self.normalise else (None, None)
        return self

    # ---------------------------------------------------------------- energy and density

    def potential(self, Z) -> np.ndarray:
        r""":math:`V_\sigma` at the rows of Z."""
        return smoothed_potential(self.X_, np.atleast_2d(np.asarray(Z, dtype=np.float64)), self.t, self.draws_,
                                  self.backend)

    def energy(self, Z, V=None) -> np.ndarray:
        r""":math:`E^*(z) = V_\sigma(z) + \lambda^\top z + \frac12 (z-\mu)^\top\Lambda(z-\mu)`: shape (m,)."""
        Z = np.atleast_2d(np.asarray(Z, dtype=np.float64))
        V = self.potential(Z) if V is None else V
        D = Z - self.mean_
        return V + Z @ self.lam_ + 0.5 * np.einsum("ij,jk,ik->i", D, self.Lam_, D)

    def log_prob(self, Z) -> np.ndarray:
        """log p*(z) at the rows of Z."""
        if self.log_normaliser_ is None:
            raise MmsoldError("log_prob needs the normaliser: this density was fitted with normalise=False")
        return -self.energy(Z) - self.log_normaliser_

    # ---------------------------------------------------------------- normalising constant

    def _box(self):
        """A box holding all but a negligible share of the mass: the data's range ± 8 (t + σ) and ± 6 sd."""
        X, s = self.X_, self.t + self.sigma
        sd = np.sqrt(np.diag(self.covariance_))
        lo = np.minimum(X.min(axis=0) - 8 * s, self.mean_ - 6 * sd)
        hi = np.maximum(X.max(axis=0) + 8 * s, self.mean_ + 6 * sd)
        return lo, hi

    def _quadrature_setup(self):
        """The grid (midpoints), its cell volume and V on it: the moments and 𝒵 are sums over it."""
        d = self.X_.shape[1]
        lo, hi = self._box()
        axes = [lo[k] + (np.arange(self.grid) + 0.5) * (hi[k] - lo[k]) / self.grid for k in range(d)]
        mesh = np.meshgrid(*axes, indexing="ij")
        self._Q = np.stack([m.ravel() for m in mesh], axis=1)
        self._dv = float(np.prod((hi - lo) / self.grid))
        self._VQ = self.potential(self._Q)

    def _quadrature_weights(self):
        """Normalised weights of p* on the grid and log 𝒵."""
        from scipy.special import logsumexp

        le = -self.energy(self._Q, self._VQ)
        logz = float(logsumexp(le) + np.log(self._dv))
        return np.exp(le - logz) * self._dv, logz

    def quadrature_moments(self):
        """Mean and covariance of p* by quadrature (d ≤ 2)."""
        w, _ = self._quadrature_weights()
        m = w @ self._Q
        D = self._Q - m
        return m, (D * w[:, None]).T @ D

    def _objective(self) -> float:
        """F(λ, Λ) = log 𝒵 + λᵀμ + ½ tr(ΛΣ), by quadrature."""
        return self._quadrature_weights()[1] + self.lam_ @ self.mean_ + 0.5 * np.trace(self.Lam_ @ self.covariance_)

    def _newton(self, iters: int = 30, tol: float = 1e-10):
        """Solve the moment conditions: damped Newton on the convex F(λ, Λ) with quadrature moments."""
        d = self.X_.shape[1]
        iu = np.triu_indices(d)
        twice = np.where(iu[0] == iu[1], 1.0, 2.0)  # an off-diagonal entry of Λ appears twice in the tilt
        mu, Sig = self.mean_, self.covariance_
        target = np.concatenate([mu, 0.5 * Sig[iu] * twice])
        scale = np.concatenate([np.sqrt(np.diag(Sig)), np.sqrt(np.outer(np.diag(Sig), np.diag(Sig)))[iu]])
        F = self._objective()
        for _ in range(iters):
            w, _ = self._quadrature_weights()
            D = self._Q - mu
            T = np.concatenate([self._Q, 0.5 * D[:, iu[0]] * D[:, iu[1]] * twice], axis=1)
            ET = w @ T
            grad = target - ET
            if np.max(np.abs(grad) / scale) < tol:
                break
            H = (T - ET).T @ ((T - ET) * w[:, None])  # Cov_p(T), F's Hessian
            step = np.linalg.solve(H, grad)
            lam0, Lam0 = self.lam_, self.Lam_
            for _ in range(40):  # halve until F decreases (F is convex: a full step may overshoot)
                U = np.zeros((d, d))
                U[iu] = step[d:]
                self.lam_, self.Lam_ = lam0 - step[:d], Lam0 - (U + U.T - np.diag(np.diag(U)))
                F_new = self._objective()
                if F_new <= F:
                    break
                step = 0.5 * step
            else:
                self.lam_, self.Lam_ = lam0, Lam0
                break
            F = F_new

    def log_normaliser(self, method: str = "auto", n_samples: int | None = None, random_state=None):
        """(log 𝒵, standard error): ``quadrature`` (d ≤ 2, error 0) or ``importance``; ``auto``: the first where it applies."""
        if method not in ("auto", "quadrature", "importance"):
            raise MmsoldError(f"method must be auto, quadrature or importance, got {method!r}")
        if method == "quadrature" and self.X_.shape[1] > 2:
            raise MmsoldError(f"quadrature needs dimension ≤ 2, got d = {self.X_.shape[1]}")
        if method != "importance" and self.X_.shape[1] <= 2:
            return self._quadrature_weights()[1], 0.0
        from scipy.special import logsumexp

        rng = np.random.default_rng(self.random_state if random_state is None else random_state)
        m = int(self.n_importance if n_samples is None else n_samples)
        d = self.X_.shape[1]
        cov = self.covariance_ + self.t ** 2 * np.eye(d)
        L = np.linalg.cholesky(cov)
        xi = rng.standard_normal((m, d))
        Z = self.mean_ + xi @ L.T
        logq = -0.5 * np.einsum("ij,ij->i", xi, xi) - np.log(np.diag(L)).sum() - 0.5 * d * _LOG2PI
        lw = -self.energy(Z) - logq
        logz = float(logsumexp(lw) - np.log(m))
        w = np.exp(lw - lw.max())
        se = float(w.std() / (np.sqrt(m) * w.mean()))
        return logz, se
