"""Readers and writers of point clouds and meshes (PLY, OBJ, XYZ/CSV)."""

import numpy as np
import pytest
from conftest import SAMPLE_DATA, shared_data

from mmsold_cli.errors import MmsoldError
from mmsold_cli.io.arrays import read_points, write_points
from mmsold_cli.io.mesh import read_mesh, read_point_cloud, read_vertices, write_ply


@pytest.fixture
def cloud(rng):
    return rng.standard_normal((57, 3)) * np.array([2.0, 0.3, 1.0]) + 0.25


def _ply_with_extras(path, X, fmt):
    """A scanner-style PLY: double xyz between other properties, a colour, a label, an empty face list."""
    order = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "<"}[fmt]
    header = (
        f"ply\nformat {fmt} 1.0\ncomment scanner output\nobj_info made by a test\n"
        f"element vertex {len(X)}\nproperty float intensity\nproperty double x\nproperty double y\n"
        "property double z\nproperty float nx\nproperty float ny\nproperty float nz\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty int label\n"
        "element face 0\nproperty list uchar int vertex_indices\nend_header\n"
    )
    dt = np.dtype([("i", order + "f4"), ("x", order + "f8"), ("y", order + "f8"), ("z", order + "f8"),
                   ("nx", order + "f4"), ("ny", order + "f4"), ("nz", order + "f4"),
                   ("r", "u1"), ("g", "u1"), ("b", "u1"), ("label", order + "i4")])
    a = np.zeros(len(X), dt)
    a["x"], a["y"], a["z"] = X.T
    a["i"], a["nz"], a["r"], a["b"], a["label"] = 0.5, 1.0, 200, 17, -4
    with open(path, "wb") as fh:
        fh.write(header.encode())
        if fmt == "ascii":
            fh.writelines((" ".join(repr(v.item()) for v in row) + "\n").encode() for row in a)
        else:
            fh.write(a.tobytes())


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
def test_ply_with_extra_properties(tmp_path, cloud, fmt):
    p = tmp_path / f"scan_{fmt}.ply"
    _ply_with_extras(p, cloud, fmt)
    X = read_vertices(p)
    np.testing.assert_array_equal(X, cloud)  # doubles, read exactly, extra columns ignored
    np.testing.assert_array_equal(read_points(p), cloud)


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
@pytest.mark.parametrize("dtype", ["float", "double"])
def test_write_ply_round_trip(tmp_path, cloud, fmt, dtype):
    p = tmp_path / "out.ply"
    write_ply(p, cloud, fmt=fmt, dtype=dtype)
    header = p.read_bytes().split(b"end_header")[0].decode()
    assert f"format {fmt} 1.0" in header and f"property {dtype} x" in header
    X = read_vertices(p)
    if dtype == "double":
        np.testing.assert_array_equal(X, cloud)
    else:
        np.testing.assert_array_equal(X, cloud.astype(np.float32).astype(np.float64))


def test_write_ply_auto_precision(tmp_path, cloud):
    near = tmp_path / "near.ply"
    write_ply(near, cloud)
    assert b"property float x" in near.read_bytes()[:200]
    far = cloud * 0.01 + np.array([4.5e6, 5.3e6, 310.0])  # a georeferenced scan: float32 would lose ~0.25 m
    fp = tmp_path / "far.ply"
    write_ply(fp, far)
    assert b"property double x" in fp.read_bytes()[:200]
    np.testing.assert_array_equal(read_vertices(fp), far)


def test_write_points_ply_is_readable(tmp_path, cloud):
    p = write_points(tmp_path / "w.ply", cloud)
    np.testing.assert_allclose(read_points(p), cloud, rtol=0, atol=1e-6)


def test_ply_without_positions(tmp_path):
    p = tmp_path / "noxyz.ply"
    p.write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float a\nproperty float y\nend_header\n1 2\n3 4\n")
    with pytest.raises(MmsoldError, match=r"no position properties x, z \(it has: a, y\)"):
        read_vertices(p)
    q = tmp_path / "faces_only.ply"
    q.write_text("ply\nformat ascii 1.0\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n")
    with pytest.raises(MmsoldError, match="no vertex element"):
        read_vertices(q)
    e = tmp_path / "zero.ply"
    e.write_text("ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\nproperty float z\nend_header\n")
    with pytest.raises(MmsoldError, match="no vertex positions"):
        read_point_cloud(e)


def test_ply_broken(tmp_path):
    p = tmp_path / "trunc.ply"
    p.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nproperty float y\n"
                  b"property float z\nend_header\n" + np.zeros(7, "<f4").tobytes())
    with pytest.raises(MmsoldError, match="trunc.ply: cannot read as ply"):
        read_vertices(p)
    q = tmp_path / "notply.ply"
    q.write_text("solid cube\n")
    with pytest.raises(MmsoldError, match="not a PLY file"):
        read_vertices(q)
    (tmp_path / "empty.ply").write_bytes(b"")
    with pytest.raises(MmsoldError, match="empty"):
        read_vertices(tmp_path / "empty.ply")


def test_obj_vertices_in_file_order(tmp_path, cloud):
    # faces with texture/normal indices, and vertices no face uses: all kept, in order, once each
    lines = [f"v {x:.17g} {y:.17g} {z:.17g}" for x, y, z in cloud] + ["vt 0 0", "vt 1 0", "vt 0 1", "vn 0 0 1",
                                                              "f 1/1/1 2/2/1 3/3/1", "f 3/1/1 4/2/1 5/3/1"]
    p = tmp_path / "m.obj"
    p.write_text("# exported\n" + "\n".join(lines) + "\n")
    np.testing.assert_array_equal(read_vertices(p), cloud)
    V, F = read_mesh(p)
    assert F.shape == (2, 3)
    np.testing.assert_array_equal(V[F[1]], cloud[[2, 3, 4]])


def test_obj_vertices_only_and_vertex_colours(tmp_path, cloud):
    p = tmp_path / "pts.obj"
    p.write_text("".join(f"v {x:.17g} {y:.17g} {z:.17g} 0.5 0.1 0.9\n" for x, y, z in cloud))
    np.testing.assert_array_equal(read_point_cloud(p), cloud)
    with pytest.raises(MmsoldError, match="no triangles"):
        read_mesh(p)
    e = tmp_path / "none.obj"
    e.write_text("# nothing here\nvn 0 0 1\n")
    with pytest.raises(MmsoldError, match="no vertex positions"):
        read_vertices(e)


def test_xyz_with_normals_and_colours(tmp_path, cloud):
    p = tmp_path / "scan.xyz"
    extra = np.c_[cloud, np.tile([0.0, 0.0, 1.0, 255, 128, 0], (len(cloud), 1))]
    np.savetxt(p, extra, fmt="%.17g")
    np.testing.assert_array_equal(read_point_cloud(p), cloud)


def test_csv_with_named_columns(tmp_path, cloud):
    p = tmp_path / "scan.csv"
    rows = np.c_[np.arange(len(cloud)), cloud[:, 2], cloud[:, 0], cloud[:, 1]]
    np.savetxt(p, rows, delimiter=",", fmt="%.17g", header="id,Z,X,Y", comments="")
    np.testing.assert_array_equal(read_point_cloud(p), cloud)
    q = tmp_path / "plain.csv"
    np.savetxt(q, cloud, delimiter=",", fmt="%.17g")
    np.testing.assert_array_equal(read_point_cloud(q), cloud)
    r = tmp_path / "wide.csv"
    np.savetxt(r, rows, delimiter=",", fmt="%.17g")
    with pytest.raises(MmsoldError, match="expected 3-D points"):
        read_point_cloud(r)


def test_npy_cloud_and_wrong_shapes(tmp_path, cloud):
    p = tmp_path / "c.npy"
    np.save(p, cloud)
    np.testing.assert_array_equal(read_point_cloud(p), cloud)
    np.save(tmp_path / "flat.npy", cloud[:, :2])
    with pytest.raises(MmsoldError, match="expected 3-D points"):
        read_point_cloud(tmp_path / "flat.npy")
    with pytest.raises(MmsoldError, match="unknown point-cloud extension"):
        read_point_cloud(tmp_path / "c.stl")
    with pytest.raises(MmsoldError, match="no such file"):
        read_point_cloud(tmp_path / "missing.ply")


def test_bundled_and_shared_meshes():
    V, F = read_mesh(SAMPLE_DATA / "torus.obj")
    assert V.shape[1] == 3 and F.shape[1] == 3 and F.max() < len(V)
    X = read_point_cloud(SAMPLE_DATA / "torus_sparse.ply")
    assert X.shape[1] == 3 and len(X) > 100
    bunny = shared_data("meshes/stanford-bunny.obj")
    V, F = read_mesh(bunny)
    assert V.shape == (34834, 3) and F.shape == (69451, 3)
