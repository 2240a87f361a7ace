import os
import signal
from pathlib import Path

import numpy as np
import pytest

# A shell without job control starts background commands with SIGINT ignored, and an ignored signal stays
# ignored in every process they start: the tests that send SIGINT to a child `mmsold` then saw it run on to
# exit 0. A handler (unlike SIG_IGN) is reset to the default in an exec'd child, so the children get SIGINT.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
# MMSOLD_SHARED_DATA: the shared data when the project is not beside ../shared (e.g. a git worktree)
SHARED_DATA = Path(os.environ.get("MMSOLD_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLE_DATA = ROOT / "sample_data"

# Child processes import this checkout's mmsold_cli, as the test process does: one started in another folder (a
# script in tmp_path, `-m mmsold_cli.cli` with cwd=tmp_path) imported the installed copy, whose kernels numba caches
# under that copy's own path, so a fresh run compiled every kernel a second time (the README's test command installs
# the package, then runs the suite in the checkout).
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def pytest_collection_modifyitems(session, config, items):
    """The warm-up test first: it compiles every kernel into the numba cache the rest of the suite then loads
    from (tests/test_warmup.py), instead of compiling them again in a cache of its own."""
    items.sort(key=lambda item: item.path.name != "test_warmup.py")  # a stable sort: the rest keep their order


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def aniso_rotated(rng):
    """An anisotropic, rotated 3-D Gaussian-ish training set."""
    A = rng.standard_normal((3, 3))
    Q, _ = np.linalg.qr(A)
    X = rng.standard_normal((400, 3)) * np.array([3.0, 0.5, 1.2])
    return X @ Q.T + np.array([1.0, -2.0, 0.5])


def shared_data(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def seam_bands(P, tiles, delta, extent):
    """Masks (band, interior) of the points of P on a flat patch [0, extent]² cut into ``tiles``: within 2 δ of
    an inner face of the point's own tile, or farther; both 3 δ off the patch's rim."""
    b = np.full(len(P), np.inf)
    for t in tiles:
        m = np.all((P >= t.lo) & (P < t.hi), axis=1)
        for ax in (0, 1):
            for face in (t.lo[ax], t.hi[ax]):
                if np.isfinite(face):
                    b[m] = np.minimum(b[m], np.abs(P[m, ax] - face))
    inner = np.all((P[:, :2] > 3 * delta) & (P[:, :2] < extent - 3 * delta), axis=1)
    return (b < 2 * delta) & inner, (b >= 2 * delta) & inner


def stop_mid_run(tmp_path, script: str, arg, ready: bytes, sig, settle: float, on_ready=None):
    """Run ``script`` (Python source) with argument ``arg``; once a line of its stderr starts with ``ready``
    and ``settle`` seconds have passed, call ``on_ready()`` and send ``sig``.  Returns (exit code, seconds from
    the signal to the exit, the rest of stderr)."""
    import subprocess
    import sys
    import time

    path = tmp_path / "run.py"
    path.write_text(script)
    proc = subprocess.Popen([sys.executable, str(path), str(arg)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            cwd=tmp_path)
    try:
        before = []  # lines ahead of the marker (a library's warning, say) are kept for the message
        line = proc.stderr.readline()
        while line and not line.startswith(ready):
            before.append(line)
            line = proc.stderr.readline()
        assert line.startswith(ready), b"".join(before).decode(errors="replace")
        time.sleep(settle)
        if on_ready is not None:
            on_ready()
        t0 = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, elapsed, proc.stderr.read().decode(errors="replace")


def two_station_room(path, n, rng):
    """An E57 file of n points on the inside of a 10 × 8 × 3 room, area-weighted, in two scans: x ≤ 5 seen from
    (2.5, 4, 1.5), the rest from (7.5, 4, 1.5), each stored in its scanner's frame and placed by its pose.
    Returns the points (common frame) and the two stations."""
    import pye57

    size = np.array([10.0, 8.0, 3.0])
    faces = [(a, side) for a in range(3) for side in (0, 1)]
    area = np.array([np.prod(np.delete(size, a)) for a, _ in faces])
    pick = rng.choice(len(faces), n, p=area / area.sum())
    P = rng.random((n, 3)) * size
    for f, (a, side) in enumerate(faces):
        P[pick == f, a] = side * size[a]
    stations = np.array([[2.5, 4.0, 1.5], [7.5, 4.0, 1.5]])
    out = pye57.E57(str(path), mode="w")
    for k, origin in enumerate(stations):
        local = P[(P[:, 0] > 5) == bool(k)] - origin
        out.write_scan_raw({"cartesianX": local[:, 0], "cartesianY": local[:, 1], "cartesianZ": local[:, 2]},
                           name=f"station {k}", rotation=np.array([1.0, 0, 0, 0]), translation=origin)
    out.close()
    return P, stations
