import numpy as np
import pytest

from mmsold_cli.samplers import stiefel


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
    """The retraction is √P times the polar factor of the centred block (SciPy's, an independent oracle), and no
    point of the manifold near it, nor a QR retraction, is closer to the block."""
    from scipy.linalg import polar

    C = stiefel.centre(rng.standard_normal((1, 40, 3)))
    R = stiefel.retract(C)
    np.testing.assert_allclose(R[0], np.sqrt(40) * polar(C[0])[0], rtol=0, atol=1e-12)
    best = np.linalg.norm(R - C)
    Q, Rq = np.linalg.qr(C[0])
    assert np.linalg.norm(np.sqrt(40) * Q * np.sign(np.diag(Rq)) - C[0]) > best + 0.1  # measured 1.53 against 1.28
    for _ in range(20):  # small tangent moves, retracted, stay farther
        T = stiefel.project_tangent(R, 1e-2 * rng.standard_normal(R.shape))
        assert np.linalg.norm(stiefel.retract(R + T) - C) >= best - 1e-12


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


@pytest.mark.parametrize("d", [1, 2, 3, 8])
@pytest.mark.parametrize("size", [0.01, 0.5, 3.0])
def test_fused_step_equals_numpy_reference(rng, d, size):
    """The numba step (Newton–Schulz polar factor) equals projection + SVD retraction, small or large steps."""
    from mmsold_cli.samplers import stiefel_numba

    Y = stiefel.uniform(4, 60, d, rng)
    D = size * rng.standard_normal(Y.shape)
    got = stiefel_numba.step(Y, D)
    np.testing.assert_allclose(got, stiefel.step(Y, D), rtol=0, atol=1e-12)
    G = np.swapaxes(got, 1, 2) @ got
    assert np.abs(G - 60 * np.eye(d)).max() < 1e-12 * 60
    assert np.abs(got.sum(axis=1)).max() < 1e-12


@pytest.mark.parametrize("d", [3, 64])
def test_step_in_place_equals_reference(rng, d):
    """out=Y: the result lands in Y's array (numba: D untouched; NumPy: D is workspace), same values."""
    from mmsold_cli.samplers import stiefel_numba

    Y = stiefel.uniform(3, 200, d, rng)
    D = 0.3 * rng.standard_normal(Y.shape)
    ref = stiefel.step(Y, D)
    steps = [stiefel.step] + ([stiefel_numba.step] if d <= stiefel_numba.MAX_DIM else [])
    for step in steps:
        y, g = Y.copy(), D.copy()
        out = step(y, g, out=y)
        assert out is y
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-11)
        if step is stiefel_numba.step:
            np.testing.assert_array_equal(g, D)
    y = np.asfortranarray(Y)  # not C-contiguous: computed aside, then written into out all the same
    out = stiefel.step(y, D.copy(), out=y)
    assert out is y
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-11)
    Y0 = Y.copy()
    fresh = stiefel.step(Y, D)  # no out: a new array, Y untouched
    assert fresh is not Y and np.array_equal(Y, Y0)


@pytest.mark.parametrize("d", [16, 64])
@pytest.mark.parametrize("size", [0.002, 0.02, 0.3])
def test_in_place_step_polar_factor_equals_svd(rng, monkeypatch, d, size):
    """Small steps take the Newton–Schulz polar factor, large ones the eigendecomposition: both equal the SVD's."""
    P = 300
    Y = stiefel.uniform(2, P, d, rng)
    D = size * rng.standard_normal(Y.shape)
    ref = stiefel.retract(Y + stiefel.project_tangent(Y, D))
    H = np.swapaxes(ref, 1, 2) @ ref  # P I: the reference is on the manifold
    C = stiefel.centre(Y + stiefel.project_tangent(Y, D))
    far = max(np.linalg.norm(c.T @ c / P - np.eye(d)) for c in C) >= stiefel.NS_START
    assert far == (size == 0.3)  # the cases cover both paths
    if not far:  # the iteration alone: no eigendecomposition, no SVD
        monkeypatch.setattr(stiefel.np.linalg, "eigh", None)
        monkeypatch.setattr(stiefel.np.linalg, "svd", None)
    y = Y.copy()
    stiefel.step(y, D.copy(), out=y)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-11)
    G = np.swapaxes(y, 1, 2) @ y
    assert np.abs(G - P * np.eye(d)).max() < 1e-12 * P
    assert np.abs(H - P * np.eye(d)).max() < 1e-12 * P


@pytest.mark.parametrize("eps", [1e-9, 1.5e-7, 6e-5, 1e-3, 0.1, 0.2])
def test_polar_factor_series_reaches_rounding(rng, monkeypatch, eps):
    """Each way _polar_into ends (the series to R, R² or R³, after 0 to 3 rounds) lands on the polar factor.

    CᵀC/P = I + ε vvᵀ: along v everything is scalar, so ‖(polar − Q) v‖ is the error of the series where it
    is largest (‖E‖_F = ‖E‖₂).  ε spans the bands of _SERIES_LIMITS; a limit ten times too loose, or a
    coefficient left out, leaves 8e-15 or more there (checked by mutation), rounding 5e-16.
    """
    P, d = 400, 48
    Q = np.linalg.qr(rng.standard_normal((P, d)))[0]
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    C = Q @ (np.eye(d) + (np.sqrt(1 + eps) - 1) * np.outer(v, v)) * np.sqrt(P)
    monkeypatch.setattr(stiefel.np.linalg, "eigh", None)
    monkeypatch.setattr(stiefel.np.linalg, "svd", None)
    out = np.empty_like(C)
    stiefel._polar_into(C, out)
    assert np.linalg.norm((out - Q) @ v) < 1.5e-15
    assert np.abs(out - Q).max() < 1e-15


def test_inverse_square_root_iteration(rng):
    """H^{-1/2} by the coupled Newton–Schulz iteration; a singular H is refused (the SVD takes over)."""
    from mmsold_cli.samplers import stiefel_numba

    work = [np.empty((3, 3)) for _ in range(5)]
    for H in (np.eye(3) * 1.02 + 0.01, (lambda A: A @ A.T + 0.05 * np.eye(3))(rng.standard_normal((3, 3)))):
        w, V = np.linalg.eigh(H)
        assert stiefel_numba._inv_sqrt(H, *work)
        np.testing.assert_allclose(work[0], (V / np.sqrt(w)) @ V.T, rtol=0, atol=1e-12 * np.sqrt(w.max() / w.min()))
    v = rng.standard_normal(3)
    assert not stiefel_numba._inv_sqrt(np.outer(v, v), *work)


def test_fused_step_hands_refused_ensembles_to_the_svd(rng, monkeypatch):
    from mmsold_cli.samplers import stiefel_numba

    real = stiefel_numba._step

    def refuse_second(Y, D, out, ok, e0, e1):
        real(Y, D, out, ok, e0, e1)
        out[1] = np.nan
        ok[1] = False

    monkeypatch.setattr(stiefel_numba, "_step", refuse_second)
    Y = stiefel.uniform(3, 30, 2, rng)
    D = 0.3 * rng.standard_normal(Y.shape)
    np.testing.assert_allclose(stiefel_numba.step(Y, D), stiefel.step(Y, D), rtol=0, atol=1e-12)


@pytest.mark.parametrize("d", [1, 3, 6])
def test_fused_moment_error_equals_numpy(rng, d):
    from mmsold_cli.samplers import stiefel_numba

    Z = 2.0 + rng.standard_normal((5, 40, d))
    A = rng.standard_normal((d, d))
    cov, mean = A @ A.T + np.eye(d), rng.standard_normal(d)
    for got, ref in zip(stiefel_numba.moment_error(Z, mean, cov), stiefel.moment_error(Z, mean, cov)):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_fused_to_z_and_moments_on_all_threads_equal_numpy(rng, d):
    from mmsold_cli.samplers import stiefel_numba

    # 6,000 ensembles of 4: enough rows that both kernels split the work over threads
    Y = rng.standard_normal((6000, 4, d))
    A = rng.standard_normal((d, d))
    cov = A @ A.T + d * np.eye(d)
    chol, mean = np.linalg.cholesky(cov), rng.standard_normal(d)
    Z = stiefel_numba.to_z(Y, mean, chol)
    np.testing.assert_allclose(Z, stiefel.to_z(Y, mean, chol), rtol=1e-13, atol=1e-13)
    for got, want in zip(stiefel_numba.moment_error(Z, mean, cov), stiefel.moment_error(Z, mean, cov)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    # the same errors from Y without forming Z: NumPy against the errors of Z, the kernel against NumPy
    want = stiefel.moment_error(Z, mean, cov * 1.1)
    for got, ref in zip(stiefel.moment_error_y(Y, chol, cov * 1.1), want):
        assert ref.max() > 1e-2  # errors far from rounding level
        np.testing.assert_allclose(got, ref, rtol=1e-10)
    for got, ref in zip(stiefel_numba.moment_error_y(Y, chol, cov * 1.1), stiefel.moment_error_y(Y, chol, cov * 1.1)):
        np.testing.assert_allclose(got, ref, rtol=1e-10)


def _unfused_steps(Y, S_list, h, L, run, lm):
    from mmsold_cli.samplers.integrators import Noise, euler_maruyama, leimkuhler_matthews

    integrator = leimkuhler_matthews if lm else euler_maruyama
    for i, S in enumerate(S_list):
        drift, noise, _ = integrator(S @ L, h, Noise(run.at(i), S.shape), None)
        Y = stiefel.step(Y, drift + np.sqrt(2 * h) * noise)
    return Y


@pytest.mark.parametrize("lm", [True, False])
@pytest.mark.parametrize("refuse", [False, True])
def test_fused_langevin_step_equals_integrator_then_step(rng, monkeypatch, lm, refuse):
    """One kernel for drift, noise (its normals made inside from one key) and manifold step: the same numbers
    as the integrator helper plus the NumPy step; a block the iteration refuses goes to the SVD."""
    from mmsold_cli.samplers import stiefel_numba

    if refuse:
        real = stiefel_numba._langevin_step

        def refuse_second(Y, S, L, h, lm, p0, p1, src, ok, e0, e1):
            keep = Y[1].copy()
            real(Y, S, L, h, lm, p0, p1, src, ok, e0, e1)
            if e0 <= 1 < e1:  # as the kernel leaves a refused block: Y untouched
                Y[1] = keep
                ok[1] = False

        monkeypatch.setattr(stiefel_numba, "_langevin_step", refuse_second)
    E, P, d = 300, 20, 3  # 300 ensembles: the kernel runs on both threads
    Y0 = stiefel.uniform(E, P, d, rng)
    A = rng.standard_normal((d, d))
    L = np.linalg.cholesky(A @ A.T + np.eye(d))
    S_list = [rng.standard_normal((E, P, d)) for _ in range(3)]
    h = 0.01
    from mmsold_cli.rng.streams import NOISE, RunStream

    run = RunStream(7, row0=1234)  # a batch whose rows start at 1,234 in the run
    want = _unfused_steps(Y0.copy(), S_list, h, L, run, lm)
    Y = Y0.copy()
    for i, S in enumerate(S_list):
        step = run.at(i)
        stiefel_numba.langevin_step(Y, S, h, L, step.key(NOISE), step.key(NOISE, lag=1), step.start(d), lm=lm)
    np.testing.assert_allclose(Y, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.swapaxes(Y, 1, 2) @ Y / P, np.broadcast_to(np.eye(d), (E, d, d)), atol=1e-13)


def test_moment_error_y_with_a_support_factor_equals_the_errors_of_z(rng):
    """The (d, r) support factor's O(r²) covariance error equals the error measured on Z itself."""
    from mmsold_cli.sampling import support_factor

    d, r, P = 10, 7, 30
    B = rng.standard_normal((d, r))
    cov = B @ B.T
    L = support_factor(cov)
    assert L.shape == (d, r)
    Y = stiefel.uniform(2, P, r, rng) + 1e-3 * rng.standard_normal((2, P, r))  # off the manifold: errors > 0
    Z = stiefel.to_z(Y, np.zeros(d), L)
    me, ce = stiefel.moment_error(Z, np.zeros(d), L @ L.T)
    me_y, ce_y = stiefel.moment_error_y(Y, L, L @ L.T)
    assert ce.min() > 1e-4
    np.testing.assert_allclose(me_y, me, rtol=1e-10)
    np.testing.assert_allclose(ce_y, ce, rtol=1e-10)
