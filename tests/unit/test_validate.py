"""lsr.core.validate: one wording for every argument check, bools never pass as numbers, float32-safe values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lsr.core import validate
from lsr.core.validate import FLOAT32_TINY


def test_integer_accepts_python_and_numpy_ints_and_returns_a_python_int():
    for value in (5, np.int64(5), np.uint8(5)):
        got = validate.integer("k", value, 1)
        assert got == 5 and type(got) is int


@pytest.mark.parametrize("value,low,high,message", [
    (True, 1, None, "k must be an integer >= 1, got True"),
    (False, 0, None, "k must be an integer >= 0, got False"),
    (0, 1, None, "k must be an integer >= 1, got 0"),
    (2.0, 1, None, "k must be an integer >= 1, got 2.0"),
    ("3", 1, None, "k must be an integer >= 1, got '3'"),
    (None, 1, None, "k must be an integer >= 1, got None"),
    (129, 8, 128, "k must be an integer in 8..128, got 129"),
    (7, 8, 128, "k must be an integer in 8..128, got 7"),
    (9, None, 8, "k must be an integer <= 8, got 9"),
])
def test_integer_refuses_with_the_accepted_range(value, low, high, message):
    with pytest.raises(ValueError) as e:
        validate.integer("k", value, low, high)
    assert str(e.value) == message


def test_number_bounds_open_and_closed():
    assert validate.number("x", 1, 0, 1) == 1.0 and type(validate.number("x", 1, 0, 1)) is float
    assert validate.number("x", np.float32(0.5), 0, 1) == 0.5
    assert validate.number("x", 0, 0, 1) == 0.0
    with pytest.raises(ValueError, match=r"x must be a finite number in \(0, 1\], got 0"):
        validate.fraction("x", 0)
    with pytest.raises(ValueError, match=r"x must be a finite number in \[0, 1\), got 1"):
        validate.number("x", 1, 0, 1, high_open=True)
    with pytest.raises(ValueError, match="x must be a finite number > 0, got -1"):
        validate.number("x", -1, 0, low_open=True)
    for bad in (True, "0.5", None, math.nan, math.inf, -math.inf, [0.5]):
        with pytest.raises(ValueError, match="x must be a finite number"):
            validate.number("x", bad)


def test_float32_values_must_stay_normal():
    """A value that becomes 0 or a subnormal in float32 is refused; the smallest normal float32 and 0 pass."""
    assert np.float32(1e-46) == 0 and 0 < np.float32(1e-40) < FLOAT32_TINY   # what the rule guards against
    assert validate.fraction("alpha", FLOAT32_TINY, float32=True) == FLOAT32_TINY
    assert validate.number("exhaustive", 0, 0, 1, float32=True) == 0.0
    for tiny in (1e-46, 1e-40, 1.1e-38, 5e-324):
        with pytest.raises(ValueError, match="smallest normal float32"):
            validate.fraction("alpha", tiny, float32=True)
        assert validate.fraction("alpha", tiny) == tiny   # without float32 the range alone applies
    with pytest.raises(ValueError, match="smallest normal float32"):
        validate.number("w", -1e-40, -1, 1, float32=True)


def test_choice_compares_type_and_value():
    assert validate.choice("pruning", "fixed", ("fixed", "global")) == "fixed"
    for bad in ("threshold", 1, None):
        with pytest.raises(ValueError, match=r"pruning must be one of \['fixed', 'global'\]"):
            validate.choice("pruning", bad, ("fixed", "global"))
    with pytest.raises(ValueError, match="one of"):
        validate.choice("flag", True, (1, 2))   # True == 1, but it is not the option 1
