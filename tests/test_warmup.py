"""``mmsold warm-up`` fills the numba cache with everything the README's sample job needs."""

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import SAMPLE_DATA


def _mmsold(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "mmsold_cli.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600, check=True)


def _kernel_files(cache):
    return {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}


def _uncached(names):
    """The package's kernels with no index file among ``names`` (numba names one module.function-line.pyXY.nbi);
    functions numba inlines into their callers have none of their own."""
    from mmsold_cli.warmup import _dispatchers

    return sorted(f"{d.py_func.__module__}.{d.py_func.__name__}" for d in _dispatchers()
                  if d.targetoptions.get("inline", "never") != "always"
                  and not any(n.startswith(f"{d.py_func.__module__.rsplit('.', 1)[-1]}.{d.py_func.__name__}-")
                              for n in names))


def test_warm_up_then_the_readme_job_compiles_nothing(tmp_path):
    """Run first (tests/conftest.py) in the suite's own numba cache, so a fresh run's warm-up compiles every kernel
    and the rest of the suite loads them, where a cache of its own made the suite compile them twice."""
    from mmsold_cli._numba import numba_cache_dir

    cache = Path(numba_cache_dir())
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    missing_before = _uncached({p.name for p in _kernel_files(cache) if p.suffix == ".nbi"})
    info = json.loads(_mmsold(["warm-up", "--json"], env, tmp_path).stdout)
    assert info["cache_dir"] == str(cache)
    # each kernel missing from the cache was compiled (all of them in a fresh run, where this test comes first)
    assert info["kernels"] >= info["compiled"] >= len(missing_before) and info["kernels"] > 0
    warmed = _kernel_files(cache)
    assert any(p.suffix == ".nbc" for p in warmed)
    missing = _uncached({p.name for p in warmed if p.suffix == ".nbi"})
    assert not missing, missing
    _mmsold(["fit-moments", str(SAMPLE_DATA / "moons_train.npy"), "-o", "moons.h5", "--overwrite"], env, tmp_path)
    _mmsold(["sample", "moons.h5", "-n", "1000", "-o", "moons_samples.npy", "--seed", "0", "--overwrite"], env,
            tmp_path)
    assert (tmp_path / "moons_samples.npy").exists()
    assert _kernel_files(cache) == warmed  # no new or rewritten cache file: every kernel came from the warm-up
    # a second warm-up loads everything and compiles nothing
    again = json.loads(_mmsold(["warm-up", "--json"], env, tmp_path).stdout)
    assert again["compiled"] == 0 and again["kernels"] > 0


def test_a_cache_folder_the_user_chose_and_cannot_have_is_named(tmp_path, monkeypatch):
    """NUMBA_CACHE_DIR under a regular file: the fallback folder is used, with a warning naming both (it was silent:
    a container build would have cached its kernels where the image does not keep them)."""
    import pytest

    from mmsold_cli._numba import numba_cache_dir
    from mmsold_cli.errors import MmsoldWarning

    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "afile" / "sub"))
    with pytest.warns(MmsoldWarning, match=r"NUMBA_CACHE_DIR=.*afile/sub cannot be made .*in .*mmsold-numba-cache"):
        path = numba_cache_dir()
    assert path.endswith("mmsold-numba-cache")
