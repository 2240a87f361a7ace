"""BLAS threads during a sampling run: one thread at low d (OpenBLAS's spinning workers took the cores from the
score kernels' threads), the user's setting above; OpenBLAS's spin shortened unless the user chose one."""

import os

import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

from mmsold_cli import fit_moments, sample  # noqa: E402
from mmsold_cli._threads import BLAS_SERIAL_MAX_DIM, n_threads, serial_blas  # noqa: E402


def _blas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def test_sampling_runs_blas_on_one_thread_at_low_dimension(rng):
    if n_threads() <= 1 or not _blas_threads() or max(_blas_threads()) <= 1:
        pytest.skip("one thread: nothing to limit")
    model = fit_moments(rng.standard_normal((400, 8)))
    sample(model, 60, random_state=0, steps=1)  # every BLAS library the run uses is loaded now
    before = _blas_threads()
    seen = []
    sample(model, 60, random_state=0, steps=2, callback=lambda info: seen.append(_blas_threads()))
    assert seen and all(max(s) == 1 for s in seen), seen
    assert _blas_threads() == before  # restored after the run
    with serial_blas(BLAS_SERIAL_MAX_DIM + 1000):
        assert _blas_threads() == before


def test_openblas_spin_is_shortened_unless_chosen():
    """Importing mmsold_cli sets OPENBLAS_THREAD_TIMEOUT = 4 when the user had not chosen a value, and keeps a chosen
    one; the short spin counts as in effect when mmsold_cli came before numpy or the user chose."""
    import subprocess
    import sys

    code = ("import os, sys; {first}import mmsold_cli; "
            "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), mmsold_cli._SHORT_SPIN)")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    def run(first="", **extra):
        out = subprocess.run([sys.executable, "-c", code.format(first=first)], env={**env, **extra},
                             capture_output=True, text=True, check=True)
        return out.stdout.split()
    assert run() == ["4", "True"]
    assert run(OPENBLAS_THREAD_TIMEOUT="1") == ["1", "True"]
    assert run(first="import numpy; ") == ["4", "False"]  # too late for an OpenBLAS already loaded


@pytest.mark.parametrize("env", [{"NUMBA_NUM_THREADS": "1"}, {"OPENBLAS_NUM_THREADS": "1"}])
def test_same_bytes_whatever_the_thread_counts(tmp_path, env):
    """64-D: one numba thread, or one OpenBLAS thread, gives the bytes of the default run (the start's retraction and
    the steps' products run on one BLAS thread up to BLAS_SERIAL_MAX_DIM in every case)."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from mmsold_cli import fit_moments, sample; "
            "X = np.random.default_rng(0).standard_normal((6000, 64)); "
            "np.save(sys.argv[1], sample(fit_moments(X), 1500, random_state=11, steps=2).samples)")
    base = {k: v for k, v in os.environ.items() if k not in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    for name, extra in (("default", {}), ("limited", env)):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / f"{name}.npy")], env={**base, **extra}, check=True)
    import numpy as np

    assert (tmp_path / "default.npy").read_bytes() == (tmp_path / "limited.npy").read_bytes()
    assert np.load(tmp_path / "default.npy").shape == (1500, 64)
