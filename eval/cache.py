"""The vector cache: encoded documents and queries kept on disk by (collection, model, max_length).

Encoding is the slow step of an evaluation (minutes on a CPU for a small BEIR set), and every index method and
parameter setting searches the same vectors, so they are encoded once. Files are ``lsr.vectors`` files (what
``lsr encode`` writes), under ``$LSR_CACHE_DIR`` or ``~/.cache/lsr``, ``vectors/<collection>/<model>/``.
A file that cannot be read is reported and encoded again, never trusted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Callable

from lsr.core.sparse import SparseBatch
from lsr.core.vectors import VectorsFile, load_vectors, save_vectors

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("LSR_CACHE_DIR") or Path.home() / ".cache" / "lsr")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def model_key(model: str) -> str:
    """A local model folder is known by its absolute path, anything else by its name."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


class VectorCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, collection: str, model: str, max_length: int, kind: str, suffix: str = ".npz") -> Path:
        """``kind`` is "docs" or "queries" (or a model file's name); a short hash of the exact model keeps distinct
        models apart after slugging."""
        digest = hashlib.sha256(model_key(model).encode()).hexdigest()[:8]
        return (self.root / "vectors" / _slug(collection) / f"{_slug(Path(model).name)}-{digest}"
                / f"{kind}-L{max_length}{suffix}")

    def get(self, collection: str, model: str, max_length: int, kind: str,
            encode: Callable[[], tuple[SparseBatch, list[str], dict]]) -> tuple[VectorsFile, bool]:
        """The cached vectors, or ``encode()``'s (vectors, ids, meta) saved first; also says whether it was cached."""
        path = self.path(collection, model, max_length, kind)
        key = {"collection": collection, "model_key": model_key(model), "max_length": max_length, "kind": kind}
        if path.exists():
            try:
                cached = load_vectors(path)
                if all(cached.meta.get(k) == v for k, v in key.items()):
                    return cached, True
                log.warning("%s was written for another key; encoding again", path)
            except ValueError as e:
                log.warning("unreadable cache file %s (%s); encoding again", path, e)
        vectors, ids, meta = encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        save_vectors(path, vectors, ids, {**meta, **key})
        return load_vectors(path), False
