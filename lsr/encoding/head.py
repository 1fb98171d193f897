"""The SPLADE head: log(1 + relu(max over unmasked tokens of hidden @ weight.T + bias)).

Both monotonic functions commute with the max, so the head only needs the running max of the raw logits per
(sequence, vocabulary column) and the token that reached it. The (batch, tokens, vocab) logits never exist in
full: the PyTorch path here walks the vocabulary in chunks, the Triton kernels (``lsr.kernels.fused_head``) in
tiles. Backward is a gather/scatter through the arg-max token, so no logits are recomputed.
"""

from __future__ import annotations

import functools
import os

import torch

_CHUNK_BYTES = 64 * 2**20  # logits of one vocabulary chunk, float32


def _chunk_size(rows: int, vocab: int) -> int:
    return max(256, min(vocab, 2048, _CHUNK_BYTES // (4 * max(rows, 1))))


def _mask_bias(attention_mask: torch.Tensor) -> torch.Tensor:
    """0 for real tokens, -inf for padding, shaped (B, L, 1) to broadcast over a vocabulary chunk."""
    mask = attention_mask.to(torch.bool)
    return torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill_(~mask, float("-inf"))[..., None]


def _half_mm_f32(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor | None:
    """h @ w.T with float32 output from 16-bit CUDA operands (tensor cores, no rounded logits), if torch can."""
    try:
        return torch.mm(h, w.T, out_dtype=torch.float32)
    except (TypeError, RuntimeError, NotImplementedError):
        return None


def max_pool_torch(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   attention_mask: torch.Tensor, need_argmax: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """SPLADE weights (B, V) float32 and the arg-max token per output (int32), walking the vocabulary in chunks.

    A row with no unmasked token has max logit -inf, so weight 0, gradient 0 and arg-max 0. On the CPU one chunk
    buffer is reused: allocating a fresh one per chunk cost as much as the matrix product itself (page faults).
    16-bit CUDA operands are multiplied on the tensor cores with float32 output where torch supports it.
    """
    B, L, H = hidden.shape
    V = weight.shape[0]
    neg = _mask_bias(attention_mask)
    out = torch.empty(B, V, dtype=torch.float32, device=hidden.device)
    arg = torch.empty(B, V, dtype=torch.int64, device=hidden.device) if need_argmax else None
    step = _chunk_size(B * L, V)
    half_cuda = hidden.is_cuda and hidden.dtype in (torch.float16, torch.bfloat16) and weight.dtype == hidden.dtype
    h = hidden.reshape(B * L, H)
    h32 = None if half_cuda else h.float()
    buf = None if half_cuda else torch.empty(B * L, step, dtype=torch.float32, device=hidden.device)
    for lo in range(0, V, step):
        hi = min(V, lo + step)
        logits = _half_mm_f32(h, weight[lo:hi]) if half_cuda else None
        if logits is None:
            h32 = h.float() if h32 is None else h32
            logits = buf[:, :hi - lo] if buf is not None else torch.empty(B * L, hi - lo, device=hidden.device)
            torch.mm(h32, weight[lo:hi].float().T, out=logits)
        if bias is not None:
            logits += bias[lo:hi].float()
        logits = logits.view(B, L, hi - lo).add_(neg)
        if need_argmax:
            torch.max(logits, dim=1, out=(out[:, lo:hi], arg[:, lo:hi]))
        else:
            torch.amax(logits, dim=1, out=out[:, lo:hi])
    return out.clamp_min_(0).log1p_(), (arg.to(torch.int32) if need_argmax else None)


def head_backward_torch(g: torch.Tensor, argmax: torch.Tensor, hidden: torch.Tensor,
                        weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """grad_hidden and grad_weight (float32) from g = dL/d max-logit (B, V), by gather/scatter through the arg-max.

    Only the outputs that carry a gradient are visited: g is zero wherever ReLU clipped the output, which for a
    trained SPLADE model is all but a few hundred of the V columns per row, so training on a CPU costs a sliver
    of the dense walk. Entries are taken in slices of bounded memory (an untrained model's g can be dense).
    """
    B, L, H = hidden.shape
    V = weight.shape[0]
    grad_hidden = torch.zeros(B * L, H, dtype=torch.float32, device=hidden.device)
    grad_weight = torch.zeros(V, H, dtype=torch.float32, device=hidden.device)
    h = hidden.reshape(B * L, H)
    b, v = torch.nonzero(g, as_tuple=True)
    step = max(1024, _CHUNK_BYTES // (4 * max(H, 1)))
    for lo in range(0, len(b), step):
        bs, vs = b[lo:lo + step], v[lo:lo + step]
        gv = g[bs, vs][:, None]                            # (N, 1)
        rows = bs * L + argmax[bs, vs].long()              # the token that won each (row, column)
        # dW[v] = sum_b g[b, v] * hidden[b, argmax[b, v]]
        grad_weight.index_add_(0, vs, gv * h[rows].float())
        # dhidden[b, t] += g[b, v] * W[v] for the token t that won column v
        grad_hidden.index_add_(0, rows, gv * weight[vs].float())
    return grad_hidden.view(B, L, H), grad_weight


def splade_max_pool_reference(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                              attention_mask: torch.Tensor) -> torch.Tensor:
    """The textbook SPLADE head, materialising (B, L, V) logits: the reference for tests and benchmarks."""
    logits = hidden @ weight.T
    if bias is not None:
        logits = logits + bias
    weights = torch.log1p(torch.relu(logits)) * attention_mask.to(logits.dtype)[..., None]
    return weights.max(dim=1).values


class _SpladeMaxPool(torch.autograd.Function):
    """Saves the output y and the arg-max: d y / d max-logit = 1 / (1 + m) = exp(-y) where y > 0, else 0."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, attention_mask, forward_fn, backward_fn):
        weights, argmax = forward_fn(hidden, weight, bias, attention_mask, need_argmax=True)
        ctx.save_for_backward(hidden, weight, weights, argmax)
        ctx.backward_fn = backward_fn
        ctx.bias_dtype = None if bias is None else bias.dtype
        return weights

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, weights, argmax = ctx.saved_tensors
        g = torch.where(weights > 0, grad_out.float() * torch.exp(-weights), 0.0)
        gh = gw = gb = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            gh, gw = ctx.backward_fn(g, argmax, hidden, weight)
            gh = gh.to(hidden.dtype) if ctx.needs_input_grad[0] else None
            gw = gw.to(weight.dtype) if ctx.needs_input_grad[1] else None
        if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
            gb = g.sum(0).to(ctx.bias_dtype)
        return gh, gw, gb, None, None, None


def triton_available(device: torch.device | str) -> bool:
    """Whether ``backend="auto"`` uses the Triton kernels for tensors on this device."""
    return torch.device(device).type == "cuda" and _triton_imports()


def resolve_backend(backend: str, device: torch.device | str, grad: bool = False) -> str:
    """The backend that ``backend="auto"`` means for tensors on ``device``; any other name is returned as given."""
    if backend != "auto":
        return backend
    if triton_available(device):
        return "triton"
    if torch.device(device).type == "cpu" and not grad:
        from lsr.encoding.screen import available

        if available():
            return "screen"
    return "torch"


@functools.cache
def _triton_imports() -> bool:
    try:
        from lsr.encoding.kernels import fused_head  # noqa: F401
    except ImportError:
        return False
    return True


def splade_max_pool(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    attention_mask: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """SPLADE weights (B, V), float32: log(1 + relu(max over unmasked tokens of hidden @ weight.T + bias)).

    hidden (B, L, H), weight (V, H), bias (V,) or None, attention_mask (B, L) of 0/1 or bool.
    backend: "torch" (vocabulary chunks, any device), "triton" (fused kernels, CUDA or TRITON_INTERPRET=1),
    "screen" (CPU inference: integer bounds pick the columns that can be non-zero, those are computed in float32;
    the same vectors, ``lsr.encoding.screen``), or "auto" (triton on CUDA when installed; on the CPU the screen
    when no gradient is needed and the CPU has AVX2; else torch). Differentiable in hidden, weight and bias
    (the screen is not: it refuses tensors that need a gradient).
    """
    if hidden.dim() != 3 or weight.dim() != 2 or hidden.shape[-1] != weight.shape[-1]:
        raise ValueError(f"expected hidden (B, L, H) and weight (V, H), got {tuple(hidden.shape)} and {tuple(weight.shape)}")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"attention_mask must be (B, L) = {tuple(hidden.shape[:2])}, got {tuple(attention_mask.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must be ({weight.shape[0]},), got {tuple(bias.shape)}")
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (hidden, weight, bias))
    backend = resolve_backend(backend, hidden.device, grad)
    if backend == "screen":
        if grad:
            raise ValueError("backend='screen' is inference-only: use 'torch' (or 'auto') where gradients are needed")
        from lsr.encoding.screen import max_pool_screened

        if 0 in hidden.shape[:2] or weight.shape[0] == 0:
            return torch.zeros(hidden.shape[0], weight.shape[0], dtype=torch.float32, device=hidden.device)
        return max_pool_screened(hidden, weight, bias, attention_mask)
    if backend == "torch":
        forward_fn, backward_fn = max_pool_torch, head_backward_torch
    elif backend == "triton":
        if not hidden.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(f"backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1), got {hidden.device}")
        from lsr.encoding.kernels.fused_head import head_backward_triton as backward_fn
        from lsr.encoding.kernels.fused_head import max_pool_triton as forward_fn
    else:
        raise ValueError(f"unknown backend {backend!r}: expected 'auto', 'torch', 'triton' or 'screen'")
    if 0 in hidden.shape[:2] or weight.shape[0] == 0:  # no tokens: every max is -inf, every weight 0
        return torch.zeros(hidden.shape[0], weight.shape[0], dtype=torch.float32, device=hidden.device)
    if grad:
        return _SpladeMaxPool.apply(hidden, weight, bias, attention_mask, forward_fn, backward_fn)
    return forward_fn(hidden, weight, bias, attention_mask, need_argmax=False)[0]


@torch.no_grad()
def splade_sum_pool(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    attention_mask: torch.Tensor) -> torch.Tensor:
    """The ``pooling="sum"`` variant: sum over unmasked tokens of log(1 + relu(logits)), in vocabulary chunks."""
    B, L, H = hidden.shape
    V = weight.shape[0]
    h = hidden.reshape(B * L, H).float()
    keep = attention_mask.to(torch.float32).reshape(B, L, 1)
    out = torch.empty(B, V, dtype=torch.float32, device=hidden.device)
    step = _chunk_size(B * L, V)
    for lo in range(0, V, step):
        hi = min(V, lo + step)
        w = weight[lo:hi].float()
        logits = h @ w.T if bias is None else torch.addmm(bias[lo:hi].float(), h, w.T)
        out[:, lo:hi] = (torch.log1p(torch.relu(logits)).view(B, L, hi - lo) * keep).sum(1)
    return out
