import numpy as np
import pytest
from scipy.special import logsumexp

from mmsold_cli import fit_moments, sample
from mmsold_cli.samplers import stiefel
from mmsold_cli.samplers.langevin import pullback
from mmsold_cli.score.smoothed import score_exact


def _neg_log_p(X, Z, t):
    d2 = ((Z[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    return -(logsumexp(-d2 / (2 * t * t), axis=1) - np.log(len(X)))


def test_pullback_is_gradient_in_y(aniso_rotated, rng):
    """G = S L equals −∇_Y Σ_i V(z_i) by central differences (V = −log p_t), Z = 1μᵀ + Y Lᵀ."""
    X = aniso_rotated
    model = fit_moments(X)
    mu, L, t = model.mean_, model.cholesky_, 0.7
    Y = stiefel.uniform(1, 12, 3, rng)[0]
    F = lambda Yv: _neg_log_p(X, mu + Yv @ L.T, t).sum()  # noqa: E731
    G = pullback(score_exact(X, mu + Y @ L.T, t), L)
    eps = 1e-5
    fd = np.zeros_like(Y)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            E = np.zeros_like(Y)
            E[i, j] = eps
            fd[i, j] = -(F(Y + E) - F(Y - E)) / (2 * eps)
    assert np.abs(G - fd).max() < 1e-5 * max(1.0, np.abs(fd).max())
    # the transpose (as in the authors' code) is wrong on this data set
    Gt = score_exact(X, mu + Y @ L.T, t) @ L.T
    assert np.abs(Gt - fd).max() > 1e-2 * np.abs(fd).max()


@pytest.mark.parametrize("d,n", [(2, 800), (64, 1500)])
def test_every_ensemble_matches_moments(rng, d, n):
    B = rng.standard_normal((d, d)) / np.sqrt(d)
    X = rng.standard_normal((n, d)) @ B.T * 2 + 3.0
    model = fit_moments(X)
    res = sample(model, 2 * d + 300, P=d + 150, steps=5, random_state=1)
    S = res.samples
    sizes = res.diagnostics["ensemble_sizes"]
    # split back into ensembles (ensembles are contiguous, largest size first)
    start = 0
    checked = 0
    E = res.diagnostics["ensembles"]
    counts = np.full(E, S.shape[0] // E)
    counts[: S.shape[0] % E] += 1
    for c in counts:
        Z = S[start : start + c][None]
        me, ce = stiefel.moment_error(Z, model.mean_, model.covariance_)
        assert me[0] < 1e-9 and ce[0] < 1e-9
        start += c
        checked += 1
    assert checked == E >= 2 and set(counts) == set(sizes)
    assert max(res.diagnostics["cov_error"]) < 1e-12


def test_sold_does_not_hold_moments(rng):
    X = rng.standard_normal((500, 2)) * [2.0, 0.3]
    model = fit_moments(X)
    res = sample(model, 300, sampler="sold", steps=30, random_state=0)
    assert max(res.diagnostics["cov_error"]) > 1e-3


def test_seed_reproducible(rng):
    X = rng.standard_normal((300, 2))
    model = fit_moments(X)
    a = sample(model, 200, steps=10, random_state=7).samples
    b = sample(model, 200, steps=10, random_state=7).samples
    c = sample(model, 200, steps=10, random_state=8).samples
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_stationary_gaussian_target(rng):
    """On a wide Gaussian training set, SOLD from a Gaussian start keeps its spread (no collapse or blow-up)."""
    X = rng.standard_normal((1500, 2))
    model = fit_moments(X)
    res = sample(model, 2000, sampler="sold", steps=150, init="gaussian", random_state=3)
    # the blurred law's variances, var(X) + t²: measured −0.03 / −0.03 from them (−0.05 … 0.00 over six training
    # sets); one standard error of a variance from 2,000 samples is 0.03
    expected = np.diag(np.cov(X.T)) + res.settings["t"] ** 2
    assert np.allclose(np.diag(np.cov(res.samples.T)), expected, rtol=0, atol=0.1)


def test_sold_step_is_capped_where_explicit_euler_would_diverge(monkeypatch):
    """With σ = 3t (η(1 + σ²/t²) = 3) naive SOLD's step is capped at h λmax/t² = 1; uncapped it blows up."""
    from mmsold_cli import fit_moments, sample
    from mmsold_cli.defaults import length_scale
    from mmsold_cli.samplers import schedules

    rng = np.random.default_rng(3)  # 40 clusters in 16-D, like a latent set of classes
    X = rng.standard_normal((40, 16))[rng.integers(0, 40, 3000)] * 3 + rng.standard_normal((3000, 16))
    model = fit_moments(X)
    ell = length_scale(model)
    kw = dict(random_state=0, sampler="sold", steps=40, t=0.25 * ell, sigma=0.75 * ell)
    capped = sample(model, 400, **kw)
    assert capped.settings["step_capped"]
    monkeypatch.setattr(schedules, "euler_stable", lambda sched, lam_max: sched)
    free = sample(model, 400, **kw)
    assert capped.diagnostics["cov_error"][-1] < 0.3
    assert free.diagnostics["cov_error"][-1] > 3 * capped.diagnostics["cov_error"][-1]


def test_mmsold_step_is_capped_so_particles_stay_on_thin_sheets(monkeypatch):
    """Rank-3 sheets in 16-D with several covariance directions near λmax: with σ = 3t the uncapped step
    (h λmax/t² = 3) overshoots in those directions at every step, and the retraction, which holds the
    ensemble's moments, does not stop the particles swinging across the sheets."""
    from mmsold_cli import fit_moments, sample
    from mmsold_cli.defaults import length_scale
    from mmsold_cli.samplers import schedules

    rng = np.random.default_rng(0)
    means = 4 * rng.standard_normal((12, 16))
    Q = np.stack([np.linalg.qr(rng.standard_normal((16, 3)))[0] for _ in range(12)])
    c = rng.integers(0, 12, 6400)
    data = means[c] + np.einsum("ndr,nr->nd", Q[c], rng.standard_normal((6400, 3))) + 0.05 * rng.standard_normal(
        (6400, 16))
    X, held_out = data[:6000], data[6000:]

    def median_nn(S):  # median distance to the nearest training point
        D = (S**2).sum(1)[:, None] - 2 * S @ X.T + (X**2).sum(1)[None]
        return float(np.median(np.sqrt(np.maximum(D.min(axis=1), 0.0))))

    model = fit_moments(X)
    assert sample(model, 100, random_state=0, steps=1).settings["step_capped"]  # the cap binds at the defaults
    ell = length_scale(model)
    kw = dict(random_state=0, steps=40, t=0.25 * ell, sigma=0.75 * ell)
    capped = sample(model, 400, **kw)
    monkeypatch.setattr(schedules, "euler_stable", lambda sched, lam_max: sched)
    free = sample(model, 400, **kw)
    assert median_nn(capped.samples) < 1.15 * median_nn(held_out)  # measured 0.386 against 0.367
    assert median_nn(free.samples) > 1.8 * median_nn(capped.samples)  # measured 0.826


def test_euler_cap_leaves_point_set_defaults_alone():
    from mmsold_cli import fit_moments, sample
    from mmsold_cli.datasets import moons
    from mmsold_cli.samplers.schedules import Schedule, euler_stable

    assert not sample(fit_moments(moons(500, random_state=0)), 200, random_state=0, sampler="sold",
                      steps=3).settings["step_capped"]
    s = euler_stable(Schedule(np.array([1.0, 2.0]), np.array([5.0, 0.1])), lam_max=2.0)
    np.testing.assert_array_equal(s.h, [0.5, 0.1])


@pytest.mark.parametrize("d", [1, 2, 3, 5, 64])
def test_spatial_order_keeps_neighbours_adjacent(rng, d):
    """A permutation in which consecutive points are as close as in scipy's k-d tree leaf order."""
    from scipy.spatial import cKDTree

    from mmsold_cli.samplers.inits import spatial_order

    X = rng.standard_normal((3000, d)) * np.arange(1, d + 1)
    if d > 8:  # as latent codes: a low-dimensional set in many coordinates (isotropic 64-D noise has no near points)
        X = rng.standard_normal((3000, 3)) @ rng.standard_normal((3, d)) + 0.05 * X / d
    order = spatial_order(X)
    assert np.array_equal(np.sort(order), np.arange(3000))

    def gap(o):
        return np.linalg.norm(np.diff(X[o], axis=0), axis=1).mean()

    ref = np.asarray(cKDTree(X, leafsize=4).indices)
    assert gap(order) < 1.15 * gap(ref)
    assert gap(order) < 0.5 * gap(rng.permutation(3000))


@pytest.mark.parametrize("n, d", [(1, 2), (3, 2), (2000, 1), (5000, 2), (4000, 3), (3000, 12), (40_000, 8)])
def test_spatial_order_numba_equals_numpy(rng, n, d):
    """The kernel (1.9 s on 1,000,000 × 64 against the reference's 4.9 s) gives the reference's permutation, ties
    included: the samples' stratified starts do not change."""
    from mmsold_cli.samplers.inits import spatial_order

    X = np.round(rng.standard_normal((n, d)), 1)  # equal coordinates everywhere: the sorts' stability shows
    got = spatial_order(X, backend="numba")
    np.testing.assert_array_equal(got, spatial_order(X, backend="numpy"))
    assert np.array_equal(np.sort(got), np.arange(n))


def test_callback_gets_a_plain_mapping_of_the_step():
    """The callback's z is mean + Y Lᵀ of the step's state; reading it changes nothing downstream."""
    X = np.random.default_rng(4).standard_normal((400, 2)) @ np.array([[2.0, 0.5], [0.0, 0.3]])
    model = fit_moments(X)
    seen = []

    def read_z(info):
        assert type(info) is dict and set(info) == {"i", "t", "h", "x", "z", "score", "ensembles"}
        z = info["z"].reshape(-1, 2)
        y = info["x"].reshape(-1, 2)
        seen.append(np.abs(z - (model.mean_ + y @ model.cholesky_.T)).max())

    a = sample(model, 300, random_state=2, steps=4, callback=read_z).samples
    b = sample(model, 300, random_state=2, steps=4).samples
    np.testing.assert_array_equal(a, b)
    assert len(seen) == 4 and max(seen) < 1e-12


def _singular_cloud(rng, n=300, d=12):
    """d-D points of rank d − 3: two constant columns and one the sum of two others."""
    X = rng.standard_normal((n, d)) @ np.diag(np.linspace(1.0, 3.0, d))
    X[:, 3], X[:, 7] = 0.25, -1.5
    X[:, 10] = X[:, 0] + 2.0 * X[:, 1]
    return X


@pytest.mark.parametrize("sampler", ["mmsold", "sold"])
def test_singular_covariance_above_8d_is_held_on_its_support(rng, sampler):
    """Above 8-D a singular covariance is not jittered: Y has r columns, the samples keep the data's
    linear relations and constant columns exactly, and MM-SOLD's ensembles its exact covariance."""
    import warnings

    from mmsold_cli.sampling import target_moments

    X = _singular_cloud(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_moments(X)
    assert model.jitter_ > 0
    target = target_moments(model)
    assert target.chol.shape == (12, 9)
    np.testing.assert_allclose(target.cov, model.covariance_, atol=1e-12 * np.abs(model.covariance_).max())
    Z = sample(model, 40, steps=5, P=20, sampler=sampler, random_state=3).samples
    assert np.ptp(Z[:, 3]) == 0.0 and Z[0, 3] == 0.25 and np.ptp(Z[:, 7]) == 0.0 and Z[0, 7] == -1.5
    np.testing.assert_allclose(Z[:, 10], Z[:, 0] + 2.0 * Z[:, 1], atol=1e-12 * np.abs(Z).max())
    assert np.std(Z[:, 0]) > 0.3  # the rest moves
    if sampler == "mmsold":
        for ens in (Z[:20], Z[20:]):
            me, ce = stiefel.moment_error(ens[None], model.mean_, model.covariance_)
            assert me[0] < 1e-13 and ce[0] < 1e-13, (me, ce)


def test_singular_covariance_up_to_8d_keeps_the_jitter(rng):
    """Up to 8-D (the fused kernels' square factor) the documented jitter stays."""
    import warnings

    from mmsold_cli.sampling import target_moments

    X = _singular_cloud(rng)[:, :8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_moments(X)
    target = target_moments(model)
    assert target.chol.shape == (8, 8)
    np.testing.assert_allclose(target.cov, model.covariance_ + model.jitter_ * np.eye(8))


def test_support_coordinates_keep_distances_and_the_score(rng):
    """A run on a singular set above 8-D is made in its support's coordinates (mmsold_cli.support): an
    isometry, so the exact smoothed score there is the data-space score seen along the support, and a
    callback still gets data coordinates."""
    import warnings

    from mmsold_cli.sampling import target_moments
    from mmsold_cli.score.smoothed import smoothed_score_exact
    from mmsold_cli.support import support_view

    X = _singular_cloud(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_moments(X)
    view = support_view(model, target_moments(model).chol)
    assert view.X_.shape == (len(X), 9)
    np.testing.assert_allclose(view.to_data(view.X_), X, atol=1e-10)
    W = view.X_[:5] + 0.1 * rng.standard_normal((5, 9))
    U = 0.2 * rng.standard_normal((4, 5, 9))
    s_w = smoothed_score_exact(view.X_, W, 0.3, U)
    s_z = smoothed_score_exact(X, view.to_data(W), 0.3, U @ view.basis_.T)
    np.testing.assert_allclose(s_w, s_z @ view.basis_, atol=1e-9)
    seen = []
    sample(model, 40, steps=3, P=20, random_state=1, search="walk",
           callback=lambda info: seen.append(info["z"].shape))
    assert seen and all(s[-1] == 12 for s in seen)
