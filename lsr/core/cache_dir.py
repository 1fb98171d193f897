"""Where lsr keeps what it can rebuild (evaluation vectors, compiled kernels): ``$LSR_CACHE_DIR``, else
``~/.cache/lsr``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("LSR_CACHE_DIR") or Path.home() / ".cache" / "lsr")
