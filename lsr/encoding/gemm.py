"""The numpy forward's products, y = x @ W.T + b for a query's few dozen token rows: one kernel generated for the
host CPU, its weights packed once at load.

Why not BLAS: for 17 rows OpenBLAS's sgemm packs the weight matrix on every call and runs at 11-15 GMAC/s on one
Zen 3 core; the products were ~85% of splade-tiny's forward. Packed once here, in panels of 16 columns laid out
(panel, K, 16), a tile of 6 rows x 16 columns keeps its 12 accumulators in registers while the panel streams from
L2: ~30 GMAC/s. Each output sums its K products in order with fused multiply-adds wherever the CPU has them, so a
row's result does not depend on the rows around it: a text's vector is the same alone or in a batch, bit for bit.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from lsr.encoding import machine_code

PANEL = 16   # output columns per panel: two 8-float vectors
ROWS = 6     # rows per tile: 12 accumulators, 2 weight vectors and a broadcast fit the 16 ymm registers


def pack(weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A (N, K) weight as a checkpoint stores it and its (N,) bias: the weight in panels (ceil(N / 16), K, 16) and
    the bias, both float32 and zero-padded to a whole panel."""
    n, k = weight.shape
    panels = -(-n // PANEL)
    w = np.zeros((panels * PANEL, k), dtype=np.float32)
    w[:n] = weight
    b = np.zeros(panels * PANEL, dtype=np.float32)
    b[:n] = bias
    return np.ascontiguousarray(w.reshape(panels, PANEL, k).transpose(0, 2, 1)), b


@functools.cache
def kernel():
    """(engine, function): linear(x, ldx, m, k, w, n, b, y, ldy) writes y[i, :n] = x[i, :k] @ W.T + b for the m
    rows of x (row stride ldx floats) into y (row stride ldy), with w and b as ``pack`` lays them out."""
    from llvmlite import ir

    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    v8, v8i = ir.VectorType(f32, 8), ir.VectorType(i32, 8)
    mod = machine_code.new_module("lsr_gemm")
    fmuladd = ir.Function(mod, ir.FunctionType(v8, [v8, v8, v8]), "llvm.fmuladd.v8f32")
    masked_store = ir.Function(mod, ir.FunctionType(ir.VoidType(), [v8, v8.as_pointer(), i32, ir.VectorType(
        ir.IntType(1), 8)]), "llvm.masked.store.v8f32.p0v8f32")
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [i64] * 9), "linear")
    x_addr, ldx, m, k, w_addr, n, b_addr, y_addr, ldy = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    loops = machine_code.Loops(b)
    c64 = loops.const
    f32p = f32.as_pointer()
    x, w, bias, y = (b.inttoptr(a, f32p) for a in (x_addr, w_addr, b_addr, y_addr))
    panels = b.sdiv(b.add(n, c64(PANEL - 1)), c64(PANEL))
    lanes = ir.Constant(v8i, list(range(8)))

    def vector_at(base, offset):
        return b.bitcast(b.gep(base, [offset]), v8.as_pointer())

    def splat(value, vector=v8):
        return b.shuffle_vector(b.insert_element(ir.Constant(vector, None), value, ir.Constant(i32, 0)),
                                ir.Constant(vector, None), ir.Constant(v8i, [0] * 8))

    def tile(p, first_row, rows: int) -> None:
        """Rows [first_row, first_row + rows) of y, panel p."""
        k_idx, acc, close_k = loops.open(c64(0), k, f"k{rows}", [ir.Constant(v8, [0.0] * 8)] * (2 * rows))
        at = b.mul(b.add(b.mul(p, k), k_idx), c64(PANEL))
        w0, w1 = (b.load(vector_at(w, b.add(at, c64(8 * h))), align=4) for h in (0, 1))
        nxt = []
        for r in range(rows):
            xv = splat(b.load(b.gep(x, [b.add(b.mul(b.add(first_row, c64(r)), ldx), k_idx)]), align=4))
            nxt += [b.call(fmuladd, [xv, w0, acc[2 * r]]), b.call(fmuladd, [xv, w1, acc[2 * r + 1]])]
        acc = close_k(1, nxt)
        column = b.mul(p, c64(PANEL))
        sums = [b.fadd(acc[2 * r + h], b.load(vector_at(bias, b.add(column, c64(8 * h))), align=4))
                for r in range(rows) for h in (0, 1)]
        # A whole panel is stored plainly; the last, partial one through a mask (masked stores are slow on AMD)
        whole, partial, stored = (b.append_basic_block(f"{name}{rows}") for name in ("whole", "partial", "stored"))
        b.cbranch(b.icmp_signed(">=", b.sub(n, column), c64(PANEL)), whole, partial)
        for block in (whole, partial):
            b.position_at_end(block)
            for h in (0, 1):
                start = b.add(column, c64(8 * h))
                if block is partial:   # the lanes left of y's n columns (none, some or all 8)
                    mask = b.icmp_signed("<", lanes, splat(b.trunc(b.sub(n, start), i32), v8i))
                for r in range(rows):
                    at_y = vector_at(y, b.add(b.mul(b.add(first_row, c64(r)), ldy), start))
                    if block is whole:
                        b.store(sums[2 * r + h], at_y, align=4)
                    else:
                        b.call(masked_store, [sums[2 * r + h], at_y, ir.Constant(i32, 4), mask])
            b.branch(stored)
        b.position_at_end(stored)

    # Panel by panel (its K x 16 weights stay in L1 across the row tiles), 6 rows a tile, then the 0-5 rows left
    full = b.mul(b.sdiv(m, c64(ROWS)), c64(ROWS))
    p, _, close_panels = loops.open(c64(0), panels, "panel")
    row, _, close_rows = loops.open(c64(0), full, "rows")
    tile(p, row, ROWS)
    close_rows(ROWS)
    done = b.append_basic_block("rest_done")
    switch = b.switch(b.sub(m, full), done)
    for rows in range(1, ROWS):
        block = b.append_basic_block(f"rest{rows}")
        switch.add_case(c64(rows), block)
        b.position_at_end(block)
        tile(p, full, rows)
        b.branch(done)
    b.position_at_end(done)
    close_panels(1)
    b.ret_void()
    return machine_code.compile_function(mod, "linear", [ctypes.c_int64] * 9)
