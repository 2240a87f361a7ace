r"""σ-CFDM: the smoothed closed-form diffusion model of Scarvelis et al. [1]_.

The interpolant from noise (t = 0) to the training points (t = 1),

.. math::

    \rho_t = \frac1n \sum_j \mathcal N\big(t x_j,\ (1-t)^2 I\big),

has the closed-form score

.. math::

    s_t(z) = \frac{t\,\bar b_t(z) - z}{(1-t)^2}, \qquad
    \bar b_t(z) = \sum_j w_j(z)\, x_j, \qquad
    w(z) = \mathrm{softmax}_j\!\Big(-\frac{\|z - t x_j\|^2}{2(1-t)^2}\Big).

The smoothed score :math:`s_{\sigma,t}` averages only the barycentre over
perturbations :math:`z + \sigma\varepsilon` (the logits gain
:math:`\sigma t\langle\varepsilon, x_j\rangle/(1-t)^2`, Prop. 4.1 of [1]_).  Since
:math:`\|z - t x_j\|^2 = t^2\|z/t - x_j\|^2`, the barycentre is the plain one of
:mod:`mmsold_cli.score.smoothed` in rescaled coordinates,

.. math::

    \bar b_{\sigma,t}(z) = \mathbb E_\varepsilon\, b_\tau\!\Big(\frac{z}{t} + \frac{\sigma}{t}\varepsilon\Big),
    \qquad \tau = \frac{1-t}{t},

so the smoothed estimator (K nearest plus L random points, antithetic draws)
and the neighbour index of MM-SOLD serve σ-CFDM unchanged: one call of
:meth:`~mmsold_cli.score.smoothed.SmoothedScore.barycentre` on :math:`z/t` with noise
level :math:`\tau` and smoothing :math:`\sigma/t`.  The probability-flow
velocity is

.. math::

    v_t(z) = \frac{z + (1-t)\, s_{\sigma,t}(z)}{t} = \frac{\bar b_{\sigma,t}(z) - z}{1-t},

integrated by Euler from a start time :math:`T>0` to 1 in S steps on the grid
:math:`t_i = T + i(1-T)/S` (:func:`mmsold_cli.schedules.cfdm`):
:math:`z_{i+1} = z_i + h\,v_{t_i}(z_i)`, :math:`h = (1-T)/S`.  Every velocity is
evaluated at some :math:`t_i < 1`; the last step, from :math:`t_{S-1} = 1-h`,
lands exactly on the smoothed barycentre :math:`\bar b_{\sigma,t_{S-1}}(z)`, so
the singularity of :math:`v` at t = 1 is never met.  With σ = 0 and exact
starts :math:`z_T \sim \rho_T` the flow transports :math:`\rho_T` to the
training points (memorisation); σ > 0 pulls samples towards barycentres of
nearby training points (Thm. 5.1 of [1]_), which generalises.  Theorem 5.2 of
[1]_ bounds the error of starting at T > 0 from :math:`z_T = T x_i + (1-T)\varepsilon`.

where
    * :math:`x_j` are the n training points, :math:`\varepsilon\sim\mathcal N(0, I)`,
    * :math:`\sigma` the smoothing scale (in z units), :math:`M` its draws,
    * :math:`T` the start time, :math:`S` the number of Euler steps.

The training mean and covariance are not enforced (σ-CFDM has no moment
constraint).

Defaults (:func:`mmsold_cli.defaults.cfdm_sigma`, ``cfdm_start_time``, ``cfdm_steps``) are
data-scaled like the Langevin samplers', but by a length
that accounts for dimension: a perturbation :math:`\sigma\varepsilon` has norm
about :math:`\sigma\sqrt d`, and smoothing helps when it reaches a few
neighbours of a point, so

.. math::

    \ell = \bar r_{16}\,\sqrt{2/d}, \qquad \sigma = c_\sigma\,\ell, \qquad
    \tau_T = \frac{1-T}{T} = c_T\,\ell

where :math:`\bar r_{16}` is the mean distance from a training point to its
16th nearest other training point (the model's k-NN graph).  In 2-D,
:math:`\ell \approx 4.3\times` the spacing; on MNIST PCA-64 it is 0.24× the
spacing, where a spacing-scaled σ collapses every sample onto local averages.
The constants come from ``benchmarks/samplers.py --sections sweep`` on the
2-D suite (table in the README) and a check on MNIST PCA-64.  The number of
steps S is set so that the last step's blur :math:`(1-T)/S` is a tenth of the
training spacing (:func:`mmsold_cli.defaults.cfdm_steps`): with a coarser grid the last Euler
step itself averages neighbouring training points, so σ = 0 would no longer
reproduce them.

References
----------
.. [1] C. Scarvelis, H. Sáez de Ocáriz Borde, J. Solomon, "Closed-Form
   Diffusion Models", arXiv:2310.12395 (TMLR 2025), Sec. 4–5, Alg. 1.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import StartLaw, StepInfo, Target

__all__ = ["CFDM", "CFDMState", "cfdm_barycentre", "cfdm_score", "shared_beam_miss", "auto_search"]


def cfdm_barycentre(score, z, t, rng, sigma):
    r"""Smoothed barycentre :math:`\bar b_{\sigma,t}(z)` by the estimator of ``score``.

    Parameters
    ----------
    score : SmoothedScore
        Its ``barycentre(Q, tau, rng, sigma=...)`` is called on the rescaled queries.
    z : array of shape (m, d)
    t : float in (0, 1)
    rng : mmsold_cli.rng.streams.StepStream
    sigma : float
        Smoothing scale in z units (≥ 0).

    Returns
    -------
    b : array of shape (m, d)
    """
    return score.barycentre(z / t, (1.0 - t) / t, rng, sigma=sigma / t)


def cfdm_score(score, z, t, rng, sigma):
    r"""Smoothed score :math:`s_{\sigma,t}(z) = (t\,\bar b_{\sigma,t}(z) - z)/(1-t)^2`: array of shape (m, d)."""
    return (t * cfdm_barycentre(score, z, t, rng, sigma) - z) / (1.0 - t) ** 2


class CFDMState(NamedTuple):
    """The positions z of shape (E, P, d) at the current time and the data's moments."""

    z: np.ndarray
    target: Target


class CFDM:
    r"""σ-CFDM's probability flow by Euler as a sampler kernel: :math:`z \leftarrow z + h\,(\bar b - z)/(1-t)`.

    Parameters
    ----------
    backend : mmsold_cli.backend.Backend
    sigma : float
        Smoothing scale σ ≥ 0 in z units.
    """

    def __init__(self, backend, sigma: float, start_time: float):
        self.backend = backend
        self.sigma = float(sigma)
        self.start_time = float(start_time)

    @classmethod
    def from_config(cls, config, backend):
        return cls(backend, config.sigma, config.start_time)

    def start_law(self, target: Target) -> StartLaw:
        r"""The interpolant at the start time T, :math:`T x + (1-T)\varepsilon`; Gaussian: N(0, I)."""
        d = target.mean.shape[0]
        return StartLaw(self.start_time, 1.0 - self.start_time, np.zeros(d), np.eye(d))

    def init(self, start: np.ndarray, target: Target) -> CFDMState:
        return CFDMState(start, target)

    def positions(self, state: CFDMState) -> np.ndarray:
        return state.z

    def moment_error(self, state: CFDMState, t: float, h: float):
        r"""Errors against the interpolant's moments at u = t + h: :math:`u\mu` and :math:`u^2\Sigma + (1-u)^2 I`."""
        u = t + h
        mean, cov = state.target.mean, state.target.cov
        return self.backend.moment_error(state.z, u * mean, u * u * cov + (1 - u) ** 2 * np.eye(mean.shape[0]))

    def step(self, state: CFDMState, score, t: float, h: float, rng):
        shape = state.z.shape
        z = state.z.reshape(-1, shape[-1])
        b = cfdm_barycentre(score, z, t, rng, self.sigma)
        s = (t * b - z) / (1.0 - t) ** 2
        # v = (z + (1 − t) s)/t = (b − z)/(1 − t); a step reaching t = 1 lands on b
        z = b if t + h >= 1.0 - 1e-12 else z + h * (b - z) / (1.0 - t)
        return state._replace(z=z.reshape(shape)), StepInfo(s.reshape(shape))


def shared_beam_miss(model, *, start_time: float, steps: int, sigma: float, M: int, K: int, c: int,
                     particles: int = 32) -> float:
    r"""Share of σ-CFDM's draws' softmax weight that falls outside their particle's c nearest training points.

    A pilot run of ``particles`` particles, each draw's barycentre taken over its particle's c nearest
    :math:`B(q)` (the shared beam).  At the first, middle and last steps, for each draw :math:`q + u` of a
    particle :math:`q = z/t`, with weights :math:`w_j \propto \exp(-\|q + u - x_j\|^2 / 2\tau^2)` over
    :math:`B(q)` and the draw's own K nearest (the model's index), the weight of the draw's points outside
    :math:`B(q)`.  Near 0, every draw's barycentre lives on its particle's beam, and a walked beam shared by the
    draws (search ``walk``) serves them all; where the smoothing σ/t moves draws into other neighbourhoods it
    does not.

    The pilot's numbers come from a fixed seed: the answer is a property of the model and the settings, the
    same for every run, batch and shard.

    Returns
    -------
    float
        The mean over particles, draws and the three steps.
    """
    X, index = model.X_, model.index_
    n, d = X.shape
    c = min(c, n)
    rng = np.random.default_rng(0)
    T = float(start_time)
    h = (1.0 - T) / steps
    z = T * X[rng.integers(n, size=particles)] + (1.0 - T) * rng.standard_normal((particles, d))
    misses = []
    for i in range(steps):
        t = T + i * h
        q, tau2, s = z / t, 2.0 * ((1.0 - t) / t) ** 2, sigma / t
        beam = index.query(q, c)[1]
        g = s * rng.standard_normal((M - M // 2, particles, d))
        draws = np.concatenate([g[: M // 2], -g[: M // 2], g[M // 2 :]]) if s > 0 else np.zeros((1,) + q.shape)
        Q = q[None] + draws  # (R, p, d)
        Xb = X[beam]
        logit = -_sqdist(Xb, Q) / tau2  # (R, p, c)
        logit[:, beam < 0] = -np.inf
        if i in (0, steps // 2, steps - 1):
            own = index.query(Q.reshape(-1, d), K)[1].reshape(len(draws), particles, -1)
            lo = -np.stack([_sqdist(X[o], u[None])[0] for o, u in zip(own, Q)]) / tau2  # (R, p, K)
            lo[(own < 0) | (own[..., None] == beam[None, :, None, :]).any(-1)] = -np.inf  # counted once
            top = np.maximum(logit.max(axis=2), lo.max(axis=2))[..., None]
            inside, outside = np.exp(logit - top).sum(axis=2), np.exp(lo - top).sum(axis=2)
            misses.append(outside / (inside + outside))
        w = np.exp(logit - logit.max(axis=2, keepdims=True))
        w /= w.sum(axis=2, keepdims=True)
        z = z + h * (np.einsum("pc,pcd->pd", w.mean(axis=0), Xb) - z) / (1.0 - t)
    return float(np.mean(misses))


def _sqdist(P, Q):
    """Squared distances between each row's points P (p, k, d) and its queries Q (R, p, d): array (R, p, k)."""
    cross = np.matmul(P, np.moveaxis(Q, 0, 2))  # (p, k, R)
    D = np.einsum("pkd,pkd->pk", P, P)[:, :, None] - 2.0 * cross + np.einsum("rpd,rpd->pr", Q, Q)[:, None, :]
    return np.maximum(np.moveaxis(D, 2, 0), 0.0)


def auto_search(model, *, start_time: float, steps: int, sigma: float, M: int, K: int) -> str:
    """What ``search="auto"`` resolves to for σ-CFDM above 3-D (numba backend, L = 0): ``walk`` when the draws
    share their particle's beam (:func:`shared_beam_miss` ≤ :data:`~mmsold_cli.defaults.CFDM_SHARED_MISS`),
    else ``index``.  Kept on the model per settings, so a model's runs measure it once."""
    from .. import defaults

    key = (float(start_time), int(steps), float(sigma), int(M), int(K))
    cache = model.__dict__.setdefault("_cfdm_search", {})
    if key not in cache:
        miss = shared_beam_miss(model, start_time=start_time, steps=steps, sigma=sigma, M=M, K=K,
                                c=defaults.POOL_FACTOR * K, particles=defaults.CFDM_PILOT)
        cache[key] = "walk" if miss <= defaults.CFDM_SHARED_MISS else "index"
    return cache[key]
