"""Scan formats: LAS/LAZ and PLY round trips keep every attribute, the header's grid and the CRS."""

import numpy as np
import pytest

from mmsold_cli.errors import MmsoldError
from mmsold_cli.io.cloud import PointCloud, read_cloud, write_cloud

WKT = 'PROJCS["WGS 84 / UTM zone 32N",GEOGCS["WGS 84"],UNIT["metre",1]]'


def _las_file(path, rng, n=500):
    laspy = pytest.importorskip("laspy")
    if str(path).endswith(".laz"):
        pytest.importorskip("lazrs")
    h = laspy.LasHeader(point_format=7, version="1.4")
    h.add_extra_dims([laspy.ExtraBytesParams(name="reflect", type=np.float32),
                      laspy.ExtraBytesParams(name="tree_id", type=np.int32)])
    h.offsets = np.array([500000.0, 4_000_000.0, 100.0])
    h.scales = np.array([0.001, 0.001, 0.01])
    h.vlrs.append(laspy.VLR(user_id="LASF_Projection", record_id=2112, description="OGC WKT",
                            record_data=WKT.encode() + b"\0"))
    las = laspy.LasData(h)
    las.points = laspy.ScaleAwarePointRecord.zeros(n, header=h)
    las.x = 500000 + rng.uniform(0, 50, n)
    las.y = 4_000_000 + rng.uniform(0, 50, n)
    las.z = 100 + rng.uniform(0, 5, n)
    las.intensity = rng.integers(0, 65535, n)
    las.return_number = rng.integers(1, 4, n)
    las.number_of_returns = np.full(n, 3)
    las.classification = rng.choice([2, 5, 6], n)
    las.gps_time = 1e8 + np.sort(rng.uniform(0, 100, n))
    las.red, las.green, las.blue = (rng.integers(0, 65535, n) for _ in range(3))
    las.reflect = rng.standard_normal(n).astype(np.float32)
    las.tree_id = rng.integers(0, 40, n)
    las.write(str(path))
    return laspy.read(str(path))


@pytest.mark.parametrize("ext", [".las", ".laz"])
def test_las_round_trip_keeps_dimensions_grid_and_crs(tmp_path, rng, ext):
    laspy = pytest.importorskip("laspy")
    src = _las_file(tmp_path / f"in{ext}", rng)
    cloud = read_cloud(tmp_path / f"in{ext}")
    assert len(cloud) == 500
    assert np.allclose(cloud.positions[:, 0], src.x) and np.allclose(cloud.positions[:, 2], src.z)
    for name in ("intensity", "return_number", "classification", "gps_time", "red", "reflect", "tree_id"):
        assert np.array_equal(cloud.attributes[name], np.asarray(src[name])), name
    write_cloud(tmp_path / f"out{ext}", cloud)
    back = laspy.read(str(tmp_path / f"out{ext}"))
    assert back.header.point_format.id == 7 and str(back.header.version) == "1.4"
    assert np.allclose(back.header.scales, [0.001, 0.001, 0.01]) and np.allclose(back.header.offsets, src.header.offsets)
    assert np.array_equal(back.X, src.X) and np.array_equal(back.Z, src.Z)  # same integer grid: exact
    for name in src.point_format.dimension_names:
        assert np.array_equal(np.asarray(back[name]), np.asarray(src[name])), name
    wkt = [v for v in back.header.vlrs if v.record_id == 2112]
    assert len(wkt) == 1 and WKT in wkt[0].string
    assert not list(tmp_path.glob(".*part*"))


def test_las_new_points_get_the_input_header(tmp_path, rng):
    laspy = pytest.importorskip("laspy")
    _las_file(tmp_path / "in.las", rng)
    cloud = read_cloud(tmp_path / "in.las")
    new = PointCloud(cloud.positions[:10] + 0.0123, {"classification": np.full(10, 6, np.uint8),
                                                     "nx": np.linspace(-1, 1, 10)}, ".las")
    write_cloud(tmp_path / "new.las", new, like=cloud)
    back = laspy.read(str(tmp_path / "new.las"))
    assert np.allclose(back.nx, np.linspace(-1, 1, 10))  # not in the input's format: added as extra bytes
    assert "nx" not in cloud.meta["las_header"].point_format.dimension_names  # the input's header untouched
    # an extra dimension the new points do not carry is not declared (not written as zeros)
    assert back.header.point_format.id == 7 and "reflect" not in back.point_format.dimension_names
    assert np.abs(back.x - new.positions[:, 0]).max() <= 0.0005 + 1e-9  # quantised to the 1 mm grid
    assert np.all(back.classification == 6) and np.all(back.intensity == 0)


def test_las_without_header_writes_attributes_as_extra_bytes(tmp_path, rng):
    laspy = pytest.importorskip("laspy")
    X = rng.uniform(-1, 1, (50, 3))
    cloud = PointCloud(X, {"intensity": rng.integers(0, 1000, 50).astype(np.uint16),
                           "score": rng.standard_normal(50)}, ".npy")
    write_cloud(tmp_path / "a.las", cloud)
    back = laspy.read(str(tmp_path / "a.las"))
    assert np.allclose(back.x, X[:, 0], atol=1e-6) and np.array_equal(back.intensity, cloud.attributes["intensity"])
    assert np.allclose(back.score, cloud.attributes["score"])


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
def test_ply_round_trip_keeps_every_vertex_property(tmp_path, rng, fmt):
    from mmsold_cli.io.ply import write_ply_cloud

    n = 200
    X = rng.standard_normal((n, 3))
    attrs = {"red": rng.integers(0, 256, n).astype(np.uint8), "green": rng.integers(0, 256, n).astype(np.uint8),
             "intensity": rng.random(n).astype(np.float32), "label": rng.integers(-5, 9, n).astype(np.int32),
             "nx": rng.standard_normal(n)}
    write_ply_cloud(tmp_path / "a.ply", PointCloud(X, attrs, ".ply"), fmt=fmt)
    c = read_cloud(tmp_path / "a.ply")
    assert c.meta["ply_format"] == fmt
    assert np.array_equal(c.positions, X)  # written as double
    for k, v in attrs.items():
        assert c.attributes[k].dtype == v.dtype, k
        assert np.array_equal(c.attributes[k], v), k
    write_cloud(tmp_path / "b.ply", c)  # same encoding and types as read
    c2 = read_cloud(tmp_path / "b.ply")
    assert c2.meta == c.meta and all(np.array_equal(c2.attributes[k], v) for k, v in attrs.items())


def test_ply_with_faces_before_vertices_and_float_coordinates(tmp_path):
    body = (b"ply\nformat binary_little_endian 1.0\nelement camera 1\nproperty float a\nproperty uchar b\n"
            b"element vertex 2\nproperty float x\nproperty float y\nproperty float z\nproperty uchar red\n"
            b"element face 0\nproperty list uchar int vertex_indices\nend_header\n")
    rec = np.array([(1.5, 2.0, 3.0, 7), (4.0, 5.0, 6.0, 200)],
                   dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1")])
    (tmp_path / "c.ply").write_bytes(body + np.array([(0.5, 9)], dtype=[("a", "<f4"), ("b", "u1")]).tobytes()
                                     + rec.tobytes())
    c = read_cloud(tmp_path / "c.ply")
    assert np.array_equal(c.positions, [[1.5, 2, 3], [4, 5, 6]]) and list(c.attributes["red"]) == [7, 200]


def test_ply_comments_are_kept(tmp_path):
    """A scan's PLY header often holds its CRS or scanner in comments: the output keeps them, ours after them."""
    head = "ply\nformat ascii 1.0\ncomment crs EPSG:25832\nobj_info scanner X7\nelement vertex 2\n" \
           "property float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n4 5 6\n"
    (tmp_path / "c.ply").write_text(head)
    c = read_cloud(tmp_path / "c.ply")
    assert c.meta["ply_comments"] == ["comment crs EPSG:25832", "obj_info scanner X7"]
    for _ in range(2):  # written, read and written again: each comment once, ours once
        write_cloud(tmp_path / "d.ply", c, overwrite=True)
        lines = (tmp_path / "d.ply").read_text().splitlines()
        assert lines[2:5] == ["comment crs EPSG:25832", "obj_info scanner X7", "comment written by mmsold"]
        assert lines[5] == "element vertex 2"
        c = read_cloud(tmp_path / "d.ply")


def test_bad_scan_files_give_one_line_errors(tmp_path):
    (tmp_path / "a.e57").write_bytes(b"ASTM-E57")
    try:
        import pye57  # noqa: F401

        why = "cannot read as E57"
    except ImportError:
        why = "E57 is not supported"
    with pytest.raises(MmsoldError, match=why):
        read_cloud(tmp_path / "a.e57")
    (tmp_path / "t.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\n"
                                     b"property float y\nproperty float z\nend_header\n" + b"\0" * 20)
    with pytest.raises(MmsoldError, match="truncated"):
        read_cloud(tmp_path / "t.ply")
    (tmp_path / "n.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
                                     b"end_header\n1 2\n")
    with pytest.raises(MmsoldError, match="no z"):
        read_cloud(tmp_path / "n.ply")
    pytest.importorskip("laspy")
    (tmp_path / "bad.las").write_bytes(b"LASF" + b"\0" * 50)
    with pytest.raises(MmsoldError, match="cannot read as LAS"):
        read_cloud(tmp_path / "bad.las")


def test_missing_laspy_names_the_extra(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "laspy":
            raise ImportError("no laspy")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    (tmp_path / "a.las").write_bytes(b"LASF")
    with pytest.raises(MmsoldError, match=r"mmsold\[scans\]"):
        read_cloud(tmp_path / "a.las")


@pytest.mark.parametrize("ext,fmt", [(".ply", "binary_little_endian"), (".ply", "ascii"), (".npy", None),
                                     (".xyz", None), (".h5", None)])
def test_cloud_writer_in_parts_writes_the_bytes_of_the_whole(tmp_path, rng, ext, fmt):
    from mmsold_cli.io.cloud import CloudWriter, save_cloud

    n = 1000
    cloud = PointCloud(rng.standard_normal((n, 3)), {"red": rng.integers(0, 255, n).astype(np.uint8),
                                                      "w": rng.random(n), "n": rng.standard_normal((n, 2))}, ".ply",
                       {"ply_format": fmt} if fmt else {})
    save_cloud(tmp_path / f"whole{ext}", cloud)
    cuts = [0, 1, 1, 333, 990, n]  # an empty part and a one-point part among them
    with CloudWriter(tmp_path / f"parts{ext}", n, like=cloud) as w:
        for a, b in zip(cuts[:-1], cuts[1:]):
            w.write(cloud.subset(slice(a, b)))
    assert (tmp_path / f"parts{ext}").read_bytes() == (tmp_path / f"whole{ext}").read_bytes()
    short = CloudWriter(tmp_path / f"short{ext}", n, like=cloud)
    short.write(cloud.subset(slice(0, 10)))
    with pytest.raises(ValueError, match="of 1000"):
        short.close()
    with pytest.raises(ValueError, match="more than"):
        CloudWriter(tmp_path / f"long{ext}", 5, like=cloud).write(cloud.subset(slice(0, 6)))


@pytest.mark.parametrize("ext", [".las", ".laz"])
def test_las_writer_in_parts_writes_the_points_of_the_whole(tmp_path, rng, ext, monkeypatch):
    laspy = pytest.importorskip("laspy")
    from mmsold_cli.io.cloud import CloudWriter

    _las_file(tmp_path / f"in{ext}", rng, n=3000)
    cloud = read_cloud(tmp_path / f"in{ext}")
    cloud.attributes["nx"] = rng.standard_normal(len(cloud))  # not in the format: an extra-bytes dimension
    write_cloud(tmp_path / f"whole{ext}", cloud)
    with CloudWriter(tmp_path / f"parts{ext}", len(cloud), like=cloud) as w:
        for a in range(0, len(cloud), 700):
            w.write(cloud.subset(slice(a, a + 700)))
    whole, parts = laspy.read(str(tmp_path / f"whole{ext}")), laspy.read(str(tmp_path / f"parts{ext}"))
    assert parts.header.point_count == whole.header.point_count == 3000
    assert np.array_equal(parts.header.mins, whole.header.mins) and np.array_equal(parts.header.maxs, whole.header.maxs)
    assert list(parts.point_format.dimension_names) == list(whole.point_format.dimension_names)
    for name in whole.point_format.dimension_names:
        assert np.array_equal(np.asarray(parts[name]), np.asarray(whole[name])), name
    assert [v.record_id for v in parts.header.vlrs] == [v.record_id for v in whole.header.vlrs]
    # the other commands read the positions alone, block by block: the same coordinates
    import mmsold_cli.io.las as las_io
    from mmsold_cli.io.arrays import read_array

    monkeypatch.setattr(las_io, "_POSITION_BLOCK", 700)
    np.testing.assert_array_equal(read_array(tmp_path / f"parts{ext}"), read_cloud(tmp_path / f"parts{ext}").positions)


def _text(path, table, fmts, header=None, delim=" "):
    with open(path, "w") as fh:
        if header is not None:
            fh.write(header + "\n")
        np.savetxt(fh, table, fmt=fmts, delimiter=delim)


def test_text_clouds_name_their_columns_and_round_trip(tmp_path, rng):
    from mmsold_cli.io.arrays import read_array

    n = 200
    X = rng.standard_normal((n, 3))
    rgb = rng.integers(0, 256, (n, 3))
    nrm = rng.standard_normal((n, 3))
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    inten = rng.integers(-2048, 2048, n)
    g = ["%.17g"] * 3
    cases = {  # file: (table, formats, header, delimiter, expected attribute names)
        "rgb.xyz": (np.c_[X, rgb], g + ["%d"] * 3, None, " ", ["red", "green", "blue"]),
        "cc.txt": (np.c_[X, rgb, nrm], g + ["%d"] * 3 + ["%.17g"] * 3, "//X,Y,Z,R,G,B,Nx,Ny,Nz", ",",
                   ["red", "green", "blue", "nx", "ny", "nz"]),
        "pts.txt": (np.c_[X, inten, rgb], g + ["%d"] * 4, None, " ", ["intensity", "red", "green", "blue"]),
        "normals_rgb.xyz": (np.c_[X, nrm, rgb], g + ["%.17g"] * 3 + ["%d"] * 3, None, "\t",
                            ["nx", "ny", "nz", "red", "green", "blue"]),
        "table.csv": (np.c_[np.arange(n), X[:, 2], X[:, 0], X[:, 1], inten], ["%d"] + g + ["%d"], "id,Z,X,Y,class",
                      ",", ["id", "classification"]),
        "scalars.xyz": (np.c_[X, rng.random(n), np.arange(n) % 3], g + ["%.17g", "%d"], None, " ",
                        ["scalar_3", "scalar_4"]),
    }
    for name, (table, fmts, header, delim, names) in cases.items():
        p = tmp_path / name
        _text(p, table, fmts, header, delim)
        c = read_cloud(p)
        np.testing.assert_array_equal(c.positions, X)
        assert list(c.attributes) == names, name
        if "red" in c.attributes:
            assert c.attributes["red"].dtype == np.uint8
            np.testing.assert_array_equal(np.c_[c.attributes["red"], c.attributes["green"], c.attributes["blue"]], rgb)
        if "nx" in c.attributes:
            np.testing.assert_array_equal(np.c_[c.attributes["nx"], c.attributes["ny"], c.attributes["nz"]], nrm)
        assert all(v.dtype.kind in "iu" for k, v in c.attributes.items() if k in ("intensity", "id", "scalar_4"))
        # written back: the same bytes (column order, header line, delimiter, number formats)
        write_cloud(tmp_path / f"back_{name}", c)
        assert (tmp_path / f"back_{name}").read_bytes() == p.read_bytes(), name
        # every reader of positions takes x, y, z of a point-cloud file
        if not name.startswith("pts"):  # a headerless .txt is any table to read_array (latent codes)
            np.testing.assert_array_equal(read_array(p), X)
    np.testing.assert_array_equal(read_array(tmp_path / "pts.txt"), cases["pts.txt"][0])
    # a table whose other columns are not a scan's attributes is data of that many dimensions
    _text(tmp_path / "four.csv", np.c_[X, inten], g + ["%d"], "x,y,z,w", ",")
    assert read_array(tmp_path / "four.csv").shape == (n, 4)
    # an attribute the text input did not have (normals, a label): after its columns, its header extended
    c = read_cloud(tmp_path / "cc.txt")
    c.attributes["label"] = np.arange(n) % 4
    write_cloud(tmp_path / "out.csv", c)
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "//X,Y,Z,R,G,B,Nx,Ny,Nz,label" and len(lines) == n + 1
    # one left out: the header names the columns that are left, in the input's spelling
    del c.attributes["green"]
    write_cloud(tmp_path / "less.txt", c)
    assert (tmp_path / "less.txt").read_text().splitlines()[0] == "//X,Y,Z,R,B,Nx,Ny,Nz,label"
    # another format's cloud written as text: x, y, z, then the attributes under a header of their names
    other = PointCloud(c.positions, {"red": c.attributes["red"], "label": c.attributes["label"]}, ".ply")
    write_cloud(tmp_path / "other.csv", other)
    assert (tmp_path / "other.csv").read_text().splitlines()[0] == "x,y,z,red,label"
    assert lines[1].split(",")[3:6] == [str(v) for v in rgb[0]]
    back = read_cloud(tmp_path / "out.csv")
    assert list(back.attributes) == ["red", "green", "blue", "nx", "ny", "nz", "label"]
    np.testing.assert_array_equal(back.attributes["label"], np.arange(n) % 4)


def test_pts_files_count_their_points_and_keep_their_columns(tmp_path, rng):
    from mmsold_cli.io.arrays import read_array
    from mmsold_cli.io.cloud import held_attributes

    n = 300
    X = np.round(rng.standard_normal((n, 3)), 6)
    inten = rng.integers(-2048, 2048, n)
    rgb = rng.integers(0, 256, (n, 3))
    fmts = ["%.6f"] * 3 + ["%d"] * 4
    with open(tmp_path / "two.pts", "w") as fh:  # two scans, each after its count line
        for part in (slice(0, 100), slice(100, n)):
            fh.write(f"{len(X[part])}\n")
            np.savetxt(fh, np.c_[X, inten, rgb][part], fmt=fmts)
    c = read_cloud(tmp_path / "two.pts")
    np.testing.assert_array_equal(c.positions, X)
    assert list(c.attributes) == ["intensity", "red", "green", "blue"]
    np.testing.assert_array_equal(c.attributes["intensity"], inten)
    assert c.attributes["red"].dtype == np.uint8
    np.testing.assert_array_equal(read_array(tmp_path / "two.pts"), X)
    # written back: one count line, then the same rows, byte for byte
    write_cloud(tmp_path / "back.pts", c)
    lines = (tmp_path / "back.pts").read_text().splitlines()
    assert lines[0] == str(n) and len(lines) == n + 1
    expected = [ln for ln in (tmp_path / "two.pts").read_text().splitlines() if " " in ln]
    assert lines[1:] == expected
    # a lone fourth column is the intensity
    _text(tmp_path / "xyzi.pts", np.c_[X, inten], ["%.6f"] * 3 + ["%d"], str(n))
    assert list(read_cloud(tmp_path / "xyzi.pts").attributes) == ["intensity"]
    # counts that do not add up to the rows, and a file without one, are refused
    _text(tmp_path / "short.pts", X, "%.6f", str(n + 1))
    with pytest.raises(MmsoldError, match=f"promise {n + 1} points, the file has {n}"):
        read_cloud(tmp_path / "short.pts")
    _text(tmp_path / "bare.pts", X, "%.6f")
    with pytest.raises(MmsoldError, match="starts with its number of points"):
        read_cloud(tmp_path / "bare.pts")
    # another format's cloud: PTS order; what a PTS row has no place for is left out (held_attributes)
    other = PointCloud(X, {"blue": rgb[:, 2].astype(np.uint8), "classification": inten % 7,
                           "red": rgb[:, 0].astype(np.uint8), "green": rgb[:, 1].astype(np.uint8),
                           "intensity": inten}, ".ply")
    assert held_attributes(".pts", list(other.attributes)) == ["intensity", "red", "green", "blue"]
    assert held_attributes(".pts", ["red", "green", "classification"]) == []  # a colour is three channels
    write_cloud(tmp_path / "from_ply.pts", other)
    back = np.loadtxt(tmp_path / "from_ply.pts", skiprows=1)
    np.testing.assert_array_equal(back, np.c_[X, inten, rgb])


def test_text_columns_keep_their_decimals(tmp_path, rng):
    n = 100
    X = rng.uniform(-50, 50, (n, 3))
    _text(tmp_path / "six.xyz", np.c_[X, rng.random(n)], "%.6f")
    _text(tmp_path / "three.txt", np.c_[X, rng.random(n)], ["%.3f"] * 3 + ["%.3e"], "x y z quality")
    six = read_cloud(tmp_path / "six.xyz")
    write_cloud(tmp_path / "six_back.xyz", six)  # the input's own rows: the same bytes
    assert (tmp_path / "six_back.xyz").read_bytes() == (tmp_path / "six.xyz").read_bytes()
    moved = PointCloud(six.positions + 1e-7 * np.pi, six.attributes, six.fmt, six.meta)
    write_cloud(tmp_path / "moved.xyz", moved)  # new points as finely as the input's, no finer
    row = (tmp_path / "moved.xyz").read_text().splitlines()[0].split()
    assert [len(f.split(".")[1]) for f in row] == [6] * 4
    three = read_cloud(tmp_path / "three.txt")
    write_cloud(tmp_path / "three_back.csv", three)
    lines = (tmp_path / "three_back.csv").read_text().splitlines()
    assert lines[0] == "x,y,z,quality"  # the input's header, in the CSV's own delimiter like its rows
    x, y, z, q = lines[1].split(",")
    assert len(x.split(".")[1]) == 6 and len(q.split("e")[0].split(".")[1]) == 6  # 3 decimals: 6; exponents too
    back = read_cloud(tmp_path / "three_back.csv")
    np.testing.assert_array_equal(back.positions, three.positions)
    np.testing.assert_array_equal(back.attributes["quality"], three.attributes["quality"])
    # a column in both notations is written to full precision
    _text(tmp_path / "mixed.xyz", np.c_[X[:2], [[1.5], [2.5e-9]]], ["%.6f"] * 3 + ["%.17g"])
    write_cloud(tmp_path / "mixed_back.xyz", read_cloud(tmp_path / "mixed.xyz"))
    assert (tmp_path / "mixed_back.xyz").read_bytes() == (tmp_path / "mixed.xyz").read_bytes()


def test_text_from_las_and_ply_keeps_their_precision(tmp_path, rng):
    """A LAS file's coordinates as text: the decimals of its scale (at least 6); float32 columns: 9 digits."""
    _las_file(tmp_path / "in.las", rng)
    las = read_cloud(tmp_path / "in.las")  # scales 0.001, 0.001, 0.01: 6 decimals; reflect: float32
    write_cloud(tmp_path / "las.csv", las)
    lines = (tmp_path / "las.csv").read_text().splitlines()
    names, row = lines[0].split(","), lines[1].split(",")
    assert [len(row[names.index(a)].split(".")[1]) for a in "xyz"] == [6, 6, 6]
    assert np.float32(row[names.index("reflect")]) == las.attributes["reflect"][0]
    assert len(row[names.index("reflect")].lstrip("-").replace(".", "").lstrip("0")) <= 9
    back = read_cloud(tmp_path / "las.csv")
    np.testing.assert_allclose(back.positions, las.positions, rtol=0, atol=5e-7)
    np.testing.assert_array_equal(back.attributes["reflect"].astype(np.float32), las.attributes["reflect"])
    X = rng.standard_normal((50, 3)).astype(np.float32)
    write_cloud(tmp_path / "f4.ply", PointCloud(X.astype(float), {}, ".ply", {"ply_types": dict.fromkeys("xyz", "f4")}))
    ply = read_cloud(tmp_path / "f4.ply")
    assert ply.meta["ply_types"]["x"] == "f4"
    write_cloud(tmp_path / "ply.xyz", ply)
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "ply.xyz").astype(np.float32), X)
    assert max(len(f.lstrip("-").replace(".", "").lstrip("0").split("e")[0])
               for f in (tmp_path / "ply.xyz").read_text().split()) <= 9


def test_text_cloud_refusals(tmp_path, rng):
    p = tmp_path / "short_header.txt"
    _text(p, rng.standard_normal((5, 4)), "%.6f", "x y z")
    with pytest.raises(MmsoldError, match="header names 3 columns, the rows have 4"):
        read_cloud(p)
    q = tmp_path / "wide.csv"
    _text(q, rng.standard_normal((5, 4)), "%.6f", None, ",")
    with pytest.raises(MmsoldError, match="expected 3-D points.*header line"):
        read_cloud(q)
    r = tmp_path / "nameless.csv"
    _text(r, rng.standard_normal((5, 4)), "%.6f", "a,b,c,d", ",")
    with pytest.raises(MmsoldError, match="names no x, y and z"):
        read_cloud(r)
