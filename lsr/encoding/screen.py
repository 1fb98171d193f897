"""The screened SPLADE head on the CPU: integer upper bounds pick the few vocabulary columns that can be non-zero,
then only those are computed exactly in float32.

Only ~250 of 30,522 max-pooled logits of a document are positive. Each document's token states are centred on
their mean and rounded to 7-bit integers, the decoder rows to 6-bit integers per row, and one AVX2 kernel
(``vpmaddubsw``: 32 byte products per instruction, summed exactly in int16 and int32) keeps the maximum over tokens
of every column's integer dot product without ever storing the (tokens, vocabulary) products. The rounding error
of each (token, column) product is bounded rigorously (``upper_bounds``), so every column whose float32 logit could
be > 0 survives; the survivors (about 1,000 on scifact, for ~250 true non-zeros) are recomputed from the decoder
rows in float32, which makes the vectors those of the plain float32 head. Inference only: training takes the
chunked head. 12-bit integers (``vpmaddwd``) left ~253 survivors but ran the kernel 1.4x slower on a Zen 3 core.

The kernel is generated with llvmlite (numba's code generator) for the host CPU, so nothing is compiled at install
time. CPUs without AVX2, and ``LSR_CPU_ISA=generic``, use the chunked float32 head instead (``available``).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit

from lsr.encoding import machine_code

TOKENS, VECTORS = 1, 4          # register tile: 1 token x 4 vectors of 8 columns (see _kernel: no spills)
COLUMNS = 8 * VECTORS           # columns per block of the packed weight
GROUP = 4                       # quads of k (16 products per column) summed in int16 before widening to int32
LEVELS_D, LEVELS_W = 63, 31     # |D| <= 63 stored as D + 64 in [1, 127]; |q| <= 31: a group sum stays < 2^15
OFFSET = 64
ISA_ENV = "LSR_CPU_ISA"         # "generic" forces the float32 fallback


def cpu_features() -> set[str]:
    """The host CPU's instruction-set extensions as LLVM names them (``avx2``, ``avx512bw``, ``avx512bf16``...)."""
    import llvmlite.binding as llvm

    return {name for name, on in llvm.get_host_cpu_features().items() if on}


@functools.cache
def _host_isa() -> str:
    return "avx2" if "avx2" in cpu_features() else "generic"


def isa() -> str:
    """The instruction set the CPU head uses: "avx2" (the integer screen) or "generic" (the float32 head).

    ``LSR_CPU_ISA=generic`` forces the fallback, as on a CPU without AVX2 (x86 before 2013, ARM)."""
    forced = os.environ.get(ISA_ENV, "").strip().lower()
    if forced and forced not in ("avx2", "generic"):
        raise ValueError(f"{ISA_ENV} must be 'avx2' or 'generic', got {forced!r}")
    if forced == "avx2" and _host_isa() != "avx2":
        raise ValueError(f"{ISA_ENV}=avx2, but this CPU has no AVX2")
    return forced or _host_isa()


def available() -> bool:
    """Whether ``backend="screen"`` can run here."""
    return isa() == "avx2"


# ---- the kernel ---------------------------------------------------------------------------------------------------
@functools.cache
def _kernel():
    """max over tokens t of (D[t] + 64) . q[v] (uint8 x int8, summed exactly in int16 then int32) for the column
    blocks [lo, hi) of the packed weight.

    D is (tokens, K4) int32, each four uint8 d[4k..4k+3] + 64, tokens a multiple of TOKENS, K4 a multiple of GROUP;
    W is packed (blocks, K4, COLUMNS, 4) int8; out receives COLUMNS int32 maxima per block. ``vpmaddubsw`` multiplies
    32 byte pairs and adds neighbours into int16 (127 * 31 * 2 * GROUP < 2^15: never saturates), ``vpmaddwd`` by 1
    widens each column's pair of int16 sums into int32.

    One token per pass keeps the accumulators, maxima and splats in the 16 ymm registers. Two tokens per pass (to
    load each weight vector once for both) spilled ~20 vectors per iteration to the stack, and its speed then depended
    on where the caller's stack lay: 4.4-12.3 ms a call over 24 call depths against a steady 4.5-4.8 ms now, and a
    service worker's text ingest ran 41-45 against 61-74 documents per CPU-second (BENCHMARKS.md, issue 16)."""
    from llvmlite import ir

    i8, i16, i32, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
    v32b, v16, v8 = ir.VectorType(i8, 32), ir.VectorType(i16, 16), ir.VectorType(i32, 8)
    mod = machine_code.new_module("lsr_screen")
    maddubs = ir.Function(mod, ir.FunctionType(v16, [v32b, v32b]), "llvm.x86.avx2.pmadd.ub.sw")
    pmadd = ir.Function(mod, ir.FunctionType(v8, [v16, v16]), "llvm.x86.avx2.pmadd.wd")
    smax = ir.Function(mod, ir.FunctionType(v8, [v8, v8]), "llvm.smax.v8i32")
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [i32.as_pointer(), i64, i8.as_pointer(), i64, i64, i64,
                                                          i32.as_pointer()]), "screen_max")
    D, n_tokens, W, k4_count, lo, hi, out = fn.args
    for a in (D, W, out):
        a.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    c64 = functools.partial(ir.Constant, i64)
    loop = machine_code.Loops(b).open
    zero, lowest = ir.Constant(v8, [0] * 8), ir.Constant(v8, [-2 ** 31] * 8)
    ones = ir.Constant(v16, [1] * 16)
    block, _, close_blocks = loop(lo, hi, "block", [])
    t0, col_max, close_tokens = loop(c64(0), n_tokens, "tok", [lowest] * VECTORS)
    kg, acc, close_k = loop(c64(0), k4_count, "k", [zero] * (TOKENS * VECTORS))

    def w_at(step, j):
        at = b.mul(b.add(b.add(b.mul(block, k4_count), kg), c64(step)), c64(4 * COLUMNS))
        return b.load(b.bitcast(b.gep(W, [b.add(at, c64(32 * j))]), v32b.as_pointer()), align=1)

    nxt = []
    for t in range(TOKENS):
        row = b.mul(b.add(t0, c64(t)), k4_count)
        splats = []
        for step in range(GROUP):
            quad = b.load(b.gep(D, [b.add(b.add(row, kg), c64(step))]), align=4)
            splat = b.shuffle_vector(b.insert_element(ir.Constant(v8, None), quad, ir.Constant(i32, 0)),
                                     ir.Constant(v8, None), ir.Constant(v8, [0] * 8))
            splats.append(b.bitcast(splat, v32b))
        for j in range(VECTORS):
            s16 = b.call(maddubs, [splats[0], w_at(0, j)])
            for step in range(1, GROUP):
                s16 = b.add(s16, b.call(maddubs, [splats[step], w_at(step, j)]))
            nxt.append(b.add(acc[t * VECTORS + j], b.call(pmadd, [s16, ones])))
    acc = close_k(GROUP, nxt)
    new_max = []
    for j in range(VECTORS):
        m = col_max[j]
        for t in range(TOKENS):
            m = b.call(smax, [m, acc[t * VECTORS + j]])
        new_max.append(m)
    col_max = close_tokens(TOKENS, new_max)
    for j in range(VECTORS):
        at = b.add(b.mul(block, c64(COLUMNS)), c64(8 * j))
        b.store(col_max[j], b.bitcast(b.gep(out, [at]), v8.as_pointer()), align=4)
    close_blocks(1, [])
    b.ret_void()

    return machine_code.compile_function(mod, "screen_max", [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
                                         + [ctypes.c_int64] * 3 + [ctypes.c_void_p])


# ---- the packed decoder -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PackedWeight:
    """The decoder rows as 6-bit integers per row (|q| <= LEVELS_W), packed for the kernel, with what the error
    bound needs."""

    packed: np.ndarray      # (blocks, K4, COLUMNS, 4) int8
    scale: np.ndarray       # (V,) float64: w[v] ~ scale[v] * q[v]
    l1: np.ndarray          # (V,) float64: sum |q[v]|
    offset: np.ndarray      # (V,) int64: OFFSET * sum q[v], what the uint8 activations' offset adds to a dot product
    norm: np.ndarray        # (V,) float64: ||w[v]||_2
    version: int            # the weight tensor's version when packed


_PACKED: dict[int, tuple[weakref.ref, PackedWeight]] = {}   # id(tensor) -> (the tensor, its packed form)


def pack(w: np.ndarray, version: int = 0) -> PackedWeight:
    """The packed form of a (V, H) decoder (any float dtype; a view is fine)."""
    w = np.asarray(w, dtype=np.float64)
    V, H = w.shape
    K = -(-H // (4 * GROUP)) * 4 * GROUP
    scale = np.abs(w).max(1) / LEVELS_W
    scale[scale == 0] = 1.0
    q = np.zeros((-(-V // COLUMNS) * COLUMNS, K), dtype=np.int8)
    q[:V, :H] = np.rint(w / scale[:, None])
    packed = _cache_line_aligned(q.reshape(-1, COLUMNS, K // 4, 4).transpose(0, 2, 1, 3))
    sums = q[:V].sum(1, dtype=np.int64)
    return PackedWeight(packed, scale, np.abs(q[:V]).sum(1, dtype=np.float64), OFFSET * sums,
                        np.linalg.norm(w, axis=1), version)


def _cache_line_aligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``a`` starting on a 64-byte boundary: numpy aligns to 16 bytes, and then a quarter of
    the kernel's 32-byte loads straddle two cache lines (the kernel ran 13% slower so)."""
    buffer = np.empty(a.nbytes + 64, dtype=np.uint8)
    start = -buffer.ctypes.data % 64
    out = buffer[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def pack_weight(weight) -> PackedWeight:
    """The packed form of a (V, H) torch decoder, cached per tensor (and repacked if the tensor was modified)."""
    ref, cached = _PACKED.get(id(weight), (None, None))
    if ref is not None and ref() is weight and cached.version == weight._version:
        return cached
    out = pack(weight.detach().float().cpu().numpy(), weight._version)
    for key in [k for k, (r, _) in _PACKED.items() if r() is None]:
        del _PACKED[key]
    _PACKED[id(weight)] = (weakref.ref(weight), out)
    return out


# ---- the screened head --------------------------------------------------------------------------------------------
def upper_bounds(h: np.ndarray, mean: np.ndarray, centre: np.ndarray, pw: PackedWeight, bias_abs: np.ndarray | float,
                 threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """For one document's real tokens h (n, H) float32, their mean (H,) float32 and centre = W @ mean + bias (V,)
    in float32: a bound >= the float32 max logit of every column (V,), and the columns whose bound is >= 0 (the
    survivors, ascending int64). ``bias_abs``: the bias (its magnitude is what counts), or one bound for all.

    With d = h - mean, s = max|d| / LEVELS_D, D = rint(d / s) and w = scale * (q + e), |e| <= 1/2:
      d . w = s * scale * (D . q + D . e + r . q + r . e),  |r| <= 1/2, so
      d . w <= s * scale * (max_t D_t . q + max_t |D_t|_1 / 2 + |q|_1 / 2 + K / 4).
    D . q is exact in integers (the kernel's (D + 64) . q, less 64 * sum q). mean . w + bias and the exact float32
    path itself round; ``margin`` covers both with twice the textbook bound (K + 1) * 2^-24 * sum |x_k w_k|,
    itself at most the product of the 2-norms.
    """
    K = pw.packed.shape[1] * 4
    D, s, worst, norms = _quantize(h, mean, K)
    best = np.empty(pw.packed.shape[0] * COLUMNS, dtype=np.int32)
    _run_kernel(D, pw.packed, best, threads)
    if np.ndim(bias_abs) == 0:
        bias_abs = np.full(pw.scale.shape, float(bias_abs))
    return _bounds(best, s, worst / 2 + K / 4, 2 * (K + 2) * 2.0 ** -24, norms, pw.scale, pw.offset, pw.l1, pw.norm,
                   centre, bias_abs)


@njit(cache=True, nogil=True, error_model="numpy")
def _quantize(h, mean, K):
    """``upper_bounds``' first step in one pass over the tokens: D + OFFSET as uint8 (rows padded to a multiple of
    TOKENS by repeating the last token, which does not change a maximum; columns to K with zeros), the step s,
    max_t |D_t|_1 and max_t ||h_t|| + ||mean||."""
    n, H = h.shape
    span = 0.0
    for i in range(n):
        for j in range(H):
            span = max(span, abs(np.float64(h[i, j]) - np.float64(mean[j])))   # exact: a difference of two float32
    s = span / LEVELS_D if span > 0 else 1.0
    rows = -(-n // TOKENS) * TOKENS
    D = np.full((rows, K), OFFSET, dtype=np.uint8)
    worst, top_norm = 0.0, 0.0
    for i in range(n):
        l1, sq = 0.0, 0.0
        for j in range(H):
            q = np.rint((np.float64(h[i, j]) - np.float64(mean[j])) / s)
            D[i, j] = np.uint8(q + OFFSET)
            l1 += abs(q)
            sq += np.float64(h[i, j]) ** 2
        worst = max(worst, l1)
        top_norm = max(top_norm, np.sqrt(sq))
    for i in range(n, rows):
        D[i] = D[n - 1]
    mean_sq = 0.0
    for j in range(H):
        mean_sq += np.float64(mean[j]) ** 2
    return D, s, worst, top_norm + np.sqrt(mean_sq)


@njit(cache=True, nogil=True, error_model="numpy")
def _bounds(best, s, slack, gamma, norms, scale, offset, l1, norm, centre, bias_abs):
    """``upper_bounds``' last step, and the survivors (as numpy expressions it was ~10 passes and a
    ``flatnonzero``). Two loops: the first vectorizes once the survivors' branch is out of it (105 -> 69 us)."""
    out = np.empty(scale.shape[0])
    for v in range(scale.shape[0]):
        margin = gamma * (norm[v] * norms + 2 * abs(np.float64(bias_abs[v])))
        out[v] = s * scale[v] * (best[v] - offset[v] + slack + l1[v] / 2) + centre[v] + margin
    keep = np.empty(scale.shape[0], dtype=np.int64)
    kept = 0
    for v in range(scale.shape[0]):
        if out[v] >= 0:
            keep[kept] = v
            kept += 1
    return out, keep[:kept]


_POOL: ThreadPoolExecutor | None = None


@functools.cache
def _blas() -> tuple[tuple, tuple]:
    """The BLAS libraries loaded (threadpoolctl's controllers): those whose thread limit belongs to the calling
    thread (OpenBLAS on OpenMP), and those with one limit for the whole process."""
    # the BLAS of Numba's np.dot (lsr.encoding.forward), a second OpenBLAS: listed only once loaded
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController

    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    own = tuple(lib for lib in libs if getattr(lib, "threading_layer", None) == "openmp"
                and lib.internal_api == "openblas")
    return own, tuple(lib for lib in libs if lib not in own)


_LIMIT_LOCK = threading.Lock()
_shared: list = []   # [the process-wide limits as they were, how many blocks are inside the limit]
_nesting = threading.local()   # depth: how many blocks of one_blas_thread the calling thread is inside


def _set_limits(libs: tuple, counts: list[int]) -> None:
    for lib, n in zip(libs, counts):
        clear = getattr(type(lib), "clear_controlling_thread", None)
        if clear is not None:   # threadpoolctl >= 3.8 ignores every thread but the first that ever set a limit
            clear(force=True)
        lib.set_num_threads(n)


@contextlib.contextmanager
def one_blas_thread():
    """Numpy's BLAS at one thread for a block (~10 us): OpenBLAS splits a product differently with more threads,
    and the last bits of a vector would depend on the process's thread count (a Ray actor runs with one). A
    process-wide limit is shared by overlapping blocks of several threads, set by the first to enter from whichever
    thread and restored by the last to leave (threadpoolctl alone would ignore a pool thread's limit, and a service
    worker's vectors would differ from the main thread's). A block nested in another on the same thread costs
    nothing: the outer one holds the limits."""
    if getattr(_nesting, "depth", 0):
        _nesting.depth += 1
        try:
            yield
        finally:
            _nesting.depth -= 1
        return
    own, shared = _blas()
    previous = [lib.get_num_threads() for lib in own]
    _set_limits(own, [1] * len(own))
    with _LIMIT_LOCK:
        if not _shared:
            _shared[:] = [[lib.get_num_threads() for lib in shared], 0]
            _set_limits(shared, [1] * len(shared))
        _shared[1] += 1
    _nesting.depth = 1
    try:
        yield
    finally:
        _nesting.depth = 0
        _set_limits(own, previous)
        with _LIMIT_LOCK:
            _shared[1] -= 1
            if _shared[1] == 0:
                _set_limits(shared, _shared[0])
                _shared.clear()


def _pool(threads: int) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL._max_workers < threads:
        _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lsr-screen")
    return _POOL


def _run_kernel(D: np.ndarray, packed: np.ndarray, out: np.ndarray, threads: int) -> None:
    """The kernel over all column blocks, split in contiguous ranges over ``threads`` (ctypes drops the GIL)."""
    _, fn = _kernel()
    blocks, k4 = packed.shape[0], packed.shape[1]
    args = (D.ctypes.data, D.shape[0], packed.ctypes.data, k4)
    if threads <= 1:
        fn(*args, 0, blocks, out.ctypes.data)
        return
    cuts = np.linspace(0, blocks, threads + 1).astype(int)
    list(_pool(threads).map(lambda i: fn(*args, int(cuts[i]), int(cuts[i + 1]), out.ctypes.data), range(threads)))


@dataclass(frozen=True)
class Centre:
    """A fixed point to centre every text's token states on, with its logits: ``weight @ mean + bias`` (V,) float64.

    A text's own mean bounds its columns most tightly, but costs a (H x V) product per text: half of a short
    query's head time. Token states share a large common part, so one fixed point near all of them (the mean over a
    few calibration texts) bounds nearly as tightly (scifact queries: 310 survivors for 241; documents: 1,685 for
    1,391) at no cost per text."""

    mean: np.ndarray
    logits: np.ndarray

    @classmethod
    def of(cls, states: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> Centre:
        """The centre of token states (n, H) float32, for the decoder ``weight`` (V, H) and ``bias``."""
        return _centres([states], weight, bias)[0]


def max_pool(docs: list[np.ndarray], weight: np.ndarray, bias: np.ndarray | None, pw: PackedWeight,
             threads: int = 1, centre: Centre | None = None) -> np.ndarray:
    """SPLADE weights (len(docs), V) float32 of each document's real token states (n_i, H) float32, equal to the
    float32 head's: screened in integers, the survivors computed from ``weight`` (V, H) float32 rows. Each document
    is centred on its own mean, or on ``centre`` for all."""
    out = np.zeros((len(docs), weight.shape[0]), dtype=np.float32)
    for i, (terms, weights) in enumerate(max_pool_rows(docs, weight, bias, pw, threads, centre)):
        out[i, terms] = weights
    return out


def max_pool_rows(docs: list[np.ndarray], weight: np.ndarray, bias: np.ndarray | None, pw: PackedWeight,
                  threads: int = 1, centre: Centre | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``max_pool`` as each document's non-zero terms (ascending int32) and their weights (float32): no (docs, V)
    array to fill and scan again (a short query's vector has a few dozen terms of 30,522)."""
    if not available():
        raise RuntimeError(f"the screened CPU head needs AVX2 (this CPU: {_host_isa()}, {ISA_ENV}="
                           f"{os.environ.get(ISA_ENV, '')!r})")
    with one_blas_thread():
        return _max_pool_rows(docs, weight, bias, pw, threads, centre)


def _max_pool_rows(docs, weight, bias, pw, threads, centre):
    rows = [(np.zeros(0, np.int32), np.zeros(0, np.float32))] * len(docs)
    live = [i for i, h in enumerate(docs) if len(h)]
    if not live:
        return rows
    centres = _centres([docs[i] for i in live], weight, bias) if centre is None else [centre] * len(live)
    bias = np.zeros(weight.shape[0], dtype=np.float32) if bias is None else bias

    def pool(j: int, kernel_threads: int) -> None:
        h = docs[live[j]]
        _, keep = upper_bounds(h, centres[j].mean, centres[j].logits, pw, bias, kernel_threads)
        rows[live[j]] = _survivors(h, weight, bias, keep)

    # Several threads take whole documents (no barrier per document), or split one document's columns.
    if threads > 1 and len(live) >= threads:
        list(_pool(threads).map(lambda j: pool(j, 1), range(len(live))))
    else:
        for j in range(len(live)):
            pool(j, threads)
    return rows


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc"})
def _survivors(h, weight, bias, keep):
    """The survivors' exact float32 SPLADE weights: for each column v of ``keep``, log1p of max over the tokens of
    h[t] . weight[v] + bias[v] where that is > 0; (terms int32, weights float32) of those. Rows of ``weight`` are
    read in place (a numpy gather and product took ~3x as long for a query's ~150 survivors)."""
    terms = np.empty(keep.shape[0], dtype=np.int32)
    values = np.empty(keep.shape[0], dtype=np.float32)
    count = 0
    for v in keep:
        top = np.float32(-np.inf)
        for t in range(h.shape[0]):
            dot = np.float32(0)
            for j in range(h.shape[1]):
                dot += h[t, j] * weight[v, j]
            top = max(top, dot)
        top += bias[v]
        if top > 0:
            terms[count] = v
            values[count] = np.log1p(top)
            count += 1
    return terms[:count], values[:count]


def _centres(docs: list[np.ndarray], weight: np.ndarray, bias: np.ndarray | None) -> list[Centre]:
    """Each document's own centre, the logits of all in one (docs x H) @ (H x V) product."""
    means = np.stack([h.mean(0, dtype=np.float32) for h in docs])
    logits = means @ weight.T
    if bias is not None:
        logits += bias
    return [Centre(m, row) for m, row in zip(means, logits.astype(np.float64))]


def max_pool_screened(hidden, weight, bias, attention_mask, threads: int | None = None):
    """``max_pool`` for torch tensors (the head's "screen" backend): (B, V) float32."""
    import torch

    threads = threads or torch.get_num_threads()
    if hidden.device.type != "cpu":
        raise ValueError(f"the screened head runs on the CPU, got {hidden.device}")
    with torch.inference_mode():
        pw = pack_weight(weight)
        mask = attention_mask.to(torch.bool)
        docs = [hidden[i][mask[i]].float().contiguous().numpy() for i in range(hidden.shape[0])]
        w32 = weight.detach().float().contiguous().numpy()
        b32 = None if bias is None else bias.detach().float().numpy()
        # torch runs single-threaded meanwhile: its OpenMP workers would otherwise spin after every small product,
        # on the cores the kernel's threads need (measured: 3.5x the CPU time of the head at 2 threads).
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return torch.from_numpy(max_pool(docs, w32, b32, pw, threads))
        finally:
            torch.set_num_threads(torch_threads)
