"""Latent spaces at scale: fit time and memory, particle-steps/s and quality at the defaults, one table.

Jobs (``latent_data.JOBS``): MNIST PCA-64 (60k, the official split), the 200k × 64 low-rank mixture,
MNIST PCA-256 (27k), raw MNIST pixels (784-D, 60k) and, with ``--big``, the 1M × 64 mixture.  Each job
runs in a fresh process (``mmsold_cli`` as a user gets it, defaults only):

* ``fit``: ``Model().fit(train)`` wall time and the process's peak RSS after it;
* ``sample``: 1,000 samples × 100 steps after a warm-up (compilation excluded), ``--repeat`` times (3): the
  median wall and particle-steps/s, with the runs' range (this host's speed drifts between runs);
* ``score off``: the same runs with the search's barycentre replaced by the particle (score zero, no cost):
  the manifold step, changes of coordinates, noise and driver alone, a ceiling for any search at this d;
* ``score``: along a run of ``--check`` particles, every 10th step, on every 10th particle, the smoothed
  score's relative error against the exact all-points estimator with the same draws (‖ŝ − s‖ / ‖s‖,
  Frobenius over the particles), beside the error of the same estimator over each particle's exact c nearest
  points (a perfect search), and the recall of each particle's 16 nearest training points in its beam;
* ``quality``: sliced W2 to held-out codes, precision / recall (k = 3), KID, memorisation (share of samples
  within a third of their training point's nearest-neighbour distance) and mean / covariance error — for
  the default sampler, for the exact-score sampler (``search="all"``, 500 samples × 30 steps; jobs with
  n·d ≤ 8 million) and for 1,000 real training codes.

With ``--jax PYTHON`` (an interpreter with jax) the authors' kNN estimator (``jax_latent_reference.py``, the median
of three runs) runs on MNIST PCA-64 and PCA-256 right after our sampler's job on the same set, so that each ratio
compares runs a minute apart.  With ``--authors-repo PATH`` (a checkout of the authors' code) their own sampler
(``authors_latent_knn.py``) runs there too, in the same interpreter: the code the issue's baseline figures came from.

    python benchmarks/latent_scale.py [--jobs mnist64,mix200k,mnist256,mnist784] [--big] [--jax /path/python]
        [--authors-repo /path/to/MM-SOLD]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mmsold_cli  # noqa: F401  before numpy, as the CLI: OpenBLAS loads with mmsold_cli's short spin

HERE = Path(__file__).resolve().parent


def timed_runs(model, seed: int, repeat: int):
    """Particle-steps/s of ``repeat`` runs of 1,000 samples × 100 steps (after one warm-up run of 2 steps), and
    the last run's result (every run gives the same samples)."""
    from mmsold_cli import sample

    sample(model, 1000, random_state=seed + 1, steps=2)  # warm-up: compilation and caches
    speeds = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        res = sample(model, 1000, random_state=seed, steps=100)
        speeds.append(1000 * 100 / (time.perf_counter() - t0))
    return speeds, res


def child(job: str, check: int, exact_limit: float, seed: int, repeat: int = 3) -> dict:
    """One job in this process: the measurements as a dict."""
    import resource

    import numpy as np

    sys.path.insert(0, str(HERE))
    from latent_data import load

    from mmsold_cli import Model, sample
    from mmsold_cli.metrics.points import cov_error, kid, mean_error, memorisation_fraction, precision_recall, sliced_w2
    from mmsold_cli.score import searches
    from mmsold_cli.score.smoothed import antithetic_draws, barycentre_candidates, smoothed_score_exact

    train, test = load(job, seed)
    row = {"job": job, "n": int(train.shape[0]), "d": int(train.shape[1])}
    t0 = time.perf_counter()
    model = Model().fit(train)
    row["fit_s"] = time.perf_counter() - t0
    row["fit_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row["index"] = model.index_kind_

    speeds, res = timed_runs(model, seed, repeat)
    psteps = float(np.median(speeds))
    row.update(sample_s=1000 * 100 / psteps, psteps=psteps, psteps_runs=speeds, search=res.settings["search"])
    S_ours = res.samples
    off = score_off_speed(model, res.settings["search"], seed, repeat)
    row["psteps_no_score"] = None if off is None else float(np.median(off))

    # score error and recall along a run: the search object's calls are observed, the run is unchanged
    cls = search_class(res.settings["search"])
    errs, recs, best_errs = [], [], []
    if cls is not None:
        orig = cls.barycentre_mean
        calls = [0]

        def observed(self, Z, t, sigma, M, rng, *, out=None, score=False):
            i = calls[0]
            calls[0] += 1
            if i % 10:
                return orig(self, Z, t, sigma, M, rng, out=out, score=score)
            sub = slice(0, None, max(1, Z.shape[0] // 100))
            Zs = Z[sub].copy()
            U = antithetic_draws(rng, M, Z.shape, sigma)[:, sub]
            r = orig(self, Z, t, sigma, M, rng, out=out, score=score)
            mine = r[sub] if score else (r[sub] - Zs) / t**2
            # the search's own training points: on a singular set's support (raw pixels) the run is made in the
            # support's coordinates (mmsold_cli.support), an isometry, so the same relative error
            X = self.X
            exact = smoothed_score_exact(X, Zs, t, U)
            errs.append(float(np.linalg.norm(mine - exact) / np.linalg.norm(exact)))
            D = (Zs**2).sum(1)[:, None] - 2 * Zs @ X.T + (X**2).sum(1)[None]
            nn = np.argpartition(D, 16, axis=1)[:, :16]
            recs.append(float(np.mean([np.intersect1d(a, b).size / 16 for a, b in zip(self.tracker.idx[sub], nn)])))
            # a perfect search: the same estimator over each particle's exact c nearest points
            c = self.tracker.idx.shape[1]
            best = np.argpartition(D, c, axis=1)[:, :c]
            b_best = np.mean([barycentre_candidates(X, Zs + u, best, t) for u in U], axis=0)
            best_errs.append(float(np.linalg.norm((b_best - Zs) / t**2 - exact) / np.linalg.norm(exact)))
            return r

        cls.barycentre_mean = observed
        try:
            sample(model, check, random_state=seed + 2, steps=100)
        finally:
            cls.barycentre_mean = orig
    row["score_err"] = float(np.mean(errs)) if errs else None
    row["recall16"] = float(np.mean(recs)) if recs else None
    row["score_err_best"] = float(np.mean(best_errs)) if best_errs else None

    rng = np.random.default_rng(seed)
    real = train[rng.choice(len(train), 1000, replace=False)]
    ref = test[: min(len(test), 5000)]

    def quality(S):
        p, r = precision_recall(S, ref, k=3)
        k_mean, _ = kid(S, ref, subset_size=min(1000, len(S)))
        return {"sw2": sliced_w2(S, ref), "precision": p, "recall": r, "kid": k_mean,
                "memorised": memorisation_fraction(S, train, model.nn_dist_, index=model.index_),
                "mean_err": mean_error(S, train), "cov_err": cov_error(S, train)}

    row["q_ours"] = quality(S_ours)
    row["q_real"] = quality(real)
    if train.size <= exact_limit:
        S_exact = sample(model, 500, random_state=seed, steps=30, search="all").samples
        row["q_exact"] = quality(S_exact)
        row["q_ours500"] = quality(sample(model, 500, random_state=seed, steps=30).samples)
    del searches
    return row


def search_class(search: str):
    """The class of a tracked search (``walk``, ``pool``) whose ``barycentre_mean`` this benchmark observes or
    replaces; None for the others."""
    name = {"walk": "WalkSearch", "pool": "PoolSearch"}.get(search)
    return None if name is None else getattr(__import__(f"mmsold_cli.score.searches.{search}", fromlist=[name]), name)


def score_off_speed(model, search: str, seed: int, repeat: int) -> list[float] | None:
    """Particle-steps/s of the same runs with the search's barycentre replaced by the particle itself.

    The score is then zero and costs nothing: what is left is the manifold step, the changes of coordinates,
    the noise and the driver, i.e. the speed no search could exceed with this sampler at this d.
    """
    import numpy as np

    cls = search_class(search)
    if cls is None:
        return None
    orig = cls.barycentre_mean

    def no_score(self, Z, t, sigma, M, rng, *, out=None, score=False):
        out = np.empty_like(Z) if out is None else out
        if score:
            out[...] = 0.0
        elif out is not Z:
            out[...] = Z
        return out

    cls.barycentre_mean = no_score
    try:
        return timed_runs(model, seed, repeat)[0]
    finally:
        cls.barycentre_mean = orig


def run_child(job, args) -> dict:
    cmd = [sys.executable, __file__, "--child", job, "--check", str(args.check), "--exact-limit",
           str(args.exact_limit), "--seed", str(args.seed), "--repeat", str(args.repeat)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"job": job, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_jax(python: str, job: str, steps: int) -> dict:
    """The authors' estimator in ``python`` (with jax): its speed, and the quality of its samples (here)."""
    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.npy"
        code = (f"import sys, json, numpy as np; sys.path.insert(0, {str(HERE)!r}); from latent_data import load; "
                f"from jax_latent_reference import run; tr, te = load({job!r}); "
                f"r = run(tr, particles=1000, steps={steps}, seed=0); np.save({str(path)!r}, r['samples']); "
                "print(json.dumps({k: float(r[k]) for k in ('particle_steps_per_s', 'compile_s')}))")
        out = subprocess.run([python, "-c", code], capture_output=True, text=True)
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
        res = json.loads(out.stdout.strip().splitlines()[-1])
        S = np.load(path)
    from latent_data import load

    from mmsold_cli.metrics.points import kid, precision_recall, sliced_w2

    train, test = load(job, 0)
    ref = test[:5000]
    p, r = precision_recall(S, ref, k=3)
    res.update(sw2=sliced_w2(S, ref), precision=p, recall=r, kid=kid(S, ref, subset_size=min(1000, len(S)))[0])
    return res


def run_authors(python: str, repo: str, job: str, steps: int) -> dict:
    """The authors' published sampler in ``python`` (with jax): particle-steps/s, compilation left out."""
    code = (f"import sys, json; sys.path.insert(0, {str(HERE)!r}); from authors_latent_knn import run_job; "
            f"r = run_job({job!r}, {repo!r}, particles=1000, steps={steps}, repeats=3, sigma=0.1, M=2); "
            "print(json.dumps({k: r[k] for k in ('rate', 'raw_rate')}))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt(v, f):
    return "-" if v is None else format(v, f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", default="mnist64,mix200k,mnist256,mnist784")
    ap.add_argument("--big", action="store_true", help="also the 1M × 64 mixture")
    ap.add_argument("--check", type=int, default=1000, help="particles of the score-error run")
    ap.add_argument("--exact-limit", type=float, default=8e6, help="largest n·d for the exact-score sampler")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="timed sampling runs per job (the median is reported)")
    ap.add_argument("--jax", default=None, help="a Python with jax: run the authors' estimator too")
    ap.add_argument("--jax-steps", type=int, default=20)
    ap.add_argument("--authors-repo", default=None,
                    help="with --jax: a checkout of GitZhenyu2019/MM-SOLD; time the authors' own sampler too")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.authors_repo and args.jax_steps <= 2:
        ap.error(f"--authors-repo times calls of --jax-steps against calls of 2 steps: --jax-steps must exceed 2, "
                 f"got {args.jax_steps}")
    if args.child:
        print(json.dumps(child(args.child, args.check, args.exact_limit, args.seed, args.repeat)))
        return 0
    sys.path.insert(0, str(HERE))
    from latent_data import data_dir

    if not (data_dir() / "mnist.npz").exists():
        print(f"{data_dir()}/mnist.npz not available: skipped", file=sys.stderr)
        return 0
    jobs = args.jobs.split(",") + (["mix1m"] if args.big else [])
    rows, jax, authors = [], {}, {}
    for job in jobs:
        load0 = os.getloadavg()[0]
        row = run_child(job, args)
        row["load"] = (load0, os.getloadavg()[0])
        rows.append(row)
        print(f"{job}: {json.dumps(row)}", file=sys.stderr, flush=True)
        if args.jax and job in ("mnist64", "mnist256"):
            jax[job] = run_jax(args.jax, job, args.jax_steps)
            print(f"jax {job}: {jax[job]}", file=sys.stderr, flush=True)
            if args.authors_repo:
                authors[job] = run_authors(args.jax, args.authors_repo, job, args.jax_steps)
                print(f"authors {job}: {authors[job]}", file=sys.stderr, flush=True)

    print(f"| job | n × d | index | fit s | fit peak RSS MB | search | particle-steps/s (median of {args.repeat}) "
          "| runs' range | 1,000 samples s "
          "| score off: particle-steps/s | score rel. error | same, exact c nearest | recall@16 | load |")
    print("|---|---|---|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['job']} | failed: {r['error']} |")
            continue
        print(f"| {r['job']} | {r['n']:,} × {r['d']} | {r['index']} | {r['fit_s']:.1f} | {r['fit_rss_mb']:.0f} | "
              f"{r['search']} | {r['psteps']:,.0f} | {min(r['psteps_runs']):,.0f}–{max(r['psteps_runs']):,.0f} | "
              f"{r['sample_s']:.2f} | {fmt(r['psteps_no_score'], ',.0f')} | "
              f"{fmt(r['score_err'], '.4f')} | "
              f"{fmt(r['score_err_best'], '.4f')} | "
              f"{fmt(r['recall16'], '.4f')} | {r['load'][0]:.1f}–{r['load'][1]:.1f} |")
    print()
    print("| job | samples | sliced W2 | precision | recall | KID | memorised | mean err | cov err |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            continue
        for key, what in (("q_ours", "ours, 1,000 × 100 steps"), ("q_ours500", "ours, 500 × 30 steps"),
                          ("q_exact", "exact score, 500 × 30 steps"), ("q_real", "1,000 training codes")):
            q = r.get(key)
            if q is None:
                continue
            print(f"| {r['job']} | {what} | {q['sw2']:.4f} | {q['precision']:.3f} | {q['recall']:.3f} | "
                  f"{q['kid']:.4f} | {q['memorised']:.3f} | {q['mean_err']:.4f} | {q['cov_err']:.4f} |")
    ours = {r["job"]: r.get("psteps") for r in rows}
    if jax:
        print()
        print(f"| job | authors' estimator (JAX, {args.jax_steps} steps) particle-steps/s | ours | ratio "
              "| ours with the score off: ratio | its sliced W2 | precision | recall | KID |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        off = {r["job"]: r.get("psteps_no_score") for r in rows}
        for job, j in jax.items():
            if "error" in j or ours.get(job) is None:
                print(f"| {job} | {j.get('error', '-')} | - | - |")
                continue
            print(f"| {job} | {j['particle_steps_per_s']:,.0f} | {ours[job]:,.0f} | "
                  f"{ours[job] / j['particle_steps_per_s']:.1f}× | "
                  f"{fmt(off[job] and off[job] / j['particle_steps_per_s'], '.1f')}× | "
                  f"{j['sw2']:.4f} | {j['precision']:.3f} | "
                  f"{j['recall']:.3f} | {j['kid']:.4f} |")
    if authors:
        print()
        print(f"| job | the authors' own code ({args.jax_steps} steps, compilation left out) particle-steps/s | ours "
              "| ratio |")
        print("|---|---:|---:|---:|")
        for job, a in authors.items():
            if "error" in a or ours.get(job) is None:
                print(f"| {job} | {a.get('error', '-')} | - | - |")
                continue
            print(f"| {job} | {a['rate']:,.0f} | {ours[job]:,.0f} | {ours[job] / a['rate']:.1f}× |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "jax": jax, "authors": authors}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
