r"""Sampling on a Dask cluster: one task per shard of rows, the same bytes as one machine.

A run of n samples is cut into shards of ``C`` consecutive rows (the last one shorter); shard j holds
rows :math:`jC \dots \min(n, (j+1)C) - 1` and is one task.  The task draws the ensembles a … b − 1 that
cover its rows (``sample(model, n, shard=(a, b))``, which gives exactly rows
:math:`r_a \dots r_b - 1` of the whole run) and keeps its own rows.  An ensemble cut by a shard boundary
is therefore drawn by both neighbours — the same bytes twice, at most one ensemble of P rows per
boundary, a share :math:`\le P / C` of the work — and in exchange every shard is exactly one chunk of
the ``.zarr`` output, written by that task alone.

Shard size (:func:`shard_rows`), with :math:`o` the measured per-task overhead (s,
:func:`~mmsold_cli.distributed.client.measure_overhead`), :math:`r` the particle-steps per second of one
worker, :math:`s` the steps, :math:`W` the workers:

.. math::

    C = \max\Big(C_{\min},\ \min\big(32P,\ \lceil n / 4W \rceil\big)\Big), \qquad
    C_{\min} = \max\Big(P,\ \Big\lceil \frac{o}{\epsilon}\,\frac{r}{s} \Big\rceil,\ \Big\lceil\frac{n}{T}\Big\rceil\Big)

where
    * :math:`\epsilon` = ``OVERHEAD_SHARE`` (1 %): a task must run at least :math:`o/\epsilon`,
    * :math:`T` = ``MAX_TASKS`` (10,000): the scheduler handles thousands of tasks, not millions,
    * :math:`32P` keeps the re-drawn boundary ensembles under 1/32 of the work, and
      :math:`\lceil n / 4W\rceil` gives every worker about four shards to balance when that is larger.

Randomness depends on (seed, ensemble index) only (:mod:`mmsold_cli.rng.streams`), so neither W nor C
changes a byte.  The model goes to every worker once (``scatter(broadcast=True)``) and is rebuilt there
once per worker process (its index; as loading a model file does) — or, when the run's model file is on
a file system every worker sees, the workers read that file themselves (:func:`model_payload`).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import uuid

import numpy as np

from ..errors import MmsoldError
from ..validation import check_seed

__all__ = ["OVERHEAD_SHARE", "MAX_TASKS", "WORKER_RATE", "ModelPayload", "ModelFile", "model_payload", "shard_rows", "plan_shards",
           "sample_distributed", "merge_diagnostics"]

OVERHEAD_SHARE = 0.01
MAX_TASKS = 10_000
#: Particle-steps per second of one worker used by the shard rule when none is given (2-D/3-D grid
#: search, numba; benchmarks/dask_scaling.py measures it — 1.4–2.2 million on this machine's cores).
WORKER_RATE = 1.5e6


class ModelPayload:
    """What a worker needs to rebuild a fitted model: its arrays (no index object, no file handle).

    Pickled once per worker by ``scatter(broadcast=True)``; :meth:`model` builds the neighbour index
    once per worker process (a cache keyed by a token of this payload).
    """

    _FIELDS = ("X_", "mean_", "covariance_", "cholesky_", "jitter_", "kth_dist_", "spacing_", "sha256_",
               "index_kind_", "index", "extras_", "settings_")

    def __init__(self, model):
        self.token = uuid.uuid4().hex
        self.state = {k: getattr(model, k) for k in self._FIELDS if hasattr(model, k)}
        self.state["knn_idx_"] = np.asarray(model.knn_idx_)
        self.state["knn_sqdist_"] = np.asarray(model.knn_sqdist_)
        nn = model.__dict__.get("_nn_dist")
        self.state["nn_dist_"] = None if nn is None else np.asarray(nn)
        # an ivf index's lists travel with the points: no worker repeats the k-means or the assignment
        self.lists = model.index_.lists() if model.index_kind_ == "ivf" else None

    def model(self):
        cached = _MODELS.get(self.token)
        if cached is not None:
            return cached
        from ..model import Model
        from ..neighbors.indexes import build_index

        m = Model(index=self.state.get("index", "auto"))
        for k, v in self.state.items():
            setattr(m, k, v)
        m.grids_ = {}
        graph = m.knn_idx_ if m.index_kind_ == "nndescent" else None
        m.index_ = build_index(m.X_, m.index_kind_, graph=graph, lists=self.lists)
        _MODELS.clear()  # one model per worker at a time
        _MODELS[self.token] = m
        return m


_MODELS: dict = {}


class ModelFile:
    """A model file every worker reads itself (a shared file system): nothing of the model goes through the
    client, which matters for large training sets on many workers.  Loaded once per worker process."""

    def __init__(self, path, label=None):
        st = os.stat(path)
        self.path, self.label = os.path.abspath(path), label
        self.token = (self.path, st.st_size, st.st_mtime_ns, repr(label))

    def model(self):
        cached = _MODELS.get(self.token)
        if cached is not None:
            return cached
        from ..io.model_file import load_model

        m = load_model(self.path, label=self.label)
        _MODELS.clear()
        _MODELS[self.token] = m
        return m


def _sees(token) -> bool:
    """On a worker: whether the model file is there, with the client's size and modification time."""
    try:
        st = os.stat(token[0])
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == tuple(token[1:3])


def model_payload(client, model, model_path=None, label=None):
    """What the tasks get: the model file's path when every worker sees that very file, else the model's
    arrays sent to each worker once (``scatter(broadcast=True)``); a future, and how it was sent."""
    if model_path is not None:
        payload = ModelFile(model_path, label)
        if all(client.run(_sees, payload.token).values()):
            return client.scatter(payload, broadcast=True, hash=False), "path"
    return client.scatter(ModelPayload(model), broadcast=True, hash=False), "scatter"


def shard_rows(n: int, P: int, steps: int, *, workers: int, overhead: float, rate: float = WORKER_RATE,
               share: float = OVERHEAD_SHARE, max_tasks: int = MAX_TASKS) -> int:
    """Rows per shard by the module's rule (at least one ensemble, at most n)."""
    n, P, steps, workers = int(n), int(P), max(1, int(steps)), max(1, int(workers))
    c_min = max(P, math.ceil(max(0.0, overhead) / share * rate / steps), math.ceil(n / max_tasks))
    c = max(c_min, min(32 * P, math.ceil(n / (4 * workers))))
    return int(max(1, min(n, c)))


def plan_shards(n: int, rows: int) -> list[tuple[int, int]]:
    """Row ranges [r0, r1) of ``rows`` rows covering 0 … n − 1 in order."""
    rows = max(1, int(rows))
    return [(r0, min(int(n), r0 + rows)) for r0 in range(0, int(n), rows)]


def _ensembles_for(offsets, r0: int, r1: int) -> tuple[int, int]:
    """Ensembles a … b − 1 whose rows cover r0 … r1 − 1."""
    a = int(np.searchsorted(offsets, r0, side="right")) - 1
    b = int(np.searchsorted(offsets, r1, side="left"))
    return a, b


def _run_shard(payload, n: int, seed: int, r0: int, r1: int, options: dict, store=None, unwhiten: bool = False):
    """One task: rows r0 … r1 − 1 of the run (to ``store``, or returned) and the shard's diagnostics."""
    from ..sampling import ensemble_layout, resolve_settings, sample

    model = payload.model()
    P = resolve_settings(model, n, **options)["P"]
    _, offsets = ensemble_layout(n, P, model.d_)
    a, b = _ensembles_for(offsets, r0, r1)
    res = sample(model, n, random_state=seed, shard=(a, b), **options)
    X = res.samples[r0 - int(offsets[a]): r1 - int(offsets[a])]
    if unwhiten:  # a whitened model's samples mapped back (as ``mmsold sample`` writes them)
        from ..workflows import whiten as wh

        if wh.has_whitening(model):
            X = wh.unwhiten(X, wh.from_extras(model.extras_))
    diag = dict(res.diagnostics, rows=int(res.samples.shape[0]), shard_rows=[r0, r1], ensembles_drawn=[a, b])
    if store is not None:
        from .zarr_store import write_rows

        write_rows(store, r0, X)
        return None, diag
    return np.ascontiguousarray(X), diag


def merge_diagnostics(parts: list, *, wall: float, n: int, steps: int, duplicate_rows: int) -> dict:
    """The run's diagnostics from its shards': worst moment errors per step, summed counts, the mean score norm
    weighted by the rows each shard drew (an ensemble drawn twice counts twice, as it ran twice)."""
    rows = np.array([p["rows"] for p in parts], dtype=float)
    out = {
        "wall_time": wall,
        "score_evals": int(sum(p["score_evals"] for p in parts)),
        "particle_steps_per_s": n * steps / wall if wall > 0 else float("inf"),
        "ensembles": int(max(p["ensembles_drawn"][1] for p in parts) - min(p["ensembles_drawn"][0] for p in parts)),
        "ensemble_sizes": sorted({s for p in parts for s in p["ensemble_sizes"]}),
        "mean_error": np.max([p["mean_error"] for p in parts], axis=0).tolist(),
        "cov_error": np.max([p["cov_error"] for p in parts], axis=0).tolist(),
        "score_norm": (np.sum([np.asarray(p["score_norm"]) * r for p, r in zip(parts, rows)], axis=0)
                       / rows.sum()).tolist(),
        "shards": len(parts),
        "shard_wall_time_sum": float(sum(p["wall_time"] for p in parts)),
        "duplicate_rows": int(duplicate_rows),
    }
    for key in ("tracked_rows", "full_query_rows"):
        if all(key in p for p in parts):
            out[key] = int(sum(p[key] for p in parts))
    return out


def sample_distributed(model, n, *, client, random_state=None, out=None, store=None, rows_per_shard=None,
                       overhead=None, rate: float = WORKER_RATE, progress=None, unwhiten: bool = False, model_path=None,
                       label=None, **options):
    """:func:`mmsold_cli.sampling.sample` on a Dask cluster; a :class:`~mmsold_cli.sampling.SampleResult`.

    Parameters
    ----------
    model : Model
    n : int
    client : distributed.Client
    random_state : int or None
        The run's seed (None: one is drawn and reported in ``settings["random_state"]``).
    out : array-like of shape (n, d), optional
        Filled in row order as shards arrive (``out[r0:r1] = rows``), e.g. a
        :class:`~mmsold_cli.io.arrays.PointWriter`; the result's ``samples`` is ``out``.
    store : ZarrOutput, optional
        The workers write their shards (one chunk each) into its temporary store; nothing goes through
        the client and the result's ``samples`` is None.  Its chunk rows set the shard size.
    rows_per_shard : int, optional
        Shard size; default :func:`shard_rows` from ``overhead`` (measured when None) and ``rate``.
    progress : callable, optional
        ``progress(shards_done, shards_total)`` as shards complete.
    unwhiten : bool
        Map a whitened model's samples back on the workers (what ``mmsold sample`` writes).
    model_path, label : optional
        The file ``model`` was loaded from (and its class): if every worker sees that file (same size and
        modification time) the workers load it themselves; otherwise the model is sent to each worker.
    **options
        As for :func:`~mmsold_cli.sampling.sample`.
    """
    from distributed import as_completed

    from ..rng.streams import new_entropy
    from ..sampling import SampleResult, ensemble_layout, resolve_settings
    from .client import cluster_errors, measure_overhead

    if not hasattr(model, "X_"):
        raise MmsoldError("model is not fitted")
    random_state = check_seed(random_state)
    settings = resolve_settings(model, n, **options)
    n, d, P, steps = int(settings["n"]), model.d_, int(settings["P"]), int(settings["steps"])
    # the search as resolved here: σ-CFDM's auto is measured on the model (a pilot run), once, not on every worker
    options = {**options, "search": settings["search"]}
    seed = int(new_entropy() if random_state is None else random_state)
    where = getattr(client, "mmsold_where", "")
    if out is not None and tuple(getattr(out, "shape", ())) != (n, d):
        raise MmsoldError(f"out must have shape {(n, d)}, got {getattr(out, 'shape', type(out).__name__)}")
    futures = []
    with cluster_errors(where, client):
        workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
        if store is not None:
            rows = store.chunk_rows
        elif rows_per_shard is not None:
            rows = int(rows_per_shard)
        else:
            if overhead is None:
                overhead = measure_overhead(client)
            rows = shard_rows(n, P, steps, workers=workers, overhead=overhead, rate=rate)
        if rows < 1:
            raise MmsoldError(f"rows per shard must be at least 1, got {rows}")
        shards = plan_shards(n, rows)
        _, offsets = ensemble_layout(n, P, d)
        t0 = time.perf_counter()
        payload, sent = model_payload(client, model, model_path, label)
        target = None if store is None else str(store.tmp)
        try:
            futures = [client.submit(_run_shard, payload, n, seed, r0, r1, options, target, unwhiten, pure=False,
                                     key=f"mmsold-shard-{seed}-{i}-{uuid.uuid4().hex[:8]}")
                       for i, (r0, r1) in enumerate(shards)]
            index = {f.key: i for i, f in enumerate(futures)}
            parts: list = [None] * len(shards)
            pending: dict = {}
            samples = out
            if samples is None and store is None:
                samples = np.empty((n, d))
            next_row, done = 0, 0
            for fut in as_completed(futures):
                i = index[fut.key]
                X, diag = fut.result()
                parts[i] = diag
                futures[i] = None  # the worker may drop it
                done += 1
                if samples is not None:
                    pending[i] = X
                    while next_row < len(shards) and next_row in pending:  # in row order
                        r0, r1 = shards[next_row]
                        samples[r0:r1] = pending.pop(next_row)
                        next_row += 1
                if progress is not None:
                    progress(done, len(shards))
        finally:  # on an error, Ctrl-C or success alike: nothing of the run stays on the cluster
            with contextlib.suppress(Exception):
                client.cancel([f for f in futures if f is not None] + [payload])
        wall = time.perf_counter() - t0
    drawn = sum(int(offsets[p["ensembles_drawn"][1]] - offsets[p["ensembles_drawn"][0]]) for p in parts)
    diagnostics = merge_diagnostics(parts, wall=wall, n=n, steps=steps, duplicate_rows=drawn - n)
    diagnostics.update(workers=workers, rows_per_shard=rows, model_sent=sent)
    if overhead is not None:
        diagnostics["task_overhead_s"] = overhead
    settings.update(index=model.index_kind_, random_state=seed, shard=[0, len(offsets) - 1],
                    ensembles_total=len(offsets) - 1, dask=where or True)
    return SampleResult(samples, settings, diagnostics)
