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

__all__ = ["Schedule", "langevin_step_size", "constant", "anneal", "cfdm"]


class Schedule(NamedTuple):
    """Noise level ``t`` and step size ``h`` per step, arrays of shape (steps,)."""

    t: np.ndarray
    h: np.ndarray


def langevin_step_size(t, sigma: float, eta: float, lam_max: float):
    """:math:`h = \\eta (t^2+\\sigma^2)/\\lambda_{\\max}`."""
    return eta * (np.asarray(t, dtype=float) ** 2 + sigma**2) / lam_max


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
    (see :mod:`mmsold_cli.cfdm`).
    """
    h = (1.0 - float(T)) / steps
    return Schedule(float(T) + h * np.arange(steps), np.full(steps, h))
