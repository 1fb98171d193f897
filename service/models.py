"""The HTTP API's request and response bodies. Unknown fields are refused (422), so a misspelt option never goes
silently unused. Size limits that depend on settings (k, query length, batch size) are checked in service/limits.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lsr.core.metadata import Metadata
from lsr.index.filters import Filter

Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]
TermId = Annotated[int, Field(ge=0, lt=2**31)]
Param = Annotated[int, Field(ge=-2**31, lt=2**31)] | Annotated[float, Field(allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hybrid(Strict):
    """Fuse the SPLADE ranking with BM25's (needs a BM25 index beside the service's, see README "Serve")."""

    fusion: Literal["rrf", "linear"] = Field("rrf", description="rrf (reciprocal rank fusion) or linear "
                                                                 "(min-max normalised scores, weighted sum)")
    weight: float = Field(0.5, ge=0, le=1, description="SPLADE's weight; BM25 gets 1 - weight")
    rrf_k: float = Field(60.0, ge=0, le=1e6, description="the k of reciprocal rank fusion")
    depth: int = Field(100, ge=1, le=1000, description="hits taken from each ranking before fusing")


class SearchRequest(Strict):
    """One query, given as text (encoded by the index's model), as a sparse vector, or as {token: weight}."""

    query: str | None = Field(None, description="query text", examples=["what causes cancer"])
    indices: list[TermId] | None = Field(None, description="sparse query: vocabulary term ids")
    values: list[Weight] | None = Field(None, description="sparse query: weights, one per term id")
    terms: dict[str, Weight] | None = Field(None, description="sparse query by token: {token: weight}")
    vocab_fingerprint: str | None = Field(None, description="vocabulary the sparse query comes from (checked)")
    k: int = Field(10, ge=1, lt=2**31, description="number of hits")
    offset: int = Field(0, ge=0, lt=2**31, description="hits to skip: the page of ranks offset + 1 to offset + k "
                                                         "(ties broken by document, so exact pages never overlap)")
    filter: Filter | None = Field(None, description="only documents whose metadata this allows (Qdrant's shape: "
                                                    "must / should / must_not of key+match, key+range, has_id)",
                                  examples=[{"must": [{"key": "lang", "match": {"value": "en"}},
                                                      {"key": "year", "range": {"gte": 2020}}]}])
    method: str = Field("exact", description="exact, bmp or seismic (as built into the index)")
    params: dict[str, Param] = Field(default_factory=dict, description="the method's search parameters",
                                           examples=[{"alpha": 0.9}])
    explain: bool = Field(False, description="per hit, the query terms that contributed and how much")
    fields: list[str] = Field(default_factory=list, description="stored fields to return: title, text, metadata")
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


class BatchRequest(Strict):
    queries: list[SearchRequest] = Field(..., min_length=1)


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


class SearchResponse(BaseModel):
    hits: list[Hit]
    took_ms: float


class BatchResponse(BaseModel):
    results: list[SearchResponse]
    took_ms: float


class DocumentIn(Strict):
    id: str = Field(..., min_length=1, max_length=512)
    text: str
    title: str = ""
    metadata: Metadata | None = Field(None, description="filterable values: strings, numbers, booleans, or lists of "
                                                        "strings or of numbers; a key keeps one kind in an index",
                                      examples=[{"lang": "en", "year": 2021, "tags": ["a", "b"]}])


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
