"""Large runs: wall time and peak memory of fit-moments and sample, against the memory formula.

    python benchmarks/large_runs.py memory                # calibrate: small runs, measured vs formula
    python benchmarks/large_runs.py sample-1m [--steps S]  # sample -n 1,000,000 from 100,000 3-D points
    python benchmarks/large_runs.py fit-1m    [--steps S]  # 1,000,000 3-D training points: fit, sample
    python benchmarks/large_runs.py fit-64d   [--steps S]  # 200,000 64-D training points: fit, sample

Every job runs the real ``mmsold`` command in a fresh process under
``/usr/bin/time -v`` (Debian package ``time``) and reports its wall time and
peak resident set size next to the bound of :mod:`mmsold_cli.sampling`'s
memory formula (:func:`mmsold_cli.sampling.memory_estimate`).  Data sets are
made here, deterministically: 3-D points on the bumpy torus of
:mod:`mmsold_cli.datasets` with a little noise, and 64-D codes from a mixture
of 32 anisotropic Gaussians on an 8-D subspace plus isotropic noise (the shape
of latent codes).  Files go to ``--workdir`` (default a temporary folder,
removed afterwards unless ``--keep``).  Note the machine's load
(``uptime``) beside the figures: timings taken under load > 1.5 are not
comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TIME = "/usr/bin/time"


def torus_points(n: int, seed: int = 0) -> np.ndarray:
    from mmsold_cli.datasets import bumpy_torus, surface_samples

    V, F = bumpy_torus()
    rng = np.random.default_rng(seed)
    return surface_samples(V, F, n, random_state=rng) + 0.002 * rng.standard_normal((n, 3))


def latent_codes(n: int, d: int = 64, k: int = 8, clusters: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, k)))[0]
    centres = 3.0 * rng.standard_normal((clusters, k))
    scales = rng.uniform(0.3, 1.0, (clusters, k))
    lab = rng.integers(0, clusters, n)
    codes = centres[lab] + scales[lab] * rng.standard_normal((n, k))
    return codes @ basis.T + 0.05 * rng.standard_normal((n, d))


def timed(cmd: list[str], env=None) -> dict:
    """Run cmd under /usr/bin/time -v; wall seconds, peak RSS (MB) and the command's JSON summary."""
    if not Path(TIME).exists():
        sys.exit(f"{TIME} is missing: apt-get install time")
    t0 = time.perf_counter()
    proc = subprocess.run([TIME, "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        summary = {}
    return {"wall_s": wall, "peak_rss_mb": rss_kb / 1024, "summary": summary, "cmd": " ".join(cmd)}


def mmsold(*args) -> list[str]:
    return [sys.executable, "-c", "from mmsold_cli.cli import run; run()", *map(str, args)]


def fit(work: Path, name: str, X: np.ndarray) -> tuple[Path, dict]:
    data, model = work / f"{name}.npy", work / f"{name}.h5"
    np.save(data, X)
    r = timed(mmsold("fit-moments", data, "-o", model, "--overwrite", "--json"))
    return model, r


def run_sample(model: Path, out: Path, n: int, steps: int, batch: int | None = None, extra=()) -> dict:
    args = ["sample", model, "-n", n, "-o", out, "--steps", steps, "--seed", 0, "--overwrite", "--json", *extra]
    if batch is not None:
        args += ["--batch-size", batch]
    return timed(mmsold(*args))


def estimate(model: Path, n: int, batch: int | None, steps: int) -> float:
    """The formula for the run's own settings (the steps choose the backend of small point-set jobs)."""
    from mmsold_cli.model import Model
    from mmsold_cli.sampling import memory_estimate

    m = Model.load(model)
    return memory_estimate(m, n, batch_size=batch, steps=steps) / 2**20


def row(label, r, est=None):
    s = r["summary"]
    extra = f"  formula ≤ {est:8.0f} MB" if est is not None else ""
    print(f"{label:<44} wall {r['wall_s']:8.1f} s   peak RSS {r['peak_rss_mb']:8.0f} MB{extra}"
          + (f"   ({s.get('particle_steps_per_s', 0):,.0f} particle-steps/s)" if "particle_steps_per_s" in s else ""),
          flush=True)


def job_memory(work: Path, steps: int):
    """Peak RSS against the formula while batch size, sample count and training size vary."""
    for n_train in (20_000, 200_000):
        model, r = fit(work, f"torus{n_train}", torus_points(n_train))
        row(f"fit-moments n={n_train:,} d=3", r)
        for N, B in ((100_000, 8_192), (100_000, 65_536), (400_000, 65_536), (400_000, 262_144)):
            r = run_sample(model, work / "s.npy", N, steps, B)
            row(f"  sample N={N:,} B={B:,} steps={steps}", r, estimate(model, N, B, steps))
    model, r = fit(work, "codes20k", latent_codes(20_000))
    row("fit-moments n=20,000 d=64", r)
    for N, B in ((20_000, 4_096), (20_000, 16_384), (60_000, 16_384)):
        r = run_sample(model, work / "s.npy", N, steps, B)
        row(f"  sample N={N:,} B={B:,} steps={steps}", r, estimate(model, N, B, steps))


def job_sample_1m(work: Path, steps: int):
    model, r = fit(work, "torus100k", torus_points(100_000))
    row("fit-moments n=100,000 d=3", r)
    r = run_sample(model, work / "s1m.npy", 1_000_000, steps)
    row(f"sample -n 1,000,000 steps={steps}", r, estimate(model, 1_000_000, None, steps))


def job_fit_1m(work: Path, steps: int):
    model, r = fit(work, "torus1m", torus_points(1_000_000))
    row("fit-moments n=1,000,000 d=3", r)
    r = run_sample(model, work / "s.npy", 100_000, steps)
    row(f"sample -n 100,000 steps={steps}", r, estimate(model, 100_000, None, steps))


def job_fit_64d(work: Path, steps: int):
    model, r = fit(work, "codes200k", latent_codes(200_000))
    row(f"fit-moments n=200,000 d=64 (index {r['summary'].get('index')})", r)
    r = run_sample(model, work / "s.npy", 10_000, steps)
    row(f"sample -n 10,000 steps={steps}", r, estimate(model, 10_000, None, steps))


JOBS = {"memory": job_memory, "sample-1m": job_sample_1m, "fit-1m": job_fit_1m, "fit-64d": job_fit_64d}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jobs", nargs="+", choices=sorted(JOBS))
    ap.add_argument("--steps", type=int, default=None, help="Langevin steps (default: 5 for memory, else 100)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mmsold-large-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"uptime: {os.popen('uptime').read().strip()}")
    try:
        for job in args.jobs:
            steps = args.steps or (5 if job == "memory" else 100)
            print(f"== {job}")
            JOBS[job](work, steps)
    finally:
        print(f"uptime: {os.popen('uptime').read().strip()}")
        if args.workdir is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
