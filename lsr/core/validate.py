"""Argument checks shared by every layer, so that every "must be ..." error reads the same and states the accepted
range. ``True`` is an int in Python: no check here lets a bool pass as a number. Each returns the value converted
(a Python int or float, so it also serializes as JSON), or raises ValueError naming the argument."""

from __future__ import annotations

import math
from typing import Any, Collection

import numpy as np

FLOAT32_TINY = float(np.finfo(np.float32).tiny)   # the smallest positive normal float32, ~1.18e-38


def _is_integer(value: Any) -> bool:
    return type(value) is int or isinstance(value, np.integer)   # bool is a subclass of int, not int itself


def _is_real(value: Any) -> bool:
    return type(value) in (float, int) or isinstance(value, (np.floating, np.integer))


def _bounds(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


def integer(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int: an integer (not a bool) in ``[low, high]`` (None: unbounded on that side)."""
    if not _is_integer(value) or (low is not None and value < low) or (high is not None and value > high):
        span = f"in {low}..{high}" if low is not None and high is not None else _bounds(low, high)
        raise ValueError(f"{name} must be an integer {span}".rstrip() + f", got {value!r}")
    return int(value)


def number(name: str, value: Any, low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, float32: bool = False) -> float:
    """``value`` as a float: a finite real number (not a bool) between ``low`` and ``high`` (bounds included unless
    ``low_open`` / ``high_open``). ``float32``: the value reaches a float32 kernel, so it must also be 0 or at least
    the smallest normal float32 in size (a smaller one would become 0 or a subnormal there: a division by zero, or
    a weight that lost its precision)."""
    ok = _is_real(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        span = _bounds(low, high, low_open, high_open)
        raise ValueError(f"{name} must be a finite number {span}".rstrip() + f", got {value!r}")
    if float32 and value != 0 and abs(value) < FLOAT32_TINY:
        span = _bounds(low, high, low_open, high_open)
        raise ValueError(f"{name} must be a number {span} and, unless 0, at least {FLOAT32_TINY:.6g} in size (the "
                         f"smallest normal float32, which the search kernels use), got {value!r}")
    return float(value)


def fraction(name: str, value: Any, *, float32: bool = False) -> float:
    """A share in (0, 1]."""
    return number(name, value, 0, 1, low_open=True, float32=float32)


def choice(name: str, value: Any, options: Collection[Any]) -> Any:
    """``value`` when it is one of ``options`` (compared by type and value: 1 is not "1", True is not 1)."""
    if not any(type(value) is type(o) and value == o for o in options):
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value
