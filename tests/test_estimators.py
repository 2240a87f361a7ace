"""scikit-learn estimators: the API contract (check_estimator), likelihood tuning, the minimum-ECM classifier."""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from mmsold_cli.estimators import MMSOLD, MMSOLDClassifier  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "sample_data"
# skipped by scikit-learn itself here: the array-API check (SCIPY_ARRAY_API unset) and the pandas input
# check (pandas is not a dependency)
EXPECTED_SKIPS = {"check_array_api_input", "check_classifier_data_not_an_array"}


@pytest.mark.parametrize("est", [MMSOLD(density_draws=2), MMSOLDClassifier(density_draws=2)],
                         ids=["MMSOLD", "MMSOLDClassifier"])
def test_scikit_learn_estimator_checks(est):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert not failed, failed
    assert skipped <= EXPECTED_SKIPS, skipped
    assert len(results) > 35


def test_sample_score_and_grid_search_on_held_out_likelihood():
    X = np.load(DATA / "moons_train.npy")[:300]
    test = np.load(DATA / "moons_test.npy")[:300]
    est = MMSOLD(random_state=0).fit(X)
    S = est.sample(400, random_state=1)
    assert S.shape == (400, 2)
    np.testing.assert_array_equal(S, est.sample(400, random_state=1))
    # without a random_state of its own, sample takes the estimator's: reproducible with an int, fresh with None
    np.testing.assert_array_equal(est.sample(50), est.sample(50))
    assert not np.array_equal(est.sample(50), est.sample(50, random_state=1)[:50])
    free = MMSOLD(steps=5).fit(X)
    assert not np.array_equal(free.sample(50), free.sample(50))
    assert est.sample(1, random_state=0).shape == (1, 2)
    assert est.score(test) > est.score(test + [0.0, 1.0]) + 3
    search = GridSearchCV(MMSOLD(density_draws=4), {"t": [0.02, 0.08, 0.5]}, cv=2).fit(X)
    assert search.best_params_["t"] != 0.5  # a blur as wide as the moons is not the likeliest
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and scores.max() - scores.min() > 0.1


def _blobs(n, rng):
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    y = rng.integers(0, 3, n)
    return centres[y] + rng.standard_normal((n, 2)), y


def test_classifier_accuracy_calibration_and_cost():
    rng = np.random.default_rng(0)
    X, y = _blobs(600, rng)
    Xt, yt = _blobs(600, rng)
    clf = MMSOLDClassifier(random_state=0).fit(X, y)
    P = clf.predict_proba(Xt)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    acc = np.mean(clf.predict(Xt) == yt)
    assert acc > 0.88  # the Bayes rate of these blobs is about 0.92
    # calibrated: the log-loss beats the uniform guess by far and is near the Bayes classifier's
    logloss = -np.mean(np.log(P[np.arange(len(yt)), yt]))
    assert logloss < 0.5 * np.log(3)
    # a costly class 2 (predicting anything else when it is class 2 costs 20): more class-2 predictions
    C = 1.0 - np.eye(3)
    C[:, 2] *= 20
    C[2, 2] = 0.0
    costly = MMSOLDClassifier(random_state=0, cost=C).fit(X, y)
    assert np.sum(costly.predict(Xt) == 2) > np.sum(clf.predict(Xt) == 2) + 50


def test_classifier_probabilities_near_the_bayes_posterior_in_16_dimensions():
    """Three unit Gaussians in 16-D, 150 points each: the posterior's log-loss is known exactly.  With biases
    alone the densities' log-ratios ran so wide that the log-loss (1.85, even with biases fitted on the test
    set) was worse than the uniform guess's log 3; the fitted scale brings it within 35 % of Bayes's."""
    from scipy.special import softmax
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    d = 16
    means = [np.zeros(d), np.eye(d)[0] * 1.2, np.eye(d)[1] * 1.2]

    def draw(n):
        return np.concatenate([rng.standard_normal((n, d)) + m for m in means]), np.repeat(np.arange(3), n)

    (X, y), (Xt, yt) = draw(150), draw(1000)
    clf = MMSOLDClassifier(random_state=0).fit(X, y)
    P = clf.predict_proba(Xt)
    logloss = -np.mean(np.log(P[np.arange(len(yt)), yt]))
    bayes = softmax(np.stack([multivariate_normal(m, np.eye(d)).logpdf(Xt) for m in means], axis=1), axis=1)
    bayes_logloss = -np.mean(np.log(bayes[np.arange(len(yt)), yt]))
    assert 0 < clf.scale_ < 1
    assert logloss < min(np.log(3), 1.35 * bayes_logloss)


def test_without_scikit_learn_a_clear_message():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "try:\n    import mmsold_cli.estimators\nexcept Exception as e:\n    print(type(e).__name__, e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("MmsoldError") and "pip install 'mmsold[sklearn]'" in out
