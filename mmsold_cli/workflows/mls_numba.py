"""Numba kernel of one MLS projection pass (:func:`mmsold_cli.workflows.densify._mls_once`).

The same fit point by point: weights, weighted centroid and covariance, its
eigenvectors (a cyclic Jacobi iteration on the 3 × 3 matrix), the weighted
quadratic height fit (a 6 × 6 Cholesky solve of the same regularised normal
equations) and the clipped projection.  The batched NumPy version spends most
of its time in per-matrix LAPACK calls and (m, k, 6) temporaries; here each
point's work stays in a few registers' worth of scratch.  A serial ``nogil``
kernel over a range of rows; :func:`~mmsold_cli._threads.run_rows` spreads
the rows over threads.  The NumPy version stays the reference the tests
compare against.
"""

from __future__ import annotations

import numpy as np

from .._numba import import_numba

numba = import_numba()

from .._threads import run_rows  # noqa: E402

__all__ = ["mls_once_numba"]


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, inline="always", nogil=True)
def _eig3(A, V, lam):
    """Eigen-decomposition of the symmetric 3 × 3 ``A`` (destroyed): ascending ``lam``, vectors in V's columns."""
    for i in range(3):
        for j in range(3):
            V[i, j] = 1.0 if i == j else 0.0
    scale = abs(A[0, 0]) + abs(A[1, 1]) + abs(A[2, 2]) + 1e-300
    for _ in range(32):
        off = abs(A[0, 1]) + abs(A[0, 2]) + abs(A[1, 2])
        if off <= 1e-17 * scale:
            break
        for p in range(2):
            for q in range(p + 1, 3):
                apq = A[p, q]
                if abs(apq) <= 1e-300:
                    continue
                theta = (A[q, q] - A[p, p]) / (2.0 * apq)
                t = 1.0 / (abs(theta) + np.sqrt(theta * theta + 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / np.sqrt(t * t + 1.0)
                s = t * c
                for r in range(3):
                    arp = A[r, p]
                    arq = A[r, q]
                    A[r, p] = c * arp - s * arq
                    A[r, q] = s * arp + c * arq
                for r in range(3):
                    apr = A[p, r]
                    aqr = A[q, r]
                    A[p, r] = c * apr - s * aqr
                    A[q, r] = s * apr + c * aqr
                for r in range(3):
                    vrp = V[r, p]
                    vrq = V[r, q]
                    V[r, p] = c * vrp - s * vrq
                    V[r, q] = s * vrp + c * vrq
    for i in range(3):
        lam[i] = A[i, i]
    for i in range(2):  # sort ascending (three entries: a selection sort)
        m = i
        for j in range(i + 1, 3):
            if lam[j] < lam[m]:
                m = j
        if m != i:
            tmp = lam[i]
            lam[i] = lam[m]
            lam[m] = tmp
            for r in range(3):
                tmp = V[r, i]
                V[r, i] = V[r, m]
                V[r, m] = tmp


@numba.njit(cache=True, nogil=True)
def _mls_rows(Z, X, idx, d2, h, out, resid, r0, r1):
    k = idx.shape[1]
    w = np.empty(k)
    D = np.empty((k, 3))
    B = np.empty((k, 6))
    hg = np.empty(k)
    C = np.empty((3, 3))
    V = np.empty((3, 3))
    lam = np.empty(3)
    G = np.empty((6, 6))
    rhs = np.empty(6)
    coef = np.empty(6)
    c = np.empty(3)
    ih2 = 1.0 / (h * h)
    for i in range(r0, r1):
        d0 = d2[i, 0]
        for j in range(1, k):
            d0 = min(d0, d2[i, j])
        s = 0.0
        for j in range(k):
            w[j] = np.exp(-(d2[i, j] - d0) * ih2)
            s += w[j]
        for j in range(k):
            w[j] /= s
        for a in range(3):
            c[a] = 0.0
        for j in range(k):
            x = idx[i, j]
            for a in range(3):
                c[a] += w[j] * X[x, a]
        for a in range(3):
            for b in range(3):
                C[a, b] = 0.0
        for j in range(k):
            x = idx[i, j]
            for a in range(3):
                D[j, a] = X[x, a] - c[a]
            for a in range(3):
                wa = w[j] * D[j, a]
                for b in range(a, 3):
                    C[a, b] += wa * D[j, b]
        C[1, 0] = C[0, 1]
        C[2, 0] = C[0, 2]
        C[2, 1] = C[1, 2]
        _eig3(C, V, lam)
        # normal: smallest eigenvalue's vector; tangents e1 (largest) and e2
        hmin = 1e300
        hmax = -1e300
        for j in range(k):
            u = (D[j, 0] * V[0, 2] + D[j, 1] * V[1, 2] + D[j, 2] * V[2, 2]) / h
            v = (D[j, 0] * V[0, 1] + D[j, 1] * V[1, 1] + D[j, 2] * V[2, 1]) / h
            g = D[j, 0] * V[0, 0] + D[j, 1] * V[1, 0] + D[j, 2] * V[2, 0]
            hg[j] = g
            hmin = min(hmin, g)
            hmax = max(hmax, g)
            B[j, 0] = 1.0
            B[j, 1] = u
            B[j, 2] = v
            B[j, 3] = u * u
            B[j, 4] = u * v
            B[j, 5] = v * v
        for a in range(6):
            rhs[a] = 0.0
            for b in range(6):
                G[a, b] = 1e-6 if a == b else 0.0
        for j in range(k):
            for a in range(6):
                wa = w[j] * B[j, a]
                rhs[a] += wa * hg[j]
                for b in range(a, 6):
                    G[a, b] += wa * B[j, b]
        # Cholesky G = L Lᵀ in the lower triangle, then two triangular solves
        for a in range(6):
            for b in range(a):
                G[a, b] = G[b, a]
        for a in range(6):
            for b in range(a + 1):
                acc = G[a, b]
                for q in range(b):
                    acc -= G[a, q] * G[b, q]
                if a == b:
                    G[a, a] = np.sqrt(max(acc, 1e-300))
                else:
                    G[a, b] = acc / G[b, b]
        for a in range(6):
            acc = rhs[a]
            for q in range(a):
                acc -= G[a, q] * coef[q]
            coef[a] = acc / G[a, a]
        for a in range(5, -1, -1):
            acc = coef[a]
            for q in range(a + 1, 6):
                acc -= G[q, a] * coef[q]
            coef[a] = acc / G[a, a]
        r2 = 0.0
        for j in range(k):
            f = 0.0
            for a in range(6):
                f += B[j, a] * coef[a]
            r2 += w[j] * (hg[j] - f) ** 2
        resid[i] = np.sqrt(r2)
        uz = 0.0
        vz = 0.0
        for a in range(3):
            zc = Z[i, a] - c[a]
            uz += zc * V[a, 2]
            vz += zc * V[a, 1]
        uz /= h
        vz /= h
        f = coef[0] + coef[1] * uz + coef[2] * vz + coef[3] * uz * uz + coef[4] * uz * vz + coef[5] * vz * vz
        f = min(max(f, hmin - 0.25 * h), hmax + 0.25 * h)
        for a in range(3):
            out[i, a] = c[a] + uz * h * V[a, 2] + vz * h * V[a, 1] + f * V[a, 0]


def mls_once_numba(Z, X, idx, d2, h):
    """One MLS pass, as :func:`mmsold_cli.workflows.densify._mls_once`: (projected points, residuals)."""
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    X = np.ascontiguousarray(X, dtype=np.float64)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    d2 = np.ascontiguousarray(d2, dtype=np.float64)
    out = np.empty_like(Z)
    resid = np.empty(Z.shape[0])
    run_rows(_mls_rows, Z.shape[0], Z, X, idx, d2, float(h), out, resid)
    return out, resid
