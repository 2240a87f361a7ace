"""The moment-matched density p* ∝ exp(−E*): normalised, its moments the data's, its energy the sampler's score."""

from pathlib import Path

import numpy as np
import pytest

from mmsold_cli.density import TiltedDensity, smoothed_gradient, smoothed_potential
from mmsold_cli.errors import MmsoldError

DATA = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def moons():
    X = np.load(DATA / "moons_train.npy")[:200]
    t, sigma = 0.08, 0.04
    exact = TiltedDensity(t, sigma, draws=8, grid=120).fit(X)
    plug_in = TiltedDensity(t, sigma, draws=8, grid=120, refine=False).fit(X)
    return X, exact, plug_in


def test_refined_moments_are_the_data_moments(moons):
    X, exact, plug_in = moons
    m, S = exact.quadrature_moments()
    np.testing.assert_allclose(m, X.mean(axis=0), rtol=0, atol=1e-8)
    np.testing.assert_allclose(S, np.cov(X, rowvar=False, bias=True), rtol=0, atol=1e-8)
    # the authors' plug-in (data averages in the Stein conditions) is only an estimate: here the covariance
    # is off by about a quarter of its largest entry, which the refinement removes
    m0, S0 = plug_in.quadrature_moments()
    assert 0.05 < np.abs(S0 - exact.covariance_).max() / np.abs(exact.covariance_).max() < 0.5


def test_density_is_normalised_on_a_finer_grid(moons):
    X, exact, _ = moons
    lo, hi = exact._box()
    k = 260
    axes = [lo[j] + (np.arange(k) + 0.5) * (hi[j] - lo[j]) / k for j in range(2)]
    Q = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)
    mass = np.exp(exact.log_prob(Q)).sum() * np.prod((hi - lo) / k)
    assert abs(mass - 1) < 1e-4


def test_importance_sampling_agrees_with_quadrature(moons):
    _, exact, _ = moons
    logz_is, se = exact.log_normaliser("importance", n_samples=20_000, random_state=1)
    assert 0 < se < 0.05
    assert abs(logz_is - exact.log_normaliser_) < 4 * se + 1e-3


def test_energy_gradient_is_the_smoothed_score(moons):
    X, exact, _ = moons
    Z = X[:5] + 0.03
    g = smoothed_gradient(X, Z, exact.t, exact.draws_)
    eps = 1e-6
    fd = np.stack([(smoothed_potential(X, Z + eps * e, exact.t, exact.draws_)
                    - smoothed_potential(X, Z - eps * e, exact.t, exact.draws_)) / (2 * eps) for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(-fd, g, rtol=1e-5, atol=1e-5 * np.abs(g).max())


def test_held_out_points_are_likelier_than_far_ones(moons):
    _, exact, _ = moons
    test = np.load(DATA / "moons_test.npy")[:300]
    far = test + np.array([0.0, 1.5])
    assert exact.log_prob(test).mean() > exact.log_prob(far).mean() + 3


def test_bad_settings():
    X = np.load(DATA / "moons_train.npy")[:50]
    with pytest.raises(MmsoldError, match="noise t"):
        TiltedDensity(-1.0, 0.1).fit(X)
    with pytest.raises(MmsoldError, match="dimension ≤ 2"):
        TiltedDensity(0.1, 0.1, refine=True).fit(np.c_[X, np.random.default_rng(0).standard_normal(50)])


def test_log_blurred_kernel_agrees_with_its_numpy_reference(rng):
    from mmsold_cli.density import log_blurred

    for n, d, t in ((1, 3, 0.5), (700, 2, 0.05), (3000, 64, 1.3)):
        X = rng.standard_normal((n, d)) * np.linspace(0.2, 3, d)
        # queries near the points, between them and far away (every term underflows but the largest)
        Q = np.concatenate([X[:5] + 0.01, rng.standard_normal((50, d)), X[:5] + 40.0])
        ref = log_blurred(X, Q, t, backend="numpy")
        # the logits are differences of squared norms, so both carry their rounding (~1e-13 here), in their own order
        np.testing.assert_allclose(log_blurred(X, Q, t), ref, rtol=1e-12, atol=0)
        # the reference itself, against the sum of the Gaussian densities it stands for (where none underflows)
        if n == 700:
            dens = np.exp(-((Q[:, None, :] - X[None]) ** 2).sum(-1) / (2 * t * t)).mean(axis=1)
            ok = dens > 1e-250
            np.testing.assert_allclose(ref[ok], np.log(dens[ok]) - np.log(2 * np.pi * t * t), rtol=1e-12)


def test_a_density_without_its_normaliser_has_energies_only(moons):
    X, exact, _ = moons
    d = TiltedDensity(exact.t, exact.sigma, draws=8, grid=120, normalise=False).fit(X)
    assert d.log_normaliser_ is None
    np.testing.assert_array_equal(d.energy(X[:20]), exact.energy(X[:20]))
    with pytest.raises(MmsoldError, match="normalise=False"):
        d.log_prob(X[:3])
    # the same density on the NumPy reference: Newton's refinement stops at 1e-10 of its gradient, so the two
    # tilts agree to about 1e-9
    np.testing.assert_allclose(TiltedDensity(exact.t, exact.sigma, draws=8, grid=120, backend="numpy").fit(X)
                               .log_prob(X[:20]), exact.log_prob(X[:20]), rtol=1e-7)
