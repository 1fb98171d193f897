"""The endpoints. Each is a thin shell: check limits and keys, call the engine or the document writer, shape the
answer. The objects they use live on ``request.app.state`` (see service/app.py).

``router`` holds an index's endpoints; the app mounts it at ``/`` (the first index) and at ``/indexes/{name}``
(service/indexes.py), and ``served(request)`` is the index a request is about. ``service`` holds the server's own:
health, metrics, the schema, the index list and the search page.

Document ids are path parameters that may hold "/" (``{doc_id:path}``): send them percent-encoded (every reserved
character, "/" included, e.g. ``urllib.parse.quote(id, safe="")``), or with "/" as is; both reach the same document.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse

from lsr.index.backup import delete as delete_backup, list_backups
from lsr.service.answers import batch_pieces, search_pieces
from lsr.service.auth import require_read, require_write
from lsr.service.engine import Engine
from lsr.service.indexes import served
from lsr.service.ingest import NDJSON, receive
from lsr.service.limits import check_batch, check_search
from lsr.service.models import (BatchRequest, BatchResponse, DocumentIn, DocumentOut, IndexOut, Problem,
                                SearchRequest, SearchResponse, SnapshotOut, SnapshotRequest, WriteResponse)
from lsr.service.page import PAGE

_ERRORS = {401: {"model": Problem, "description": "no API key"},
           403: {"model": Problem, "description": "API key refused, or writes disabled"},
           413: {"model": Problem, "description": "request body too large"},
           422: {"model": Problem, "description": "invalid request, or over a limit (the detail says which)"},
           503: {"model": Problem, "description": "query encoder not loaded (yet), the index busy with a writer, "
                                                  "or the index damaged (the detail says how to recover)"}}

router = APIRouter()
service = APIRouter()

# POST /documents reads its body itself (as it streams): its schema is declared here, its models added to the
# components by ``document_schemas``
_DOC = {"$ref": "#/components/schemas/DocumentIn"}
DOCUMENTS_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "array", "items": _DOC}}, NDJSON: {"schema": _DOC}}}}


def document_schemas() -> dict:
    """The JSON schemas of DocumentIn and the models it uses, as OpenAPI components."""
    schema = DocumentIn.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs", {}), "DocumentIn": schema}
read = [Depends(require_read)]
write = [Depends(require_write)]


def engine(request: Request) -> Engine:
    return served(request).engine


# Answers are written by service/answers.py (whole when small, streamed when large) rather than validated again and
# encoded by FastAPI (half of the service's own time per query); the declared response_model still documents them.
@router.post("/search", response_model=SearchResponse, dependencies=read, responses=_ERRORS,
             summary="Top-k documents of one query")
async def search(body: SearchRequest, request: Request) -> Response:
    check_search(body, request.app.state.settings)
    e = engine(request)
    return await e.pool.respond(search_pieces(e, body, await e.vector(body)))


@router.post("/search/batch", response_model=BatchResponse, dependencies=read, responses=_ERRORS,
             summary="Several queries in one call; their texts are encoded as one batch. 200 when the batch as a "
                     "whole is valid: a query that is not gets its own status (422, or 503) in the results")
async def search_batch(body: BatchRequest, request: Request) -> Response:
    start = time.perf_counter()
    queries = check_batch(body.queries, request.app.state.settings)
    e = engine(request)
    return await e.pool.respond(batch_pieces(e, queries, await e.batch_vectors(queries), start))


@router.post("/documents", response_model=WriteResponse, dependencies=[Depends(require_write)],
             responses={**_ERRORS, 415: {"model": Problem, "description": "neither JSON nor NDJSON"}},
             openapi_extra=DOCUMENTS_BODY,
             summary="Add documents, or replace those with the same ids; 2xx once they are durable. A JSON array, or "
                     "NDJSON (application/x-ndjson, one document per line); each with its text or a pre-encoded "
                     "vector. A bad document is a 422 naming it, and nothing of the request is written")
async def put_documents(request: Request) -> WriteResponse:
    start = time.perf_counter()
    documents = served(request).documents
    incoming = documents.incoming()
    await receive(request, incoming, request.app.state.settings.max_ingest_bytes)
    ids = await documents.upsert(incoming)
    return WriteResponse(ids=ids, took_ms=(time.perf_counter() - start) * 1000)


@router.delete("/documents/{doc_id:path}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Depends(require_write)],
               responses={**_ERRORS, 404: {"model": Problem}},
               summary="Delete one document; 204 once the delete is durable")
async def delete_document(doc_id: str, request: Request) -> Response:
    try:
        await served(request).documents.delete(doc_id)
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document with id {doc_id!r}") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/documents/{doc_id:path}", response_model=DocumentOut, dependencies=read,
            responses={**_ERRORS, 404: {"model": Problem}}, summary="A stored document")
async def get_document(doc_id: str, request: Request) -> DocumentOut:
    try:
        return DocumentOut(**await served(request).documents.get(doc_id))
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document with id {doc_id!r}") from None


@service.get("/healthz", summary="The process answers")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": Problem}},
            summary="Index open and sound, query encoder loaded; the details (documents, why not ready) need a key "
                    "when reads do")
async def readyz(request: Request):
    e = engine(request)
    details = request.app.state.keys.allows(request)
    if not e.ready:
        state = "damaged" if e.damaged else "loading" if e.load_error is None and e.encoder is None else "failed"
        body = {"status": state, **({"detail": e.not_ready()} if details else {})}
        return JSONResponse(body, status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "1"})
    return {"status": "ready", **({"documents": e.index.num_docs} if details else {})}


@router.get("/stats", dependencies=read, summary="Index and service figures")
async def stats(request: Request) -> dict:
    s = served(request)
    return await index_stats(s.engine, s.documents)


async def index_stats(e: Engine, documents) -> dict:
    await e.pool.run(e.refresh)
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
        "encoder": {"ready": e.encoder is not None, "model": getattr(e.encoder, "name", None), "error": e.load_error,
                    "batches": e.batcher.batches if e.batcher else 0, "texts": e.batcher.texts if e.batcher else 0},
        "damaged": e.damaged,
        "writer": documents.path.stats(),
    }


@router.post("/snapshots", response_model=SnapshotOut, status_code=status.HTTP_201_CREATED, dependencies=write,
             responses={**_ERRORS, 409: {"model": Problem, "description": "a snapshot of that name exists"}},
             summary="A consistent point-in-time copy of the index (hard links), its writes so far flushed first; "
                     "writes go on meanwhile. Restore with lsr snapshot restore")
async def create_snapshot(request: Request, body: SnapshotRequest | None = None) -> SnapshotOut:
    s = served(request)
    return SnapshotOut(**vars(await s.documents.snapshot(s.snapshots, body.name if body else None)))


@router.get("/snapshots", response_model=list[SnapshotOut], dependencies=read, summary="The index's snapshots, "
            "oldest first")
async def get_snapshots(request: Request) -> list[SnapshotOut]:
    s = served(request)
    return [SnapshotOut(**vars(b)) for b in await s.engine.pool.run(list_backups, s.snapshots)]


@router.delete("/snapshots/{snapshot}", status_code=status.HTTP_204_NO_CONTENT, dependencies=write,
               responses={**_ERRORS, 404: {"model": Problem}}, summary="Delete a snapshot")
async def remove_snapshot(snapshot: str, request: Request) -> Response:
    s = served(request)
    await s.engine.pool.run(delete_backup, s.snapshots, snapshot)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@service.get("/indexes", response_model=list[IndexOut], dependencies=read,
             summary="The indexes this server serves, with their figures; the first is the default")
async def list_indexes(request: Request) -> list[IndexOut]:
    indexes = request.app.state.indexes
    return [IndexOut(name=s.name, default=s is indexes.first, stats=await index_stats(s.engine, s.documents)) for s in indexes]


@service.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(PAGE / "index.html")


@service.get("/metrics", dependencies=read, summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    m = request.app.state.metrics
    return Response(m.render(), media_type=m.content_type)


@service.get("/openapi.json", dependencies=read, include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@service.get("/docs", dependencies=read, include_in_schema=False)
async def docs(request: Request) -> Response:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="lsr - API")
