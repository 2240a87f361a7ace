"""The numba cache folder follows the state of the package's sources (mmsold_cli._numba)."""

import os
import subprocess
import sys
import time
from pathlib import Path

from mmsold_cli._numba import STALE_DAYS, _prune, source_digest


def _tree(root: Path):
    (root / "sub").mkdir(parents=True)
    (root / "a.py").write_text("x = 1\n")
    (root / "sub" / "b.py").write_text("y = 2\n")
    (root / "notes.txt").write_text("not source\n")


def test_digest_changes_with_any_source_file_only(tmp_path):
    _tree(tmp_path)
    d0 = source_digest(tmp_path)
    assert len(d0) == 16 and d0 == source_digest(tmp_path)
    (tmp_path / "notes.txt").write_text("still not source\n")
    assert source_digest(tmp_path) == d0
    # a callee's file alone changing (same size, new time) must give a new folder
    st = (tmp_path / "sub" / "b.py").stat()
    os.utime(tmp_path / "sub" / "b.py", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    d1 = source_digest(tmp_path)
    assert d1 != d0
    (tmp_path / "c.py").write_text("")
    assert source_digest(tmp_path) not in (d0, d1)


def test_prune_removes_only_old_folders_of_other_states(tmp_path):
    old = time.time() - (STALE_DAYS + 1) * 86400
    names = {"keep": "0123456789abcdef", "stale": "fedcba9876543210", "recent": "00000000000000aa",
             "foreign": "not-a-digest-dir"}
    for n in names.values():
        (tmp_path / n).mkdir()
    for key in ("keep", "stale", "foreign"):
        os.utime(tmp_path / names[key], (old, old))
    _prune(tmp_path, names["keep"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["keep"], names["recent"], names["foreign"]])


def test_default_folder_is_named_by_the_digest(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    code = "import os, mmsold_cli._numba as m; print(m.numba_cache_dir()); print(m.source_digest())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    path, digest = out.split()
    assert Path(path) == tmp_path / "mmsold" / "numba" / digest and Path(path).is_dir()
    # a path the user chose is used as it is
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert Path(out.split()[0]) == tmp_path / "mine"


def test_every_function_a_kernel_calls_is_inlined():
    """A kernel's code must not depend on what was compiled before it (mmsold_cli._numba, "Callees"): every
    jitted function called from a kernel is spliced in by numba, never linked as a library of its own."""
    from numba.core.registry import CPUDispatcher

    from mmsold_cli.warmup import _dispatchers

    dispatchers = _dispatchers()
    assert len(dispatchers) > 30
    callees = {}
    for d in dispatchers:
        g = d.py_func.__globals__
        for nm in d.py_func.__code__.co_names:
            o = g.get(nm)
            if isinstance(o, CPUDispatcher) and o is not d:
                callees.setdefault(o.py_func.__qualname__, (o, []))[1].append(d.py_func.__qualname__)
    assert {"normals_at", "draws_of", "walk_row", "measure_row", "_retract_step"} <= set(callees)
    linked = sorted(f"{name} <- {', '.join(by)}" for name, (o, by) in callees.items()
                    if o.targetoptions.get("inline", "never") != "always")
    assert not linked, linked


_WALK_KERNEL = """
import hashlib, sys
import numpy as np
import mmsold_cli
from mmsold_cli.rng import normals_numba
from mmsold_cli.score.smoothed_numba import walk_barycentre_mean

if sys.argv[1] in ("normals", "normals-then-walk"):  # the normals' kernels compiled (and cached) first
    normals_numba.fill(np.array([1, 2], dtype=np.uint64), np.empty(8))
    if sys.argv[1] == "normals":
        sys.exit(0)
rng = np.random.default_rng(0)
n, d, m = 5000, 256, 300
X = rng.standard_normal((n, d)).astype(np.float32)
graph = rng.integers(0, n, (n, 32)).astype(np.int32)
Z = X[:m].astype(np.float64) + 0.3 * rng.standard_normal((m, d))
beams = np.argsort(rng.random((m, n)), axis=1)[:, :64].astype(np.int32)
out = walk_barycentre_mean(X, graph, Z, beams, 3.0, width=16, max_expand=16, renew=10, sigma=1.0, n_pairs=2,
                           key=np.array([5, 6], dtype=np.uint64), n_normals=2, score=True)
print(hashlib.sha1(out.tobytes()).hexdigest())
"""


def test_a_kernel_gives_the_same_bytes_whatever_the_cache_held(tmp_path):
    """The walk kernel compiled in an empty cache, after the same process drew normals, and in a cache where
    another process left the normals' kernels: the same bytes (the last bits differed while the normals'
    functions were linked into the kernel as libraries of their own)."""
    def run(cache, mode):
        env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
        res = subprocess.run([sys.executable, "-c", _WALK_KERNEL, mode], env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    fresh = run(tmp_path / "empty", "walk")
    same_process = run(tmp_path / "empty-too", "normals-then-walk")
    run(tmp_path / "normals-cached", "normals")
    other_process = run(tmp_path / "normals-cached", "walk")
    assert len(fresh) == 40 and same_process == fresh and other_process == fresh
