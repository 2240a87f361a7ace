"""Process-wide settings that must be in place before numba is imported."""

import os
import sys
from pathlib import Path


def numba_cache_dir() -> str:
    """Point numba's on-disk cache at a writable directory.

    numba writes its cache next to the source file by default, which fails
    silently in read-only installs (site-packages owned by root, containers);
    then every new process recompiles.  We choose a per-user cache unless the
    user already set ``NUMBA_CACHE_DIR``.
    """
    path = os.environ.get("NUMBA_CACHE_DIR")
    if not path:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = str(Path(base) / "mmsold" / "numba")
        os.environ["NUMBA_CACHE_DIR"] = path
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only home: fall back to a temp dir, still cached per boot
        import tempfile

        path = str(Path(tempfile.gettempdir()) / "mmsold-numba-cache")
        Path(path).mkdir(parents=True, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = path
    return path


def import_numba():
    """Import numba for the kernels: a writable cache (:func:`numba_cache_dir`), no SciPy BLAS probe.

    Loading the first kernel makes numba import ``numba.np.arraymath``, whose
    module-level BLAS probe imports ``scipy.linalg`` (0.3 s of a fresh
    ``mmsold sample``) only to choose how jitted ``np.convolve`` and
    ``np.correlate`` run; no kernel here uses them, or BLAS at all.  When
    SciPy's linalg is not loaded yet, that module is imported with
    ``scipy.linalg`` hidden, so the probe answers at once (jitted
    convolutions fall back to numba's own loop); ``scipy.linalg`` imports
    normally afterwards.
    """
    numba_cache_dir()
    import numba

    if "numba.np.arraymath" not in sys.modules and "scipy.linalg" not in sys.modules:
        sys.modules["scipy.linalg"] = None  # an import of it now raises ImportError at once
        try:
            import numba.np.arraymath  # noqa: F401
        finally:
            del sys.modules["scipy.linalg"]
    return numba
