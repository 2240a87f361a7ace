r"""The authors' kNN MM-SOLD sampler for latent codes (their Algorithm 2), re-written in JAX from the paper's equations.

The issue "Latent spaces at scale" measures our sampler against the authors'
latent-space sampler.  Their code is not part of this project; this is *our*
JAX implementation of what the paper describes, the way a JAX user writes it
(one jitted ``lax.fori_loop`` over steps, float32 as JAX defaults to):

* codes are whitened first, :math:`x \mapsto (x - m)\,C^{-\top}` with
  :math:`CC^\top` the training covariance, and the samples un-whitened at the end;
* per particle and step, **one** top-k over all n training points: the K = 20
  nearest of the particle z, plus L = 20 points drawn uniformly (with
  replacement) from the other n − K, each standing for (n − K)/L points;
* per draw :math:`u_m \sim \mathcal N(0,\sigma^2 I)` (antithetic pairs, M draws) the
  barycentre over those K + L candidates,

  .. math:: b(q) = \sum_j w_j x_j, \quad w \propto \omega_j \exp(-\|q - x_j\|^2 / 2t^2),
            \quad \omega_j = 1 \text{ (nearest)}, \ (n-K)/L \text{ (random)};

* the MM-SOLD step on the centred, scaled Stiefel manifold
  (:math:`Y^\top Y = P I`, :math:`\mathbf 1^\top Y = 0`):

  .. math::

      Z = \mu + Y L^\top, \quad S = (\overline{b(Z+u)} - Z)/t^2, \quad G = S L, \\
      \tilde Y = Y + h\,\Pi_Y(G) + \sqrt{2h}\,\Pi_Y(\bar\xi), \quad Y \leftarrow \sqrt P\ \mathrm{polar}(\tilde Y - \bar{\tilde Y})

  with :math:`\Pi_Y(V) = V_c - Y\,\mathrm{sym}(Y^\top V_c)/P` (:math:`V_c` centred), μ, L the
  whitened codes' mean and Cholesky factor (≈ 0, I), :math:`\bar\xi` the mean of this
  and the next step's Gaussian (as ``jax_reference.py``), h = 5e-4;
* the start as in the authors' code: training points plus N(0, t² I), carried onto the manifold.

t and σ are not given for this setting in the paper's algorithm box; we use the
package's latent defaults on the whitened codes, t = 0.3 ℓ, σ = 0.75 ℓ
(``mmsold_cli/defaults.py``), which do not change the cost.

Importable — ``run(train, particles=1000, steps=50, seed=0)`` returns
``dict(samples, particle_steps_per_s, compile_s, ...)`` — so that a benchmark can
time it in the same process as our sampler.  As a script (needs ``jax``; run by hand)::

    python benchmarks/jax_latent_reference.py [--jobs mnist64,mnist256] [--steps 40] [--repeats 3]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def _whiten(train):
    """(whitened codes, mean m, Cholesky factor C) with x_w = (x − m) C^{-T}."""
    m = train.mean(axis=0)
    Xc = train - m
    C = np.linalg.cholesky(Xc.T @ Xc / len(train))
    return np.linalg.solve(C, Xc.T).T, m, C


def _ell(Xw, rng, sample=2000):
    """ℓ = mean distance to the 16th nearest other training point × √(2/d), on a sample (exact, NumPy)."""
    n, d = Xw.shape
    rows = rng.choice(n, min(n, sample), replace=False)
    sq = np.einsum("ij,ij->i", Xw, Xw)
    D = sq[rows, None] - 2.0 * Xw[rows] @ Xw.T + sq[None, :]
    D[np.arange(len(rows)), rows] = np.inf  # not itself
    r16 = np.sqrt(np.maximum(np.partition(D, 15, axis=1)[:, 15], 0.0)).mean()
    return float(r16 * np.sqrt(2.0 / d))


def make_sampler(Xw, t, sigma, h, M, P, steps, K=20, L=20, remainder="uniform"):
    """A function (key, Y0) -> whitened samples (P, d): Algorithm 2, jitted.

    ``remainder``: how the L remainder points are drawn from the n − K outside the nearest. ``uniform``: L
    independent uniform draws (with replacement), O(L) a particle.  ``subset``: L distinct points, the L
    largest of n uniform keys with the K nearest masked — a second O(n) pass a particle, which is how the
    authors' published code draws them (``authors_latent_knn.py`` times that code).
    """
    import jax
    import jax.numpy as jnp

    X = jnp.asarray(Xw, dtype=jnp.float32)
    n, d = X.shape
    mu = jnp.asarray(Xw.mean(axis=0), dtype=jnp.float32)
    Lc = jnp.asarray(np.linalg.cholesky(np.cov(Xw.T, bias=True)), dtype=jnp.float32)
    sqn = jnp.sum(X * X, axis=1)
    log_omega = jnp.concatenate([jnp.zeros(K), jnp.full(L, np.log((n - K) / L))]).astype(jnp.float32)

    def project(Y, V):
        V = V - V.mean(axis=0)
        A = Y.T @ V / P
        return V - Y @ (0.5 * (A + A.T))

    def retract(Yt):
        U, _, Vt = jnp.linalg.svd(Yt - Yt.mean(axis=0), full_matrices=False)
        return jnp.sqrt(P) * U @ Vt

    def candidates(Z, key):
        """(P, K + L) indices: the K nearest of each particle (one top-k over all n) and L from the rest."""
        _, near = jax.lax.top_k(2.0 * Z @ X.T - sqn[None, :], K)  # largest −‖z − x‖² + ‖z‖²
        if remainder == "subset":
            u = jax.random.uniform(key, (P, n)).at[jnp.arange(P)[:, None], near].set(-1.0)
            return jnp.concatenate([near, jax.lax.top_k(u, L)[1]], axis=1)
        r = jax.random.randint(key, (P, L), 0, n - K)
        # map r ∈ [0, n − K) onto the indices outside `near`: step over each excluded index, in increasing order
        excl = jnp.sort(near, axis=1)
        for j in range(K):
            r = r + (r >= excl[:, j:j + 1])
        return jnp.concatenate([near, r], axis=1)

    def score(Z, key):
        k1, k2 = jax.random.split(key)
        idx = candidates(Z, k1)
        C = X[idx]  # (P, K + L, d)
        e = jax.random.normal(k2, (M // 2, P, d))
        Q = Z[None] + sigma * jnp.concatenate([e, -e])  # (M, P, d), antithetic
        d2 = jnp.sum((Q[:, :, None, :] - C[None]) ** 2, axis=-1)  # (M, P, K + L)
        w = jax.nn.softmax(-d2 / (2.0 * t * t) + log_omega, axis=-1)
        B = jnp.einsum("mpj,pjd->pd", w, C) / M
        return (B - Z) / (t * t)

    def step(_, carry):
        Y, xi, key = carry
        key, k1, k2 = jax.random.split(key, 3)
        Z = mu + Y @ Lc.T
        G = score(Z, k1) @ Lc  # pull-back to Y-space: G = S L (not S Lᵀ)
        xi_new = jax.random.normal(k2, (P, d))
        Y = retract(Y + h * project(Y, G) + jnp.sqrt(2.0 * h) * project(Y, 0.5 * (xi + xi_new)))
        return Y, xi_new, key

    def sampler(key, Y0):
        k0, key = jax.random.split(key)
        Y, _, _ = jax.lax.fori_loop(0, steps, step, (Y0, jax.random.normal(k0, (P, d)), key))
        return mu + Y @ Lc.T

    return jax.jit(sampler)


def run(train, particles=1000, steps=50, seed=0, *, K=20, L=20, M=4, h=5e-4, t=None, sigma=None, repeats=3,
        remainder="uniform"):
    """Sample with Algorithm 2 and time it.

    Returns dict(samples (particles, d) float64 in the codes' coordinates, particle_steps_per_s (median of
    ``repeats`` compiled runs), compile_s (tracing + XLA compilation), walls, t, sigma, h, K, L, M).
    """
    import jax

    train = np.asarray(train, dtype=np.float64)
    rng = np.random.default_rng(seed)
    Xw, m, C = _whiten(train)
    ell = _ell(Xw, rng)
    t = 0.3 * ell if t is None else t
    sigma = 0.75 * ell if sigma is None else sigma
    P, d = particles, train.shape[1]
    # the start of the authors' code: training points plus N(0, t² I), on the manifold (Y = (Z − μ) L^{-T}, retracted)
    Z0 = Xw[rng.integers(len(Xw), size=P)] + t * rng.standard_normal((P, d))
    Lw = np.linalg.cholesky(np.cov(Xw.T, bias=True))
    Y0 = np.linalg.solve(Lw, (Z0 - Xw.mean(axis=0)).T).T
    U, _, Vt = np.linalg.svd(Y0 - Y0.mean(axis=0), full_matrices=False)
    Y0 = (np.sqrt(P) * U @ Vt).astype(np.float32)
    fn = make_sampler(Xw, t, sigma, h, M, P, steps, K=K, L=L, remainder=remainder)
    key = jax.random.PRNGKey(seed)
    t0 = time.perf_counter()
    compiled = fn.lower(key, Y0).compile()
    compile_s = time.perf_counter() - t0
    walls = []
    for r in range(repeats):
        t0 = time.perf_counter()
        Zw = compiled(jax.random.PRNGKey(seed + r), Y0).block_until_ready()
        walls.append(time.perf_counter() - t0)
    wall = statistics.median(walls)
    samples = np.asarray(Zw, dtype=np.float64) @ C.T + m
    return dict(samples=samples, particle_steps_per_s=P * steps / wall, compile_s=compile_s, walls=walls,
                t=t, sigma=sigma, h=h, K=K, L=L, M=M, remainder=remainder)


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", default="mnist64,mnist256")
    ap.add_argument("--particles", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--draws", type=int, default=4, help="M")
    ap.add_argument("--remainder", choices=("uniform", "subset"), default="uniform",
                    help="L draws with replacement, or L distinct points (as the authors' code)")
    a = ap.parse_args()
    try:
        import jax
    except ImportError:
        sys.exit("jax is not installed: pip install jax")
    sys.path.insert(0, str(Path(__file__).parent))
    import latent_data

    rows = []
    for job in a.jobs.split(","):
        what, fn = latent_data.JOBS[job]
        train, _ = fn(0)
        load0 = os.getloadavg()[0]
        r = run(train, particles=a.particles, steps=a.steps, M=a.draws, repeats=a.repeats, remainder=a.remainder)
        cov = np.cov(r["samples"].T, bias=True)
        ref = np.cov(train.T, bias=True)
        rows.append((what, train.shape, r, np.linalg.norm(cov - ref) / np.linalg.norm(ref), load0, os.getloadavg()[0]))
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores; "
          f"{a.particles} particles, {a.steps} steps, M = {a.draws}, K = 20, L = 20 ({a.remainder}), h = 5e-4; "
          f"median of {a.repeats}")
    print("| job | n × d | compile s | runs s | particle-steps/s | final cov error | load start/end |")
    print("|---|---|---:|---|---:|---:|---|")
    for what, shape, r, err, l0, l1 in rows:
        print(f"| {what} | {shape[0]:,} × {shape[1]} | {r['compile_s']:.1f} | "
              f"{', '.join(f'{w:.1f}' for w in r['walls'])} | {r['particle_steps_per_s']:,.0f} | {err:.1e} | "
              f"{l0:.2f}/{l1:.2f} |")


if __name__ == "__main__":
    main()
