r"""Data-scaled defaults: the rules that pick t, σ, h and the step count.

All lengths are scaled by the training set's *spacing* :math:`\delta`, the
mean distance from a training point to its nearest other training point, so
the defaults carry over between data sets of any scale without tuning:

.. math::

    t = c_t\,\delta, \qquad \sigma = c_\sigma\, t, \qquad
    h = \eta\,\frac{t^2+\sigma^2}{\lambda_{\max}(\hat\Sigma)}

with the constants below.  They come from the sweep in
``benchmarks/sweep_defaults.py`` on the 2-D suite (moons, swiss roll,
8 Gaussians, checkerboard); its table is in the README.
"""

from __future__ import annotations

__all__ = ["T_FACTOR", "SIGMA_FACTOR", "ETA", "STEPS", "DRAWS", "NEIGHBOURS", "ENSEMBLE", "noise_level", "smoothing"]

#: t = T_FACTOR × spacing.
T_FACTOR = 2.0
#: σ = SIGMA_FACTOR × t.
SIGMA_FACTOR = 2.0
#: Step factor η in h = η (t² + σ²) / λ_max.
ETA = 0.3
#: Langevin steps.
STEPS = 200
#: Draws M per score evaluation (antithetic pairs).
DRAWS = 4
#: Nearest neighbours K per barycentre.
NEIGHBOURS = 16
#: Particles per ensemble P (capped by the number of samples).
ENSEMBLE = 1000


def noise_level(spacing: float) -> float:
    """Default t for a training set of the given spacing."""
    return T_FACTOR * spacing


def smoothing(t: float) -> float:
    """Default σ for noise level t."""
    return SIGMA_FACTOR * t
