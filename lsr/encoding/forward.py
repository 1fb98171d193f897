"""The transformer forward of the numpy query encoder, compiled with Numba: embeddings, one call per layer, the MLM
head's transform, over the real tokens of all texts of a batch laid end to end (no padding).

Why compiled: a 15-token query's two splade-tiny layers were ~100 numpy calls (reshapes, layer norms, softmax,
erf), each a few microseconds of work behind its own call overhead, and took as long as the products themselves
(2.2 ms of a 5.4 ms query on this 2-core host). Here the products stay BLAS's (``np.dot``: the same sgemm numpy
calls) and the rest are loops. Each text attends to its own tokens only, so a text's states do not depend on the
other texts of its batch, and no work is spent on padding. Functions release the GIL: two threads encode in
parallel. Accumulations of norms and softmax sums are float64 (torch's float32 results to within rounding).
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
def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x @ weight.T + bias; weight (out, in) as a checkpoint stores it."""
    y = np.dot(x, weight.T)
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] += bias[j]
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
            z = abs(v) * np.float32(_SQRT_HALF)
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
def layer(x: np.ndarray, starts: np.ndarray, heads: int, qw, qb, kw, kb, vw, vb, ow, ob, n1w, n1b, uw, ub, dw, db,
          n2w, n2b, eps: float, activation: int) -> np.ndarray:
    """One post-LayerNorm transformer block (BERT's and DistilBERT's) over x (tokens, H); each text attends to its
    own tokens."""
    H = x.shape[1]
    d = H // heads
    q, k, v = _linear(x, qw, qb), _linear(x, kw, kb), _linear(x, vw, vb)
    scale = np.float32(1 / math.sqrt(d))
    context = np.empty_like(x)
    for s in range(starts.shape[0] - 1):
        a, e = starts[s], starts[s + 1]
        for h in range(heads):
            lo, hi = h * d, (h + 1) * d
            scores = np.dot(np.ascontiguousarray(q[a:e, lo:hi]), np.ascontiguousarray(k[a:e, lo:hi]).T)
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
            context[a:e, lo:hi] = np.dot(scores, np.ascontiguousarray(v[a:e, lo:hi]))
    y = _linear(context, ow, ob)
    y += x
    _norm(y, n1w, n1b, eps)
    up = _linear(y, uw, ub)
    _activate(up, activation)
    out = _linear(up, dw, db)
    out += y
    _norm(out, n2w, n2b, eps)
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def transform(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, norm_weight: np.ndarray, norm_bias: np.ndarray,
              eps: float, activation: int) -> np.ndarray:
    """The MLM head's transform: LayerNorm(activation(x @ weight.T + bias))."""
    y = _linear(x, weight, bias)
    _activate(y, activation)
    _norm(y, norm_weight, norm_bias, eps)
    return y
