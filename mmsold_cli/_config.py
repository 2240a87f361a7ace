"""Process-wide settings that must be in place before numba is imported."""

import os
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
