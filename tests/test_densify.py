"""Densifying sparse surface clouds: the MLS projection, the Tweedie step, the pipeline and its CLI."""

import inspect
import json

import numpy as np
import pytest
from conftest import SAMPLE_DATA
from typer.testing import CliRunner

from mmsold_cli.cli import app
from mmsold_cli.datasets import bumpy_torus, surface_samples
from mmsold_cli.defaults import TWEEDIE_T
from mmsold_cli.errors import MmsoldError
from mmsold_cli.metrics.surface import MeshDistance, coverage, mean_spacing
from mmsold_cli.model import fit_moments
from mmsold_cli.score.searches import resolve_search
from mmsold_cli.score.smoothed import barycentre_candidates, barycentre_exact
from mmsold_cli.workflows.densify import REJECT, densify, mls_project, tweedie_step


def _sphere(n, rng, radius=2.0):
    v = rng.standard_normal((n, 3))
    return radius * v / np.linalg.norm(v, axis=1, keepdims=True)


def test_mls_projection_is_exact_on_a_plane(rng):
    X = np.c_[rng.uniform(-5, 5, (800, 2)), np.zeros(800)] @ np.linalg.qr(rng.standard_normal((3, 3)))[0].T
    delta = mean_spacing(X)
    normal = np.cross(X[1] - X[0], X[2] - X[0])
    normal /= np.linalg.norm(normal)
    Z = X[rng.integers(0, 800, 500)] * 0.8 + 0.7 * delta * rng.standard_normal((500, 3))
    P = mls_project(Z, X, 1.5 * delta)
    assert np.abs(P @ normal).max() < 1e-9 * delta * 1e3
    # the projection is orthogonal: only the normal component changes
    tangential = (Z - P) - np.outer((Z - P) @ normal, normal)
    assert np.abs(tangential).max() < 1e-8


def test_mls_projection_lands_on_a_sphere(rng):
    X = _sphere(2000, rng)
    delta = mean_spacing(X)
    Z = X[rng.integers(0, 2000, 4000)] + delta * rng.standard_normal((4000, 3))
    before = np.abs(np.linalg.norm(Z, axis=1) - 2.0)
    P, resid = mls_project(Z, X, 1.5 * delta, return_residual=True)
    after = np.abs(np.linalg.norm(P, axis=1) - 2.0)
    assert before.mean() > 0.5 * delta
    assert after.mean() < 0.01 * delta and np.percentile(after, 95) < 0.03 * delta
    assert resid.shape == (4000,) and resid.max() < 0.05 * delta  # a sphere is locally quadratic


def test_mls_projection_checks_input(rng):
    X = _sphere(50, rng)
    with pytest.raises(MmsoldError, match="dimension 3"):
        mls_project(np.zeros((3, 2)), X, 0.1)
    with pytest.raises(MmsoldError, match="at least 6"):
        mls_project(np.zeros((3, 3)), X[:5], 0.1)
    with pytest.raises(MmsoldError, match="MLS radius"):
        mls_project(np.zeros((3, 3)), X, 0.0)


def test_tweedie_step_is_the_exact_barycentre_with_all_neighbours(rng):
    """neighbours ≥ n: every point in every barycentre, against the softmax over all points term by term (not
    barycentre_exact, which the step then calls itself; measured 2.2e-15)."""
    X = rng.standard_normal((60, 3))
    model = fit_moments(X)
    Z = rng.standard_normal((40, 3))
    every = np.broadcast_to(np.arange(60), (40, 60))
    np.testing.assert_allclose(tweedie_step(Z, model, 0.4, neighbours=60), barycentre_candidates(X, Z, every, 0.4),
                               rtol=0, atol=1e-14)


def test_tweedie_step_with_densify_neighbours_is_the_barycentre_of_the_16_nearest(rng):
    """The step as densify takes it (its default 16 neighbours, t = TWEEDIE_T × spacing, on a sparse surface
    cloud) runs the grid search: barycentres over a block of cells certified to hold each query's 16 nearest, in
    float32 relative to the query.  Against the 16 nearest by brute force it differs by the weight of the block's
    further points and by the rounding, measured 2.7e-7 (7e-6 t); against every point, 5.8e-8
    (max|X32 − X| = 6.0e-8)."""
    V, F = bumpy_torus(48, 24)
    X = surface_samples(V, F, 600, random_state=7)
    model = fit_moments(X)
    K = inspect.signature(tweedie_step).parameters["neighbours"].default  # densify passes none
    assert K == 16 and resolve_search("auto", n=600, d=3, sampler=None, K=K, L=0, backend="numba") == "grid"
    t = TWEEDIE_T * model.spacing_
    Z = X[rng.integers(0, 600, 400)] + model.spacing_ * rng.standard_normal((400, 3))
    B = tweedie_step(Z, model, t)
    nearest = np.argsort(((Z[:, None] - X[None]) ** 2).sum(-1), axis=1)[:, :K]
    np.testing.assert_allclose(B, barycentre_candidates(X, Z, nearest, t), rtol=0, atol=1e-6)
    np.testing.assert_allclose(B, barycentre_exact(X, Z, t), rtol=0, atol=2e-7)


@pytest.fixture(scope="module")
def torus():
    V, F = bumpy_torus(48, 24)
    X = surface_samples(V, F, 600, random_state=7)
    return V, F, X, MeshDistance(V, F), surface_samples(V, F, 5000, random_state=8)


def _measure(P, torus):
    _, _, X, md, S = torus
    delta = mean_spacing(X)
    d = md.query(P)[0] / delta
    return d.mean(), np.percentile(d, 95), coverage(P, S, 0.5 * delta)


def test_densify_puts_points_on_the_surface_and_covers_it(torus):
    X = torus[2]
    res = densify(X, factor=10, steps=20, random_state=0)
    assert res.points.shape == (6000, 3)
    # ×10: half the ×20 share is dropped (each dropped point leaves a larger hole at a lower factor)
    assert res.settings["reject"] == REJECT * 10 / 20
    assert res.settings["drawn"] == int(np.ceil(6000 / (1 - REJECT / 2)))
    assert densify(X, factor=25, steps=2, random_state=0).settings["reject"] == REJECT
    mean, p95, cov = _measure(res.points, torus)
    raw = densify(X, factor=10, steps=20, random_state=0, denoise="none")
    raw_mean, _, raw_cov = _measure(raw.points, torus)
    sparse_cov = _measure(X, torus)[2]
    # a smooth surface: the projection reaches it; coverage far above the input's
    assert mean < 0.05 and p95 < 0.15, (mean, p95)
    assert raw_mean > 0.6 and cov > raw_cov + 0.2 and cov > 3 * sparse_cov
    assert res.diagnostics["mean_move"] > 0.5


def test_denoising_options_trade_distance_and_coverage(torus):
    X = torus[2]
    out = {}
    for denoise in ("none", "tweedie", "anneal"):
        out[denoise] = _measure(densify(X, factor=5, steps=20, random_state=1, denoise=denoise).points, torus)
    # Tweedie and annealing pull points towards the input: much closer, but they cover less than MLS does
    assert out["tweedie"][0] < 0.3 * out["none"][0]
    assert out["anneal"][0] < 0.5 * out["none"][0]


def test_densify_options_and_errors(rng):
    X = _sphere(300, rng)
    res = densify(X, 450, steps=5, random_state=0, reject=0.0, sampler="sold")
    assert res.points.shape == (450, 3) and res.settings["drawn"] == 450 and res.settings["sampler"] == "sold"
    a = densify(X, 100, steps=5, random_state=3).points
    b = densify(X, 100, steps=5, random_state=3).points
    np.testing.assert_array_equal(a, b)
    with pytest.raises(MmsoldError, match="denoise must be one of"):
        densify(X, 10, denoise="smooth")
    with pytest.raises(MmsoldError, match="reject must be in"):
        densify(X, 10, reject=1.0)
    with pytest.raises(MmsoldError, match="3-D"):
        densify(rng.standard_normal((50, 2)), 10)
    assert densify(rng.standard_normal((50, 2)), 60, steps=3, denoise="tweedie", random_state=0).points.shape == (60, 2)


def test_cli_densify(tmp_path):
    runner = CliRunner()
    out = tmp_path / "dense.ply"
    r = runner.invoke(app, ["densify", str(SAMPLE_DATA / "torus_sparse.ply"), "-o", str(out), "--factor", "3",
                            "--steps", "10", "--seed", "2", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    from mmsold_cli.io.mesh import read_point_cloud

    X = read_point_cloud(SAMPLE_DATA / "torus_sparse.ply")
    P = read_point_cloud(out)
    assert P.shape == (3 * len(X), 3) == (summary["output_points"], 3)
    diag = json.loads((tmp_path / "dense.diagnostics.json").read_text())
    assert diag["settings"]["denoise"] == "mls" and diag["settings"]["random_state"] == 2
    # evaluate against the mesh
    r = runner.invoke(app, ["evaluate", str(out), str(SAMPLE_DATA / "torus_dense.npy"), "--train",
                            str(SAMPLE_DATA / "torus_sparse.ply"), "--mesh", str(SAMPLE_DATA / "torus.obj"), "--json"])
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    assert ev["p2s_mean_spacings"] < 0.1 and ev["surface_coverage"] > 0.3
    assert ev["spacing"] == pytest.approx(mean_spacing(X))
    assert ev["coverage"] > 0.5  # the reference's share covered (density/coverage), kept beside the surface's
    # errors: one line, exit 2, nothing written
    r = runner.invoke(app, ["densify", str(SAMPLE_DATA / "torus_sparse.ply"), "-o", str(tmp_path / "x.ply"),
                            "--denoise", "magic"])
    assert r.exit_code == 2 and "denoise must be one of" in r.output and not (tmp_path / "x.ply").exists()
    bad = tmp_path / "bad.ply"
    bad.write_text("ply\nformat ascii 1.0\nelement vertex 1\nproperty float u\nend_header\n1\n")
    r = runner.invoke(app, ["densify", str(bad), "-o", str(tmp_path / "y.ply")])
    assert r.exit_code == 2 and "no position properties" in r.output


def test_mls_numba_kernel_matches_numpy_fit(rng):
    from scipy.spatial import cKDTree

    from mmsold_cli.workflows import densify as dn
    from mmsold_cli.workflows.mls_numba import mls_once_numba

    v = rng.standard_normal((3000, 3))
    S = v / np.linalg.norm(v, axis=1, keepdims=True)
    fold = rng.random((1500, 3))  # two half-planes meeting at a crease along the y axis
    fold[:, 2] = np.abs(fold[:, 0] - 0.5)
    for X in (S, fold):
        delta = mean_spacing(X)
        Z = X[rng.integers(0, len(X), 4000)] + 1.5 * delta * rng.standard_normal((4000, 3))
        d, idx = cKDTree(X).query(Z, k=24)
        P0, r0 = dn._mls_once(Z, X, idx, d * d, 1.5 * delta)
        P1, r1 = mls_once_numba(Z, X, idx, d * d, 1.5 * delta)
        assert np.abs(P1 - P0).max() < 1e-9 * delta and np.abs(r1 - r0).max() < 1e-9 * delta
        assert np.abs(P1 - Z).max() > delta  # the pass does move the points


def test_mls_project_numba_and_numpy_paths_agree(rng, monkeypatch):
    from mmsold_cli.workflows import densify as dn

    v = rng.standard_normal((2000, 3))
    X = v / np.linalg.norm(v, axis=1, keepdims=True)
    Z = X[rng.integers(0, 2000, 3000)] * (1 + 0.05 * rng.standard_normal((3000, 1)))
    monkeypatch.setattr(dn, "MLS_NUMBA_POINTS", 10**9)
    P0, r0 = dn.mls_project(Z, X, 0.08, return_residual=True)
    monkeypatch.setattr(dn, "MLS_NUMBA_POINTS", 1)
    P1, r1 = dn.mls_project(Z, X, 0.08, return_residual=True)
    assert np.abs(P1 - P0).max() < 1e-10 and np.abs(r1 - r0).max() < 1e-10
    assert np.abs(np.linalg.norm(P1, axis=1) - 1).max() < 2e-3  # on the unit sphere
