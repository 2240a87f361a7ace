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

and in both :math:`h = \eta\,(t^2+\sigma^2)/\lambda_{\max}(\hat\Sigma)`, capped at
:math:`t^2/\lambda_{\max}` for MM-SOLD and naive SOLD (:func:`mmsold_cli.samplers.schedules.euler_stable`;
the cap binds at the latent defaults, not at the point-set ones).

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
recall, KID and memorisation against held-out codes; tables in docs/performance.md §1):
with the step capped at explicit Euler's limit, t = 0.25 ℓ copied 6–7 % of the
training codes, t = 0.35 ℓ lost 0.03 of precision, and t = 0.3 ℓ kept the precision
of the uncapped step at about 1 % copies.  Between d = 4 and d = 63 the latent rule is
an extrapolation.

This module holds every default of the package that a user might want to know
or a sweep might change: the Langevin samplers' (above), σ-CFDM's
(:func:`cfdm_sigma`, :func:`cfdm_start_time`, :func:`cfdm_steps`; the rules are
derived in :mod:`mmsold_cli.samplers.cfdm`), the driver's batch size, the model's
graph width and the densify workflow's (``DENSIFY_*``, see
:mod:`mmsold_cli.workflows.densify`).
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
    "data_scales",
    "DataScales",
    "noise_level",
    "smoothing",
    "BATCH_PARTICLES",
    "SMALL_JOB",
    "backend_for",
    "GRAPH_K",
    "FLAT",
    "SUPPORT_ABOVE",
    "POOL_FACTOR",
    "WALK_WIDTH",
    "WALK_RENEW",
    "WIDE_WALK_ABOVE",
    "WIDE_WALK_WIDTH",
    "walk_width",
    "smallest_draw",
    "draw_count",
    "CFDM_SIGMA_FACTOR",
    "CFDM_START_FACTOR",
    "CFDM_LAST_BLUR",
    "CFDM_STEPS_MIN",
    "CFDM_STEPS_MAX",
    "CFDM_DRAWS",
    "CFDM_SHARED_MISS",
    "CFDM_PILOT",
    "cfdm_sigma",
    "cfdm_start_time",
    "cfdm_steps",
    "DENSIFY_FACTOR",
    "DENSIFY_T_FACTOR",
    "DENSIFY_SIGMA_FACTOR",
    "DENSIFY_STEPS",
    "DENSIFY_ANNEAL_TOTAL_STEPS",
    "MLS_RADIUS",
    "MLS_NEIGHBOURS",
    "MLS_ITERS",
    "REJECT",
    "FAR",
    "TWEEDIE_T",
    "ANNEAL_T_END",
    "ANNEAL_STEPS",
]

#: Largest dimension of the point-set rule.
LOW_DIM = 3
#: t = T_FACTOR × spacing (d ≤ LOW_DIM).
T_FACTOR = 2.0
#: σ = SIGMA_FACTOR × t (d ≤ LOW_DIM).
SIGMA_FACTOR = 0.5
#: t = LATENT_T_FACTOR × ℓ (d > LOW_DIM).
LATENT_T_FACTOR = 0.3
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


class DataScales:
    """What the defaults read of a data set, for data without a fitted model: n_, d_, spacing_, kth_dist_."""

    def __init__(self, n, d, spacing, kth_dist):
        self.n_, self.d_, self.spacing_, self.kth_dist_ = n, d, spacing, kth_dist


def data_scales(X, k: int = 16) -> DataScales:
    """The spacing (mean distance to the nearest distinct point) and the mean distance to the k-th nearest
    point of X, exactly, as a fitted model holds them (any number of points ≥ 2; O(n²) memory in blocks)."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    k = max(1, min(k, n - 1))
    sq = np.einsum("ij,ij->i", X, X)
    nn, kth = np.empty(n), np.empty(n)
    for a in range(0, n, 1024):
        D = np.maximum(sq[a:a + 1024, None] + sq[None] - 2 * X[a:a + 1024] @ X.T, 0.0)
        D[np.arange(D.shape[0]), np.arange(a, a + D.shape[0])] = np.inf
        part = np.sort(D, axis=1)
        distinct = np.where(part > 0, part, np.inf)
        nn[a:a + 1024] = np.sqrt(distinct.min(axis=1))
        kth[a:a + 1024] = np.sqrt(part[:, k - 1])
    nn = nn[np.isfinite(nn)]
    return DataScales(n, d, float(nn.mean()) if nn.size else 1.0, float(kth.mean()))


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


# ---------------------------------------------------------------- driver and model

#: Particles stepped at once (``batch_size``): bounds memory, not results.
BATCH_PARTICLES = 65_536
#: ``backend="auto"``: point sets (d ≤ LOW_DIM) with at most this many particle-steps run on the NumPy
#: backend, which compiles nothing: a first run's numba compilation (10–15 s on 2 cores) outweighs such a
#: job's whole run on NumPy (about 1.5 s for 1,000 samples × 100 steps).  Larger jobs and latent sets run
#: the numba kernels.  The rule depends on the job only, so a seed gives the same bytes every time.
SMALL_JOB = 100_000


def backend_for(d: int, particle_steps: int) -> str:
    """The backend ``auto`` resolves to for a job of ``particle_steps`` in d dimensions."""
    return "numpy" if d <= LOW_DIM and particle_steps <= SMALL_JOB else "numba"
#: A covariance direction with eigenvalue ≤ FLAT × λmax has no spread (the covariance is singular).
FLAT = 1e-10
#: Above this dimension a singular data covariance is held exactly on its support (rank r < d) instead of
#: jittered: the fused small-d kernels take a square factor, and there the d × d work costs nothing.
SUPPORT_ABOVE = 8
#: Neighbours per training point in the model's k-NN graph (spacing, ℓ, the tracked pool).
GRAPH_K = 16
#: The tracked pool keeps POOL_FACTOR × K neighbours per particle.
POOL_FACTOR = 4
#: The walk search expands the WALK_WIDTH nearest entries of each particle's beam each step (8 left the
#: score 45 % further from the exact one than a perfect search would; 16 is within 10 %: tests/test_walk.py).
WALK_WIDTH = 16
#: Of those, the walk search expands the WALK_RENEW nearest at every step; the others once while they stay in the
#: beam.  Renewing all 16 on MNIST PCA-64 took 17 % more time for 0.1 % more of the 16 nearest; renewing 8 left
#: the score 11 % further from the exact one than a perfect search on tests/test_walk.py's clusters, 10 left it
#: 5 % (docs/performance.md §9).
WALK_RENEW = 10
#: Training sets of more than WIDE_WALK_ABOVE points are walked WIDE_WALK_WIDTH wide.  In a large set a
#: particle's neighbourhood is flatter (many points at nearly its nearest distance), and a greedy walk
#: misses more of them: on the 200,000 × 64 mixture of benchmarks/latent_scale.py width 16 found 96 % of
#: the 16 nearest and left the score twice as far from the exact one as a perfect search; width 40 found
#: 99.3 %.  That was with MM-SOLD's step uncapped; with the cap, widths 16, 24 and 40 all find 99.96 % or
#: more at speeds within the runs' spread, and 40 leaves the least score error (docs/performance.md §9).
WIDE_WALK_ABOVE = 100_000
WIDE_WALK_WIDTH = 40


def smallest_draw(d: int) -> int:
    """Samples MM-SOLD draws when fewer are asked for, keeping the first: one ensemble of 2d + 2 particles (an
    ensemble needs more particles than dimensions to hold the moments)."""
    return 2 * int(d) + 2


def draw_count(k: int, d: int, sampler: str | None = None, *, what: str | None = "samples") -> int:
    """Samples to draw for k samples in d dimensions: k, or with MM-SOLD (``sampler`` None or "mmsold") and
    k ≤ d, :func:`smallest_draw`'s one ensemble, of which the first k are kept.

    More than d samples are one ensemble of their own, which holds the mean and covariance exactly; d or fewer
    cannot hold a d-D covariance, and a warning says so (``what`` names them in it; None: no warning)."""
    k = int(k)
    if k > d or sampler not in (None, "mmsold"):
        return k
    if what is None:
        return smallest_draw(d)
    import warnings

    from .errors import MmsoldWarning

    warnings.warn(f"{what}: {k} asked for, and {d} or fewer cannot hold the mean and covariance of {d}-D data; they "
                  f"are the first {k} of one ensemble of {smallest_draw(d)}", MmsoldWarning, stacklevel=2)
    return smallest_draw(d)


def walk_width(n: int) -> int:
    """Beam entries the walk search expands each step over a training set of n points."""
    return WALK_WIDTH if n <= WIDE_WALK_ABOVE else WIDE_WALK_WIDTH

# ---------------------------------------------------------------- σ-CFDM

#: σ = CFDM_SIGMA_FACTOR × ℓ.
CFDM_SIGMA_FACTOR = 0.75
#: Start blur (1 − T)/T = CFDM_START_FACTOR × ℓ.
CFDM_START_FACTOR = 2.0
#: Blur of the last Euler step, (1 − T)/S, as a fraction of the training spacing.
CFDM_LAST_BLUR = 0.1
#: Bounds on the default number of Euler steps.
CFDM_STEPS_MIN, CFDM_STEPS_MAX = 10, 1000
#: Draws M per velocity evaluation (antithetic pairs).
CFDM_DRAWS = 10
#: ``auto`` lets σ-CFDM's draws share their particle's walked beam when, along a pilot run of CFDM_PILOT particles,
#: the draws' softmax weight outside the beam averages at most CFDM_SHARED_MISS
#: (:func:`mmsold_cli.samplers.cfdm.shared_beam_miss`).  Measured: raw MNIST pixels 1e-4 and less, where the
#: shared beam's score is closer to the exact one than each draw's own 16 nearest; MNIST PCA-256 and PCA-64 and
#: the 200,000 × 64 mixture above it, where a shared beam of 64 points leaves 2–25 % of the score out
#: (docs/performance.md §9).
CFDM_SHARED_MISS = 1e-3
CFDM_PILOT = 32


def cfdm_sigma(model) -> float:
    """Default σ-CFDM smoothing: CFDM_SIGMA_FACTOR × ℓ."""
    return CFDM_SIGMA_FACTOR * length_scale(model)


def cfdm_start_time(model) -> float:
    """Default σ-CFDM start time T: the time whose blur (1 − T)/T is CFDM_START_FACTOR × ℓ."""
    return 1.0 / (1.0 + CFDM_START_FACTOR * length_scale(model))


def cfdm_steps(model, T: float) -> int:
    r"""Default σ-CFDM step count S: the last step's blur (1 − T)/S is at most CFDM_LAST_BLUR × spacing.

    The last Euler step lands on the barycentre at :math:`t_{S-1} = 1 - h`, whose own blur
    :math:`\tau = h/(1-h) \approx (1-T)/S` would otherwise average neighbouring training points
    even at σ = 0.  Clipped to [CFDM_STEPS_MIN, CFDM_STEPS_MAX].
    """
    S = int(np.ceil((1.0 - T) / (CFDM_LAST_BLUR * model.spacing_)))
    return int(min(max(S, CFDM_STEPS_MIN), CFDM_STEPS_MAX))


# ---------------------------------------------------------------- densify (lengths × the input's spacing)

#: Output points per input point when n is not given.
DENSIFY_FACTOR = 20
#: Sampler noise t = DENSIFY_T_FACTOR × spacing.
DENSIFY_T_FACTOR = 1.5
#: Sampler smoothing σ = DENSIFY_SIGMA_FACTOR × t (σ > 0 did not improve coverage at equal distance).
DENSIFY_SIGMA_FACTOR = 0.0
#: Langevin steps.  The sampler starts from exact draws of p_t (init "data"), so its marginal is p_t from
#: the first step on and more steps only decorrelate particles from their start; on the four meshes of
#: benchmarks/densify_meshes.py (two seeds) 10 steps gave the figures of 50 (mean, p95, coverage, Chamfer
#: equal within the seeds' spread) at a fifth of the sampler's cost.
DENSIFY_STEPS = 10
#: Langevin steps with denoise="anneal", whose last ANNEAL_STEPS lower t (the annealing needs a run-in first).
DENSIFY_ANNEAL_TOTAL_STEPS = 50
#: MLS kernel width h = MLS_RADIUS × spacing.
MLS_RADIUS = 1.5
#: Sparse neighbours per MLS fit.
MLS_NEIGHBOURS = 24
#: MLS projection passes.
MLS_ITERS = 3
#: Share of MLS-projected points dropped as least trusted (drawn in excess, n are returned).
REJECT = 0.08
#: Points farther than FAR spacings from every input point are the first rejected.
FAR = 2.0
#: Tweedie step noise level t_d = TWEEDIE_T × spacing.
TWEEDIE_T = 0.5
#: Annealing's last noise level, × spacing.
ANNEAL_T_END = 0.1
#: Steps over which the noise level is annealed.
ANNEAL_STEPS = 20
