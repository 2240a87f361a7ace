"""Faults: signals, full disks, pickles and reproducibility.

* SIGINT / SIGTERM while ``mmsold sample`` runs (a real process on a pseudo
  terminal, so its progress bar is drawn): exit 130 / 143, no output and no
  temporary file left; the same signal arriving in the middle of writing.
* A write error — ENOSPC simulated in the writer, a real kernel ``EFBIG``
  from a file-size limit, ``> /dev/full`` — gives one clear line and leaves no
  partial file; an existing output (with ``--overwrite``) survives intact.
* Files carrying a pickle (.npy, .npz, an HDF5 model or data file) are
  refused, and the pickle's payload never runs.
* The same seed gives bit-identical samples across runs and thread counts.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from mmsold_cli.cli import app
from mmsold_cli.model import fit_moments

RNG = np.random.default_rng(7)
MMSOLD = [sys.executable, "-c", "from mmsold_cli.cli import run; run()"]
PKG = Path(__file__).resolve().parents[1] / "mmsold_cli"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


@pytest.fixture(scope="module")
def model_2d(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    X = RNG.standard_normal((2000, 2)) * [2.0, 0.5]
    np.save(folder / "train.npy", X)
    fit_moments(X).save(folder / "m.h5")
    return folder / "m.h5"


# ------------------------------------------------------------------------ signals


def _sample_on_a_pty(model: Path, out: Path, sig: int, timeout: float = 120.0):
    """Start a long ``sample`` with stderr on a pseudo terminal; signal it once its bar shows steps."""
    import pty

    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm", COLUMNS="120")
    proc = subprocess.Popen(
        MMSOLD + ["sample", str(model), "-n", "5000", "-P", "500", "--batch-size", "1000",
                  "--steps", "1000000", "-o", str(out), "--seed", "3"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        # wait until at least one step has been reported: the run is truly under way
        while not re.search(rb"steps\S*\s.*\s[1-9]\d*/1000000", seen) and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
            if proc.poll() is not None:
                break
        assert proc.poll() is None, seen.decode(errors="replace")
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, seen.decode(errors="replace")


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_mid_sample_leaves_nothing(model_2d, tmp_path, sig, code, word):
    out = tmp_path / "s.npy"
    rc, tty = _sample_on_a_pty(model_2d, out, sig)
    assert rc == code, tty[-2000:]
    assert f"mmsold: {word}; no partial output left" in tty
    # the bar showed both counters: ensembles (of 10) and steps (of 1,000,000)
    assert re.search(r"ensembles\S*\s.*\d+/10\b", tty) and re.search(r"steps\S*\s.*\d+/1000000", tty), tty[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no samples, no diagnostics, no temp file


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_writing_removes_the_temporary_file(model_2d, tmp_path, monkeypatch, sig, code):
    """The signal lands half-way through writing the samples: nothing may remain."""
    seen = {}

    from mmsold_cli.io.arrays import PointWriter

    def half_then_signal(self, key, X):  # the samples are streamed to the file batch by batch
        self._fh.write(b"half of a batch")
        self._fh.flush()
        seen["tmp"] = Path(self.path)
        assert seen["tmp"].exists() and seen["tmp"].name.startswith(".s.npy.")
        os.kill(os.getpid(), sig)  # a real signal, handled by the CLI's handlers
        time.sleep(1.0)  # the handler raises before this returns

    monkeypatch.setattr(PointWriter, "__setitem__", half_then_signal)
    out = tmp_path / "s.npy"
    res = invoke("sample", model_2d, "-n", 50, "-o", out, "--steps", 2)
    assert res.exit_code == code, (res.stderr, res.exception)
    assert "no partial output left" in res.stderr
    assert not seen["tmp"].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ------------------------------------------------------------------------ full disk


def test_disk_full_while_writing_keeps_the_old_output(model_2d, tmp_path, monkeypatch):
    out = tmp_path / "s.npy"
    np.save(out, np.arange(6.0).reshape(3, 2))
    before = out.read_bytes()

    from mmsold_cli.io.arrays import PointWriter

    def enospc(self, key, X):  # the first batch reaches the file, then the disk is full
        self._fh.write(bytes(1000))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(PointWriter, "__setitem__", enospc)
    res = invoke("sample", model_2d, "-n", 50, "-o", out, "--steps", 2, "--overwrite")
    assert res.exit_code == 2, (res.stderr, res.exception)
    assert res.stderr.count("\n") == 1
    assert "s.npy" in res.stderr and "disk full (no space left on device)" in res.stderr
    assert out.read_bytes() == before  # the previous samples are untouched
    assert not (tmp_path / "s.diagnostics.json").exists()
    assert leftovers(tmp_path) == []


def test_real_write_error_from_the_kernel(tmp_path):
    """A file-size limit makes the kernel fail the model write part-way (EFBIG)."""
    import resource

    X = RNG.standard_normal((20000, 3))
    np.save(tmp_path / "big.npy", X)
    limit = 1 << 20  # the model is ~4.5 MB

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "big.h5"
    proc = subprocess.run(MMSOLD + ["fit-moments", str(tmp_path / "big.npy"), "-o", str(out)],
                          preexec_fn=cap, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr  # not a crash at exit (HDF5 never sees the failed write)
    assert proc.stderr.startswith("mmsold: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "big.h5: cannot write" in proc.stderr and "File too large" in proc.stderr
    assert not out.exists() and leftovers(tmp_path) == []


def test_stdout_on_a_full_device(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    A = tmp_path / "a.npy"
    np.save(A, RNG.standard_normal((40, 2)))
    with open("/dev/full", "w") as full:
        proc = subprocess.run(MMSOLD + ["evaluate", str(A), str(A), "--json"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == "mmsold: error: cannot write to standard output: disk full (No space left on device)\n"


@pytest.mark.parametrize("fmt", [[], ["--json"]])
def test_stdout_closed_by_its_reader_exits_141(tmp_path, fmt):
    """`mmsold … | head` when the reader has gone: exit 141 and nothing on stderr, for the table (rich's console
    exited 1) as for --json."""
    A = tmp_path / "a.npy"
    np.save(A, RNG.standard_normal((40, 2)))
    proc = subprocess.Popen(MMSOLD + ["evaluate", str(A), str(A), *fmt], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141 and err == "", err


def test_version_needs_no_command():
    from mmsold_cli import __version__

    res = invoke("--version")
    assert res.exit_code == 0 and res.stdout.strip() == __version__, res.output


def test_outputs_get_the_usual_permissions(model_2d, tmp_path):
    out = tmp_path / "s.npy"
    assert invoke("sample", model_2d, "-n", 20, "-o", out, "--steps", 2).exit_code == 0
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "s.diagnostics.json").stat().st_mode & 0o777 == 0o666 & ~mask


# ------------------------------------------------------------------------ pickles


class _Payload:
    """Unpickling this creates a folder: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _pickled_npy(path: Path, marker: Path):
    np.save(path, np.array([[_Payload(marker), 1.0]], dtype=object), allow_pickle=True)


def test_the_payload_is_live(tmp_path):
    """Guard for the tests below: loading with pickle allowed does run the payload."""
    marker = tmp_path / "ran"
    _pickled_npy(tmp_path / "evil.npy", marker)
    np.load(tmp_path / "evil.npy", allow_pickle=True)
    assert marker.is_dir()


def test_npy_and_npz_with_a_pickle_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    _pickled_npy(tmp_path / "evil.npy", marker)
    np.savez(tmp_path / "evil.npz", points=np.array([[_Payload(marker), 1.0]], dtype=object))
    for src in ("evil.npy", "evil.npz"):
        out = tmp_path / f"{src}.h5"
        res = invoke("fit-moments", tmp_path / src, "-o", out)
        assert res.exit_code == 2 and "holds pickled Python objects" in res.stderr and src in res.stderr
        assert not out.exists()
    res = invoke("evaluate", tmp_path / "evil.npy", tmp_path / "evil.npy")
    assert res.exit_code == 2 and "pickled" in res.stderr
    assert not marker.exists()


def test_model_and_hdf5_data_carrying_a_pickle_are_refused(model_2d, tmp_path):
    marker = tmp_path / "pwned"
    blob = np.void(pickle.dumps(_Payload(marker)))
    # a model whose points were replaced by an opaque pickle
    bad = tmp_path / "bad_points.h5"
    bad.write_bytes(model_2d.read_bytes())
    with h5py.File(bad, "a") as f:
        del f["points"]
        f["points"] = blob
    res = invoke("sample", bad, "-n", 10, "-o", tmp_path / "s.npy")
    assert res.exit_code == 2 and "bad_points.h5: damaged model file: /points" in res.stderr, res.stderr
    # a model whose settings attribute holds a pickle
    bad2 = tmp_path / "bad_settings.h5"
    bad2.write_bytes(model_2d.read_bytes())
    with h5py.File(bad2, "a") as f:
        f.attrs["settings"] = blob
    res = invoke("sample", bad2, "-n", 10, "-o", tmp_path / "s.npy")
    assert res.exit_code == 2 and "bad_settings.h5: damaged model file" in res.stderr, res.stderr
    # an HDF5 data file whose dataset is a pickle
    data = tmp_path / "data.h5"
    with h5py.File(data, "w") as f:
        f["x"] = blob
    res = invoke("fit-moments", data, "-o", tmp_path / "m.h5")
    assert res.exit_code == 2 and "data.h5" in res.stderr and "expected" in res.stderr, res.stderr
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_points.h5", "bad_settings.h5", "data.h5"]


def test_no_pickle_in_the_package():
    pattern = re.compile(r"^\s*(import pickle|from pickle|import cPickle|import dill|import joblib)|"
                         r"allow_pickle\s*=\s*True|pickle\.loads?\(", re.M)
    files = sorted(PKG.rglob("*.py"))  # every subpackage: io/ holds the np.load calls
    assert len(files) > 50 and any(p.parent.name == "io" for p in files)
    hits = [f"{p.relative_to(PKG)}: {m.group(0).strip()}" for p in files for m in pattern.finditer(p.read_text())]
    assert hits == []


# ------------------------------------------------------------------------ reproducibility


def _threads(n: int) -> dict:
    keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    return dict(os.environ, **{k: str(n) for k in keys})


def _sample_bytes(model: Path, out: Path, threads: int, n: int) -> bytes:
    proc = subprocess.run(MMSOLD + ["sample", str(model), "-n", str(n), "-o", str(out), "--steps", "8",
                                    "-P", "100", "--seed", "1234", "--json"],
                          env=_threads(threads), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


@pytest.mark.parametrize("d", [3, 12])  # k-d tree index (d ≤ 8) and exact BLAS index
def test_same_seed_bit_identical_across_runs_and_threads(tmp_path, d):
    X = RNG.standard_normal((1500, d)) @ RNG.standard_normal((d, d))
    model = tmp_path / "m.h5"
    fit_moments(X).save(model)
    one = _sample_bytes(model, tmp_path / "t1.npy", 1, 300)
    two = _sample_bytes(model, tmp_path / "t2.npy", 2, 300)
    assert one == two
    if d == 3:
        again = _sample_bytes(model, tmp_path / "t2b.npy", 2, 300)
        assert again == two
    Z = np.load(tmp_path / "t1.npy")
    assert Z.shape == (300, d) and np.unique(Z, axis=0).shape[0] == 300
