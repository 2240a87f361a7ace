import numpy as np
import pytest

from mmsold_cli import stiefel


@pytest.mark.parametrize("P,d", [(50, 2), (200, 64)])
def test_uniform_is_on_manifold(rng, P, d):
    Y = stiefel.uniform(3, P, d, rng)
    assert np.abs(Y.sum(axis=1)).max() < 1e-10
    G = np.swapaxes(Y, 1, 2) @ Y
    assert np.abs(G - P * np.eye(d)).max() < 1e-9 * P


def test_retraction_leaves_manifold_points_unchanged(rng):
    Y = stiefel.uniform(2, 100, 5, rng)
    assert np.abs(stiefel.retract(Y) - Y).max() < 1e-12


def test_retraction_is_closest_point(rng):
    """The polar factor beats random other manifold points in Frobenius distance."""
    C = stiefel.centre(rng.standard_normal((1, 40, 3)))
    R = stiefel.retract(C)
    best = np.linalg.norm(R - C)
    for _ in range(50):
        other = stiefel.uniform(1, 40, 3, rng)
        assert np.linalg.norm(other - C) >= best - 1e-12


def test_tangent_projection(rng):
    Y = stiefel.uniform(2, 60, 4, rng)
    G = rng.standard_normal(Y.shape)
    T = stiefel.project_tangent(Y, G)
    assert np.abs(T.sum(axis=1)).max() < 1e-10  # centred
    A = np.swapaxes(Y, 1, 2) @ T
    assert np.abs(A + np.swapaxes(A, 1, 2)).max() < 1e-9  # YᵀT skew
    # idempotent
    assert np.abs(stiefel.project_tangent(Y, T) - T).max() < 1e-10


@pytest.mark.parametrize("d", [2, 64])
def test_moments_exact(rng, d):
    B = rng.standard_normal((d, d))
    cov = B @ B.T + 0.1 * np.eye(d)
    mean = rng.standard_normal(d)
    L = np.linalg.cholesky(cov)
    Z = stiefel.to_z(stiefel.uniform(4, 3 * d + 10, d, rng), mean, L)
    me, ce = stiefel.moment_error(Z, mean, cov)
    assert me.max() < 1e-9 and ce.max() < 1e-9


def test_y_z_round_trip(rng):
    cov = np.array([[2.0, 0.3], [0.3, 0.5]])
    L = np.linalg.cholesky(cov)
    Z = rng.standard_normal((1, 20, 2))
    assert np.allclose(stiefel.to_z(stiefel.to_y(Z, np.ones(2), L), np.ones(2), L), Z, atol=1e-12)
