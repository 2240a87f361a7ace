"""σ-CFDM: rescaled barycentre against the direct formula, the flow's end point, memorisation vs novelty."""

from pathlib import Path

import numpy as np
import pytest

from mmsold_cli import fit_moments, sample
from mmsold_cli.backend import get_backend
from mmsold_cli.defaults import CFDM_LAST_BLUR as LAST_BLUR
from mmsold_cli.defaults import cfdm_start_time as default_start_time
from mmsold_cli.defaults import cfdm_steps as default_steps
from mmsold_cli.errors import MmsoldError
from mmsold_cli.metrics.points import memorisation_fraction, precision_recall, w2_exact
from mmsold_cli.neighbors.indexes import BruteIndex
from mmsold_cli.samplers import CFDM, Target
from mmsold_cli.samplers.cfdm import cfdm_score
from mmsold_cli.samplers.schedules import cfdm as cfdm_schedule
from mmsold_cli.sampling import run_kernel
from mmsold_cli.score.smoothed import (
    SmoothedScore,
    antithetic_draws,
    barycentre_candidates,
    barycentre_exact,
)

DATA = Path(__file__).resolve().parents[1] / "sample_data"


def direct_cfdm_score(X, Z, t, U, K=None):
    """Slow reference in z coordinates: softmax_j(−‖z+u − t x_j‖²/2(1−t)²), s = (Σ w t x − z)/(1−t)²; with K,
    the softmax over the K training points t x_j nearest each z + u only."""
    B = np.zeros_like(Z)
    for u in U:
        Q = Z + u
        logits = -((Q[:, None, :] - t * X[None]) ** 2).sum(-1) / (2 * (1 - t) ** 2)
        if K is not None:
            np.put_along_axis(logits, np.argsort(-logits, axis=1)[:, K:], -np.inf, axis=1)
        w = np.exp(logits - logits.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        B += w @ (t * X)
    return (B / len(U) - Z) / (1 - t) ** 2


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("t", [0.3, 0.8, 0.97])
def test_rescaled_barycentre_equals_direct_formula(rng, backend, t):
    """The K = 20 nearest of 60 points by the index search: NumPy's barycentres, or the numba kernel's (K ≥ n
    would be the ``all`` search, barycentre_exact, on both backends; and ``auto`` would take the grid's block in
    3-D).  The score's error is rounding in t b − z over (1−t)²: measured (1−t)² × |error| ≤ 8.9e-16 (t = 0.8),
    2.3e-16 (t = 0.3), 4.5e-16 (t = 0.97); bound 3e-15/(1−t)².  At t = 0.3 the 20 nearest are not the whole
    softmax (all 60 points give a score 0.43 away), so the oracles take the same 20."""
    X = rng.standard_normal((60, 3)) * np.array([1.0, 0.3, 2.0])
    Z = t * X[rng.integers(0, 60, 25)] + (1 - t) * rng.standard_normal((25, 3))
    sigma, K = 0.15, 20
    score = SmoothedScore(X, BruteIndex(X), sigma=sigma, M=4, K=K, L=0, backend=backend, search="index")
    assert score.search == "index"
    s = cfdm_score(score, Z, t, np.random.default_rng(7), sigma)
    # the same draws: the estimator perturbs z/t by (σ/t)ε, i.e. z by σε
    U = t * antithetic_draws(np.random.default_rng(7), 4, Z.shape, sigma / t)
    atol = 3e-15 / (1 - t) ** 2
    np.testing.assert_allclose(s, direct_cfdm_score(X, Z, t, U, K), rtol=0, atol=atol)
    # and the candidates' oracle of score.py in rescaled coordinates, over each draw's K nearest by brute force
    tau = (1 - t) / t
    Qs = [(Z + u) / t for u in U]
    nearest = [np.argsort(((Q[:, None] - X[None]) ** 2).sum(-1), axis=1)[:, :K] for Q in Qs]
    b = np.mean([barycentre_candidates(X, Q, idx, tau) for Q, idx in zip(Qs, nearest)], axis=0)
    np.testing.assert_allclose(s, (t * b - Z) / (1 - t) ** 2, rtol=0, atol=atol)


def test_schedule_reaches_one():
    sch = cfdm_schedule(40, 0.9)
    assert sch.t[0] == 0.9 and np.all(sch.t < 1)
    np.testing.assert_allclose(sch.t[-1] + sch.h[-1], 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.diff(sch.t), sch.h[:-1], rtol=1e-12)


def _flow(score, z0, schedule, on_step=None):
    """σ-CFDM's kernel at σ = 0 over a schedule from z0 (E, P, d): the end positions."""
    d = z0.shape[-1]
    kernel = CFDM(get_backend("numpy", d), 0.0, float(schedule.t[0]))
    target = Target(np.zeros(d), np.eye(d), np.eye(d))
    return kernel.positions(run_kernel(kernel, score, kernel.init(z0, target), schedule, 0, on_step))


def test_single_point_flow_lands_on_it(rng):
    """One training point: b ≡ x, the Euler flow contracts z − x by (1 − h/(1−t)) and ends at x exactly."""
    X = np.array([[0.5, -1.0, 2.0]])
    score = SmoothedScore(X, BruteIndex(X), sigma=0.0, K=1)
    z0 = rng.standard_normal((1, 10, 3))
    seen = []
    out = _flow(score, z0, cfdm_schedule(7, 0.3), on_step=lambda i, *_: seen.append(i))
    np.testing.assert_allclose(out, np.broadcast_to(X, out.shape), atol=1e-12)
    assert seen == list(range(7))


def test_last_step_lands_on_barycentre(rng):
    X = rng.standard_normal((30, 2))
    score = SmoothedScore(X, BruteIndex(X), sigma=0.0, K=30)
    z = rng.standard_normal((5, 2))
    out = _flow(score, z[None].copy(), cfdm_schedule(1, 0.6))[0]
    np.testing.assert_allclose(out, barycentre_exact(X, z / 0.6, 0.4 / 0.6), atol=1e-12)


@pytest.fixture(scope="module")
def moons():
    X = np.load(DATA / "moons_train.npy")[:800]
    return fit_moments(X), np.load(DATA / "moons_test.npy")[:400]


def test_sigma_zero_memorises(moons):
    """At the default start and step count, σ = 0 transports p_T back onto the training points."""
    model, _ = moons
    res = sample(model, 400, sampler="cfdm", sigma=0.0, random_state=0)
    assert res.settings["M"] == 10 and res.settings["init"] == "data"
    assert res.settings["steps"] == default_steps(model, res.settings["start_time"])
    assert memorisation_fraction(res.samples, model.X_, model.nn_dist_, model.index_) > 0.93


def test_default_steps_rule(moons):
    model, _ = moons
    T = default_start_time(model)
    S = default_steps(model, T)
    assert (1 - T) / S <= LAST_BLUR * model.spacing_ < (1 - T) / (S - 1)


def test_sigma_positive_novel_near_data(moons):
    model, test = moons
    res = sample(model, 400, sampler="cfdm", random_state=0)
    mem = memorisation_fraction(res.samples, model.X_, model.nn_dist_, model.index_)
    prec, rec = precision_recall(res.samples, model.X_)
    assert mem < 0.3
    assert prec > 0.9 and rec > 0.6
    # as close to held-out data as 400 training points are, within 30 %
    w2_train = w2_exact(model.X_[np.random.default_rng(1).choice(800, 400, replace=False)], test)
    assert w2_exact(res.samples, test) < 1.3 * w2_train


def test_driver_settings_and_reproducibility(moons):
    model, _ = moons
    a = sample(model, 50, sampler="cfdm", steps=5, random_state=3)
    b = sample(model, 50, sampler="cfdm", steps=5, random_state=3)
    assert np.array_equal(a.samples, b.samples)
    st = a.settings
    assert st["t"] is None and st["integrator"] == "euler"
    assert st["start_time"] == pytest.approx(default_start_time(model))
    assert a.diagnostics["score_evals"] == 50 * 5 * 10
    assert len(a.diagnostics["cov_error"]) == 5


@pytest.mark.parametrize("opts, match", [
    (dict(t=0.1), "noise t"),
    (dict(integrator="ams"), "Euler"),
    (dict(start_time=1.0), r"\(0, 1\)"),
    (dict(start_time=0.0), r"\(0, 1\)"),
])
def test_bad_options(moons, opts, match):
    with pytest.raises(MmsoldError, match=match):
        sample(moons[0], 10, sampler="cfdm", **opts)


def test_start_time_only_for_cfdm(moons):
    with pytest.raises(MmsoldError, match="cfdm sampler only"):
        sample(moons[0], 10, sampler="mmsold", start_time=0.5)
