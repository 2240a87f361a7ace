"""Held-out likelihood of MM-SOLD's moment-matched density p* against KDE and a Gaussian mixture (issue 19).

    python benchmarks/labelled_density.py [--quick] [--n-train 1000] [--n-test 1000] [--seed 0] [--no-tune]

(a) The 2-D suite of ``quality_2d.py`` (``mmsold_cli.datasets.TOY_2D``): for each data set,
    n-train training and n-test held-out points drawn from the generator with one seeded
    ``default_rng(seed)`` (train first, then held-out).  Methods, all fitted on the training
    part only:

    * ``mmsold``      — ``MMSOLD()`` with its data-scaled defaults (t = 2 × spacing, σ = t/2 in 2-D);
    * ``mmsold-cv``   — t chosen by 3-fold ``GridSearchCV`` on held-out likelihood over
      {0.5, 1, 2, 4} × the default t with σ = t/2 (density_draws = 4 during the search,
      the default 16 for the refit);
    * ``kde``         — ``KernelDensity`` (Gaussian), bandwidth by 5-fold ``GridSearchCV`` over
      20 log-spaced values from 0.01 to 1 × the mean coordinate standard deviation;
    * ``gmm``         — ``GaussianMixture`` (full covariance), n_components 1..15 by BIC.

    Prints the mean held-out log-likelihood per point (higher is better) and the NLL.

(b) The Fig. 1 setting of Yao & Paulin: 12 training points equally spaced on the unit circle,
    1,000 evaluation points equally spaced on it (offset by half a step from nothing in
    particular: angles 2πk/1000).  For each σ of a grid, the NLL (mean −log p) of

    * ``p*``     — MM-SOLD's tilted density (``TiltedDensity``, exact quadrature, moments solved);
    * ``V_σ``    — the naive score-smoothed target e^{−V_σ} alone, normalised by the same
      quadrature grid (no tilt);
    * ``kde(t)`` — the Gaussian KDE of bandwidth t, which is p_t itself (what V_σ blurs);
    * ``kde(√(t²+σ²))`` — the KDE whose bandwidth matches the total blur of V_σ.

    Done at the default t of the 12 points (2 × their spacing: t = 1.035) and at t = 0.25.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from mmsold_cli.datasets import TOY_2D
from mmsold_cli.density.tilted import TiltedDensity
from mmsold_cli.estimators import MMSOLD


def _kde_cv(X, folds=5):
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KernelDensity

    s = float(np.mean(X.std(axis=0)))
    grid = {"bandwidth": s * np.logspace(-2, 0, 20)}
    return GridSearchCV(KernelDensity(), grid, cv=folds).fit(X).best_estimator_


def _gmm_bic(X, max_k=15, seed=0):
    from sklearn.mixture import GaussianMixture

    best, best_bic = None, np.inf
    for k in range(1, max_k + 1):
        g = GaussianMixture(k, covariance_type="full", n_init=1, random_state=seed).fit(X)
        bic = g.bic(X)
        if bic < best_bic:
            best, best_bic = g, bic
    return best


def _mmsold_cv(X, seed=0):
    from sklearn.model_selection import GridSearchCV

    from mmsold_cli import defaults
    from mmsold_cli.model import fit_moments

    t_def = defaults.noise_level(fit_moments(X))
    grid = [{"t": [f * t_def], "sigma": [0.5 * f * t_def]} for f in (0.5, 1.0, 2.0, 4.0)]
    search = GridSearchCV(MMSOLD(density_draws=4, random_state=seed), grid, cv=3).fit(X)
    best = search.best_params_
    return MMSOLD(t=best["t"], sigma=best["sigma"], random_state=seed).fit(X), best["t"] / t_def


def part_a(n_train, n_test, seed, tune, datasets):
    rows = []
    for name in datasets:
        rng = np.random.default_rng(seed)
        X = TOY_2D[name](n_train, random_state=rng)
        T = TOY_2D[name](n_test, random_state=rng)
        res, info, times = {}, {}, {}
        t0 = time.perf_counter()
        m = MMSOLD(random_state=seed).fit(X)
        res["mmsold"] = m.score(T)
        times["mmsold"] = time.perf_counter() - t0
        info["mmsold"] = f"t={m.t_:.3g}, σ={m.sigma_:.3g}"
        if tune:
            t0 = time.perf_counter()
            mc, f = _mmsold_cv(X, seed)
            res["mmsold-cv"] = mc.score(T)
            times["mmsold-cv"] = time.perf_counter() - t0
            info["mmsold-cv"] = f"t={mc.t_:.3g} ({f:g}× default)"
        t0 = time.perf_counter()
        k = _kde_cv(X)
        res["kde"] = float(np.mean(k.score_samples(T)))
        times["kde"] = time.perf_counter() - t0
        info["kde"] = f"h={k.bandwidth:.3g}"
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = _gmm_bic(X, seed=seed)
        res["gmm"] = float(np.mean(g.score_samples(T)))
        times["gmm"] = time.perf_counter() - t0
        info["gmm"] = f"K={g.n_components}"
        rows.append((name, res, info, times))
        print(f"  [{name}] " + ", ".join(f"{k}: {v:.4f} ({info[k]}, {times[k]:.1f} s)" for k, v in res.items()),
              flush=True)
    methods = list(rows[0][1])
    print(f"\n### (a) Held-out log-likelihood, mean per point (higher is better); n_train={n_train}, "
          f"n_test={n_test}, seed={seed}\n")
    print("| data set | " + " | ".join(methods) + " |")
    print("|---|" + "---:|" * len(methods))
    for name, res, _, _ in rows:
        best = max(res.values())
        print(f"| {name} | " + " | ".join(("**%.4f**" if v == best else "%.4f") % v for v in res.values()) + " |")
    print("\nNLL (mean −log p, lower is better):\n")
    print("| data set | " + " | ".join(methods) + " |")
    print("|---|" + "---:|" * len(methods))
    for name, res, _, _ in rows:
        print(f"| {name} | " + " | ".join(f"{-v:.4f}" for v in res.values()) + " |")
    print("\nChosen parameters and fit time (s, including any CV search):\n")
    print("| data set | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for name, _, info, times in rows:
        print(f"| {name} | " + " | ".join(f"{info[m]}; {times[m]:.1f} s" for m in methods) + " |")


def _kde_logpdf(X, Q, h):
    from mmsold_cli.density.tilted import log_blurred

    return log_blurred(X, Q, h)


def part_b(sigmas, ts):
    ang = 2 * np.pi * np.arange(12) / 12
    X = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    a = 2 * np.pi * np.arange(1000) / 1000
    Q = np.stack([np.cos(a), np.sin(a)], axis=1)
    from scipy.special import logsumexp

    from mmsold_cli import defaults
    from mmsold_cli.model import fit_moments

    t_def = defaults.noise_level(fit_moments(X))
    print("\n### (b) Fig. 1 setting: 12 training points on the unit circle, NLL of 1,000 points on the circle "
          "(lower is better)\n")
    print(f"Default t of the 12 points = 2 × spacing = {t_def:.4f} (spacing = mean nearest-neighbour "
          f"distance = 2 sin(π/12) = {2 * np.sin(np.pi / 12):.4f}).\n")
    for t in [t_def] + list(ts):
        print(f"t = {t:.4g}:\n")
        print("| σ | p* (MM-SOLD, tilted) | e^{−V_σ} (no tilt) | KDE h=t | KDE h=√(t²+σ²) | p* mean err | p* cov err |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for s in sigmas:
            d = TiltedDensity(t, s, draws=16, random_state=0).fit(X)
            nll_p = -float(np.mean(d.log_prob(Q)))
            # the untilted target e^{-V_σ}, normalised on the same quadrature grid
            logz_v = float(logsumexp(-d._VQ) + np.log(d._dv))
            nll_v = float(np.mean(d.potential(Q))) + logz_v
            nll_k = -float(np.mean(_kde_logpdf(X, Q, t)))
            nll_k2 = -float(np.mean(_kde_logpdf(X, Q, np.hypot(t, s))))
            m, C = d.quadrature_moments()
            print(f"| {s:g} | {nll_p:.4f} | {nll_v:.4f} | {nll_k:.4f} | {nll_k2:.4f} | "
                  f"{np.abs(m - d.mean_).max():.1e} | {np.abs(C - d.covariance_).max():.1e} |", flush=True)
        print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 300/300 points, no tuning, 3 σ values")
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-tune", action="store_true", help="skip the GridSearchCV of MM-SOLD's t")
    ap.add_argument("--datasets", default=",".join(TOY_2D))
    ap.add_argument("--part", choices=("a", "b", "ab"), default="ab")
    a = ap.parse_args(argv)
    sigmas = [0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
    if a.quick:
        a.n_train, a.n_test, a.no_tune, sigmas = 300, 300, True, [0, 0.2, 0.5]
    if "a" in a.part:
        part_a(a.n_train, a.n_test, a.seed, not a.no_tune, a.datasets.split(","))
    if "b" in a.part:
        part_b(sigmas, [0.25])


if __name__ == "__main__":
    main()
