"""Software prefetch for Numba kernels: ``prefetch(array, i)`` asks the CPU to start loading ``array[i]``'s cache line.

Scoring a candidate document reads its forward-index row, usually a cache miss; issuing the load for the next
candidate before scoring the current one overlaps the two misses (the Seismic authors prefetch the same way).
It is a hint: no effect on results, no fault on any address.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, array, index):
    """Read prefetch (locality 3: keep in all cache levels) of ``array[index]`` (a 1-d array, an integer index)."""
    if not isinstance(array, types.Array) or array.ndim != 1 or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen
