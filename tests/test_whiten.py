"""Partial whitening: the spectrum it leaves (top K unchanged, the rest flattened to the (K+1)-th) and its inverse."""

import numpy as np

from mmsold_cli.workflows.whiten import fit_whitening, unwhiten, whiten


def test_spectrum_after_whitening_and_round_trip():
    rng = np.random.default_rng(0)
    d, n, k = 6, 4000, 2
    scales = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.2])
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = (rng.standard_normal((n, d)) * scales) @ Q.T + 3.0
    w = fit_whitening(X, k, eps=0.0)
    lam = np.sort(np.linalg.eigvalsh(np.cov(X, rowvar=False)))[::-1]
    W = whiten(X, w)
    got = np.sort(np.linalg.eigvalsh(np.cov(W, rowvar=False)))[::-1]
    np.testing.assert_allclose(got[:k], lam[:k], rtol=1e-9)  # the top K are not whitened
    np.testing.assert_allclose(got[k:], lam[k], rtol=1e-9)  # the rest flattened to the (K+1)-th
    np.testing.assert_allclose(w.spectrum, got, rtol=1e-9)
    np.testing.assert_allclose(unwhiten(W, w), X, rtol=0, atol=1e-10)
    np.testing.assert_allclose(W.mean(axis=0), 0.0, atol=1e-10)
