"""Answers written as JSON pieces, hit by hit: the search runs when the first piece is asked for (on the search
pool, so a request costs one thread hop), ids and scores come with the ``Answer``, and stored fields and
explanations are read from its snapshot as each piece is written. The pieces go to ``Offload.respond``, which
sends a small answer whole and streams a large one, so the memory an answer takes is bounded by a piece, however
many hits with stored text a request asks for (within the limits, service/limits.py)."""

from __future__ import annotations

import json
import time
from typing import Iterator

from pydantic import TypeAdapter
from pydantic_core import to_json

from lsr.service.batcher import Deferred, Row
from lsr.service.engine import Answer, Engine
from lsr.service.limits import STORED_FIELDS
from lsr.service.models import BatchError, InvalidBatchQuery, QueryTerm, SearchRequest

_TERMS = TypeAdapter(list[QueryTerm])
PIECE_BYTES = 1 << 16   # hits are written in groups of about this many bytes


def search_pieces(engine: Engine, req: SearchRequest, row: Row | Deferred) -> Iterator[bytes]:
    """``SearchResponse`` of one query (its QueryError raised with the first piece)."""
    answer = engine.answer(req, row)
    yield b'{"hits":['
    yield from _hits(engine, answer)
    yield b"]," + _query_terms(engine, answer) + b'"took_ms":' + _number(answer.took_ms) + b"}"


def batch_pieces(engine: Engine, items: list[SearchRequest | InvalidBatchQuery], rows: list,
                 start: float) -> Iterator[bytes]:
    """``BatchResponse``: per query its hits (status 200) or its error; took_ms counts from ``start``
    (``time.perf_counter``) to the searches' end."""
    results = engine.answer_all(items, rows)
    took_ms = (time.perf_counter() - start) * 1000
    yield b'{"results":['
    for i, r in enumerate(results):
        if i:
            yield b","
        if isinstance(r, BatchError):
            yield r.model_dump_json().encode()
            continue
        yield b'{"status":200,"hits":['
        yield from _hits(engine, r)
        yield b"]," + _query_terms(engine, r) + b'"took_ms":' + _number(r.took_ms) + b"}"
    yield b'],"took_ms":' + _number(took_ms) + b"}"


def _hits(engine: Engine, a: Answer) -> Iterator[bytes]:
    """The hits of ``a`` as a JSON list's contents, a group of about PIECE_BYTES at a time. Each hit is a dict in
    ``Hit``'s field order, its None fields left out, serialized by pydantic's Rust encoder: building a ``Hit`` model
    per hit held the GIL 3.7 x longer, which stalled the event loop under large batch answers."""
    group: list[dict] = []
    size, first = 0, True
    for rank, (doc_id, score, key) in enumerate(a.hits, a.req.offset + 1):
        hit = {"id": doc_id, "score": score, "rank": rank}
        if a.req.fields:
            doc = a.snap.document(key)
            for name in STORED_FIELDS:
                if name in a.req.fields and doc[name] is not None:
                    hit[name] = doc[name]
                    size += len(doc[name]) if isinstance(doc[name], str) else len(json.dumps(doc[name]))
        if a.req.explain:
            hit["explanation"] = engine.explain(a.snap, a.row, key)
            size += 96 * len(hit["explanation"])
        group.append(hit)
        size += 64
        if size >= PIECE_BYTES:
            yield (b"" if first else b",") + to_json(group, exclude_none=True)[1:-1]
            group, size, first = [], 0, False
    if group:
        yield (b"" if first else b",") + to_json(group, exclude_none=True)[1:-1]


def _query_terms(engine: Engine, a: Answer) -> bytes:
    """``"query_terms":[...],`` when the request asks to explain, else nothing."""
    if not a.req.explain:
        return b""
    return b'"query_terms":' + _TERMS.dump_json(engine.query_terms(a.row)) + b","


def _number(x: float) -> bytes:
    return json.dumps(x).encode()
