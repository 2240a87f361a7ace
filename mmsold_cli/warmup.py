"""Compile every numba kernel of the package into the on-disk cache, e.g. while building a container image.

A first ``mmsold sample`` on a fresh machine spends most of its time compiling; after
:func:`warm_up` (``mmsold warm-up``) every process loads the kernels from the cache
(:func:`mmsold_cli._numba.numba_cache_dir`, ``NUMBA_CACHE_DIR``).  Each kernel is reached
through its public wrapper on a tiny input of the types the library passes, so the
cache holds exactly the specialisations a run asks for (the int32 neighbour pools the
library builds below 2³¹ training points).
"""

from __future__ import annotations

import time

import numpy as np

_KERNEL_MODULES = (
    "mmsold_cli._fastexp",
    "mmsold_cli.rng.normals_numba",
    "mmsold_cli.neighbors.grid_numba",
    "mmsold_cli.neighbors.brute_numba",
    "mmsold_cli.neighbors.tracking_numba",
    "mmsold_cli.neighbors.walk_numba",
    "mmsold_cli.score.smoothed_numba",
    "mmsold_cli.workflows.mls_numba",
    "mmsold_cli.workflows.tiles_numba",
    "mmsold_cli.samplers.stiefel_numba",
    "mmsold_cli.samplers.inits_numba",
    "mmsold_cli.density.tilted_numba",
    "mmsold_cli.metrics.uniformity_numba",
    "mmsold_cli.metrics.sliced_numba",
)


def _dispatchers():
    import importlib

    from numba.core.registry import CPUDispatcher

    seen = {}
    for name in _KERNEL_MODULES:
        for obj in vars(importlib.import_module(name)).values():
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == name:
                seen[id(obj)] = obj
    return list(seen.values())


def _calls():
    """(label, thunk) pairs that reach every kernel through its wrapper, on tiny inputs."""
    from . import _fastexp
    from .density import tilted_numba
    from .metrics import sliced_numba, uniformity_numba
    from .neighbors import brute_numba, grid_numba, tracking_numba, walk_numba
    from .neighbors.indexes import GridIndex
    from .rng import normals_numba
    from .samplers import inits_numba, stiefel, stiefel_numba
    from .score import smoothed_numba
    from .workflows import mls_numba, tiles_numba

    rng = np.random.default_rng(0)
    key, prev = np.array([1, 2], dtype=np.uint64), np.array([3, 4], dtype=np.uint64)
    X2, X3 = rng.standard_normal((64, 2)), rng.standard_normal((64, 3))
    grid = GridIndex(X2, k=4)
    Z = X2[:16] + 0.01
    pool = np.argsort(((Z[:, None] - X2[None]) ** 2).sum(-1), axis=1)[:, :8].astype(np.int32)
    graph = np.argsort(((X2[:, None] - X2[None]) ** 2).sum(-1), axis=1)[:, 1:5].astype(np.int32)
    G = rng.standard_normal((2, 16, 2))
    Y = stiefel.uniform(2, 8, 3, rng)
    S = rng.standard_normal(Y.shape)
    L = np.eye(3)
    X16 = rng.standard_normal((64, 16))
    return [
        ("exp", lambda: (_fastexp.exp_nonpos_array(-np.ones(4)), _fastexp.exp32_array(-np.ones(4)))),
        ("normals", lambda: (normals_numba.fill(key, np.empty(8)), normals_numba.fill_mean(key, prev, np.empty(8)))),
        ("grid-knn", lambda: grid_numba.grid_knn(grid, Z, 4)),
        ("grid-bary exact", lambda: grid_numba.grid_bary_mean(grid, Z, G, 4, 0.1, True)),
        ("grid-bary block", lambda: grid_numba.grid_bary_mean(grid, Z, None, 4, 0.1, False, sigma=0.05, n_pairs=1,
                                                              key=key, n_normals=2, score=True)),
        ("brute top-k", lambda: brute_numba.topk_rows(rng.random((4, 32)), np.zeros(4), 3)),
        ("screened k-NN", lambda: brute_numba.screened_knn(X16, None, np.einsum("ij,ij->i", X16, X16), X16[:4], 3)),
        ("candidate distances", lambda: brute_numba.candidate_sqdist(X16, X16[:4], np.zeros((4, 3), np.int64))),
        ("tracking", lambda: tracking_numba.track(X2, graph, Z, pool, 8, distances=False)),
        # the walk search, latent sets' default: first beams walked over the float64 points, the fused score
        # kernel over their float32 copy (mmsold_cli.score.searches.walk.rows_of)
        ("walk graph", lambda: walk_numba.reverse_edges(graph, np.ones(graph.shape), 4)),  # the model's int32 graph
        ("walk", lambda: walk_numba.walk(X2, graph, Z, pool.copy(), width=2, max_expand=2, renew=1)),
        ("walk barycentre", lambda: smoothed_numba.walk_barycentre_mean(
            X2.astype(np.float32), graph, Z, pool.copy(), 0.1, width=2, max_expand=2, renew=1, sigma=0.05,
            n_pairs=1, key=key, n_normals=1, score=True)),
        ("barycentre", lambda: smoothed_numba.barycentre_mean(X2, G, np.broadcast_to(pool, (2,) + pool.shape)
                                                              .astype(np.int64), 0.1)),
        ("pool barycentre", lambda: smoothed_numba.pool_barycentre_mean(X2, Z, None, pool, 0.1, sigma=0.05,
                                                                        n_pairs=1, key=key, n_normals=2)),
        ("spatial order", lambda: inits_numba.leaf_order(X3, 4)),  # the stratified start's, once per model
        ("manifold step", lambda: stiefel_numba.step(Y, 0.01 * S)),
        ("langevin step", lambda: stiefel_numba.langevin_step(Y.copy(), S, 0.01, L, key, prev, lm=True)),
        ("moments", lambda: (stiefel_numba.moment_error(Y, np.zeros(3), L), stiefel_numba.to_z(Y, np.zeros(3), L))),
        ("grid 3-D", lambda: GridIndex(X3, k=4)),  # same kernel types in 3-D: nothing new to compile
        ("MLS fit", lambda: mls_numba.mls_once_numba(X3[:8], X3, np.tile(np.arange(8), (8, 1)),
                                                     np.ones((8, 8)), 1.0)),
        ("tile boxes", lambda: tiles_numba.inside_box(X3, np.full(3, -np.inf), np.zeros(3))),
        ("density", lambda: tilted_numba.logsumexp_logits(X16 @ X16.T, np.ones(64), np.ones(64), 1.0)),
        ("uniformity", lambda: uniformity_numba.farthest_points(X3, 4)),  # evaluate's, for 3-D clouds
        ("sliced W2", lambda: sliced_numba.quantile_sq(np.sort(X3.T, axis=1), np.sort(X3.T, axis=1))),
    ]


def warm_up(progress=None) -> dict:
    """Compile (or load from the cache) every kernel; returns what was done.

    Parameters
    ----------
    progress : callable ``(label) -> None``, optional
        Told the name of each group of kernels before it is compiled.

    Returns
    -------
    dict with ``kernels`` (kernel specialisations now in the cache), ``compiled`` (of those, compiled by this
    call; the others were loaded from the cache), ``seconds`` and ``cache_dir``.
    """
    from ._numba import import_numba, numba_cache_dir

    t0 = time.perf_counter()
    import_numba()
    for label, call in _calls():
        if progress is not None:
            progress(label)
        call()
    kernels = [d for d in _dispatchers() if d.overloads]
    return {
        "kernels": sum(len(d.overloads) for d in kernels),
        "compiled": sum(sum(d._cache_misses.values()) for d in kernels),
        "seconds": time.perf_counter() - t0,
        "cache_dir": numba_cache_dir(),
    }
