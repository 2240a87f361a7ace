"""Quality on the 2-D suite: MM-SOLD against the training set itself, gaussian_kde and naive SOLD.

    python benchmarks/quality_2d.py [--seeds 3] [--steps 200] [--datasets moons,...]

For each data set and seed: 2,000 fresh training points, 1,000 held-out test
points and 1,000 samples per method; W2 is exact (optimal assignment).  The
reference method "train" is 1,000 of the training points drawn without
replacement: a generator can hardly be expected to beat real data.  Prints
a table of means over seeds, the ratios the pipeline issue sets targets on,
and the memorisation fraction (fresh generator points as the baseline).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mmsold_cli import fit_moments, sample
from mmsold_cli.datasets import TOY_2D
from mmsold_cli.metrics.points import memorisation_fraction, w2_exact

METHODS = ("train", "fresh", "kde", "sold", "mmsold")


def run_one(name, seed, n_train=2000, n_test=1000, n_samples=1000, **opts):
    gen = TOY_2D[name]
    rng = np.random.default_rng(seed)
    X = gen(n_train, random_state=rng)
    T = gen(n_test, random_state=rng)
    model = fit_moments(X)
    out = {}
    times = {}
    out["train"] = X[rng.choice(n_train, n_samples, replace=False)]
    out["fresh"] = gen(n_samples, random_state=rng)
    from scipy.stats import gaussian_kde

    out["kde"] = gaussian_kde(X.T, ).resample(n_samples, seed=int(rng.integers(2**31))).T
    for s in ("sold", "mmsold"):
        t0 = time.perf_counter()
        out[s] = sample(model, n_samples, sampler=s, random_state=seed, **opts).samples
        times[s] = time.perf_counter() - t0
    res = {}
    for k, v in out.items():
        res[k] = (w2_exact(v, T), memorisation_fraction(v, X, model.nn_dist_, model.index_))
    return res, times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--datasets", default=",".join(TOY_2D))
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--t-factor", type=float, default=None, help="t = factor × spacing")
    ap.add_argument("--sigma-factor", type=float, default=None, help="σ = factor × t")
    ap.add_argument("--eta", type=float, default=None)
    ap.add_argument("-K", type=int, default=None)
    ap.add_argument("-M", type=int, default=None)
    a = ap.parse_args(argv)
    rows = {}
    for name in a.datasets.split(","):
        acc = {m: [] for m in METHODS}
        tim = []
        for seed in range(a.seeds):
            opts = {"steps": a.steps, "eta": a.eta, "K": a.K, "M": a.M}
            if a.t_factor is not None or a.sigma_factor is not None:
                from mmsold_cli import defaults

                gen = TOY_2D[name]
                X = gen(2000, random_state=np.random.default_rng(seed))
                sp = fit_moments(X).spacing_
                t = (a.t_factor or defaults.T_FACTOR) * sp
                opts.update(t=t, sigma=(a.sigma_factor if a.sigma_factor is not None else defaults.SIGMA_FACTOR) * t)
            r, tm = run_one(name, seed, **opts)
            for m in METHODS:
                acc[m].append(r[m])
            tim.append(tm["mmsold"])
        rows[name] = {m: np.mean(acc[m], axis=0) for m in METHODS}
        rows[name]["time"] = float(np.mean(tim))
    hdr = f"{'data set':<13}" + "".join(f"{'W2 ' + m:>11}" for m in METHODS) + f"{'mm/train':>9}{'mm/kde':>8}{'mm/sold':>8}" \
          + f"{'mem fresh':>10}{'mem mm':>8}{'mem sold':>9}{'t mm(s)':>8}"
    print(hdr)
    ratios = []
    for name, r in rows.items():
        w = {m: r[m][0] for m in METHODS}
        ratios.append((w["mmsold"] / w["train"], w["mmsold"] / w["kde"], w["mmsold"] / w["sold"]))
        print(f"{name:<13}" + "".join(f"{w[m]:>11.4f}" for m in METHODS)
              + f"{ratios[-1][0]:>9.3f}{ratios[-1][1]:>8.3f}{ratios[-1][2]:>8.3f}"
              + f"{r['fresh'][1]:>10.3f}{r['mmsold'][1]:>8.3f}{r['sold'][1]:>9.3f}{r['time']:>8.2f}")
    rt = np.mean(ratios, axis=0)
    print(f"{'mean':<13}" + " " * 11 * len(METHODS) + f"{rt[0]:>9.3f}{rt[1]:>8.3f}{rt[2]:>8.3f}")
    return rows


if __name__ == "__main__":
    main()
