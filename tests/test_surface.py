"""Point-cloud metrics against slow exact references."""

import numpy as np
import pytest
from conftest import shared_data

from mmsold_cli.datasets import bumpy_torus, surface_samples
from mmsold_cli.errors import MmsoldError
from mmsold_cli.metrics.surface import (
    MeshDistance,
    chamfer,
    closest_point_triangles,
    coverage,
    evaluate_cloud,
    hausdorff,
    mean_spacing,
    normalize_unit_sphere,
    point_to_mesh,
)


def _closest_point_slow(p, a, b, c):
    """Reference: the plane projection if it falls inside the triangle, else the best point of the three edges."""
    best, best_d = None, np.inf
    n = np.cross(b - a, c - a)
    if np.linalg.norm(n) > 1e-9 * np.linalg.norm(b - a) * np.linalg.norm(c - a):
        n = n / np.linalg.norm(n)
        q = p - np.dot(p - a, n) * n
        # barycentric coordinates of q
        M = np.stack([b - a, c - a], axis=1)
        lam = np.linalg.lstsq(M, q - a, rcond=None)[0]
        if lam.min() >= 0 and lam.sum() <= 1:
            best, best_d = q, np.linalg.norm(p - q)
    for u, v in ((a, b), (b, c), (c, a)):
        e = v - u
        s = np.clip(np.dot(p - u, e) / np.dot(e, e), 0, 1) if np.dot(e, e) > 0 else 0.0
        q = u + s * e
        if np.linalg.norm(p - q) < best_d:
            best, best_d = q, np.linalg.norm(p - q)
    return best


def test_closest_point_matches_slow_reference(rng):
    m = 3000
    tri = rng.standard_normal((m, 3, 3))
    tri[:40, 2] = tri[:40, 0] + 0.5 * (tri[:40, 1] - tri[:40, 0])  # degenerate: collinear
    tri[40:60, 1] = tri[40:60, 0]  # degenerate: two equal vertices
    p = rng.standard_normal((m, 3)) * 2
    p[60:300] = tri[60:300].mean(axis=1) + 1e-3 * rng.standard_normal((240, 3))  # near the face interior
    y = closest_point_triangles(p, tri[:, 0], tri[:, 1], tri[:, 2])
    ref = np.array([_closest_point_slow(p[i], *tri[i]) for i in range(m)])
    np.testing.assert_allclose(np.linalg.norm(p - y, axis=1), np.linalg.norm(p - ref, axis=1), rtol=1e-9, atol=1e-12)
    # every region of the Voronoi test is exercised: the answer is a vertex, an edge point or interior
    bary_inside = (np.linalg.norm(y - tri.mean(axis=1), axis=1) < 1e-2).sum()
    assert bary_inside > 100


def _mesh_distance_slow(Q, V, F):
    T = V[F]
    out = np.empty(len(Q))
    for i, q in enumerate(Q):
        P = np.repeat(q[None], len(F), axis=0)
        y = closest_point_triangles(P, T[:, 0], T[:, 1], T[:, 2])
        out[i] = np.sqrt(((P - y) ** 2).sum(axis=1)).min()
    return out


def test_mesh_distance_exact_on_mixed_triangle_sizes(rng):
    V, F = bumpy_torus(24, 12)
    # add a few huge thin triangles far apart so size groups differ by orders of magnitude
    big = np.array([[5.0, 0, 0], [-5.0, 0.1, 0], [0, 0, 4.0]])
    V = np.concatenate([V, big])
    F = np.concatenate([F, [[len(V) - 3, len(V) - 2, len(V) - 1]]])
    Q = np.concatenate([surface_samples(V, F, 300, random_state=1) + 0.05 * rng.standard_normal((300, 3)),
                        rng.uniform(-6, 6, (200, 3))])
    md = MeshDistance(V, F)
    assert len(md.groups) >= 3
    d, y = md.query(Q)
    np.testing.assert_allclose(d, _mesh_distance_slow(Q, V, F), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(Q - y, axis=1), d, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(point_to_mesh(Q[:10], V, F), d[:10])


def test_points_on_the_surface_have_zero_distance():
    V, F = bumpy_torus(30, 15)
    S = surface_samples(V, F, 2000, random_state=3)
    assert MeshDistance(V, F).query(S)[0].max() < 1e-12


def test_mesh_distance_rejects_bad_faces():
    V = np.eye(3)
    with pytest.raises(MmsoldError, match="indices must lie"):
        MeshDistance(V, np.array([[0, 1, 3]]))
    with pytest.raises(MmsoldError, match="shape"):
        MeshDistance(V, np.array([0, 1, 2]))


def test_chamfer_hausdorff_against_pairwise(rng):
    A = rng.standard_normal((200, 3))
    B = rng.standard_normal((150, 3)) + 0.3
    D = np.linalg.norm(A[:, None] - B[None], axis=2)
    assert chamfer(A, B) == pytest.approx((D.min(1) ** 2).mean() + (D.min(0) ** 2).mean(), rel=1e-12)
    assert hausdorff(A, B) == pytest.approx(max(D.min(1).max(), D.min(0).max()), rel=1e-12)
    assert chamfer(B, B) == 0.0


def test_normalize_unit_sphere(rng):
    B = rng.standard_normal((100, 3)) * 7 + 4
    A = B[:10] * 2
    An, Bn, c, r = normalize_unit_sphere(A, B)
    assert np.linalg.norm(Bn, axis=1).max() == pytest.approx(1.0)
    np.testing.assert_allclose(Bn.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(An * r + c, A)
    with pytest.raises(MmsoldError, match="coincide"):
        normalize_unit_sphere(A, np.ones((5, 3)))


def test_coverage_and_spacing_on_a_grid():
    g = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0), [0.0], indexing="ij"), -1).reshape(-1, 3)
    assert mean_spacing(g) == pytest.approx(1.0)
    # queries at the cell centres are 0.7071 from the nearest grid point
    centres = g[:, :2].reshape(10, 10, 2)[:-1, :-1].reshape(-1, 2) + 0.5
    Q = np.c_[centres, np.zeros(len(centres))]
    assert coverage(g, Q, 0.70) == 0.0
    assert coverage(g, Q, 0.71) == 1.0
    assert coverage(g, np.r_[Q, g], 0.5) == pytest.approx(100 / 181)


def test_evaluate_cloud_fresh_vs_sparse():
    V, F = bumpy_torus(48, 24)
    sparse = surface_samples(V, F, 1000, random_state=0)
    dense = surface_samples(V, F, 20000, random_state=1)
    ref = surface_samples(V, F, 20000, random_state=2)
    delta = mean_spacing(sparse)
    r_dense = evaluate_cloud(dense, ref, mesh=(V, F), spacing=delta, n_surface=5000)
    r_sparse = evaluate_cloud(sparse, ref, mesh=(V, F), spacing=delta, n_surface=5000)
    assert r_dense["p2s_mean"] < 1e-12 and r_sparse["p2s_p95"] < 1e-12
    assert r_dense["coverage"] > 0.95 and 0.1 < r_sparse["coverage"] < 0.3
    assert r_dense["chamfer"] < r_sparse["chamfer"]
    lifted = dense + 0.2 * delta * np.array([0, 0, 1.0])
    r_lift = evaluate_cloud(lifted, ref, mesh=(V, F), spacing=delta, n_surface=5000)
    assert 0.05 < r_lift["p2s_mean_spacings"] <= 0.2 + 1e-9
    assert r_lift["p2s_p95_spacings"] <= 0.2 + 1e-9
    no_mesh = evaluate_cloud(dense, ref)
    assert "coverage" not in no_mesh and no_mesh["spacing"] == pytest.approx(mean_spacing(ref))


def test_bunny_distance_spot_check():
    from mmsold_cli.io.mesh import read_mesh

    V, F = read_mesh(shared_data("meshes/stanford-bunny.obj"))
    rng = np.random.default_rng(0)
    Q = surface_samples(V, F, 12, random_state=rng) + 0.003 * rng.standard_normal((12, 3))
    np.testing.assert_allclose(MeshDistance(V, F).query(Q)[0], _mesh_distance_slow(Q, V, F), rtol=1e-10)


def test_distinct_rows_and_mean_spacing_with_repeats():
    """distinct_rows keeps each row's first occurrence in order (np.unique's answer, without its sort by bytes);
    mean_spacing measures between distinct points, so repeats change nothing and a lone point gives 0."""
    from mmsold_cli.metrics.surface import distinct_rows, mean_spacing

    rng = np.random.default_rng(7)
    X = np.round(rng.uniform(0, 1, (3000, 3)), 2)
    X = np.r_[X, X[rng.integers(0, 3000, 500)]][rng.permutation(3500)]
    _, first = np.unique(X, axis=0, return_index=True)
    assert np.array_equal(distinct_rows(X), X[np.sort(first)]) and len(first) < 3500
    Y = rng.uniform(0, 1, (200, 3))
    assert distinct_rows(Y) is Y
    assert mean_spacing(np.repeat(Y, 3, axis=0)) == mean_spacing(Y) > 0
    assert mean_spacing(np.zeros((5, 3))) == 0.0
