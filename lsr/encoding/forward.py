"""The transformer forward of the numpy query encoder, compiled with Numba: embeddings, one call per layer, the MLM
head's transform, over the real tokens of all texts of a batch laid end to end (no padding).

Why compiled: a 15-token query's two splade-tiny layers were ~100 numpy calls (reshapes, layer norms, softmax,
erf), each a few microseconds of work behind its own call overhead, and took as long as the products themselves
(2.2 ms of a 5.4 ms query on this 2-core host). Here the weight products go through ``lsr.encoding.gemm``'s kernel
(passed in as ``linear``), the attention's small per-text products through BLAS (``np.dot``), and the rest are
loops. Each text attends to its own tokens only, so a text's states do not depend on the other texts of its batch,
and no work is spent on padding. Functions release the GIL: two threads encode in parallel. Accumulations of norms
and softmax sums are float64 (torch's float32 results to within rounding). Numpy's error model: a division by zero
gives inf instead of raising, so loops with a division vectorize (the GELU loop ran 4 x faster).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

ACTIVATIONS = {"gelu": 0, "gelu_new": 1, "gelu_pytorch_tanh": 1, "relu": 2}   # the kernels' activation codes

_SQRT_HALF = 1 / math.sqrt(2)
_TANH_SCALE = math.sqrt(2 / math.pi)


@njit(cache=True, nogil=True, error_model="numpy")
def _norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> None:
    """LayerNorm of each row of x (n, H), in place."""
    n, H = x.shape
    for i in range(n):
        mean = 0.0
        for j in range(H):
            mean += x[i, j]
        mean /= H
        var = 0.0
        for j in range(H):
            c = x[i, j] - mean
            var += c * c
        scale = 1.0 / math.sqrt(var / H + eps)
        for j in range(H):
            x[i, j] = np.float32((x[i, j] - mean) * scale) * weight[j] + bias[j]


@njit(cache=True, nogil=True, error_model="numpy")
def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, size: int, linear) -> np.ndarray:
    """x @ W.T + b (rows, size) through the product kernel ``linear`` (``lsr.encoding.gemm``: weight and bias
    packed); x C-contiguous."""
    y = np.empty((x.shape[0], size), dtype=np.float32)
    linear(x.ctypes.data, x.shape[1], x.shape[0], weight.shape[1], weight.ctypes.data, size, bias.ctypes.data,
           y.ctypes.data, size)
    return y


# erf(z) = 1 - 1 / (1 + a1 z + ... + a6 z^6)^16 for z >= 0, within 3e-7 (Abramowitz & Stegun 7.1.28): no exp, so
# the loop vectorizes (libm's erf does not without SVML: 3-4 x slower, 0.1 ms of a short query)
_ERF = tuple(np.float32(a) for a in (0.0705230784, 0.0422820123, 0.0092705272, 0.0001520143, 0.0002765672,
                                     0.0000430638))


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"nnan", "ninf", "nsz", "contract", "reassoc", "arcp"})
def _gelu_erf(x: np.ndarray) -> None:
    """GELU of x (n, m) float32, in place: 0.5 x (1 + erf(x / sqrt 2)), within 1e-6 of torch's."""
    a1, a2, a3, a4, a5, a6 = _ERF
    one = np.float32(1)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            v = x[i, j]
            # erf is 1 in float32 from z = 3.9 on; beyond z ~ 17 the power below overflows, and the vectorized
            # reciprocal of inf (an estimate refined by a Newton step) is NaN, not 0
            z = min(abs(v) * np.float32(_SQRT_HALF), np.float32(4))
            p = one + z * (a1 + z * (a2 + z * (a3 + z * (a4 + z * (a5 + z * a6)))))
            p *= p
            p *= p
            p *= p
            p *= p
            x[i, j] = np.float32(0.5) * v * (one + math.copysign(one - one / p, v))


@njit(cache=True, nogil=True, error_model="numpy")
def _activate(x: np.ndarray, code: int) -> None:
    """GELU (erf: 0, tanh: 1) or ReLU (2) of x (n, m), in place."""
    if code == 0:
        _gelu_erf(x)
        return
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            v = np.float64(x[i, j])
            if code == 1:
                x[i, j] = 0.5 * v * (1.0 + math.tanh(_TANH_SCALE * (v + 0.044715 * v * v * v)))
            else:
                x[i, j] = max(v, 0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def embed(ids: np.ndarray, starts: np.ndarray, words: np.ndarray, positions: np.ndarray, token_type: np.ndarray,
          weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """The normed embeddings (tokens, H) of texts laid end to end: text s is ids[starts[s]:starts[s + 1]]."""
    x = np.empty((ids.shape[0], words.shape[1]), dtype=np.float32)
    for s in range(starts.shape[0] - 1):
        for t in range(starts[s], starts[s + 1]):
            p = t - starts[s]
            for j in range(words.shape[1]):
                x[t, j] = words[ids[t], j] + positions[p, j] + token_type[j]
    _norm(x, weight, bias, eps)
    return x


@njit(cache=True, nogil=True, error_model="numpy")
def layer(x: np.ndarray, starts: np.ndarray, heads: int, qkv_w, qkv_b, out_w, out_b, n1w, n1b, up_w, up_b,
          up_size: int, down_w, down_b, n2w, n2b, eps: float, activation: int, linear) -> np.ndarray:
    """One post-LayerNorm transformer block (BERT's and DistilBERT's) over x (tokens, H); each text attends to its
    own tokens. Weights packed as ``lsr.encoding.gemm.pack`` lays them out, query, key and value in one."""
    H = x.shape[1]
    d = H // heads
    qkv = _linear(x, qkv_w, qkv_b, 3 * H, linear)
    scale = np.float32(1 / math.sqrt(d))
    context = np.empty_like(x)
    for s in range(starts.shape[0] - 1):
        a, e = starts[s], starts[s + 1]
        for h in range(heads):
            lo, hi = h * d, (h + 1) * d
            q = np.ascontiguousarray(qkv[a:e, lo:hi])
            k = np.ascontiguousarray(qkv[a:e, H + lo:H + hi])
            scores = np.dot(q, k.T)
            for i in range(e - a):
                top = -np.inf
                for j in range(e - a):
                    scores[i, j] *= scale
                    top = max(top, scores[i, j])
                total = 0.0
                for j in range(e - a):
                    scores[i, j] = math.exp(scores[i, j] - top)
                    total += scores[i, j]
                for j in range(e - a):
                    scores[i, j] = scores[i, j] / total
            context[a:e, lo:hi] = np.dot(scores, np.ascontiguousarray(qkv[a:e, 2 * H + lo:2 * H + hi]))
    y = _linear(context, out_w, out_b, H, linear)
    y += x
    _norm(y, n1w, n1b, eps)
    up = _linear(y, up_w, up_b, up_size, linear)
    _activate(up, activation)
    out = _linear(up, down_w, down_b, H, linear)
    out += y
    _norm(out, n2w, n2b, eps)
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def transform(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, norm_weight: np.ndarray, norm_bias: np.ndarray,
              eps: float, activation: int, linear) -> np.ndarray:
    """The MLM head's transform: LayerNorm(activation(x @ W.T + b)), W packed."""
    y = _linear(x, weight, bias, x.shape[1], linear)
    _activate(y, activation)
    _norm(y, norm_weight, norm_bias, eps)
    return y
