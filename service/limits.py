"""Limits on what a client may ask, each answered with a clear 4xx before any work is done.

``BodyLimit`` (ASGI middleware) reads the request body itself, so an oversized body gets 413 whether or not it
declares its length, and a body that stalls gets 408 instead of holding a connection forever. The ``check_*``
functions apply the settings' limits that the pydantic models cannot know (k, query length, batch sizes).

The cost of a request is bounded before any work: queries x k by ``max_batch`` and ``max_k``, and the expensive
parts of hits by their sums over the request's queries: hits with stored fields (``max_field_hits``) and hits with
explanations (``max_explain_hits``). Over a limit the whole request gets 422 saying which and by how much; in
/search/batch a query over a per-query limit (k, length, terms, fields) gets its own 422 and the rest is answered.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import HTTPException, status

from lsr.service.models import InvalidBatchQuery, SearchRequest
from lsr.service.settings import Settings

STORED_FIELDS = ("title", "text", "metadata")


class BodyLimit:
    """``streamed``: paths whose bodies the endpoint reads as they arrive, under their own limit (service/ingest.py
    counts them); only a declared length above it is refused here."""

    def __init__(self, app, max_bytes: int, timeout_s: float = 30.0, streamed: dict[str, int] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.streamed = streamed or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if scope["path"] in self.streamed:
            limit = self.streamed[scope["path"]]
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                return await _reject(send, status.HTTP_413_CONTENT_TOO_LARGE,
                                     f"the request body may hold at most {limit} bytes")
            return await self.app(scope, receive, send)
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await _reject(send, status.HTTP_413_CONTENT_TOO_LARGE,
                                 f"the request body may hold at most {self.max_bytes} bytes")
        chunks, size = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except asyncio.TimeoutError:
                return await _reject(send, status.HTTP_408_REQUEST_TIMEOUT,
                                     f"the request body did not arrive within {self.timeout_s:g} s")
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await _reject(send, status.HTTP_413_CONTENT_TOO_LARGE,
                                     f"the request body may hold at most {self.max_bytes} bytes")
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would send it

        await self.app(scope, replay, send)


async def _reject(send, code: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def search_problem(req: SearchRequest, s: Settings) -> str | None:
    """What makes one query exceed the limits, or None."""
    if req.k > s.max_k:
        return f"k may be at most {s.max_k}, got {req.k}"
    if req.k + req.offset > s.max_k:
        return f"k + offset may be at most {s.max_k} (pages reach that deep), got {req.k + req.offset}"
    if req.query is not None and len(req.query) > s.max_query_chars:
        return f"the query may hold at most {s.max_query_chars} characters, got {len(req.query)}"
    n_terms = len(req.indices if req.indices is not None else req.terms or {})
    if n_terms > s.max_query_terms:
        return f"a sparse query may hold at most {s.max_query_terms} terms, got {n_terms}"
    unknown = sorted(set(req.fields) - set(STORED_FIELDS))
    if unknown:
        return f"unknown fields {unknown}; stored fields are {list(STORED_FIELDS)}"
    if len(req.params) > 16:
        return "too many search parameters"
    return None


def check_search(req: SearchRequest, s: Settings) -> None:
    problem = search_problem(req, s)
    if problem:
        raise _unprocessable(problem)
    check_cost([req], s)


def check_batch(queries: list[SearchRequest | InvalidBatchQuery], s: Settings) -> list[SearchRequest | InvalidBatchQuery]:
    """The batch's queries, those over a per-query limit replaced by their error; 422 for the batch as a whole
    (too many queries, or more than the request may cost)."""
    if len(queries) > s.max_batch:
        raise _unprocessable(f"a batch may hold at most {s.max_batch} queries, got {len(queries)}")
    checked = [q if isinstance(q, InvalidBatchQuery) or (p := search_problem(q, s)) is None else InvalidBatchQuery(detail=p)
               for q in queries]
    check_cost([q for q in checked if isinstance(q, SearchRequest)], s)
    return checked


def check_cost(queries: list[SearchRequest], s: Settings) -> None:
    """Hits with stored fields and hits with explanations, summed over the request, within their limits."""
    fields = sum(q.k for q in queries if q.fields)
    explained = sum(q.k for q in queries if q.explain)
    if fields > s.max_field_hits:
        raise _unprocessable(f"this request asks for stored fields of {fields} hits (the sum of k over its queries "
                             f"with fields); at most {s.max_field_hits} per request")
    if explained > s.max_explain_hits:
        raise _unprocessable(f"this request asks to explain {explained} hits (the sum of k over its queries with "
                             f"explain); at most {s.max_explain_hits} per request")
