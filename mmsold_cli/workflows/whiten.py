r"""Partial whitening of a latent space, as the MM-SOLD authors do before sampling.

With the training codes' covariance :math:`S = V\operatorname{diag}(\lambda)V^\top` (unbiased,
:math:`1/(n-1)`; eigenvalues clipped at 0 and raised by ``eps``), sorted
:math:`\lambda_1 \ge \dots \ge \lambda_d` and :math:`\tau = \lambda_{K+1}`, the map is

.. math::

    z \mapsto (z - \bar z)\, V \operatorname{diag}(\ell)^{-1/2} V^\top, \qquad
    \ell_i = \frac{\min(\lambda_i, \tau)}{\tau} \ \ (i \le K), \quad \ell_i = \frac{\lambda_i}{\tau} \ \ (i > K),

i.e. :math:`\ell_i = 1` for the top K and :math:`\lambda_i/\tau` below.  **What it does to the
spectrum:** the whitened codes' covariance has eigenvalues :math:`\lambda_i/\ell_i`: the top K keep
their values :math:`\lambda_1, \dots, \lambda_K` unchanged, and every other direction is scaled to
the same value :math:`\tau = \lambda_{K+1}`.  So the leading K directions are *not* whitened; the
tail is flattened to the (K+1)-th eigenvalue.  (The authors' docstring describes the numbers
:math:`\ell` — "the top-k eigenvalues capped at the (k+1)-th, then rescaled so that it becomes
1" — which are those of the matrix whose inverse square root is applied, not the spectrum of the
whitened data.)  Samples are mapped back by :math:`z = w\,V\operatorname{diag}(\ell)^{1/2}V^\top + \bar z`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import MmsoldError

__all__ = ["Whitening", "fit_whitening", "whiten", "unwhiten", "to_extras", "from_extras", "has_whitening"]

_KEYS = ("whiten_mean", "whiten_sqrt", "whiten_invsqrt", "whiten_spectrum")


class Whitening(NamedTuple):
    """The map's mean (d,), its matrices S^{1/2} and S^{-1/2} (d, d) and the whitened spectrum (descending)."""

    mean: np.ndarray
    sqrt: np.ndarray
    invsqrt: np.ndarray
    spectrum: np.ndarray


def fit_whitening(X, k: int, *, eps: float = 1e-5) -> Whitening:
    """The partial whitening of the module for codes X (n, d), top ``k`` directions kept."""
    from ..validation import check_int

    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    k = check_int(k, "whiten K", low=0, high=d - 1)
    mean = X.mean(axis=0)
    Xc = X - mean
    S = Xc.T @ Xc / max(n - 1, 1)
    lam, V = np.linalg.eigh(S)  # ascending
    lam = np.maximum(lam, 0.0) + eps
    desc = lam[::-1]
    tau = desc[k]
    ell = (np.where(np.arange(d) < k, tau, desc) / tau)[::-1]  # back to ascending
    sqrt = (V * np.sqrt(ell)) @ V.T
    invsqrt = (V / np.sqrt(ell)) @ V.T
    return Whitening(mean, sqrt, invsqrt, np.sort(lam / ell)[::-1])


def whiten(X, w: Whitening) -> np.ndarray:
    return (np.asarray(X, dtype=np.float64) - w.mean) @ w.invsqrt


def unwhiten(W, w: Whitening) -> np.ndarray:
    return np.asarray(W, dtype=np.float64) @ w.sqrt + w.mean


def to_extras(w: Whitening) -> dict:
    return dict(zip(_KEYS, w))


def has_whitening(model) -> bool:
    return all(k in getattr(model, "extras_", {}) for k in _KEYS)


def from_extras(extras: dict) -> Whitening:
    try:
        return Whitening(*(np.asarray(extras[k], dtype=np.float64) for k in _KEYS))
    except KeyError as exc:
        raise MmsoldError(f"the model's whitening is incomplete: missing {exc.args[0]}") from None
