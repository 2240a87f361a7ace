r"""Noise levels and step sizes per step, as tiny separate functions.

A schedule is a :class:`Schedule` of two arrays of equal length: the noise
level :math:`t_i` at which the score is evaluated and the step size
:math:`h_i`.

MM-SOLD's step size [1]_ follows the stiffness of the smoothed score: in Z
coordinates it is about :math:`1/(t^2+\sigma^2)`, and the pull-back
:math:`G = S L` multiplies it by :math:`\lambda_{\max}(\hat\Sigma)`, so

.. math:: h = \eta\, \frac{t^2 + \sigma^2}{\lambda_{\max}(\hat\Sigma)}, \qquad \eta < 1.

References
----------
.. [1] Z. Yao, D. Paulin, arXiv:2605.14276, 2026.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["EULER_LIMIT", "Schedule", "anneal", "cfdm", "constant", "euler_stable", "langevin_step_size"]


class Schedule(NamedTuple):
    """Noise level ``t`` and step size ``h`` per step, arrays of shape (steps,)."""

    t: np.ndarray
    h: np.ndarray


def langevin_step_size(t, sigma: float, eta: float, lam_max: float):
    """:math:`h = \\eta (t^2+\\sigma^2)/\\lambda_{\\max}`."""
    return eta * (np.asarray(t, dtype=float) ** 2 + sigma**2) / lam_max


#: Largest :math:`h\,\lambda_{\max}/t^2` of :func:`euler_stable` (explicit Euler diverges past 2).
EULER_LIMIT = 1.0


def euler_stable(schedule: Schedule, lam_max: float, limit: float = EULER_LIMIT) -> Schedule:
    r"""Cap each step at :math:`h \le \text{limit}\; t^2/\lambda_{\max}`: stability of the explicit Langevin step.

    The drift :math:`\hat\Sigma\,(\bar b_{\sigma,t}(z) - z)/t^2` keeps the stiffness
    :math:`\lambda_{\max}/t^2` of its :math:`-z/t^2` term whatever σ is (only the
    barycentre is smoothed), so :func:`langevin_step_size` — tuned to
    :math:`1/(t^2+\sigma^2)` — is past explicit Euler's limit
    :math:`h\lambda_{\max}/t^2 < 2` once :math:`\eta(1 + \sigma^2/t^2) \ge 2`: at
    the latent defaults (σ = 3t, η = 0.3) it is 3.  Every covariance direction
    with :math:`\lambda > \tfrac23\lambda_{\max}` then overshoots more than it corrects.
    Naive SOLD diverged (MNIST PCA-64: sliced W2 0.74 against 0.05 for training
    codes).  MM-SOLD's retraction holds each ensemble's moments, so it does not
    diverge, but its particles swing across the data instead of settling on it:
    on the 200k × 64 mixture of rank-8 sheets (four such directions), at
    t = 0.25 ℓ uncapped, samples sat 3.5 from the nearest training code against
    1.5 for held-out codes, with precision 0.09 (0.87 for real codes); capped,
    1.0 and 0.80.  MNIST PCA-64 (two such directions) moved from precision 0.48
    to 0.51 (docs/performance.md §9).
    In 2-D (σ = t/2) the default is 0.375 and the cap changes nothing.
    """
    t = np.asarray(schedule.t, dtype=float)
    return Schedule(schedule.t, np.minimum(schedule.h, limit * t * t / lam_max))


def constant(steps: int, t: float, sigma: float, eta: float, lam_max: float) -> Schedule:
    """Fixed noise level t for all steps."""
    tt = np.full(steps, float(t))
    return Schedule(tt, langevin_step_size(tt, sigma, eta, lam_max))


def anneal(steps: int, t: float, t_end: float, n_anneal: int, sigma: float, eta: float, lam_max: float) -> Schedule:
    """Constant t, then a geometric descent to ``t_end`` over the last ``n_anneal`` steps."""
    n_anneal = int(min(max(n_anneal, 0), steps))
    tt = np.full(steps, float(t))
    if n_anneal:
        tt[steps - n_anneal :] = np.geomspace(t, t_end, n_anneal)
    return Schedule(tt, langevin_step_size(tt, sigma, eta, lam_max))


def cfdm(steps: int, T: float) -> Schedule:
    """σ-CFDM's Euler grid: ``t_i = T + i (1−T)/steps``, ``h_i = (1−T)/steps``, i = 0 … steps−1.

    The velocity is evaluated at every ``t_i < 1``; the last step ends at t = 1
    (see :mod:`mmsold_cli.samplers.cfdm`).
    """
    h = (1.0 - float(T)) / steps
    return Schedule(float(T) + h * np.arange(steps), np.full(steps, h))
