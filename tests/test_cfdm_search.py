"""σ-CFDM's search above 3-D: a walked beam shared by the draws where a pilot run says they share neighbours."""

import numpy as np
import pytest

from mmsold_cli import fit_moments, sample
from mmsold_cli.config import SampleConfig
from mmsold_cli.neighbors.indexes import BruteIndex, knn_graph
from mmsold_cli.neighbors.walk import WalkNeighbours, walk_graph
from mmsold_cli.samplers.cfdm import auto_search, shared_beam_miss
from mmsold_cli.score.smoothed import antithetic_draws, barycentre_exact


def _sheet(n=4000, d=64, seed=0):
    """A smooth 2-D sheet in d dimensions (as images lie near a low-dimensional set of their pixel space)."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1, 1, (n, 2))
    a, b = rng.normal(0, 2, (2, 24)), rng.uniform(0, 6.3, 24)
    return np.sin(u @ a + b) @ rng.normal(0, 1, (24, d)) + 1e-3 * rng.standard_normal((n, d))


def _blobs(n=2000, d=16, seed=0):
    """Twenty unit Gaussian blobs filling 16 dimensions: a draw's smoothing moves it among other points."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (20, d))
    return centres[rng.integers(20, size=n)] + rng.standard_normal((n, d))


@pytest.fixture(scope="module")
def sheet():
    return fit_moments(_sheet())


@pytest.fixture(scope="module")
def blobs():
    return fit_moments(_blobs())


def _pilot(model):
    cfg = SampleConfig.resolve(model, 500, sampler="cfdm", search="index")
    return shared_beam_miss(model, start_time=cfg.start_time, steps=cfg.steps, sigma=cfg.sigma, M=cfg.M, K=cfg.K,
                            c=4 * cfg.K)


def test_auto_walks_only_where_the_draws_share_their_beam(sheet, blobs):
    assert _pilot(sheet) <= 1e-4
    assert _pilot(blobs) >= 0.05
    assert SampleConfig.resolve(sheet, 500, sampler="cfdm").search == "walk"
    assert SampleConfig.resolve(blobs, 500, sampler="cfdm").search == "index"
    # asked for by name, or with remainder points, the search is what was asked
    assert SampleConfig.resolve(sheet, 500, sampler="cfdm", search="index").search == "index"
    assert SampleConfig.resolve(sheet, 500, sampler="cfdm", L=8).search == "index"


def _errors(model, search, monkeypatch, n=300):
    """Each step's relative error of the search's mean barycentre against the exact one with the same draws."""
    from mmsold_cli.score.searches.index import IndexSearch
    from mmsold_cli.score.searches.walk import WalkSearch

    cls = WalkSearch if search == "walk" else IndexSearch
    orig = cls.barycentre_mean
    errs = []

    def observed(self, Z, t, sigma, M, rng, *, out=None, score=False):
        Zs = Z.copy()
        U = antithetic_draws(rng, M, Z.shape, sigma)
        res = orig(self, Z, t, sigma, M, rng, out=out, score=score)
        exact = np.mean([barycentre_exact(self.X, Zs + u, t) for u in U], axis=0)
        errs.append(np.linalg.norm(res - exact) / np.linalg.norm(exact - Zs))
        return res

    monkeypatch.setattr(cls, "barycentre_mean", observed)
    res = sample(model, n, random_state=2, sampler="cfdm", search=search)
    monkeypatch.undo()
    return np.array(errs), res


def test_the_chosen_search_is_the_closer_to_the_exact_score(sheet, blobs, monkeypatch):
    """Where auto walks, the shared beam is within 1e-3 of the exact barycentre at every step; where it keeps the
    index, a shared beam would be far worse than each draw's own 16 nearest."""
    walk_sheet, res = _errors(sheet, "walk", monkeypatch)
    assert res.settings["search"] == "walk"
    assert walk_sheet.max() <= 1e-3, walk_sheet
    walk_blobs, _ = _errors(blobs, "walk", monkeypatch)
    index_blobs, _ = _errors(blobs, "index", monkeypatch)
    assert walk_blobs.mean() >= 0.05 and walk_blobs.mean() >= 5 * index_blobs.mean(), (walk_blobs, index_blobs)


def test_cfdm_walks_start_from_the_index(sheet):
    """σ-CFDM's first queries z/T lie far from the data, where a greedy walk from anchors can stop short: its
    first beams come from the model's index (the Langevin samplers keep the anchors)."""
    from mmsold_cli.sampling import make_score

    score = make_score(sheet, SampleConfig.resolve(sheet, 500, sampler="cfdm"))
    assert score.search == "walk" and score.strategy.tracker.index is sheet.index_
    assert make_score(sheet, SampleConfig.resolve(sheet, 500)).strategy.tracker.index is None


def test_walked_cfdm_samples_do_not_depend_on_batches(sheet):
    a = sample(sheet, 600, random_state=5, sampler="cfdm")
    b = sample(sheet, 600, random_state=5, sampler="cfdm", batch_size=250)
    assert a.settings["search"] == b.settings["search"] == "walk"
    np.testing.assert_array_equal(a.samples, b.samples)
    assert np.isfinite(a.samples).all() and not np.array_equal(a.samples, sample(sheet, 600, random_state=6,
                                                                                  sampler="cfdm").samples)


def test_the_decision_is_measured_once_per_model_and_settings(sheet):
    cfg = SampleConfig.resolve(sheet, 500, sampler="cfdm", search="index")
    kw = dict(start_time=cfg.start_time, steps=cfg.steps, sigma=cfg.sigma, M=cfg.M, K=cfg.K)
    assert auto_search(sheet, **kw) == "walk"
    assert len(sheet.__dict__["_cfdm_search"]) >= 1
    # a fresh model of the same points decides the same (the pilot's numbers do not come from the run's seed)
    assert auto_search(fit_moments(sheet.X_), **kw) == "walk"


def test_first_beams_from_an_index_are_its_nearest(rng):
    X = _blobs(n=1500, d=16, seed=1)
    sq, idx = knn_graph(X, 16)
    Z = 3.0 * rng.standard_normal((200, 16))  # far from the data, as σ-CFDM's first queries z/T
    tr = WalkNeighbours(X, walk_graph(idx, sq), 64, index=BruteIndex(X))
    _, beams = tr.start(Z)
    D = ((Z[:, None, :] - X[None]) ** 2).sum(-1)
    exact = np.argsort(D, axis=1)[:, :64]
    assert np.mean([np.intersect1d(a, b).size / 64 for a, b in zip(beams, exact)]) == 1.0
