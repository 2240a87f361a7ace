r"""Integrators for overdamped Langevin dynamics, as tiny step helpers.

Each integrator maps the current drift :math:`G` (the score pulled back to the
sampler's coordinates), the step size :math:`h` and its own state to a drift
displacement, a unit-variance noise increment :math:`\bar\xi` and the new
state; the sampler then moves by ``drift + sqrt(2h) * noise`` (projected, for
MM-SOLD).  Arrays change hands: an integrator may return G itself, scaled
in place, as the drift (the sampler passes a new G each step), and the
noise array is a new one each step, not referenced by the state, so the
sampler may build the displacement in it.  The Gaussians come from a
:class:`Noise`: the counter-based normals of the step's key at the rows' own
counters (:mod:`mmsold_cli.rng.streams`), so a chunk of ensembles draws what the
whole batch would give it, and the previous step's key is known without being
stored.  Integrators are chosen by name from :data:`INTEGRATORS`.

Leimkuhler–Matthews [1]_ (the default): :math:`\bar\xi_k = (\xi_k+\xi_{k+1})/2`,
one fresh Gaussian a step, second-order accurate for the invariant measure.

Euler–Maruyama: :math:`\bar\xi_k = \xi_k`.

Adaptive momentum (AMS) [2]_, Euler–Maruyama noise, no extra score
evaluations, one :math:`\beta` per ensemble (the rows of one (P, d) block):

.. math::

    r_k &= \frac{\operatorname{mean}_i \|g_{k,i} - g_{k-1,i}\|}{\operatorname{mean}_i \|\Delta_{k-1,i}\|},
    \qquad
    \beta_k = \operatorname{clip}\!\Big(\Big(\frac{1 - a\,r_k}{1 + a\,r_k}\Big)^2,\ 0,\ 1-10^{-4}\Big),\\
    m_k &= \beta_k\, m_{k-1} + (1-\beta_k)\, g_k, \qquad
    \Delta_k = h_k (1+\beta_k)^2\, m_k, \qquad
    \text{noise } \sqrt{2h_k}\,\xi_k

with :math:`\beta_1 = 0`, :math:`m_1 = g_1`, where
    * :math:`g_k` is the drift G of step k (the score, pulled back),
    * :math:`\Delta_{k-1}` the drift displacement returned at the previous step,
    * :math:`a = h_{k-1}(1+\beta_{k-1})^2` the previous drift step (the factor
      multiplying :math:`m_{k-1}` in :math:`\Delta_{k-1}`), so :math:`r_k` is a
      finite-difference estimate of the score's Lipschitz constant,
    * the mean runs over the particles of one ensemble.

The drift step grows by :math:`(1+\beta)^2` while the noise stays
:math:`\sqrt{2h}`, which lowers the sampling temperature: on a standard
Gaussian the stationary variance falls below 1.  The temperature-corrected
variant (``ams-tc``, ours) scales the noise by :math:`1+\beta`, i.e. uses
:math:`\sqrt{2h(1+\beta)^2}`, the noise of a Langevin step as long as the drift
step, and keeps the target's variance.  With :math:`\beta` forced to 0 both
reduce to Euler–Maruyama bit for bit.

References
----------
.. [1] B. Leimkuhler, C. Matthews, "Rational construction of stochastic
   numerical methods for molecular sampling", AMRX 2013(1):34–56.
.. [2] Z. Wen, X. Deng, P. Luo, T. Sun, D. Li, "Score-based Generative Models
   with Adaptive Momentum", arXiv:2405.13726, 2024.
"""

from __future__ import annotations

import numpy as np

from ..rng.normals import from_key, mean_of_two
from ..rng.streams import NOISE

__all__ = ["INTEGRATORS", "Noise", "leimkuhler_matthews", "euler_maruyama", "adaptive_momentum",
           "adaptive_momentum_tc", "ams_beta", "AMS_BETA_MAX", "get_integrator"]

#: Upper clip of the AMS momentum factor β.
AMS_BETA_MAX = 1.0 - 1e-4


class Noise:
    """The Langevin noise of some rows at one step: normals of the step's key (ξ_k+1) and of the last (ξ_k).

    Parameters
    ----------
    rng : mmsold_cli.rng.streams.StepStream
    shape : tuple
        Shape of the rows' noise, (E, P, d) or (rows, d).
    row : int
        Index of the first row within the stream (a chunk of a batch).
    """

    def __init__(self, rng, shape, row: int = 0):
        self.shape = tuple(shape)
        d = self.shape[-1]
        self.start = rng.start(d, row)
        self.key = rng.key(NOISE)
        self.prev_key = rng.key(NOISE, lag=1)
        self.kernel = rng.run.kernel

    def xi(self) -> np.ndarray:
        """ξ_k+1, this step's fresh normals."""
        return from_key(self.key, self.shape, start=self.start, kernel=self.kernel)

    def mean_of_last_two(self) -> np.ndarray:
        """(ξ_k + ξ_k+1)/2 in one pass."""
        return mean_of_two(self.prev_key, self.key, self.shape, start=self.start, kernel=self.kernel)


def leimkuhler_matthews(G, h, noise, state):
    """Drift ``h G`` (G scaled in place) and noise ``(ξ_k + ξ_k+1)/2``; no state (ξ_k is the last step's key)."""
    G *= h
    return G, noise.mean_of_last_two(), None


def euler_maruyama(G, h, noise, state):
    """Drift ``h G`` (G scaled in place) and noise ``ξ_k+1``; no state."""
    G *= h
    return G, noise.xi(), None


def _ensemble_mean_norm(A):
    """Mean row norm of each (P, d) block: shape (E, 1, 1) for (E, P, d), (1, 1) for (P, d)."""
    return np.linalg.norm(A, axis=-1, keepdims=True).mean(axis=-2, keepdims=True)


def ams_beta(dg, dx, a, beta_max=AMS_BETA_MAX):
    """AMS momentum factor from the score change ``dg`` and the previous drift displacement ``dx``.

    ``β = clip(((1 − a r)/(1 + a r))², 0, beta_max)`` with ``r = mean‖dg‖ / mean‖dx‖``
    per ensemble; an ensemble whose previous displacement is zero gets β = 0.

    Parameters
    ----------
    dg, dx : arrays of shape (E, P, d) or (P, d)
    a : float or array broadcasting to (E, 1, 1)
        The previous drift step.
    beta_max : float

    Returns
    -------
    beta : array of shape (E, 1, 1) or (1, 1)
    """
    num = a * _ensemble_mean_norm(dg)
    den = _ensemble_mean_norm(dx)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(den > 0, (den - num) / (den + num), 1.0)
    return np.where(den > 0, np.clip(q * q, 0.0, beta_max), 0.0)


def _ams(G, h, noise, state, beta_max, corrected):
    xi = noise.xi()
    if state is None:
        beta = np.zeros(_ensemble_mean_norm(G).shape)
        m = G
    else:
        beta = ams_beta(G - state["g"], state["drift"], state["step"], beta_max)
        m = beta * state["m"] + (1.0 - beta) * G
    step = h * (1.0 + beta) ** 2
    drift = step * m
    noise = (1.0 + beta) * xi if corrected else xi
    return drift, noise, {"g": G, "m": m, "drift": drift, "step": step, "beta": beta}


def adaptive_momentum(G, h, noise, state, *, beta_max=AMS_BETA_MAX):
    """AMS as published: drift ``h(1+β)² m``, noise ``ξ`` (lowers the temperature).

    The state is a dict ``{g, m, drift, step, beta}`` (None at the start);
    ``beta_max=0`` forces β = 0, which is Euler–Maruyama bit for bit.
    """
    return _ams(G, h, noise, state, beta_max, corrected=False)


def adaptive_momentum_tc(G, h, noise, state, *, beta_max=AMS_BETA_MAX):
    """Temperature-corrected AMS: as :func:`adaptive_momentum`, noise ``(1+β) ξ``."""
    return _ams(G, h, noise, state, beta_max, corrected=True)


INTEGRATORS = {"lm": leimkuhler_matthews, "em": euler_maruyama, "ams": adaptive_momentum,
               "ams-tc": adaptive_momentum_tc}


def get_integrator(name: str):
    """The step helper registered under ``name``."""
    from ..errors import MmsoldError

    try:
        return INTEGRATORS[name]
    except KeyError:
        raise MmsoldError(f"integrator must be one of {', '.join(INTEGRATORS)}, got {name!r}") from None
