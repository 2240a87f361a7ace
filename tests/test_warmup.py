"""``mmsold warm-up`` fills the numba cache with everything the README's sample job needs."""

import json
import os
import subprocess
import sys

from conftest import SAMPLE_DATA


def _mmsold(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "mmsold_cli.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600, check=True)


def test_warm_up_then_the_readme_job_compiles_nothing(tmp_path):
    cache = tmp_path / "numba-cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    info = json.loads(_mmsold(["warm-up", "--json"], env, tmp_path).stdout)
    assert info["compiled"] > 0 and info["kernels"] >= info["compiled"]
    assert info["cache_dir"] == str(cache)
    warmed = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert any(p.suffix == ".nbc" for p in warmed)
    # every kernel of the package is in the cache (numba names an index file module.function-line.pyXY.nbi);
    # functions numba inlines into their callers have none of their own
    from mmsold_cli.warmup import _dispatchers

    names = {p.name for p in warmed if p.suffix == ".nbi"}
    missing = sorted(f"{d.py_func.__module__}.{d.py_func.__name__}" for d in _dispatchers()
                     if d.targetoptions.get("inline", "never") != "always"
                     and not any(n.startswith(f"{d.py_func.__module__.rsplit('.', 1)[-1]}.{d.py_func.__name__}-")
                                 for n in names))
    assert not missing, missing
    _mmsold(["fit-moments", str(SAMPLE_DATA / "moons_train.npy"), "-o", "moons.h5", "--overwrite"], env, tmp_path)
    _mmsold(["sample", "moons.h5", "-n", "1000", "-o", "moons_samples.npy", "--seed", "0", "--overwrite"], env,
            tmp_path)
    assert (tmp_path / "moons_samples.npy").exists()
    after = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert after == warmed  # no new or rewritten cache file: every kernel came from the warm-up
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
