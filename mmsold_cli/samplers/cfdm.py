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

Defaults are data-scaled like :mod:`mmsold_cli.defaults`, but by a length
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
training spacing (:func:`default_steps`): with a coarser grid the last Euler
step itself averages neighbouring training points, so σ = 0 would no longer
reproduce them.

References
----------
.. [1] C. Scarvelis, H. Sáez de Ocáriz Borde, J. Solomon, "Closed-Form
   Diffusion Models", arXiv:2310.12395 (TMLR 2025), Sec. 4–5, Alg. 1.
"""

from __future__ import annotations

import numpy as np

from ..defaults import length_scale

__all__ = [
    "sample_cfdm",
    "cfdm_barycentre",
    "cfdm_score",
    "SIGMA_FACTOR",
    "START_FACTOR",
    "LAST_BLUR",
    "STEPS_MIN",
    "STEPS_MAX",
    "default_steps",
    "DRAWS",
    "length_scale",
    "default_sigma",
    "default_start_time",
]

#: σ = SIGMA_FACTOR × ℓ.
SIGMA_FACTOR = 0.75
#: Start blur (1 − T)/T = START_FACTOR × ℓ.
START_FACTOR = 2.0
#: Blur of the last Euler step, (1 − T)/S, as a fraction of the training spacing.
LAST_BLUR = 0.1
#: Bounds on the default number of Euler steps.
STEPS_MIN, STEPS_MAX = 10, 1000
#: Draws M per velocity evaluation (antithetic pairs).
DRAWS = 10


def default_sigma(model) -> float:
    """Default σ = SIGMA_FACTOR × ℓ for a fitted model."""
    return SIGMA_FACTOR * length_scale(model)


def default_start_time(model) -> float:
    """Default T: the time whose blur (1 − T)/T is START_FACTOR × ℓ."""
    return 1.0 / (1.0 + START_FACTOR * length_scale(model))


def default_steps(model, T: float) -> int:
    r"""Default S: the last step's blur (1 − T)/S is at most LAST_BLUR × spacing (within [STEPS_MIN, STEPS_MAX]).

    The last Euler step lands on the barycentre at :math:`t_{S-1} = 1 - h`,
    whose own blur :math:`\tau = h/(1-h) \approx (1-T)/S` would otherwise
    average neighbouring training points even at σ = 0.
    """
    S = int(np.ceil((1.0 - T) / (LAST_BLUR * model.spacing_)))
    return int(min(max(S, STEPS_MIN), STEPS_MAX))


def cfdm_barycentre(score, z, t, rng, sigma):
    r"""Smoothed barycentre :math:`\bar b_{\sigma,t}(z)` by the estimator of ``score``.

    Parameters
    ----------
    score : SmoothedScore
        Its ``barycentre(Q, tau, rng, sigma=...)`` is called on the rescaled queries.
    z : array of shape (m, d)
    t : float in (0, 1)
    rng : numpy.random.Generator
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


def sample_cfdm(score, x, schedule, *, rng, sigma, callback=None):
    """σ-CFDM probability flow by Euler, from ``schedule.t[0]`` to t = 1.

    Parameters
    ----------
    score : SmoothedScore
        Barycentre estimator over the training points (K nearest + L random).
    x : array of shape (..., d)
        Start at time ``schedule.t[0]`` (see :mod:`mmsold_cli.samplers.inits`).
    schedule : Schedule
        From :func:`mmsold_cli.schedules.cfdm`; needs ``t + h ≤ 1`` everywhere.
    rng : numpy.random.Generator
    sigma : float
        Smoothing scale σ ≥ 0 in z units.
    callback : callable, optional
        Called after each step with ``{x, z, i, t, h, score}`` (x and z both the
        new state, score the smoothed score at the old one).

    Returns
    -------
    x : array of the shape of the start, at t = 1
    """
    shape = x.shape
    z = x.reshape(-1, shape[-1])
    for i, (t, h) in enumerate(zip(schedule.t, schedule.h)):
        b = cfdm_barycentre(score, z, t, rng, sigma)
        z_old = z
        # v = (z + (1 − t) s)/t = (b − z)/(1 − t); a step reaching t = 1 lands on b
        z = b if t + h >= 1.0 - 1e-12 else z + h * (b - z) / (1.0 - t)
        if callback is not None:
            s = (t * b - z_old) / (1.0 - t) ** 2
            zz = z.reshape(shape)
            callback({"x": zz, "z": zz, "i": i, "t": t, "h": h, "score": s.reshape(shape)})
    return z.reshape(shape)
