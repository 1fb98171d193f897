"""The search page at ``/``: plain HTML, CSS and JavaScript (service/static/, shipped in the wheel as package
data), no build step and nothing fetched from elsewhere. It asks the API like any client (``GET /indexes``,
``POST /indexes/{name}/search`` with ``explain``) and shows each hit's stored text with the terms that made it match
highlighted, and the query's own expansion terms, all with their weights. The files hold no data, so they are served
without a key; the page sends the key typed into it (kept in the browser's session storage) with its requests."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

PAGE = Path(str(files("lsr.service") / "static"))


def mount_page(app: FastAPI) -> None:
    """Serves the page's files under ``/static`` (the page itself is ``GET /``, service/routes.py)."""
    app.mount("/static", StaticFiles(directory=PAGE), name="static")
