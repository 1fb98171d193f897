"""The app factory: ``create_app(index_dir, settings)`` opens the index and wires the engine, keys, limits and
metrics into a FastAPI app. Tests call it in-process; ``lsr serve`` has uvicorn call ``from_env`` in each worker.

Errors are answered as JSON problems (``{"detail": ...}``) written ASCII-only, so no message can fail to encode,
and never with a path or a pid of the server (the engine's ``public``)."""

from __future__ import annotations

import json
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lsr.index import Index, IndexCorrupt
from lsr.service.auth import ApiKeys
from lsr.service.batcher import BatcherClosed, TextRejected
from lsr.service.documents import Documents, WriterBusy
from lsr.service.engine import Engine, NotReady, QueryError
from lsr.service.limits import BodyLimit
from lsr.service.metrics import Instrument, Metrics
from lsr.service.models import problems
from lsr.service.routes import router
from lsr.service.settings import Settings
from lsr.service.shutdown import defer_termination


class ProblemResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: a message quoting a lone surrogate still encodes."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def create_app(index_dir: str | Path | None = None, settings: Settings | None = None, *, encoder=None) -> FastAPI:
    """The service over the index at ``index_dir`` (default ``settings.index_dir``). ``encoder``: an already loaded
    query encoder (tests share one); otherwise the index's model loads on a thread after start-up."""
    settings = settings or Settings()
    index_dir = index_dir or settings.index_dir
    if index_dir is None:
        raise ValueError("no index folder: pass index_dir or set LSR_INDEX_DIR")
    keys = ApiKeys(settings.keys(), settings.protect_reads)
    if settings.protect_reads and not keys.configured:
        raise ValueError("protect_reads is set but no API key is configured: nothing could be read")
    metrics = Metrics()
    engine = Engine(Index.open(index_dir, verify=settings.verify_checksums), settings, metrics, encoder)
    engine.check_log()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        defer_termination(settings.shutdown_drain_s)
        if engine.encoder is None:
            threading.Thread(target=engine.load_encoder, name="lsr-load-encoder", daemon=True).start()
        yield
        await engine.close()

    app = FastAPI(title="lsr", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  description="Learned sparse retrieval over an lsr index: text or sparse-vector queries, exact / "
                              "bmp / seismic search, per-term explanations, durable document writes. With "
                              "--protect-reads this schema and /docs need an API key too.")
    app.state.settings, app.state.keys, app.state.metrics = settings, keys, metrics
    app.state.engine, app.state.documents = engine, Documents(engine, settings.write_lock_timeout)
    app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Instrument, metrics=metrics)

    def error(code: int, headers: dict | None = None):
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return ProblemResponse({"detail": engine.public(str(exc))}, status_code=code, headers=headers)
        return handler

    async def damaged(request: Request, exc: IndexCorrupt) -> JSONResponse:
        return ProblemResponse({"detail": engine.mark_damaged(exc)}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    unprocessable = error(status.HTTP_422_UNPROCESSABLE_CONTENT)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(QueryError, unprocessable)
    app.add_exception_handler(TextRejected, unprocessable)
    app.add_exception_handler(NotReady, error(status.HTTP_503_SERVICE_UNAVAILABLE, {"Retry-After": "1"}))
    app.add_exception_handler(BatcherClosed, error(status.HTTP_503_SERVICE_UNAVAILABLE))
    app.add_exception_handler(WriterBusy, error(status.HTTP_503_SERVICE_UNAVAILABLE, {"Retry-After": "1"}))
    app.add_exception_handler(IndexCorrupt, damaged)
    return app


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with where and what, without echoing the input (see ``problems``)."""
    return ProblemResponse({"detail": problems(exc.errors())}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def from_env() -> FastAPI:
    """uvicorn's factory in each worker process: settings (index folder included) from LSR_* variables."""
    return create_app(settings=Settings())
