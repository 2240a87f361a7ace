"""The library API as a user calls it: wrong types and shapes refused with a named error before any work, and the
estimator's and the labelled workflow's defaults those of the samplers they call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmsold_cli import MmsoldError, fit_moments, sample
from mmsold_cli.workflows.labelled import augment

DATA = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def moons():
    return fit_moments(np.load(DATA / "moons_train.npy"))


@pytest.mark.parametrize("opts, match", [
    ({"out": np.zeros((10, 2), dtype=np.int64)}, "out must hold floats"),
    ({"callback": "print"}, "callback must be callable"),
    ({"progress": 3}, "progress must be callable"),
    ({"sampler": "cfdm", "schedule": lambda **kw: None}, "σ-CFDM has its own time grid"),
    ({"schedule": "anneal"}, "schedule must be callable"),
    ({"t": True}, "t must be a number, got True"),
    ({"sigma": "0.01"}, "sigma must be a number, got '0.01'"),
    ({"eta": "0.3"}, "eta must be a number"),
])
def test_sample_refuses_wrong_types(moons, opts, match):
    with pytest.raises(MmsoldError, match=match):
        sample(moons, 10, random_state=0, steps=2, **opts)


def test_sample_into_a_float32_array(moons):
    out = np.zeros((10, 2), dtype=np.float32)
    res = sample(moons, 10, random_state=0, steps=2, out=out)
    assert res.samples is out and np.array_equal(out, sample(moons, 10, random_state=0, steps=2).samples
                                                 .astype(np.float32))


def test_model_files_are_hdf5_by_name(tmp_path, moons):
    with pytest.raises(MmsoldError, match=r"expected the extension \.h5 or \.hdf5, got '\.npy'"):
        moons.save(tmp_path / "m.npy")
    assert not list(tmp_path.iterdir())


def test_estimator_cfdm_samples_at_cfdm_defaults(moons):
    from mmsold_cli.estimators import MMSOLD, _seed

    X = np.load(DATA / "moons_train.npy")
    est = MMSOLD(sampler="cfdm", steps=20, random_state=0).fit(X)
    want = sample(fit_moments(X), 300, random_state=_seed(0), sampler="cfdm", steps=20)
    assert want.settings["sigma"] != pytest.approx(est.sigma_)  # σ-CFDM's own default is not MM-SOLD's
    assert np.array_equal(est.sample(300, random_state=0), want.samples)
    # a parameter changed after the fit takes effect at the next fit, as scikit-learn's estimators do
    est.set_params(steps=3)
    assert np.array_equal(est.sample(300, random_state=0), want.samples)


def test_classifier_names_a_class_as_given():
    from mmsold_cli.estimators import MMSOLDClassifier

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 2)), np.r_[np.zeros(38), np.ones(2)]
    with pytest.raises(ValueError, match=r"class 1\.0 has 2 samples"):
        MMSOLDClassifier().fit(X, y)


def test_augment_refuses_bad_input_by_name():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((300, 4)), rng.integers(0, 3, 300)
    for args, match in [((X, y[:-5], 1.0), r"expected 300 labels, one per point \(a 1-D array\), got shape \(295,\)"),
                        ((X[:, 0], y, 1.0), "expected a 2-D array"),
                        ((X, y, "2"), "factor must be a number, got '2'"),
                        ((X, np.array([None] * 300), 1.0), "must be integers or names, got object"),
                        ((X, y + 0.5, 1.0), "non-integer numbers")]:
        with pytest.raises(MmsoldError, match=match):
            augment(*args, seed=0)


def test_augment_by_a_small_factor_draws_from_a_whole_ensemble():
    """round(0.01 × ~100) = 1 new point per class in 4-D: each class's one point is the first of an ensemble of
    2d + 2, as MMSOLD.sample does, instead of a refusal that named neither the class nor the factor."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((300, 4)), rng.integers(0, 3, 300)
    points, labels, generated = augment(X.tolist(), y.tolist(), 0.01, seed=0, steps=3)
    assert points.shape == (303, 4) and generated.sum() == 3
    assert sorted(labels[generated].tolist()) == [0, 1, 2]
    again = augment(X, y, 0.01, seed=0, steps=3)[0]
    assert np.array_equal(points, again)


def test_precision_recall_density_coverage_undefined_for_k_points_or_fewer():
    """Two far-away samples against 400 reference points: recall read 1.0 (the 3rd nearest other sample does not
    exist, so its ball was infinite); the figures a set of ≤ k points would give balls for are NaN (null in JSON)."""
    from mmsold_cli import evaluate

    rng = np.random.default_rng(0)
    far, ref = 100 + rng.standard_normal((2, 2)), rng.standard_normal((400, 2))
    r = evaluate(far, ref)
    assert r["precision"] == 0.0 and np.isnan(r["recall"]) and r["coverage"] == 0.0
    r = evaluate(ref + 100, ref[:3])
    assert r["recall"] == 0.0 and np.isnan(r["precision"]) and np.isnan(r["density"]) and np.isnan(r["coverage"])
    r = evaluate(ref[:4] + 100, ref[:4])  # four points: every figure defined
    assert r["precision"] == 0.0 and r["recall"] == 0.0


def test_truncated_ascii_ply_cloud_is_refused(tmp_path):
    from mmsold_cli.io.mesh import read_point_cloud

    head = ("ply\nformat ascii 1.0\nelement vertex 10\nproperty float x\nproperty float y\nproperty float z\n"
            "end_header\n")
    (tmp_path / "t.ply").write_text(head + "0 0 0\n1 1 1\n")
    with pytest.raises(MmsoldError, match="PLY file is truncated: 10 vertices announced, 2 vertex lines present"):
        read_point_cloud(tmp_path / "t.ply")
    (tmp_path / "t.ply").write_text(head + "".join(f"{i} {i} {i}\n" for i in range(10)))
    assert read_point_cloud(tmp_path / "t.ply").shape == (10, 3)


def test_a_plot_of_one_dimensional_points_is_refused_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from mmsold_cli.cli import app

    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.standard_normal((300, 1)))
    np.save(tmp_path / "b.npy", rng.standard_normal((200, 1)))
    fit_moments(np.load(tmp_path / "a.npy")).save(tmp_path / "m.h5")
    for args in (["sample", tmp_path / "m.h5", "-n", 50, "-o", tmp_path / "s.npy", "--plot", tmp_path / "s.png"],
                 ["evaluate", tmp_path / "a.npy", tmp_path / "b.npy", "--plot", tmp_path / "p.png"]):
        res = CliRunner().invoke(app, [str(a) for a in args])
        assert res.exit_code == 2 and "cannot draw 1-D points" in res.stderr, (res.exit_code, res.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.npy", "m.h5"]


def test_evaluate_takes_one_training_set_and_a_fitted_model(moons):
    from mmsold_cli import evaluate

    A = sample(moons, 200, random_state=0, steps=3).samples
    with pytest.raises(MmsoldError, match="model must be a fitted Model .a file: Model.load.path.., got 'm.h5'"):
        evaluate(A, moons.X_[:300], model="m.h5")
    with pytest.raises(MmsoldError, match="not both"):
        evaluate(A, moons.X_[:300], model=moons, train=moons.X_)
