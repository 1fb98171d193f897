"""The endpoints. Each is a thin shell: check limits and keys, call the engine or the document writer, shape the
answer. The objects they use live on ``request.app.state`` (see service/app.py)."""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse

from lsr.service.auth import require_read, require_write
from lsr.service.engine import Engine
from lsr.service.limits import check_batch, check_documents, check_search
from lsr.service.models import (BatchRequest, BatchResponse, DocumentIn, DocumentOut, Problem, SearchRequest,
                            SearchResponse, WriteResponse)

_ERRORS = {401: {"model": Problem, "description": "no API key"},
           403: {"model": Problem, "description": "API key refused, or writes disabled"},
           413: {"model": Problem, "description": "request body too large"},
           503: {"model": Problem, "description": "query encoder not loaded (yet), or the index busy with a writer"}}

router = APIRouter()
read = [Depends(require_read)]


def engine(request: Request) -> Engine:
    return request.app.state.engine


@router.post("/search", response_model=SearchResponse, dependencies=read, responses=_ERRORS,
             summary="Top-k documents of one query")
async def search(body: SearchRequest, request: Request) -> Response:
    check_search(body, request.app.state.settings)
    return _json(await engine(request).answer(body))


@router.post("/search/batch", response_model=BatchResponse, dependencies=read, responses=_ERRORS,
             summary="Several queries in one call; their texts are encoded as one batch")
async def search_batch(body: BatchRequest, request: Request) -> Response:
    start = time.perf_counter()
    check_batch(body.queries, request.app.state.settings)
    results = await engine(request).answer_batch(body.queries)
    return _json(BatchResponse(results=results, took_ms=(time.perf_counter() - start) * 1000))


def _json(model) -> Response:
    """The answer serialized by pydantic in one pass (FastAPI would validate it again, then encode it: half of
    the service's own time per query); the declared response_model still documents it."""
    return Response(model.model_dump_json(exclude_none=True), media_type="application/json")


@router.post("/documents", response_model=WriteResponse, dependencies=[Depends(require_write)],
             responses=_ERRORS,
             summary="Add documents, or replace those with the same ids; 2xx once they are durable")
async def put_documents(body: list[DocumentIn], request: Request) -> WriteResponse:
    start = time.perf_counter()
    check_documents(body, request.app.state.settings)
    ids = await request.app.state.documents.upsert(body)
    return WriteResponse(ids=ids, took_ms=(time.perf_counter() - start) * 1000)


@router.delete("/documents/{doc_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Depends(require_write)],
               responses={**_ERRORS, 404: {"model": Problem}},
               summary="Delete one document; 204 once the delete is durable")
async def delete_document(doc_id: str, request: Request) -> Response:
    try:
        await request.app.state.documents.delete(doc_id)
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document with id {doc_id!r}") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/documents/{doc_id}", response_model=DocumentOut, dependencies=read,
            responses={**_ERRORS, 404: {"model": Problem}}, summary="A stored document")
async def get_document(doc_id: str, request: Request) -> DocumentOut:
    try:
        return DocumentOut(**request.app.state.documents.get(doc_id))
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document with id {doc_id!r}") from None


@router.get("/healthz", summary="The process answers")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": Problem}}, summary="Index open and query encoder loaded")
async def readyz(request: Request):
    e = engine(request)
    if not e.ready:
        return JSONResponse({"status": "loading" if e.load_error is None else "failed", "detail": e.load_error},
                            status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "1"})
    return {"status": "ready", "documents": e.index.num_docs}


@router.get("/stats", dependencies=read, summary="Index and service figures")
async def stats(request: Request) -> dict:
    e = engine(request)
    e.refresh()
    idx, m = e.index, e.index.manifest
    return {
        "documents": idx.num_docs,
        "segments": [{"name": s.name, "documents": s.num_docs, "nnz": s.nnz} for s in m.segments],
        "generation": m.generation,
        "model": idx.model,
        "vocabulary": {"size": idx.vocab_size, "fingerprint": idx.vocab_fingerprint},
        "methods": idx.methods,
        "quantization": m.quantization,
        "build_params": m.build_params,
        "bytes": idx.nbytes(),
        "encoder": {"ready": e.ready, "model": getattr(e.encoder, "name", None), "error": e.load_error,
                    "batches": e.batcher.batches if e.batcher else 0, "texts": e.batcher.texts if e.batcher else 0},
        "pid": os.getpid(),
    }


@router.get("/metrics", dependencies=read, summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    m = request.app.state.metrics
    return Response(m.render(), media_type=m.content_type)
