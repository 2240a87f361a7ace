"""The authors' own kNN MM-SOLD sampler, timed on our latent jobs: the baseline the issue's 20× / 10× came from.

``jax_latent_reference.py`` is *our* JAX code for the authors' Algorithm 2.  This script times *their* code as
published (GitHub ``GitZhenyu2019/MM-SOLD``, ``augmentation_handwritten/sampling_algo.py``,
``sample_class_overdamped_manifold_knn``), imported from a checkout you give it; nothing of theirs is in this
project.  Their settings for that sampler (``high_dimension/handwritten/config.py``): whitening of the top 20
directions, h = 5e-4, σ_gmm = 0.03, the timing cell σ = 0.1, M = 2, K = L = 20; 1,000 particles in one
ensemble here, as in ``latent_scale.py``.

Their function jits one step and runs it in a ``lax.fori_loop`` outside ``jit``, so every call traces and
compiles the loop again.  Each job is therefore timed as calls of ``--steps`` and of 2 steps (after one
warm-up call); the rate is over the difference, which leaves compilation and set-up out:
``particles × (steps − 2) / (wall(steps) − wall(2))``, medians of ``--repeats`` calls.

    python benchmarks/authors_latent_knn.py --repo /path/to/MM-SOLD [--jobs mnist64,mnist256] [--steps 40]

Needs ``jax`` (any interpreter with it and NumPy; ``mmsold_cli`` is not imported).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def timed(fn, steps, repeats):
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.asarray(fn(steps))  # blocks until the device is done
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls), walls


def run_job(job, repo, *, particles, steps, repeats, sigma, M, seed=0):
    import jax.numpy as jnp

    sys.path.insert(0, str(Path(repo) / "augmentation_handwritten"))
    sys.path.insert(0, str(HERE))
    import latent_data
    from sampling_algo import sample_class_overdamped_manifold_knn
    from whitening_utils import compute_sample_mean_cov, symmetric_matrix_sqrt_and_invsqrt

    what, load = latent_data.JOBS[job]
    train, _ = load(seed)
    Z = jnp.asarray(train, dtype=jnp.float32)
    mean, cov = compute_sample_mean_cov(Z)
    S_sqrt, S_invsqrt, _ = symmetric_matrix_sqrt_and_invsqrt(cov, eps=1e-5, k=20)

    def fn(nsteps):
        zw, _ = sample_class_overdamped_manifold_knn(
            Z_class=Z, mean_class=mean, S_sqrt_class=S_sqrt, S_invsqrt_class=S_invsqrt, n_particles=particles,
            nsteps=nsteps, h=5e-4, sigma_gmm=0.03, sigma_smoothing=sigma, M=M, knn_K=20, knn_L=20,
            discretization="LM", seed=seed)
        return zw

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    np.asarray(fn(2))
    first = time.perf_counter() - t0
    short, _ = timed(fn, 2, repeats)
    long_, walls = timed(fn, steps, repeats)
    rate = particles * (steps - 2) / max(long_ - short, 1e-9)
    return dict(job=what, n=train.shape[0], d=train.shape[1], first_s=first, short_s=short, long_s=long_,
                walls=walls, rate=rate, raw_rate=particles * steps / long_, load=(load0, os.getloadavg()[0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True, help="a checkout of GitZhenyu2019/MM-SOLD")
    ap.add_argument("--jobs", default="mnist64,mnist256")
    ap.add_argument("--particles", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sigma", type=float, default=0.1, help="their σ_smoothing (the timing cell's)")
    ap.add_argument("--draws", type=int, default=2, help="their M (the timing cell's)")
    a = ap.parse_args()
    if a.steps <= 2:
        sys.exit(f"--steps must exceed 2 (the rate is over calls of --steps and of 2 steps), got {a.steps}")
    if not (Path(a.repo) / "augmentation_handwritten" / "sampling_algo.py").is_file():
        sys.exit(f"{a.repo}: not a checkout of GitZhenyu2019/MM-SOLD (no augmentation_handwritten/sampling_algo.py)")
    try:
        import jax
    except ImportError:
        sys.exit("jax is not installed: pip install jax")
    rows = [run_job(job, a.repo, particles=a.particles, steps=a.steps, repeats=a.repeats, sigma=a.sigma, M=a.draws)
            for job in a.jobs.split(",")]
    print(f"the authors' sample_class_overdamped_manifold_knn; jax {jax.__version__} on {jax.devices()[0].platform}, "
          f"{os.cpu_count()} cores; {a.particles} particles, M = {a.draws}, σ = {a.sigma}, K = L = 20, h = 5e-4; "
          f"medians of {a.repeats} calls")
    print(f"| job | n × d | first call s | 2 steps s | {a.steps} steps s | particle-steps/s (difference) | "
          "particle-steps/s (whole call) | load start/end |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['job']} | {r['n']:,} × {r['d']} | {r['first_s']:.1f} | {r['short_s']:.2f} | {r['long_s']:.2f} | "
              f"{r['rate']:,.0f} | {r['raw_rate']:,.0f} | {r['load'][0]:.2f}/{r['load'][1]:.2f} |")


if __name__ == "__main__":
    main()
