"""Documents as a write brings them: a JSON array, or an NDJSON stream (``application/x-ndjson``: one document per
line, parsed as the body arrives, so thousands of documents per request never sit in memory as one JSON text).

Each document has its ``text`` (encoded by the server) or a pre-encoded ``vector`` (``{"indices", "values"}`` or
``{"terms"}``, checked against the index's vocabulary: ids in range, tokens known, weights finite and >= 0, no term
twice, the vocabulary fingerprint when given), plus ``title`` and ``metadata``. Every document is checked before
anything is written: the first bad one ends the request with a 422 that names it (``body[3]``, ``line 12``) and
nothing of the request is written (the writer logs a request as one record: all or nothing).

``POST /documents`` and ``lsr index --append FILE.jsonl`` read their documents through this module and write them
through the same call (``Incoming`` -> ``vectors`` -> the index's ``upsert``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Callable

import numpy as np
from fastapi import HTTPException, status
from pydantic import TypeAdapter, ValidationError

from lsr.core.documents import Document
from lsr.core.sparse import SparseBatch
from lsr.index import InvalidQuery, check_query
from lsr.service.models import DocumentIn, VectorIn, problems

NDJSON = "application/x-ndjson"
_DOCUMENTS = TypeAdapter(list[DocumentIn])


class IngestError(ValueError):
    """A document the request cannot hold, named by where it is (422; nothing of the request is written)."""


@dataclass(frozen=True)
class Limits:
    documents: int         # per request
    document_chars: int    # title + text of one document
    line_bytes: int        # one NDJSON line


@dataclass(frozen=True)
class Vocabulary:
    """What pre-encoded vectors are checked against: the index's vocabulary size and fingerprint, and its tokens
    (for ``{"terms"}``; a callable, as the tokens come with the model, which may still be loading)."""

    size: int
    fingerprint: str | None
    tokens: Callable[[], dict[str, int]]


class Incoming:
    """A request's documents, checked as they are parsed; ``texts`` still to encode, ``vectors`` to assemble."""

    def __init__(self, vocab: Vocabulary, limits: Limits):
        self.vocab = vocab
        self.limits = limits
        self.docs: list[Document] = []
        self.given: list[tuple[np.ndarray, np.ndarray] | None] = []   # pre-encoded vector, or None: encode the text
        self.where: list[str] = []    # where each document was in the request (body[i], line n)
        self._ids: set[str] = set()
        self._rest = b""    # an NDJSON line not complete yet
        self._line = 0

    # ---- formats ------------------------------------------------------------------------------------------------
    def array(self, body: bytes) -> None:
        """A JSON array of documents: read by pydantic's Rust JSON reader in one pass when every document is valid;
        otherwise read again item by item, so the 422 names the first bad one as for NDJSON."""
        try:
            docs = _DOCUMENTS.validate_json(body)
        except ValidationError:
            docs = None
        if docs is not None:
            for i, doc in enumerate(docs):
                self._keep(doc, f"body[{i}]")
        else:
            try:
                items = json.loads(body)
            except ValueError as e:   # JSONDecodeError and UnicodeDecodeError
                raise IngestError(f"the body is not JSON ({e}); send a JSON array of documents, or NDJSON with "
                                  f"Content-Type: {NDJSON}") from None
            if not isinstance(items, list):
                raise IngestError(f"the body must be a JSON array of documents (or NDJSON with Content-Type: "
                                  f"{NDJSON}), got a JSON {type(items).__name__}")
            for i, item in enumerate(items):
                self.add(item, f"body[{i}]")
        if not self.docs:
            raise IngestError("send at least one document")

    def feed(self, chunk: bytes) -> None:
        """The next bytes of an NDJSON body: every line completed by them is parsed and checked now."""
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        if len(self._rest) > self.limits.line_bytes:
            raise IngestError(f"line {self._line + 1}: longer than {self.limits.line_bytes} bytes")
        for raw in lines:
            self._ndjson_line(raw)

    def end(self) -> None:
        """The NDJSON body is complete (its last line may lack a newline)."""
        if self._rest:
            self._ndjson_line(self._rest)
            self._rest = b""
        if not self.docs:
            raise IngestError("send at least one document")

    def _ndjson_line(self, raw: bytes) -> None:
        self._line += 1
        if len(raw) > self.limits.line_bytes:
            raise IngestError(f"line {self._line}: longer than {self.limits.line_bytes} bytes")
        if not raw.strip():
            return   # blank lines (a trailing newline, keep-alive padding) hold no document
        where = f"line {self._line}"
        try:   # parsed and checked in one pass of pydantic's Rust JSON reader: a 5 KB vector line costs a quarter
            doc = DocumentIn.model_validate_json(raw)   # of json.loads and then model_validate
        except ValidationError as e:
            if not any(p["type"] == "json_invalid" for p in e.errors()):
                raise _invalid(e, where) from None
            try:   # Python's reader names what is wrong, and takes lone surrogates (then refused by their field)
                item = json.loads(raw)
            except ValueError as bad:
                raise IngestError(f"{where}: not a JSON document ({bad})") from None
            self.add(item, where)
            return
        self._keep(doc, where)

    # ---- one document -------------------------------------------------------------------------------------------
    def add(self, item: object, where: str) -> None:
        """Checks one document (its fields, the limits, its vector) and keeps it."""
        try:
            doc = DocumentIn.model_validate(item)
        except ValidationError as e:
            raise _invalid(e, where) from None
        self._keep(doc, where)

    def _keep(self, doc: DocumentIn, where: str) -> None:
        if len(self.docs) >= self.limits.documents:
            raise IngestError(f"{where}: at most {self.limits.documents} documents per request")
        if doc.id in self._ids:
            raise IngestError(f"{where}: document ids must be unique within a request; {doc.id!r} came before")
        text = doc.text or ""
        if len(text) + len(doc.title) > self.limits.document_chars:
            raise IngestError(f"{where}: document {doc.id!r} is longer than {self.limits.document_chars} characters")
        vector = None if doc.vector is None else self._vector(doc.vector, where)
        self._ids.add(doc.id)
        self.docs.append(Document(doc.id, text, doc.title, doc.metadata))
        self.given.append(vector)
        self.where.append(where)

    def _vector(self, v: VectorIn, where: str) -> tuple[np.ndarray, np.ndarray]:
        vocab = self.vocab
        if v.vocab_fingerprint and vocab.fingerprint and v.vocab_fingerprint != vocab.fingerprint:
            raise IngestError(f"{where}: vector: its vocabulary (fingerprint {v.vocab_fingerprint}) is not the "
                              f"index's ({vocab.fingerprint}); encode it with the index's model")
        if v.terms is not None:
            tokens = vocab.tokens()
            unknown = [t for t in v.terms if t not in tokens]
            if unknown:
                raise IngestError(f"{where}: vector: tokens not in the index's vocabulary: {unknown[:10]}")
            ids = np.fromiter((tokens[t] for t in v.terms), np.int64, len(v.terms))
            values = np.fromiter(v.terms.values(), np.float32, len(v.terms))
        else:
            ids, values = np.asarray(v.indices, dtype=np.int64), v.values
        try:
            return check_query(ids, values, vocab.size, what="document vector")
        except InvalidQuery as e:
            raise IngestError(f"{where}: vector: {e}") from None

    # ---- vectors ------------------------------------------------------------------------------------------------
    @property
    def texts(self) -> list[str]:
        """The texts the server encodes: those of the documents without a vector, in order."""
        return [d.full_text for d, v in zip(self.docs, self.given) if v is None]

    def vectors(self, encoded: SparseBatch | None) -> SparseBatch:
        """Every document's vector in order: its own, or the next row of ``encoded`` (the encoder's of ``texts``)."""
        rows = iter(range(len(encoded))) if encoded is not None else iter(())
        return SparseBatch.from_rows([v if v is not None else encoded.row(next(rows)) for v in self.given],
                                     self.vocab.size)

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self.docs]


def _invalid(e: ValidationError, where: str) -> IngestError:
    return IngestError(f"{where}: " + "; ".join(
        f"{'.'.join(str(x) for x in p['loc']) or 'document'}: {p['msg']}" for p in problems(e.errors())))


async def receive(request, incoming: Incoming, max_bytes: int, timeout_s: float = 30.0) -> None:
    """Reads a write request's body into ``incoming`` as it arrives (413 past ``max_bytes``, 408 when it stalls,
    415 for a type that is neither JSON nor NDJSON); the parsing runs off the event loop, chunk by chunk."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in ("application/json", NDJSON):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"send documents as application/json (an "
                            f"array) or {NDJSON} (one per line), not {kind}")
    chunks, size, stream = [], 0, request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), timeout_s)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise HTTPException(status.HTTP_408_REQUEST_TIMEOUT, f"the request body stalled for {timeout_s:g} s")
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"the request body may hold at most {max_bytes} "
                                "bytes; send the documents in several requests")
        if kind == NDJSON:
            await asyncio.to_thread(incoming.feed, chunk)
        else:
            chunks.append(chunk)
    if kind == NDJSON:
        incoming.end()
    else:
        await asyncio.to_thread(incoming.array, b"".join(chunks))


def read_file(path, vocab: Vocabulary, limits: Limits, chunk_bytes: int = 1 << 20) -> Incoming:
    """The documents of an NDJSON file (``lsr index --append``), read and checked as the service reads a body."""
    incoming = Incoming(vocab, limits)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            incoming.feed(chunk)
    incoming.end()
    return incoming
