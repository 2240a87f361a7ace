"""PU-GAN's uniformity: lower for evenly spread points than for random ones, and for random than clustered."""

import numpy as np
import pytest

from mmsold_cli.errors import MmsoldError
from mmsold_cli.metrics.uniformity import farthest_points, uniformity


def _fibonacci(n):
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    a = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z * z)
    return np.c_[r * np.cos(a), r * np.sin(a), z]


def test_uniformity_orders_even_random_and_clustered_points(rng):
    n = 3000
    even = _fibonacci(n)
    v = rng.standard_normal((n, 3))
    random = v / np.linalg.norm(v, axis=1, keepdims=True)
    w = rng.standard_normal((n, 3)) * [1, 1, 3]  # a density 8:1 or so between the poles and the equator
    clustered = w / np.linalg.norm(w, axis=1, keepdims=True)
    area = 4 * np.pi
    u = [uniformity(P, area=area, seeds=200) for P in (even, random, clustered)]
    for key in u[0]:
        assert u[0][key] < u[1][key] < u[2][key], (key, [x[key] for x in u])
    est = uniformity(random, seeds=200)  # area 4 N δ̄², right in expectation for independent points
    assert 0.5 < est["uniformity_1.0%"] / u[1]["uniformity_1.0%"] < 2


def test_farthest_points_spread_and_bad_input():
    P = _fibonacci(500)
    idx = farthest_points(P, 20)
    assert len(set(idx.tolist())) == 20
    d = np.linalg.norm(P[idx][:, None] - P[idx][None], axis=2) + 10 * np.eye(20)
    assert d.min() > 0.5  # 20 points over a unit sphere, spread: far apart
    with pytest.raises(MmsoldError, match="at least 10 points"):
        uniformity(np.zeros((5, 3)))


def _direct_uniformity(P, area, shares, seeds):
    """U(p) as PU-GAN defines it, a k-d tree built on each ball's points: the oracle of the nested-ball one."""
    from scipy.spatial import cKDTree

    tree = cKDTree(P)
    centres = P[farthest_points(P, seeds)]
    out = {}
    for p in shares:
        r, n_hat, total = np.sqrt(p * area / np.pi), p * len(P), 0.0
        for members in tree.query_ball_point(centres, r):
            k = len(members)
            if k >= 2:
                Q = P[members]
                dq = cKDTree(Q).query(Q, k=2)[0][:, 1]
                d_hat = np.sqrt(2 * np.pi * r * r / (k * np.sqrt(3)))
                total += (k - n_hat) ** 2 / n_hat * np.sum((dq - d_hat) ** 2 / d_hat)
        out[f"uniformity_{100 * p:.1f}%"] = total / len(centres)
    return out


def test_uniformity_equals_a_search_within_each_ball(rng):
    from mmsold_cli.metrics.uniformity import UNIFORMITY_SHARES
    from mmsold_cli.metrics.uniformity_numba import farthest_points as farthest_kernel

    v = rng.standard_normal((3000, 3))
    sphere = v / np.linalg.norm(v, axis=1, keepdims=True)
    clouds = [(sphere, 4 * np.pi), (sphere, 40.0),  # balls of 1–4 % of the sphere, and ten times as wide
              (np.concatenate([sphere[:400], sphere[:100]]), 4 * np.pi),  # repeated points
              (sphere[:12], 50.0)]  # fewer points than the neighbours searched for a rim point
    for P, area in clouds:
        assert np.array_equal(farthest_kernel(P, 200), farthest_points(P, 200))
        got, want = uniformity(P, area=area, seeds=200), _direct_uniformity(P, area, UNIFORMITY_SHARES, 200)
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-300), key
    # a rim point whose 16 nearest points all lie outside the ball: its neighbour in the ball is searched for
    blob = np.array([1.15, 0, 0]) + 0.01 * rng.standard_normal((20, 3))
    P = np.concatenate([[[0, 0, 0], [0.9, 0, 0], [-0.5, 0, 0]], blob, [[-3.0, 0, 0]] * 2])
    got = uniformity(P, area=np.pi / 0.01, shares=(0.01,), seeds=1)  # one ball, radius 1, around the origin
    want = _direct_uniformity(P, np.pi / 0.01, (0.01,), 1)
    assert got["uniformity_1.0%"] == pytest.approx(want["uniformity_1.0%"], rel=1e-12)
    assert want["uniformity_1.0%"] > 0


def _cube_mesh():
    V = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float)
    F = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return V, F


def test_evaluate_reports_uniformity_for_3d_clouds(tmp_path, rng):
    import json

    from typer.testing import CliRunner

    from mmsold_cli.cli import app
    from mmsold_cli.metrics.evaluate import evaluate_all
    from mmsold_cli.metrics.uniformity import cloud_area, mesh_area

    n = 2000
    even = _fibonacci(n)
    v = rng.standard_normal((n, 3))
    random = v / np.linalg.norm(v, axis=1, keepdims=True)
    w = rng.standard_normal((4000, 3))
    ref = w / np.linalg.norm(w, axis=1, keepdims=True)
    r_even, _ = evaluate_all(even, ref)
    r_rand, _ = evaluate_all(random, ref)
    # the area comes from the reference (4 N δ̄² ≈ 4π for independent points), the same for both sample sets
    assert r_even["uniformity_area"] == r_rand["uniformity_area"] == cloud_area(ref)
    assert 0.6 * 4 * np.pi < r_even["uniformity_area"] < 1.4 * 4 * np.pi
    direct = uniformity(even, area=cloud_area(ref))
    for key, value in direct.items():
        assert r_even[key] == value and r_even[key] < 0.5 * r_rand[key], key
    # with a mesh, its exact area (unit cube: 6)
    V, F = _cube_mesh()
    assert mesh_area(V, F) == pytest.approx(6.0)
    face = rng.random((1200, 3))
    axis = rng.integers(0, 3, 1200)
    face[np.arange(1200), axis] = rng.integers(0, 2, 1200)  # points on the six faces
    r_cube, _ = evaluate_all(face, face[::2], mesh=(V, F))
    assert r_cube["uniformity_area"] == pytest.approx(6.0)
    assert r_cube["uniformity_1.0%"] == pytest.approx(uniformity(face, area=6.0)["uniformity_1.0%"])
    # 2-D samples get none; the command line reports it for 3-D
    assert not any(k.startswith("uniformity") for k in evaluate_all(random[:, :2], ref[:, :2])[0])
    np.save(tmp_path / "s.npy", even)
    np.save(tmp_path / "r.npy", ref)
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "s.npy"), str(tmp_path / "r.npy"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["uniformity_1.2%"] == pytest.approx(direct["uniformity_1.2%"])
