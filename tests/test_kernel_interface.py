"""A new sampler is a kernel with init/step/positions: this file's plain Langevin kernel runs through the driver."""

import inspect
from pathlib import Path

import numpy as np

from mmsold_cli import fit_moments, sample
from mmsold_cli.metrics.points import precision_recall
from mmsold_cli.rng.streams import NOISE
from mmsold_cli.samplers import SAMPLERS, StartLaw, StepInfo

DATA = Path(__file__).resolve().parents[1] / "sample_data"


class ULA:
    """Unadjusted Langevin on the positions, no moment constraint: z ← z + h s(z) + √(2h) ξ."""

    def __init__(self, t):
        self.t = t

    @classmethod
    def from_config(cls, config, backend):
        return cls(config.t)

    def start_law(self, target):
        return StartLaw(1.0, self.t, target.mean, target.chol)

    def init(self, start, target):
        return start

    def positions(self, state):
        return state

    def step(self, state, score, t, h, rng):
        E, P, d = state.shape
        s = score(state.reshape(-1, d), t, rng).reshape(state.shape)
        xi = rng.normals(NOISE, (E * P, d)).reshape(state.shape)
        return state + (h * t * t) * s + np.sqrt(2 * h) * t * xi, StepInfo(s)


def test_a_kernel_written_here_runs_through_the_driver(monkeypatch):
    assert len(inspect.getsource(ULA).splitlines()) < 40
    monkeypatch.setitem(SAMPLERS, "ula", ULA)
    X = np.load(DATA / "moons_train.npy")
    model = fit_moments(X)
    res = sample(model, 3000, sampler="ula", random_state=0, steps=30)
    diag = res.diagnostics
    assert res.samples.shape == (3000, 2) and res.settings["sampler"] == "ula"
    assert len(diag["mean_error"]) == len(diag["cov_error"]) == len(diag["score_norm"]) == 30
    # not held at the moments (no constraint), but close: the dynamics keep the blurred law
    assert 1e-6 < max(diag["cov_error"]) < 0.2
    assert diag["score_evals"] == 3000 * 30 * res.settings["M"]
    precision, recall = precision_recall(res.samples, np.load(DATA / "moons_test.npy"))
    assert precision > 0.9 and recall > 0.8
    split = sample(model, 3000, sampler="ula", random_state=0, steps=30, batch_size=1000)
    assert split.samples.tobytes() == res.samples.tobytes()
