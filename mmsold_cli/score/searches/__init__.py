"""Candidate-search strategies of the smoothed score, by name, and the one rule that resolves ``auto``.

A new search is one module here with a :class:`~.base.Search` subclass and one
entry in :data:`SEARCHES` (and, if it should ever be chosen by itself, a line
in :func:`resolve_search`).
"""

from __future__ import annotations

from .base import Search, antithetic_draws, antithetic_normals, draw_counts

__all__ = ["SEARCHES", "GRID_MAX_DIM", "WALK_MAX_POINTS", "Search", "resolve_search", "make_search", "antithetic_draws",
           "antithetic_normals", "draw_counts"]

#: Highest dimension of the cell-grid searches.
GRID_MAX_DIM = 3

#: Largest training set ``auto`` gives the walk search.  On the 1,000,000 × 64 mixture of
#: benchmarks/latent_scale.py the walk (40 wide) keeps 99.8 % of the 16 nearest at 6 × the pool's speed.
#: (Before MM-SOLD's step was capped its particles swung across the data each step and even a 64-wide
#: walk kept only 97.7 % there.)  Larger sets are not measured and keep the pool.
WALK_MAX_POINTS = 1_000_000

#: Search names and what each needs: ("numba" only, L = 0 only, d ≤ GRID_MAX_DIM only).
SEARCHES = {
    "all": (False, False, False),
    "index": (False, False, False),
    "grid": (True, True, True),
    "grid-knn": (True, True, True),
    "pool": (False, True, False),
    "walk": (False, True, False),
}


def resolve_search(search: str, *, n: int, d: int, sampler: str, K: int, L: int, backend: str) -> str:
    """The search ``search`` names, ``"auto"`` resolved, checked against (n, d, sampler, K, L, backend).

    ``auto``:
      * ``all`` when K ≥ n (every point is a neighbour: the exact score);
      * ``grid`` for d ≤ 3 with the numba backend and L = 0 (a certified superset of the K nearest,
        shared by a particle's draws);
      * ``walk`` for the Langevin samplers above 3-D with the numba backend and L = 0 and at most
        WALK_MAX_POINTS training points (particles move a fraction of their neighbourhood per step, so
        walking last step's neighbours along the training k-NN graph replaces a search over all n points;
        above WIDE_WALK_ABOVE points the walk is wider, :func:`~mmsold_cli.defaults.walk_width`);
      * ``pool`` for them above WALK_MAX_POINTS (where the walk falls behind: its stale rows are queried
        afresh);
      * ``index`` otherwise (σ-CFDM's queries z/t sweep from noise to data, so it keeps the index; a score
        used on its own, ``sampler=None``, has no particles to track).  For σ-CFDM the sample driver's
        configuration then measures on the model whether a particle's draws share their neighbours and, where
        they do, walks instead (:func:`mmsold_cli.samplers.cfdm.auto_search`).
    """
    from ...errors import MmsoldError

    if search != "auto" and search not in SEARCHES:
        raise MmsoldError(f"search must be one of auto, {', '.join(SEARCHES)}, got {search!r}")
    if K >= n:
        return "all"
    if search == "auto":
        if backend == "numba" and L == 0 and d <= GRID_MAX_DIM:
            return "grid"
        if backend == "numba" and L == 0 and sampler not in (None, "cfdm"):
            return "walk" if n <= WALK_MAX_POINTS else "pool"
        return "index"
    numba_only, no_remainder, low_dim = SEARCHES[search]
    if low_dim and d > GRID_MAX_DIM:
        raise MmsoldError(f"search {search!r} needs dimension ≤ {GRID_MAX_DIM}, got {d}")
    if numba_only and backend != "numba":
        raise MmsoldError(f"search {search!r} needs the numba backend, got {backend!r}")
    if no_remainder and L > 0:
        raise MmsoldError(f"search {search!r} takes no remainder points (L = 0), got L = {L}")
    return search


def make_search(name: str, X, *, index=None, graph=None, K: int, L: int = 0, sigma: float = 0.0,
                backend: str = "numba", pool: int | None = None, owner=None, sampler: str | None = None) -> Search:
    """The search ``name`` (resolved) over the training points X for ``sampler``'s particles (σ-CFDM's walks
    take their first beams from ``index``)."""
    if name == "all":
        from .all import AllPoints

        return AllPoints(X)
    if name == "index":
        from .index import IndexSearch

        return IndexSearch(X, index, K, L, backend)
    if name in ("grid", "grid-knn"):
        from .grid import GridSearch

        return GridSearch(X, K, sigma, exact_k=name == "grid-knn", owner=owner)
    if name == "walk":
        from .walk import WalkSearch, rows_of, walk_graph_of

        return WalkSearch(X, walk_graph_of(owner, graph), K, pool, backend,
                          rows=rows_of(owner, X) if backend == "numba" else None,
                          first=index if sampler == "cfdm" else None)
    if name == "pool":
        from .pool import PoolSearch

        return PoolSearch(X, graph, index, K, pool, backend)
    raise ValueError(f"unknown search {name!r}")
