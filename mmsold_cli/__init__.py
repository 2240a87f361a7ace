"""mmsold: training-free generative sampling by moment-matched score smoothing.

Library API (the CLI is a thin layer over these)::

    from mmsold_cli import fit_moments, sample, evaluate, Model
    model = fit_moments(X)                       # X: array of shape (n, d)
    res = sample(model, 1000, random_state=0)    # res.samples: (1000, d)
    evaluate(res.samples, X_test, model=model)   # dict of metrics

Heavy modules (scipy, numba, h5py) are imported on first use, so importing
this package and ``mmsold --help`` stay instant.
"""

__version__ = "0.1.0"

import os as _os
import sys as _sys

# OpenBLAS's idle threads spin up to 2**28 cycles after each call, taking the cores from the score kernels'
# threads that run next (mmsold_cli._threads.serial_blas); 2**4 cycles if the user has not chosen.  It is read
# when OpenBLAS loads, so it holds for the CLI and for programs that import mmsold_cli before numpy.
_SHORT_SPIN = "OPENBLAS_THREAD_TIMEOUT" in _os.environ or "numpy" not in _sys.modules
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__all__ = [
    "__version__",
    "Model",
    "fit_moments",
    "sample",
    "SampleResult",
    "evaluate",
    "read_points",
    "write_points",
    "MmsoldError",
]

from .errors import MmsoldError  # noqa: E402  (light)

_LAZY = {
    "Model": ("model", "Model"),
    "fit_moments": ("model", "fit_moments"),
    "sample": ("sampling", "sample"),
    "SampleResult": ("sampling", "SampleResult"),
    "evaluate": ("metrics", "evaluate"),
    "read_points": ("io", "read_points"),
    "write_points": ("io", "write_points"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{mod}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
