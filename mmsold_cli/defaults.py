r"""Data-scaled defaults: the rules that pick t, σ, h and the step count.

All lengths are scaled by the training set's *spacing* :math:`\delta`, the
mean distance from a training point to its nearest other training point, so
the defaults carry over between data sets of any scale without tuning:

.. math::

    t = c_t\,\delta, \qquad \sigma = c_\sigma\, t, \qquad
    h = \eta\,\frac{t^2+\sigma^2}{\lambda_{\max}(\hat\Sigma)}

with the constants below.  They come from the sweep in
``benchmarks/sweep_defaults.py`` on the 2-D suite (moons, swiss roll,
8 Gaussians, checkerboard; 2,000 training points, 1,000 samples, 3 seeds);
its table is in the README.  The quality is flat for t/δ ∈ [1, 3] and
σ/t ∈ [0.25, 1]; t = 2δ keeps the memorisation fraction at that of fresh
data (t = δ raised it by 0.02), σ/t = 2 lost on the checkerboard's sharp
edges, and 50 to 200 steps from the data start gave the same W2.
"""

from __future__ import annotations

__all__ = ["T_FACTOR", "SIGMA_FACTOR", "ETA", "STEPS", "DRAWS", "NEIGHBOURS", "ENSEMBLE", "noise_level", "smoothing"]

#: t = T_FACTOR × spacing.
T_FACTOR = 2.0
#: σ = SIGMA_FACTOR × t.
SIGMA_FACTOR = 0.5
#: Step factor η in h = η (t² + σ²) / λ_max.
ETA = 0.3
#: Langevin steps.
STEPS = 100
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
