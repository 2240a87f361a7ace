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
