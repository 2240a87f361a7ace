"""The kNN estimator converges to the exact smoothed score as K grows (issue 3, must show 1)."""

import numpy as np

from mmsold_cli import fit_moments
from mmsold_cli.score.searches import make_search
from mmsold_cli.score.smoothed import SmoothedScore, smoothed_score_exact


def _errors(model, Z, t, sigma, Ks, backend):
    """Relative errors of the K-nearest estimator (search "index", built here: left to itself SmoothedScore
    resolves K ≥ n to "all", the oracle's own barycentre_exact) against the exact one for the same draws."""
    errs = []
    for K in Ks:
        knn = make_search("index", model.X_, index=model.index_, K=K, L=0, backend=backend)
        est = SmoothedScore(model.X_, model.index_, sigma=sigma, M=4, K=K, L=0, backend=backend, search=knn)
        assert est.search == "index" and knn.K == K
        S = est(Z, t, np.random.default_rng(5))
        U = est.draws(np.random.default_rng(5), Z.shape)
        ref = smoothed_score_exact(model.X_, Z, t, U)
        errs.append(np.linalg.norm(S - ref) / np.linalg.norm(ref))
    return errs


def test_error_falls_as_k_grows(rng):
    X = rng.standard_normal((1500, 2)) * [1.0, 0.4]
    model = fit_moments(X)
    Z = X[:200] + 0.05 * rng.standard_normal((200, 2))
    t = 2 * model.spacing_
    errs = _errors(model, Z, t, 2 * t, [2, 4, 8, 16, 32, 64, 1500], "numpy")
    assert all(a >= b for a, b in zip(errs, errs[1:])), errs
    # K = n: every point a candidate of the index search's own barycentres (measured 2.4e-14)
    assert errs[0] > 1e-2 and errs[-1] < 1e-13, errs


def test_exact_when_k_is_n(rng):
    """The index search over all n points, NumPy and the numba kernel, is the exact estimator to rounding
    (measured relative errors 2.0e-15 and 2.4e-15)."""
    X = rng.standard_normal((300, 3))
    model = fit_moments(X)
    Z = rng.standard_normal((50, 3))
    for backend in ("numpy", "numba"):
        (err,) = _errors(model, Z, 0.3, 0.2, [300], backend)
        assert err < 1e-14, (backend, err)


def test_remainder_points_reduce_truncation_bias(rng):
    """With a wide kernel (t ≫ spacing), K nearest alone is biased; adding L random points with weight (n−K)/L helps."""
    X = rng.standard_normal((2000, 2))
    model = fit_moments(X)
    Z = rng.standard_normal((300, 2))
    t = 0.5
    ref = smoothed_score_exact(X, Z, t, np.zeros((1,) + Z.shape))
    err = {}
    for L in (0, 200):
        est = SmoothedScore(X, model.index_, sigma=0.0, K=16, L=L, backend="numpy")
        err[L] = np.linalg.norm(est(Z, t, np.random.default_rng(0)) - ref) / np.linalg.norm(ref)
    assert err[200] < 0.7 * err[0], err
