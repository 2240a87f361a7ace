"""Scan writers: E57 keeps UTM coordinates and is byte-reproducible; LAS names its grid and drops what was dropped."""

import uuid

import numpy as np
import pytest

from mmsold_cli.errors import MmsoldError
from mmsold_cli.io.cloud import PointCloud, read_cloud, write_cloud


def _utm_las(path, n=600, seed=0):
    """A LAS 1.2 format-3 tile at UTM magnitudes on a 1 mm grid, with intensity and 16-bit colours."""
    laspy = pytest.importorskip("laspy")
    rng = np.random.default_rng(seed)
    h = laspy.LasHeader(point_format=3, version="1.2")
    h.scales, h.offsets = np.full(3, 0.001), np.array([500000.0, 4_000_000.0, 0.0])
    las = laspy.LasData(h)
    x, y = rng.uniform(0, 50, n), rng.uniform(0, 50, n)
    las.x, las.y, las.z = 500000 + x, 4_000_000 + y, np.sin(x / 8) * np.cos(y / 11)
    las.intensity = rng.integers(0, 65535, n)
    las.red, las.green, las.blue = (rng.integers(0, 65535, n) for _ in range(3))
    las.write(str(path))
    return laspy.read(str(path))


def _guids(path):
    pye57 = pytest.importorskip("pye57")
    f = pye57.E57(str(path))
    try:
        return [f.root["guid"].value()] + [f.get_header(i).node["guid"].value() for i in range(f.scan_count)]
    finally:
        f.close()


def test_e57_output_keeps_utm_coordinates_and_attributes(tmp_path):
    pye57 = pytest.importorskip("pye57")
    from mmsold_cli.io.e57 import read_e57
    from mmsold_cli.jobs import densify_job

    las = _utm_las(tmp_path / "utm.las")
    densify_job(tmp_path / "utm.las", tmp_path / "utm.e57", factor=1.0, seed=0, keep_input=True)
    n = len(las.points)
    xyz = np.c_[las.x, las.y, las.z]
    f = pye57.E57(str(tmp_path / "utm.e57"))
    try:
        d = f.read_scan(0, intensity=True, colors=True, ignore_missing_fields=True)
    finally:
        f.close()
    theirs = np.c_[d["cartesianX"], d["cartesianY"], d["cartesianZ"]]
    assert len(theirs) == 2 * n
    # single precision rounded y ≈ 4,000,000 to 0.25 m steps (0.125 m errors); doubles keep the 1 mm grid exactly
    assert np.abs(theirs[:n] - xyz).max() < 1e-6
    ours = read_e57(tmp_path / "utm.e57")
    assert np.abs(ours.positions[:n] - xyz).max() < 1e-6
    assert np.abs(ours.positions[n:] - xyz.mean(axis=0)).max() < 40  # the new points, at the same place
    np.testing.assert_array_equal(ours.attributes["intensity"][:n], np.asarray(las.intensity, dtype=np.float32))
    for c in ("red", "green", "blue"):  # LAS's 16-bit colours, stored as E57's 8 bits
        np.testing.assert_array_equal(ours.attributes[c][:n], np.rint(np.asarray(las[c]) / 257.0))
        np.testing.assert_array_equal(d[f"color{c.title()}"][:n], np.rint(np.asarray(las[c]) / 257.0))


def test_e57_multi_scan_round_trip_keeps_stations_at_double_precision(tmp_path):
    pytest.importorskip("pye57")
    from mmsold_cli.io.e57 import read_e57, write_e57

    rng = np.random.default_rng(4)
    origins = np.array([[500010.0, 4_000_020.0, 1.5], [500040.0, 4_000_005.0, 1.6]])
    index = np.repeat(np.arange(2, dtype=np.uint16), [300, 200])
    pos = origins[index] + rng.uniform(-20, 20, (500, 3)).round(4)
    attrs = {"intensity": rng.random(500).astype(np.float32), "rowIndex": rng.integers(0, 90, 500).astype(np.uint16),
             "columnIndex": rng.integers(0, 900, 500).astype(np.uint16), "scan_index": index}
    write_e57(tmp_path / "two.e57", PointCloud(pos, attrs, ".e57", {"scan_origins": origins}))
    back = read_e57(tmp_path / "two.e57")
    assert back.meta["e57_scans"] == 2
    np.testing.assert_array_equal(back.meta["scan_origins"], origins)
    assert np.abs(back.positions - pos).max() < 1e-8
    for k, v in attrs.items():
        np.testing.assert_array_equal(back.attributes[k], v)


def test_e57_same_cloud_gives_the_same_bytes(tmp_path):
    pytest.importorskip("pye57")
    from mmsold_cli.jobs import densify_job

    _utm_las(tmp_path / "utm.las")
    for name in ("r1.e57", "r2.e57"):
        densify_job(tmp_path / "utm.las", tmp_path / name, factor=1.0, seed=0)
    one, two = (tmp_path / "r1.e57").read_bytes(), (tmp_path / "r2.e57").read_bytes()
    assert len(one) > 10_000 and one == two
    guids = _guids(tmp_path / "r1.e57")
    assert len(guids) == 2 and len(set(guids)) == 2
    for g in guids:  # valid GUID strings, braced as E57 producers write them
        assert g.startswith("{") and g.endswith("}") and uuid.UUID(g[1:-1]).version == 5
    densify_job(tmp_path / "utm.las", tmp_path / "r3.e57", factor=1.0, seed=1)  # other points: other GUIDs
    assert not set(_guids(tmp_path / "r3.e57")) & set(guids)


def _edge_las(path, n=1000):
    """QA's file: x up to 0.05 m short of the largest x a scale of 0.001 at offset 0 holds (2147483.647)."""
    laspy = pytest.importorskip("laspy")
    rng = np.random.default_rng(3)
    h = laspy.LasHeader(point_format=3, version="1.2")
    h.scales, h.offsets = [0.001] * 3, [0, 0, 0]
    las = laspy.LasData(h)
    las.x, las.y = rng.uniform(2147440, 2147483.6, n), rng.uniform(0, 40, n)
    las.z = np.sin(las.x / 8)
    las.write(str(path))


def test_las_grid_overflow_names_the_output_the_limits_and_the_range(tmp_path):
    _edge_las(tmp_path / "edge.las")
    cloud = read_cloud(tmp_path / "edge.las")
    top5 = np.argsort(cloud.positions[:, 0])[-5:]
    new = PointCloud(cloud.positions[top5] + [1.5, 0, 0], {}, ".las")  # x up to about 2147485.1: beyond the grid
    top = float(new.positions[:, 0].max())
    with pytest.raises(MmsoldError) as err:
        write_cloud(tmp_path / "edge.dense.las", new, like=cloud)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'edge.dense.las'}: ")  # the output, not its hidden temporary
    assert ".part" not in msg and "np." not in msg and "float64" not in msg
    assert "x -2147483.648 to 2147483.647 (scale 0.001, offset 0)" in msg
    assert f"to {top:.12g}" in msg and " y " not in msg  # the axis that does not fit, and only it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge.las"]


def test_las_grid_overflow_in_densify_stops_with_nothing_left(tmp_path):
    from mmsold_cli.jobs import densify_job

    _edge_las(tmp_path / "edge.las")
    # refused before any work: the input's box, grown by the margin new points can reach, passes the grid's end
    with pytest.raises(MmsoldError, match=r"edge\.dense\.las: the input's points, grown by 1% of their extent, "
                                          r"span x 21474\d\d\.\d+ to 21474(8[4-9]|9)"):
        densify_job(tmp_path / "edge.las", None, factor=4.0, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge.las"]


def test_check_las_grid_before_the_work(tmp_path):
    laspy = pytest.importorskip("laspy")
    from mmsold_cli.io.las import check_las_grid

    h = laspy.LasHeader(point_format=3, version="1.2")
    h.scales, h.offsets = np.array([0.01, 0.001, 0.001]), np.array([1000.0, 0.0, -5.0])
    # x holds 1000 ± 21474836.48, y and z ± 2147483.648
    check_las_grid(h, [-21473836, -2147483.6, -2147488], [21475836, 2147483.6, 2147478], tmp_path / "o.las")
    check_las_grid(None, [-1e12] * 3, [1e12] * 3, tmp_path / "o.las")  # a header made for the points holds all
    with pytest.raises(MmsoldError) as err:
        check_las_grid(h, np.array([0.0, -2147484.0, 0.0]), np.array([1.0, 1.0, 2147479.0]),
                       tmp_path / ".o.las.k3j_9xq2.part.las", what="the input's points grown by 2 m")
    assert str(err.value).startswith(f"{tmp_path / 'o.las'}: the input's points grown by 2 m span "
                                     "y -2147484 to 1, z 0 to 2147479, beyond")
    assert "y -2147483.648 to 2147483.647 (scale 0.001, offset 0)" in str(err.value)
    assert "z -2147488.648 to 2147478.647 (scale 0.001, offset -5)" in str(err.value)
    assert "x " not in str(err.value).split("holds:")[1]


def test_las_drop_attributes_leaves_the_extra_dimension_out(tmp_path):
    laspy = pytest.importorskip("laspy")
    pytest.importorskip("lazrs")
    from mmsold_cli.jobs import densify_job

    rng = np.random.default_rng(1)
    n = 600
    h = laspy.LasHeader(point_format=7, version="1.4")
    h.scales, h.offsets = np.full(3, 0.001), np.array([500000.0, 4_000_000.0, 100.0])
    h.add_extra_dims([laspy.ExtraBytesParams(name="reflectance", type=np.float32),
                      laspy.ExtraBytesParams(name="deviation", type=np.uint16)])
    las = laspy.LasData(h)
    x, y = rng.uniform(0, 100, n), rng.uniform(0, 100, n)
    las.x, las.y, las.z = 500000 + x, 4_000_000 + y, 100 + 5 * np.sin(x / 10) * np.cos(y / 15)
    las.intensity = rng.integers(0, 65535, n)
    las.reflectance = rng.normal(size=n).astype(np.float32)
    las.deviation = rng.integers(1, 100, n)
    las.write(str(tmp_path / "tile.laz"))
    densify_job(tmp_path / "tile.laz", tmp_path / "d.laz", factor=1.0, seed=0, keep_input=True,
                drop_attributes="reflectance,intensity")
    out = laspy.read(str(tmp_path / "d.laz"))
    assert list(out.point_format.extra_dimension_names) == ["deviation"]  # was ["reflectance", "deviation"], zeros
    assert out.header.point_format.id == 7 and len(out.points) == 2 * n
    np.testing.assert_array_equal(out.deviation[:n], las.deviation)  # the kept extra dimension keeps its values
    assert out.deviation[n:].min() >= 1
    assert not np.any(out.intensity)  # a core field cannot be removed: it stays, as zeros
    # the input's header, reused, is untouched
    assert list(read_cloud(tmp_path / "tile.laz").meta["las_header"].point_format.extra_dimension_names) == \
        ["reflectance", "deviation"]
