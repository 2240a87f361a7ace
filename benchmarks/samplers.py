"""The related samplers beside MM-SOLD: σ-CFDM, adaptive momentum (AMS), initialization-aware starts.

    python benchmarks/samplers.py                       # all sections, 2-D suite + MNIST PCA-64
    python benchmarks/samplers.py --sections main --no-mnist
    python benchmarks/samplers.py --sections sweep      # σ-CFDM defaults
    python benchmarks/samplers.py --sections ams,inits

Data: the bundled 2-D suite (``sample_data/<name>_train.npy``, 2,000 points, and
``<name>_test.npy``, 1,000 held-out points) and MNIST projected to 64
dimensions by PCA fitted on the 60,000 official training images (pixels / 255), test set the
other 10,000 of the official split (``../shared/data/mnist.npz`` is sorted by label, so the split
is rebuilt per class; skipped when absent).

Sections
--------
temperature  stationary variance on a standard Gaussian per integrator (AMS cools).
main   one table: sampler × {W2 (exact, 2-D) or sliced W2 (64-D) to held-out data,
       MMD², precision, recall, memorisation, mean / covariance error, wall
       time, score (barycentre) evaluations}; "train" is as many training
       points as samples, the yardstick.
sweep  σ-CFDM's defaults: σ = cσ·ℓ, start blur (1−T)/T = cT·ℓ (ℓ = mean 16-NN distance × √(2/d)), S
       steps; W2 / W2(train) per data set and mean, memorisation.
ams    steps to reach a W2 target from the Gaussian start, per integrator
       (lm, em, ams, ams-tc) for MM-SOLD (η = 0.3 and 0.05) and SOLD, and per
       start for MM-SOLD; target A = 1.1 × the W2 where plain lm ends (same
       sampler and η), target B = 1.1 × W2(train subset, test); checkpoints
       about √2 apart, "—" = never reached.
inits  σ-CFDM per start: KL(p_T‖q) and MMD² proxies at each start time T,
       W2 and memorisation at fixed Euler step (1−T)/S = --inits-dt, and the
       fewest steps reaching W2 ≤ 1.1 × W2(train) with memorisation ≤ fresh
       points' + 0.03.

Timings are only meaningful when ``uptime`` shows load below ~1.5 (2 cores).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from mmsold_cli import fit_moments, sample
from mmsold_cli.datasets import TOY_2D
from mmsold_cli.metrics.points import (
    cov_error,
    mean_error,
    memorisation_fraction,
    mmd2_rbf,
    precision_recall,
    sliced_w2,
    w2_exact,
)

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"


# ---------------------------------------------------------------- data


def load_2d(name):
    X = np.load(ROOT / "sample_data" / f"{name}_train.npy")
    T = np.load(ROOT / "sample_data" / f"{name}_test.npy")
    return X, T


def load_mnist_pca(d=64, n_train=60_000):
    """MNIST pixels / 255, PCA to d dims fitted on the 60,000 official training images; test = the other 10,000.

    ``mnist.npz`` is sorted by label, so its first 60,000 images hold no 9s and
    its last 10,000 only 8s and 9s; the official split is rebuilt per class
    (``latent_mnist.split``).
    """
    from latent_data import split

    with np.load(MNIST) as f:
        imgs = f["images"].reshape(len(f["images"]), -1).astype(np.float64) / 255.0
        itr, ite = split(f["labels"])
    tr, te = imgs[itr], imgs[ite]
    mu = tr.mean(axis=0)
    C = (tr - mu).T @ (tr - mu) / tr.shape[0]
    w, V = np.linalg.eigh(C)
    V = V[:, ::-1][:, :d]
    return ((tr - mu) @ V)[:n_train], (te - mu) @ V


def fresh_2d(name, n, seed=99):
    return TOY_2D[name](n, random_state=np.random.default_rng(seed))


# ---------------------------------------------------------------- helpers


def metrics(S, test, model, exact):
    out = {"w2": w2_exact(S, test) if exact else sliced_w2(S, test)}
    out["mmd2"] = mmd2_rbf(S, test)
    # k-NN balls compare like with like only at equal sizes (Kynkäänniemi et al.)
    ref = test if test.shape[0] <= S.shape[0] else test[np.random.default_rng(0).choice(test.shape[0], S.shape[0],
                                                                                          replace=False)]
    out["prec"], out["rec"] = precision_recall(S, ref)
    out["mem"] = memorisation_fraction(S, model.X_, model.nn_dist_, model.index_)
    out["mean_err"] = mean_error(S, test)
    out["cov_err"] = cov_error(S, test)
    return out


def table(rows, cols, title=None):
    """Print rows (list of dicts) with the given (key, header, format) columns; strings left, numbers right."""
    if title:
        print(f"\n## {title}")
    cells = [[("—" if r.get(k) is None else format(r[k], fmt)) for k, _, fmt in cols] for r in rows]
    left = [fmt.startswith("<") for _, _, fmt in cols]
    widths = [max([len(h)] + [len(c[j]) for c in cells]) for j, (_, h, _) in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) if lf else v.rjust(w) for v, w, lf in zip(vals, widths, left))  # noqa: E731
    print(line([h for _, h, _ in cols]))
    for c in cells:
        print(line(c))


SAMPLERS = {
    "mmsold": dict(sampler="mmsold"),
    "mmsold+ams": dict(sampler="mmsold", integrator="ams"),
    "mmsold+ams-tc": dict(sampler="mmsold", integrator="ams-tc"),
    "sold": dict(sampler="sold"),
    "cfdm": dict(sampler="cfdm"),
    "cfdm σ=0": dict(sampler="cfdm", sigma=0.0),
    "cfdm init=gmm": dict(sampler="cfdm", init="gmm"),
}


# ---------------------------------------------------------------- sections


def fit_or_load(X, path=None):
    """fit_moments(X), or a saved model of the same data (``--mnist-model``: the 60,000 × 64 fit takes minutes)."""
    from mmsold_cli.model import Model

    if path is not None and Path(path).exists():
        model = Model.load(path)
        if model.X_.shape == X.shape and np.array_equal(model.X_, X):
            return model
    model = fit_moments(X)
    if path is not None:
        model.save(path, overwrite=True)
    return model


def section_main(sets, n_samples, seed, model_path=None):
    rows = []
    for name, (X, test, exact) in sets.items():
        t0 = time.perf_counter()
        model = fit_or_load(X, model_path)
        print(f"  {name}: model ready in {time.perf_counter() - t0:.1f}s", flush=True)
        m = min(n_samples, X.shape[0])
        ref = X[np.random.default_rng(seed).choice(X.shape[0], m, replace=False)]
        rows.append({"data": name, "sampler": "train", **metrics(ref, test, model, exact)})
        for label, opts in SAMPLERS.items():
            t0 = time.perf_counter()
            res = sample(model, m, random_state=seed, **opts)
            wall = time.perf_counter() - t0
            rows.append({"data": name, "sampler": label, **metrics(res.samples, test, model, exact), "time": wall,
                         "evals": res.diagnostics["score_evals"], "steps": res.settings["steps"]})
            print(f"  {name} {label}: {wall:.1f}s", flush=True)
    cols = [("data", "data", "<"), ("sampler", "sampler", "<"), ("w2", "W2/SW2", ".4f"), ("mmd2", "MMD²", ".5f"),
            ("prec", "prec", ".3f"), ("rec", "recall", ".3f"), ("mem", "memor.", ".3f"),
            ("mean_err", "mean err", ".4f"), ("cov_err", "cov err", ".4f"), ("steps", "steps", "d"),
            ("time", "wall s", ".2f"), ("evals", "score evals", ",d")]
    table(rows, cols, "sampler comparison (W2 exact in 2-D, sliced W2 in 64-D; held-out data)")
    return rows


def section_sweep(names, n_samples, seed, sigma_factors, start_factors, steps_list):
    from mmsold_cli import defaults

    base = {}
    for name in names:
        X, test = load_2d(name)
        model = fit_moments(X)
        ref = X[np.random.default_rng(seed).choice(X.shape[0], n_samples, replace=False)]
        base[name] = (model, test, w2_exact(ref, test),
                      memorisation_fraction(fresh_2d(name, n_samples), X, model.nn_dist_, model.index_))
    rows = []
    for cs in sigma_factors:
        for ct in start_factors:
            for S in steps_list:
                r = {"cs": cs, "ct": ct, "S": S}
                ratios, excess, wall = [], [], 0.0
                for name, (model, test, w2_ref, mem_fresh) in base.items():
                    ell = defaults.length_scale(model)
                    T = 1.0 / (1.0 + ct * ell)
                    t0 = time.perf_counter()
                    res = sample(model, n_samples, sampler="cfdm", sigma=cs * ell, start_time=T,
                                 steps=None if S == "auto" else S,
                                 random_state=seed)
                    wall += time.perf_counter() - t0
                    ratios.append(w2_exact(res.samples, test) / w2_ref)
                    excess.append(memorisation_fraction(res.samples, model.X_, model.nn_dist_, model.index_)
                                  - mem_fresh)
                    r[name] = ratios[-1]
                r.update(mean=float(np.mean(ratios)), worst=float(np.max(ratios)),
                         mem=float(np.max(excess)), time=wall / len(base))
                rows.append(r)
                print(f"  cσ={cs} cT={ct} S={S}: mean {r['mean']:.3f} worst {r['worst']:.3f} mem+ {r['mem']:.3f}",
                      flush=True)
    cols = [("cs", "cσ", "g"), ("ct", "cT", "g"), ("S", "S", "")] + [(n, n[:10], ".3f") for n in names] + [
        ("mean", "mean", ".3f"), ("worst", "worst", ".3f"), ("mem", "mem-fresh", "+.3f"), ("time", "s/run", ".2f")]
    table(rows, cols, f"σ-CFDM sweep: W2 / W2(train subset) (defaults: cσ={defaults.CFDM_SIGMA_FACTOR:g}, "
                      f"cT={defaults.CFDM_START_FACTOR:g}, S=auto: last step's blur {defaults.CFDM_LAST_BLUR:g} × spacing)")
    return rows


def _w2_trajectory(model, n, checkpoints, test, seed, **opts):
    """Run max(checkpoints) steps; exact W2 to the test set at each checkpoint."""
    hist = {}
    want = set(checkpoints)

    def cb(info):
        k = info["i"] + 1
        if k in want:
            hist[k] = w2_exact(info["z"].reshape(-1, model.d_), test)

    sample(model, n, steps=max(checkpoints), random_state=seed, callback=cb, **opts)
    return hist


def _first_hit(hist, target):
    return next((k for k in sorted(hist) if hist[k] <= target), None)


AMS_RUNS = [("mmsold", i, "gaussian", None) for i in ("lm", "em", "ams", "ams-tc")] + \
           [("mmsold", i, "gaussian", 0.05) for i in ("lm", "ams", "ams-tc")] + \
           [("sold", i, "gaussian", None) for i in ("lm", "ams", "ams-tc")] + \
           [("mmsold", "lm", init, None) for init in ("moments", "gmm", "data")]


def section_ams(names, n_samples, seed, checkpoints):
    rows = []
    for name in names:
        X, test = load_2d(name)
        model = fit_moments(X)
        ref = X[np.random.default_rng(seed).choice(X.shape[0], n_samples, replace=False)]
        w2_train = w2_exact(ref, test)
        hists = {}
        for sampler, integ, init, eta in AMS_RUNS:
            hists[sampler, integ, init, eta] = _w2_trajectory(model, n_samples, checkpoints, test, seed,
                                                              sampler=sampler, integrator=integ, init=init, eta=eta)
            print(f"  {name} {sampler} {integ} {init} eta={eta}: W2@end {hists[sampler, integ, init, eta][max(checkpoints)]:.4f}",
                  flush=True)
        for (sampler, integ, init, eta), hist in hists.items():
            # target: within 10 % of where the plain (lm) run of the same sampler and η ends
            target = 1.1 * hists[sampler, "lm", "gaussian", eta][max(checkpoints)]
            rows.append({"data": name, "sampler": sampler, "integ": integ, "init": init,
                         "eta": 0.3 if eta is None else eta, "target": target, "steps": _first_hit(hist, target),
                         "train": _first_hit(hist, 1.1 * w2_train), "w2_train": 1.1 * w2_train,
                         **{f"w{k}": hist[k] for k in checkpoints if k in SHOW}})
    cols = [("data", "data", "<"), ("sampler", "sampler", "<"), ("integ", "integ.", "<"), ("init", "init", "<"),
            ("eta", "η", "g"), ("target", "target A", ".4f"), ("steps", "steps→A", "d"), ("w2_train", "target B", ".4f"),
            ("train", "steps→B", "d")] + [(f"w{k}", f"W2@{k}", ".4f") for k in checkpoints if k in SHOW]
    table(rows, cols, "steps to reach a W2 target, first checkpoint (A: 1.1 × W2 of plain lm at the last step, same "
                      "sampler and η; B: 1.1 × W2(train subset, test))")
    return rows


SHOW = {2, 4, 8, 16, 32, 64, 128, 256, 362}


def section_temperature(hs=(0.01, 0.05, 0.2), steps=6000, seed=0):
    """Stationary variance of naive SOLD on the standard Gaussian (score −z), per integrator and step."""
    from mmsold_cli.backend import get_backend
    from mmsold_cli.samplers import SOLD, Target
    from mmsold_cli.samplers.integrators import INTEGRATORS
    from mmsold_cli.samplers.schedules import Schedule
    from mmsold_cli.sampling import run_kernel

    rows = []
    for h in hs:
        r = {"h": h}
        for name, integ in INTEGRATORS.items():
            rng = np.random.default_rng(seed)
            acc = []

            kernel = SOLD(get_backend("numpy", 2), 1.0, integ)

            def cb(i, t, h, state, info, acc=acc, kernel=kernel):
                if i >= steps // 3:
                    acc.append(np.mean(kernel.positions(state) ** 2))

            state = kernel.init(rng.standard_normal((40, 25, 2)), Target(np.zeros(2), np.eye(2), np.eye(2)))
            run_kernel(kernel, lambda z, t, _r, out=None: np.negative(z, out=out), state,
                       Schedule(np.ones(steps), np.full(steps, h)), seed, cb)
            r[name] = float(np.mean(acc))
        rows.append(r)
    table(rows, [("h", "h", "g")] + [(k, k, ".3f") for k in INTEGRATORS],
          "stationary variance on N(0, I) (target 1), 40 ensembles × 25 particles × 2-D, last 2/3 of 6,000 steps")
    return rows


def section_inits(names, n_samples, seed, start_times, dt, L):
    from mmsold_cli.samplers.inits import STARTS, start_divergence

    rows = []
    for name in names:
        X, test = load_2d(name)
        model = fit_moments(X)
        ref = X[np.random.default_rng(seed).choice(X.shape[0], n_samples, replace=False)]
        target = 1.1 * w2_exact(ref, test)
        mem_target = memorisation_fraction(fresh_2d(name, n_samples), X, model.nn_dist_, model.index_) + 0.03
        for init in STARTS:
            best = None
            for T in start_times:
                S = max(1, math.ceil((1.0 - T) / dt - 1e-9))
                div = start_divergence(init, X, T, 1.0 - T, m=1000, random_state=seed)
                t0 = time.perf_counter()
                res = sample(model, n_samples, sampler="cfdm", init=init, start_time=T, steps=S, L=L,
                             random_state=seed)
                wall = time.perf_counter() - t0
                w2 = w2_exact(res.samples, test)
                mem = memorisation_fraction(res.samples, X, model.nn_dist_, model.index_)
                ok = w2 <= target and mem <= mem_target
                if ok and (best is None or S < best):
                    best = S
                rows.append({"data": name, "init": init, "T": T, "S": S, "kl": div["kl"], "mmd2": div["mmd2"],
                             "w2": w2, "target": target, "mem": mem, "ok": "yes" if ok else "no", "time": wall})
                print(f"  {name} {init} T={T} S={S}: W2 {w2:.4f} (target {target:.4f}) mem {mem:.3f} "
                      f"KL {div['kl']:.3f}", flush=True)
            for r in rows:
                if r["data"] == name and r["init"] == init:
                    r["fewest"] = best
    cols = [("data", "data", "<"), ("init", "init", "<"), ("T", "T", ".3f"), ("S", "S", "d"),
            ("kl", "KL(p_T‖q)", ".3f"), ("mmd2", "MMD²(q,p_T)", ".5f"), ("w2", "W2", ".4f"), ("target", "target", ".4f"),
            ("mem", "memor.", ".3f"), ("ok", "ok", "<"), ("fewest", "fewest S", "d"), ("time", "wall s", ".2f")]
    table(rows, cols, f"σ-CFDM starts: Euler step (1−T)/S ≈ {dt}, K=16, L={L}")
    summary = []
    for name in names:
        mine = [r for r in rows if r["data"] == name]
        base = next(r["fewest"] for r in mine if r["init"] == "gaussian")
        for init in STARTS:
            r0 = [r for r in mine if r["init"] == init]
            best = r0[0]["fewest"]
            at = next((r for r in r0 if r["S"] == best), None)
            summary.append({"data": name, "init": init, "kl95": r0[-1]["kl"], "mmd95": r0[-1]["mmd2"], "fewest": best,
                            "T": None if at is None else at["T"], "w2": None if at is None else at["w2"],
                            "mem": None if at is None else at["mem"],
                            "saved": None if best is None or base is None else base - best})
    table(summary, [("data", "data", "<"), ("init", "init", "<"), ("kl95", f"KL at T={start_times[-1]}", ".3f"),
                    ("mmd95", f"MMD² at T={start_times[-1]}", ".5f"), ("fewest", "fewest S", "d"), ("T", "from T", ".2f"),
                    ("w2", "W2", ".4f"), ("mem", "memor.", ".3f"), ("saved", "saved vs gaussian", "d")],
          "σ-CFDM starts, summary: fewest steps reaching the W2 and memorisation targets")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="main,sweep,temperature,ams,inits")
    ap.add_argument("--datasets", default=",".join(TOY_2D))
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-mnist", action="store_true")
    ap.add_argument("--mnist-samples", type=int, default=1000)
    ap.add_argument("--mnist-model", default=None, help="cache the MNIST PCA-64 model here (HDF5)")
    ap.add_argument("--sigma-factors", default="0,0.25,0.5,0.75,1,1.5")
    ap.add_argument("--start-factors", default="1,2")
    ap.add_argument("--sweep-steps", default="auto", help="comma list of step counts or 'auto' (the default rule)")
    ap.add_argument("--checkpoints", default="1,2,3,4,6,8,11,16,23,32,45,64,91,128,181,256,362")
    ap.add_argument("--start-times", default="0.05,0.2,0.5,0.8,0.9,0.95")
    ap.add_argument("--inits-dt", type=float, default=0.01)
    ap.add_argument("--inits-L", type=int, default=64)
    a = ap.parse_args(argv)
    names = a.datasets.split(",")
    sections = a.sections.split(",")
    floats = lambda s: [float(v) for v in s.split(",")]  # noqa: E731
    if "main" in sections:
        sets = {n: (*load_2d(n), True) for n in names}
        if not a.no_mnist and MNIST.exists():
            tr, te = load_mnist_pca()
            sets["mnist-pca64"] = (tr, te, False)
            print(f"MNIST PCA-64: train {tr.shape}, test {te.shape}")
        elif not a.no_mnist:
            print(f"skipping MNIST: {MNIST} not found")
        section_main({k: v for k, v in sets.items() if k != "mnist-pca64"}, a.samples, a.seed)
        if "mnist-pca64" in sets:
            section_main({"mnist-pca64": sets["mnist-pca64"]}, a.mnist_samples, a.seed, a.mnist_model)
    if "sweep" in sections:
        section_sweep(names, a.samples, a.seed, floats(a.sigma_factors), floats(a.start_factors),
                      [v if v == "auto" else int(v) for v in a.sweep_steps.split(",")])
    if "ams" in sections:
        section_ams(names, a.samples, a.seed, [int(v) for v in a.checkpoints.split(",")])
    if "temperature" in sections:
        section_temperature()
    if "inits" in sections:
        section_inits(names, a.samples, a.seed, floats(a.start_times), a.inits_dt, a.inits_L)


if __name__ == "__main__":
    main()
