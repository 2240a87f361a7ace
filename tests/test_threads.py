"""BLAS threads during a sampling run: one thread at low d (OpenBLAS's spinning workers took the cores from the
score kernels' threads), the user's setting above; OpenBLAS's spin shortened unless the user chose one."""

import os

import numpy as np
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
    assert os.environ.get("OPENBLAS_THREAD_TIMEOUT")  # set by mmsold_cli's import when the user had not
    assert np.isfinite(np.ones(3) @ np.ones(3))
