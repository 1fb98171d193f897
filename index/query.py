"""Checking one query in a single Numba pass, so a valid query costs microseconds before the search starts."""

from __future__ import annotations

import numba as nb
import numpy as np

QUERY_OK = 0           # ids ascending and unique, in range; weights finite and > 0
QUERY_UNSORTED = 1     # valid but needs cleaning: ids out of order (or repeated), or zero weights to drop
QUERY_BAD_TERM = 2     # an id outside [0, vocab_size)
QUERY_BAD_WEIGHT = 3   # a negative, NaN or infinite weight


@nb.njit(cache=True, nogil=True)
def query_status(ids, weights, vocab_size) -> int:
    status = QUERY_OK
    for i in range(len(ids)):
        t = ids[i]
        w = weights[i]
        if t < 0 or t >= vocab_size:
            return QUERY_BAD_TERM
        if not (w >= 0.0) or w == np.inf:
            return QUERY_BAD_WEIGHT
        if w == 0.0 or (i > 0 and t <= ids[i - 1]):
            status = QUERY_UNSORTED
    return status
