"""The numba kernel of :mod:`mmsold_cli.rng.normals`: Philox4x64-10 words turned into ziggurat normals.

Philox's 64 × 64 → 128-bit products are one LLVM ``i128`` multiply (one
``mul`` instruction on x86-64) instead of four 32-bit products.  The
kernel is serial and ``nogil``; :func:`fill` spreads ranges of the output over
threads with :func:`~mmsold_cli._threads.run_rows`.  Plain arrays only,
so ``cache=True`` holds across processes.
"""

from __future__ import annotations

import numpy as np

from .._numba import import_numba

numba = import_numba()

from llvmlite import ir  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from .normals import _F, _K, _W, ZIGGURAT_R  # noqa: E402

__all__ = ["fill", "fill_mean", "normals_at", "philox_block", "source", "kernel_draws", "draws_of"]

_M0 = np.uint64(0xD2E7470EE14C6C93)
_M1 = np.uint64(0xCA5A826395121157)
_W0 = np.uint64(0x9E3779B97F4A7C15)
_W1 = np.uint64(0xBB67AE8584CAA73B)
_U8 = np.uint64(8)
_U11 = np.uint64(11)
_U255 = np.uint64(255)
_U1 = np.uint64(1)
_INV_MANT = 1.0 / 2.0**53


@intrinsic
def _mulhilo(typingctx, a, b):
    """(high, low) 64-bit halves of the 128-bit product of two uint64."""
    u64 = numba.types.uint64
    sig = numba.types.UniTuple(u64, 2)(u64, u64)

    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        p = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        lo = builder.trunc(p, ir.IntType(64))
        hi = builder.trunc(builder.lshr(p, ir.Constant(i128, 64)), ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, (hi, lo))

    return sig, codegen


# inlined: the ten rounds are cheap to compile, and a call per block in normals_at's loop costs ~10 % of the
# sampling time
@numba.njit(cache=True, nogil=True, inline="always")
def philox_block(c0, c1, c2, c3, k0, k1):
    """Philox4x64-10 of the counter (c0, c1, c2, c3) under the key (k0, k1): four uint64 words."""
    for _ in range(10):
        h0, l0 = _mulhilo(_M0, c0)
        h1, l1 = _mulhilo(_M1, c2)
        c0, c1, c2, c3 = h1 ^ c1 ^ k0, l1, h0 ^ c3 ^ k1, l0
        k0 = k0 + _W0
        k1 = k1 + _W1
    return c0, c1, c2, c3


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, inline="always", nogil=True)
def _extra_word(k0, k1, j, n):
    """Extra word n of normal j: word n mod 4 of block (n div 4, j, 1, 0) (a block per word: the slow path is rare)."""
    ws = philox_block(np.uint64(n // 4), np.uint64(j), np.uint64(1), np.uint64(0), k0, k1)
    return ws[n % 4]


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, inline="always", nogil=True)
def _slow(W, K, F, k0, k1, j, u):
    """Normal j whose first word u missed the fast path: the tail, the wedge test, retries (no allocation)."""
    n = np.int64(0)  # extra words used so far (np.int64: a literal 0 would compile _extra_word twice)
    while True:
        i = np.intp(u & _U255)
        neg = (u >> _U8) & _U1
        m = np.int64(u >> _U11)
        x = np.float64(m) * W[i]
        if m < K[i]:
            break
        if i == 0:
            while True:
                a = -np.log(1.0 - np.float64(_extra_word(k0, k1, j, n) >> _U11) * _INV_MANT) / ZIGGURAT_R
                e = -np.log(1.0 - np.float64(_extra_word(k0, k1, j, n + 1) >> _U11) * _INV_MANT)
                n += 2
                if 2.0 * e > a * a:
                    break
            x = ZIGGURAT_R + a
            break
        y = F[i] + np.float64(_extra_word(k0, k1, j, n) >> _U11) * _INV_MANT * (F[i + 1] - F[i])
        n += 1
        if y < np.exp(-0.5 * x * x):
            break
        u = _extra_word(k0, k1, j, n)
        n += 1
    return -x if neg else x


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, inline="always", nogil=True)
def normals_at(W, K, F, k0, k1, j0, out, r0, r1):
    """``out[j] =`` normal number ``j0 + j`` of the key (k0, k1), for j in [r0, r1).

    Inlined into each kernel that calls it (see :mod:`mmsold_cli._numba`, "Callees"), which costs compile
    time once.  Callers pass constants as ``np.int64(0)``: a literal 0 would compile a second specialisation.
    """
    zero = np.uint64(0)
    # Pass 1, branch-free: the fast path for every word (a branch on the sign or on the fast test would be
    # mispredicted often enough to double the cost); NaN marks the 1.2 % that need more.
    for c in range((j0 + r0) // 4, (j0 + r1 + 3) // 4):
        ws = philox_block(np.uint64(c), zero, zero, zero, k0, k1)
        for w in range(4):
            j = 4 * c + w - j0
            u = ws[w]
            i = np.intp(u & _U255)
            m = np.int64(u >> _U11)
            x = np.float64(m) * W[i] * np.float64(1 - 2 * np.int64((u >> _U8) & _U1))
            if r0 <= j < r1:
                out[j] = x if m < K[i] else np.nan
    # Pass 2: the tail, the wedge test and retries
    for j in range(r0, r1):
        if np.isnan(out[j]):
            ws = philox_block(np.uint64((j0 + j) // 4), zero, zero, zero, k0, k1)
            out[j] = _slow(W, K, F, k0, k1, j0 + j, ws[(j0 + j) % 4])


@numba.njit(cache=True, nogil=True)
def _fill(W, K, F, k0, k1, j0, out, r0, r1):
    normals_at(W, K, F, k0, k1, j0, out, r0, r1)


@numba.njit(cache=True, nogil=True)
def _fill_mean(W, K, F, a0, a1, b0, b1, j0, out, r0, r1):
    # by pieces of 256: the two keys' normals side by side, then their mean, as (a + b) * 0.5
    n = 256
    buf = np.empty(n)
    for s in range(r0, r1, n):
        e = min(s + n, r1)
        normals_at(W, K, F, a0, a1, j0, out, s, e)
        normals_at(W, K, F, b0, b1, j0 + s, buf, np.int64(0), e - s)
        for j in range(s, e):
            out[j] = (out[j] + buf[j - s]) * 0.5


def fill_mean(key_a, key_b, out, start=0):
    """``out[j] = (a_j + b_j) / 2`` for normals ``j = start, start + 1, …`` of two keys, on all threads."""
    from .._threads import run_rows

    run_rows(_fill_mean, out.shape[0], _W, _K, _F, np.uint64(key_a[0]),
             np.uint64(key_a[1]), np.uint64(key_b[0]), np.uint64(key_b[1]), np.int64(start), out, min_rows=4096)


def fill(key, out, start=0):
    """Write normals ``start, start + 1, …`` of ``key`` into the 1-D float64 array ``out``, on all threads."""
    from .._threads import run_rows

    run_rows(_fill, out.shape[0], _W, _K, _F, np.uint64(key[0]), np.uint64(key[1]), np.int64(start), out,
             min_rows=4096)


def source(key, start=0):
    """The key source the fused kernels draw from: ``(W, K, F, k0, k1, j0)``, normal j0 first."""
    return (_W, _K, _F, np.uint64(key[0]), np.uint64(key[1]), np.int64(start))


def kernel_draws(G, key, n_normals, start=0):
    """What a fused kernel takes for its draws: ``(G, Mg, source)``.

    With ``key`` the kernel makes the normals itself from normal ``start`` of the key on (G is empty,
    Mg = ``n_normals``); else G is the (Mg, m, d) array of normals, as float64, and the source a dummy.
    """
    if key is None:
        G = np.ascontiguousarray(G, dtype=np.float64)
        return G, G.shape[0], source((0, 0))
    return np.empty((0, 0, 0)), int(n_normals), source(key, start)


# a callee: inlined into each kernel that calls it (mmsold_cli._numba)
@numba.njit(cache=True, inline="always", nogil=True)
def draws_of(src, p0, m, n, buf):
    """The n normals each of particles p0 … p0 + m − 1 from the key source ``src`` = (W, K, F, k0, k1, j0):
    numbers j0 + p0 n … j0 + (p0 + m) n − 1, particle-major, into buf."""
    W, K, F, k0, k1, j0 = src
    normals_at(W, K, F, k0, k1, j0 + p0 * n, buf, np.int64(0), m * n)
