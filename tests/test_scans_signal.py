"""SIGTERM during a long tiled densify: exit 143 within 2 s, nothing left behind (the CLI's signal set-up: the handler
and the watcher of :func:`mmsold_cli.cli._watch_stops`, as :func:`mmsold_cli.cli.run` installs them)."""

import os
import signal
import textwrap

import pytest
from conftest import stop_mid_run

SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import typer
    from mmsold_cli.cli import _on_sigterm, _run, _watch_stops
    from mmsold_cli.io.cloud import PointCloud, write_cloud
    from mmsold_cli.workflows.densify import densify_cloud
    import signal
    signal.signal(signal.SIGTERM, _on_sigterm)
    _watch_stops()
    out = sys.argv[1]

    def body():
        rng = np.random.default_rng(0)
        v = rng.standard_normal((60000, 3))
        X = v / np.linalg.norm(v, axis=1, keepdims=True)
        cloud = PointCloud(X, {"intensity": rng.integers(0, 1000, len(X)).astype(np.uint16)}, ".ply")

        def progress(done, total):
            sys.stderr.write(f"tile {done}/{total}\\n")
            sys.stderr.flush()

        res, _ = densify_cloud(cloud, factor=4, random_state=0, tile_points=6000, tile_progress=progress)
        write_cloud(out, res, like=cloud)

    try:
        _run(body)
    except typer.Exit as exc:
        sys.stderr.flush()
        os._exit(exc.exit_code)
""")


@pytest.mark.slow
def test_sigterm_mid_tiled_densify_stops_within_two_seconds(tmp_path):
    work = tmp_path / "out"
    work.mkdir()
    # the first tile done: numba is compiled, the run is under way; 1 s later, in the middle of the second tile
    code, elapsed, err = stop_mid_run(tmp_path, SCRIPT, work / "dense.ply", b"tile 1/", signal.SIGTERM, 1.0)
    assert code == 143, (code, elapsed, err)
    assert "terminated; no partial output left" in err
    print(f"SIGTERM to exit: {elapsed:.2f} s")
    assert elapsed <= 2.0, (elapsed, err)
    assert os.listdir(work) == []
