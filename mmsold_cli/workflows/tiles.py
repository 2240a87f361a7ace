r"""Densifying large clouds tile by tile, with a halo, in cost linear in the input.

The cloud's bounding box is cut recursively at the median of its longest
axis until no tile holds more than ``tile_points`` input points (a k-d
partition: balanced counts whatever the density).  Each tile is then a plain
function of (cloud, core box, halo, seed, tile index), :func:`densify_tile`:

1. take the input points inside the core box grown by the halo
   :math:`\eta = c_\eta\,\delta_{\text{core}}` (:math:`\delta_{\text{core}}`:
   mean nearest-neighbour distance of the core's points, :math:`c_\eta` =
   ``HALO`` spacings);
2. fit and densify them on their own, drawing :math:`(1+s)\,f\,n_{\text{halo}} +
   4\sqrt{f\,n_{\text{halo}}}` points (:math:`f` the factor, :math:`s` a small surplus);
3. keep only the new points inside the core box (half-open,
   :math:`[\ell, u)`, so a point on a shared face belongs to exactly one
   tile), then exactly :math:`\operatorname{round}(f\,n_{\text{core}})` of
   them, chosen at random;
4. carry the attributes (and normals) from the halo-grown input.

Why the halo removes seams: near a core face, both the sampler's particles
(which move a few :math:`t = 1.5\,\delta`) and the MLS fit (kernel width
:math:`1.5\,\delta`, 24 neighbours) see the same input as they would without
the cut, as long as :math:`\eta` exceeds their reach; points generated in the
halo are discarded, so what is kept was made with full neighbourhoods.

With the even stage (``even=True``) the count follows the surface instead of the input: each point's
local spacing :math:`s_i` (mean distance to its 6 nearest) stands for an area :math:`\propto s_i^2`, the run's
:math:`\operatorname{round}(f\,n)` new points are shared among the tiles in proportion to their cores' areas,
and every tile fills up to the whole cloud's reference spacing (:func:`even_plan`).  Otherwise a sparsely
scanned tile would get f points per input point, as sparse as its input.

Each tile's seed is drawn from ``numpy.random.SeedSequence(seed,
spawn_key=(index,))``, so a tile's result depends on the run's seed and its
own index only — not on the order or the process the tiles run in.  The cost
is a sum over tiles of a bounded amount of work: linear in the input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import MmsoldError

__all__ = ["HALO", "TILE_POINTS", "SURPLUS", "BYTES_PER_POINT", "MEMORY_SHARE", "Tile", "EvenPlan",
           "auto_tile_points", "plan_tiles", "tile_counts", "even_plan", "decide_even", "tile_options", "iter_tiles",
           "densify_tile", "tile_seed", "oriented_normals"]

#: Halo width in spacings of the tile's core.
HALO = 5.0
#: Most input points per tile.
TILE_POINTS = 100_000
#: Extra share of points drawn, so the core still holds enough after the halo's are dropped; four standard
#: deviations of the count that lands in the core are drawn on top (a binomial count: at most √n).
SURPLUS = 0.02
#: Peak working memory of an untiled densify per point it handles (input plus drawn output), in bytes:
#: an upper bound on what the sampler's particles, the MLS blocks and the neighbour trees hold at once.
BYTES_PER_POINT = 1_500
#: Share of the available memory one tile may use.
MEMORY_SHARE = 0.25


def auto_tile_points(factor: float, *, memory: int | None = None, tile_points: int = TILE_POINTS) -> int:
    """Most input points per tile: ``tile_points``, fewer when a tile of that size would not fit in memory.

    A tile of m input points handles about ``m (1 + (1 + SURPLUS) factor)`` points at
    :data:`BYTES_PER_POINT` each; it may use :data:`MEMORY_SHARE` of ``memory`` (default: the memory
    available now).  A cloud is tiled when it is larger than the result.
    """
    from ..io.room import available_memory

    memory = available_memory() if memory is None else int(memory)
    per_input = BYTES_PER_POINT * (1.0 + (1.0 + SURPLUS) * float(factor))
    fit = int(MEMORY_SHARE * memory / per_input)
    return max(1_000, min(int(tile_points), fit))


@dataclass(frozen=True)
class Tile:
    """A core box ``[lo, hi)``, its index in the partition (depth-first order) and its input points."""

    index: int
    lo: tuple
    hi: tuple
    points: int | None = None


def plan_tiles(positions, tile_points: int = TILE_POINTS) -> list[Tile]:
    """Cut the bounding box at medians of the longest axis until each tile holds ≤ ``tile_points`` points.

    The outermost faces are pushed to ±inf so every point lies in exactly one
    core box.  Tiles are numbered depth-first (lower half first).
    """
    P = np.asarray(positions, dtype=np.float64)
    tile_points = int(tile_points)
    if tile_points < 100:
        raise MmsoldError(f"tile_points must be at least 100, got {tile_points}")
    tiles: list[Tile] = []

    def split(idx, lo, hi):
        if len(idx) <= tile_points:
            tiles.append(Tile(len(tiles), tuple(lo), tuple(hi), len(idx)))
            return
        sub = P[idx]
        ext = sub.max(axis=0) - sub.min(axis=0)
        ax = int(np.argmax(ext))
        cut = float(np.median(sub[:, ax]))
        left = sub[:, ax] < cut
        if left.all() or not left.any():  # all on one value: cannot cut further along this axis
            tiles.append(Tile(len(tiles), tuple(lo), tuple(hi), len(idx)))
            return
        hi_l, lo_r = list(hi), list(lo)
        hi_l[ax] = cut
        lo_r[ax] = cut
        split(idx[left], lo, hi_l)
        split(idx[~left], lo_r, hi)

    split(np.arange(len(P)), [-np.inf] * 3, [np.inf] * 3)
    return tiles


def tile_seed(seed, index: int) -> int:
    """A tile's seed from the run's seed and the tile's index only."""
    if seed is None:
        raise MmsoldError("tiled densify needs an integer seed so tiles are reproducible whatever their order")
    return int(np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(1, dtype=np.uint32)[0])


def _inside(P, lo, hi, pad=0.0):
    """Rows of P inside the box [lo − pad, hi + pad) (numba kernel; :func:`_inside_numpy` is its reference)."""
    from .tiles_numba import inside_box

    return inside_box(P, np.asarray(lo, dtype=np.float64) - pad, np.asarray(hi, dtype=np.float64) + pad)


def _inside_numpy(P, lo, hi, pad=0.0):
    lo = np.asarray(lo) - pad
    hi = np.asarray(hi) + pad
    return np.all((P >= lo) & (P < hi), axis=1)


@dataclass(frozen=True)
class EvenPlan:
    """An even-density tiled run's shares (:func:`even_plan`).

    Attributes
    ----------
    reference : float
        The spacing every tile fills up to.
    counts : tuple of int
        New points of each tile's core.
    grown : tuple of float
        Each tile's surface area with its halo over its core's: what the draw over the grown tile is sized by.
    share : float
        :func:`~mmsold_cli.workflows.densify.uneven_share` of the whole cloud (what ``even="auto"`` decides by).
    """

    reference: float
    counts: tuple
    grown: tuple
    share: float


def _core_spacing(C):
    """:func:`~mmsold_cli.metrics.surface.mean_spacing` of a tile core's points (0 for fewer than two)."""
    from ..metrics.surface import mean_spacing

    return mean_spacing(C) if len(C) >= 2 else 0.0


def _grown(P, tile, core, halo):
    """A tile's halo width η (``halo`` core spacings) and the indices of the points within η of its box."""
    eta = halo * _core_spacing(P[core])
    return eta, np.flatnonzero(_inside(P, tile.lo, tile.hi, pad=eta))


def _distinct_spacing(G):
    """G's distinct rows and each one's local spacing (mean distance to its 6 nearest others)."""
    from scipy.spatial import cKDTree

    from ..metrics.surface import distinct_rows
    from .densify import local_spacing

    if len(G) < 2:
        return G, np.zeros(len(G))
    d = cKDTree(G).query(G, k=min(7, len(G)), workers=-1)[0]
    if (d[:, 1] > 0).all():
        return G, d[:, 1:].mean(axis=1)
    G = distinct_rows(G)  # repeated points: measured again between distinct ones
    return G, local_spacing(G) if len(G) >= 2 else np.zeros(len(G))


def even_plan(positions, tiles, factor: float, *, halo: float = HALO) -> EvenPlan:
    """Reference spacing and per-tile counts of new points for an even-density tiled run (module docstring).

    Each distinct point's local spacing is measured among the distinct points of its tile's core grown by the
    halo, so points near a cut see their neighbours across it (a repeated point adds no surface).  The counts
    add up to ``round(factor × n)`` (largest remainders).
    """
    from .densify import spacing_reference, uneven_share

    P = np.asarray(positions, dtype=np.float64)
    core_s, core_area, grown_area = [], [], []
    for tile in tiles:
        _, idx = _grown(P, tile, _inside(P, tile.lo, tile.hi), halo)
        G, s = _distinct_spacing(P[idx])
        in_core = _inside(G, tile.lo, tile.hi)
        core_s.append(s[in_core])
        core_area.append(float(np.sum(s[in_core] ** 2)))  # a point's share of the surface: s²
        grown_area.append(float(np.sum(s**2)))
    core_area = np.array(core_area)
    counts = _largest_remainders(factor * len(P) * core_area / max(core_area.sum(), np.finfo(float).tiny))
    s = np.concatenate(core_s)
    reference = spacing_reference(s)
    return EvenPlan(reference, counts,
                    tuple(g / a if a > 0 else 1.0 for g, a in zip(grown_area, core_area)), uneven_share(s, reference))


def densify_tile(cloud, tile: Tile, *, factor: float, seed: int, halo: float = HALO, normals: bool = False,
                 drop_attributes=(), projected=None, n_out: int | None = None, grown_share: float | None = None,
                 input_normals=None, **densify_options):
    """Densify one tile (module docstring); returns ``(PointCloud of new core points, info dict)``.

    Parameters
    ----------
    cloud : PointCloud
        The whole input (only the tile's halo-grown box is read).
    tile : Tile
    factor : float
        New points per core input point.
    seed : int
        The run's seed; the tile's own is :func:`tile_seed` (seed, tile.index).
    halo : float
        Halo in spacings of the core's points.
    normals : bool, "up" or a position (x, y, z)
        Also estimate oriented normals (``nx, ny, nz``) for the new points, pointing out (True), up or towards
        the position (:func:`~mmsold_cli.workflows.normals.orientation`).
    input_normals : array of shape (len(cloud), 3), optional
        With ``normals``: the whole cloud's oriented normals (:func:`oriented_normals`), so that every tile's
        new points share one orientation; without them the tile orients its own, which may point the other
        way from a neighbouring tile's.
    drop_attributes : iterable of str
    projected : array of shape (len(cloud), 3), optional
        Filled, at the core's rows, with the core's input points moved onto
        the tile's MLS surface (:func:`~mmsold_cli.workflows.densify.project_on_support`).
    n_out : int, optional
        New points of the core (default ``round(factor × core points)``).
    grown_share : float, optional
        The halo-grown tile's surface over its core's (an even-density run, :attr:`EvenPlan.grown`); the draw
        over the grown tile is sized by it (default: by points, the grown tile's over the core's).
    **densify_options
        Passed to :func:`mmsold_cli.workflows.densify.densify`; ``even`` is True or False (default), decided
        for the whole cloud (:func:`decide_even`, :func:`tile_options`), never "auto" tile by tile.
    """
    from scipy.spatial import cKDTree

    from ..metrics.surface import distinct_rows
    from .attributes import transfer_attributes
    from .densify import densify, project_on_support

    densify_options.setdefault("even", False)
    if densify_options["even"] == "auto":
        raise ValueError("densify_tile: even='auto' must be decided for the whole cloud (tiles.decide_even)")
    P = cloud.positions
    core = _inside(P, tile.lo, tile.hi)
    n_core = int(core.sum())
    n_out = int(round(factor * n_core)) if n_out is None else int(n_out)
    info = dict(index=tile.index, core_points=n_core, output_points=n_out)
    if n_out == 0:  # an empty core (a tile of a degenerate cut): nothing to make, same attribute names
        attrs = {k: np.asarray(v)[:0] for k, v in cloud.attributes.items() if k not in set(drop_attributes)}
        if normals:
            attrs.update(nx=np.zeros(0), ny=np.zeros(0), nz=np.zeros(0))
        if projected is not None:  # nothing sampled here: a tiny factor on a small core; left as read
            projected[core] = P[core]
        return type(cloud)(np.zeros((0, 3)), attrs, cloud.fmt, cloud.meta), info
    eta, idx = _grown(P, tile, core, halo)
    if len(idx) < 7:
        raise MmsoldError(f"tile {tile.index} holds {len(idx)} points with its halo; at least 7 are needed "
                          "(raise tile_points)")
    sub = cloud.subset(idx)
    X = sub.positions
    rng = np.random.default_rng(tile_seed(seed, tile.index))
    # what lands in the core is a share of the draw over the grown tile: by points (the sampler follows the
    # input's density) or, in an even-density run, by area
    expect = n_out * (len(idx) / n_core if grown_share is None else grown_share)
    n_draw = int(np.ceil((1 + SURPLUS) * expect + 4.0 * np.sqrt(expect)))
    t0 = time.perf_counter()
    res = densify(X, n_draw, random_state=int(rng.integers(2**31)), **densify_options)
    keep = np.flatnonzero(_inside(res.points, tile.lo, tile.hi))
    if len(keep) < n_out:  # rare: a sliver tile; draw again with a larger surplus rather than return too few
        res2 = densify(X, 2 * n_draw, random_state=int(rng.integers(2**31)), **densify_options)
        pts = np.r_[res.points[keep], res2.points[_inside(res2.points, tile.lo, tile.hi)]]
    else:
        pts = res.points[keep]
    if len(pts) < n_out:
        raise MmsoldError(f"tile {tile.index}: {len(pts)} new points fell in its core, {n_out} needed")
    Z = pts[np.sort(rng.choice(len(pts), n_out, replace=False))]
    if projected is not None:
        projected[core] = project_on_support(P[core], res)
    tree = cKDTree(X)
    attrs = transfer_attributes(sub.attributes, X, Z, spacing=res.settings["spacing"], tree=tree,
                                drop=drop_attributes)
    if normals:
        from .normals import estimate_normals, normals_for, orientation

        orient = orientation(normals)
        NX = estimate_normals(X, tree=tree, orient=orient) if input_normals is None else input_normals[idx]
        attrs.update(dict(zip(("nx", "ny", "nz"), normals_for(Z, X, NX, tree=tree, orient=orient).T)))
    # a core point's repeats share its position, hence its core: the cores' counts add up to the cloud's
    repeated = n_core - distinct_rows(P[core]).shape[0] if res.settings.get("repeated") else 0
    info.update(halo_points=len(idx), spacing=res.settings["spacing"], halo=eta, seconds=time.perf_counter() - t0,
                repeated=repeated,
                t=res.settings.get("t"), sample_time=res.diagnostics["sample_time"],
                denoise_time=res.diagnostics["denoise_time"], mean_move=res.diagnostics["mean_move"],
                **{k: res.settings[k] for k in ("noisy", "noise_estimate", "even_added") if k in res.settings})
    return type(cloud)(Z, attrs, cloud.fmt, cloud.meta), info


def decide_even(positions, tiles, factor: float, even="auto", *, halo: float = HALO):
    """A tiled run's even-density plan (None: the stage off) and what was decided, for the diagnostics.

    ``even``: "auto", True or False, as for :func:`~mmsold_cli.workflows.densify.densify`; "auto" measures the
    whole cloud (:func:`even_plan`) and keeps the plan when its ``share`` is above ``EVEN_AUTO_SHARE``.
    """
    from .densify import EVEN_AUTO_SHARE, even_choice

    even = even_choice(even)
    if even is False:
        return None, {"even": False}
    plan = even_plan(positions, tiles, factor, halo=halo)
    on = even is True or plan.share > EVEN_AUTO_SHARE
    info = {"even": on, "even_share": plan.share, **({"even_spacing": plan.reference} if on else {})}
    return (plan if on else None), info


def _largest_remainders(want) -> tuple:
    """Integer counts, each the floor or the ceiling of its ``want``, adding up to ``round(Σ want)``."""
    want = np.asarray(want, dtype=np.float64)
    counts = np.floor(want).astype(np.int64)
    rest = int(round(want.sum())) - int(counts.sum())
    if rest > 0:
        counts[np.argsort(counts - want, kind="stable")[:rest]] += 1
    return tuple(int(c) for c in counts)


def tile_counts(tiles, factor: float, plan: EvenPlan | None = None) -> tuple:
    """New points of each tile of :func:`plan_tiles`: the even ``plan``'s counts, or without one ``factor`` ×
    each core's points, rounded so that a run makes ``round(factor × n)`` in all, as an untiled one does."""
    if plan is not None:
        return plan.counts
    return _largest_remainders(factor * np.array([t.points for t in tiles], dtype=np.float64))


def tile_options(plan: EvenPlan | None, counts, k: int) -> dict:
    """:func:`densify_tile`'s options for tile k of a run with ``plan`` (None: the even stage off) and
    :func:`tile_counts` ``counts``."""
    if plan is None:
        return dict(even=False, n_out=counts[k])
    return dict(even=True, even_spacing=plan.reference, n_out=counts[k], grown_share=plan.grown[k])


def iter_tiles(cloud, tiles, *, factor: float, seed: int, halo: float = HALO, normals: bool = False,
               drop_attributes=(), progress=None, tile_progress=None, projected=None, plan: EvenPlan | None = None,
               input_normals=None, **densify_options):
    """Densify the tiles one after another, yielding ``(PointCloud of new core points, info)`` for each.

    Only one tile's points are in memory at a time; the caller writes each
    part out (:func:`mmsold_cli.workflows.densify.densify_cloud` with a sink) or gathers them.
    ``progress(done, total, step, steps)`` is the sampler's within the current tile (``done``/``total`` count
    tiles); ``tile_progress(done, total)`` is called after each tile; ``projected``: see :func:`densify_tile`;
    ``plan``: an even-density run's shares (:func:`even_plan`), None for a run without the even stage;
    ``input_normals``: the cloud's oriented normals (:func:`oriented_normals`), for ``normals``.
    """
    counts = tile_counts(tiles, factor, plan)
    for k, tile in enumerate(tiles):
        inner = None if progress is None else (lambda d, t, step, steps, k=k: progress(k, len(tiles), step, steps))
        yield densify_tile(cloud, tile, factor=factor, seed=seed, halo=halo, normals=normals,
                           drop_attributes=drop_attributes, progress=inner, projected=projected,
                           input_normals=input_normals, **tile_options(plan, counts, k), **densify_options)
        if tile_progress is not None:
            tile_progress(k + 1, len(tiles))


def oriented_normals(positions, tiles, *, halo: float = HALO, orient="mst") -> np.ndarray:
    r"""Normals of every input point, oriented consistently across tiles: array of shape (n, 3).

    Each tile orients the normals of its halo-grown points along a minimum spanning tree
    (:func:`~mmsold_cli.workflows.normals.estimate_normals`), one sign per connected part of its graph, and
    each part's sign is only right with respect to the part itself: tile by tile, a closed object came out
    with some tiles' normals pointing in.  The parts are then made to agree where they overlap: a point
    in one tile's core and in another's halo has a normal in both, and

    .. math:: w_{ab} = \sum_{i \in a \cap b} \operatorname{sign}(\nu^a_i \cdot \nu^b_i)

    votes for parts a and b having the same sign (w > 0) or opposite ones.  Signs are propagated along a
    maximum spanning forest of |w|; each connected group of parts is then pointed as one cloud is
    (:mod:`~mmsold_cli.workflows.normals`): its core point farthest from the group's centroid points away
    from it.  A point's normal is its core tile's.  ``orient`` "up" or a viewpoint (see
    :func:`~mmsold_cli.workflows.normals.estimate_normals`) sets every sign by itself: no stitching.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree

    from .normals import estimate_normals

    P = np.asarray(positions, dtype=np.float64)
    n = len(P)
    normal = np.empty((n, 3))
    part = np.empty(n, np.int64)  # each point's part (of its core tile), numbered across tiles
    halo_parts: list = []  # per tile: (halo points, their part in that tile, their normal there)
    n_parts = 0
    for tile in tiles:
        core = _inside(P, tile.lo, tile.hi)
        if not core.any():
            continue
        _, idx = _grown(P, tile, core, halo)
        if orient != "mst":
            normal[idx[core[idx]]] = estimate_normals(P[idx], orient=orient)[core[idx]]
            continue
        N, comp = estimate_normals(P[idx], components=True)
        in_core = core[idx]
        normal[idx[in_core]] = N[in_core]
        part[idx[in_core]] = n_parts + comp[in_core]
        halo_parts.append((idx[~in_core], n_parts + comp[~in_core], N[~in_core]))
        n_parts += int(comp.max()) + 1
    if not halo_parts:  # every sign set by the orientation itself
        return normal
    # the votes: a halo point against the part of its core tile
    h = np.concatenate([q[0] for q in halo_parts])
    a = np.concatenate([q[1] for q in halo_parts])
    agree = np.einsum("ij,ij->i", np.concatenate([q[2] for q in halo_parts]), normal[h]) >= 0
    b = part[h]
    key, w = np.unique(np.minimum(a, b) * n_parts + np.maximum(a, b), return_inverse=True)
    votes = np.bincount(w, weights=np.where(agree, 1.0, -1.0), minlength=len(key))
    ia, ib = key // n_parts, key % n_parts
    keep = (ia != ib) & (votes != 0)
    # maximum spanning forest of |w|: a minimum one of 1 / (1 + |w|) (csgraph drops zero weights)
    G = coo_matrix((1.0 / (1.0 + np.abs(votes[keep])), (ia[keep], ib[keep])), shape=(n_parts, n_parts)).tocsr()
    T = minimum_spanning_tree(G)
    T = T + T.T
    same = {}  # (part, neighbour in the forest) -> whether their signs agree
    for x, y, v in zip(ia[keep].tolist(), ib[keep].tolist(), votes[keep].tolist()):
        same[(x, y)] = same[(y, x)] = v > 0
    flip = np.zeros(n_parts, bool)
    n_groups, group = connected_components(T, directed=False)
    for g in range(n_groups):
        members = np.flatnonzero(group == g)
        order, pred = breadth_first_order(T, members[0], directed=False, return_predecessors=True)
        for child in order[1:].tolist():
            parent = int(pred[child])
            flip[child] = flip[parent] if same[(parent, child)] else not flip[parent]
    NX = np.where(flip[part][:, None], -normal, normal)
    # each group pointed as a whole: its point farthest from its centroid points away from it
    pg = group[part]
    counts = np.bincount(pg, minlength=n_groups)
    centre = np.stack([np.bincount(pg, weights=P[:, j], minlength=n_groups) for j in range(3)], axis=1)
    centre /= np.maximum(counts, 1)[:, None]
    r = np.linalg.norm(P - centre[pg], axis=1)
    far = np.full(n_groups, -1)
    best = np.full(n_groups, -np.inf)
    np.maximum.at(best, pg, r)
    hit = np.flatnonzero(r == best[pg])
    far[pg[hit]] = hit
    out_of = np.einsum("ij,ij->i", NX[far], P[far] - centre) < 0  # the group's sign is the wrong way
    NX[out_of[pg]] *= -1
    return NX
