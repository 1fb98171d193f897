"""The forward's product kernel: x @ W.T + b for any rows, inner size and outputs (partial panels, 0-5 rows left
after the 6-row tiles), nothing written past a row's outputs, and each row's result independent of the others."""

import numpy as np
import pytest

from lsr.encoding import gemm


def run(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, pad: int = 0) -> np.ndarray:
    """y through the kernel, into rows of n + pad floats whose pad is a sentinel the kernel must not touch."""
    (m, k), n = x.shape, weight.shape[0]
    w, b = gemm.pack(weight, bias)
    y = np.full((m, n + pad), -7.5, dtype=np.float32)
    gemm.kernel()[1](x.ctypes.data, k, m, k, w.ctypes.data, n, b.ctypes.data, y.ctypes.data, n + pad)
    assert np.all(y[:, n:] == -7.5), "written past the row's outputs"
    return y[:, :n]


@pytest.mark.parametrize(("m", "k", "n"), [(1, 1, 1), (5, 33, 37), (6, 16, 16), (7, 128, 384), (17, 64, 100),
                                           (23, 7, 8), (64, 128, 512)])
def test_products_equal_float64_within_float32_rounding(m, k, n):
    rng = np.random.default_rng(m * 1000 + k + n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    weight = rng.standard_normal((n, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    got = run(x, weight, bias, pad=3)
    want = x.astype(np.float64) @ weight.T.astype(np.float64) + bias
    bound = 2 * (k + 1) * 2.0 ** -24 * (np.abs(x).astype(np.float64) @ np.abs(weight.T) + np.abs(bias))
    assert np.all(np.abs(got - want) <= bound + 1e-30)


def test_a_row_s_result_does_not_depend_on_the_rows_around_it():
    """Rows go through 6-row tiles or the tile of what is left: the same sums in the same order either way."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((17, 96)).astype(np.float32)
    weight = rng.standard_normal((40, 96)).astype(np.float32)
    bias = rng.standard_normal(40).astype(np.float32)
    together = run(x, weight, bias)
    for i in (0, 5, 12, 16):
        assert np.array_equal(run(x[i:i + 1].copy(), weight, bias)[0], together[i])
    assert np.array_equal(run(x[12:].copy(), weight, bias), together[12:])


def test_packing_pads_to_whole_panels():
    w, b = gemm.pack(np.ones((20, 3), np.float32), np.arange(20, dtype=np.float32))
    assert w.shape == (2, 3, gemm.PANEL) and b.shape == (32,)
    assert np.all(w[1, :, 4:] == 0) and np.all(b[20:] == 0) and w.flags["C_CONTIGUOUS"]
