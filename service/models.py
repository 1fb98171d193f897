"""The HTTP API's request and response bodies. Unknown fields are refused (422), so a misspelt option never goes
silently unused. Size limits that depend on settings (k, query length, batch size) are checked in service/limits.py.

Text, the rule at the edge: every string of a request (query, tokens, method, field and parameter names, document
ids, titles and texts) must be valid Unicode. JSON can escape a lone surrogate (``"\ud800"``) that no UTF-8 text can
hold; such a string is refused with 422 naming the field, before it reaches the tokenizer, the log or the store.
Control characters are text: accepted and kept as sent (the tokenizer drops them). Document ids, which are also URL
path segments and lines of run files, may not hold control characters (U+0000-U+001F, U+007F-U+009F), nor be "." or
".." (HTTP clients rewrite those paths); "/" and every other character are allowed (see ``DocumentIn``).

In /search/batch each query is validated on its own: an invalid one becomes that query's 422 in the answer, and the
others are answered (``BatchResponse``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError,
                      model_validator)

from lsr.core.metadata import Metadata
from lsr.index.filters import Filter

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _unicode(value: str) -> str:
    bad = _SURROGATE.search(value)
    if bad:
        raise ValueError(f"lone surrogate U+{ord(bad.group()):04X} at position {bad.start()}: text must be valid "
                         "Unicode")
    return value


def _doc_id(value: str) -> str:
    bad = _CONTROL.search(value)
    if bad:
        raise ValueError(f"control character U+{ord(bad.group()):04X} at position {bad.start()}: document ids may "
                         "not hold control characters")
    if value in (".", ".."):
        raise ValueError("a document id may not be '.' or '..' (HTTP clients rewrite such paths)")
    return value


Text = Annotated[str, AfterValidator(_unicode)]
DocId = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_unicode), AfterValidator(_doc_id)]


def _unicode_metadata(value: dict[str, Any]) -> dict[str, Any]:
    for key, v in value.items():
        for text in (key, *(v if isinstance(v, list) else [v])):
            if isinstance(text, str):
                _unicode(text)
    return value
Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]
TermId = Annotated[int, Field(ge=0, lt=2**31)]
Param = Annotated[int, Field(ge=-2**31, lt=2**31)] | Annotated[float, Field(allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hybrid(Strict):
    """Fuse the SPLADE ranking with BM25's (the service started with --hybrid: a live BM25 side over the stored
    texts, see README "Serve")."""

    fusion: Literal["rrf", "linear"] = Field("rrf", description="rrf (reciprocal rank fusion) or linear "
                                                                 "(min-max normalised scores, weighted sum)")
    weight: float = Field(0.5, ge=0, le=1, description="SPLADE's weight; BM25 gets 1 - weight")
    rrf_k: float = Field(60.0, ge=0, le=1e6, description="the k of reciprocal rank fusion")
    depth: int = Field(100, ge=1, le=1000, description="hits taken from each ranking before fusing")


class SearchRequest(Strict):
    """One query, given as text (encoded by the index's model), as a sparse vector, or as {token: weight}."""

    query: Text | None = Field(None, description="query text", examples=["what causes cancer"])
    indices: list[TermId] | None = Field(None, description="sparse query: vocabulary term ids")
    values: list[Weight] | None = Field(None, description="sparse query: weights, one per term id")
    terms: dict[Text, Weight] | None = Field(None, description="sparse query by token: {token: weight}")
    vocab_fingerprint: Text | None = Field(None, description="vocabulary the sparse query comes from (checked)")
    k: int = Field(10, ge=1, lt=2**31, description="number of hits")
    offset: int = Field(0, ge=0, lt=2**31, description="hits to skip: the page of ranks offset + 1 to offset + k "
                                                         "(ties broken by document, so exact pages never overlap)")
    filter: Filter | None = Field(None, description="only documents whose metadata this allows (Qdrant's shape: "
                                                    "must / should / must_not of key+match, key+range, has_id)",
                                  examples=[{"must": [{"key": "lang", "match": {"value": "en"}},
                                                      {"key": "year", "range": {"gte": 2020}}]}])
    method: Text = Field("exact", description="exact, bmp or seismic (as built into the index)")
    params: dict[Text, Param] = Field(default_factory=dict, description="the method's search parameters",
                                      examples=[{"alpha": 0.9}])
    explain: bool = Field(False, description="per hit, the query terms that contributed and how much (hits "
                                             "explained per request are limited: LSR_MAX_EXPLAIN_HITS)")
    fields: list[Text] = Field(default_factory=list, description="stored fields to return: title, text, "
                                                                  "metadata (hits "
                                                                  "with stored fields per request are limited: "
                                                                  "LSR_MAX_FIELD_HITS)")
    hybrid: Hybrid | None = None

    @model_validator(mode="after")
    def _one_query(self) -> "SearchRequest":
        given = [name for name, v in (("query", self.query), ("indices", self.indices), ("terms", self.terms))
                 if v is not None]
        if len(given) != 1 or (self.values is not None and self.indices is None):
            raise ValueError("give exactly one of 'query' (text), 'indices'+'values' (sparse) or 'terms' "
                             f"({{token: weight}}); got {given or 'none'}")
        if self.indices is not None and (self.values is None or len(self.values) != len(self.indices)):
            raise ValueError("'indices' and 'values' must have the same length")
        if self.hybrid is not None and self.query is None:
            raise ValueError("hybrid search needs a text 'query' (BM25 analyses the text)")
        if self.hybrid is not None and self.filter is not None:
            raise ValueError("filters are not available with hybrid search (the BM25 side stores no metadata); ask "
                             "without 'hybrid'")
        if self.hybrid is not None and self.explain:
            raise ValueError("explain is not available with hybrid search (BM25 scores are not per-term sums of "
                             "SPLADE weights); ask without 'hybrid' to see the SPLADE terms")
        return self


class InvalidBatchQuery(BaseModel):
    """A /search/batch query that failed validation or a limit: why (answered as that query's 422)."""

    detail: list[dict] | str


def _one_query(value: Any) -> SearchRequest | InvalidBatchQuery:
    try:
        return SearchRequest.model_validate(value)
    except ValidationError as e:
        return InvalidBatchQuery(detail=problems(e.errors()))


def problems(errors: list[dict]) -> list[dict]:
    """Validation errors as where and what, without echoing the input (it may be large, or hold what JSON cannot
    carry: NaN, lone surrogates)."""
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors]


BatchQuery = Annotated[SearchRequest | InvalidBatchQuery, PlainValidator(_one_query, json_schema_input_type=SearchRequest)]


class BatchRequest(Strict):
    queries: list[BatchQuery] = Field(..., min_length=1, description="each validated on its own: an invalid query "
                                                                      "gets its own 422 in the answer")


class Contribution(BaseModel):
    term: str = Field(description="the vocabulary token")
    id: int = Field(description="its term id")
    query_weight: float
    doc_weight: float
    score: float = Field(description="query_weight * doc_weight; the hit's score is their sum")


class Hit(BaseModel):
    id: str
    score: float
    rank: int
    title: str | None = None
    text: str | None = None
    metadata: dict[str, Any] | None = None
    explanation: list[Contribution] | None = None


class QueryTerm(BaseModel):
    term: str = Field(description="the vocabulary token")
    id: int = Field(description="its term id")
    weight: float


class SearchResponse(BaseModel):
    hits: list[Hit]
    query_terms: list[QueryTerm] | None = Field(None, description="with explain: the query's own terms, heaviest "
                                                "first (a text query's expansion by the model)")
    took_ms: float


class BatchHits(SearchResponse):
    status: Literal[200] = 200


class BatchError(BaseModel):
    status: int = Field(description="what this query alone would get: 422 (invalid or unanswerable query), 503 "
                                    "(the query encoder is not loaded: retry)")
    detail: Any


class BatchResponse(BaseModel):
    """200 whenever the batch as a whole is valid: each query's outcome is in ``results``, in order."""

    results: list[BatchHits | BatchError] = Field(description="per query: its hits (status 200) or its own error")
    took_ms: float


class VectorIn(Strict):
    """A document's pre-encoded sparse vector: term ids and weights, or {token: weight}; checked against the index's
    vocabulary (ids in range, tokens known, weights finite and >= 0, no term twice)."""

    indices: list[TermId] | None = Field(None, description="vocabulary term ids")
    values: list[Weight] | None = Field(None, description="weights, one per term id")
    terms: dict[Text, Weight] | None = Field(None, description="{token: weight}")
    vocab_fingerprint: Text | None = Field(None, description="vocabulary the vector comes from (checked)")

    @model_validator(mode="after")
    def _one_form(self) -> "VectorIn":
        if (self.terms is None) == (self.indices is None) or (self.indices is None) != (self.values is None):
            raise ValueError("give 'indices' and 'values', or 'terms' ({token: weight})")
        if self.indices is not None and len(self.values) != len(self.indices):
            raise ValueError("'indices' and 'values' must have the same length")
        return self


class DocumentIn(Strict):
    id: DocId = Field(..., description="any text of 1 to 512 characters without control characters, except '.' "
                                       "and '..'; in a URL, percent-encode it ('/' may also stay as is)")
    text: Text | None = Field(None, description="the text, stored; encoded by the server unless 'vector' is given")
    title: Text = ""
    vector: VectorIn | None = Field(None, description="pre-encoded sparse vector (then the text is only stored)")
    metadata: Annotated[Metadata, AfterValidator(_unicode_metadata)] | None = Field(
        None, description="filterable values: strings, numbers, booleans, or lists of strings or of numbers; a key "
                          "keeps one kind in an index", examples=[{"lang": "en", "year": 2021, "tags": ["a", "b"]}])

    @model_validator(mode="after")
    def _something_to_index(self) -> "DocumentIn":
        if self.vector is None and self.text is None:
            raise ValueError("give the document's 'text' (encoded by the server) or a pre-encoded 'vector'")
        return self


class WriteResponse(BaseModel):
    ids: list[str]
    took_ms: float


class DocumentOut(BaseModel):
    id: str
    title: str
    text: str
    metadata: dict[str, Any] | None = None


class Problem(BaseModel):
    detail: Any


class SnapshotRequest(Strict):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                             description="the snapshot's name (default: the UTC time and the generation)")


class SnapshotOut(BaseModel):
    """A consistent point-in-time copy of an index (lsr.index.backup): hard links to its committed files."""

    name: str
    created: str = Field(description="UTC, ISO 8601")
    generation: int = Field(description="the index's committed generation it holds")
    wal_seq: int = Field(description="the last acknowledged write it holds")
    documents: int
    segments: int
    bytes: int


class IndexOut(BaseModel):
    name: str
    default: bool = Field(description="served by the single-index routes too (/search, /documents, ...)")
    stats: dict[str, Any]

