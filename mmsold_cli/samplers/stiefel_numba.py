r"""Fused numba kernels for MM-SOLD's manifold step and its moment check, for small d.

:func:`step` does in one pass per ensemble what :mod:`mmsold_cli.samplers.stiefel`
does in a dozen NumPy calls — centring, tangent projection and polar
retraction:

.. math::

    Y \leftarrow R\big(Y + \Pi_Y(D)\big), \qquad
    \Pi_Y(D) = \bar D - Y\,\mathrm{sym}(Y^\top \bar D)/P, \qquad
    R(\tilde Y) = C\,H^{-1/2},\quad C = \tilde Y - \mathbf 1\mathbf 1^\top\tilde Y/P,\ H = C^\top C/P

where
    * :math:`D` is the step's displacement (drift plus scaled noise; the
      projection is linear, so projecting their sum equals summing their projections),
    * :math:`P` the ensemble size, :math:`\bar D` the centred D.

:math:`H^{-1/2}` of the d × d Gram matrix comes from the coupled Newton–Schulz
iteration [1]_ (``Y_{k+1} = Y_k T_k``, ``Z_{k+1} = T_k Z_k``,
``T_k = (3I − Z_k Y_k)/2``, started from :math:`H/c`, :math:`c = \|H\|_F`),
run to rounding level, and the retraction is applied twice (the second time to
an almost orthogonal block) so the result sits on the manifold to rounding,
as the SVD of :func:`mmsold_cli.samplers.stiefel.retract` does.  A block too far from
orthogonal for the iteration (rank-deficient C) is flagged and left to the
SVD.  The NumPy functions stay the reference the tests compare with.

:func:`langevin_step` goes one step further for the LM and EM integrators: the
drift :math:`hSL`, the noise (its normals made in the kernel,
:mod:`mmsold_cli.rng.normals`) and the step above in one pass per ensemble, with
no (E, P, d) temporaries.

:func:`moment_error` is :func:`mmsold_cli.samplers.stiefel.moment_error` in one pass, and
:func:`to_z` is :func:`mmsold_cli.samplers.stiefel.to_z` row by row (NumPy's batched
matrix product spends 5 µs per 1,000 rows on a 2 × 2 factor).

References
----------
.. [1] N. J. Higham, "Functions of Matrices: Theory and Computation", SIAM,
   2008, Sec. 6.3 (the coupled Newton–Schulz iteration for the matrix square root and its inverse).
"""

from __future__ import annotations

import numpy as np

from .._numba import import_numba

numba = import_numba()

from ..rng.normals_numba import normals_at, source  # noqa: E402

__all__ = ["MAX_DIM", "step", "langevin_step", "moment_error", "to_z"]

#: Largest dimension the fused kernels handle (above it the d × d work is better left to LAPACK).
MAX_DIM = 8


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, inline="always", nogil=True)
def _product_into(A, B, W, out):
    """out ← A B for d × d blocks, through the scratch W (out may be A or B)."""
    d = A.shape[0]
    for a in range(d):
        for b in range(d):
            s = 0.0
            for k in range(d):
                s += A[a, k] * B[k, b]
            W[a, b] = s
    for a in range(d):
        for b in range(d):
            out[a, b] = W[a, b]


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, inline="always", nogil=True)
def _inv_sqrt(H, out, T, Yk, Zk, W):
    """out = H^{-1/2} for a symmetric positive definite d × d H; returns False if it did not converge."""
    d = H.shape[0]
    tr = 0.0
    fro = 0.0
    for a in range(d):
        tr += H[a, a]
        for b in range(d):
            fro += H[a, b] * H[a, b]
    fro = np.sqrt(fro)
    if not fro > 0.0:
        return False
    # scale so the eigenvalues lie in (0, 1]: by the mean eigenvalue when H is near a multiple of I
    # (the usual case: a few iterations), else by the Frobenius norm (any SPD H converges)
    c = tr / d
    dev = 0.0
    for a in range(d):
        for b in range(d):
            v = H[a, b] / c - (1.0 if a == b else 0.0)
            dev += v * v
    if not dev < 0.25:
        c = fro
    for a in range(d):
        for b in range(d):
            Yk[a, b] = H[a, b] / c
            Zk[a, b] = 1.0 if a == b else 0.0
    last = False
    for _ in range(100):
        err = 0.0
        for a in range(d):  # T = (3I - Z Y) / 2
            for b in range(d):
                s = 0.0
                for k in range(d):
                    s += Zk[a, k] * Yk[k, b]
                e = s - (1.0 if a == b else 0.0)
                err = max(err, abs(e))
                T[a, b] = -0.5 * e + (1.0 if a == b else 0.0)
        _product_into(Yk, T, W, Yk)  # Y <- Y T
        _product_into(T, Zk, W, Zk)  # Z <- T Z
        if last:
            break
        last = err < 1e-9  # quadratic convergence: one more iteration reaches rounding level
    else:
        return False
    sc = 1.0 / np.sqrt(c)
    for a in range(d):  # (H/c)^{-1/2} = sqrt(c) H^{-1/2}
        for b in range(d):
            out[a, b] = 0.5 * (Zk[a, b] + Zk[b, a]) * sc
    return True


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, inline="always", nogil=True)
def _centre_gram(C, H):
    """Centre the (P, d) block C in place; H = CᵀC/P.

    Innermost loops run over the rows with scalar accumulators (an array
    element accumulated in a loop would go through memory: numba cannot prove
    it does not alias C).
    """
    P, d = C.shape
    for k in range(d):
        s = 0.0
        for i in range(P):
            s += C[i, k]
        s /= P
        for i in range(P):
            C[i, k] -= s
    for a in range(d):
        for b in range(a, d):
            s = 0.0
            for i in range(P):
                s += C[i, a] * C[i, b]
            H[a, b] = s / P
            H[b, a] = s / P


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, inline="always", nogil=True)
def _apply(C, R, row):
    """C <- C R, row by row (R is d × d)."""
    P, d = C.shape
    for i in range(P):
        for b in range(d):
            s = 0.0
            for k in range(d):
                s += C[i, k] * R[k, b]
            row[b] = s
        for b in range(d):
            C[i, b] = row[b]


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, inline="always", nogil=True)
def _retract_step(y, g, c, mu, A, H, R, T, Yk, Zk, W, row):
    """c ← R(y + Π_y(g)) for one ensemble (y, g, c of shape (P, d)); False if the iteration cannot retract."""
    P, d = y.shape
    for k in range(d):  # column means of g
        s = 0.0
        for i in range(P):
            s += g[i, k]
        mu[k] = s / P
    for a in range(d):  # A = yᵀ ḡ (y is centred)
        for b in range(d):
            s = 0.0
            for i in range(P):
                s += y[i, a] * g[i, b]
            A[a, b] = s
    for a in range(d):  # sym(A)/P
        for b in range(a, d):
            v = 0.5 * (A[a, b] + A[b, a]) / P
            A[a, b] = v
            A[b, a] = v
    for i in range(P):  # ỹ = y + ḡ − y sym/P
        for b in range(d):
            s = y[i, b] + (g[i, b] - mu[b])
            for k in range(d):
                s -= y[i, k] * A[k, b]
            c[i, b] = s
    for _ in range(2):  # retract, then once more to rounding level
        _centre_gram(c, H)
        if not _inv_sqrt(H, R, T, Yk, Zk, W):
            return False
        _apply(c, R, row)
    return True


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, inline="always", nogil=True)
def _copy_into(src, dst):
    # a loop, not ``dst[...] = src``: numba's array assignment compiles a shape check whose error message
    # (string formatting) costs seconds of first-run compile time
    for i in range(src.shape[0]):
        for k in range(src.shape[1]):
            dst[i, k] = src[i, k]


@numba.njit(cache=True, nogil=True)
def _step(Y, D, out, ok, e0, e1):
    E, P, d = Y.shape
    mu, row = np.empty(d), np.empty(d)
    A, H, R, T = np.empty((d, d)), np.empty((d, d)), np.empty((d, d)), np.empty((d, d))
    Yk, Zk, W = np.empty((d, d)), np.empty((d, d)), np.empty((d, d))
    c = np.empty((P, d))  # built here, copied out on success: out may be Y, and a refused ensemble keeps Y[e]
    for e in range(e0, e1):
        ok[e] = _retract_step(Y[e], D[e], c, mu, A, H, R, T, Yk, Zk, W, row)
        if ok[e]:
            _copy_into(c, out[e])


@numba.njit(cache=True, nogil=True)
def _langevin_step(Y, S, L, h, lm, p0, p1, src, ok, e0, e1):
    E, P, d = Y.shape
    mu, row = np.empty(d), np.empty(d)
    A, H, R, T = np.empty((d, d)), np.empty((d, d)), np.empty((d, d)), np.empty((d, d))
    Yk, Zk, W = np.empty((d, d)), np.empty((d, d)), np.empty((d, d))
    c = np.empty((P, d))
    g = np.empty((P, d))
    xa = np.empty(P * d if lm else 0)
    xb = np.empty(P * d)
    Wz, Kz, Fz, k0, k1, j0 = src
    sq = np.sqrt(2.0 * h)
    for e in range(e0, e1):
        # this ensemble's normals: numbers j0 + e P d … j0 + (e + 1) P d − 1 of the key, as from_key of
        # shape (E, P, d) from j0; LM makes the previous step's ξ again from its key (p0, p1): no (E, P, d)
        # state between steps
        normals_at(Wz, Kz, Fz, k0, k1, j0 + e * P * d, xb, np.int64(0), P * d)
        if lm:
            normals_at(Wz, Kz, Fz, p0, p1, j0 + e * P * d, xa, np.int64(0), P * d)
        for i in range(P):
            for b in range(d):
                s = 0.0
                for k in range(d):
                    s += S[e, i, k] * L[k, b]
                xi = (xa[i * d + b] + xb[i * d + b]) * 0.5 if lm else xb[i * d + b]
                g[i, b] = xi * sq + s * h  # the displacement: the integrator's noise and drift (G = S L)
        ok[e] = _retract_step(Y[e], g, c, mu, A, H, R, T, Yk, Zk, W, row)
        if ok[e]:
            _copy_into(c, Y[e])


def step(Y, D, *, out=None):
    """:math:`R(Y + \\Pi_Y(D))` for every ensemble.

    Parameters
    ----------
    Y : array of shape (E, P, d), on the manifold
    D : array of shape (E, P, d), the step's displacement
    out : array of shape (E, P, d), optional
        Where the result goes (C-contiguous float64); ``out=Y`` steps Y in place: the state keeps one
        array for the whole run.  D is left unchanged either way.

    Returns
    -------
    Y : array of shape (E, P, d), on the manifold; ensembles the iteration
        could not retract (a rank-deficient block) are retracted by
        :func:`mmsold_cli.samplers.stiefel.retract` (SVD).
    """
    from .._threads import run_rows
    from . import stiefel

    in_place = out is Y and isinstance(Y, np.ndarray) and Y.flags.c_contiguous and Y.dtype == np.float64
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    D = np.ascontiguousarray(D, dtype=np.float64)
    given = out
    out = Y if in_place else np.empty_like(Y)
    ok = np.zeros(Y.shape[0], dtype=np.bool_)
    run_rows(_step, Y.shape[0], Y, D, out, ok, min_rows=max(1, 4096 // max(1, Y.shape[1])))
    if not ok.all():
        bad = ~ok
        out[bad] = stiefel.retract(Y[bad] + stiefel.project_tangent(Y[bad], D[bad]))
    if given is not None and given is not out:
        given[...] = out
        return given
    return out


def langevin_step(Y, S, h, chol, key, prev_key, start=0, *, lm=True):
    r"""One MM-SOLD step with the Leimkuhler–Matthews (``lm``) or Euler–Maruyama noise, fused, in place.

    For every ensemble, in one pass and without (E, P, d) temporaries:

    .. math::

        D = h\,S L + \sqrt{2h}\,\bar\xi, \qquad Y \leftarrow R\big(Y + \Pi_Y(D)\big)

    with :math:`\bar\xi = (\xi_{k} + \xi_{k+1})/2` (LM) or :math:`\xi_{k+1}` (EM), each ξ made in the
    kernel from its key (:mod:`mmsold_cli.rng.normals`).  Same numbers as
    :func:`mmsold_cli.samplers.integrators.leimkuhler_matthews` / ``euler_maruyama`` followed by :func:`step`
    on one chunk holding every ensemble.

    Parameters
    ----------
    Y : array of shape (E, P, d), C-contiguous float64, on the manifold; updated in place
    S : array of shape (E, P, d), the scores at Z = mean + Y Lᵀ
    h : float
    chol : array of shape (d, d), L
    key : array of 2 uint64, the key of this step's ξ
    prev_key : array of 2 uint64, the key of the previous step's ξ (LM; ignored by EM, may be None then):
        its normals are made again in the kernel, so the state between steps is 16 bytes, not an (E, P, d) array
    start : int
        The index of the first normal: coordinate k of row p (p over the E·P rows) is normal
        ``start + p d + k`` of each key, as :func:`mmsold_cli.rng.normals.from_key` of shape (E, P, d) from
        ``start`` — rows [a, b) of a larger batch, called with ``start = a d``, get the whole batch's numbers.
    lm : bool
    """
    from .._threads import run_rows
    from ..rng.normals import from_key
    from . import stiefel

    E, P, d = Y.shape
    if lm and prev_key is None:
        raise ValueError("langevin_step: the LM step needs prev_key, the key of the previous step's noise")
    S = np.ascontiguousarray(S, dtype=np.float64)
    L = np.ascontiguousarray(chol, dtype=np.float64)
    ok = np.zeros(E, dtype=np.bool_)
    prev = prev_key if lm else (0, 0)
    run_rows(_langevin_step, E, Y, S, L, float(h), bool(lm), np.uint64(prev[0]), np.uint64(prev[1]),
             source(key, start), ok, min_rows=max(1, 4096 // max(1, P)))
    for e in np.flatnonzero(~ok):  # a rank-deficient block: the SVD retraction (rare), same normals
        xi = from_key(key, (P, d), start=start + e * P * d)
        noise = (from_key(prev_key, (P, d), start=start + e * P * d) + xi) * 0.5 if lm else xi
        D = noise * np.sqrt(2.0 * h) + (S[e] @ L) * h
        Y[e] = stiefel.retract(Y[e] + stiefel.project_tangent(Y[e], D))


@numba.njit(cache=True, nogil=True)
def _moments(Y, L, c, cov, me, ce, e0, e1):
    # the moments of Z = c' + Y Lᵀ from those of Y: mean error ‖L ȳ + c‖, covariance L C_Y Lᵀ
    E, P, d = Y.shape
    mu = np.empty(d)
    C = np.empty((d, d))
    T = np.empty((d, d))
    tr = 0.0
    nc = 0.0
    for a in range(d):
        tr += cov[a, a]
        for b in range(d):
            nc += cov[a, b] * cov[a, b]
    for e in range(e0, e1):
        y = Y[e]
        for k in range(d):
            mu[k] = 0.0
        for i in range(P):
            for k in range(d):
                mu[k] += y[i, k]
        for k in range(d):
            mu[k] /= P
        for a in range(d):
            for b in range(d):
                C[a, b] = 0.0
        for i in range(P):
            for a in range(d):
                va = y[i, a] - mu[a]
                for b in range(a, d):
                    C[a, b] += va * (y[i, b] - mu[b])
        for a in range(d):
            for b in range(a, d):
                C[a, b] /= P
                C[b, a] = C[a, b]
        s = 0.0
        for a in range(d):
            v = c[a]
            for k in range(d):
                v += L[a, k] * mu[k]
            s += v * v
        me[e] = np.sqrt(s / tr)
        for a in range(d):  # T = L C
            for b in range(d):
                v = 0.0
                for k in range(d):
                    v += L[a, k] * C[k, b]
                T[a, b] = v
        s = 0.0
        for a in range(d):  # (L C Lᵀ − Σ) over the upper triangle, off-diagonal terms twice
            for b in range(a, d):
                v = -cov[a, b]
                for k in range(d):
                    v += T[a, k] * L[b, k]
                s += v * v if a == b else 2.0 * v * v
        ce[e] = np.sqrt(s / nc)


def _moment_errors(Y, L, c, cov):
    from .._threads import run_rows

    Y = np.ascontiguousarray(Y, dtype=np.float64)
    E = Y.shape[0]
    me = np.empty(E)
    ce = np.empty(E)
    run_rows(_moments, E, Y, np.ascontiguousarray(L, dtype=np.float64), np.ascontiguousarray(c, dtype=np.float64),
             np.ascontiguousarray(cov, dtype=np.float64), me, ce, min_rows=max(1, 4096 // max(1, Y.shape[1])))
    return me, ce


def moment_error(Z, mean, cov):
    """:func:`mmsold_cli.samplers.stiefel.moment_error` in one pass per ensemble: (mean_err, cov_err), each of shape (E,)."""
    d = Z.shape[-1]
    return _moment_errors(Z, np.eye(d), -np.asarray(mean, dtype=np.float64), cov)


def moment_error_y(Y, chol, cov):
    """:func:`mmsold_cli.samplers.stiefel.moment_error_y` in one pass per ensemble: (mean_err, cov_err), each of shape (E,)."""
    return _moment_errors(Y, chol, np.zeros(Y.shape[-1]), cov)


@numba.njit(cache=True, nogil=True)
def _affine(A, M, shift, out, r0, r1):
    d = A.shape[1]
    e = M.shape[1]
    for i in range(r0, r1):
        for b in range(e):
            s = shift[b]
            for k in range(d):
                s += A[i, k] * M[k, b]
            out[i, b] = s


def to_z(Y, mean, chol):
    """:func:`mmsold_cli.samplers.stiefel.to_z`, :math:`Z = \\mathbf 1\\mu^\\top + Y L^\\top`: array of the shape of Y."""
    from .._threads import run_rows

    Y = np.ascontiguousarray(Y, dtype=np.float64)
    A = Y.reshape(-1, Y.shape[-1])
    out = np.empty_like(A)
    run_rows(_affine, A.shape[0], A, np.ascontiguousarray(np.asarray(chol, dtype=np.float64).T),
             np.ascontiguousarray(mean, dtype=np.float64), out, min_rows=8192)
    return out.reshape(Y.shape)
