"""Job A side by side with a brute-force JAX implementation of the same MM-SOLD step (issue 7).

The issue's throughput target is relative to the authors' JAX code (brute-force
score over all training points, 1,000 particles, 2,000 moons points, M = 4).
Their code is not part of this project; this script times *our own* JAX
implementation of the same algorithm, written from the paper's equations the
way a JAX user would (one jitted ``lax.fori_loop`` over steps, every
barycentre a dense softmax over all n points, float32 as JAX defaults to), in
the same process as ``mmsold``'s sampler on the same job:

    Z = μ + Y Lᵀ,  S = (mean_u b_t(Z + u) − Z)/t²,  G = S L,
    Ỹ = Y + h Π_Y(G) + √(2h) Π_Y(ξ̄),  Y ← √P · polar(centred Ỹ)

Needs ``jax`` (``pip install jax``); run by hand::

    python benchmarks/jax_reference.py [--particles 1000] [--samples 10000] [--steps 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def jax_sampler(X, mean, chol, t, sigma, h, M, P, steps):
    """A jitted function (key) -> Z of shape (P, d): MM-SOLD with the brute-force score, LM noise."""
    import jax
    import jax.numpy as jnp

    X = jnp.asarray(X, dtype=jnp.float32)
    mu = jnp.asarray(mean, dtype=jnp.float32)
    L = jnp.asarray(chol, dtype=jnp.float32)
    sqn = jnp.sum(X * X, axis=1)
    d = X.shape[1]

    def project(Y, V):
        V = V - V.mean(axis=0)
        A = Y.T @ V / P
        return V - Y @ (0.5 * (A + A.T))

    def retract(Yt):
        C = Yt - Yt.mean(axis=0)
        U, _, Vt = jnp.linalg.svd(C, full_matrices=False)
        return jnp.sqrt(P) * U @ Vt

    def barycentre(Q):  # (m, d) -> (m, d), all n points
        logits = (2.0 * Q @ X.T - sqn[None, :]) / (2.0 * t * t)
        w = jax.nn.softmax(logits, axis=1)
        return w @ X

    def step(_, carry):
        Y, xi, key = carry
        key, k1, k2 = jax.random.split(key, 3)
        Z = mu + Y @ L.T
        e = jax.random.normal(k1, (M // 2, P, d))
        U = sigma * jnp.concatenate([e, -e])
        B = jax.vmap(barycentre)(Z[None] + U).mean(axis=0)
        G = (B - Z) / (t * t) @ L
        xi_new = jax.random.normal(k2, (P, d))
        Y = retract(Y + h * project(Y, G) + jnp.sqrt(2.0 * h) * project(Y, 0.5 * (xi + xi_new)))
        return Y, xi_new, key

    @jax.jit
    def run(key, Y0):
        k0, key = jax.random.split(key)
        Y, _, _ = jax.lax.fori_loop(0, steps, step, (Y0, jax.random.normal(k0, (P, d)), key))
        return mu + Y @ L.T

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=10_000, help="mmsold's job A sample count")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    try:
        import jax
    except ImportError:
        sys.exit("jax is not installed: pip install jax")
    from mmsold_cli import fit_moments, sample
    from mmsold_cli.datasets import moons
    from mmsold_cli.sampling import resolve_settings

    X = moons(2000, random_state=0)
    model = fit_moments(X)
    st = resolve_settings(model, a.particles)
    t, sigma, M, P = st["t"], st["sigma"], st["M"], a.particles
    lam = float(np.linalg.eigvalsh(model.covariance_)[-1])
    h = st["eta"] * (t * t + sigma * sigma) / lam
    rng = np.random.default_rng(0)
    Y0 = rng.standard_normal((P, 2))
    Y0 -= Y0.mean(axis=0)
    u, _, vt = np.linalg.svd(Y0, full_matrices=False)
    Y0 = np.sqrt(P) * u @ vt
    run = jax_sampler(X, model.mean_, model.cholesky_, t, sigma, h, M, P, a.steps)
    t0 = time.perf_counter()
    run(jax.random.PRNGKey(0), Y0).block_until_ready()
    compile_s = time.perf_counter() - t0
    walls = []
    for r in range(a.repeats):
        t0 = time.perf_counter()
        Z = run(jax.random.PRNGKey(r + 1), Y0).block_until_ready()
        walls.append(time.perf_counter() - t0)
    jw = float(np.median(walls))
    Z = np.asarray(Z, dtype=np.float64)
    cov_err = np.linalg.norm(np.cov(Z.T, bias=True) - model.covariance_) / np.linalg.norm(model.covariance_)

    sample(model, 2000, random_state=0, steps=2)  # warm-up
    ours = {}
    for N in (a.particles, a.samples):
        w = [sample(model, N, random_state=r, steps=a.steps).diagnostics["wall_time"] for r in range(a.repeats)]
        ours[N] = N * a.steps / float(np.median(w))
    jps = P * a.steps / jw
    print(f"load average {os.getloadavg()[0]:.2f}; jax {jax.__version__} on {jax.devices()[0].platform}; "
          f"moons 2,000 × 2, M = {M}, t = {t:.4f}, σ = {sigma:.4f}, {a.steps} steps, median of {a.repeats}")
    print("| implementation | particles | particle-steps/s | vs JAX |")
    print("|---|---:|---:|---:|")
    print(f"| JAX brute force (compile {compile_s:.1f} s; final cov error {cov_err:.1e}) | {P:,} | {jps:,.0f} | 1.0 |")
    for N, v in ours.items():
        print(f"| mmsold (grid, numba) | {N:,} | {v:,.0f} | {v / jps:.1f} |")


if __name__ == "__main__":
    main()
