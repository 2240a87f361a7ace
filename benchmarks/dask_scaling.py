"""Sampling and tiled densify on Dask here (1 and 2 workers), the per-task overhead, the shard-size rule, and
from those figures an estimate for 10⁹ 3-D samples and a 10⁸-point scan on 100 nodes.

    python benchmarks/dask_scaling.py [--n 200000] [--steps 50] [--cores-per-node 32] [--nodes 100]

Every cluster run is checked against the one-machine bytes.  The estimates assume the nodes' cores run at
the per-core rate measured here and that the scheduler spends the measured overhead on every task; see
docs/cluster.md for the reading of the table.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np


def surface(n, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.uniform(0, 4, (n, 2))
    return np.c_[u, 0.3 * np.sin(2 * u[:, 0]) * np.cos(2 * u[:, 1])]


def _warm(payload, kw, cloud):
    """On a worker: the model built and the kernels of a sampling and a densify run compiled (or loaded)."""
    from mmsold_cli import sample
    from mmsold_cli.workflows.tiles import densify_tile, plan_tiles

    sample(payload.model(), 2000, random_state=0, **kw)
    densify_tile(cloud, plan_tiles(cloud.positions, 1000)[0], factor=2, seed=0)
    return True


def best(fn, repeats):
    """The fastest of ``repeats`` runs (the machine is shared): (wall, result)."""
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        wall = time.perf_counter() - t0
        if out is None or wall < out[0]:
            out = (wall, res)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000, help="samples of the measured sampling run")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--train", type=int, default=20_000, help="training points (3-D)")
    ap.add_argument("--scan", type=int, default=20_000, help="input points of the measured densify run")
    ap.add_argument("--tile-points", type=int, default=5_000)
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--cores-per-node", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2, help="best of this many runs each")
    args = ap.parse_args()

    from mmsold_cli import fit_moments, sample
    from mmsold_cli.distributed.client import connect, measure_overhead
    from mmsold_cli.distributed.densify import densify_distributed
    from mmsold_cli.distributed.sample import MAX_TASKS, OVERHEAD_SHARE, ModelPayload, sample_distributed, shard_rows
    from mmsold_cli.io.cloud import PointCloud
    from mmsold_cli.sampling import resolve_settings
    from mmsold_cli.workflows.densify import densify_cloud
    from mmsold_cli.workflows.tiles import TILE_POINTS

    cores = len(os.sched_getaffinity(0))
    print(f"# machine: {cores} cores, load {os.getloadavg()[0]:.1f} at start")
    model = fit_moments(surface(args.train))
    kw = dict(steps=args.steps, backend="numba")
    sample(model, 2000, random_state=0, **kw)  # compiled
    n, steps = args.n, args.steps
    P = resolve_settings(model, n, **kw)["P"]
    t_local, ref = best(lambda: sample(model, n, random_state=7, **kw).samples, args.repeats)
    small = PointCloud(surface(3000, seed=2), {}, ".ply")
    densify_cloud(small, factor=2, random_state=0, tile_points=1000)
    rows_out = [("one machine (no Dask)", cores, t_local, n * steps / t_local, "-", "-")]
    overheads = {}
    for w in (1, 2):
        with connect(f"local:{w}") as client:
            client.run(_warm, ModelPayload(model), kw, small)  # every worker warm, as a long run's would be
            over = measure_overhead(client, tasks=400)
            overheads[w] = over
            rows = shard_rows(n, P, steps, workers=w, overhead=over)
            wall, res = best(lambda: sample_distributed(model, n, client=client, random_state=7,  # noqa: B023
                                                        rows_per_shard=rows, **kw),  # noqa: B023
                             args.repeats)
            assert res.samples.tobytes() == ref.tobytes(), "cluster bytes differ from one machine"
            threads = sorted(set(client.run(lambda: os.environ.get("NUMBA_NUM_THREADS")).values()))
            rows_out.append((f"local:{w} ({'/'.join(threads)} numba threads each)", w, wall, n * steps / wall,
                             res.diagnostics["shards"], f"{1e3 * over:.2f}"))
    print(f"\n## sampling: {n:,} 3-D samples, {steps} steps, P = {P}, training set {args.train:,} (bytes = one machine)")
    print("| run | workers | wall (s) | particle-steps/s | shards | task overhead (ms) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows_out:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:,.0f} | {r[4]} | {r[5]} |")
    rate_core = rows_out[2][3] / 2  # particle-steps per second per core with 2 single-thread workers
    over = overheads[2]

    # densify in tiles
    cloud = PointCloud(surface(args.scan, seed=1), {}, ".ply")
    t_dl, (loc, _) = best(lambda: densify_cloud(cloud, factor=args.factor, random_state=3,
                                                 tile_points=args.tile_points), 1)
    drow = [("one machine (no Dask)", cores, t_dl)]
    for w in (1, 2):
        with connect(f"local:{w}") as client:
            client.run(_warm, ModelPayload(model), kw, small)
            wall, (out, diag) = best(lambda: densify_distributed(cloud, client=client, factor=args.factor,  # noqa: B023
                                                                 seed=3, tile_points=args.tile_points), 1)
            assert out.positions.tobytes() == loc.positions.tobytes(), "cluster densify differs"
            drow.append((f"local:{w}", w, wall))
    tiles = len(diag["tiles"])
    print(f"\n## tiled densify: {args.scan:,} input points, factor {args.factor:g}, {tiles} tiles of ≤ "
          f"{args.tile_points:,} (bytes = one machine; workers warmed first)")
    print("| run | workers | wall (s) | input points/s |")
    print("|---|---:|---:|---:|")
    for r in drow:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {args.scan / r[2]:,.0f} |")
    tile_s_per_point = 2 * drow[2][2] / args.scan  # core-seconds per input point, 2 single-thread workers

    # the shard-size rule and the estimates
    N9, nodes, cpn = 10**9, args.nodes, args.cores_per_node
    total = nodes * cpn
    C = shard_rows(N9, 1000, 100, workers=total, overhead=over, rate=rate_core)
    tasks = math.ceil(N9 / C)
    compute = N9 * 100 / (total * rate_core)
    sched = tasks * over
    print("\n## shard-size rule (mmsold_cli.distributed.sample.shard_rows)")
    print(f"C = max(C_min, min(32 P, n / 4W)), C_min = max(P, (o / {OVERHEAD_SHARE:g}) × r / steps, n / {MAX_TASKS:,})")
    print(f"measured: o = {1e3 * over:.2f} ms a task, r = {rate_core:,.0f} particle-steps/s a core")
    print(f"\n## estimate: 10⁹ 3-D samples, 100 steps, P = 1000, on {nodes} nodes × {cpn} cores "
          f"({total:,} single-thread workers)")
    print("| quantity | value |")
    print("|---|---:|")
    print(f"| rows per shard C | {C:,} |")
    print(f"| shards (tasks) | {tasks:,} |")
    print(f"| compute, {N9:.0e} × 100 particle-steps / ({total:,} × r) | {compute:,.0f} s |")
    print(f"| scheduler time, tasks × o | {sched:,.1f} s |")
    print(f"| re-drawn boundary ensembles (≤ P / C of the work) | {100 * 1000 / C:.1f} % |")
    task_s = C * 100 / rate_core
    waves = math.ceil(tasks / total)
    wall9 = max(compute, waves * task_s) * (1 + 1000 / C) + sched
    print(f"| one shard, C × 100 / r | {task_s:,.1f} s |")
    print(f"| waves of shards, ⌈tasks / workers⌉ | {waves} |")
    print(f"| estimated wall, max(compute, waves × shard) × (1 + P/C) + scheduler | {wall9:,.0f} s ({wall9 / 60:.1f} min) |")
    print(f"| output, .zarr written by the workers | {N9 * 3 * 8 / 1e9:.0f} GB in {tasks:,} chunks |")
    S8 = 10**8
    tp = TILE_POINTS
    while S8 / tp < 4 * total and tp > 12_500:  # enough tiles for every worker, four each
        tp //= 2
    n_tiles = math.ceil(S8 / tp)
    dens = S8 * tile_s_per_point / total
    waves = math.ceil(n_tiles / total)
    print(f"\n## estimate: a 10⁸-point scan, factor {args.factor:g}, on {nodes} nodes × {cpn} cores")
    print("| quantity | value |")
    print("|---|---:|")
    print(f"| core-seconds per input point (measured, 2 workers) | {tile_s_per_point * 1e6:.1f} µs |")
    print(f"| tile_points (≥ 4 tiles a worker; default {TILE_POINTS:,}) | {tp:,} |")
    print(f"| tiles (tasks) | {n_tiles:,} ({waves} waves of {total:,}) |")
    print(f"| compute, 10⁸ × core-s per point / {total:,} | {dens:,.0f} s |")
    print(f"| longest tile | {tp * tile_s_per_point:,.1f} s |")
    print(f"| estimated wall (compute, or whole waves of tiles) | "
          f"{max(dens, waves * tp * tile_s_per_point):,.0f} s |")
    print(f"| output | {S8 * args.factor:,.0f} points, {S8 * args.factor * 24 / 1e9:.1f} GB |")


if __name__ == "__main__":
    main()
