"""Adaptive momentum (AMS): β formula, β = 0 is Euler–Maruyama bit for bit, temperature on a Gaussian."""

import functools
from pathlib import Path

import numpy as np
import pytest

from mmsold_cli import fit_moments, sample
from mmsold_cli.backend import get_backend
from mmsold_cli.rng.streams import RunStream
from mmsold_cli.samplers import MMSOLD, SOLD, Target, stiefel
from mmsold_cli.samplers.integrators import (
    AMS_BETA_MAX,
    Noise,
    adaptive_momentum,
    adaptive_momentum_tc,
    ams_beta,
    euler_maruyama,
    leimkuhler_matthews,
)
from mmsold_cli.samplers.schedules import Schedule
from mmsold_cli.sampling import run_kernel
from mmsold_cli.score.smoothed import SmoothedScore

DATA = Path(__file__).resolve().parents[1] / "sample_data"


def test_beta_formula_per_ensemble(rng):
    dg = rng.standard_normal((3, 7, 2))
    dx = rng.standard_normal((3, 7, 2)) * 0.1
    a = 0.05
    beta = ams_beta(dg, dx, a)
    assert beta.shape == (3, 1, 1)
    for e in range(3):
        r = np.linalg.norm(dg[e], axis=1).mean() / np.linalg.norm(dx[e], axis=1).mean()
        ref = min(max(((1 - a * r) / (1 + a * r)) ** 2, 0.0), 1 - 1e-4)
        assert beta[e, 0, 0] == pytest.approx(ref, rel=1e-12)
    # clip at 1 − 1e−4 when the score does not change; β = 0 when the previous step did not move
    assert ams_beta(np.zeros((1, 4, 2)), dx[:1], a)[0, 0, 0] == AMS_BETA_MAX
    assert ams_beta(dg[:1], np.zeros((1, 4, 2)), a)[0, 0, 0] == 0.0


def test_first_step_and_momentum_update(rng):
    G1, G2 = rng.standard_normal((2, 2, 5, 3))
    h = 0.1
    noise = Noise(RunStream(0).at(0), G1.shape)
    d1, _, st = adaptive_momentum(G1.copy(), h, noise, None)
    assert np.array_equal(d1, h * G1) and np.all(st["beta"] == 0)
    d2, _, st2 = adaptive_momentum(G2.copy(), 0.2, noise, st)
    beta = ams_beta(G2 - G1, d1, h)
    m = beta * G1 + (1 - beta) * G2
    np.testing.assert_allclose(d2, 0.2 * (1 + beta) ** 2 * m, rtol=1e-14)
    np.testing.assert_allclose(st2["step"], 0.2 * (1 + beta) ** 2)


def _moons_model():
    return fit_moments(np.load(DATA / "moons_train.npy")[:500])


@pytest.mark.parametrize("kernel", [MMSOLD, SOLD])
@pytest.mark.parametrize("ams", [adaptive_momentum, adaptive_momentum_tc])
def test_beta_zero_is_euler_maruyama_bit_for_bit(kernel, ams):
    model = _moons_model()
    score = SmoothedScore(model.X_, model.index_, sigma=0.05, M=2, K=8)
    sched = Schedule(np.full(15, 0.03), np.full(15, 2e-3))
    target = Target(model.mean_, model.covariance_, model.cholesky_)
    z0 = model.mean_ + np.random.default_rng(0).standard_normal((2, 60, 2)) @ model.cholesky_.T

    def run(integrator):
        k = kernel(get_backend("numba", 2), 0.03, integrator)
        return run_kernel(k, score, k.init(z0.copy(), target), sched, 1).y

    a = run(euler_maruyama)
    assert np.array_equal(a, run(functools.partial(ams, beta_max=0.0)))
    assert not np.array_equal(a, run(ams))


def _stationary_variance(integrator, h=0.01, steps=2000, E=20, P=25, d=2, seed=0):
    """Mean of z² over the last two thirds of SOLD on the standard Gaussian (score −z)."""
    rng = np.random.default_rng(seed)
    acc = []
    calls = []

    def score(z, t, r, out=None):
        calls.append(1)
        return np.negative(z, out=out)

    kernel = SOLD(get_backend("numpy", d), 1.0, integrator)

    def cb(i, t, h, state, info):
        if i >= steps // 3:
            acc.append(np.mean(kernel.positions(state) ** 2))

    sched = Schedule(np.ones(steps), np.full(steps, h))
    target = Target(np.zeros(d), np.eye(d), np.eye(d))
    run_kernel(kernel, score, kernel.init(rng.standard_normal((E, P, d)), target), sched, seed, cb)
    assert len(calls) == steps  # no extra score evaluations
    return float(np.mean(acc))


def test_ams_lowers_temperature_and_correction_restores_it():
    v_em = _stationary_variance(euler_maruyama)
    v_lm = _stationary_variance(leimkuhler_matthews)
    v_ams = _stationary_variance(adaptive_momentum)
    v_tc = _stationary_variance(adaptive_momentum_tc)
    assert abs(v_lm - 1) < 0.03 and abs(v_em - 1) < 0.03
    assert v_ams < 0.75  # measured ≈ 0.49: the published corrector cools the chain
    assert abs(v_tc - 1) < 0.05  # measured ≈ 1.02


def test_driver_ams_keeps_moments_exact():
    model = _moons_model()
    for integ in ("ams", "ams-tc"):
        res = sample(model, 300, integrator=integ, steps=20, random_state=0)
        assert res.settings["integrator"] == integ
        assert max(res.diagnostics["mean_error"]) < 1e-12 and max(res.diagnostics["cov_error"]) < 1e-12
        z = res.samples
        me, ce = stiefel.moment_error(z[None], model.mean_, model.covariance_ + model.jitter_ * np.eye(2))
        assert me[0] < 1e-9 and ce[0] < 1e-9
