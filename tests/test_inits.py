"""Start distributions: moments of p_T, the k-means mixture, log densities, KL/MMD proxies, the driver."""

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from mmsold_cli import fit_moments, sample
from mmsold_cli.samplers.inits import (
    STARTS,
    fit_gmm,
    mixture_logpdf,
    mixture_sample,
    moments_gaussian,
    noised_logpdf,
    noised_sample,
    start_divergence,
)

DATA = Path(__file__).resolve().parents[1] / "sample_data"


def _pop_cov(X):
    D = X - X.mean(0)
    return D.T @ D / X.shape[0]


def test_moments_gaussian(aniso_rotated):
    X = aniso_rotated
    a, s = 0.7, 0.3
    mix = moments_gaussian(X, a, s)
    np.testing.assert_allclose(mix.means[0], a * X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(mix.chols[0] @ mix.chols[0].T, a * a * _pop_cov(X) + s * s * np.eye(3), rtol=1e-12)


def test_gmm_keeps_first_two_moments_of_p_T(aniso_rotated, rng):
    """Law of total covariance: Σ π_c (a²Σ_c + s²I) + a² Σ π_c (μ_c − μ)(μ_c − μ)ᵀ = a²Σ + s²I."""
    X = aniso_rotated
    a, s = 0.9, 0.1
    mix = fit_gmm(X, a, s, 12, rng=rng)
    assert mix.weights.sum() == pytest.approx(1.0) and 1 < mix.weights.size <= 12
    mean = mix.weights @ mix.means
    covs = mix.chols @ np.swapaxes(mix.chols, 1, 2)
    D = mix.means - mean
    cov = np.einsum("c,cij->ij", mix.weights, covs) + np.einsum("c,ci,cj->ij", mix.weights, D, D)
    np.testing.assert_allclose(mean, a * X.mean(0), atol=1e-12)
    np.testing.assert_allclose(cov, a * a * _pop_cov(X) + s * s * np.eye(3), atol=1e-10)
    one = fit_gmm(X, a, s, 1, rng=rng)
    np.testing.assert_allclose(one.chols, moments_gaussian(X, a, s).chols)


def test_log_densities_against_scipy(rng):
    X = rng.standard_normal((15, 2))
    Z = rng.standard_normal((9, 2))
    a, s = 0.8, 0.4
    ref = np.log(np.mean([multivariate_normal(a * x, s * s * np.eye(2)).pdf(Z) for x in X], axis=0))
    np.testing.assert_allclose(noised_logpdf(X, a, s, Z), ref, rtol=1e-10)
    mix = fit_gmm(X, a, s, 3, rng=rng)
    ref = np.log(sum(w * multivariate_normal(m, L @ L.T).pdf(Z) for w, m, L in zip(*mix)))
    np.testing.assert_allclose(mixture_logpdf(mix, Z), ref, rtol=1e-10)


def test_draws_have_the_laws_moments(aniso_rotated, rng):
    X = aniso_rotated
    a, s = 0.6, 0.5
    target = a * a * _pop_cov(X) + s * s * np.eye(3)
    mix = fit_gmm(X, a, s, 8, rng=rng)
    for Z in (noised_sample(X, a, s, 40_000, rng), mixture_sample(mix, 40_000, rng),
              STARTS["moments"](X, 40_000, a, s, rng=rng)):
        np.testing.assert_allclose(Z.mean(0), a * X.mean(0), atol=0.05)
        np.testing.assert_allclose(np.cov(Z.T), target, atol=0.1)


def test_divergence_ranks_the_starts():
    X = np.load(DATA / "moons_train.npy")[:600]
    T = 0.9
    div = {k: start_divergence(k, X, T, 1 - T, m=600, random_state=0) for k in STARTS}
    kl = {k: v["kl"] for k, v in div.items()}
    assert kl["data"] == 0.0
    assert kl["gaussian"] > kl["moments"] > kl["gmm"] > -0.02
    assert kl["gmm"] < 0.1 and kl["moments"] > 0.2
    assert div["gaussian"]["mmd2"] > div["moments"]["mmd2"] > abs(div["data"]["mmd2"])


@pytest.mark.parametrize("sampler", ["mmsold", "sold", "cfdm"])
@pytest.mark.parametrize("init", ["moments", "gmm", "gaussian"])
def test_driver_inits(sampler, init):
    model = fit_moments(np.load(DATA / "moons_train.npy")[:400])
    res = sample(model, 120, sampler=sampler, init=init, steps=3, random_state=0)
    assert res.samples.shape == (120, 2) and np.isfinite(res.samples).all()
    assert res.settings["init"] == init
    if sampler == "mmsold":
        assert max(res.diagnostics["cov_error"]) < 1e-9
    again = sample(model, 120, sampler=sampler, init=init, steps=3, random_state=0)
    assert np.array_equal(res.samples, again.samples)
