"""σ-CFDM on latent and pixel sets: which search ``auto`` picks, its speed, its score error and its samples.

For each job of ``latent_data.JOBS`` (fresh process each, defaults of ``sample(..., sampler="cfdm")``):

* ``pilot``: :func:`mmsold_cli.samplers.cfdm.shared_beam_miss` (the draws' softmax weight outside their
  particle's 64 nearest along a pilot run), its time, and the search ``auto`` resolves to;
* ``speed``: particle-steps/s of 1,000 samples (default steps) with ``auto`` and with ``search="index"`` (each
  draw's own 16 nearest), after a warm-up; the median of ``--repeat`` runs, the pilot excluded (it is measured
  once per model and settings);
* ``score error``: along a 1,000-particle run, at every step, on every 10th particle, the relative error of the
  mean barycentre against the exact all-points one with the same draws, ‖b̂ − b‖ / ‖b − z/t‖ (the score's
  relative error), for each search;
* ``quality`` (jobs with n·d ≤ ``--exact-limit``): sliced W2 to held-out codes, precision / recall (k = 3),
  KID and memorisation of 1,000 samples by each search, of 500 samples of the exact-score sampler
  (``search="all"``) and of 1,000 training codes.

    python benchmarks/cfdm_latent.py [--jobs mnist784,mnist64,mnist256,mix200k] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import mmsold_cli  # noqa: F401  before numpy, as the CLI

HERE = Path(__file__).resolve().parent


def score_errors(model, search: str, seed: int) -> list[float]:
    """Per step, the mean relative error of the search's barycentre on every 10th of 1,000 particles."""
    import numpy as np

    from mmsold_cli import sample
    from mmsold_cli.score.searches.index import IndexSearch
    from mmsold_cli.score.searches.walk import WalkSearch
    from mmsold_cli.score.smoothed import antithetic_draws, barycentre_exact

    cls = WalkSearch if search == "walk" else IndexSearch
    orig = cls.barycentre_mean
    errs = []

    def observed(self, Z, t, sigma, M, rng, *, out=None, score=False):
        r = orig(self, Z, t, sigma, M, rng, out=None, score=False)
        sub = slice(0, None, 10)
        Zs = Z[sub].copy()
        U = antithetic_draws(rng, M, Z.shape, sigma)[:, sub]
        exact = np.mean([barycentre_exact(self.X, Zs + u, t) for u in U], axis=0)
        errs.append(float(np.linalg.norm(r[sub] - exact) / np.linalg.norm(exact - Zs)))
        if out is None:
            return r
        out[...] = r
        return out

    cls.barycentre_mean = observed
    try:
        sample(model, 1000, random_state=seed, sampler="cfdm", search=search)
    finally:
        cls.barycentre_mean = orig
    return errs


def child(job: str, seed: int, repeat: int, exact_limit: float) -> dict:
    import numpy as np

    sys.path.insert(0, str(HERE))
    from latent_data import load

    from mmsold_cli import Model, sample
    from mmsold_cli.config import SampleConfig
    from mmsold_cli.metrics.points import kid, memorisation_fraction, precision_recall, sliced_w2
    from mmsold_cli.samplers.cfdm import shared_beam_miss

    train, test = load(job, seed)
    model = Model().fit(train)
    row = {"job": job, "n": int(train.shape[0]), "d": int(train.shape[1])}
    cfg = SampleConfig.resolve(model, 1000, sampler="cfdm", search="index")
    t0 = time.perf_counter()
    row["miss"] = shared_beam_miss(model, start_time=cfg.start_time, steps=cfg.steps, sigma=cfg.sigma, M=cfg.M,
                                   K=cfg.K, c=4 * cfg.K, particles=32)
    row["pilot_s"] = time.perf_counter() - t0
    auto = SampleConfig.resolve(model, 1000, sampler="cfdm").search
    row.update(auto=auto, steps=cfg.steps, sigma=cfg.sigma)
    searches = [auto] if auto == "index" else [auto, "index"]
    ref = test[:5000]

    def quality(S):
        p, r = precision_recall(S, ref, k=3)
        return {"sw2": sliced_w2(S, ref), "precision": p, "recall": r,
                "kid": kid(S, ref, subset_size=min(1000, len(S)))[0],
                "memorised": memorisation_fraction(S, train, model.nn_dist_, index=model.index_)}

    for s in searches:
        sample(model, 100, random_state=seed + 1, sampler="cfdm", steps=2, search=s)
        speeds = []
        for _ in range(max(1, repeat)):
            res = sample(model, 1000, random_state=seed, sampler="cfdm", search=s)
            speeds.append(res.diagnostics["particle_steps_per_s"])
        row[f"psteps_{s}"] = float(np.median(speeds))
        row[f"err_{s}"] = score_errors(model, s, seed)
        if train.size <= exact_limit:
            row[f"q_{s}"] = quality(res.samples)
    if train.size <= exact_limit:
        row["q_exact"] = quality(sample(model, 500, random_state=seed, sampler="cfdm", search="all").samples)
        rng = np.random.default_rng(seed)
        row["q_real"] = quality(train[rng.choice(len(train), 1000, replace=False)])
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", default="mnist784,mnist64,mnist256,mix200k")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--exact-limit", type=float, default=5e7, help="largest n·d for the quality rows")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seed, args.repeat, args.exact_limit)))
        return
    rows = []
    for job in args.jobs.split(","):
        cmd = [sys.executable, __file__, "--child", job, "--seed", str(args.seed), "--repeat", str(args.repeat),
               "--exact-limit", str(args.exact_limit)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{job}: failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else '?'}")
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'job':<10} {'n × d':>12} {'miss':>9} {'pilot s':>7} {'auto':>6} {'search':>7} {'ps/s':>8} "
          f"{'score err: mean':>15} {'max':>7}")
    for r in rows:
        for s in ("walk", "index"):
            if f"psteps_{s}" not in r:
                continue
            e = r[f"err_{s}"]
            print(f"{r['job']:<10} {r['n']:>7} × {r['d']:<3} {r['miss']:9.2e} {r['pilot_s']:7.2f} {r['auto']:>6} "
                  f"{s:>7} {r[f'psteps_{s}']:8,.0f} {sum(e) / len(e):15.4f} {max(e):7.4f}")
    print(f"\n{'job':<10} {'samples':<16} {'sliced W2':>9} {'precision':>9} {'recall':>7} {'KID':>8} {'memorised':>9}")
    for r in rows:
        for key, name in (("q_walk", "walk (1,000)"), ("q_index", "index (1,000)"), ("q_exact", "exact (500)"),
                          ("q_real", "training codes")):
            if key in r:
                q = r[key]
                print(f"{r['job']:<10} {name:<16} {q['sw2']:9.4f} {q['precision']:9.3f} {q['recall']:7.3f} "
                      f"{q['kid']:8.4f} {q['memorised']:9.3f}")


if __name__ == "__main__":
    main()
