"""Speed of the sampling loop on three jobs, beside the brute-force score and the quality (issue 7).

Jobs (data from ``../shared/data``; B and C are skipped when it is missing):

* A — 2-D moons, 2,000 training points, 10,000 samples.
* B — 100,000 points on the Stanford bunny's surface (area-weighted), 100,000 samples.
* C — MNIST PCA-64 codes of the 60,000 official training images, 10,000 samples.

For each job, in fresh processes of ``mmsold sample`` (the CLI, as a user runs it):

* ``install``: first run with an empty numba cache (imports, compilation, index build, sampling);
* ``fresh``: a new process with the on-disk cache in place (median of ``--repeats``);
* ``peak RSS`` of that process (median of ``--repeats``, the largest beside it), against the budget 2 × (training data + one batch of
  particles) + the fixed overhead of ``mmsold sample`` on a tiny job (measured here, see
  :func:`fixed_overhead`);

and in this process, once warm (median of ``--repeats``):

* ``wall``: the sampling time and its throughput in particle-steps per second;
* ``brute``: the same sampler with the exact score (K = n, every training point,
  BLAS) on ``--brute-particles`` particles for ``--brute-steps`` steps;
* quality: sliced W2 and MMD² (RBF, median bandwidth) of the samples against held-out
  points, beside the same figures for the brute-force sampler (on a subset for B
  and C) and for as many training points as samples (the floor).

Run by hand, never in CI::

    python benchmarks/speed.py                 # all jobs
    python benchmarks/speed.py --jobs A --repeats 5
    PYTHONPATH=/path/to/old/checkout python benchmarks/speed.py --jobs A   # "before" figures

Timings are only meaningful on an idle machine: the load average is printed
beside the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


# ---------------------------------------------------------------------------- data


def job_a(work: Path):
    from mmsold_cli.datasets import moons

    return moons(2000, random_state=0), moons(10_000, random_state=1), 10_000


def job_b(work: Path):
    from mmsold_cli.datasets import surface_samples
    from mmsold_cli.io.mesh import read_mesh

    mesh = DATA / "meshes" / "stanford-bunny.obj"
    if not mesh.exists():
        return None
    v, f = read_mesh(mesh)
    return surface_samples(v, f, 100_000, random_state=0), surface_samples(v, f, 20_000, random_state=1), 100_000


def job_c(work: Path):
    path = DATA / "mnist.npz"
    if not path.exists():
        return None
    sys.path.insert(0, str(Path(__file__).parent))
    from latent_data import split  # the file is sorted by label: rebuild the official split per class

    with np.load(path) as z:
        images = z["images"].reshape(len(z["images"]), -1).astype(np.float64) / 255.0
        itr, ite = split(z["labels"])
    train, test = images[itr], images[ite]
    del images
    mu = train.mean(axis=0)
    # principal axes from the covariance of the training images (784 × 784)
    cov = (train - mu).T @ (train - mu) / len(train)
    w, V = np.linalg.eigh(cov)
    W = V[:, ::-1][:, :64]
    return (train - mu) @ W, (test - mu) @ W, 10_000


JOBS = {"A": ("2-D moons", job_a), "B": ("3-D bunny surface", job_b), "C": ("MNIST PCA-64", job_c)}


# ---------------------------------------------------------------------------- helpers


# The child reports its own peak RSS (VmHWM of its own address space) at exit: the rusage of a
# forked child would also count the benchmark's pages it shared before exec.
_CLI = ("import atexit, os\n"
        "def _hwm():\n"
        "    kb = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
        "    open(os.environ['MMSOLD_BENCH_HWM'], 'w').write(kb[0] if kb else '0')\n"
        "atexit.register(_hwm)\n"
        "from mmsold_cli.cli import run; run()")


def cli_cmd(*args):
    return [sys.executable, "-c", _CLI, *map(str, args)]


def run_child(cmd, env=None):
    """Run cmd; return (wall seconds, peak RSS in MB) of that process alone."""
    env = dict(os.environ if env is None else env)
    with tempfile.NamedTemporaryFile(suffix=".hwm") as hwm:
        env["MMSOLD_BENCH_HWM"] = hwm.name
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
        text = Path(hwm.name).read_text().strip()
    return wall, (int(text) / 1024.0 if text else float("nan"))


def quality(S, ref, random_state=0):
    from mmsold_cli.metrics.points import mmd2_rbf, sliced_w2

    rng = np.random.default_rng(random_state)
    if len(S) > 20_000:
        S = S[rng.choice(len(S), 20_000, replace=False)]
    return sliced_w2(S, ref, random_state=random_state), mmd2_rbf(S, ref, random_state=random_state)


def load_avg():
    return os.getloadavg()[0]


# ---------------------------------------------------------------------------- one job


def measure(name, args, work: Path, overhead_mb: float):
    from mmsold_cli import fit_moments, sample

    label, make = JOBS[name]
    made = make(work)
    if made is None:
        print(f"job {name}: {DATA} not available, skipped", file=sys.stderr)
        return None
    train, held, N = made
    N = args.samples.get(name, args.samples.get("*", N))
    steps_override = args.steps.get(name, args.steps.get("*"))
    n, d = train.shape
    train_path, model_path, out_path = work / f"{name}_train.npy", work / f"{name}_model.h5", work / f"{name}_out.npy"
    np.save(train_path, train)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p and Path(p).is_dir()])
    t0 = time.perf_counter()
    run_child(cli_cmd("fit-moments", train_path, "-o", model_path, "--overwrite"), env)
    fit_time = time.perf_counter() - t0
    steps_opt = ["--steps", steps_override] if steps_override else []
    sample_cmd = cli_cmd("sample", model_path, "-n", N, "-o", out_path, "--seed", 0, "--overwrite", *steps_opt)
    row = {"job": name, "what": label, "n": n, "d": d, "N": N, "fit_s": fit_time}
    if not args.skip_install:
        with tempfile.TemporaryDirectory() as cache:
            row["install_s"], _ = run_child(sample_cmd, dict(env, NUMBA_CACHE_DIR=cache))
    fresh = [run_child(sample_cmd, env) for _ in range(args.repeats)]
    row["fresh_s"] = float(np.median([f[0] for f in fresh]))
    # the median, as the issue asks of every figure ("median of several runs, wall time and peak RSS"),
    # and the largest beside it
    row["rss_mb"] = float(np.median([f[1] for f in fresh]))
    row["rss_max_mb"] = float(max(f[1] for f in fresh))
    batch = min(N, 65_536)
    row["rss_budget_mb"] = 2 * (n * d + batch * d) * 8 / 2**20 + overhead_mb

    model = fit_moments(train)
    kw = {"steps": steps_override} if steps_override else {}
    # warm-up (compilation, caches, threads) on the numba kernels the job runs (a job this small alone would take NumPy)
    sample(model, min(N, 2000), random_state=0, steps=2, backend="numba")
    walls = []
    for r in range(args.repeats):
        res = sample(model, N, random_state=r, **kw)
        walls.append(res.diagnostics["wall_time"])
    steps = res.settings["steps"]
    row["steps"] = steps
    row["search"] = res.settings.get("search")
    row["wall_s"] = float(np.median(walls))
    row["pstep_per_s"] = N * steps / row["wall_s"]
    row["sw2"], row["mmd2"] = quality(res.samples, held)

    rng = np.random.default_rng(0)
    floor = train[rng.choice(n, min(N, n), replace=False)]
    row["train_sw2"], row["train_mmd2"] = quality(floor, held)
    row["load"] = load_avg()
    if args.no_brute:
        return row
    # brute force: the same sampler, every training point in every barycentre
    Pb, Sb = min(args.brute_particles, N), args.brute_steps
    tb = time.perf_counter()
    sample(model, Pb, random_state=0, K=n, steps=Sb)
    row["brute_pstep_per_s"] = Pb * Sb / (time.perf_counter() - tb)
    row["speedup"] = row["pstep_per_s"] / row["brute_pstep_per_s"]
    Nq = min(N, args.brute_quality_samples.get(name, args.brute_quality_samples.get("*", 0)))
    if Nq > d:
        tq = time.perf_counter()
        bq = sample(model, Nq, random_state=0, K=n, **kw)
        row["brute_quality_s"] = time.perf_counter() - tq
        row["brute_N"] = Nq
        row["brute_sw2"], row["brute_mmd2"] = quality(bq.samples, held)
        ours_small = sample(model, Nq, random_state=0, **kw)
        row["ours_small_sw2"], row["ours_small_mmd2"] = quality(ours_small.samples, held)
    row["load"] = load_avg()
    return row


def fixed_overhead(work: Path, env, repeats: int = 3) -> float:
    """Peak RSS of ``mmsold sample`` on a tiny job, less that job's own 2 × (data + batch): the interpreter,
    numpy, scipy, numba and its kernels, h5py, rich, and the kernels' worker thread.

    200 × 2 training points and 1,000 samples: enough particles that the kernels hand work to their
    worker thread, as every real job does (its stack and malloc arena, ~1 MiB, are a fixed cost).  With
    100 samples, as measured before, everything ran on one thread and that cost was left out.
    """
    n, d, N = 200, 2, 1000
    rng = np.random.default_rng(0)
    np.save(work / "tiny.npy", rng.standard_normal((n, d)))
    run_child(cli_cmd("fit-moments", work / "tiny.npy", "-o", work / "tiny.h5", "--overwrite"), env)
    cmd = cli_cmd("sample", work / "tiny.h5", "-n", N, "-o", work / "tiny_out.npy", "--overwrite", "--seed", 0,
                  # the numba kernels, as the benchmark jobs run them (a job this small would run on NumPy)
                  "--backend", "numba")
    run_child(cmd, env)  # once to fill the numba cache: compiling takes ~40 MB more than loading
    peak = float(np.median([run_child(cmd, env)[1] for _ in range(repeats)]))
    return peak - 2 * (n * d + N * d) * 8 / 2**20


def per_job(text):
    """'2000' (every job) or 'C=2000,B=10000' → {job: int}, '*' for every job."""
    out = {}
    for part in text.split(","):
        key, _, val = part.rpartition("=")
        out[key.strip() or "*"] = int(val)
    return out


def help_time(env, repeats=5):
    return float(np.median([run_child(cli_cmd("--help"), env)[0] for _ in range(repeats)]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", default="A,B,C")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--samples", type=per_job, default={}, help="override sample counts: 2000 or C=2000,B=10000")
    ap.add_argument("--steps", type=per_job, default={}, help="override the step count: 20 or C=20")
    ap.add_argument("--brute-particles", type=int, default=1000)
    ap.add_argument("--brute-steps", type=int, default=3)
    ap.add_argument("--brute-quality-samples", type=per_job, default=per_job("A=2000,B=0,C=500"),
                    help="samples drawn with the brute-force score for its quality figures, per job (0: skip)")
    ap.add_argument("--skip-install", action="store_true", help="skip the empty-cache (fresh install) run")
    ap.add_argument("--no-brute", action="store_true", help="skip the brute-force figures (e.g. for a 'before' run)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p and Path(p).is_dir()])
        overhead = fixed_overhead(work, env)
        helps = help_time(env)
        for name in args.jobs.split(","):
            row = measure(name.strip(), args, work, overhead)
            if row is not None:
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    print(f"\nload average {load_avg():.2f} (timings are meaningful below ~1.5); "
          f"mmsold --help {helps:.2f} s; fixed overhead of `mmsold sample` {overhead:.2f} MiB")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"overhead_mb": overhead, "help_s": helps, "rows": rows}, indent=1))


def table(rows):
    head = ["job", "n × d", "samples×steps", "install s", "fresh s", "wall s", "particle-steps/s",
            "brute p-steps/s", "× brute", "peak RSS MiB (budget; largest run)", "sliced W2 (ours vs brute at N_q; train)",
            "MMD² (ours vs brute at N_q; train)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def f(v, fmt):
        return "–" if v is None else format(v, fmt)

    for r in rows:
        out.append("| " + " | ".join([
            f"{r['job']} {r['what']}",
            f"{r['n']:,} × {r['d']}",
            f"{r['N']:,} × {r['steps']}",
            f(r.get("install_s"), ".1f"),
            f(r["fresh_s"], ".2f"),
            f(r["wall_s"], ".2f"),
            f(r["pstep_per_s"], ",.0f"),
            f(r.get("brute_pstep_per_s"), ",.0f"),
            f(r.get("speedup"), ".0f"),
            f"{r['rss_mb']:.2f} ({r['rss_budget_mb']:.2f}; max {r['rss_max_mb']:.2f})",
            f"{r['sw2']:.4f} ({f(r.get('ours_small_sw2'), '.4f')} vs {f(r.get('brute_sw2'), '.4f')}; "
            f"{r['train_sw2']:.4f})",
            f"{r['mmd2']:.1e} ({f(r.get('ours_small_mmd2'), '.1e')} vs {f(r.get('brute_mmd2'), '.1e')}; "
            f"{r['train_mmd2']:.1e})",
        ]) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
