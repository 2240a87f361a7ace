"""The package's thread pool: serial ``nogil`` numba kernels run side by side on ranges of rows."""

from __future__ import annotations

from ._numba import import_numba

__all__ = ["n_threads", "run_rows", "serial_blas", "interruptible", "BLAS_SERIAL_MAX_DIM", "BLAS_SERIAL_MAX_DIM_SPIN"]

_EXECUTOR = None

#: Up to this dimension a sampling run keeps BLAS on one thread (:func:`serial_blas`); up to the second when
#: OpenBLAS was loaded before :mod:`mmsold_cli` set its short spin.
BLAS_SERIAL_MAX_DIM, BLAS_SERIAL_MAX_DIM_SPIN = 128, 512


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


def interruptible(fn, *args):
    """``fn(*args)`` on a worker thread while the main thread waits in short joins; its value, or its exception.

    Python runs signal handlers (Ctrl-C, the CLI's SIGTERM) only in the main thread and only between
    bytecodes, so a single native call that runs for seconds (faiss's k-means) holds off a stop until it
    returns.  When ``fn`` releases the GIL, the waiting main thread takes the signal within 50 ms and the
    handler's exception propagates; the worker (a daemon thread) is left to finish on its own and its result
    is dropped.  Called from another thread, ``fn`` runs there directly.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    box = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    worker = threading.Thread(target=target, name="mmsold-native", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def serial_blas(d: int):
    """A context in which BLAS runs on one thread (threadpoolctl) for a sampling run in d dimensions, or a no-op.

    OpenBLAS's idle workers spin for a while after each call (up to 2²⁸ cycles unless
    ``OPENBLAS_THREAD_TIMEOUT`` is set before it loads, which :mod:`mmsold_cli` does), so a score kernel
    started right after a manifold step found both cores taken and ran at half speed: MNIST PCA-64,
    1,000 × 100 steps on two threads took 2.60 s with two spinning BLAS threads, 1.90 s with two briefly
    spinning ones and 1.31 s with one.  At low d the BLAS work per step is small, so one thread loses
    little.  At 256-D two briefly spinning BLAS threads were fastest (4.47 s, against 5.47 s with one and
    6.37 s with two spinning long) and at 784-D too (20 steps: 5.69 s, 7.75 s, 7.01 s).  So BLAS is serial
    up to BLAS_SERIAL_MAX_DIM, or up to BLAS_SERIAL_MAX_DIM_SPIN when the short spin is not in effect, whatever
    the number of numba threads: OpenBLAS's rounding depends on its thread count, and a run's numbers must not
    depend on ``NUMBA_NUM_THREADS``.
    """
    from contextlib import nullcontext

    from . import _SHORT_SPIN

    if d > (BLAS_SERIAL_MAX_DIM if _SHORT_SPIN else BLAS_SERIAL_MAX_DIM_SPIN):
        return nullcontext()
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a dependency
        return nullcontext()
    # made afresh: a BLAS loaded since the last run (faiss brings its own) is limited too
    return ThreadpoolController().limit(limits=1, user_api="blas")
