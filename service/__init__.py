"""The HTTP search service: FastAPI over an lsr index, run by uvicorn (``lsr serve``).

    from lsr.service import create_app, Settings
    app = create_app("my-index", Settings(api_keys=["secret"]))

Modules: app (factory), routes (endpoints), models (request/response bodies), settings (LSR_* variables),
auth (API keys), engine (queries -> hits), batcher (micro-batched query encoding), documents (writes),
limits (4xx before work), metrics (Prometheus).
"""

from lsr.service.app import create_app
from lsr.service.settings import Settings

__all__ = ["create_app", "Settings"]
