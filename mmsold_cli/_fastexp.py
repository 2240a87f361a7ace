"""Fast exp for non-positive arguments, in plain arithmetic LLVM vectorises (the softmax weights of the kernels).

Scalar ``inline`` helpers for the numba kernels, and array wrappers that are the
tests' handle on them.
"""

from __future__ import annotations

import numpy as np

from ._numba import import_numba

numba = import_numba()

from llvmlite import ir  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

__all__ = ["exp_nonpos", "exp_nonpos_array", "exp32", "exp32_array", "EXP_CUT"]

_F32 = numba.float32

#: :func:`exp_nonpos` is 0 below this argument.  The kernels' weights are relative to the largest, which is 1,
#: and a weight under e^-64 ≈ 1.6e-28 cannot change a float64 sum holding that 1.  Smaller weights, kept,
#: became subnormal numbers further on (a weight divided by the softmax's denominator, times a coordinate
#: difference), and x86 CPUs that take a microcode assist on subnormals ran the score kernels several times
#: slower (docs/performance.md §9).
EXP_CUT = -64.0


@intrinsic
def _bits_to_float(typingctx, i):
    """Reinterpret the 64 bits of an int64 as a float64 (an LLVM bitcast)."""
    sig = numba.types.float64(numba.types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@numba.njit(cache=True, nogil=True, inline="always")
def exp_nonpos(x):
    r"""exp(x) for EXP_CUT ≤ x ≤ 0 to about 1e-15 relative, and 0 below EXP_CUT, in plain arithmetic LLVM can
    vectorise.

    .. math:: e^x = 2^k e^r,\quad k = \mathrm{round}(x/\ln 2),\ |r| \le \tfrac{\ln 2}{2}

    with :math:`e^r` by its Taylor polynomial of degree 12 (truncation
    :math:`< 2\cdot 10^{-16}`) and :math:`2^k` built from its exponent bits.
    """
    x0 = x
    if x < -708.0:
        x = -708.0  # keeps 2^k in range (the result is 0 there anyway)
    kf = np.floor(x * 1.4426950408889634 + 0.5)
    r = x - kf * 0.6931471803691238 - kf * 1.9082149292705877e-10
    p = 2.08767569878681e-09
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 0.0001984126984126984
    p = p * r + 0.001388888888888889
    p = p * r + 0.008333333333333333
    p = p * r + 0.041666666666666664
    p = p * r + 0.16666666666666666
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return 0.0 if x0 < EXP_CUT else p * _bits_to_float((np.int64(kf) + 1023) << 52)


@numba.njit(cache=True, nogil=True)
def _exp_array(x, out):
    for i in range(x.shape[0]):
        out[i] = exp_nonpos(x[i])


def _over_array(kernel, x, dtype):
    """Run an elementwise ``kernel(x, out)`` over a 1-D copy of x in ``dtype``."""
    x = np.ascontiguousarray(x, dtype=dtype)
    out = np.empty_like(x)
    kernel(x, out)
    return out


def exp_nonpos_array(x):
    """:func:`exp_nonpos` over a 1-D array (for tests and checks)."""
    return _over_array(_exp_array, x, np.float64)


@intrinsic
def _bits_to_float32(typingctx, i):
    """Reinterpret the 32 bits of an int32 as a float32 (an LLVM bitcast)."""
    sig = numba.types.float32(numba.types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen



@numba.njit(cache=True, nogil=True, inline="always")
def exp32(x):
    r"""Single-precision exp(x) for x ≤ 0, to about 2e-7 relative; 0 below −87.

    .. math:: e^x = 2^k e^r,\quad k = \mathrm{round}(x/\ln 2),\ |r| \le \tfrac{\ln 2}{2}

    with :math:`e^r` by its Taylor polynomial of degree 7 (truncation
    :math:`< 10^{-8}`) and :math:`2^k` from its exponent bits, all in float32 so
    that LLVM fills 8 lanes of an AVX2 register.  Below −87 (beyond float32's
    normal range) the result is exactly 0, which also makes padding points
    placed far away weigh nothing.
    """
    tiny = x < _F32(-87.0)
    if tiny:
        x = _F32(-87.0)
    kf = np.floor(x * _F32(1.4426950408889634) + _F32(0.5))
    r = x - kf * _F32(0.693145751953125) - kf * _F32(1.428606765330187e-06)
    p = _F32(1.0 / 5040.0)
    p = p * r + _F32(1.0 / 720.0)
    p = p * r + _F32(1.0 / 120.0)
    p = p * r + _F32(1.0 / 24.0)
    p = p * r + _F32(1.0 / 6.0)
    p = p * r + _F32(0.5)
    p = p * r + _F32(1.0)
    p = p * r + _F32(1.0)
    w = p * _bits_to_float32((np.int32(kf) + np.int32(127)) << np.int32(23))
    return _F32(0.0) if tiny else w


@numba.njit(cache=True, nogil=True)
def _exp32_array(x, out):
    for i in range(x.shape[0]):
        out[i] = exp32(x[i])


def exp32_array(x):
    """:func:`exp32` over a 1-D array (for tests and checks)."""
    return _over_array(_exp32_array, x, np.float32)

