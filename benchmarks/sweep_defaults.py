"""Sweep of MM-SOLD's data-scaled defaults on the 2-D suite.

    python benchmarks/sweep_defaults.py [--seeds 3]

For each (t factor, σ factor, steps) it prints the W2 ratio of MM-SOLD to the
training-subset baseline per data set and on average, and the memorisation
excess over fresh points; defaults.py takes the best row whose every ratio is
within the targets.  Baselines (training subset, fresh points) are computed once
per data set and seed.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from mmsold_cli import fit_moments, sample
from mmsold_cli.datasets import TOY_2D
from mmsold_cli.metrics.points import memorisation_fraction, w2_exact


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--t-factors", default="1,2,3")
    ap.add_argument("--sigma-factors", default="0.5,1,2")
    ap.add_argument("--steps", default="100,200")
    ap.add_argument("--eta", type=float, default=0.3)
    a = ap.parse_args(argv)
    data = {}
    for name, gen in TOY_2D.items():
        for seed in range(a.seeds):
            rng = np.random.default_rng(seed)
            X, T = gen(2000, random_state=rng), gen(1000, random_state=rng)
            model = fit_moments(X)
            sub = X[rng.choice(2000, 1000, replace=False)]
            fresh = gen(1000, random_state=rng)
            data[name, seed] = (model, T, w2_exact(sub, T),
                                memorisation_fraction(fresh, X, model.nn_dist_, model.index_))
    grid = list(itertools.product(*(map(float, s.split(",")) for s in (a.t_factors, a.sigma_factors, a.steps))))
    print(f"{'t/δ':>5}{'σ/t':>6}{'steps':>6}" + "".join(f"{n[:10]:>12}" for n in TOY_2D) + f"{'mean':>8}{'max':>7}{'mem+':>7}{'s/run':>7}")
    for tf, sf, steps in grid:
        ratios, mem, times = {n: [] for n in TOY_2D}, [], []
        for (name, seed), (model, T, w_sub, mem_fresh) in data.items():
            t = tf * model.spacing_
            t0 = time.perf_counter()
            S = sample(model, 1000, t=t, sigma=sf * t, steps=int(steps), eta=a.eta, random_state=seed).samples
            times.append(time.perf_counter() - t0)
            ratios[name].append(w2_exact(S, T) / w_sub)
            mem.append(memorisation_fraction(S, model.X_, model.nn_dist_, model.index_) - mem_fresh)
        per = [np.mean(ratios[n]) for n in TOY_2D]
        print(f"{tf:>5g}{sf:>6g}{int(steps):>6d}" + "".join(f"{r:>12.3f}" for r in per)
              + f"{np.mean(per):>8.3f}{np.max(per):>7.3f}{np.mean(mem):>7.3f}{np.mean(times):>7.2f}", flush=True)


if __name__ == "__main__":
    main()
