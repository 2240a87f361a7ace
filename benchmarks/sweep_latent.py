"""Sweep of MM-SOLD's noise t and smoothing σ on a latent set: MNIST PCA-64 (the latent defaults).

Lengths are in units of ℓ = r̄₁₆ √(2/d) (``mmsold_cli.defaults.length_scale``).
Each row: 1,000 samples at defaults otherwise (100 steps, M = 4, K = 16, data
start), scored against held-out codes of the official test split:

* KID (polynomial kernel, unbiased, mean over subsets) against the 10,000 test codes;
* precision / recall (k-NN balls, k = 3) against 1,000 test codes (equal sizes);
* memorisation fraction against the 60,000 training codes;
* sliced W2 against the test codes.

The first row is 1,000 training codes, the yardstick.  Needs
``../shared/data/mnist.npz``; run by hand::

    python benchmarks/sweep_latent.py
    python benchmarks/sweep_latent.py --grid 0.25:0.75,0.5:0.75 --n 2000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

DEFAULT_GRID = "0.1:0.5,0.1:0.75,0.1:1,0.25:0.5,0.25:0.75,0.25:1,0.5:0.75,1:0.5"


def main():
    from samplers import MNIST, load_mnist_pca

    from mmsold_cli import fit_moments, sample
    from mmsold_cli.defaults import length_scale
    from mmsold_cli.metrics.points import kid, memorisation_fraction, precision_recall, sliced_w2

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default=DEFAULT_GRID, help="t:σ pairs in units of ℓ")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if not MNIST.exists():
        sys.exit(f"{MNIST} not found: the latent sweep needs MNIST")
    train, test = load_mnist_pca()
    model = fit_moments(train)
    ell = length_scale(model)
    ref = test[np.random.default_rng(0).choice(len(test), a.n, replace=False)]
    print(f"MNIST PCA-64: {train.shape[0]} training codes, {test.shape[0]} test codes; spacing δ = "
          f"{model.spacing_:.3f}, ℓ = {ell:.3f}; {a.n} samples, seed {a.seed}\n")
    print(f"{'t/ℓ':>5} {'σ/ℓ':>5} {'KID':>8} {'prec':>6} {'recall':>6} {'memor.':>6} {'SW2':>6} {'wall s':>7}")

    def row(label_t, label_s, S, wall):
        p, r = precision_recall(S, ref)
        k, _ = kid(S, test, n_subsets=20, subset_size=min(len(S), 1000))
        mem = memorisation_fraction(S, model.X_, model.nn_dist_, model.index_)
        print(f"{label_t:>5} {label_s:>5} {k:8.4f} {p:6.3f} {r:6.3f} {mem:6.3f} {sliced_w2(S, test):6.3f} {wall:7.1f}",
              flush=True)

    row("train", "", train[np.random.default_rng(1).choice(len(train), a.n, replace=False)], 0.0)
    for pair in a.grid.split(","):
        ft, fs = (float(v) for v in pair.split(":"))
        t0 = time.perf_counter()
        res = sample(model, a.n, random_state=a.seed, t=ft * ell, sigma=fs * ell)
        row(f"{ft:g}", f"{fs:g}", res.samples, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
