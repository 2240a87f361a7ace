"""On a Dask cluster (a LocalCluster of 2 processes): the bytes of one machine, faults, the Zarr output, seams."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import SAMPLE_DATA, seam_bands

pytest.importorskip("distributed")
pytest.importorskip("zarr")

from mmsold_cli import fit_moments, sample  # noqa: E402
from mmsold_cli.distributed.client import connect, parse_address, worker_threads  # noqa: E402
from mmsold_cli.distributed.sample import plan_shards, sample_distributed, shard_rows  # noqa: E402
from mmsold_cli.distributed.zarr_store import ZarrOutput, read_zarr  # noqa: E402
from mmsold_cli.errors import MmsoldError  # noqa: E402

N, STEPS = 7300, 12  # 8 ensembles of 913 and 912 (P = 1,000)


def mmsold(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "mmsold_cli.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, **kw)


@pytest.fixture(scope="module")
def moons():
    return fit_moments(np.load(SAMPLE_DATA / "moons_train.npy"))


@pytest.fixture(scope="module")
def client():
    with connect("local:2") as c:
        yield c


@pytest.fixture(scope="module")
def local_run(moons):
    return sample(moons, N, random_state=11, steps=STEPS, backend="numba")


def test_address_forms_and_thread_rule(tmp_path):
    assert parse_address("local:3") == ("local", 3)
    assert parse_address("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    assert parse_address("10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")  # as Dask reads it
    f = tmp_path / "scheduler.json"
    f.write_text("{}")
    assert parse_address(str(f)) == ("file", f)
    for bad in ["local:0", "local:x", "tcp://host", "tcp://host:99999", "http://h:1", "nofile.json", ""]:
        with pytest.raises(MmsoldError):
            parse_address(bad)
    assert worker_threads(2, 2) == 1 and worker_threads(64, 4) == 16 and worker_threads(2, 8) == 1


def test_workers_times_threads_is_cores(client):
    threads = client.run(lambda: int(os.environ["NUMBA_NUM_THREADS"]))
    cores = len(os.sched_getaffinity(0))
    assert len(threads) == 2 and sum(threads.values()) == max(2, cores)


def test_shard_rule():
    # the overhead bound: 5 ms at 1 % is 0.5 s a task, 1.5e6 × 0.5 / 100 steps = 7,500 rows
    assert shard_rows(10**6, 1000, 100, workers=2, overhead=0.005, rate=1.5e6) == 32_000
    assert shard_rows(10**6, 1000, 100, workers=2, overhead=0.05, rate=1.5e6) == 75_000
    assert shard_rows(10**9, 1000, 100, workers=400, overhead=0.002, rate=1.5e6) == 100_000  # ≤ 10,000 tasks
    assert shard_rows(5000, 1000, 20, workers=2, overhead=0.0) == 1000  # one ensemble at least
    assert shard_rows(300, 1000, 20, workers=2, overhead=0.0) == 300
    assert plan_shards(10, 4) == [(0, 4), (4, 8), (8, 10)]


@pytest.mark.parametrize("rows", [700, 2500])
def test_same_bytes_as_one_machine_for_two_shard_sizes(moons, client, local_run, rows):
    res = sample_distributed(moons, N, client=client, random_state=11, rows_per_shard=rows, steps=STEPS,
                             backend="numba")
    assert res.samples.tobytes() == local_run.samples.tobytes()
    d = res.diagnostics
    # the workers the scheduler knew at the start (a worker restarted by its nanny under load is briefly missing)
    assert d["shards"] == -(-N // rows) and d["workers"] in (1, 2) and d["model_sent"] == "scatter"
    assert d["mean_error"] == pytest.approx(local_run.diagnostics["mean_error"], abs=1e-15)
    assert max(d["cov_error"]) == max(local_run.diagnostics["cov_error"])
    assert res.settings["random_state"] == 11 and res.settings["ensembles_total"] == 8


def test_cfdm_walked_on_the_cluster_gives_the_one_machine_bytes(client):
    """σ-CFDM whose auto search is measured on the model (test_cfdm_search): the client's choice goes to every
    task, and the walked beams start from each worker's index."""
    from test_cfdm_search import _sheet

    model = fit_moments(_sheet(n=3000))
    ref = sample(model, 1500, random_state=4, sampler="cfdm")
    res = sample_distributed(model, 1500, client=client, random_state=4, rows_per_shard=600, sampler="cfdm")
    assert ref.settings["search"] == res.settings["search"] == "walk"
    assert res.samples.tobytes() == ref.samples.tobytes()


def test_a_whitened_model_is_mapped_back_on_the_workers(client):
    from mmsold_cli.workflows import whiten as wh

    rng = np.random.default_rng(1)
    X = rng.standard_normal((2000, 5)) * np.array([4.0, 2.0, 1.0, 0.3, 0.1])
    w = wh.fit_whitening(X, 2)
    model = fit_moments(wh.whiten(X, w))
    model.extras_ = wh.to_extras(w)
    ref = wh.unwhiten(sample(model, 2400, random_state=2, steps=8, P=600).samples, w)
    res = sample_distributed(model, 2400, client=client, random_state=2, rows_per_shard=1000, unwhiten=True, steps=8,
                             P=600)
    assert res.samples.tobytes() == ref.tobytes() and res.diagnostics["duplicate_rows"] == 1200  # ensembles 1 and 3 drawn twice


def test_same_bytes_on_one_worker_and_through_sample(moons, local_run):
    with connect("local:1") as one:
        assert list(one.run(lambda: os.environ["NUMBA_NUM_THREADS"]).values()) == [str(len(os.sched_getaffinity(0)))]
        res = sample(moons, N, random_state=11, steps=STEPS, backend="numba", client=one)
    assert res.samples.tobytes() == local_run.samples.tobytes()


def test_a_worker_killed_mid_run_is_replaced_and_the_zarr_is_complete(moons, client, tmp_path):
    n, steps = 24_000, 40
    ref = sample(moons, n, random_state=5, steps=steps, backend="numba").samples
    pids = client.run(os.getpid)
    killed = []

    def progress(done, total):
        if done == 2 and not killed:  # two shards in: kill the worker that has work in hand
            busy = [w for w, tasks in client.processing().items() if tasks] or list(pids)
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])

    with ZarrOutput(tmp_path / "k.zarr", n, 2, chunk_rows=1000) as store:
        res = sample_distributed(moons, n, client=client, random_state=5, store=store, progress=progress,
                                 steps=steps, backend="numba")
        store.commit()
    assert killed and res.diagnostics["shards"] == 24
    assert read_zarr(tmp_path / "k.zarr").tobytes() == ref.tobytes()
    assert os.listdir(tmp_path) == ["k.zarr"]
    deadline = time.time() + 30
    while len(client.scheduler_info(n_workers=-1)["workers"]) < 2 and time.time() < deadline:
        time.sleep(0.2)  # the nanny restarts it, with its numba threads
    k = str(worker_threads(len(os.sched_getaffinity(0)), 2))
    assert sorted(client.run(lambda: os.environ["NUMBA_NUM_THREADS"]).values()) == [k, k]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "m.h5"
    r = mmsold("fit-moments", SAMPLE_DATA / "moons_train.npy", "-o", path)
    assert r.returncode == 0, r.stderr
    return path


def test_cli_dask_npy_and_zarr_same_bytes_and_zarr_round_trip(model_file, tmp_path):
    common = ["-n", 5000, "--steps", 20, "--seed", 3, "--backend", "numba"]
    assert mmsold("sample", model_file, *common, "-o", tmp_path / "a.npy").returncode == 0
    a = np.load(tmp_path / "a.npy")
    env = dict(os.environ, MMSOLD_DASK="local:2")  # the address from the environment
    r = mmsold("sample", model_file, *common, "-o", tmp_path / "b.csv", "--json", env=env)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["workers"] == 2 and info["shards"] >= 1 and info["model_sent"] == "path"  # the workers see it
    assert np.loadtxt(tmp_path / "b.csv", delimiter=",").tobytes() == a.tobytes()  # %.17g round-trips
    diag = json.loads((tmp_path / "b.diagnostics.json").read_text())
    assert diag["shards"] >= 1 and diag["settings"]["random_state"] == 3 and max(diag["cov_error"]) < 1e-9
    assert diag["mean_error"] == json.loads((tmp_path / "a.diagnostics.json").read_text())["mean_error"]
    # a .zarr without a cluster (the workers' .zarr: the killed-worker test, and densify below)
    r = mmsold("sample", model_file, *common, "-o", tmp_path / "c.zarr")
    assert r.returncode == 0, r.stderr
    assert read_zarr(tmp_path / "c.zarr").tobytes() == a.tobytes()
    r = mmsold("sample", model_file, *common, "-o", tmp_path / "c.zarr")  # an existing store needs --overwrite
    assert r.returncode == 2 and "exists" in r.stderr
    r = mmsold("sample", model_file, *common, "-o", tmp_path / "c.zarr", "--overwrite")
    assert r.returncode == 0, r.stderr
    import zarr

    arr = zarr.open_array(tmp_path / "c.zarr", path="samples", mode="r")
    assert arr.metadata.zarr_format == 3 and arr.shape == (5000, 2)
    from mmsold_cli.io.arrays import read_points

    assert read_points(tmp_path / "c.zarr").tobytes() == a.tobytes()  # every command reads a .zarr output
    assert read_zarr(tmp_path / "c.zarr").tobytes() == a.tobytes()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary left


def test_cli_densify_on_the_cluster_gives_the_one_machine_bytes(tmp_path):
    rng = np.random.default_rng(2)
    u = rng.uniform(0, 4, (2000, 2))
    np.save(tmp_path / "in.npy", np.c_[u, _height(u[:, 0], u[:, 1])])
    common = ["--factor", 2, "--seed", 4, "--steps", 20]
    assert mmsold("densify", tmp_path / "in.npy", *common, "-o", tmp_path / "a.npy").returncode == 0
    r = mmsold("densify", tmp_path / "in.npy", *common, "-o", tmp_path / "b.zarr", "--dask", "local:2", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tiles"] == 1 and json.loads(r.stdout)["workers"] == 2
    assert read_zarr(tmp_path / "b.zarr").tobytes() == np.load(tmp_path / "a.npy").tobytes()
    assert json.loads((tmp_path / "b.diagnostics.json").read_text())["settings"]["random_state"] == 4
    # --tile-points 0 (never tile) is one task on the cluster too; it used to be refused ("at least 100")
    r = mmsold("densify", tmp_path / "in.npy", *common, "-o", tmp_path / "c.npy", "--dask", "local:1",
               "--tile-points", 0, "--json")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "c.npy").tobytes() == np.load(tmp_path / "a.npy").tobytes()


def test_cli_densify_a_las_scan_on_the_cluster_keeps_its_attributes(tmp_path):
    """--dask read positions only and refused .las/.laz (and --normals): a scan densified on the cluster is now
    the one-machine file, every point dimension and the header included, tiled and untiled."""
    laspy = pytest.importorskip("laspy")
    rng = np.random.default_rng(5)
    u = rng.uniform(0, 4, (3000, 2))
    P = np.c_[u, _height(u[:, 0], u[:, 1])] + [512000.0, 4100000.0, 200.0]  # a projected CRS's magnitudes
    h = laspy.LasHeader(point_format=3, version="1.2")
    h.offsets, h.scales = np.floor(P.min(axis=0)), np.full(3, 1e-4)
    las = laspy.LasData(h)
    las.x, las.y, las.z = P.T
    las.intensity = rng.integers(0, 60000, len(P)).astype(np.uint16)
    las.classification = np.where(u[:, 0] > 2, 6, 2).astype(np.uint8)
    las.red = rng.integers(0, 65535, len(P)).astype(np.uint16)
    las.write(tmp_path / "scan.las")
    for extra in ([], ["--tile-points", 1000]):
        common = ["--factor", 2, "--seed", 4, "--steps", 10, "--normals", *extra]
        a, b = tmp_path / "a.las", tmp_path / "b.las"
        here = mmsold("densify", tmp_path / "scan.las", *common, "-o", a, "--overwrite", "--json")
        assert here.returncode == 0, here.stderr
        r = mmsold("densify", tmp_path / "scan.las", *common, "-o", b, "--overwrite", "--dask", "local:2", "--json")
        assert r.returncode == 0, r.stderr
        summary, local = json.loads(r.stdout), json.loads(here.stdout)
        assert summary["workers"] == 2 and summary["tiles"] == (4 if extra else 1)
        # the summary says what the one-machine run says (the untiled task's even decision included)
        assert set(summary) - {"workers"} == set(local)  # an untiled run's t, noisy, noise_estimate too
        timing = {"seconds", "sample_seconds", "denoise_seconds", "output"}
        for key in set(local) - timing:
            assert summary[key] == local[key], (key, summary[key], local[key])
        A, B = laspy.read(a), laspy.read(b)
        assert len(B.points) == 6000 and "intensity" in summary["attributes"] and "nx" in summary["attributes"]
        assert A.points.array.tobytes() == B.points.array.tobytes()  # every dimension, normals as extra bytes
        assert list(B.header.offsets) == list(h.offsets) and list(B.header.scales) == list(h.scales)
        assert set(np.unique(B.classification)) == {2, 6}
    r = mmsold("densify", tmp_path / "scan.las", "--project-input", "-o", tmp_path / "c.las", "--dask", "local:2")
    assert r.returncode == 2 and "--project-input is not available with --dask" in r.stderr
    assert not (tmp_path / "c.las").exists()


def test_unreachable_scheduler_bad_address_and_missing_dask(model_file, tmp_path):
    out = tmp_path / "s.zarr"
    t0 = time.time()
    env = dict(os.environ, MMSOLD_DASK_TIMEOUT="2")
    r = mmsold("sample", model_file, "-n", 100, "-o", out, "--dask", "tcp://127.0.0.1:9", "--seed", 0, env=env)
    assert r.returncode == 2 and "cannot reach the Dask scheduler within 2 s" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert time.time() - t0 < 30
    r = mmsold("sample", model_file, "-n", 100, "-o", out, "--dask", "tcp://nohost")
    assert r.returncode == 2 and "scheme://host:port" in r.stderr
    code = ("import sys; sys.modules['distributed'] = None; from mmsold_cli.cli import run; "
            f"sys.argv = ['mmsold', 'sample', {str(model_file)!r}, '-n', '100', '-o', {str(out)!r}, "
            "'--dask', 'local:2']; run()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2 and 'pip install "mmsold[dask]"' in r.stderr, r.stderr
    assert os.listdir(tmp_path) == []


def test_scheduler_lost_mid_run_is_one_error_and_no_output(model_file, tmp_path):
    sched_file = tmp_path / "scheduler.json"
    out = tmp_path / "out"
    out.mkdir()
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 30
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                       str(sched_file), "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        p = subprocess.Popen([sys.executable, "-m", "mmsold_cli.cli", "sample", str(model_file), "-n", "400000",
                              "--steps", "200", "-o", str(out / "s.zarr"), "--dask", str(sched_file), "--seed", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while not any(n.endswith(".part.zarr") for n in os.listdir(out)) and time.time() < deadline + 30:
            time.sleep(0.1)
        time.sleep(1.5)
        procs[0].kill()  # the scheduler is gone
        _, err = p.communicate(timeout=60)
    finally:
        for q in procs:
            q.kill()
            q.wait()
    assert p.returncode == 2, err
    assert err.startswith("mmsold: error: lost the Dask scheduler") and len(err.strip().splitlines()) == 1, err
    assert os.listdir(out) == []


def test_ctrl_c_cancels_and_leaves_nothing(model_file, tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "mmsold_cli.cli", "sample", str(model_file), "-n", "400000",
                          "--steps", "200", "-o", str(tmp_path / "s.zarr"), "--dask", "local:2", "--seed", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(n.endswith(".part.zarr") for n in os.listdir(tmp_path)) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # shards running
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    # one line: neither asyncio's "Task exception was never retrieved" nor the resource tracker's leaked semaphores
    assert err.strip().splitlines() == ["mmsold: interrupted; no partial output left"], err
    assert os.listdir(tmp_path) == []


def test_import_does_not_load_dask():
    code = "import sys, mmsold_cli, mmsold_cli.cli, mmsold_cli.distributed; print(sorted({'dask', 'distributed', " \
           "'zarr'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


# --- tiled densify: the seams of tests/test_scans_tiles.py, on the cluster ---------------------------------


def _height(x, y):
    return 0.3 * np.sin(2 * x) * np.cos(2 * y)


def _dist(P):
    gx = 0.6 * np.cos(2 * P[:, 0]) * np.cos(2 * P[:, 1])
    gy = -0.6 * np.sin(2 * P[:, 0]) * np.sin(2 * P[:, 1])
    return np.abs(P[:, 2] - _height(P[:, 0], P[:, 1])) / np.sqrt(1 + gx**2 + gy**2)


def test_tiled_densify_on_the_cluster_has_no_seams_and_the_local_bytes(client, tmp_path):
    from mmsold_cli.distributed.densify import densify_distributed, tile_rows
    from mmsold_cli.io.cloud import PointCloud
    from mmsold_cli.metrics.surface import mean_spacing
    from mmsold_cli.workflows.densify import densify_cloud
    from mmsold_cli.workflows.tiles import densify_tile, plan_tiles

    rng = np.random.default_rng(0)
    u = rng.uniform(0, 4, (12000, 2))
    X = np.c_[u, _height(u[:, 0], u[:, 1])]
    cloud = PointCloud(X, {"h": X[:, 2].copy()}, ".ply")
    out, diag = densify_cloud(cloud, factor=4, random_state=1, tile_points=3000, client=client)  # the library's way
    Z = out.positions
    tiles = plan_tiles(X, 3000)
    assert len(diag["tiles"]) == 4 and len(Z) == 4 * len(X)
    # a tile computed here alone is the cluster's rows of it, byte for byte
    first = sum(i["output_points"] for i in diag["tiles"][:2])
    part, _ = densify_tile(cloud, tiles[2], factor=4, seed=1)
    assert part.positions.tobytes() == Z[first: first + len(part)].tobytes()
    # attributes carried through the tiles on the workers (the height, interpolated)
    assert np.abs(out.attributes["h"] - Z[:, 2]).mean() < 0.3 * 0.6 * mean_spacing(X)
    # handed over tile by tile in order (the client holds only tiles that finished early), the same points;
    # with the input first (keep_input) as on one machine
    got = []
    rest, _ = densify_distributed(cloud, client=client, factor=4, seed=1, tile_points=3000, put=got.append)
    assert len(rest.positions) == 0 and [len(p) for p in got] == [i["output_points"] for i in diag["tiles"]]
    assert np.concatenate([p.positions for p in got]).tobytes() == Z.tobytes()
    assert np.concatenate([p.attributes["h"] for p in got]).tobytes() == out.attributes["h"].tobytes()
    kept_here, _ = densify_cloud(cloud, factor=4, random_state=1, tile_points=3000, keep_input=True)
    kept_there, _ = densify_cloud(cloud, factor=4, random_state=1, tile_points=3000, keep_input=True, client=client)
    assert kept_there.positions.tobytes() == kept_here.positions.tobytes()
    assert kept_there.attributes["h"].tobytes() == kept_here.attributes["h"].tobytes()
    delta = mean_spacing(X)

    bz, iz = seam_bands(Z, tiles, delta, 4)
    bx, ix = seam_bands(X, tiles, delta, 4)
    assert bz.sum() > 1000
    # a run's band count alone is ±2.5 %: a second seed's points are pooled (as in test_scans_tiles)
    Z2 = densify_cloud(cloud, factor=4, random_state=2, tile_points=3000, client=client)[0].positions
    bz2, iz2 = seam_bands(Z2, tiles, delta, 4)
    density = ((bz.sum() + bz2.sum()) / bx.sum()) / ((iz.sum() + iz2.sum()) / ix.sum())
    d = _dist(Z) / delta
    assert abs(density - 1) <= 0.05, density
    assert d[bz].mean() <= 1.05 * d[iz].mean(), (d[bz].mean(), d[iz].mean())
    assert np.percentile(d[bz], 95) <= 1.05 * np.percentile(d[iz], 95)
    # a tiled .zarr, written by the workers (chunks inside a tile) and the client (chunks tiles share):
    # a smaller cloud, short runs, chunks smaller and larger than a tile's rows
    small = PointCloud(X[:2400], {}, ".ply")
    kw = dict(factor=1.5, tile_points=600, steps=10)
    ref, _ = densify_cloud(small, random_state=2, **kw)
    offsets = tile_rows(plan_tiles(small.positions, 600), 1.5)
    assert len(offsets) == 5 and offsets[-1] == len(ref.positions)
    for chunk in (250, 1000):
        with ZarrOutput(tmp_path / f"d{chunk}.zarr", int(offsets[-1]), 3, chunk_rows=chunk) as store:
            densify_distributed(small, client=client, seed=2, store=store, **kw)
            store.commit()
        assert read_zarr(tmp_path / f"d{chunk}.zarr").tobytes() == ref.positions.tobytes()


def test_even_density_on_the_cluster_has_the_local_bytes(client, tmp_path):
    """An uneven cloud (8:1 between halves): the client measures it once, every task gets its tile's share by area
    and the cloud's reference spacing, and the output is the one-machine run's, byte for byte (.zarr too)."""
    from mmsold_cli.distributed.densify import densify_distributed, layout
    from mmsold_cli.io.cloud import PointCloud
    from mmsold_cli.workflows.densify import densify_cloud
    from mmsold_cli.workflows.tiles import HALO

    rng = np.random.default_rng(3)
    u = np.r_[rng.uniform(0, 2, (4000, 2)), rng.uniform(0, 2, (500, 2)) + [2, 0]]
    cloud = PointCloud(np.c_[u, _height(u[:, 0], u[:, 1])], {}, ".ply")
    kw = dict(factor=2.0, tile_points=1200, steps=10)
    ref, ref_diag = densify_cloud(cloud, random_state=5, **kw)
    assert ref_diag["even"] and len(ref.positions) == 9000
    out, diag = densify_cloud(cloud, random_state=5, client=client, **kw)
    assert diag["even"] and diag["even_share"] == ref_diag["even_share"]
    assert out.positions.tobytes() == ref.positions.tobytes()
    work = layout(cloud.positions, 2.0, tile_points=1200, halo=HALO)
    assert work.plan is not None and work.offsets[-1] == 9000
    with ZarrOutput(tmp_path / "even.zarr", 9000, 3, chunk_rows=1000) as store:
        densify_distributed(cloud, client=client, seed=5, store=store, work=work, **kw)
        store.commit()
    assert read_zarr(tmp_path / "even.zarr").tobytes() == ref.positions.tobytes()


# --- fit-moments on a chunked input: map-reduce on the cluster ---------------------------------------------


def test_moments_by_map_reduce_equal_one_machine(client, tmp_path):
    import h5py
    import zarr

    from mmsold_cli.distributed.moments import distributed_moments

    rng = np.random.default_rng(4)
    X = rng.standard_normal((20_000, 3)) @ np.array([[2.0, 0, 0], [0.5, 1, 0], [0.1, 0.3, 0.2]]) + 1e3
    mu = X.mean(0)
    cov = (X - mu).T @ (X - mu) / len(X)
    z = zarr.open_group(store=str(tmp_path / "x.zarr"), mode="w", zarr_format=3)
    z.create_array("samples", shape=X.shape, chunks=(3000, 3), dtype="<f8")[...] = X
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("pts", data=X, chunks=(2500, 3))
    (tmp_path / "parts").mkdir()
    for i, r0 in enumerate(range(0, len(X), 7000)):
        np.save(tmp_path / "parts" / f"p{i}.npy", X[r0: r0 + 7000])
    for spec, blocks in [(tmp_path / "x.zarr", 7), (f"{tmp_path / 'x.h5'}:pts", 1),
                         (str(tmp_path / "parts" / "*.npy"), 3)]:
        m = distributed_moments(spec, client=client, block_rows=5000)
        assert m["n"] == len(X) and m["blocks"] >= blocks
        assert np.max(np.abs(m["mean"] - mu) / np.abs(mu)) <= 1e-12
        assert np.max(np.abs(m["covariance"] - cov)) / np.max(np.abs(cov)) <= 1e-12
        here = distributed_moments(spec, block_rows=5000)  # the same tree without a cluster: the same bytes
        assert here["covariance"].tobytes() == m["covariance"].tobytes()
    r = mmsold("fit-moments", tmp_path / "parts", "-o", tmp_path / "m.h5", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["moment_blocks"] == 3
    from mmsold_cli.io.model_file import load_model

    model = load_model(tmp_path / "m.h5")
    assert np.max(np.abs(model.covariance_ - cov)) / np.max(np.abs(cov)) <= 1e-12 and model.n_ == len(X)


def test_normals_toward_each_scanner_on_the_cluster(tmp_path, client):
    """The scanner rule on the cluster: the client turns the tiles' input normals; one untiled task turns its own.
    Both give the one-machine points, attributes and normals."""
    pytest.importorskip("pye57")
    from conftest import two_station_room

    from mmsold_cli.io.cloud import read_cloud
    from mmsold_cli.workflows.densify import densify_cloud

    two_station_room(tmp_path / "room.e57", 3000, np.random.default_rng(3))
    cloud = read_cloud(tmp_path / "room.e57")
    for tile_points in (0, 1200):
        kw = dict(factor=2, random_state=5, tile_points=tile_points, keep_input=True, normals="scanner", steps=10)
        here, _ = densify_cloud(cloud, **kw)
        there, _ = densify_cloud(cloud, client=client, **kw)
        assert here.positions.tobytes() == there.positions.tobytes()
        assert list(here.attributes) == list(there.attributes) and "scan_index" in here.attributes
        for name in here.attributes:
            assert np.asarray(here.attributes[name]).tobytes() == np.asarray(there.attributes[name]).tobytes(), name
        N = np.c_[here.attributes["nx"], here.attributes["ny"], here.attributes["nz"]][:3000]
        S = cloud.meta["scan_origins"][cloud.attributes["scan_index"]]
        assert np.all(np.einsum("ij,ij->i", N, S - cloud.positions) > 0)


@pytest.mark.filterwarnings("ignore:Port .* is already in use")  # the scheduler's HTTP routes, not ours
def test_bad_scheduler_file_bad_timeout_and_a_scheduler_without_workers(model_file, tmp_path):
    """Each one line and exit 2 (a scheduler file that is not one was an internal AssertionError, an infinite
    timeout a KeyError, and a scheduler no worker joined kept the run waiting without a word)."""
    from distributed import LocalCluster

    out = tmp_path / "s.npy"
    for text in ("not json", "{}"):
        (tmp_path / "sched.json").write_text(text)
        r = mmsold("sample", model_file, "-n", 100, "-o", out, "--dask", tmp_path / "sched.json")
        assert r.returncode == 2 and "not a Dask scheduler file" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    r = mmsold("sample", model_file, "-n", 100, "-o", out, "--dask", "tcp://127.0.0.1:9",
               env=dict(os.environ, MMSOLD_DASK_TIMEOUT="inf"))
    assert r.returncode == 2 and "positive, finite number of seconds" in r.stderr, r.stderr
    import socket

    with socket.socket() as silent:  # accepts connections (the backlog does) and never answers, as a web server
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        t0 = time.time()
        with pytest.raises(MmsoldError, match="no Dask scheduler answered at tcp://127.0.0.1:.* within 1 s"):
            with connect(f"tcp://127.0.0.1:{silent.getsockname()[1]}", timeout=1):
                pass
        assert time.time() - t0 < 10
    with LocalCluster(n_workers=0, processes=True, dashboard_address=None, scheduler_port=0) as empty:
        t0 = time.time()
        with pytest.raises(MmsoldError, match="has no workers .none joined within 2 s.; start some with: dask worker"):
            with connect(empty.scheduler_address, timeout=2):
                pass
        assert time.time() - t0 < 15
    assert not out.exists()


def test_relative_paths_reach_workers_in_another_folder(client, tmp_path, monkeypatch):
    """A worker's working folder is not the client's on a real cluster: a relative glob of inputs and a relative
    .zarr output are made absolute before they are sent (they failed as 'lost the Dask scheduler')."""
    from mmsold_cli.distributed.moments import distributed_moments

    before = client.run(os.getcwd)
    client.run(os.chdir, "/")
    monkeypatch.chdir(tmp_path)
    try:
        X = np.random.default_rng(2).standard_normal((3000, 3))
        os.mkdir("parts")
        for i in range(3):
            np.save(f"parts/p{i}.npy", X[1000 * i: 1000 * (i + 1)])
        m = distributed_moments("parts/p*.npy", client=client, block_rows=1000)
        assert m["n"] == 3000 and np.allclose(m["mean"], X.mean(0), rtol=0, atol=1e-12)
        model = fit_moments(X)
        with ZarrOutput("rel.zarr", 2000, 3, chunk_rows=1000) as store:
            sample_distributed(model, 2000, client=client, random_state=3, steps=2, store=store)
            store.commit()
        assert np.array_equal(read_zarr("rel.zarr"), sample(model, 2000, random_state=3, steps=2).samples)
        missing = tmp_path / "gone.zarr"
        with ZarrOutput(missing, 2000, 3, chunk_rows=1000) as store:
            import shutil

            shutil.rmtree(store.tmp)  # the workers cannot write there: a task's OSError, named as such
            with pytest.raises(MmsoldError, match="a task on the Dask cluster .* failed: "):
                sample_distributed(model, 2000, client=client, random_state=3, steps=2, store=store)
    finally:
        for addr, cwd in before.items():
            client.run(os.chdir, cwd, workers=[addr])
