"""lsr: learned sparse retrieval. ``import lsr`` is light: torch and transformers load on first use."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Encoder", "QueryEncoder", "load_query_encoder", "SparseBatch", "splade_max_pool", "DEFAULT_MODEL"]

_LAZY = {
    "Encoder": ("lsr.encoding.encoder", "Encoder"),
    "QueryEncoder": ("lsr.encoding.query", "QueryEncoder"),
    "load_query_encoder": ("lsr.encoding.loader", "load_query_encoder"),
    "SparseBatch": ("lsr.core.sparse", "SparseBatch"),
    "splade_max_pool": ("lsr.encoding.head", "splade_max_pool"),
    "DEFAULT_MODEL": ("lsr.encoding.models", "DEFAULT_MODEL"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'lsr' has no attribute {name!r}")
