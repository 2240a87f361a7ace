r"""The centred, scaled Stiefel manifold that carries MM-SOLD's ensembles.

.. math::

    \mathcal M = \{ Y \in \mathbb R^{P\times d} : \mathbf 1^\top Y = 0,\;
                    Y^\top Y = P I_d \}

Every ensemble :math:`Z = \mathbf 1 \hat\mu^\top + Y L^\top` with
:math:`Y\in\mathcal M` and :math:`L L^\top = \hat\Sigma` has empirical mean
:math:`\hat\mu` and empirical covariance :math:`\frac1P (Z-\mathbf 1\hat\mu^\top)^\top(Z-\mathbf 1\hat\mu^\top)
= L \tfrac{Y^\top Y}{P} L^\top = \hat\Sigma` exactly [1]_.

where
    * :math:`P` is the ensemble size (must exceed :math:`d`),
    * :math:`L` the lower Cholesky factor of the target covariance.

All functions take stacks of ensembles, arrays of shape (E, P, d), and work on
each ensemble independently.

References
----------
.. [1] Z. Yao, D. Paulin, "Training-Free Generative Sampling via Moment-Matched
   Score Smoothing", arXiv:2605.14276, 2026 (Sec. 3, eq. 34).
.. [2] P.-A. Absil, R. Mahony, R. Sepulchre, "Optimization Algorithms on Matrix
   Manifolds", Princeton, 2008 (polar retraction, Sec. 4.1).
.. [3] N. J. Higham, "Functions of Matrices: Theory and Computation", SIAM,
   2008, Sec. 6.3 (the coupled Newton–Schulz iteration for the matrix square root and its inverse).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "centre",
    "project_tangent",
    "retract",
    "step",
    "uniform",
    "to_y",
    "to_z",
    "moment_error",
    "moment_error_y",
]


def centre(Y: np.ndarray) -> np.ndarray:
    """Subtract each ensemble's column means: array of shape (E, P, d)."""
    return Y - Y.mean(axis=-2, keepdims=True)


def project_tangent(Y: np.ndarray, G: np.ndarray) -> np.ndarray:
    r"""Project ``G`` on the tangent space of :math:`\mathcal M` at ``Y``.

    .. math:: \Pi_Y(G) = \bar G - Y\,\mathrm{sym}(Y^\top \bar G)/P,
              \qquad \bar G = G - \mathbf 1 \mathbf 1^\top G / P

    The result is centred and satisfies :math:`Y^\top\Pi + \Pi^\top Y = 0`.

    Parameters
    ----------
    Y : array of shape (E, P, d), on the manifold
    G : array of shape (E, P, d)
    """
    P = Y.shape[-2]
    Gc = centre(G)
    A = np.matmul(np.swapaxes(Y, -1, -2), Gc)
    sym = 0.5 * (A + np.swapaxes(A, -1, -2))
    return Gc - np.matmul(Y, sym) / P


def retract(Y: np.ndarray) -> np.ndarray:
    r"""Polar retraction onto :math:`\mathcal M`.

    .. math:: R(\tilde Y) = \sqrt P\, C (C^\top C)^{-1/2}, \qquad C = \tilde Y - \mathbf 1\mathbf 1^\top\tilde Y/P

    The polar factor is the closest point of :math:`\mathcal M` to
    :math:`C` in Frobenius norm, so points already on :math:`\mathcal M`
    are returned unchanged (to rounding).  Computed from the SVD of the
    centred block, which keeps full precision even when :math:`C` is far
    from orthogonal (a Gram-matrix eigendecomposition would square its
    condition number).

    Parameters
    ----------
    Y : array of shape (E, P, d)

    Returns
    -------
    Y : array of shape (E, P, d), on the manifold
    """
    C = centre(Y)
    U, _, Vt = np.linalg.svd(C, full_matrices=False)
    return np.sqrt(C.shape[-2]) * np.matmul(U, Vt)


def step(Y: np.ndarray, D: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    r"""One manifold step :math:`R(Y + \Pi_Y(D))`: array of shape (E, P, d).

    The reference for the fused kernel :func:`mmsold_cli.samplers.stiefel_numba.step`.

    Parameters
    ----------
    Y : array of shape (E, P, d), on the manifold
    D : array of shape (E, P, d), the displacement (drift plus scaled noise)
    out : array of shape (E, P, d), optional
        Where the result goes.  ``out=Y`` steps Y in place, one ensemble at a time, using D as workspace
        (both C-contiguous float64 arrays of one shape): no temporary larger than (P, d); the same
        formulas, results differ from a new array's by rounding only.
    """
    ok = all(isinstance(A, np.ndarray) and A.flags.c_contiguous and A.dtype == np.float64 for A in (Y, D))
    if not (out is Y and ok and D.shape == Y.shape):
        res = retract(Y + project_tangent(Y, D))
        if out is None:
            return res
        out[...] = res
        return out
    P = Y.shape[-2]
    for y, g in zip(Y.reshape(-1, *Y.shape[-2:]), D.reshape(-1, *D.shape[-2:])):
        g -= g.mean(axis=0)  # Ḡ
        A = y.T @ g
        g -= y @ ((0.5 / P) * (A + A.T))  # Π_Y(G)
        g += y
        g -= g.mean(axis=0)  # C of the retraction
        _polar_into(g, y, np.sqrt(P))
    return Y


#: Largest ‖CᵀC/P − I‖_F from which :func:`_polar_into` iterates to the polar factor (Newton–Schulz).
NS_START = 0.25

#: :func:`_polar_into` ends with the series to R^q when ‖R‖_F is below the q-th limit: the first term left
#: out, c_(q+1) ‖R‖^(q+1) with c = 3/8, 5/16, 35/128, is then below 1e-16.
_SERIES_LIMITS = (1.6e-8, 6.8e-6, 1.4e-4)

#: Largest condition number of CᵀC for which the polar factor is taken from its eigendecomposition (see
#: :func:`_polar_into`).
GRAM_COND = 1e4


def _polar_into(C: np.ndarray, out: np.ndarray, scale: float = 1.0) -> None:
    r"""``scale`` times the polar factor :math:`C (C^\top C)^{-1/2}` of a (P, d) block, into ``out``.

    After a step C is a small move away from a block of the manifold:
    :math:`H = C^\top C / P = I + E` with :math:`\|E\|_F` of 0.03–0.09 (spectral norm 0.003–0.03) along latent
    runs.  The coupled Newton–Schulz iteration [3]_ takes :math:`Z_k` to :math:`H^{-1/2}`; each round measures
    its residual :math:`R_k = I - Z_k Y_k` (:math:`Z_0 = I`, :math:`Y_0 = H`, so :math:`R_0 = I - H`) and,
    since :math:`H^{-1/2} = Z_k (I - R_k)^{-1/2}`, multiplies by the binomial series of :math:`(I - R)^{-1/2}`,

    .. math::

        T_k = I + \tfrac12 R_k + \tfrac38 R_k^2 + \tfrac5{16} R_k^3, \qquad Z_{k+1} = T_k Z_k, \qquad
        Y_{k+1} = Y_k T_k,

    cut after the first power (the Newton–Schulz step, :math:`T_k = (3I - Z_k Y_k)/2`, whose residual is
    about :math:`\tfrac34 R_k^2`) until the terms left out, from :math:`c_{q+1}\|R_k\|_F^{q+1}`, fall below
    1e-16; then the round with q = 1, 2 or 3 terms is the last.  The residual is measured rather than
    predicted from :math:`\|E\|_F`, which bounds the spectral norm loosely when E's spectrum is spread (at
    784-D ‖E‖_F is ten times ‖E‖₂): a raw-pixel step takes 6 d × d products instead of 9.  At d = 256 and
    above these products cost less than the eigendecomposition (which LAPACK cannot spread over threads as
    well).  Farther from the manifold (:math:`\|E\|_F \ge` ``NS_START``) the factor comes from the
    eigenvectors of :math:`C^\top C`, whose rounding grows with cond(CᵀC) = cond(C)², so a block with
    cond(CᵀC) > ``GRAM_COND`` (error above ~1e-12) takes the SVD instead.
    """
    P, d = C.shape
    G = C.T @ C
    H = G * (1.0 / P)
    eye = np.eye(d)
    R = eye - H
    err = float(np.linalg.norm(R))
    if err < NS_START:
        Yk, Zk = H, None
        while True:
            q = next((q for q, limit in enumerate(_SERIES_LIMITS, 1) if err < limit), 0)
            T = eye + 0.5 * R
            if q >= 2:
                Rj = R @ R
                T += 0.375 * Rj
                if q == 3:
                    T += 0.3125 * (Rj @ R)
            Zk = T if Zk is None else T @ Zk
            if q:
                break
            Yk = Yk @ T
            R = eye - Zk @ Yk
            err = float(np.linalg.norm(R))
        Zk *= scale / np.sqrt(P)  # H^(-1/2) / √P = (CᵀC)^(-1/2)
        np.matmul(C, Zk, out=out)
        return
    lam, V = np.linalg.eigh(G)
    if lam[0] > 0 and lam[-1] < GRAM_COND * lam[0]:
        V *= np.sqrt(scale) / np.sqrt(np.sqrt(lam))  # √scale V Λ^(-1/4): its square is scale (CᵀC)^(-1/2)
        np.matmul(C, V @ V.T, out=out)
        return
    U, _, Vt = np.linalg.svd(C, full_matrices=False)
    np.matmul(U * scale, Vt, out=out)


def uniform(E: int, P: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Draws from the uniform (Haar) law on :math:`\\mathcal M`: array of shape (E, P, d).

    The polar factor of a Gaussian matrix is Haar-distributed on the Stiefel
    manifold; centring first restricts it to the centred sub-manifold.
    """
    if P <= d:
        raise ValueError(f"ensemble size P must exceed the dimension d={d}, got P={P}")
    return retract(rng.standard_normal((E, P, d)))


def to_y(Z: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    r""":math:`Y = (Z - \mathbf 1\mu^\top) L^{-\top}`, for Z of shape (..., P, d).

    A (d, r) factor over a covariance's support (:func:`mmsold_cli.sampling.support_factor`) gives Y of
    shape (..., P, r), the least-squares coordinates :math:`(Z - \mathbf 1\mu^\top) L (L^\top L)^{-1}`:
    what Z has across the support is dropped.  A diagonal factor is given as its diagonal, shape (d,).
    """
    if chol.ndim == 1:
        return (Z - mean) / chol
    if Z.ndim > 2:  # one ensemble at a time: BLAS rounds a column differently by where it falls among the others,
        out = np.empty(Z.shape[:-1] + (chol.shape[1],))  # and an ensemble's numbers must not depend on its batch
        for e in np.ndindex(Z.shape[:-2]):
            out[e] = to_y(Z[e], mean, chol)
        return out
    if chol.shape[0] != chol.shape[1]:
        B = (Z - mean) @ chol
        return np.linalg.solve(chol.T @ chol, B.reshape(-1, chol.shape[1]).T).T.reshape(B.shape)
    shape = Z.shape
    B = np.array((Z - mean).reshape(-1, shape[-1]).T)  # (d, N); solved in place row by row
    # forward substitution L Yᵀ = B: d vector operations, no import of scipy.linalg (0.2 s) at start-up
    for i in range(shape[-1]):
        if i:
            B[i] -= chol[i, :i] @ B[:i]
        B[i] /= chol[i, i]
    return B.T.reshape(shape)


def to_z(Y: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    r""":math:`Z = \mathbf 1\mu^\top + Y L^\top`, for Y of shape (..., P, d); L of shape (d,): its diagonal."""
    Z = Y * chol if chol.ndim == 1 else np.matmul(Y, chol.T)
    Z += mean
    return Z


def moment_error(Z: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relative errors of each ensemble's mean and covariance.

    Parameters
    ----------
    Z : array of shape (E, P, d)
    mean : array of shape (d,)
    cov : array of shape (d, d)

    Returns
    -------
    mean_err, cov_err : arrays of shape (E,)
        :math:`\\|\\bar z - \\mu\\| / \\sqrt{\\mathrm{tr}\\,\\Sigma}` and
        :math:`\\|C - \\Sigma\\|_F / \\|\\Sigma\\|_F` with C the (1/P) covariance.
    """
    m, C = _ensemble_moments(Z)
    return _relative_errors(m - mean, C, cov)


def _ensemble_moments(Z):
    """Each ensemble's mean (E, d) and (1/P) covariance (E, d, d)."""
    m = Z.mean(axis=-2)
    Zc = Z - m[..., None, :]
    return m, np.matmul(np.swapaxes(Zc, -1, -2), Zc) / Z.shape[-2]


def _relative_errors(dm, C, cov):
    return (np.linalg.norm(dm, axis=-1) / np.sqrt(np.trace(cov)),
            np.linalg.norm(C - cov, axis=(-2, -1)) / np.linalg.norm(cov))


def moment_error_y(Y: np.ndarray, chol: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r""":func:`moment_error` of the particles :math:`Z = \mathbf 1\mu^\top + Y L^\top`, from Y without forming Z.

    .. math::

        \bar z - \mu = L\,\bar y, \qquad C_Z = L\,C_Y L^\top

    A (d, r) factor over a singular covariance's support,
    :math:`L = U_r\Lambda_r^{1/2}` (:func:`mmsold_cli.sampling.support_factor`), has orthogonal columns,
    so with :math:`\Sigma = L L^\top` the covariance error needs no d × d product:

    .. math::

        \|C_Z - \Sigma\|_F = \|U_r \Lambda_r^{1/2}(C_Y - I)\Lambda_r^{1/2} U_r^\top\|_F
        = \big(\textstyle\sum_{ij} \lambda_i \lambda_j (C_Y - I)_{ij}^2\big)^{1/2}

    Parameters
    ----------
    Y : array of shape (E, P, d), or (E, P, r) with a support factor
    chol : array of shape (d, d), L; or (d, r), a support factor; or (d,), a diagonal L (orthogonal columns
        too, :math:`\lambda = L^2`)
    cov : array of shape (d, d), the target :math:`\Sigma` (:math:`L L^\top` for a support factor)

    Returns
    -------
    mean_err, cov_err : arrays of shape (E,), as :func:`moment_error` of Z against (μ, Σ)
    """
    m, C = _ensemble_moments(Y)
    if chol.ndim == 2 and chol.shape[0] == chol.shape[1]:
        return _relative_errors(m @ chol.T, chol @ C @ chol.T, cov)
    root = np.abs(chol) if chol.ndim == 1 else np.sqrt(np.einsum("dr,dr->r", chol, chol))  # λ^(1/2)
    C -= np.eye(C.shape[-1])
    C *= root[:, None]
    C *= root
    mean_z = m * chol if chol.ndim == 1 else m @ chol.T
    return (np.linalg.norm(mean_z, axis=-1) / np.sqrt(np.trace(cov)),
            np.linalg.norm(C, axis=(-2, -1)) / np.linalg.norm(cov))
