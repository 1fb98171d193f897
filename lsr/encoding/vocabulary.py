"""A model's vocabulary without torch: token <-> term id and the fingerprint an index records.

Sparse queries given as ``{token: weight}`` and the display of terms need only the tokenizer, so the CLI and the
service read it here (the Rust ``tokenizers`` library: milliseconds, no model weights).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

from lsr.encoding.models import resolve_model, vocab_fingerprint


@dataclass(frozen=True)
class Vocabulary:
    tokens: tuple[str, ...]   # by term id

    @classmethod
    def of_tokenizer(cls, tokenizer) -> "Vocabulary":
        """From anything with ``get_vocab()`` (a Hugging Face tokenizer or a ``tokenizers.Tokenizer``)."""
        vocab = tokenizer.get_vocab()
        tokens = [""] * (max(vocab.values()) + 1 if vocab else 0)
        for token, i in vocab.items():
            tokens[i] = token
        return cls(tuple(tokens))

    @classmethod
    def of_model(cls, name_or_path: str) -> "Vocabulary":
        """The vocabulary of an embedded name, a local folder or a cached hub id."""
        path = resolve_model(name_or_path)
        file = os.path.join(path, "tokenizer.json")
        if os.path.exists(file):
            from tokenizers import Tokenizer

            return cls.of_tokenizer(Tokenizer.from_file(file))
        from transformers import AutoTokenizer   # a slow tokenizer or a hub id: transformers, still no torch

        return cls.of_tokenizer(AutoTokenizer.from_pretrained(path))

    def get_vocab(self) -> dict[str, int]:
        return self.ids

    @cached_property
    def ids(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    @cached_property
    def fingerprint(self) -> str:
        return vocab_fingerprint(self)

    def __len__(self) -> int:
        return len(self.tokens)
