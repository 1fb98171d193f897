"""The vector cache: encoded documents and queries kept on disk, keyed by everything that changes a vector.

Encoding is the slow step of an evaluation (minutes on a CPU for a small BEIR set), and every index method and
parameter setting searches the same vectors, so they are encoded once. A file is found by the collection, the
model and a hash of its settings: for a SPLADE model ``lsr.encoding.encoder.vector_settings`` (max_length, pooling,
windows, pruning, dtype, head backend and the encoder's numerics version), so vectors made by other settings or by
older arithmetic are never reused. Files are ``lsr.vectors`` files (what ``lsr encode`` writes), under
``$LSR_CACHE_DIR`` or ``~/.cache/lsr``, ``vectors/<collection>/<model>/``; the settings are also written into the
file's meta and checked on reading. A file that cannot be read is reported and encoded again, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

from lsr.core.cache_dir import cache_dir
from lsr.core.sparse import SparseBatch
from lsr.core.vectors import VectorsFile, load_vectors, save_vectors

log = logging.getLogger(__name__)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def model_key(model: str) -> str:
    """A local model folder is known by its absolute path, anything else by its name."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


class VectorCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_dir()

    def path(self, collection: str, model: str, kind: str, settings: dict, suffix: str = ".npz") -> Path:
        """``kind`` is "docs" or "queries" (or a model file's name); short hashes of the exact model and of the
        settings keep distinct models and settings apart after slugging."""
        digest = hashlib.sha256(model_key(model).encode()).hexdigest()[:8]
        return (self.root / "vectors" / _slug(collection) / f"{_slug(Path(model).name)}-{digest}"
                / f"{kind}-{_digest(settings)}{suffix}")

    def get(self, collection: str, model: str, kind: str, settings: dict,
            encode: Callable[[], tuple[SparseBatch, list[str], dict]]) -> tuple[VectorsFile, bool]:
        """The cached vectors, or ``encode()``'s (vectors, ids, meta) saved first; also says whether it was cached."""
        path = self.path(collection, model, kind, settings)
        key = {"collection": collection, "model_key": model_key(model), "kind": kind,
               "settings_digest": _digest(settings)}
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
        save_vectors(path, vectors, ids, {**meta, "settings": settings, **key})
        return load_vectors(path), False
