"""Process-wide settings that must be in place before numba is imported, and how the kernels are cached.

Callees.  A kernel's machine code must not depend on what was compiled before it.  When a kernel calls
another jitted function, numba compiles the callee as a library of its own and links it in, and what LLVM
then makes of the kernel (whether it inlines the callee, how it vectorises the fast-math loops around the
call) depended on that library's history: compiled earlier in the same process, loaded from the cache, or
compiled for this kernel.  So one source and one seed gave samples differing in the last bits: MNIST
PCA-256 after ``mmsold warm-up`` or the test suite against a fresh install, and the walk kernel on fixed
inputs after the same process had drawn normals.  Every jitted function called from a kernel is therefore
``inline="always"``: numba splices its body into the kernel before LLVM sees it, and nothing is linked.
The price is compile time, once per source state (docs/performance.md §9).
``tests/test_numba_cache.py`` checks the rule and that a kernel gives the same bytes whatever came first.
"""

import os
import sys
from pathlib import Path

#: Cache folders of other source states unused this long are removed when a new one is made.
STALE_DAYS = 30

_READY = False  # import_numba has run once


def source_digest(root: Path | None = None) -> str:
    """A digest of the package's source files (path, size, modification time), 16 hex digits.

    numba keys a cached kernel on its own file's timestamp only.  A kernel that calls one from another
    file keeps the callee's old code, compiled into it, after that file changes, so an edited or pulled
    checkout can run a mix of old and new code (and give a seed other samples than a fresh build of the
    same source).  A cache folder per source state cannot hold such a mix.
    """
    import hashlib

    root = Path(__file__).resolve().parent if root is None else Path(root)
    h = hashlib.sha1()
    for p in sorted(root.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _prune(parent: Path, keep: str) -> None:
    """Remove the cache folders of other source states not modified for STALE_DAYS."""
    import shutil
    import time

    limit = time.time() - STALE_DAYS * 86400
    try:
        for child in parent.iterdir():
            if (child.name != keep and len(child.name) == 16 and child.is_dir()
                    and all(c in "0123456789abcdef" for c in child.name) and child.stat().st_mtime < limit):
                shutil.rmtree(child, ignore_errors=True)
    except OSError:
        pass


def numba_cache_dir() -> str:
    """Point numba's on-disk cache at a writable directory, one per state of the package's sources.

    numba writes its cache next to the source file by default, which fails
    silently in read-only installs (site-packages owned by root, containers);
    then every new process recompiles.  We choose a per-user cache unless the
    user already set ``NUMBA_CACHE_DIR``, in a folder named by
    :func:`source_digest`, so an edited or updated checkout never runs kernels
    built from a mix of old and new files.
    """
    path = os.environ.get("NUMBA_CACHE_DIR")
    chosen = bool(path)
    if not path:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        digest = source_digest()
        path = str(Path(base) / "mmsold" / "numba" / digest)
        if not Path(path).exists():
            _prune(Path(path).parent, digest)
        os.environ["NUMBA_CACHE_DIR"] = path
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # read-only home: fall back to a temp dir, still cached per boot
        import tempfile
        import warnings

        fallback = str(Path(tempfile.gettempdir()) / "mmsold-numba-cache")
        if chosen:  # the user's own folder: say so (a container build would otherwise cache elsewhere unseen)
            from .errors import MmsoldWarning

            warnings.warn(f"NUMBA_CACHE_DIR={path} cannot be made ({exc.strerror}); compiled kernels are cached in "
                          f"{fallback} instead", MmsoldWarning, stacklevel=2)
        path = fallback
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
    global _READY
    if _READY:  # called by every kernel call's thread count: the folder is made, numba loaded
        return sys.modules["numba"]
    numba_cache_dir()
    import numba

    if "numba.np.arraymath" not in sys.modules and "scipy.linalg" not in sys.modules:
        sys.modules["scipy.linalg"] = None  # an import of it now raises ImportError at once
        try:
            import numba.np.arraymath  # noqa: F401
        finally:
            del sys.modules["scipy.linalg"]
    _READY = True
    return numba
