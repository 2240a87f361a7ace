"""The package's thread pool: serial ``nogil`` numba kernels run side by side on ranges of rows."""

from __future__ import annotations

from ._numba import import_numba

__all__ = ["n_threads", "run_rows"]

_EXECUTOR = None


def n_threads() -> int:
    """Threads the kernels use: ``NUMBA_NUM_THREADS`` if set, else one per core."""
    return max(1, int(import_numba().config.NUMBA_NUM_THREADS))


def run_rows(kernel, m: int, *args, min_rows: int = 256):
    """Call ``kernel(*args, r0, r1)`` on row ranges covering 0..m, on all threads.

    The kernels are serial ``nogil`` functions; Python threads run them side by
    side (a parallel numba loop would triple the first-call compile time).
    The rows are cut into 4 ranges per thread, which the calling thread and
    the pool's take in turn (uneven rows balance out), so a call costs one
    hand-off to the pool rather than one per range.
    """
    global _EXECUTOR
    nt = min(n_threads(), max(1, m // min_rows))
    if nt <= 1:
        kernel(*args, 0, m)
        return
    if _EXECUTOR is None or _EXECUTOR._max_workers < nt - 1:
        from concurrent.futures import ThreadPoolExecutor

        _EXECUTOR = ThreadPoolExecutor(max_workers=max(1, n_threads() - 1), thread_name_prefix="mmsold")
    bounds = [m * i // (4 * nt) for i in range(4 * nt + 1)]
    ranges = iter(range(4 * nt))  # next() on it is atomic under the GIL: each range runs once

    def work():
        for c in ranges:
            if bounds[c + 1] > bounds[c]:
                kernel(*args, bounds[c], bounds[c + 1])

    futures = [_EXECUTOR.submit(work) for _ in range(nt - 1)]
    try:
        work()
    finally:
        for f in futures:
            f.result()
