"""The walk search's parts, single-threaded: particle-steps/s of 1,000 samples × 100 steps in CPU time.

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/walk_ablation.py [--jobs mnist64,mnist256]

Variants, each after a warm-up run:

* ``default``: the defaults a user gets;
* ``float64 rows``: the kernel reads the float64 training points instead of their float32 copy;
* ``width 8``, ``width 0``: fewer (no) expansions per step — what the walk itself costs;
* ``renew all``: every entry of the first ``width`` expanded again at every step (no flags kept from step
  to step).

CPU time of this process (``time.process_time``) is less disturbed than wall time by other jobs on the
machine; with one thread it is the work per particle-step.  The sample checksum (sum of |z|) shows which
variants change the samples (float64 rows and the widths do; the default is reproducible bit for bit).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", default="mnist64,mnist256")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from latent_data import load

    import mmsold_cli.defaults as defaults
    import mmsold_cli.score.searches.walk as walk
    from mmsold_cli import Model, sample

    rows_of, width, renew = walk.rows_of, defaults.WALK_WIDTH, defaults.WALK_RENEW
    variants = {
        "default": lambda: None,
        "float64 rows": lambda: setattr(walk, "rows_of", lambda model, X: np.ascontiguousarray(X, dtype=np.float64)),
        "width 8": lambda: setattr(defaults, "WALK_WIDTH", 8),
        "width 0": lambda: setattr(defaults, "WALK_WIDTH", 0),
        "renew all": lambda: setattr(defaults, "WALK_RENEW", width),
    }
    print("| job | variant | particle-steps/s (CPU, 1 thread) | checksum |")
    print("|---|---|---:|---:|")
    for job in args.jobs.split(","):
        train, _ = load(job, args.seed)
        model = Model().fit(train)
        for name, apply in variants.items():
            walk.rows_of, defaults.WALK_WIDTH, defaults.WALK_RENEW = rows_of, width, renew
            model.__dict__.pop("_rows32", None)
            apply()
            sample(model, 1000, random_state=args.seed + 1, steps=2)
            t0 = time.process_time()
            res = sample(model, 1000, random_state=args.seed, steps=args.steps)
            cpu = time.process_time() - t0
            print(f"| {job} | {name} | {1000 * args.steps / cpu:,.0f} | {np.abs(res.samples).sum():.6f} |", flush=True)
    walk.rows_of, defaults.WALK_WIDTH = rows_of, width


if __name__ == "__main__":
    main()
