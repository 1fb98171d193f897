"""The app factory: ``create_app(index_dir, settings)`` opens the index and wires the engine, keys, limits and
metrics into a FastAPI app. Tests call it in-process; ``lsr serve`` has uvicorn call ``from_env`` in each worker.

Errors are answered as JSON problems (``{"detail": ...}``) written ASCII-only, so no message can fail to encode,
and never with a path or a pid of the server (the engine's ``public``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lsr.index import Index, IndexCorrupt
from lsr.index.backup import BackupError, BackupExists, BackupNotFound
from lsr.service.access import AccessLog
from lsr.service.auth import ApiKeys
from lsr.service.batcher import BatcherClosed, TextRejected
from lsr.service.documents import Documents, WriterBusy
from lsr.service.engine import Engine, NotReady, QueryError
from lsr.service.indexes import Indexes, Served, check_names, parse_index, resolve, served as served_by, \
    snapshot_repository
from lsr.service.limits import BodyLimit
from lsr.service.metrics import Instrument, Metrics
from lsr.service.models import problems
from lsr.service.page import mount_page
from lsr.service.routes import router, service
from lsr.service.settings import Settings
from lsr.service.shutdown import defer_termination


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
    for i, (name, folder) in enumerate(folders.items()):
        own = settings if i == 0 else settings.model_copy(update={"bm25_dir": None})   # hybrid: the first only
        engine = Engine(Index.open(folder, verify=settings.verify_checksums), own, metrics, encoder)
        engine.check_log()
        served.append(Served(name, engine, Documents(engine, settings.write_lock_timeout),
                             snapshot_repository(name, Path(folder), settings.snapshot_dir)))
    indexes = Indexes(served)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        defer_termination(settings.shutdown_drain_s)
        threading.Thread(target=indexes.load_encoders, name="lsr-load-encoder", daemon=True).start()
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
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
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
