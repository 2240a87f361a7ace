"""``prefetch_row``: ask the CPU to start fetching a matrix row before the code that reads it.

A graph walk reads rows in an order known only at run time.  Measuring a row costs about as many
instructions as the CPU's reorder window holds, so without a hint it fetches only the next few rows
while it works on one; a prefetch of every row to be measured, issued first, has them all in flight at
once.  Numba exposes no prefetch, so this is LLVM's ``llvm.prefetch`` through a numba intrinsic.
"""

from __future__ import annotations

from ._numba import import_numba

numba = import_numba()

from llvmlite import ir  # noqa: E402
from numba import types  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

__all__ = ["prefetch_row"]


@intrinsic
def _prefetch_at(typingctx, arr, i, k):
    """Prefetch the cache line holding arr[i, k] (read, keep in all cache levels); a hint, never a fault."""
    if not isinstance(arr, types.Array) or arr.ndim != 2:
        return None

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], signature.args[1:])]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, i, k), codegen


@numba.njit(cache=True, nogil=True, inline="always")
def prefetch_row(X, j):
    """Prefetch every 64-byte line of row j of the C-contiguous matrix X."""
    step = max(1, 64 // X.itemsize)
    for k in range(0, X.shape[1], step):
        _prefetch_at(X, j, k)
