"""Batches of token ids straight from the Rust tokenizer, for encoders that must keep a GPU fed.

Calling a transformers tokenizer with ``return_overflowing_tokens`` (the way to count truncated texts) turns every
cut-off piece of every text into rows of Python lists before numpy sees them; on full-length documents that Python
work, holding the GIL, took longer than a BERT-base forward on an H100. Here the tokenizer's own Rust pipeline
truncates and pads (its batch encoding runs on all cores without the GIL, and skips character offsets, which an
encoder never reads), a text counts as truncated when its encoding has overflow, and only the kept ids and masks
become arrays. The ids and masks are the ones ``tokenizer(texts, truncation=True, max_length=..., padding=True,
pad_to_multiple_of=...)`` returns: the settings are copied from the transformers tokenizer onto a private copy of
its Rust tokenizer, so nothing else sharing the transformers object sees them change.

Text far past max_length is cut before tokenizing, at a space after ``CHARS_PER_TOKEN`` characters per kept token:
the pre-tokenizers of BERT, byte-level BPE and SentencePiece models split at whitespace, so the cut text's first
tokens are the full text's, and a cut text that still overflows was truncated either way. A batch where a cut text
no longer overflows (very long words) is tokenized again uncut. Tokenizing a long document costs its length, not
max_length: on full-length scifact the longest texts (first, as batches go longest first) held the GPU back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHARS_PER_TOKEN = 8   # ~2x English WordPiece's 4.4 characters per token: a cut text still overflows, nearly always


@dataclass(frozen=True)
class TokenBatch:
    """Right- or left-padded ids and 0/1 attention mask (int64, (n, L)); how many texts lost tokens to max_length."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    truncated: int


class BatchTokenizer:
    """Tokenizes batches of texts to ``max_length`` tokens, padded to a multiple of ``pad_to`` (or the longest)."""

    def __init__(self, tokenizer, max_length: int, pad_to: int | None = None):
        if max_length <= 0:
            raise ValueError(f"max_length must be positive, got {max_length}")
        from tokenizers import Tokenizer

        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise TypeError(f"{type(tokenizer).__name__} is not a fast (Rust) tokenizer")
        self._rust = Tokenizer.from_str(backend.to_str())
        self._rust.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))
        self._rust.enable_truncation(max_length, stride=0, strategy="longest_first",
                                     direction=getattr(tokenizer, "truncation_side", "right"))
        self._rust.enable_padding(direction=getattr(tokenizer, "padding_side", "right"), pad_id=tokenizer.pad_token_id,
                                  pad_token=tokenizer.pad_token, pad_type_id=tokenizer.pad_token_type_id,
                                  pad_to_multiple_of=pad_to)
        self._encode = getattr(self._rust, "encode_batch_fast", self._rust.encode_batch)  # fast: no offsets
        self.max_length = max_length
        # the first tokens survive only a right truncation: a left one keeps the text's end
        self._cut_at = CHARS_PER_TOKEN * max_length if getattr(tokenizer, "truncation_side", "right") == "right" else 0

    def _cut(self, text: str) -> str:
        if not self._cut_at or len(text) <= self._cut_at:
            return text
        space = text.rfind(" ", 0, self._cut_at)
        return text[:space] if space > 0 else text

    def __call__(self, texts: list[str]) -> TokenBatch:
        if not texts:
            raise ValueError("a batch needs at least one text")
        cut = [self._cut(t) for t in texts]
        encodings = self._encode(cut, add_special_tokens=True)
        short = [c is not t and not e.overflowing for c, t, e in zip(cut, texts, encodings)]   # cut too soon
        if any(short):
            encodings = self._encode([t if s else c for c, t, s in zip(cut, texts, short)], add_special_tokens=True)
        return TokenBatch(np.array([e.ids for e in encodings], dtype=np.int64),
                          np.array([e.attention_mask for e in encodings], dtype=np.int64),
                          sum(1 for e in encodings if e.overflowing))
