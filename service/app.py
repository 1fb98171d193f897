"""The app factory: ``create_app(index_dir, settings)`` opens the index and wires the engine, keys, limits and
metrics into a FastAPI app. Tests call it in-process; ``lsr serve`` has uvicorn call ``from_env`` in each worker.

Errors are answered as JSON problems (``{"detail": ...}``) written ASCII-only, so no message can fail to encode,
and never with a path or a pid of the server (the engine's ``public``)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from lsr.core.priority import lower_thread_priority
from lsr.index import IndexCorrupt
from lsr.index.backup import BackupError, BackupExists, BackupNotFound
from lsr.service.access import AccessLog
from lsr.service.auth import ApiKeys
from lsr.service.batcher import BatcherClosed, TextRejected
from lsr.service.documents import Documents
from lsr.service.engine import Engine, NotReady, QueryError
from lsr.service.ingest import IngestError
from lsr.service.indexes import Indexes, Served, check_names, parse_index, resolve, served as served_by, \
    snapshot_repository
from lsr.service.limits import BodyLimit
from lsr.service.metrics import Instrument, Metrics
from lsr.service.models import problems
from lsr.service.page import mount_page
from lsr.service.routes import document_schemas, router, service
from lsr.service.settings import Settings
from lsr.service.shutdown import defer_termination
from lsr.service.writepath import WritePath, WriterBusy, WriterFailed


class ProblemResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: a message quoting a lone surrogate still encodes."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def create_app(index_dir: str | Path | Mapping[str, str | Path] | None = None, settings: Settings | None = None, *,
               encoder=None) -> FastAPI:
    """The service over the index at ``index_dir``, or over several indexes given as ``{name: folder}`` (the first
    also serves the single-index routes); default ``settings.indexes``, else ``settings.index_dir``. ``encoder``: an
    already loaded query encoder (tests share one); otherwise each index's model loads on a thread after start-up."""
    settings = settings or Settings()
    folders = _folders(index_dir, settings)
    keys = ApiKeys(settings.keys(), settings.protect_reads)
    if settings.protect_reads and not keys.configured:
        raise ValueError("protect_reads is set but no API key is configured: nothing could be read")
    metrics = Metrics()
    served = []
    for name, folder in folders.items():
        index, damage = WritePath.open(Path(folder), settings)   # this worker owns the writer, or follows it
        engine = Engine(index, settings, metrics, encoder)
        if damage is not None:
            engine.mark_damaged(damage)
        else:
            engine.check_log()
        writes = WritePath(Path(folder), settings, index, adopt=lambda i, e=engine: setattr(e, "index", i),
                           damaged=engine.mark_damaged)
        served.append(Served(name, engine, Documents(engine, writes, settings),
                             snapshot_repository(name, Path(folder), settings.snapshot_dir)))
    indexes = Indexes(served)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        defer_termination(settings.shutdown_drain_s)
        # What this service hands to asyncio.to_thread is ingest work (parsing write bodies, the writer's applies,
        # snapshots): niced like the rest of ingest, so searches get the cores first.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(
            thread_name_prefix="lsr-ingest", initializer=lower_thread_priority, initargs=(settings.ingest_nice,)))
        threading.Thread(target=indexes.load_encoders, name="lsr-load-encoder", daemon=True).start()
        for s in indexes:
            await s.documents.path.start()
        yield
        await indexes.close()

    app = FastAPI(title="lsr", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  description="Learned sparse retrieval over an lsr index: text or sparse-vector queries, exact / "
                              "bmp / seismic search, per-term explanations, durable document writes. With "
                              "--protect-reads this schema and /docs need an API key too.")
    app.state.settings, app.state.keys, app.state.metrics = settings, keys, metrics
    app.state.indexes = indexes
    app.state.engine, app.state.documents = indexes.first.engine, indexes.first.documents
    app.include_router(service)
    app.include_router(router)
    app.include_router(router, prefix="/indexes/{name}", dependencies=[Depends(resolve)])
    mount_page(app)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(document_schemas())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    streamed = {path: settings.max_ingest_bytes for path in ["/documents"] + [f"/indexes/{s.name}/documents"
                                                                              for s in indexes]}
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, streamed=streamed)
    app.add_middleware(Instrument, metrics=metrics)
    if settings.access_log:
        app.add_middleware(AccessLog)

    def error(code: int, headers: dict | None = None):
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return ProblemResponse({"detail": indexes.public(str(exc))}, status_code=code, headers=headers)
        return handler

    async def damaged(request: Request, exc: IndexCorrupt) -> JSONResponse:
        return ProblemResponse({"detail": served_by(request).engine.mark_damaged(exc)},
                               status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    unprocessable = error(status.HTTP_422_UNPROCESSABLE_CONTENT)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(QueryError, unprocessable)
    app.add_exception_handler(TextRejected, unprocessable)
    app.add_exception_handler(NotReady, error(status.HTTP_503_SERVICE_UNAVAILABLE, {"Retry-After": "1"}))
    app.add_exception_handler(BatcherClosed, error(status.HTTP_503_SERVICE_UNAVAILABLE))
    app.add_exception_handler(WriterBusy, error(status.HTTP_503_SERVICE_UNAVAILABLE, {"Retry-After": "1"}))
    app.add_exception_handler(IngestError, unprocessable)
    app.add_exception_handler(WriterFailed, error(status.HTTP_500_INTERNAL_SERVER_ERROR))
    app.add_exception_handler(IndexCorrupt, damaged)
    app.add_exception_handler(BackupExists, error(status.HTTP_409_CONFLICT))
    app.add_exception_handler(BackupNotFound, error(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(BackupError, unprocessable)
    return app


def _folders(index_dir, settings: Settings) -> dict[str, Path]:
    """{name: folder} of the indexes to serve, in order (see create_app)."""
    if isinstance(index_dir, Mapping):
        folders = {str(k): Path(v) for k, v in index_dir.items()}
    elif index_dir is not None:
        folders = dict([parse_index(str(index_dir))])
    elif settings.indexes:
        folders = dict(settings.indexes)
    elif settings.index_dir is not None:
        folders = dict([parse_index(str(settings.index_dir))])
    else:
        raise ValueError("no index folder: pass index_dir or set LSR_INDEX_DIR (or LSR_INDEXES)")
    check_names(list(folders))
    return folders


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with where and what, without echoing the input (see ``problems``)."""
    return ProblemResponse({"detail": problems(exc.errors())}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def from_env() -> FastAPI:
    """uvicorn's factory in each worker process: settings (index folder included) from LSR_* variables."""
    return create_app(settings=Settings())
