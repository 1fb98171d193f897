"""What every encoder takes and reports, torch-free: the text check, the default lengths and ``EncodeStats``.

Queries get the same default length as documents: truncating them at 64 tokens cost 1.5 nDCG@10 points on ArguAna,
whose queries are whole arguments (0.3757 at 64, 0.3906 at 256; issue 14). Truncated texts are counted, never
silent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DOCUMENT_MAX_LENGTH = 256
QUERY_MAX_LENGTH = 256


@dataclass
class EncodeStats:
    """What the last encode call did; ``truncated`` counts texts cut to ``max_length`` tokens, ``windowed`` texts
    longer than that encoded as several overlapping windows instead (``window_overlap``)."""

    texts: int = 0
    truncated: int = 0
    tokens: int = 0
    max_length: int = 0
    windowed: int = 0


def check_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list; TypeError for a bare string or any item that is not a str."""
    if texts is None or isinstance(texts, (str, bytes)):
        raise TypeError(f"texts must be a sequence of strings, got {type(texts).__name__}")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(t).__name__}")
    return texts
