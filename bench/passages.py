"""Cutting a document's paragraphs into passages of ``min_words`` to ``max_words`` words on paragraph and sentence
boundaries, the unit a passage-retrieval corpus indexes.

Short paragraphs are packed together (a passage of dialogue spans several); a paragraph longer than ``max_words`` is
cut at sentence ends into pieces of about equal length; a single sentence longer than ``max_words`` (rare: legal
text, run-on prose) is cut at word boundaries. A document's tail shorter than ``min_words`` is dropped, not padded,
so every passage stays within the bounds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

# a sentence ends at . ! ? (closing quotes and brackets included) followed by space and a capital, digit or opening
# quote; "Mr. Smith" and single initials ("J. M. Barrie") are not ends
_SENTENCE_END = re.compile(r"[.!?](?<!\bMr\.)(?<!\bMrs\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bNo\.)(?<!\bvs\.)"
                           r"(?<!\bviz\.)(?<!\bcf\.)(?<!\b[A-Z]\.)[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class PassageBounds:
    min_words: int = 50
    max_words: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.min_words <= self.max_words:
            raise ValueError(f"passage bounds need 0 < min_words <= max_words, got {self.min_words}, {self.max_words}")


def sentences(text: str) -> list[str]:
    """The sentences of whitespace-normalised ``text``, in order; joined with spaces they give ``text`` back."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        out.append(text[start:m.end()].rstrip())
        start = m.end()
    if start < len(text):
        out.append(text[start:])
    return [s for s in out if s]


def _words(text: str) -> int:
    return len(text.split())


def _cut_words(sentence: str, max_words: int) -> list[str]:
    """A sentence longer than max_words as equal runs of words."""
    words = sentence.split()
    n = math.ceil(len(words) / max_words)
    size = math.ceil(len(words) / n)
    return [" ".join(words[i:i + size]) for i in range(0, len(words), size)]


def _pieces(paragraph: str, words: int, max_words: int) -> list[tuple[str, int]]:
    """A paragraph of more than max_words words as sentence runs of about words / ceil(words / max_words) each."""
    units = [(p, _words(p)) for s in sentences(paragraph)
             for p in ([s] if _words(s) <= max_words else _cut_words(s, max_words))]
    target = words / math.ceil(words / max_words)
    out, run, run_words = [], [], 0
    for text, w in units:
        if run and (run_words + w > max_words or run_words >= target):
            out.append((" ".join(run), run_words))
            run, run_words = [], 0
        run.append(text)
        run_words += w
    if run:
        out.append((" ".join(run), run_words))
    return out


def passages(paragraphs: Iterable[str], bounds: PassageBounds = PassageBounds()) -> Iterator[str]:
    """Passages of one document; ``paragraphs`` are whitespace-normalised and non-empty."""
    lo, hi = bounds.min_words, bounds.max_words
    buffer: list[str] = []
    size = 0
    for paragraph in paragraphs:
        words = _words(paragraph)
        for text, w in ([(paragraph, words)] if words <= hi else _pieces(paragraph, words, hi)):
            if size + w <= hi:
                buffer.append(text)
                size += w
                continue
            if size < lo:   # too short to stand alone and the next unit does not fit whole: take its first sentences
                rest = sentences(text)
                while rest and size + _words(rest[0]) <= hi:
                    buffer.append(rest.pop(0))
                    size += _words(buffer[-1])
                if size < lo:   # its first sentence alone overflows: the short run is dropped
                    buffer, size = [], 0
                    rest = [text]
                text = " ".join(rest)
                w = _words(text)
            if size:
                yield " ".join(buffer)
            buffer, size = ([text], w) if text else ([], 0)
    if size >= lo:
        yield " ".join(buffer)
