"""Impact quantization: document weights stored as uint8 (one scale per index), float16 or float32.

A stored value v stands for the weight ``v * scale``. uint8 keeps every positive weight at level >= 1 so that no term
silently disappears from a document; the rounding error is at most half a level (``scale / 2``) above that floor.
Numba has no float16, so float16 impacts are stored and passed around as their uint16 bit patterns (for positive
halves, bit order is numeric order) and decoded in kernels by ``impact``.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

from lsr.core import validate

DTYPES = {"uint8": np.uint8, "float16": np.uint16, "float32": np.float32}   # as stored
UINT8_LEVELS = 255


def check_quantization(name: str) -> None:
    validate.choice("quantization", name, sorted(DTYPES))


def scale_for(values: np.ndarray, name: str) -> float:
    """The weight of one stored level: max / 255 for uint8, 1.0 for the float types."""
    check_quantization(name)
    if name != "uint8":
        return 1.0
    top = float(values.max()) if len(values) else 1.0
    return top / UINT8_LEVELS if top > 0 else 1.0


def quantize(values: np.ndarray, name: str, scale: float) -> np.ndarray:
    """Stored values for float32 weights; with uint8, weights above ``255 * scale`` saturate at 255."""
    check_quantization(name)
    if name == "uint8":
        levels = np.rint(values / np.float32(scale))
        return np.clip(levels, 1, UINT8_LEVELS).astype(np.uint8)
    if name == "float16":
        out = values.astype(np.float16)
        # weights below float16's smallest subnormal would vanish; keep them at that floor
        out[out == 0] = np.float16(np.finfo(np.float16).smallest_subnormal)
        return out.view(np.uint16)
    return values.astype(np.float32)


def dequantize(stored: np.ndarray, scale: float) -> np.ndarray:
    """float32 weights of stored impacts (uint16 arrays are float16 bits)."""
    if stored.dtype == np.uint16:
        stored = stored.view(np.float16)
    return stored.astype(np.float32) * np.float32(scale)


def impact(v):
    """Inside Numba kernels: the float32 value of one stored impact (uint8 level, float16 bits, or float32)."""
    return np.float32(v)


# 2 ** (exponent - 25): a half with exponent e > 0 is (1024 + mantissa) * 2 ** (e - 25), a subnormal mantissa * 2 ** -24
_HALF_POW2 = np.array([2.0 ** (max(e, 1) - 25) for e in range(32)], dtype=np.float32)


@overload(impact, jit_options={"cache": True})
def _impact(v):
    if isinstance(v, types.Integer) and v.bitwidth == 16:
        def half_bits(v):
            e = (v >> 10) & 0x1F
            m = v & 0x3FF
            if e > 0:
                m += 1024
            return np.float32(m) * _HALF_POW2[e]
        return half_bits
    return lambda v: np.float32(v)
