"""The SPLADE head: log(1 + relu(max over unmasked tokens of hidden @ weight.T + bias)).

Both monotonic functions commute with the max, so the head only needs the running max of the raw logits per
(sequence, vocabulary column) and the token that reached it. The (batch, tokens, vocab) logits never exist in
full: the PyTorch path here walks the vocabulary in chunks, the Triton kernel (``lsr.kernels``) in tiles.
Backward is a gather/scatter through the arg-max token, so no logits are recomputed.
"""

from __future__ import annotations

import torch

_CHUNK_BYTES = 64 * 2**20  # logits of one vocabulary chunk, float32


def _chunk_size(rows: int, vocab: int) -> int:
    return max(256, min(vocab, 2048, _CHUNK_BYTES // (4 * max(rows, 1))))


def _mask_bias(attention_mask: torch.Tensor) -> torch.Tensor:
    """0 for real tokens, -inf for padding, shaped (B, L, 1) to broadcast over a vocabulary chunk."""
    mask = attention_mask.to(torch.bool)
    return torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill_(~mask, float("-inf"))[..., None]


def max_logits_torch(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     attention_mask: torch.Tensor, need_argmax: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Max over unmasked tokens of the float32 logits, and the arg-max token (int32), both (B, V).

    A row with no unmasked token gets -inf (so its output and gradient are 0) and arg-max 0. One reused chunk
    buffer: allocating a fresh one per chunk cost as much as the matrix product itself on CPU (page faults).
    """
    B, L, H = hidden.shape
    V = weight.shape[0]
    h = hidden.reshape(B * L, H).float()
    neg = _mask_bias(attention_mask)
    out = torch.empty(B, V, dtype=torch.float32, device=hidden.device)
    arg = torch.empty(B, V, dtype=torch.int64, device=hidden.device) if need_argmax else None
    step = _chunk_size(B * L, V)
    buf = torch.empty(B * L, step, dtype=torch.float32, device=hidden.device)
    for lo in range(0, V, step):
        hi = min(V, lo + step)
        logits = buf[:, :hi - lo]
        w = weight[lo:hi].float()
        if bias is None:
            torch.mm(h, w.T, out=logits)
        else:
            torch.addmm(bias[lo:hi].float(), h, w.T, out=logits)
        logits = logits.view(B, L, hi - lo).add_(neg)
        if need_argmax:
            torch.max(logits, dim=1, out=(out[:, lo:hi], arg[:, lo:hi]))
        else:
            torch.amax(logits, dim=1, out=out[:, lo:hi])
    return out, (arg.to(torch.int32) if need_argmax else None)


def head_backward(grad_out: torch.Tensor, max_logits: torch.Tensor, argmax: torch.Tensor, hidden: torch.Tensor,
                  weight: torch.Tensor, need_bias: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Gradients of log1p(relu(max logits)) for hidden, weight and bias, by scatter/gather through the arg-max."""
    B, L, H = hidden.shape
    V = weight.shape[0]
    # d/dm log1p(relu(m)) = 1 / (1 + m) where m > 0, else 0 (also for -inf rows)
    pos = max_logits > 0
    g = torch.where(pos, grad_out.float() / (1.0 + max_logits.clamp_min(0)), torch.zeros_like(max_logits))
    grad_hidden = torch.zeros(B * L, H, dtype=torch.float32, device=hidden.device)
    grad_weight = torch.empty(V, H, dtype=torch.float32, device=hidden.device)
    h = hidden.reshape(B * L, H)
    flat_arg = argmax.long() + (torch.arange(B, device=hidden.device) * L)[:, None]  # (B, V) row in B*L
    step = max(256, min(V, _CHUNK_BYTES // (4 * max(B * H, 1))))
    for lo in range(0, V, step):
        hi = min(V, lo + step)
        gc = g[:, lo:hi]                                   # (B, C)
        rows = flat_arg[:, lo:hi]                          # (B, C)
        w = weight[lo:hi].float()                          # (C, H)
        # dW[v] = sum_b g[b, v] * hidden[b, argmax[b, v]]
        grad_weight[lo:hi] = torch.einsum("bc,bch->ch", gc, h[rows.reshape(-1)].float().view(B, hi - lo, H))
        # dhidden[b, t] += g[b, v] * W[v] for the token t that won column v
        grad_hidden.index_add_(0, rows.reshape(-1), (gc[..., None] * w[None]).reshape(-1, H))
    grad_bias = g.sum(0) if need_bias else None
    return grad_hidden.view(B, L, H), grad_weight, grad_bias


class _SpladeMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, attention_mask, forward_fn):
        max_logits, argmax = forward_fn(hidden, weight, bias, attention_mask)
        ctx.save_for_backward(hidden, weight, max_logits, argmax)
        ctx.has_bias = bias is not None
        return torch.log1p(torch.relu(max_logits))

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, max_logits, argmax = ctx.saved_tensors
        gh, gw, gb = head_backward(grad_out, max_logits, argmax, hidden, weight,
                                   ctx.has_bias and ctx.needs_input_grad[2])
        return (gh.to(hidden.dtype) if ctx.needs_input_grad[0] else None,
                gw.to(weight.dtype) if ctx.needs_input_grad[1] else None,
                gb if gb is None else gb.to(weight.dtype), None, None)


def _triton_available(t: torch.Tensor) -> bool:
    if not t.is_cuda:
        return False
    try:
        from lsr.kernels import fused_head  # noqa: F401
    except ImportError:
        return False
    return True


def splade_max_pool(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    attention_mask: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """SPLADE weights (B, V), float32: log(1 + relu(max over unmasked tokens of hidden @ weight.T + bias)).

    hidden (B, L, H), weight (V, H), bias (V,) or None, attention_mask (B, L) of 0/1 or bool.
    backend: "torch" (vocabulary chunks, any device), "triton" (fused kernel, CUDA or TRITON_INTERPRET=1),
    or "auto" (triton on CUDA when installed, else torch). Differentiable in hidden, weight and bias.
    """
    if hidden.dim() != 3 or weight.dim() != 2 or hidden.shape[-1] != weight.shape[-1]:
        raise ValueError(f"expected hidden (B, L, H) and weight (V, H), got {tuple(hidden.shape)} and {tuple(weight.shape)}")
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"attention_mask must be (B, L) = {tuple(hidden.shape[:2])}, got {tuple(attention_mask.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must be ({weight.shape[0]},), got {tuple(bias.shape)}")
    if backend == "auto":
        backend = "triton" if _triton_available(hidden) else "torch"
    if backend == "torch":
        forward_fn = max_logits_torch
    elif backend == "triton":
        from lsr.kernels.fused_head import max_logits_triton as forward_fn
    else:
        raise ValueError(f"unknown backend {backend!r}: expected 'auto', 'torch' or 'triton'")
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (hidden, weight, bias)):
        return _SpladeMaxPool.apply(hidden, weight, bias, attention_mask, forward_fn)
    max_logits, _ = forward_fn(hidden, weight, bias, attention_mask, need_argmax=False)
    return torch.log1p(torch.relu_(max_logits))


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
