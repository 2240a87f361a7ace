"""The library API as a user calls it: wrong types and shapes refused with a named error before any work, and the
estimator's and the labelled workflow's defaults those of the samplers they call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmsold_cli import MmsoldError, fit_moments, sample
from mmsold_cli.errors import MmsoldWarning
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


def test_fewer_samples_than_an_ensemble_are_the_first_of_one(tmp_path):
    """`sample -n 3` and `--per-class 3` of a 5-D model, and densify to 1 point: the first rows of one ensemble of
    2d + 2 (the settings say so, and a warning that they cannot hold the moments), where the CLI and densify
    refused (MM-SOLD needs n > d) and the estimator and augment did not."""
    import json

    from typer.testing import CliRunner

    from mmsold_cli.cli import app
    from mmsold_cli.workflows.densify import densify

    rng = np.random.default_rng(0)
    X, y = np.concatenate([rng.standard_normal((200, 5)), rng.standard_normal((200, 5)) + 3]), np.repeat([0, 1], 200)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    run = CliRunner().invoke
    for args in (["X.npy", "-o", "m.h5"], ["X.npy", "--labels", "y.npy", "-o", "mc.h5"]):
        assert run(app, ["fit-moments", *[str(tmp_path / a) if a.endswith(("npy", "h5")) else a for a in args]]
                   ).exit_code == 0
    res = run(app, ["sample", str(tmp_path / "m.h5"), "-n", "3", "--steps", "5", "--seed", "1", "-o",
                    str(tmp_path / "s.npy")])
    assert res.exit_code == 0, res.output
    assert "warning: samples: 3 asked for, and 5 or fewer cannot hold the mean and covariance of 5-D data" in res.stderr
    from mmsold_cli.io.model_file import load_class_models, load_model
    from mmsold_cli.workflows.labelled import sample_classes

    assert np.array_equal(np.load(tmp_path / "s.npy"),
                          sample(load_model(tmp_path / "m.h5"), 12, random_state=1, steps=5).samples[:3])
    settings = json.loads((tmp_path / "s.diagnostics.json").read_text())["settings"]
    assert (settings["n"], settings["drawn"]) == (3, 12)
    res = run(app, ["sample", str(tmp_path / "mc.h5"), "--per-class", "3", "--steps", "5", "--seed", "1", "-o",
                    str(tmp_path / "c.npy")])
    assert res.exit_code == 0, res.output
    assert res.stderr.count("cannot hold the mean and covariance") == 2  # one line per class
    with pytest.warns(MmsoldWarning, match="samples of class 0: 3 asked for"):
            Z, labels, _ = sample_classes(load_class_models(tmp_path / "mc.h5"), {0: 3, 1: 3}, seed=1, steps=5)
    assert np.array_equal(np.load(tmp_path / "c.npy"), Z)
    assert np.load(tmp_path / "c.labels.npy").tolist() == labels.tolist() == [0, 0, 0, 1, 1, 1]
    sphere = rng.standard_normal((300, 3))
    for denoise in ("mls", "none"):
        assert densify(sphere / np.linalg.norm(sphere, axis=1, keepdims=True), n=1, denoise=denoise,
                       random_state=0).points.shape == (1, 3)


def test_densify_cloud_takes_an_array_and_project_input_implies_keep_input():
    """densify_cloud(ndarray) raised AttributeError ('positions'); project_input without keep_input was ignored
    (the CLI's --project-input implies --keep-input)."""
    from mmsold_cli.workflows.densify import densify_cloud

    rng = np.random.default_rng(3)
    S = rng.standard_normal((400, 3))
    S /= np.linalg.norm(S, axis=1, keepdims=True)
    noisy = S + 0.01 * rng.standard_normal(S.shape)
    out, _ = densify_cloud(noisy, factor=2, random_state=0, project_input=True)
    assert len(out) == 400 + 800
    moved = np.abs(np.linalg.norm(out.positions[:400], axis=1) - 1).mean()
    assert moved < 0.85 * np.abs(np.linalg.norm(noisy, axis=1) - 1).mean()  # the input points, moved onto the fit
    with pytest.raises(MmsoldError, match="input points: expected dimension 3, got 2"):
        densify_cloud(S[:, :2], factor=2)


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


@pytest.mark.parametrize("kw, match", [
    ({"validation_fraction": 0.001}, "validation_fraction=0.001 holds out 0 of class 0's 60 samples"),
    ({"cost": np.ones((3, 3))}, r"cost must be a \(10, 10\) matrix, one row and column per class, got shape \(3, 3\)"),
    ({"cost": np.full((10, 10), np.nan)}, "cost must hold finite numbers, got 100 NaN or infinite of 100"),
])
def test_classifier_names_the_parameter_before_fitting_densities(kw, match):
    """A bad cost was found after every class's density was fitted (5.7 s on MNIST PCA-32) and named only its
    shape; a tiny validation_fraction was reported as too few samples in a class of 59."""
    from mmsold_cli.estimators import MMSOLDClassifier

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((600, 8)), np.repeat(np.arange(10), 60)
    clf = MMSOLDClassifier(**kw)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "densities_")


def test_label_files_read_alike_whatever_their_format(tmp_path):
    """Labels in .txt/.csv were read as text, so the class 3 of a text file was not the class 3 of a .npy file
    (classify then said labels 0 … 9 were not among the model's 0 … 9); byte-string labels failed to be stored."""
    from mmsold_cli.workflows.labelled import check_labels, read_labels

    y = np.array([0, 1, 2, 1])
    (tmp_path / "a.txt").write_text("0\n1\n2\n1\n")
    (tmp_path / "b.csv").write_text("label\n0\n1\n2\n1\n")  # n + 1 rows: a header
    np.savetxt(tmp_path / "c.txt", y.astype(float))  # 0.000000000000000000e+00 …
    (tmp_path / "d.txt").write_text("cat\ndog\n7\ncat\n")
    for name in ("a.txt", "b.csv", "c.txt"):
        got = read_labels(tmp_path / name, 4)
        assert got.dtype.kind == "i" and got.tolist() == y.tolist(), name
    assert read_labels(tmp_path / "d.txt", 4).tolist() == ["cat", "dog", "7", "cat"]
    assert check_labels(np.array([b"c1", b"c2"]), 2).tolist() == ["c1", "c2"]
    with pytest.raises(MmsoldError, match="not UTF-8"):
        check_labels(np.array([b"\xff\xfe"]), 1)
