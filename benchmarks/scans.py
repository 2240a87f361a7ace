"""Real-scan benchmarks for densify: noisy inputs and large clouds in tiles.

    python benchmarks/scans.py noise [--meshes stanford-bunny,cow,suzanne,teapot,torus] [--n 2000] [--oracle] [--seed 0]
    python benchmarks/scans.py large --n 200000 [--factor 4] [--tile-points 100000] [--seed 0] [--out DIR]
    python benchmarks/scans.py cad [--seed 0]
    python benchmarks/scans.py uneven [--meshes patch,stanford-bunny,cow,suzanne,teapot] [--seed 0]
    python benchmarks/scans.py uneven-tiled [--meshes patch,stanford-bunny] [--n 200000] [--tile-points 30000]

``noise``: ``--n`` (2,000) area-weighted surface points of each mesh plus
N(0, (0.3 δ)² I) noise (δ: the clean points' mean nearest-neighbour
spacing), ×20; the exact mean and 95th-percentile distance of the output to
the mesh in units of δ, for the input itself, densify without its noise stage
(``noise=False``: what densify did before) and with it (``noise="auto"``).
``torus`` is :func:`mmsold_cli.datasets.bumpy_torus` with fine facets
(192 × 96), a smooth surface not in ../shared/data.  Bar of the issue: output
mean ≤ 0.5 × the input's.  With ``--oracle`` a second table shows how far
the noise stage's own choice of kernels is from the best any choice could do:
the support (the input moved onto its MLS surface, before sampling) with
each candidate kernel for every point, with the kernels :func:`local_kernels`
chooses, and with the kernels an oracle chooses — around each point the
candidate of least *true* mean squared distance over its 48 nearest points,
the same averaging as local_kernels but with the mesh known.

``large``: n area-weighted points of the bunny → factor × n with
:func:`mmsold_cli.workflows.densify.densify_cloud` in tiles of at most
``--tile-points`` input points (0: one piece); wall time, the time of each
tile, and the process's peak resident memory (``ru_maxrss``).  With ``--out
DIR`` the cloud is saved to ``DIR/large_in.npy`` first and densified the way
``mmsold densify`` does it (:func:`mmsold_cli.jobs.densify_job`), to
``DIR/large_out.npy``: each tile's points go to the file as the tile ends, so
the peak is the input plus one tile's working set.  The machine's
load average is printed: on the shared 2-core machine other jobs slow every
figure.

``cad``: two CAD-like parts: a cylinder (radius 1, height 2) with
flat caps, so two circular creases of 90° (512 facets around: chord error
2e-5), and a 2 × 1.5 × 1 box with its edges bevelled at 45° (0.2 cut from
each side: creases of 135° and about 145°), both from :mod:`mmsold_cli.datasets`; 2,000
surface points ×20; distance to the mesh for the points within 2 δ of a
crease and for the rest, and the share of output points near a crease (the
surface's own share is printed as "fresh"), with the crease stage
(default) and without it (``creases=False``).  Bars: mean ≤ 0.1 δ,
p95 ≤ 0.3 δ in both groups.

``uneven``: 2,000 points with an 8:1 density step between two halves of the
object (area-weighted surface points; the half with x above the median keeps
one in eight), ×20, without (``even=False``, what densify did before) and with
the even-density stage; the coverage of each half — the share of 20,000 uniform
surface points of that half, 2 δ or more from the cut, with an output point
within δ/2 (δ: the uneven input's mean spacing) — and the output's distance to
the surface.  The "ceiling" row projects 40,000 uniform surface points the
way the even stage's output is projected (``local_spacing_project`` on the
uneven input): the coverage a perfect sampler would reach on the surface
reconstructed from these points.  ``patch`` is the height field of ``tests/test_scans_even.py``
(cut at x = 2).  Bars of the issue: sparse coverage ≥ 0.8 and ≥ 0.9 × the
dense half's.

``uneven-tiled``: the same 8:1 step on a cloud large enough to be cut into tiles (``--n`` points, tiles of at
most ``--tile-points``), ×4: the output's density in each half (points per unit of area, the area measured by
uniform surface samples) and their ratio, each half's coverage at δ/2 and the distance to the surface, for
densify_cloud tiled without the even stage, tiled with the default (``even="auto"``, which finds the input
uneven) and untiled with it.  The tiles are cut at medians of the input, so the sparse half is a few large
tiles: before the counts were shared by area, each tile made 4 points per input point and the output kept
the input's 8:1.

Meshes are read from ../shared/data/meshes or ``$MMSOLD_MESH_DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

from mmsold_cli.datasets import (
    bevelled_box,
    bumpy_torus,
    capped_cylinder,
    crease_segments,
    segment_distance,
    surface_samples,
)
from mmsold_cli.io.cloud import PointCloud
from mmsold_cli.io.mesh import read_mesh
from mmsold_cli.metrics.surface import MeshDistance, mean_spacing
from mmsold_cli.workflows.densify import (
    NOISY_AVERAGE,
    NOISY_KERNELS,
    densify,
    densify_cloud,
    local_kernels,
    smooth_support,
)

MESH_DIR = Path(os.environ.get("MMSOLD_MESH_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meshes"))


def fmt_kernel(h):
    """A kernel width in spacings as the tables print it (2.4999999999999996 → 2.5), or '-'."""
    return "-" if h is None else f"{h:g}" if isinstance(h, (int, float)) else str(h)


def mesh(name):
    return bumpy_torus(192, 96) if name == "torus" else read_mesh(MESH_DIR / f"{name}.obj")


def noise(args):
    oracles = []
    print("| mesh | input mean / δ | before: mean / δ (×input) | after: mean / δ (×input) | after p95 / δ | noise est. | kernel (median) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.meshes.split(","):
        V, F = mesh(name)
        rng = np.random.default_rng(args.seed)
        C = surface_samples(V, F, args.n, random_state=rng)
        delta = mean_spacing(C)
        X = C + 0.3 * delta * rng.standard_normal(C.shape)
        md = MeshDistance(V, F)
        d_in = md.query(X)[0].mean() / delta
        before = md.query(densify(X, 20 * args.n, random_state=args.seed, noise=False).points)[0] / delta
        res = densify(X, 20 * args.n, random_state=args.seed)
        after = md.query(res.points)[0] / delta
        print(f"| {name} | {d_in:.3f} | {before.mean():.3f} ({before.mean() / d_in:.2f}) | "
              f"{after.mean():.3f} ({after.mean() / d_in:.2f}) | {np.percentile(after, 95):.3f} | "
              f"{res.settings['noise_estimate']:.3f} | {fmt_kernel(res.settings.get('noise_kernel'))} δ |", flush=True)
        if args.oracle:
            oracles.append((name, _kernel_oracle(X, delta, md, d_in * delta)))
    if args.oracle:
        kernels = NOISY_KERNELS
        print("\n| mesh | " + " | ".join(f"support, {h:g} δ everywhere" for h, _ in kernels)
              + " | support, local_kernels | support, oracle's kernels |")
        print("|---|" + "---:|" * (len(kernels) + 2))
        for name, row in oracles:
            print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |")


def _kernel_oracle(X, delta, md, d_in):
    """Support distance / the input's: each candidate kernel everywhere, local_kernels' choice, the oracle's."""
    from scipy.spatial import cKDTree

    dist = np.stack([md.query(smooth_support(X, h * delta, neighbours=k, passes=1))[0] for h, k in NOISY_KERNELS], 1)
    radii, kns = local_kernels(X, spacing=delta)
    chosen = md.query(smooth_support(X, radii, neighbours=kns, passes=1))[0]
    _, nb = cKDTree(X).query(X, k=min(NOISY_AVERAGE, len(X)))
    pick = np.argmin((dist ** 2)[nb].mean(axis=1), axis=1)
    oracle = dist[np.arange(len(X)), pick]
    return [*(dist.mean(axis=0) / d_in), chosen.mean() / d_in, oracle.mean() / d_in]


def large(args):
    V, F = mesh("stanford-bunny")
    X = surface_samples(V, F, args.n, random_state=np.random.default_rng(args.seed))
    load0 = os.getloadavg()[0]
    if args.out:
        from mmsold_cli.jobs import densify_job

        src, dst = Path(args.out) / "large_in.npy", Path(args.out) / "large_out.npy"
        np.save(src, X)
        del X
        t0 = time.perf_counter()
        s = densify_job(src, dst, factor=args.factor, seed=args.seed, tile_points=args.tile_points, overwrite=True)
        seconds = time.perf_counter() - t0
        n_out = s["output_points"]
        diag = json.loads((Path(args.out) / "large_out.diagnostics.json").read_text())
    else:
        t0 = time.perf_counter()
        out, diag = densify_cloud(PointCloud(X, {}, ".npy"), factor=args.factor, random_state=args.seed,
                                  tile_points=args.tile_points)
        seconds = time.perf_counter() - t0
        n_out = len(out)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tiles = diag.get("tiles") or []
    print(f"{args.n} -> {n_out} points: {seconds:.1f} s, peak RSS {rss:.0f} MB, {len(tiles) or 1} tile(s), "
          f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f}" + (f", streamed to {dst}" if args.out else ""))
    if tiles:
        per = np.array([t["seconds"] / t["halo_points"] for t in tiles]) * 1e6
        print(f"per tile: {min(t['seconds'] for t in tiles):.1f}–{max(t['seconds'] for t in tiles):.1f} s, "
              f"{per.mean():.0f} µs per input point (halo included), halo share "
              f"{np.mean([t['halo_points'] / t['core_points'] - 1 for t in tiles]):.3f}")


def cad(args):
    print("| shape | points | share near a crease | crease mean / δ | crease p95 / δ | rest mean / δ | rest p95 / δ "
          "| time (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for shape in ("cylinder", "bevelled box"):
        cad_rows(shape, args.seed)


def cad_rows(shape, seed):
    """The ``cad`` rows of one shape."""
    V, F = capped_cylinder() if shape == "cylinder" else bevelled_box()
    segs = None if shape == "cylinder" else crease_segments(V, F)
    rng = np.random.default_rng(seed)
    X = surface_samples(V, F, 2000, random_state=rng)
    delta = mean_spacing(X)
    md = MeshDistance(V, F)

    def crease(P):
        if shape != "cylinder":
            return segment_distance(P, segs) < 2 * delta
        rad = np.linalg.norm(P[:, :2], axis=1)
        return np.minimum(np.hypot(rad - 1, P[:, 2]), np.hypot(rad - 1, P[:, 2] - 2)) < 2 * delta

    rows = [("fresh (uniform)", lambda: surface_samples(V, F, 40000, random_state=rng)),
            ("densify", lambda: densify(X, 40000, random_state=seed).points),
            ("densify reject=0", lambda: densify(X, 40000, random_state=seed, reject=0.0).points),
            ("densify creases=False", lambda: densify(X, 40000, random_state=seed, creases=False).points)]
    for label, make in rows:
        t0 = time.perf_counter()
        P = make()
        seconds = time.perf_counter() - t0
        d = md.query(P)[0] / delta
        near = crease(P)
        print(f"| {shape} | {label} | {near.mean():.3f} | {d[near].mean():.3f} | {np.percentile(d[near], 95):.3f} | "
              f"{d[~near].mean():.3f} | {np.percentile(d[~near], 95):.3f} | {seconds:.1f} |", flush=True)


def _height(x, y):
    return 0.3 * np.sin(2 * x) * np.cos(2 * y)


def _patch_points(rng, n):
    u = np.c_[rng.uniform(0, 4, n), rng.uniform(0, 4, n)]
    return np.c_[u, _height(u[:, 0], u[:, 1])]


def uneven(args):
    print("| input | run | dense-half coverage | sparse-half coverage | sparse / dense | mean / δ | p95 / δ | time (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in args.meshes.split(","):
        rng = np.random.default_rng(args.seed)
        if name == "patch":
            U = _patch_points(rng, 16000)
            cut, ref = 2.0, _patch_points(rng, 20000)
            inner = (ref[:, 1] > 0.3) & (ref[:, 1] < 3.7) & (ref[:, 0] > 0.3) & (ref[:, 0] < 3.7)

            def dist(P):
                return np.abs(P[:, 2] - _height(P[:, 0], P[:, 1]))
        else:
            V, F = mesh(name)
            U = surface_samples(V, F, 16000, random_state=rng)
            cut, ref = float(np.median(U[:, 0])), surface_samples(V, F, 20000, random_state=rng)
            inner = np.ones(len(ref), bool)
            dist = MeshDistance(V, F).query
        # the dense half keeps 1,778 points, the sparse one 222: 2,000 at 8:1
        lo, hi = np.flatnonzero(U[:, 0] <= cut), np.flatnonzero(U[:, 0] > cut)
        X = np.r_[U[rng.choice(lo, 1778, replace=False)], U[rng.choice(hi, 222, replace=False)]]
        delta = mean_spacing(X)
        band = np.abs(ref[:, 0] - cut) >= 2 * delta
        dense, sparse = inner & band & (ref[:, 0] <= cut), inner & band & (ref[:, 0] > cut)
        from scipy.spatial import cKDTree

        from mmsold_cli.workflows.densify import MLS_RADIUS, local_spacing_project

        fresh = (_patch_points(rng, 40000) if name == "patch" else
                 surface_samples(V, F, 40000, random_state=rng))
        for label, even in (("before (even=False)", False), ("after (even=True)", True), ("ceiling", None)):
            t0 = time.perf_counter()
            if even is None:  # what a perfect sampler would give: uniform surface points, projected the same way
                P = local_spacing_project(fresh, X, MLS_RADIUS * delta)[0]
            else:
                P = densify(X, 40000, random_state=args.seed, even=even).points
            seconds = time.perf_counter() - t0
            hit = cKDTree(P).query(ref, k=1)[0] <= 0.5 * delta
            dc, sc = hit[dense].mean(), hit[sparse].mean()
            d = np.asarray(dist(P) if name == "patch" else dist(P)[0]) / delta
            print(f"| {name} | {label} | {dc:.3f} | {sc:.3f} | {sc / dc:.3f} | {d.mean():.3f} | "
                  f"{np.percentile(d, 95):.3f} | {seconds:.1f} |", flush=True)


def uneven_tiled(args):
    from scipy.spatial import cKDTree

    print("| input | run | tiles | dense / sparse density | dense coverage | sparse coverage | mean / δ | "
          "p95 / δ | time (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.meshes.split(","):
        rng = np.random.default_rng(args.seed)
        n_dense = int(round(args.n * 8 / 9))
        if name == "patch":
            U = _patch_points(rng, int(2.2 * n_dense))
            cut, ref = 2.0, _patch_points(rng, 200_000)

            def dist(P):
                return np.abs(P[:, 2] - _height(P[:, 0], P[:, 1]))
        else:
            V, F = mesh(name)
            U = surface_samples(V, F, int(2.2 * n_dense), random_state=rng)
            cut, ref = float(np.median(U[:, 0])), surface_samples(V, F, 200_000, random_state=rng)
            md = MeshDistance(V, F)

            def dist(P, md=md):
                return np.asarray(md.query(P)[0])
        lo, hi = np.flatnonzero(U[:, 0] <= cut), np.flatnonzero(U[:, 0] > cut)
        X = np.r_[U[rng.choice(lo, n_dense, replace=False)], U[rng.choice(hi, args.n - n_dense, replace=False)]]
        delta = mean_spacing(X)
        inner = np.ones(len(ref), bool)
        if name == "patch":
            inner = (ref[:, 1] > 0.1) & (ref[:, 1] < 3.9) & (ref[:, 0] > 0.1) & (ref[:, 0] < 3.9)
        band = inner & (np.abs(ref[:, 0] - cut) >= 2 * delta)
        dense, sparse = band & (ref[:, 0] <= cut), band & (ref[:, 0] > cut)
        area_d, area_s = (ref[:, 0] <= cut).mean(), (ref[:, 0] > cut).mean()
        for label, tp, even in (("tiled, even off", args.tile_points, False), ("tiled, even auto", args.tile_points,
                                                                                 "auto"), ("untiled, even auto", 0,
                                                                                           "auto")):
            t0 = time.perf_counter()
            out, diag = densify_cloud(PointCloud(X, {}, ".npy", {}), factor=4.0, random_state=args.seed,
                                      tile_points=tp, even=even)
            seconds = time.perf_counter() - t0
            P = out.positions
            ratio = ((P[:, 0] <= cut).sum() / area_d) / ((P[:, 0] > cut).sum() / area_s)
            hit = cKDTree(P).query(ref, k=1, workers=-1)[0] <= 0.5 * delta
            d = dist(P) / delta
            print(f"| {name} | {label} | {len(diag.get('tiles') or [0]) if tp else 1} | {ratio:.2f} | "
                  f"{hit[dense].mean():.3f} | {hit[sparse].mean():.3f} | {d.mean():.3f} | "
                  f"{np.percentile(d, 95):.3f} | {seconds:.1f} |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    a = sub.add_parser("noise")
    a.add_argument("--meshes", default="stanford-bunny,cow,suzanne,teapot,torus")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--n", type=int, default=2000, help="input points per mesh (×20 out)")
    a.add_argument("--oracle", action="store_true", help="also the support with an oracle's choice of kernels")
    b = sub.add_parser("large")
    b.add_argument("--n", type=int, default=200_000)
    b.add_argument("--factor", type=float, default=4.0)
    b.add_argument("--tile-points", type=int, default=100_000)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", help="write through densify_job to DIR/large_out.npy, tile by tile")
    c = sub.add_parser("cad")
    c.add_argument("--seed", type=int, default=0)
    u = sub.add_parser("uneven")
    u.add_argument("--meshes", default="patch,stanford-bunny,cow,suzanne,teapot")
    u.add_argument("--seed", type=int, default=0)
    w = sub.add_parser("uneven-tiled")
    w.add_argument("--meshes", default="patch,stanford-bunny")
    w.add_argument("--n", type=int, default=200_000)
    w.add_argument("--tile-points", type=int, default=30_000)
    w.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    {"noise": noise, "large": large, "cad": cad, "uneven": uneven, "uneven-tiled": uneven_tiled}[args.what](args)


if __name__ == "__main__":
    main()
