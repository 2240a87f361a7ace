r"""Data-scaled defaults: the rules that pick t, σ, h and the step count.

Two regimes, each from its own sweep:

* **point sets, d ≤ 3** (the 2-D suite, surface point clouds): lengths scaled
  by the training set's *spacing* :math:`\delta`, the mean distance from a
  training point to its nearest other training point,

  .. math:: t = c_t\,\delta, \qquad \sigma = c_\sigma\, t;

* **latent sets, d > 3**: lengths scaled by
  :math:`\ell = \bar r_{16}\sqrt{2/d}`, the mean distance to the 16th nearest
  training point per √(d/2) (:func:`length_scale`),

  .. math:: t = c^{\text{lat}}_t\,\ell, \qquad \sigma = c^{\text{lat}}_\sigma\,\ell;

and in both :math:`h = \eta\,(t^2+\sigma^2)/\lambda_{\max}(\hat\Sigma)` (for naive
SOLD capped at :math:`t^2/\lambda_{\max}`, :func:`mmsold_cli.samplers.schedules.euler_stable`).

where
    * :math:`\bar r_{16}` is the mean distance from a training point to its
      16th nearest neighbour,
    * :math:`\lambda_{\max}(\hat\Sigma)` the largest eigenvalue of the
      training covariance.

Why two rules: the noise t blurs every one of the d directions, so the blur's
norm is :math:`t\sqrt d`.  In 2-D a blur of a few spacings keeps samples on
the data; in 64-D a spacing-sized t puts them ≈ 8 spacings off the data,
where p_t is nearly Gaussian (MNIST PCA-64 at t = 2δ, 10 steps: precision
0.05, the same as a Gaussian fitted to the codes).  There the blur must be a fraction of
ℓ and the smoothing σ, whose draws reach the next training points, does the
generalising (as in the authors' latent experiments, where σ ≫ t).

The 2-D constants come from ``benchmarks/sweep_defaults.py`` on the 2-D suite
(moons, swiss roll, 8 Gaussians, checkerboard; 2,000 training points, 1,000
samples, 3 seeds; table in the README): quality is flat for t/δ ∈ [1, 3] and
σ/t ∈ [0.25, 1]; t = 2δ keeps the memorisation fraction at that of fresh data
(t = δ raised it by 0.02), σ/t = 2 lost on the checkerboard's sharp edges, and
50 to 200 steps from the data start gave the same W2.  The latent constants
come from a sweep on MNIST PCA-64 (60,000 codes, 1,000 samples; precision,
recall, KID and memorisation against held-out codes; table in the README).
Between d = 4 and d = 63 the latent rule is an extrapolation.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DRAWS",
    "ENSEMBLE",
    "ETA",
    "LATENT_SIGMA_FACTOR",
    "LATENT_T_FACTOR",
    "LOW_DIM",
    "NEIGHBOURS",
    "SIGMA_FACTOR",
    "STEPS",
    "T_FACTOR",
    "length_scale",
    "noise_level",
    "smoothing",
]

#: Largest dimension of the point-set rule.
LOW_DIM = 3
#: t = T_FACTOR × spacing (d ≤ LOW_DIM).
T_FACTOR = 2.0
#: σ = SIGMA_FACTOR × t (d ≤ LOW_DIM).
SIGMA_FACTOR = 0.5
#: t = LATENT_T_FACTOR × ℓ (d > LOW_DIM).
LATENT_T_FACTOR = 0.25
#: σ = LATENT_SIGMA_FACTOR × ℓ (d > LOW_DIM).
LATENT_SIGMA_FACTOR = 0.75
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


def length_scale(model) -> float:
    r""":math:`\ell = \bar r_{16}\sqrt{2/d}` of a fitted model (mean distance to the last stored neighbour)."""
    return float(model.kth_dist_ * np.sqrt(2.0 / model.d_))


def noise_level(model) -> float:
    """Default t for a fitted model: T_FACTOR × spacing if d ≤ LOW_DIM, else LATENT_T_FACTOR × ℓ."""
    if model.d_ <= LOW_DIM:
        return T_FACTOR * model.spacing_
    return LATENT_T_FACTOR * length_scale(model)


def smoothing(model, t: float) -> float:
    """Default σ for a fitted model at noise level t: SIGMA_FACTOR × t if d ≤ LOW_DIM, else LATENT_SIGMA_FACTOR × ℓ."""
    if model.d_ <= LOW_DIM:
        return SIGMA_FACTOR * t
    return LATENT_SIGMA_FACTOR * length_scale(model)
