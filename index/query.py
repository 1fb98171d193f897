"""The one check of a query vector (term ids, weights) before any search: a single Numba pass, so a valid query
costs microseconds; a query that needs cleaning (ids out of order, zero weights) is cleaned, a bad one is refused
with ``InvalidQuery``. ``Index.search_one`` and the service call it alike."""

from __future__ import annotations

import numba as nb
import numpy as np

from lsr.index.errors import InvalidQuery

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


def check_query(q_indices, q_values, vocab_size: int, what: str = "query") -> tuple[np.ndarray, np.ndarray]:
    """(term ids int32 ascending, weights float32 > 0) of a query over a vocabulary of ``vocab_size`` terms:
    zero weights dropped, ids sorted. InvalidQuery for arrays that are not 1-d of equal length, ids that are not
    integers or lie outside [0, vocab_size), weights that are negative, NaN or infinite, or a repeated id.
    ``what`` names the vector in the messages (a document's vector is checked the same way)."""
    idx = np.asarray(q_indices)
    try:
        val = np.asarray(q_values, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InvalidQuery(f"{what} weights must be numbers: {e}") from e
    if idx.ndim != 1 or val.ndim != 1 or len(idx) != len(val):
        raise InvalidQuery(f"a {what} is two 1-d arrays of equal length, got shapes {idx.shape} and {val.shape}")
    if len(idx) and not np.issubdtype(idx.dtype, np.integer):
        raise InvalidQuery(f"{what} term ids must be integers, got {idx.dtype}")
    status = query_status(idx, val, vocab_size)
    if status == QUERY_OK:
        return idx.astype(np.int32, copy=False), val
    if status == QUERY_BAD_TERM:
        bad = int(idx[(idx < 0) | (idx >= vocab_size)][0])
        raise InvalidQuery(f"{what} term ids must lie in [0, {vocab_size}) (the index's vocabulary), got {bad}"
                           + (f": the {what} comes from another vocabulary" if bad > 0 else ""))
    if status == QUERY_BAD_WEIGHT:
        raise InvalidQuery(f"{what} weights must be finite and >= 0")
    keep = val > 0   # QUERY_UNSORTED: zero weights to drop or ids out of order
    idx, val = idx[keep].astype(np.int32), val[keep]
    order = np.argsort(idx, kind="stable")
    idx, val = idx[order], val[order]
    if len(idx) > 1 and np.any(idx[1:] == idx[:-1]):
        raise InvalidQuery(f"{what} term ids must be unique, got {int(idx[1:][idx[1:] == idx[:-1]][0])} twice")
    return idx, val
