"""The SPLADE head as Triton kernels: the (batch, tokens, vocab) logits never leave the chip.

Forward: each program owns one sequence and a tile of BLOCK_V vocabulary rows, multiplies the weight tile by the
sequence's token tiles (tokens are the matmul's N, so the max over tokens is a reduction along the accumulator's
rows, mostly inside each thread), masks padding, and keeps a running max and arg-max per vocabulary row. Bias,
ReLU and log1p come once, after the max. Programs are ordered vocabulary tile first, sequence second, so the
programs in flight share a few weight tiles (read from HBM once) while all hidden states (B*L*H, at most tens of
MB) stay in L2.

Backward, through the saved arg-max (g = dL/d max-logit, zero where the output was clipped):
- grad_weight[v] = sum_b g[b, v] * hidden[b, argmax[b, v]]: a gather, B*V*H multiply-adds;
- grad_hidden[b, t] = sum_{v: argmax[b, v] = t} g[b, v] * weight[v]: a scatter, done without atomics as the
  matrix product of a one-hot (tokens x vocab-tile) matrix built in registers with the weight tile, so it runs
  on the tensor cores and is deterministic.

Float32 inputs use tf32 with error compensation ("tf32x3", about float32's accuracy) unless
``torch.set_float32_matmul_precision("high")`` allows plain tf32, as for torch's own matmuls.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
_UPCAST = tl.constexpr(INTERPRET)
# which forward runs: "auto" (the faster TMA kernel per shape; plain loads where rows are not 16-byte aligned),
# or forced: "tma", "persistent", "pointer" (tests and the benchmark compare them)
FORWARD = "auto"  # the interpreter multiplies bfloat16 operands wrongly; it converts them right


def _configs(keys: tuple[str, ...], table: list[tuple], pre_hook=None) -> list[triton.Config]:
    """Rows of (block sizes..., num_warps, num_stages)."""
    return [triton.Config(dict(zip(keys, row[:-2])), num_warps=row[-2], num_stages=row[-1], pre_hook=pre_hook)
            for row in table]


# Hopper candidates (bf16/fp16 first, then float32 with a shorter K step to fit shared memory). The interpreter
# runs one small configuration so that CPU tests cover several tiles on small shapes.
_FWD_KEYS = ("BLOCK_V", "BLOCK_T", "BLOCK_K")
_FWD_HALF = [(128, 256, 64, 8, 3), (128, 256, 64, 8, 4), (128, 128, 64, 8, 4), (128, 128, 64, 4, 3),
             (256, 128, 64, 8, 3), (64, 64, 64, 4, 4), (64, 32, 64, 4, 4), (64, 16, 64, 4, 4)]
_FWD_F32 = [(128, 128, 32, 8, 3), (64, 128, 32, 4, 3), (128, 64, 32, 8, 3), (64, 32, 32, 4, 4), (64, 16, 32, 4, 4)]
_DH_KEYS = ("BLOCK_T", "BLOCK_H", "BLOCK_K")
_DH_HALF = [(128, 128, 64, 8, 3), (128, 256, 64, 8, 3), (128, 128, 128, 8, 3), (64, 128, 64, 4, 4),
            (64, 256, 64, 4, 3), (32, 128, 64, 4, 4), (16, 128, 64, 4, 4)]
_DH_F32 = [(128, 128, 32, 8, 3), (64, 128, 32, 4, 3), (32, 128, 32, 4, 3), (16, 128, 32, 4, 3)]
_DW_KEYS = ("BLOCK_V", "BLOCK_H")
_DW = [(64, 128, 4, 2), (32, 256, 4, 2), (128, 128, 8, 2), (64, 256, 8, 2), (32, 128, 4, 3)]

if INTERPRET:
    _FWD_HALF, _FWD_F32 = [(32, 16, 16, 4, 1)], []
    _DH_HALF, _DH_F32 = [(16, 32, 32, 4, 1)], []
    _DW = [(32, 32, 4, 1)]


def _tuning(keys: tuple[str, ...], half: list[tuple], f32: list[tuple], operand: str, pre_hook=None) -> dict:
    """autotune arguments: candidates for the operands' dtype with token tiles no wider than the sequences.

    L_KEY and B_KEY are the sequence length and the batch size rounded up to powers of two, so batches of many
    shapes share a tuning. Results are cached on disk by triton, so a new process does not tune again.
    """
    half_cfgs, f32_cfgs = _configs(keys, half, pre_hook), _configs(keys, f32, pre_hook)
    f32_ids = {id(c) for c in f32_cfgs}

    def prune(configs, named_args, **_):
        arg = named_args[operand]
        is_f32 = getattr(arg, "base", arg).dtype == torch.float32
        kept = [c for c in configs if (id(c) in f32_ids) == is_f32] or configs
        narrow = [c for c in kept if c.kwargs["BLOCK_T"] <= max(16, named_args["L_KEY"])]
        return narrow or [min(kept, key=lambda c: c.kwargs["BLOCK_T"])]

    return {"configs": half_cfgs + f32_cfgs, "key": ["L_KEY", "B_KEY", "H", "V"], "cache_results": True,
            "prune_configs_by": {"early_config_prune": prune}}


@triton.jit
def _dot(a, b, acc, PRECISION: tl.constexpr):
    if _UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc)
    return tl.dot(a, b, acc, input_precision=PRECISION)


@triton.jit
def _log1p_relu(x):
    """log(1 + max(x, 0)), accurate for small x (log1p by the log(u) * x / (u - 1) identity)."""
    x = tl.maximum(x, 0.0)
    u = 1.0 + x
    small = u == 1.0
    return tl.where(small, x, tl.log(u) * (x / tl.where(small, 1.0, u - 1.0)))


@triton.jit
def _running_max(acc, keep, best, best_t, t0):
    """Folds one token tile's logits (vocab x tokens) into the running max and arg-max per vocabulary row."""
    acc = tl.where(keep[None, :], acc, float("-inf"))
    tile_best, tile_t = tl.max(acc, axis=1, return_indices=True)
    better = tile_best > best  # strict: the first token wins ties, as in torch.max
    return tl.where(better, tile_best, best), tl.where(better, tile_t + t0, best_t)


@triton.jit
def _store_pooled(best, best_t, offs_v, b, V, bias_ptr, out_ptr, arg_ptr, HAS_BIAS: tl.constexpr,
                  NEED_ARG: tl.constexpr):
    if HAS_BIAS:  # constant over tokens, so it commutes with the max
        best += tl.load(bias_ptr + offs_v, mask=offs_v < V, other=0.0).to(tl.float32)
    out_offs = b.to(tl.int64) * V + offs_v
    tl.store(out_ptr + out_offs, _log1p_relu(best), mask=offs_v < V)
    if NEED_ARG:
        tl.store(arg_ptr + out_offs, best_t, mask=offs_v < V)


# triton 3.6's loop fusion fails on these tiles (an MLIR verifier error in TritonGPUFuseNestedLoops)
_FUSE_FAILS = {(128, 128, 64, 4), (256, 128, 64, 8)}


def _tma_blocks(nargs):
    nargs["h_desc"].block_shape = [nargs["BLOCK_T"], nargs["BLOCK_K"]]
    nargs["w_desc"].block_shape = [nargs["BLOCK_V"], nargs["BLOCK_K"]]


@triton.autotune(**_tuning(_FWD_KEYS, _FWD_HALF, _FWD_F32, "w_desc", _tma_blocks))
@triton.jit
def _forward_kernel_tma(h_desc, w_desc, bias_ptr, mask_ptr, ntok_ptr, out_ptr, arg_ptr,
                        B, L, H, V, L_KEY, B_KEY, s_mb,
                        HAS_BIAS: tl.constexpr, NEED_ARG: tl.constexpr, PRECISION: tl.constexpr,
                        BLOCK_V: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_K: tl.constexpr):
    """The forward with tiles fetched by the tensor memory accelerator (zero-filled past V and H)."""
    pid = tl.program_id(0)
    b = pid % B
    v0 = (pid // B) * BLOCK_V
    n_tok = tl.load(ntok_ptr + b)  # one past the last unmasked token: later token tiles are skipped
    best = tl.full((BLOCK_V,), float("-inf"), tl.float32)
    best_t = tl.zeros((BLOCK_V,), tl.int32)
    for t0 in range(0, n_tok, BLOCK_T):
        acc = tl.zeros((BLOCK_V, BLOCK_T), tl.float32)
        for k0 in range(0, H, BLOCK_K):
            w = w_desc.load([v0, k0])
            h = h_desc.load([b * L + t0, k0])  # rows past L belong to the next sequence: masked below
            acc = _dot(w, h.T, acc, PRECISION)
        offs_t = t0 + tl.arange(0, BLOCK_T)
        keep = tl.load(mask_ptr + b * s_mb + offs_t, mask=offs_t < n_tok, other=0) != 0
        best, best_t = _running_max(acc, keep, best, best_t, t0)
    _store_pooled(best, best_t, v0 + tl.arange(0, BLOCK_V), b, V, bias_ptr, out_ptr, arg_ptr, HAS_BIAS, NEED_ARG)


@triton.autotune(**_tuning(_FWD_KEYS, [c for c in _FWD_HALF if c[:4] not in _FUSE_FAILS], _FWD_F32, "w_desc",
                          _tma_blocks))
@triton.jit
def _forward_kernel_persistent(h_desc, w_desc, bias_ptr, mask_ptr, ntok_ptr, out_ptr, arg_ptr,
                               B, L, H, V, L_KEY, B_KEY, s_mb,
                               HAS_BIAS: tl.constexpr, NEED_ARG: tl.constexpr, PRECISION: tl.constexpr,
                               BLOCK_V: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_K: tl.constexpr):
    """The TMA forward on a persistent grid: each program walks (vocabulary tile, sequence) units, all token
    tiles of a unit in a row, in one flattened loop so the next tile's loads overlap this tile's epilogue."""
    pid = tl.program_id(0)
    n_prog = tl.num_programs(0)
    n_t = tl.cdiv(L, BLOCK_T)
    my_units = tl.cdiv(B * tl.cdiv(V, BLOCK_V) - pid, n_prog)
    best = tl.full((BLOCK_V,), float("-inf"), tl.float32)
    best_t = tl.zeros((BLOCK_V,), tl.int32)
    for j in tl.range(0, my_units * n_t, flatten=True):
        unit = pid + (j // n_t) * n_prog
        t0 = (j % n_t) * BLOCK_T
        b = unit % B
        v0 = (unit // B) * BLOCK_V
        acc = tl.zeros((BLOCK_V, BLOCK_T), tl.float32)
        for k0 in range(0, H, BLOCK_K):
            acc = _dot(w_desc.load([v0, k0]), h_desc.load([b * L + t0, k0]).T, acc, PRECISION)
        offs_t = t0 + tl.arange(0, BLOCK_T)
        n_tok = tl.load(ntok_ptr + b)
        keep = tl.load(mask_ptr + b * s_mb + offs_t, mask=offs_t < n_tok, other=0) != 0
        first = t0 == 0
        best, best_t = _running_max(acc, keep, tl.where(first, float("-inf"), best), tl.where(first, 0, best_t), t0)
        if t0 + BLOCK_T >= L:
            _store_pooled(best, best_t, v0 + tl.arange(0, BLOCK_V), b, V, bias_ptr, out_ptr, arg_ptr, HAS_BIAS,
                          NEED_ARG)


@triton.autotune(**_tuning(_FWD_KEYS, _FWD_HALF, _FWD_F32, "w_ptr"))
@triton.heuristics({"EVEN_K": lambda a: a["H"] % a["BLOCK_K"] == 0})
@triton.jit
def _forward_kernel(h_ptr, w_ptr, bias_ptr, mask_ptr, ntok_ptr, out_ptr, arg_ptr,
                    B, L, H, V, L_KEY, B_KEY, s_hb, s_hl, s_mb,
                    HAS_BIAS: tl.constexpr, NEED_ARG: tl.constexpr, PRECISION: tl.constexpr,
                    EVEN_K: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_K: tl.constexpr):
    pid = tl.program_id(0)
    b = pid % B
    offs_v = (pid // B) * BLOCK_V + tl.arange(0, BLOCK_V)
    rows_v = tl.where(offs_v < V, offs_v, V - 1).to(tl.int64)  # clamped, not masked: extra rows are never stored
    offs_k = tl.arange(0, BLOCK_K)
    n_tok = tl.load(ntok_ptr + b)  # one past the last unmasked token: later token tiles are skipped
    h_seq = h_ptr + b.to(tl.int64) * s_hb
    best = tl.full((BLOCK_V,), float("-inf"), tl.float32)
    best_t = tl.zeros((BLOCK_V,), tl.int32)
    for t0 in range(0, n_tok, BLOCK_T):
        offs_t = t0 + tl.arange(0, BLOCK_T)
        rows_t = tl.where(offs_t < L, offs_t, L - 1)
        w_ptrs = w_ptr + rows_v[:, None] * H + offs_k[None, :]
        h_ptrs = h_seq + rows_t[:, None] * s_hl + offs_k[None, :]
        acc = tl.zeros((BLOCK_V, BLOCK_T), tl.float32)
        for k0 in range(0, H, BLOCK_K):
            if EVEN_K:
                w = tl.load(w_ptrs)
                h = tl.load(h_ptrs)
            else:
                k_ok = offs_k[None, :] < H - k0
                w = tl.load(w_ptrs, mask=k_ok, other=0.0)
                h = tl.load(h_ptrs, mask=k_ok, other=0.0)
            acc = _dot(w, tl.trans(h), acc, PRECISION)
            w_ptrs += BLOCK_K
            h_ptrs += BLOCK_K
        keep = tl.load(mask_ptr + b * s_mb + offs_t, mask=offs_t < n_tok, other=0) != 0
        best, best_t = _running_max(acc, keep, best, best_t, t0)
    _store_pooled(best, best_t, offs_v, b, V, bias_ptr, out_ptr, arg_ptr, HAS_BIAS, NEED_ARG)


@triton.autotune(configs=_configs(_DW_KEYS, _DW), key=["B", "H", "V"], cache_results=True)
@triton.jit
def _grad_weight_kernel(h_ptr, g_ptr, arg_ptr, dw_ptr, B, H, V, s_hb, s_hl,
                        BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr):
    offs_v = tl.program_id(0) * BLOCK_V + tl.arange(0, BLOCK_V)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    v_ok = offs_v < V
    h_ok = offs_h < H
    acc = tl.zeros((BLOCK_V, BLOCK_H), tl.float32)
    g = tl.load(g_ptr + offs_v, mask=v_ok, other=0.0)
    t = tl.load(arg_ptr + offs_v, mask=v_ok, other=0)
    for b in range(B):
        rows = tl.load(h_ptr + b * s_hb + t[:, None].to(tl.int64) * s_hl + offs_h[None, :],
                       mask=(g != 0)[:, None] & h_ok[None, :], other=0.0)  # clipped outputs cost no load
        # the next sequence's indices are loaded before this gather is used: one memory latency per step, not two
        nb = (b + 1) % B  # the last step reloads sequence 0, unused
        g_next = tl.load(g_ptr + nb * V + offs_v, mask=v_ok, other=0.0)
        t_next = tl.load(arg_ptr + nb * V + offs_v, mask=v_ok, other=0)
        acc += g[:, None] * rows.to(tl.float32)
        g, t = g_next, t_next
    tl.store(dw_ptr + offs_v[:, None].to(tl.int64) * H + offs_h[None, :], acc.to(dw_ptr.dtype.element_ty),
             mask=v_ok[:, None] & h_ok[None, :])


@triton.autotune(**_tuning(_DH_KEYS, _DH_HALF, _DH_F32, "w_ptr"))
@triton.jit
def _grad_hidden_kernel(w_ptr, g_ptr, arg_ptr, last_ptr, scale_ptr, dh_ptr, B, L, H, V, L_KEY, B_KEY,
                        PRECISION: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr,
                        BLOCK_K: tl.constexpr):
    n_t = tl.cdiv(L, BLOCK_T)
    b = tl.program_id(0) // n_t
    offs_t = (tl.program_id(0) % n_t) * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    h_ok = offs_h < H
    offs_k = tl.arange(0, BLOCK_K)
    # tokens past the last winning one receive nothing: their tiles skip the vocabulary loop
    v_end = tl.where(tl.program_id(0) % n_t * BLOCK_T < tl.load(last_ptr + b), V, 0)
    scale = tl.load(scale_ptr)  # a power of two that keeps g inside float16's range
    acc = tl.zeros((BLOCK_T, BLOCK_H), tl.float32)
    for v0 in range(0, v_end, BLOCK_K):
        v = v0 + offs_k
        v_ok = v < V
        win = tl.load(arg_ptr + b * V + v, mask=v_ok, other=-1)
        g = tl.load(g_ptr + b * V + v, mask=v_ok, other=0.0) * scale
        one_hot = tl.where(offs_t[:, None] == win[None, :], g[None, :], 0.0).to(w_ptr.dtype.element_ty)
        rows = tl.where(v_ok, v, V - 1).to(tl.int64)
        w = tl.load(w_ptr + rows[:, None] * H + offs_h[None, :], mask=h_ok[None, :], other=0.0)
        acc = _dot(one_hot, w, acc, PRECISION)
    out = dh_ptr + (b * L + offs_t[:, None]).to(tl.int64) * H + offs_h[None, :]
    tl.store(out, (acc / scale).to(dh_ptr.dtype.element_ty), mask=(offs_t[:, None] < L) & h_ok[None, :])


def _precision(dtype: torch.dtype) -> str:
    if dtype != torch.float32:
        return "tf32"  # ignored for 16-bit operands
    return "tf32x3" if torch.get_float32_matmul_precision() == "highest" else "tf32"


def _bucket(length: int) -> int:
    return triton.next_power_of_2(max(length, 1))


def _last_unmasked(attention_mask: torch.Tensor) -> torch.Tensor:
    """One past the index of each sequence's last unmasked token, int32 (B,)."""
    pos = torch.arange(1, attention_mask.shape[1] + 1, device=attention_mask.device, dtype=torch.int32)
    return (attention_mask.to(torch.bool) * pos).amax(1).to(torch.int32)


def _launch_forward(kind: str, hidden, weight, bias_arg, mask, tail, flags) -> None:
    B, L, H, V = tail[3:7]

    def grid(meta):
        return (B * triton.cdiv(V, meta["BLOCK_V"]),)

    if kind == "pointer":
        _forward_kernel[grid](hidden, weight, bias_arg, mask, *tail, hidden.stride(0), hidden.stride(1),
                              mask.stride(0), **flags)
        return
    from triton.tools.tensor_descriptor import TensorDescriptor

    h_desc = TensorDescriptor.from_tensor(hidden.contiguous().view(B * L, H), [16, 16])  # blocks set per config
    w_desc = TensorDescriptor.from_tensor(weight, [16, 16])
    if kind == "tma":
        _forward_kernel_tma[grid](h_desc, w_desc, bias_arg, mask, *tail, mask.stride(0), **flags)
        return
    sms = torch.cuda.get_device_properties(hidden.device).multi_processor_count if hidden.is_cuda else 4

    def persistent_grid(meta):
        return (min(grid(meta)[0], sms),)

    _forward_kernel_persistent[persistent_grid](h_desc, w_desc, bias_arg, mask, *tail, mask.stride(0), **flags)


_FORWARD_CHOICE: dict[tuple, str] = {}


def _pick_forward(key: tuple, launch) -> str:
    """The faster of the two TMA forwards for this shape bucket, each with its tuned tiles, timed once per process.

    Measured on an H100: the persistent grid wins when a sequence is one 256-token tile (585 vs 518 TFLOP/s at
    32 x 256 tokens), the plain grid with two programs per multiprocessor at 128 x 128 tokens (507 vs 462).
    """
    if key not in _FORWARD_CHOICE:
        if INTERPRET:
            return "tma"
        from triton.testing import do_bench

        times = {}
        for kind in ("tma", "persistent"):
            launch(kind)  # tunes
            times[kind] = do_bench(lambda: launch(kind), warmup=5, rep=25, return_mode="median")
        _FORWARD_CHOICE[key] = min(times, key=times.get)
    return _FORWARD_CHOICE[key]


def max_pool_triton(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    attention_mask: torch.Tensor, need_argmax: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """SPLADE weights (B, V) float32 and the arg-max token per output (int32, or None), in one kernel launch."""
    B, L, H = hidden.shape
    V = weight.shape[0]
    hidden = hidden if hidden.stride(-1) == 1 else hidden.contiguous()
    weight = weight.to(hidden.dtype).contiguous()
    mask = attention_mask.contiguous()
    mask = mask.view(torch.uint8) if mask.dtype == torch.bool else mask
    out = torch.empty(B, V, dtype=torch.float32, device=hidden.device)
    arg = torch.empty(B, V, dtype=torch.int32, device=hidden.device) if need_argmax else None
    bias_arg = bias.contiguous() if bias is not None else out  # unread when HAS_BIAS is False
    flags = dict(HAS_BIAS=bias is not None, NEED_ARG=need_argmax, PRECISION=_precision(hidden.dtype))
    tail = (_last_unmasked(mask), out, out if arg is None else arg, B, L, H, V, _bucket(L), _bucket(B))

    def launch(kind):
        _launch_forward(kind, hidden, weight, bias_arg, mask, tail, flags)

    if not all(t.data_ptr() % 16 == 0 and H * t.element_size() % 16 == 0 for t in (hidden.contiguous(), weight)):
        launch("pointer")  # the tensor memory accelerator needs 16-byte aligned rows
    elif FORWARD == "auto":
        launch(_pick_forward((_bucket(L), _bucket(B), H, V, hidden.dtype, need_argmax), launch))
    else:
        launch(FORWARD)
    return out, arg


def head_backward_triton(g: torch.Tensor, argmax: torch.Tensor, hidden: torch.Tensor,
                         weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """grad_hidden (hidden's dtype) and grad_weight (weight's dtype) from g = dL/d max-logit (B, V) float32."""
    B, L, H = hidden.shape
    V = weight.shape[0]
    hidden = hidden if hidden.stride(-1) == 1 else hidden.contiguous()
    w = weight.to(hidden.dtype).contiguous()
    g = g.contiguous()
    argmax = argmax.contiguous()
    grad_hidden = torch.empty(B, L, H, dtype=hidden.dtype, device=hidden.device)
    grad_weight = torch.empty(V, H, dtype=weight.dtype, device=hidden.device)
    last = torch.where(g != 0, argmax + 1, 0).amax(1).to(torch.int32)
    peak = g.abs().amax().clamp_min(torch.finfo(torch.float32).tiny)
    scale = torch.exp2(-torch.ceil(torch.log2(peak))).reshape(1)

    def dh_grid(meta):
        return (B * triton.cdiv(L, meta["BLOCK_T"]), triton.cdiv(H, meta["BLOCK_H"]))

    def dw_grid(meta):
        return (triton.cdiv(V, meta["BLOCK_V"]), triton.cdiv(H, meta["BLOCK_H"]))

    _grad_hidden_kernel[dh_grid](w, g, argmax, last, scale, grad_hidden, B, L, H, V, _bucket(L), _bucket(B),
                                 PRECISION=_precision(hidden.dtype))
    _grad_weight_kernel[dw_grid](hidden, g, argmax, grad_weight, B, H, V, hidden.stride(0), hidden.stride(1))
    return grad_hidden, grad_weight
