r"""The driver: N samples from a fitted model by ensembles, shards and batches, with diagnostics.

N samples are split into :math:`E=\lceil N/P\rceil` ensembles whose sizes differ
by at most one, each held at the target moments exactly.  Ensembles of one
size are stepped together in batches, so one neighbour query serves a whole
batch while peak memory stays bounded (measured against this bound in
``benchmarks/large_runs.py memory``; it holds with 11–27 % to spare):

.. math::

    \text{peak memory} \le R_0 + 8\,n\,(d + a) + 4\,n\,k_g + W + 8\,B\,c_B + 8\,N d \ \text{bytes},
    \qquad c_B = \begin{cases} 6\,d & \text{grid search } (d \le 3)\\
                 6\,d + c + d/2 & \text{tracked pool}\\
                 \max\big(16\,d,\ (3M+8)\,d + 2M(K+L)\big) & \text{index search}\\
                 (3M+8)\,d + M(K+L)(2d+4) & \text{index search, NumPy backend} \end{cases}

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
      draws and their (M B, K + L) neighbour indices and distances; on the NumPy backend also the candidates'
      rows and their differences from the queries, (M B, K + L, d) each, and the logits and weights,
    * :math:`M, K, L` the draws, neighbours and remainder points per score evaluation,
    * :math:`N` the number of samples (filled batch by batch; one batch is returned as it is; 0 when
      they go to ``out``, e.g. streamed to a file by :class:`mmsold_cli.io.arrays.PointWriter` as ``mmsold
      sample`` does for .npy and text outputs).

:func:`memory_estimate` evaluates it.  Memory therefore grows with N only by
8 bytes per coordinate: ``sample -n 1000000`` in 3-D needs 24 MB for the samples.

Shards: the ensembles are numbered in the run; ``sample(model, n, shard=(a, b))``
draws ensembles a … b − 1 only, the rows :math:`r_a \dots r_b - 1` of the whole
run.  Every random number comes from streams derived from the seed and the
ensemble index or row (:mod:`mmsold_cli.rng.streams`), so the same seed gives
the same bytes whatever the batch size and however the ensembles are split into
shards (the unit a cluster worker runs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ._threads import serial_blas
from .config import SampleConfig
from .defaults import FLAT, SUPPORT_ABOVE
from .errors import MmsoldError
from .validation import check_seed

__all__ = ["sample", "run_kernel", "SampleResult", "SampleConfig", "ensemble_sizes", "ensemble_layout", "resolve_settings",
           "memory_estimate", "target_moments", "support_factor"]


@dataclass
class SampleResult:
    """Samples and what happened while drawing them.

    Attributes
    ----------
    samples : array of shape (rows, d)
        Every sample of the run, or the shard's rows.
    settings : dict
        Every resolved setting (defaults filled in), the seed and the shard.
    diagnostics : dict
        ``wall_time`` (s), ``score_evals``, per-step ``mean_error`` and
        ``cov_error`` (worst ensemble, relative), ``score_norm`` (mean).
    """

    samples: np.ndarray
    settings: dict
    diagnostics: dict = field(default_factory=dict)


def ensemble_sizes(n: int, P: int, d: int) -> list[int]:
    """Split n samples into ensembles of size ≤ P, sizes differing by at most one, each > d (larger first)."""
    E = -(-n // P)
    while E > 1 and n // E <= d:
        E -= 1
    base, extra = divmod(n, E)
    return [base + 1] * extra + [base] * (E - extra)


def ensemble_layout(n: int, P: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Ensemble sizes (E,) and row offsets (E + 1,): ensemble e holds rows ``offsets[e] … offsets[e + 1] − 1``."""
    sizes = np.asarray(ensemble_sizes(n, P, d), dtype=np.int64)
    return sizes, np.concatenate([[0], np.cumsum(sizes)])


def _batches(sizes, first: int, stop: int, batch_size: int) -> list[tuple[int, int]]:
    """Ensemble ranges [a, b) of one size and about batch_size particles, covering first … stop − 1 in order."""
    out = []
    a = first
    while a < stop:
        size = int(sizes[a])
        b = a + 1
        per = max(1, batch_size // size)
        while b < stop and sizes[b] == size and b - a < per:
            b += 1
        out.append((a, b))
        a = b
    return out


def resolve_settings(model, n, **options) -> dict:
    """The resolved settings of ``sample(model, n, **options)`` as a dict (:meth:`SampleConfig.resolve`)."""
    return SampleConfig.resolve(model, n, **options).as_dict()


def support_factor(cov: np.ndarray) -> np.ndarray:
    r"""A factor :math:`L \in \mathbb R^{d\times r}` of a singular covariance over its support.

    .. math:: \Sigma_r = U_r \Lambda_r U_r^\top = L L^\top, \qquad L = U_r \Lambda_r^{1/2}

    with :math:`\Lambda_r` the eigenvalues above ``FLAT`` × :math:`\lambda_{\max}` (the flatness test of
    :func:`mmsold_cli.model._cholesky`) and :math:`U_r` their eigenvectors.  Ensembles
    :math:`Z = \mathbf 1\mu^\top + Y L^\top` with :math:`Y` on the (P, r) manifold have covariance
    :math:`\Sigma_r` exactly and no spread at all across the support: a constant pixel stays constant.
    """
    lam, U = np.linalg.eigh(cov)
    keep = lam > FLAT * lam[-1]
    L = U[:, keep] * np.sqrt(lam[keep])
    L[~np.any(cov, axis=1)] = 0.0  # a constant column: its eigenvectors' rounding would give it ~1e-11 spread
    return L


def target_moments(model, *, target_cov: str = "data", t: float = 0.0):
    """The moments every ensemble of ``sample(model, …)`` is held at: a :class:`~mmsold_cli.samplers.Target`.

    ``target_cov="data"``: the data's covariance; a singular one is jittered (``model.cholesky_``) up to
    :data:`SUPPORT_ABOVE` dimensions and held on its support above (:func:`support_factor`).
    ``"blurred"``: the data's plus t² I.
    """
    from .samplers import Target

    d = model.d_
    if target_cov == "blurred":
        cov = model.covariance_ + (t ** 2 + model.jitter_) * np.eye(d)
        return Target(model.mean_, cov, np.linalg.cholesky(cov))
    if model.jitter_ > 0 and d > SUPPORT_ABOVE:
        L = model.__dict__.get("_support_factor")
        if L is None:  # a property of the training set: one eigendecomposition per model
            L = model.__dict__["_support_factor"] = support_factor(model.covariance_)
        return Target(model.mean_, L @ L.T, L)
    return Target(model.mean_, model.covariance_ + model.jitter_ * np.eye(d), model.cholesky_)


def _schedule(cfg, target, schedule):
    """(schedule, capped): σ-CFDM's time grid (capped None), or the Langevin one capped at explicit Euler's
    stable step (capped: whether the cap shortened any step)."""
    from .samplers import schedules

    if cfg.sampler == "cfdm":
        if schedule is not None:
            raise MmsoldError("schedule applies to the Langevin samplers (mmsold, sold); σ-CFDM has its own time grid "
                              "(start_time, steps)")
        return schedules.cfdm(cfg.steps, cfg.start_time), None
    if schedule is not None and not callable(schedule):
        raise MmsoldError(f"schedule must be callable (steps, t, sigma, eta, lam_max) -> Schedule, got {schedule!r}")
    lam_max = float(np.linalg.eigvalsh(target.cov)[-1])
    sched = (schedule or schedules.constant)(steps=cfg.steps, t=cfg.t, sigma=cfg.sigma, eta=cfg.eta, lam_max=lam_max)
    capped = schedules.euler_stable(sched, lam_max)  # the drift's stiffness is λmax/t² whatever σ is
    return capped, bool(np.any(capped.h < sched.h))


def _starts(X, cfg, law, stream, a: int, b: int, P: int, mixture, order) -> np.ndarray:
    """The start positions of ensembles a … b − 1, each from its own generator: array (b − a, P, d).

    ``mixture``: the run's start mixture (``moments``, ``gmm``), fitted once; ``order``: the training
    points' spatial order (``data``: every ensemble a stratified sample of them).
    """
    from .samplers.inits import mixture_sample, noised_sample

    d = X.shape[1]
    z = np.empty((b - a, P, d))
    for e in range(a, b):
        rng = stream.ensemble_rng(e)
        if cfg.init == "gaussian":  # the kernel's own standard normal
            if law.chol.ndim == 1:  # a diagonal factor
                np.multiply(rng.standard_normal((P, law.chol.shape[0])), law.chol, out=z[e - a])
            else:
                np.matmul(rng.standard_normal((P, law.chol.shape[1])), law.chol.T, out=z[e - a])
            z[e - a] += law.mean
        elif mixture is not None:
            z[e - a] = mixture_sample(mixture, P, rng)
        else:
            z[e - a] = noised_sample(X, law.a, law.s, P, rng, order)
    return z


def _check_shard(shard, E: int) -> tuple[int, int]:
    if shard is None:
        return 0, E
    try:
        first, stop = (int(v) for v in shard)
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shard)
    except (TypeError, ValueError):
        ok = False
    if not ok or not 0 <= first < stop <= E:
        raise MmsoldError(f"shard must be (first, stop) with 0 ≤ first < stop ≤ {E} ensembles, got {shard!r}")
    return first, stop


def run_kernel(kernel, score, state, schedule, stream, on_step=None):
    """Run a sampler kernel over a schedule from ``state`` (``kernel.init(start, target)``); the final state.

    The loop of one batch.  ``stream`` is the batch's :class:`~mmsold_cli.rng.streams.RunStream` (an int: a
    run of that seed from row 0); ``on_step(i, t, h, state, info)`` is called after each step.
    """
    from .rng.streams import RunStream

    if not isinstance(stream, RunStream):
        stream = RunStream(stream)
    for i, (t, h) in enumerate(zip(schedule.t, schedule.h)):
        state, info = kernel.step(state, score, t, h, stream.at(i))
        if on_step is not None:
            on_step(i, t, h, state, info)
        del info  # the score array goes before the next step makes positions
    return state


def make_score(model, cfg):
    """The smoothed score of a run's configuration (its candidate search built once)."""
    from .score import SmoothedScore

    return SmoothedScore(model.X_, model.index_, sigma=cfg.sigma, M=cfg.M, K=cfg.K, L=cfg.L, backend=cfg.backend,
                         search=cfg.search, graph=model.knn_idx_ if cfg.search in ("pool", "walk") else None,
                         sampler=cfg.sampler, owner=model)


def sample(model, n, *, random_state=None, shard=None, callback=None, progress=None, schedule=None, out=None,
           client=None, **options) -> SampleResult:
    """Draw n samples from a fitted :class:`~mmsold_cli.model.Model` (or one shard of them).

    Parameters
    ----------
    model : Model
    n : int
        Number of samples of the run.
    random_state : int or None
        Seed; the same seed and options give bit-identical samples, whatever ``batch_size`` and ``shard``.
    shard : (first, stop), optional
        Draw ensembles first … stop − 1 of the run only (``ensemble_layout(n, P, d)`` numbers them): the
        samples are then rows ``offsets[first] … offsets[stop] − 1`` of the whole run, bit for bit.
    callback : callable, optional
        Called after each step with a plain dict ``{i, t, h, x, z, score, ensembles}``: the state,
        the new positions, the score the step used (each of shape (E, P, d), overwritten by later steps:
        copy them to keep them) and the batch's ensemble range.
    progress : callable, optional
        ``progress(ensembles_done, ensembles_total, step, steps)`` after each step.
    schedule : callable, optional
        ``schedule(steps, t, sigma, eta, lam_max) -> Schedule`` replacing the constant one of the Langevin
        samplers, e.g. ``functools.partial(schedules.anneal, t_end=..., n_anneal=...)``.
    out : array-like of shape (rows, d), optional
        Where the samples go, batch by batch in row order (``out[a:b] = batch``): an array, a memory map,
        or an :class:`mmsold_cli.io.PointWriter` that streams them to a file.  The result's ``samples``
        is then ``out``.
    client : distributed.Client, optional
        Run on this Dask cluster, one task per shard of rows
        (:func:`mmsold_cli.distributed.sample_distributed`): the same bytes as here for the same seed
        (a seed is drawn and reported when None); ``progress(shards_done, shards_total)`` then counts shards.
        Not with ``shard``, ``callback`` or ``schedule``.
    **options
        See :data:`mmsold_cli.config.CONSTRAINTS`: sampler ("mmsold" | "sold" | "cfdm"), steps, eta, t,
        sigma, M, K, L, P, integrator ("lm" | "em" | "ams" | "ams-tc"; cfdm: Euler only), init ("data" |
        "gaussian" | "moments" | "gmm"), target_cov ("data" | "blurred"), batch_size, backend ("numba" |
        "numpy"), start_time (cfdm's T in (0, 1)), search ("auto" | "all" | "index" | "grid" | "grid-knn"
        | "pool" | "walk").

    Returns
    -------
    SampleResult
    """
    if out is not None and getattr(out, "dtype", np.dtype(np.float64)).kind != "f":
        raise MmsoldError(f"out must hold floats (the samples would be truncated), got dtype {out.dtype}")
    for name, f in (("callback", callback), ("progress", progress)):
        if f is not None and not callable(f):
            raise MmsoldError(f"{name} must be callable, got {f!r}")
    if client is not None:
        if shard is not None or callback is not None or schedule is not None:
            raise MmsoldError("sample on a cluster (client=) takes no shard, callback or schedule")
        from .distributed.sample import sample_distributed

        return sample_distributed(model, n, client=client, random_state=random_state, out=out, progress=progress,
                                  **options)
    from .backend import get_backend
    from .rng.streams import MIXTURE, RunStream, new_entropy
    from .samplers import SAMPLERS
    from .samplers.inits import fit_gmm, moments_gaussian, spatial_order

    if not hasattr(model, "X_"):
        raise MmsoldError("model is not fitted")
    random_state = check_seed(random_state)
    cfg = SampleConfig.resolve(model, n, **options)
    d = model.d_
    sizes, offsets = ensemble_layout(cfg.n, cfg.P, d)
    first, stop = _check_shard(shard, len(sizes))
    rows = int(offsets[stop] - offsets[first])
    if out is not None and tuple(getattr(out, "shape", ())) != (rows, d):
        raise MmsoldError(f"out must have shape {(rows, d)}, got {getattr(out, 'shape', type(out).__name__)}")
    entropy = new_entropy() if random_state is None else int(random_state)
    backend = get_backend(cfg.backend, d)
    kernel = SAMPLERS[cfg.sampler].from_config(cfg, backend)
    target = target_moments(model, target_cov=cfg.target_cov, t=cfg.t)
    sched, capped = _schedule(cfg, target, schedule)
    space, view = model, None
    if target.chol.shape[1] < d and cfg.sampler in ("mmsold", "sold") and cfg.search in ("walk", "all"):
        from .support import support_view  # held on a support: run in its coordinates (mmsold_cli.support)

        space = view = support_view(model, target.chol)
        target = view.target()
    law = kernel.start_law(target)
    score = make_score(space, cfg)
    run = RunStream(entropy)
    mixture = None  # the start mixture, fitted once for the run
    if cfg.init == "gmm":
        mixture = fit_gmm(space.X_, law.a, law.s, rng=run.run_rng(MIXTURE))
    elif cfg.init == "moments":
        mixture = moments_gaussian(space.X_, law.a, law.s)
    order = None
    if cfg.init == "data":  # a property of the training set: made once per model
        order = model.__dict__.get("_spatial_order")
        if order is None:
            order = model.__dict__["_spatial_order"] = spatial_order(model.X_)
    steps = cfg.steps
    mean_err, cov_err, score_norm = np.zeros(steps), np.zeros(steps), np.zeros(steps)
    samples = out if out is not None else None
    n_ens = stop - first
    t0 = time.perf_counter()
    for a, b in _batches(sizes, first, stop, cfg.batch_size):
        P = int(sizes[a])
        stream = RunStream(entropy, int(offsets[a]), kernel=cfg.backend == "numba")
        score.new_particles()
        def on_step(i, t, h, state, info, _a=a, _b=b):
            me, ce = (kernel.moment_error(state, t, h) if hasattr(kernel, "moment_error")
                      else backend.moment_error(kernel.positions(state), target.mean, target.cov))
            mean_err[i] = max(mean_err[i], float(np.max(me)))
            cov_err[i] = max(cov_err[i], float(np.max(ce)))
            s2 = info.score.reshape(-1, info.score.shape[-1])  # row norms without a squared copy of the batch
            score_norm[i] += float(np.sqrt(np.einsum("ij,ij->i", s2, s2)).sum())
            if callback is not None:
                z = kernel.positions(state)
                x = getattr(state, "y", z)
                score_i = info.score
                if view is not None:  # the user sees data coordinates
                    z, score_i = view.to_data(z), score_i @ view.basis_.T
                callback({"i": i, "t": t, "h": h, "x": x, "z": z, "score": score_i, "ensembles": (_a, _b)})
            if progress is not None:
                progress(_a - first, n_ens, i + 1, steps)

        # BLAS on one thread: its spinning workers would slow the score kernels' threads, and its rounding depends
        # on its thread count (the start's retraction included)
        with serial_blas(d):
            state = kernel.init(_starts(space.X_, cfg, law, stream, a, b, P, mixture, order), target)
            state = run_kernel(kernel, score, state, sched, stream, on_step)
            z = kernel.positions(state).reshape(-1, space.d_)
        if view is not None:
            z = view.to_data(z)
        del state
        r0, r1 = int(offsets[a] - offsets[first]), int(offsets[b] - offsets[first])
        if samples is None:
            # a run of one batch returns its array; more are filled batch by batch (no list to concatenate)
            samples = z if r1 - r0 == rows else np.empty((rows, d))
        if samples is not z:
            samples[r0:r1] = z
        del z
        if progress is not None:
            progress(b - first, n_ens, steps, steps)
    wall = time.perf_counter() - t0
    diagnostics = {
        "wall_time": wall,
        "score_evals": int(score.n_evals),
        "particle_steps_per_s": rows * steps / wall if wall > 0 else float("inf"),
        "ensembles": n_ens,
        "ensemble_sizes": sorted({int(s) for s in sizes[first:stop]}),
        "mean_error": mean_err.tolist(),
        "cov_error": cov_err.tolist(),
        "score_norm": (score_norm / rows).tolist(),
    }
    tracker = getattr(score.strategy, "tracker", None)
    if hasattr(tracker, "n_full"):  # rows re-ranked from the pool vs answered by full queries
        diagnostics["tracked_rows"] = int(tracker.n_tracked)
        diagnostics["full_query_rows"] = int(tracker.n_full)
    elif hasattr(tracker, "n_first"):  # rows walked on vs given first beams (from anchors)
        diagnostics["walked_rows"] = int(tracker.n_walked)
        diagnostics["first_beam_rows"] = int(tracker.n_first)
    settings = cfg.as_dict()
    if capped is not None:
        settings["step_capped"] = capped
    settings.update(index=model.index_kind_, random_state=random_state, shard=[first, stop],
                    ensembles_total=len(sizes))
    return SampleResult(samples, settings, diagnostics)


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
    from .defaults import GRAPH_K, POOL_FACTOR

    cfg = SampleConfig.resolve(model, n, **options)
    n_train, d = model.X_.shape
    sizes, _ = ensemble_layout(cfg.n, cfg.P, d)
    B = max(int(sizes[b - 1]) * (b - a) for a, b in _batches(sizes, 0, len(sizes), cfg.batch_size))
    grid = cfg.search in ("grid", "grid-knn")
    if grid:
        c_B, a, k_g = 6 * d, d + 6, 0
    elif cfg.search == "walk":  # beams (int32) and flags per particle; the k-NN graph, the walk graph and the
        # float32 copy of the training points the kernel reads
        c_B, a, k_g = 6 * d + 5 * POOL_FACTOR * cfg.K / 8, 2.5 * d + 3, 3 * GRAPH_K
    elif cfg.search == "pool":
        c_B, a, k_g = 6 * d + POOL_FACTOR * cfg.K + d / 2, 2 * d + 2, GRAPH_K
    elif cfg.backend == "numpy":  # barycentre_candidates gathers the rows: X[idx] and X[idx] − q, then the weights
        c_B, a, k_g = (3 * cfg.M + 8) * d + cfg.M * (cfg.K + cfg.L) * (2 * d + 4), 2 * d + 2, 0
    else:
        c_B, a, k_g = max(16 * d, (3 * cfg.M + 8) * d + 2 * cfg.M * (cfg.K + cfg.L)), 2 * d + 2, 0
    if model.index_kind_ == "nndescent":
        k_g = 6 * GRAPH_K
    work = 16 * 2**20 if model.index_kind_ == "brute" and not grid else 0
    held = 0 if out is not None else 8 * cfg.n * d
    return int(200 * 2**20 + 8 * n_train * (d + a) + 4 * n_train * k_g + work + 8 * B * c_B + held)
