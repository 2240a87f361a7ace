"""Where the time of job A goes: cProfile of one warm ``sample(model, 10000)`` (the calling thread's share).

    python benchmarks/profile_a.py [--top 14]

The same data as ``speed.py``'s job A (2,000 moons points); run by hand, never in CI.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=14)
    args = ap.parse_args(argv)
    from speed import job_a

    from mmsold_cli import fit_moments, sample

    with tempfile.TemporaryDirectory() as tmp:
        train, _, N = job_a(Path(tmp))
    model = fit_moments(train)
    sample(model, 2000, random_state=0, steps=2)  # compile, caches, the worker thread
    sample(model, N, random_state=1)
    prof = cProfile.Profile()
    prof.enable()
    res = sample(model, N, random_state=2)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.top)
    print(f"wall {res.diagnostics['wall_time']:.3f} s, {res.diagnostics['particle_steps_per_s']:,.0f} particle-steps/s "
          "(under the profiler)")
    print(out.getvalue())


if __name__ == "__main__":
    main()
