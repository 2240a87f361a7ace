r"""Drawing N samples from a fitted model: ensembles, batches, diagnostics.

N samples are split into :math:`E=\lceil N/P\rceil` ensembles whose sizes differ
by at most one, each held at the target moments exactly.  Ensembles of one
size are stepped together in batches, so one neighbour query serves a whole
batch while peak memory stays bounded (measured against this bound in
``benchmarks/large_runs.py memory``; it holds with 11–27 % to spare):

.. math::

    \text{peak memory} \le R_0 + 8\,n\,(d + a) + 4\,n\,k_g + W + 8\,B\,c_B + 8\,N d \ \text{bytes},
    \qquad c_B = \begin{cases} 6\,d & \text{grid search } (d \le 3)\\
                 6\,d + c + d/2 & \text{tracked pool}\\
                 \max\big(16\,d,\ (3M+8)\,d + 2M(K+L)\big) & \text{index search} \end{cases}

where
    * :math:`R_0 = 200` MiB is the interpreter with NumPy, numba, h5py and the loaded kernels
      (``mmsold sample`` on a tiny job: 176–177 MiB; SciPy's k-d tree adds 23 MiB when it is used),
    * :math:`n, d` are the training set's size and dimension; :math:`a = d + 6` for the grid (a bound: its
      in-cell offsets and cell tables take ≤ 4 max(d, 2) + 6 bytes a point, and the exact ``grid-knn``
      search adds the sorted points and the permutation, 8 d + 4) and
      :math:`2d + 2` for an index (a k-d tree's copy; squared norms and spacings),
    * :math:`k_g = 16` the stored graph width, read (int32) for the tracked pool only, 0 otherwise
      (a pynndescent index: :math:`6 k_g`, its own graphs),
    * :math:`W` the index's working memory for a search (16 MiB for ``brute``: distance blocks and
      screening tiles; the pool's full queries go by 1,024 rows),
    * :math:`B` the particles stepped at once (``batch_size``, default 65,536, rounded down to whole
      ensembles).  A step keeps the state, the integrator's noise, the positions (replaced by their
      score), the pulled-back drift and a fresh noise as (B, d) arrays, each updated in place, and the
      draws' normals by blocks of ≤ 1 MB (the bound; MM-SOLD's fused step with LM or EM noise, d ≤ 8,
      holds the state and the positions/score only: its noise is made from keys in the kernel); the pool adds each particle's c = 4K int32 neighbours twice
      (old and re-ranked) and a float32 anchor; an index search holds the M perturbed queries and
      draws and their (M B, K + L) neighbour indices and distances,
    * :math:`M, K, L` the draws, neighbours and remainder points per score evaluation,
    * :math:`N` the number of samples (filled batch by batch; one batch is returned as it is; 0 when
      they go to ``out``, e.g. streamed to a file by :class:`mmsold_cli.io.arrays.PointWriter` as ``mmsold
      sample`` does for .npy and text outputs).

:func:`memory_estimate` evaluates it.  Memory therefore grows with N only by
8 bytes per coordinate: ``sample -n 1000000`` in 3-D needs 24 MB for the samples.

Each batch draws from its own child of ``numpy.random.SeedSequence(seed)``,
so results are reproducible bit for bit for a given seed and batch size.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import numpy as np

from . import defaults
from .errors import MmsoldError
from .samplers import cfdm as _cfdm
from .samplers import inits, schedules, stiefel
from .samplers.cfdm import sample_cfdm
from .samplers.integrators import get_integrator
from .samplers.langevin import init_data, init_gaussian, sample_mmsold, sample_sold, spatial_order
from .score.smoothed import SEARCHES, SmoothedScore
from .validation import check_int, check_positive

__all__ = ["sample", "SampleResult", "SAMPLERS", "INITS", "TARGET_COVS", "ensemble_sizes", "resolve_settings",
           "memory_estimate"]

SAMPLERS = ("mmsold", "sold", "cfdm")
INITS = ("data", "gaussian", "moments", "gmm")
TARGET_COVS = ("data", "blurred")
BATCH_PARTICLES = 65_536


@dataclass
class SampleResult:
    """Samples and what happened while drawing them.

    Attributes
    ----------
    samples : array of shape (N, d)
    settings : dict
        Every resolved setting (defaults filled in).
    diagnostics : dict
        ``wall_time`` (s), ``score_evals``, per-step ``mean_error`` and
        ``cov_error`` (worst ensemble, relative), ``score_norm`` (mean).
    """

    samples: np.ndarray
    settings: dict
    diagnostics: dict = field(default_factory=dict)


def ensemble_sizes(n: int, P: int, d: int) -> list[int]:
    """Split n samples into ensembles of size ≤ P, sizes differing by at most one, each > d."""
    E = -(-n // P)
    while E > 1 and n // E <= d:
        E -= 1
    base, extra = divmod(n, E)
    return [base + 1] * extra + [base] * (E - extra)


def resolve_settings(model, n, *, sampler="mmsold", steps=None, eta=None, t=None, sigma=None, M=None, K=None,
                     L=0, P=None, integrator=None, init="data", target_cov="data", batch_size=None,
                     backend="numba", start_time=None, search="auto"):
    """Validate the options and fill the data-scaled defaults (see :mod:`mmsold_cli.defaults`)."""
    n = check_int(n, "number of samples n", low=1)
    d = model.d_
    if sampler not in SAMPLERS:
        raise MmsoldError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if init not in INITS:
        raise MmsoldError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if target_cov not in TARGET_COVS:
        raise MmsoldError(f"target_cov must be one of {', '.join(TARGET_COVS)}, got {target_cov!r}")
    if sampler == "cfdm":
        steps, sigma, M, start_time, integrator = _cfdm_settings(model, t, steps, sigma, M, start_time, integrator)
    elif start_time is not None:
        raise MmsoldError(f"start_time applies to the cfdm sampler only, got start_time = {start_time!r} with {sampler}")
    else:
        integrator = "lm" if integrator is None else integrator
        get_integrator(integrator)
    steps = check_int(defaults.STEPS if steps is None else steps, "steps", low=1)
    eta = check_positive(defaults.ETA if eta is None else eta, "step factor eta")
    t = check_positive(defaults.noise_level(model) if t is None else t, "noise t")
    sigma = check_positive(defaults.smoothing(model, t) if sigma is None else sigma, "smoothing sigma", allow_zero=True)
    M = check_int(defaults.DRAWS if M is None else M, "draws M", low=1)
    K = check_int(min(defaults.NEIGHBOURS, model.n_) if K is None else K, "neighbours K", low=1)
    if K > model.n_:
        raise MmsoldError(f"neighbours K must be ≤ the {model.n_} training points, got {K}")
    L = check_int(L, "remainder points L", low=0, high=model.n_ - K)
    if P is None:
        P = max(min(n, defaults.ENSEMBLE), d + 1)
    P = check_int(P, "ensemble size P", low=d + 1)
    if n <= d and sampler == "mmsold":
        raise MmsoldError(f"MM-SOLD needs more samples than dimensions (n > d = {d}), got n = {n}")
    batch_size = check_int(BATCH_PARTICLES if batch_size is None else batch_size, "batch_size", low=1)
    if backend not in ("numba", "numpy"):
        raise MmsoldError(f"backend must be numba or numpy, got {backend!r}")
    if search not in SEARCHES:
        raise MmsoldError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    search = _auto_search(search, sampler, d, model.n_, K, L, backend)
    return dict(sampler=sampler, n=n, steps=steps, eta=eta, t=None if sampler == "cfdm" else t, sigma=sigma, M=M,
                K=K, L=L, P=P, integrator=integrator, init=init, target_cov=target_cov, batch_size=batch_size,
                backend=backend, start_time=start_time, search=search)


def _auto_search(search, sampler, d, n, K, L, backend):
    """``"auto"`` for the Langevin samplers above the grid's dimensions: the tracked pool.

    Langevin particles move a fraction of their neighbourhood per step, so
    re-ranking last step's neighbours and their graph neighbours replaces a
    search over all n points (measured on MNIST PCA-64, 60,000 codes: the same
    precision, recall and sliced W2, about 4 × the throughput; the K = 16 nearest
    are in the pool at recall 0.996).  σ-CFDM's queries z/t sweep from
    noise to data, so it keeps the index; d ≤ 3 keeps the fused grid (resolved
    in :class:`~mmsold_cli.score.smoothed.SmoothedScore`).
    """
    from .neighbors.indexes import GRID_MAX_DIM

    if (search == "auto" and sampler != "cfdm" and d > GRID_MAX_DIM and L == 0 and K < n
            and backend == "numba"):
        return "pool"
    return search


def _cfdm_settings(model, t, steps, sigma, M, start_time, integrator):
    """σ-CFDM's own defaults (see :mod:`mmsold_cli.samplers.cfdm`); noise t and Langevin integrators do not apply."""
    if t is not None:
        raise MmsoldError(f"noise t does not apply to cfdm (it starts at start_time T), got t = {t!r}")
    if integrator not in (None, "euler"):
        raise MmsoldError(f"cfdm integrates its flow by Euler; integrator must be euler, got {integrator!r}")
    T = _cfdm.default_start_time(model) if start_time is None else start_time
    if isinstance(T, bool) or not isinstance(T, (int, float, np.floating)) or not 0 < T < 1:
        raise MmsoldError(f"start_time T must be a number in (0, 1), got {T!r}")
    return (_cfdm.default_steps(model, T) if steps is None else steps, _cfdm.default_sigma(model) if sigma is None else sigma,
            _cfdm.DRAWS if M is None else M, float(T), "euler")


def _start(model, st, E, P, mean, chol, rng, constrained, mixture, order):
    """A batch's start from :data:`mmsold_cli.samplers.inits.STARTS`: Z for cfdm, Y (retracted for MM-SOLD) otherwise."""
    cf = st["sampler"] == "cfdm"
    a, s = (st["start_time"], 1.0 - st["start_time"]) if cf else (1.0, st["t"])
    z = inits.STARTS[st["init"]](model.X_, E * P, a, s, rng=rng, mixture=mixture, order=order).reshape(E, P, model.d_)
    if cf:
        return z
    y = stiefel.to_y(z, mean, chol)
    return stiefel.retract(y) if constrained else y


def _cfdm_moments(model, u):
    """Mean and covariance of σ-CFDM's interpolant at time u: uμ and u²Σ + (1−u)² I."""
    return u * model.mean_, u * u * model.covariance_ + (1 - u) ** 2 * np.eye(model.d_)


def _target(model, settings):
    if settings["target_cov"] == "blurred":
        cov = model.covariance_ + (settings["t"] ** 2 + model.jitter_) * np.eye(model.d_)
        return model.mean_, cov, np.linalg.cholesky(cov)
    return model.mean_, model.covariance_ + model.jitter_ * np.eye(model.d_), model.cholesky_


def memory_estimate(model, n, *, out=None, **options) -> int:
    """The module's bound on peak memory, in bytes, for ``sample(model, n, **options)``.

    Parameters
    ----------
    model : Model
    n : int
        Number of samples.
    out : array-like, optional
        As for :func:`sample`: the samples go there, not into memory.
    **options
        As for :func:`sample` (``batch_size``, ``M``, ``K``, ``L``, ``P``, ``search``, ...).
    """
    from .model import GRAPH_K
    from .neighbors.indexes import GRID_MAX_DIM

    st = resolve_settings(model, n, **options)
    n_train, d = model.X_.shape
    sizes = ensemble_sizes(st["n"], st["P"], d)
    B = max(size * count for size, count in _batches(sizes, st["batch_size"]))
    grid = (st["search"] in ("grid", "grid-knn") or (st["search"] == "auto" and st["backend"] == "numba"
                                                      and st["L"] == 0 and d <= GRID_MAX_DIM))
    if grid:
        c_B, a, k_g = 6 * d, d + 6, 0
    elif st["search"] == "pool":
        c_B, a, k_g = 6 * d + 4 * st["K"] + d / 2, 2 * d + 2, GRAPH_K
    else:
        c_B, a, k_g = max(16 * d, (3 * st["M"] + 8) * d + 2 * st["M"] * (st["K"] + st["L"])), 2 * d + 2, 0
    if model.index_kind_ == "nndescent":
        k_g = 6 * GRAPH_K
    work = 16 * 2**20 if model.index_kind_ == "brute" and not grid else 0
    held = 0 if out is not None else 8 * st["n"] * d
    return int(200 * 2**20 + 8 * n_train * (d + a) + 4 * n_train * k_g + work + 8 * B * c_B + held)


def _batches(sizes, batch_size):
    """Group equal-sized ensembles into batches of about batch_size particles."""
    out = []
    for size in sorted(set(sizes), reverse=True):
        count = sizes.count(size)
        per = max(1, batch_size // size)
        for start in range(0, count, per):
            out.append((size, min(per, count - start)))
    return out


def sample(model, n, *, random_state=None, callback=None, progress=None, schedule=None, out=None,
           **options) -> SampleResult:
    """Draw n samples from a fitted :class:`~mmsold_cli.model.Model`.

    Parameters
    ----------
    model : Model
    n : int
        Number of samples.
    random_state : int or None
        Seed; the same seed and options give bit-identical samples.
    callback : callable, optional
        Passed to the sampler (called each step with a :class:`~mmsold_cli.samplers.langevin.StepInfo`
        ``{x, z, i, t, h, score}``, ``z`` made on first access); ``x`` and ``z`` are
        overwritten by later steps (copy them to keep them).
    progress : callable, optional
        ``progress(ensembles_done, ensembles_total, step, steps)`` after each step.
    schedule : callable, optional
        ``schedule(steps, t, sigma, eta, lam_max) -> Schedule`` replacing the
        constant one of the Langevin samplers, e.g.
        ``functools.partial(schedules.anneal, t_end=..., n_anneal=...)``.
    out : array-like of shape (n, d), optional
        Where the samples go, batch by batch in row order (``out[a:b] = batch``): an array, a
        memory map, or an :class:`mmsold_cli.io.arrays.PointWriter` that streams them to a file, so
        that no (n, d) array is held.  The result's ``samples`` is then ``out``.
    **options
        sampler ("mmsold" | "sold" | "cfdm"), steps, eta, t, sigma, M, K, L, P,
        integrator ("lm" | "em" | "ams" | "ams-tc"; cfdm: Euler only),
        init ("data" | "gaussian" | "moments" | "gmm", see :mod:`mmsold_cli.samplers.inits`),
        target_cov ("data" | "blurred"), batch_size, backend ("numba" | "numpy"),
        start_time (cfdm's start time T in (0, 1)).

    Returns
    -------
    SampleResult
    """
    if not hasattr(model, "X_"):
        raise MmsoldError("model is not fitted")
    if random_state is not None and not isinstance(random_state, (int, np.integer)):
        raise MmsoldError(f"random_state must be an int or None, got {random_state!r}")
    st = resolve_settings(model, n, **options)
    mean, cov, chol = _target(model, st)
    d = model.d_
    if out is not None and tuple(getattr(out, "shape", ())) != (st["n"], d):
        raise MmsoldError(f"out must have shape {(st['n'], d)}, got {getattr(out, 'shape', type(out).__name__)}")
    sizes = ensemble_sizes(st["n"], st["P"], d)
    batches = _batches(sizes, st["batch_size"])
    cf = st["sampler"] == "cfdm"
    if cf:
        sched = schedules.cfdm(st["steps"], st["start_time"])
    else:
        lam_max = float(np.linalg.eigvalsh(cov)[-1])
        sched = (schedule or schedules.constant)(steps=st["steps"], t=st["t"], sigma=st["sigma"], eta=st["eta"],
                                                 lam_max=lam_max)
        if st["sampler"] == "sold":  # the unconstrained explicit step needs h λmax/t² ≤ 1 (see euler_stable)
            capped = schedules.euler_stable(sched, lam_max)
            st["step_capped"] = bool(np.any(capped.h < sched.h))
            sched = capped
    grids = model.__dict__.setdefault("grids_", {})  # a grid depends on (X, σ, K) only: one per model and key
    key = (float(st["sigma"]), int(st["K"]))
    score = SmoothedScore(model.X_, model.index_, sigma=st["sigma"], M=st["M"], K=st["K"], L=st["L"],
                          backend=st["backend"], search=st["search"], grid=grids.get(key),
                          graph=model.knn_idx_ if st["search"] == "pool" else None)
    if score.search in ("grid", "grid-knn"):
        grids[key] = score.grid()
    integrator = None if cf else get_integrator(st["integrator"])
    constrained = st["sampler"] == "mmsold"
    run = sample_mmsold if constrained else sample_sold
    # the state is updated in its own array: one (B, d) array for the whole run, the start included
    knobs = ({"manifold_step": functools.partial(stiefel.step, overwrite_y=True)} if constrained
             else {"overwrite_y": True})
    moments, moments_y, to_z = stiefel.moment_error, stiefel.moment_error_y, stiefel.to_z
    if st["backend"] == "numba":
        from .samplers import stiefel_numba

        if d <= stiefel_numba.MAX_DIM:  # fused kernels for the per-step d × d work
            moments, moments_y, to_z = stiefel_numba.moment_error, stiefel_numba.moment_error_y, stiefel_numba.to_z
            if not cf:
                knobs["to_z"] = to_z
            if constrained:
                knobs["manifold_step"] = functools.partial(stiefel_numba.step, overwrite_y=True)
                if st["integrator"] in ("lm", "em"):  # integrator and manifold step in one pass, no temporaries
                    knobs["fused_step"] = functools.partial(stiefel_numba.langevin_step, lm=st["integrator"] == "lm")
    seeds = np.random.SeedSequence(random_state).spawn(len(batches))
    steps = st["steps"]
    mean_err = np.zeros(steps)
    cov_err = np.zeros(steps)
    score_norm = np.zeros(steps)
    samples, filled = None, 0
    done = 0
    t0 = time.perf_counter()
    mixture = None
    if st["init"] == "gmm":
        a, s = (st["start_time"], 1.0 - st["start_time"]) if cf else (1.0, st["t"])
        mix_rng = np.random.default_rng(np.random.SeedSequence(random_state).spawn(len(batches) + 1)[-1])
        mixture = inits.fit_gmm(model.X_, a, s, rng=mix_rng)
    for (P, E), seed in zip(batches, seeds):
        rng = np.random.default_rng(seed)
        if score.tracker is not None:  # a new batch holds new particles: no neighbours to track yet
            score.tracker.reset()
        # made again for each batch and dropped before its steps (n ints less at the peak; 0.2 s per
        # batch for 100,000 points in 3-D, 1.1 s for 60,000 in 64-D)
        order = spatial_order(model.X_) if st["init"] == "data" else None
        if cf or st["init"] in ("moments", "gmm"):
            y = _start(model, st, E, P, mean, chol, rng, constrained, mixture, order)
        elif st["init"] == "data":
            y = init_data(model.X_, E, P, st["t"], mean=mean, chol=chol, rng=rng, order=order,
                          constrained=constrained)
        else:
            y = init_gaussian(E, P, d, rng=rng, constrained=constrained)
        del order

        def on_step(info, _E=E, _P=P, _done=done):
            i = info["i"]
            if cf:
                me, ce = moments(info["z"], *_cfdm_moments(model, info["t"] + info["h"]))
            else:  # from the state: the step's positions are not made until the score is freed
                me, ce = moments_y(info["x"], chol, cov)
            mean_err[i] = max(mean_err[i], float(me.max()))
            cov_err[i] = max(cov_err[i], float(ce.max()))
            s = info["score"]
            s2 = s.reshape(-1, d)  # row norms without a squared copy of the batch (5 MB at d = 64)
            score_norm[i] += float(np.sqrt(np.einsum("ij,ij->i", s2, s2)).sum())
            if callback is not None:
                callback(info)
            if progress is not None:
                progress(_done, len(sizes), i + 1, steps)

        if cf:
            y = sample_cfdm(score, y, sched, rng=rng, sigma=st["sigma"], callback=on_step)
        else:  # the Langevin samplers make a new z each step and need it no more once its score is taken
            y = run(functools.partial(score, overwrite_z=True), y, sched, mean=mean, chol=chol, rng=rng,
                    integrator=integrator, callback=on_step, **knobs)
        y = (y if cf else to_z(y, mean, chol)).reshape(-1, d)
        if out is not None:
            out[filled : filled + len(y)] = y
            samples = out
            filled += len(y)
        elif len(batches) == 1:
            samples = y
        else:  # filled batch by batch: no list of results and their concatenation (2 N d floats)
            if samples is None:
                samples = np.empty((st["n"], d))
            samples[filled : filled + len(y)] = y
            filled += len(y)
        del y
        done += E
        if progress is not None:
            progress(done, len(sizes), steps, steps)
    wall = time.perf_counter() - t0
    diagnostics = {
        "wall_time": wall,
        "score_evals": int(score.n_evals),
        "particle_steps_per_s": st["n"] * steps / wall if wall > 0 else float("inf"),
        "ensembles": len(sizes),
        "ensemble_sizes": sorted(set(sizes)),
        "mean_error": mean_err.tolist(),
        "cov_error": cov_err.tolist(),
        "score_norm": (score_norm / st["n"]).tolist(),
    }
    if score.tracker is not None:  # rows re-ranked from the pool vs answered by full queries
        diagnostics["tracked_rows"] = int(score.tracker.n_tracked)
        diagnostics["full_query_rows"] = int(score.tracker.n_full)
    st["index"] = model.index_kind_
    st["random_state"] = random_state
    return SampleResult(samples, st, diagnostics)
