"""`mmsold densify` on scan files: formats and attributes, normals, the noise/even stages, tiles, refusals."""

import json
import sys

import numpy as np
import pytest
from conftest import two_station_room
from scipy.spatial import cKDTree
from typer.testing import CliRunner

from mmsold_cli.cli import app
from mmsold_cli.io.cloud import PointCloud, read_cloud, write_cloud

R = 10.0  # sphere radius of every test cloud


def _sphere(n, rng):
    v = rng.standard_normal((n, 3))
    return R * v / np.linalg.norm(v, axis=1, keepdims=True)


def _las(path, X):
    """A LAS/LAZ file (point format 3, scale 1e-4) with intensity linear in x and two classes by the sign of z."""
    laspy = pytest.importorskip("laspy")
    if str(path).endswith(".laz"):
        pytest.importorskip("lazrs")
    h = laspy.LasHeader(point_format=3, version="1.2")
    h.scales = np.full(3, 1e-4)
    h.offsets = np.zeros(3)
    las = laspy.LasData(h)
    las.points = laspy.ScaleAwarePointRecord.zeros(len(X), header=h)
    las.x, las.y, las.z = X.T
    las.intensity = np.rint(3000 + 100 * X[:, 0]).astype(np.uint16)
    las.classification = np.where(X[:, 2] > 0, 6, 2).astype(np.uint8)
    las.write(str(path))
    return read_cloud(path).positions  # as stored: on the 1e-4 grid


def run(*args):
    return CliRunner().invoke(app, ["densify", *map(str, args)])


def ok(res):
    assert res.exit_code == 0, (res.output, res.exception)
    return json.loads(res.stdout)


def test_las_to_laz_keeps_format_attributes_and_adds_oriented_normals(tmp_path, rng):
    laspy = pytest.importorskip("laspy")
    pytest.importorskip("lazrs")
    X = _las(tmp_path / "in.las", _sphere(1500, rng))
    s = ok(run(tmp_path / "in.las", "-o", tmp_path / "out.laz", "--factor", "2", "--seed", "0", "--normals", "--json"))
    assert s["input_points"] == 1500 and s["output_points"] == 3000 and s["tiles"] == 1
    assert {"intensity", "classification", "nx", "ny", "nz"} <= set(s["attributes"])
    out = laspy.read(str(tmp_path / "out.laz"))
    assert out.header.point_format.id == 3 and np.allclose(out.header.scales, 1e-4)
    assert np.allclose(out.header.offsets, 0) and len(out.points) == 3000
    P = np.c_[out.x, out.y, out.z]
    # on the sphere (spacing ≈ 0.45): measured 1.1e-4, the rounding to the file's 1e-4 grid
    assert np.abs(np.linalg.norm(P, axis=1) - R).mean() < 1e-3
    # classes: exactly the nearest input point's
    near = cKDTree(X).query(P)[1]
    assert np.array_equal(np.asarray(out.classification), np.where(X[near, 2] > 0, 6, 2))
    # intensity interpolated: the field is linear in x, so the new points follow 3000 + 100 x
    assert np.abs(np.asarray(out.intensity, dtype=float) - (3000 + 100 * P[:, 0])).mean() < 15  # spread: 580
    assert {"nx", "ny", "nz"} <= set(out.point_format.extra_dimension_names)
    N = np.c_[out.nx, out.ny, out.nz]
    assert np.allclose(np.linalg.norm(N, axis=1), 1, atol=1e-5)
    assert np.einsum("ij,ij->i", N, P / R).min() > 0.9  # outward everywhere on the sphere
    diag = json.loads((tmp_path / "out.diagnostics.json").read_text())
    assert diag["settings"]["random_state"] == 0 and diag["settings"]["normals"] is True


def test_default_output_is_the_input_format_with_its_property_types(tmp_path, rng):
    X = _sphere(1200, rng)
    red = np.rint(127 + 120 * X[:, 1] / R).astype(np.uint8)
    label = (X[:, 0] > 0).astype(np.int32) + 7
    write_cloud(tmp_path / "scan.ply", PointCloud(X, {"red": red, "label": label, "quality": X[:, 2] / R}))
    s = ok(run(tmp_path / "scan.ply", "--factor", "3", "--seed", "1", "--json"))
    out_path = tmp_path / "scan.dense.ply"
    assert s["output"] == str(out_path) and s["output_points"] == 3600
    c = read_cloud(out_path)
    assert list(c.attributes) == ["red", "label", "quality"]
    assert c.attributes["red"].dtype == np.uint8 and c.attributes["label"].dtype == np.int32
    near = cKDTree(X).query(c.positions)[1]
    assert np.array_equal(c.attributes["label"], label[near])
    assert set(np.unique(c.attributes["label"])) == {7, 8}
    assert np.abs(c.attributes["red"] - (127 + 12 * c.positions[:, 1])).mean() < 2.0
    assert np.abs(c.attributes["quality"] - c.positions[:, 2] / R).mean() < 0.02  # spread: 0.58


def test_an_xyzrgb_text_scan_keeps_its_colours(tmp_path, rng):
    """CloudCompare's ASCII export: x y z r g b, no header; the output keeps the layout, tiled or not."""
    X = _sphere(1500, rng)
    rgb = np.rint(127 + 12 * X).astype(int)  # a colour linear in the position
    with open(tmp_path / "scan.xyz", "w") as fh:
        np.savetxt(fh, np.c_[X, rgb], fmt=["%.6f"] * 3 + ["%d"] * 3)
    X = np.loadtxt(tmp_path / "scan.xyz")[:, :3]  # as stored
    for extra in ([], ["--tile-points", "600", "--keep-input"]):
        s = ok(run(tmp_path / "scan.xyz", "--factor", "2", "--seed", "2", "--overwrite", "--json", *extra))
        assert s["attributes"] == ["red", "green", "blue"]
        out = np.loadtxt(tmp_path / "scan.dense.xyz")
        assert out.shape == (s["output_points"], 6) and (tmp_path / "scan.dense.xyz").read_text()[0] != "x"
        assert np.all(out[:, 3:] == np.rint(out[:, 3:])) and out[:, 3:].min() >= 0 and out[:, 3:].max() <= 255
        assert np.abs(out[:, 3:] - (127 + 12 * out[:, :3])).mean() < 2.0  # spread: 0–255; a spacing: 5.5
        if extra:
            assert s["tiles"] >= 2 and np.array_equal(out[:1500, :3], X)
            assert np.array_equal(out[:1500, 3:], rgb)
    ok(run(tmp_path / "scan.xyz", "-o", tmp_path / "plain.xyz", "--factor", "2", "--drop-attributes", "all", "--json"))
    assert np.loadtxt(tmp_path / "plain.xyz").shape == (3000, 3)
    ok(run(tmp_path / "scan.xyz", "-o", tmp_path / "out.ply", "--factor", "2", "--json"))
    c = read_cloud(tmp_path / "out.ply")
    assert list(c.attributes) == ["red", "green", "blue"] and c.attributes["red"].dtype == np.uint8


def test_a_pts_scan_keeps_its_intensity_and_colour(tmp_path, rng):
    """Leica's PTS: a count line per scan, then x y z i r g b; the output is one PTS block of the same columns."""
    X = _sphere(1500, rng)
    inten = np.rint(-12 * X[:, 0]).astype(int)  # signed, as PTS intensities are (−2048…2047)
    rgb = np.rint(127 + 12 * X).astype(int)
    with open(tmp_path / "scan.pts", "w") as fh:
        for part in (slice(0, 700), slice(700, 1500)):  # two scans
            fh.write(f"{part.stop - part.start}\n")
            np.savetxt(fh, np.c_[X, inten, rgb][part], fmt=["%.6f"] * 3 + ["%d"] * 4)
    s = ok(run(tmp_path / "scan.pts", "--factor", "2", "--seed", "4", "--overwrite", "--json"))
    assert s["attributes"] == ["intensity", "red", "green", "blue"] and s["output_points"] == 3000
    lines = (tmp_path / "scan.dense.pts").read_text().splitlines()
    assert lines[0] == "3000" and len(lines) == 3001
    out = np.loadtxt(tmp_path / "scan.dense.pts", skiprows=1)
    assert out.shape == (3000, 7) and all(len(f.split(".")[1]) == 6 for f in lines[1].split()[:3])
    assert np.abs(out[:, 3] + 12 * out[:, 0]).mean() < 2.0  # spread: 240; a spacing: 5.5
    assert np.abs(out[:, 4:] - (127 + 12 * out[:, :3])).mean() < 2.0
    # what a PTS row has no place for is left out, said in one warning line and in the summary
    _las(tmp_path / "scan.las", X)
    res = run(tmp_path / "scan.las", "-o", tmp_path / "out.pts", "--factor", "1", "--json")
    s = ok(res)
    warning = [ln for ln in res.stderr.splitlines() if ln.startswith("mmsold: warning:")]
    assert len(warning) == 1 and "classification" in warning[0] and "gps_time" in warning[0]
    assert s["attributes"] == ["intensity", "red", "green", "blue"]
    assert "classification" in s["left_out"] and "intensity" not in s["left_out"]
    # normals asked for a format without them: refused before any work
    res = run(tmp_path / "scan.pts", "-o", tmp_path / "n.pts", "--normals")
    assert res.exit_code == 2 and "no place for normals" in res.output and not (tmp_path / "n.pts").exists()
    out = np.loadtxt(tmp_path / "out.pts", skiprows=1)  # point format 3: intensity and a colour
    assert out.shape == (1500, 7) and np.abs(out[:, 3] - (3000 + 100 * out[:, 0])).mean() < 20  # spread: 2,000


def test_tiles_keep_input_and_drop_attributes(tmp_path, rng):
    X = _las(tmp_path / "in.las", _sphere(3000, rng))
    s = ok(run(tmp_path / "in.las", "-o", tmp_path / "out.ply", "--factor", "1", "--seed", "3", "--tile-points",
               "1000", "--keep-input", "--drop-attributes", "intensity,gps_time", "--json"))
    assert s["tiles"] >= 3 and s["seed"] == 3
    c = read_cloud(tmp_path / "out.ply")
    assert len(c) == 6000 == s["output_points"]
    assert "intensity" not in c.attributes and "gps_time" not in c.attributes and "classification" in c.attributes
    assert np.array_equal(c.positions[:3000], X)  # the input first, exactly as read
    assert np.array_equal(c.attributes["classification"][:3000], np.where(X[:, 2] > 0, 6, 2))
    new = c.positions[3000:]
    assert np.abs(np.linalg.norm(new, axis=1) - R).mean() < 3e-4  # measured 3.5e-5
    near = cKDTree(X).query(new)[1]
    assert np.array_equal(c.attributes["classification"][3000:], np.where(X[near, 2] > 0, 6, 2))
    diag = json.loads((tmp_path / "out.diagnostics.json").read_text())
    assert sum(t["core_points"] for t in diag["tiles"]) == 3000


def test_tiles_start_automatically_when_memory_is_short(tmp_path, rng, monkeypatch):
    from mmsold_cli.io import room
    from mmsold_cli.workflows.tiles import BYTES_PER_POINT, MEMORY_SHARE, SURPLUS, auto_tile_points

    per_input = BYTES_PER_POINT * (1 + (1 + SURPLUS) * 4)
    assert auto_tile_points(4, memory=10**9) == int(MEMORY_SHARE * 10**9 / per_input) == 32808
    assert auto_tile_points(4, memory=10**12) == 100_000 and auto_tile_points(4, memory=10**6) == 1_000
    X = _sphere(2500, rng)
    np.save(tmp_path / "in.npy", X)
    s = ok(run(tmp_path / "in.npy", "-o", tmp_path / "plenty.npy", "--factor", "1", "--seed", "0", "--json"))
    assert s["tiles"] == 1
    per_input_1 = BYTES_PER_POINT * (1 + (1 + SURPLUS) * 1)  # --factor 1: room for tiles of 1,000 points
    monkeypatch.setattr(room, "available_memory", lambda: int(1_000 * per_input_1 / MEMORY_SHARE) + 1)
    s = ok(run(tmp_path / "in.npy", "-o", tmp_path / "short.npy", "--factor", "1", "--seed", "0", "--json"))
    assert s["tiles"] >= 3 and np.load(tmp_path / "short.npy").shape == (2500, 3)


def test_noise_stage_switch_and_project_input(tmp_path, rng):
    C = _sphere(2000, rng)
    X = C + 0.06 * rng.standard_normal(C.shape)  # about 0.15 of the spacing (0.4)
    np.save(tmp_path / "noisy.npy", X)
    off = ok(run(tmp_path / "noisy.npy", "-o", tmp_path / "off.npy", "--factor", "2", "--seed", "0", "--noise", "off",
                 "--json"))
    on = ok(run(tmp_path / "noisy.npy", "-o", tmp_path / "on.npy", "--factor", "2", "--seed", "0", "--noise", "on",
                "--project-input", "--json"))
    assert "noisy" not in off and on["noisy"] is True and on["output_points"] == 6000

    def err(P):
        return np.abs(np.linalg.norm(P, axis=1) - R).mean()

    e_in, e_off = err(X), err(np.load(tmp_path / "off.npy"))
    P_on = np.load(tmp_path / "on.npy")
    assert err(P_on[2000:]) < 0.75 * e_off and e_off > 0.5 * e_in
    # --project-input: the input points come first, moved towards the surface, each near where it was
    moved = np.linalg.norm(P_on[:2000] - X, axis=1)
    assert err(P_on[:2000]) < 0.7 * e_in and 0 < moved.mean() < 0.2


def test_repeated_points_untiled_and_tiled(tmp_path, rng):
    """A cloud with every point twice: exit 1 'internal error LinAlgError' before (kernels of width 0); now the
    repeats are read once (and counted), and a tiled run's halo is measured between distinct points."""
    X = np.repeat(_sphere(1500, rng), 2, axis=0)
    np.save(tmp_path / "twice.npy", X)
    one = ok(run(tmp_path / "twice.npy", "-o", tmp_path / "one.npy", "--factor", "4", "--seed", "0", "--json"))
    tiled = ok(run(tmp_path / "twice.npy", "-o", tmp_path / "tiled.npy", "--factor", "4", "--seed", "0",
                   "--tile-points", "1000", "--json"))
    assert one["output_points"] == 12000 and tiled["tiles"] == 4 and tiled["output_points"] == 12000
    # the summary says how many were repeats: each tile counts those of its core, so the tiles add up to 1,500
    assert one["repeated_points"] == 1500 and tiled["repeated_points"] == 1500
    for name in ("one.npy", "tiled.npy"):  # on the sphere, as densify puts points on clean input
        r = np.linalg.norm(np.load(tmp_path / name), axis=1) / R
        assert np.abs(r - 1).mean() < 1e-4, (name, np.abs(r - 1).mean())  # measured 1.0e-5 both
    assert all(t["halo"] > 0 for t in json.loads((tmp_path / "tiled.diagnostics.json").read_text())["tiles"])


def test_even_stage_fills_a_sparse_half(tmp_path, rng):
    S = _sphere(6000, rng)
    X = np.r_[S[S[:, 2] > 0], S[S[:, 2] <= 0][::6]]  # the lower half 6x sparser
    np.save(tmp_path / "uneven.npy", X)
    plain = ok(run(tmp_path / "uneven.npy", "-o", tmp_path / "plain.npy", "--factor", "4", "--seed", "0",
                   "--no-even", "--json"))
    even = ok(run(tmp_path / "uneven.npy", "-o", tmp_path / "even.npy", "--factor", "4", "--seed", "0", "--even",
                  "--json"))
    assert "even_added" not in plain and plain["even"] is False and even["even_added"] > 1000
    # without either flag the stage runs because the input is uneven, with the same output as --even
    auto = ok(run(tmp_path / "uneven.npy", "-o", tmp_path / "auto.npy", "--factor", "4", "--seed", "0", "--json"))
    assert auto["even"] is True and auto["even_share"] > 0.05 and auto["even_added"] == even["even_added"]
    assert np.load(tmp_path / "auto.npy").tobytes() == np.load(tmp_path / "even.npy").tobytes()

    def lower_share(path):
        return float((np.load(path)[:, 2] < 0).mean())

    # the input's lower half holds 1/7 of the points; an even output covers both halves about equally
    assert lower_share(tmp_path / "plain.npy") < 0.2 and lower_share(tmp_path / "even.npy") > 0.35


def test_crease_stage_and_no_creases(tmp_path):
    from mmsold_cli.datasets import capped_cylinder, surface_samples
    from mmsold_cli.metrics.surface import MeshDistance, mean_spacing

    V, F = capped_cylinder(seg=256, rings=32)
    X = surface_samples(V, F, 2000, random_state=np.random.default_rng(0))
    np.save(tmp_path / "cyl.npy", X)
    for flag in ("--creases", "--no-creases"):
        ok(run(tmp_path / "cyl.npy", "-o", tmp_path / f"{flag}.npy", "--factor", "4", "--seed", "0", flag, "--json"))
    md, delta = MeshDistance(V, F), mean_spacing(X)

    def rim_error(path):
        P = np.load(path)
        rad = np.linalg.norm(P[:, :2], axis=1)
        near = np.minimum(np.hypot(rad - 1, P[:, 2]), np.hypot(rad - 1, P[:, 2] - 2)) < 2 * delta
        return md.query(P[near])[0].mean() / delta

    # the rims rounded off without the stage (about 0.16 δ), sharp with it (about 0.03 δ)
    assert rim_error(tmp_path / "--creases.npy") < 0.5 * rim_error(tmp_path / "--no-creases.npy")


@pytest.mark.parametrize("args, msg", [(["--noise", "maybe"], "--noise must be auto, on or off"),
                                       (["--drop-attributes", "alpha"], "cannot drop 'alpha'"),
                                       (["--drop-attributes", ","], "--drop-attributes expects"),
                                       (["--tile-points", "50"], "tile_points must be at least 100"),
                                       (["--factor", "-1"], "factor")])
def test_bad_scan_options_one_line_exit_2_nothing_left(tmp_path, rng, args, msg):
    _las(tmp_path / "in.las", _sphere(300, rng))
    res = run(tmp_path / "in.las", "-o", tmp_path / "o.las", *args)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and msg in lines[0], res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.las"]


def test_an_empty_or_unknown_cloud_and_normals_nowhere_to_go(tmp_path, rng):
    laspy = pytest.importorskip("laspy")
    laspy.LasData(laspy.LasHeader(point_format=3, version="1.2")).write(str(tmp_path / "empty.las"))
    (tmp_path / "empty.ply").write_text("ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\n"
                                        "property float y\nproperty float z\nend_header\n")
    (tmp_path / "scan.docx").write_bytes(b"PK")
    _las(tmp_path / "in.las", _sphere(300, rng))
    cases = [(tmp_path / "empty.las", "o.ply", [], "empty.las: is empty (0 points)"),
             (tmp_path / "empty.ply", "o.ply", [], "empty.ply: is empty (0 points)"),
             (tmp_path / "scan.docx", "o.ply", [], "expected one of .las, .laz, .ply, .e57"),
             (tmp_path / "in.las", "o.npy", ["--normals"], "a .npy file has no place for normals")]
    for src, out, extra, msg in cases:
        res = run(src, "-o", tmp_path / out, *extra)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and msg in lines[0], (msg, res.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.las", "empty.ply", "in.las", "scan.docx"]
    # an array output keeps positions only, and says what it leaves out
    res = run(tmp_path / "in.las", "-o", tmp_path / "o.npy", "--factor", 2, "--seed", 0, "--json")
    assert "no place for intensity" in res.stderr and "classification" in ok(res)["left_out"]


def test_a_byte_order_mark_before_the_header(tmp_path, rng):
    X = _sphere(300, rng)
    rows = "\n".join(",".join(f"{v:.6f}" for v in p) for p in X)
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbfx,y,z\n" + rows.encode() + b"\n")
    np.testing.assert_array_equal(read_cloud(tmp_path / "bom.csv").positions, np.round(X, 6))
    ok(run(tmp_path / "bom.csv", "-o", tmp_path / "o.csv", "--factor", 2, "--seed", 0, "--json"))
    assert (tmp_path / "o.csv").read_text().splitlines()[0] == "x,y,z"


def test_e57_without_its_reader_is_refused(tmp_path, rng, monkeypatch):
    monkeypatch.setitem(sys.modules, "pye57", None)  # an installation without the e57 extra: import fails
    np.save(tmp_path / "in.npy", _sphere(300, rng))
    (tmp_path / "scan.e57").write_bytes(b"ASTM-E57")
    for res in (run(tmp_path / "in.npy", "-o", tmp_path / "o.e57"), run(tmp_path / "scan.e57", "-o", tmp_path / "o.ply")):
        assert res.exit_code == 2 and "E57 is not supported" in res.stderr and "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "scan.e57"]


def test_e57_round_trip(tmp_path, rng):
    pytest.importorskip("pye57")
    X = _sphere(1000, rng)
    inten = (0.5 + 0.04 * X[:, 0]).astype(np.float32)
    write_cloud(tmp_path / "in.e57", PointCloud(X, {"intensity": inten, "rowIndex": np.arange(1000) % 7,
                                                       "columnIndex": np.arange(1000) // 7}))
    c = read_cloud(tmp_path / "in.e57")
    assert np.allclose(c.positions, X) and np.allclose(c.attributes["intensity"], inten)
    s = ok(run(tmp_path / "in.e57", "--factor", "2", "--seed", "0", "--json"))
    out = read_cloud(tmp_path / "in.dense.e57")
    assert s["output_points"] == len(out) == 2000
    assert np.abs(out.attributes["intensity"] - (0.5 + 0.04 * out.positions[:, 0])).mean() < 0.01
    near = cKDTree(X).query(out.positions)[1]
    assert np.array_equal(out.attributes["rowIndex"], np.arange(1000)[near] % 7)
    # a colour crosses formats under one name: LAS's 16-bit red, green, blue become E57's 8-bit ones and back
    las = _las(tmp_path / "c.las", X)
    c = read_cloud(tmp_path / "c.las")
    rgb16 = (np.c_[127 + 12 * las[:, 0], 127 + 12 * las[:, 1], 127 + 12 * las[:, 2]] * 257).astype(np.uint16)
    write_cloud(tmp_path / "c16.las", PointCloud(las, {**c.attributes, "red": rgb16[:, 0], "green": rgb16[:, 1],
                                                     "blue": rgb16[:, 2]}, ".las", c.meta))
    res = run(tmp_path / "c16.las", "-o", tmp_path / "c.e57", "--factor", "1", "--seed", "0", "--json")
    s = ok(res)
    assert s["attributes"] == ["intensity", "red", "green", "blue"] and "classification" in s["left_out"]
    e = read_cloud(tmp_path / "c.e57")
    assert e.attributes["red"].dtype == np.uint8
    lin = np.c_[127 + 12 * e.positions[:, 0], 127 + 12 * e.positions[:, 1], 127 + 12 * e.positions[:, 2]]
    assert np.abs(np.c_[e.attributes["red"], e.attributes["green"], e.attributes["blue"]] - lin).mean() < 2.0
    s = ok(run(tmp_path / "c.e57", "-o", tmp_path / "back.las", "--factor", "1", "--seed", "0", "--json"))
    assert s["attributes"] == ["intensity", "red", "green", "blue"] and "left_out" not in s
    back = read_cloud(tmp_path / "back.las")  # E57's 8-bit channels, 16-bit in LAS as its specification asks
    np.testing.assert_array_equal(back.attributes["red"] % 257, 0)
    assert back.attributes["red"].max() > 100 * 257


def test_normals_toward_the_scanner_of_each_e57_scan(tmp_path, rng):
    """A room scanned from two stations: 'out' points every normal out of the room, away from both scanners;
    'scanner' turns each towards the station that saw it, tiled or not, input and new points alike."""
    pytest.importorskip("pye57")
    P, stations = two_station_room(tmp_path / "room.e57", 4000, rng)
    c = read_cloud(tmp_path / "room.e57")
    assert np.allclose(np.sort(c.positions, axis=0), np.sort(P, axis=0), atol=1e-5)  # stored as float32
    assert np.allclose(c.meta["scan_origins"], stations)
    S = stations[c.attributes["scan_index"]]  # each point's scanner, in the file's order
    assert np.array_equal(c.attributes["scan_index"], (c.positions[:, 0] > 5).astype(np.uint16))

    def facing_share(path):
        out = read_cloud(path)
        N = np.c_[out.attributes["nx"], out.attributes["ny"], out.attributes["nz"]]
        near = cKDTree(c.positions).query(out.positions)[1]
        return float(np.mean(np.einsum("ij,ij->i", N, S[near] - out.positions) > 0)), out

    for extra in ([], ["--tile-points", "1500"]):
        common = ["--factor", "2", "--seed", "1", "--keep-input", "--overwrite", "--json", *extra]
        s = ok(run(tmp_path / "room.e57", "-o", tmp_path / "out.ply", "--normals", *common))
        assert (s["tiles"] >= 3) if extra else (s["tiles"] == 1)
        assert facing_share(tmp_path / "out.ply")[0] < 0.05
        s = ok(run(tmp_path / "room.e57", "-o", tmp_path / "in.ply", "--normals-toward", "scanner", *common))
        share, out = facing_share(tmp_path / "in.ply")
        assert share > 0.99 and (not extra or s["tiles"] >= 3)
        Ni = np.c_[out.attributes["nx"], out.attributes["ny"], out.attributes["nz"]][:4000]
        assert np.all(np.einsum("ij,ij->i", Ni, S - c.positions) > 0)  # every input point's own scanner
    bad = run(tmp_path / "in.ply", "-o", tmp_path / "x.ply", "--normals-toward", "scanner")
    assert bad.exit_code == 2 and "E57" in bad.output and not (tmp_path / "x.ply").exists()
    # E57 out (the default): a scan per station again, at its scanner, each point in its nearest input point's
    ok(run(tmp_path / "room.e57", "--factor", "2", "--seed", "1", "--json"))
    d = read_cloud(tmp_path / "room.dense.e57")
    assert d.meta["e57_scans"] == 2 and np.allclose(d.meta["scan_origins"], stations)
    near = cKDTree(c.positions).query(d.positions)[1]
    assert len(d) == 8000 and np.array_equal(d.attributes["scan_index"], c.attributes["scan_index"][near])
    ok(run(tmp_path / "room.dense.e57", "-o", tmp_path / "again.ply", "--factor", "1", "--normals-toward", "scanner",
           "--json"))


@pytest.mark.parametrize("ext", [".ply", ".laz", ".npy"])
def test_tiled_output_streams_to_the_file_the_library_gathers(tmp_path, rng, ext, monkeypatch):
    """The CLI writes each tile as it is made (never the whole output at once), in the bytes of a whole write."""
    from mmsold_cli.io import cloud as cloud_io
    from mmsold_cli.workflows.densify import densify_cloud

    _las(tmp_path / "in.las", _sphere(3000, rng))
    blocks = []
    real_write = cloud_io.CloudWriter.write
    monkeypatch.setattr(cloud_io.CloudWriter, "write", lambda self, part: (blocks.append(len(part)),
                                                                           real_write(self, part))[1])
    s = ok(run(tmp_path / "in.las", "-o", tmp_path / f"out{ext}", "--factor", "2", "--seed", "5", "--tile-points",
               "1000", "--keep-input", "--json"))
    assert s["tiles"] >= 3 and len(blocks) == s["tiles"] + 1 and max(blocks) < s["output_points"] / 2
    src = read_cloud(tmp_path / "in.las")
    ref, _ = densify_cloud(src, factor=2, random_state=5, tile_points=1000, keep_input=True)
    write_cloud(tmp_path / f"ref{ext}", ref, like=src)
    if ext == ".laz":  # laspy's extra-bytes statistics are per block; the points and the header are the same
        a, b = read_cloud(tmp_path / f"out{ext}"), read_cloud(tmp_path / f"ref{ext}")
        assert np.array_equal(a.positions, b.positions) and len(a) == 9000
        for name in b.attributes:
            assert np.array_equal(a.attributes[name], b.attributes[name]), name
    else:
        assert (tmp_path / f"out{ext}").read_bytes() == (tmp_path / f"ref{ext}").read_bytes()


def test_normals_toward_up_or_a_scanner(tmp_path, rng):
    """Terrain (an open surface, as airborne scans are) has no outside: --normals pointed all 20,000 of its
    normals down. --normals-toward up points them up, tiled or not; a scanner position points them at it."""
    u = rng.uniform(0, 100, (6000, 2))
    X = np.c_[u, 3 * np.sin(u[:, 0] / 15) + 2 * np.cos(u[:, 1] / 11)]
    np.save(tmp_path / "terrain.npy", X)
    for extra in ([], ["--tile-points", "2000"]):
        s = ok(run(tmp_path / "terrain.npy", "-o", tmp_path / "up.ply", "--factor", "2", "--seed", "0",
                   "--normals-toward", "up", "--overwrite", "--json", *extra))
        assert s["tiles"] == (4 if extra else 1)
        c = read_cloud(tmp_path / "up.ply")
        assert np.all(c.attributes["nz"] > 0.5)
    ok(run(tmp_path / "terrain.npy", "-o", tmp_path / "view.ply", "--factor", "2", "--seed", "0",
           "--normals-toward", "50,50,-200", "--json"))
    c = read_cloud(tmp_path / "view.ply")
    assert np.all(c.attributes["nz"] < -0.5)  # a scanner below: towards it
    # on a closed object "up" holds for every point too, the new ones around the equator included
    np.save(tmp_path / "ball.npy", _sphere(3000, rng))
    ok(run(tmp_path / "ball.npy", "-o", tmp_path / "ball.ply", "--factor", "4", "--seed", "0", "--normals-toward", "up",
           "--json"))
    assert np.all(read_cloud(tmp_path / "ball.ply").attributes["nz"] >= 0)
    res = run(tmp_path / "terrain.npy", "-o", tmp_path / "bad.ply", "--normals-toward", "sideways")
    assert res.exit_code == 2 and "normals must point 'out', 'up'" in res.stderr and not (tmp_path / "bad.ply").exists()
