"""Tiled densify on a Dask cluster: one task per tile, the bytes of the one-machine tiled run.

The tiles are those of :func:`mmsold_cli.workflows.tiles.plan_tiles` and each task is
:func:`~mmsold_cli.workflows.tiles.densify_tile`, a plain function of (cloud, tile, seed): its seed derives
from the run's seed and the tile's index only, so the result is
``densify_cloud(cloud, factor=f, random_state=seed, tile_points=T)`` of one machine, byte for byte,
whatever the workers and the order the tiles finish in.  The cloud goes to every worker once.

Work units: a tile of ``TILE_POINTS`` = 100,000 input points runs for seconds to a minute, four orders of
magnitude above the measured per-task overhead (milliseconds), and a scan of 10⁸ points is 1,000–2,000
tiles — thousands of tasks, as the scheduler wants.

With the even stage (on, or "auto" finding the cloud uneven) the client measures the whole cloud first and
every task gets its tile's share of the new points and the cloud's reference spacing
(:func:`mmsold_cli.workflows.tiles.decide_even`), as on one machine.

``.zarr`` output: every tile's row range is known before any work (``round(f × core points)``, or the even
plan's counts), so a task
writes the chunks that lie wholly inside its rows itself and returns only the rows of the (at most two)
chunks it shares with a neighbouring tile; the client writes those shared chunks once both sides are in.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from ..errors import MmsoldError

__all__ = ["densify_distributed", "layout", "tile_rows", "ZARR_CHUNK_ROWS", "Layout"]

#: Rows of a ``.zarr`` chunk of a densify output.
ZARR_CHUNK_ROWS = 65_536


def tile_rows(tiles, factor: float, plan=None) -> np.ndarray:
    """Row offsets (tiles + 1,) of each tile's new points in the output
    (:func:`~mmsold_cli.workflows.tiles.tile_counts`)."""
    from ..workflows.tiles import tile_counts

    return np.concatenate([[0], np.cumsum(tile_counts(tiles, factor, plan))]).astype(np.int64)


class Layout(NamedTuple):
    """A distributed densify's work: one untiled task (``whole``) or tiles, the even plan, output rows."""

    whole: bool
    tiles: list
    plan: object
    even_info: dict
    offsets: np.ndarray


def layout(positions, factor: float, *, tile_points: int, halo: float, even="auto") -> Layout:
    """The tasks of :func:`densify_distributed` and each one's first output row (``offsets[-1]`` rows in all).

    A cloud of at most ``tile_points`` points is one task (``densify_cloud`` untiled, which decides ``even``
    itself); otherwise the tiles of :func:`~mmsold_cli.workflows.tiles.plan_tiles` with
    :func:`~mmsold_cli.workflows.tiles.decide_even`'s plan.
    """
    from ..workflows import tiles as tl

    X = np.asarray(positions)
    if X.shape[0] <= tile_points:
        return Layout(True, [tl.Tile(0, (-np.inf,) * 3, (np.inf,) * 3)], None, {},
                      np.array([0, max(int(round(factor * X.shape[0])), 1)]))
    tiles = tl.plan_tiles(X, tile_points)
    plan, info = tl.decide_even(X, tiles, factor, even, halo=halo)
    offsets = tile_rows(tiles, factor, plan)
    return Layout(False, tiles, plan, info, offsets)


def _run_tile(cloud, tile, r0: int, factor: float, seed: int, halo: float, normals: bool, drop, options: dict,
              store=None, chunk_rows: int = ZARR_CHUNK_ROWS, input_normals=None):
    """One task: the tile's new points (or, with ``store``, its inner chunks written and its edge rows)."""
    from ..workflows.tiles import densify_tile

    part, info = densify_tile(cloud, tile, factor=factor, seed=seed, halo=halo, normals=normals,
                              drop_attributes=drop, input_normals=input_normals, **options)
    if store is None:
        return part, info
    from .zarr_store import write_rows

    X = part.positions
    r1 = r0 + len(X)
    a = -(-r0 // chunk_rows) * chunk_rows  # first chunk boundary at or after r0
    b = (r1 // chunk_rows) * chunk_rows  # last chunk boundary at or before r1
    edges = []
    if a < b:
        write_rows(store, a, X[a - r0: b - r0])
        if r0 < a:
            edges.append((r0, X[: a - r0]))
        if b < r1:
            edges.append((b, X[b - r0:]))
    elif r1 > r0:  # the tile lies within one or two chunks it shares
        edges.append((r0, X))
    return edges, info


def _run_whole(cloud, factor: float, seed: int, normals: bool, drop, options: dict, store=None):
    """One task for a cloud of one tile: ``densify_cloud`` untiled, exactly as on one machine."""
    from ..workflows.densify import densify_cloud

    out, diag = densify_cloud(cloud, factor=factor, random_state=seed, tile_points=0, normals=normals,
                              drop_attributes=drop, **options)
    settings, d = diag["settings"], diag["diagnostics"]
    # a tile's info, and the run's own record (its settings hold the even stage's decision, the noise, t)
    info = dict(index=0, core_points=len(cloud.positions), output_points=len(out.positions),
                spacing=settings["spacing"], seconds=d["sample_time"] + d["denoise_time"],
                repeated=settings.get("repeated", 0), run={"settings": settings, "diagnostics": d})
    if store is None:
        return out, info
    from .zarr_store import write_rows

    write_rows(store, 0, out.positions)
    return [], info


def densify_distributed(cloud, *, client, factor: float, seed=None, tile_points: int | None = None,
                        halo: float | None = None, normals: bool = False, drop_attributes=(), progress=None,
                        store=None, work: Layout | None = None, put=None, input_normals=None, **options):
    """Densify a :class:`~mmsold_cli.io.cloud.PointCloud` tile by tile on a Dask cluster.

    Parameters
    ----------
    cloud : PointCloud
    client : distributed.Client
    factor : float
        New points per input point.
    seed : int or None
        The run's seed (None: one is drawn and reported as ``diagnostics["seed"]``).
    tile_points, halo : optional
        As for :func:`mmsold_cli.workflows.densify.densify_cloud`.
    progress : callable, optional
        ``progress(tiles_done, tiles_total)``.
    store : ZarrOutput, optional
        Of shape (output points, 3): positions go there, written by the workers (module docstring); the
        returned cloud then has no positions (shape (0, 3)) and no attributes.
    work : Layout, optional
        :func:`layout` of this cloud with these settings, when the caller has it already (it sized ``store``).
    input_normals : array of shape (len(cloud), 3), optional
        With ``normals`` and tiles: the cloud's normals oriented across tiles
        (:func:`~mmsold_cli.workflows.tiles.oriented_normals`; made here when not given).
    put : callable, optional
        Takes the tiles' new points (PointClouds) in tile order, each as soon as the tiles before it are in, so
        the client holds only the tiles that finished early (e.g. a file writer's ``write``); the returned
        cloud then has no points.
    **options
        Passed to :func:`mmsold_cli.workflows.densify.densify`.

    Returns
    -------
    (PointCloud, dict)
        As ``densify_cloud(cloud, factor=factor, random_state=seed, tile_points=tile_points)``, byte for
        byte (a cloud of at most ``tile_points`` points is one untiled task): the new points in tile order
        and diagnostics (``seed``, ``tiles``).
    """
    import contextlib
    import uuid

    from distributed import as_completed

    from ..validation import check_int, check_points, check_positive
    from ..workflows import tiles as tl
    from .client import cluster_errors

    X = check_points(cloud.positions, name="input points", dim=3, min_points=7)
    factor = check_positive(factor, "factor")
    tile_points = tl.TILE_POINTS if tile_points is None else check_int(tile_points, "tile_points", low=100)
    halo = tl.HALO if halo is None else check_positive(halo, "halo")
    drop = tuple(cloud.attributes) if drop_attributes is True else tuple(drop_attributes)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    tl.tile_seed(seed, 0)
    even = options.pop("even", "auto")
    work = layout(X, factor, tile_points=tile_points, halo=halo, even=even) if work is None else work
    whole, tiles, offsets = work.whole, work.tiles, work.offsets  # whole: densify_cloud's untiled run
    counts = np.diff(offsets)
    if store is not None and store.shape != (int(offsets[-1]), 3):
        raise MmsoldError(f"store must have shape {(int(offsets[-1]), 3)}, got {store.shape}")
    if normals and not whole and input_normals is None:
        from ..workflows.normals import orientation

        input_normals = tl.oriented_normals(X, tiles, halo=halo, orient=orientation(normals))
    where = getattr(client, "mmsold_where", "")
    t0 = time.perf_counter()
    futures = []
    with cluster_errors(where, client):
        scattered = client.scatter(cloud, broadcast=True, hash=False)
        normals_at = None if whole or not normals else client.scatter(input_normals, broadcast=True, hash=False)
        target = None if store is None else str(store.tmp)
        chunk = ZARR_CHUNK_ROWS if store is None else store.chunk_rows
        try:
            if whole:
                futures = [client.submit(_run_whole, scattered, factor, seed, normals, drop, dict(options, even=even),
                                         target, pure=False, key=f"mmsold-tile-{seed}-0-{uuid.uuid4().hex[:8]}")]
            else:
                futures = [client.submit(_run_tile, scattered, tile, int(offsets[k]), factor, seed, halo, normals,
                                         drop, dict(options, **tl.tile_options(work.plan, counts, k)), target, chunk,
                                         normals_at, pure=False, key=f"mmsold-tile-{seed}-{k}-{uuid.uuid4().hex[:8]}")
                           for k, tile in enumerate(tiles)]
            index = {f.key: k for k, f in enumerate(futures)}
            parts: list = [None] * len(tiles)
            infos: list = [None] * len(tiles)
            edges: dict = {}
            sent = 0  # tiles handed to put
            for done, fut in enumerate(as_completed(futures), 1):
                k = index[fut.key]
                part, info = fut.result()
                futures[k] = None
                infos[k] = info
                if store is None:
                    parts[k] = part
                    while put is not None and sent < len(parts) and parts[sent] is not None:
                        put(parts[sent])
                        parts[sent] = ()  # handed over: not held
                        sent += 1
                else:
                    for r0, rows in part:
                        edges[r0] = rows
                if progress is not None:
                    progress(done, len(tiles))
        finally:
            live = [f for f in futures if f is not None]
            with contextlib.suppress(Exception):
                client.cancel(live + [scattered] + ([normals_at] if normals_at is not None else []))
    if store is not None:  # the chunks tiles share: whole, from the pieces every side sent
        from .zarr_store import write_rows

        by_chunk: dict = {}
        for r0, rows in sorted(edges.items()):
            for c0 in range(r0 - r0 % chunk, r0 + len(rows), chunk):
                lo, hi = max(r0, c0), min(r0 + len(rows), c0 + chunk)
                by_chunk.setdefault(c0, []).append((lo, rows[lo - r0: hi - r0]))
        for _, pieces in sorted(by_chunk.items()):  # each chunk's pieces are contiguous rows from its start
            pieces.sort(key=lambda q: q[0])
            write_rows(store.tmp, pieces[0][0], np.concatenate([p for _, p in pieces]))
    if store is not None or put is not None:  # the points went there
        out = type(cloud)(np.zeros((0, 3)), {}, cloud.fmt, cloud.meta)
    else:
        names = list(parts[0].attributes) if parts else []
        Z = np.concatenate([p.positions for p in parts]) if parts else np.zeros((0, 3))
        attrs = {nm: np.concatenate([p.attributes[nm] for p in parts]) for nm in names}
        out = type(cloud)(Z, attrs, cloud.fmt, cloud.meta)
    diag = {"seed": seed, "tiles": infos, **({} if whole else work.even_info), "wall_time": time.perf_counter() - t0,
            "output_points": int(offsets[-1]),
            "workers": len(client.scheduler_info(n_workers=-1)["workers"])}
    if whole:  # one task ran densify_cloud untiled: its settings and diagnostics, as one machine reports them
        diag.update(infos[0].pop("run"))
    return out, diag
