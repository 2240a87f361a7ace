"""Stops that cannot wait for the main thread: SIGINT / SIGTERM while it sits in a long native call.

The CLI's watcher (:func:`mmsold_cli.cli._watch_stops`) ends the process within STOP_GRACE (1 s) of the signal,
removing pending temporary outputs; a faiss k-means or a compiling kernel used to hold a stop for 5–67 s.
"""

import os
import signal
import textwrap
import threading
import time

import numpy as np
import pytest
from conftest import stop_mid_run

from mmsold_cli._threads import interruptible

# the main thread writes a temporary output, then spins in a nogil numba loop for ~30 s: a native call that
# runs no signal handler until it returns
SCRIPT = textwrap.dedent("""
    import os, sys
    import numba
    import typer
    from mmsold_cli import cli
    from mmsold_cli.io.arrays import atomic_path
    import signal

    @numba.njit(nogil=True)
    def spin(n):
        s = 0.0
        for i in range(n):
            s += (i % 7) * 1e-9
        return s

    spin(10)  # compiled before the run
    signal.signal(signal.SIGTERM, cli._on_sigterm)
    cli._watch_stops()

    def body():
        with atomic_path(sys.argv[1]) as tmp:
            with open(tmp, "w") as f:
                f.write("partial")
            sys.stderr.write("spinning\\n")
            sys.stderr.flush()
            print(spin(30_000_000_000))

    try:
        cli._run(body)
    except typer.Exit as exc:
        os._exit(exc.exit_code)
""")


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_stop_during_a_native_call_ends_within_two_seconds(tmp_path, sig, code, word):
    work = tmp_path / "out"
    work.mkdir()

    def one_temporary_output():
        assert len(os.listdir(work)) == 1

    got, elapsed, err = stop_mid_run(tmp_path, SCRIPT, work / "x.txt", b"spinning", sig, 0.3, one_temporary_output)
    assert got == code, err
    assert f"{word}; no partial output left" in err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert elapsed <= 2.0, elapsed
    assert os.listdir(work) == []


def test_an_error_after_a_stop_exits_as_the_stop(monkeypatch, capsys):
    """A stop's exception swallowed in a callback can break what runs next: that is the stop, not a bug."""
    import typer

    from mmsold_cli import cli

    monkeypatch.setitem(cli._STOP, "signal", signal.SIGTERM)

    def body():
        raise RuntimeError("no compiled object yet")

    with pytest.raises(typer.Exit) as exc:
        cli._run(body)
    assert exc.value.exit_code == 143
    assert "terminated; no partial output left" in capsys.readouterr().err
    monkeypatch.setitem(cli._STOP, "signal", None)
    with pytest.raises(typer.Exit) as exc:
        cli._run(body)
    assert exc.value.exit_code == 1


def test_interruptible_returns_raises_and_lets_a_handler_run():
    assert interruptible(sum, [1, 2, 3]) == 6
    with pytest.raises(ZeroDivisionError):
        interruptible(lambda: 1 / 0)
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread only")

    class Stop(Exception):
        pass

    def handler(signum, frame):
        raise Stop()

    old = signal.signal(signal.SIGUSR1, handler)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
    release = threading.Event()
    try:
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(Stop):
            interruptible(release.wait, 20.0)  # a blocking wait that releases the GIL, like faiss's k-means
        assert time.monotonic() - t0 < 2.0
    finally:
        release.set()
        timer.cancel()
        signal.signal(signal.SIGUSR1, old)


def test_ivf_in_blocks_gives_the_one_call_results(monkeypatch):
    """The index adds and queries in blocks of BLOCK_FLOPS (so a stop is taken between them): the same lists and
    neighbours as faiss in one call."""
    faiss = pytest.importorskip("faiss")
    from mmsold_cli.neighbors.indexes import IVFIndex

    rng = np.random.default_rng(0)
    X = rng.standard_normal((6000, 8)) * rng.uniform(0.5, 2.0, 8)
    monkeypatch.setattr(IVFIndex, "BLOCK_FLOPS", 1.0)  # 256 rows a call
    ix = IVFIndex(X)
    d2, idx = ix.query(X, 12)
    assert ix.index.ntotal == len(X)

    nlist = ix.index.nlist
    X32 = X.astype(np.float32)
    ref = faiss.IndexIVFFlat(faiss.IndexFlatL2(8), 8, nlist)
    ref.cp.seed, ref.cp.max_points_per_centroid, ref.cp.min_points_per_centroid = 0, 16, 1
    ref.train(X32[np.sort(np.random.default_rng(0).permutation(len(X))[: 16 * nlist])])
    ref.add(X32)
    ref.nprobe = ix.index.nprobe
    _, ref_idx = ref.search(X32, 12)
    assert np.array_equal(np.sort(idx, axis=1), np.sort(ref_idx, axis=1))
    assert (d2[:, 0] == 0).all() and (np.diff(d2, axis=1) >= 0).all()
