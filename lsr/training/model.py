"""A masked-LM checkpoint as a trainable SPLADE encoder: transformer -> SPLADE head -> (B, V) weights.

The MLM decoder stays in the module tree (its weight, tied to the input embeddings in BERT, and its bias keep
their names, so ``save_pretrained`` writes an ordinary checkpoint), but its forward is skipped: the projection to
the vocabulary happens inside the head, which never materialises the (batch, tokens, vocab) logits.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from lsr.core.atomic import atomic_open
from lsr.core.sparse import SparseBatch
from lsr.encoding.head import splade_max_pool, splade_max_pool_reference

HEADS = ("fused", "textbook", "compiled")


def _passthrough(x: torch.Tensor) -> torch.Tensor:
    return x


@functools.cache
def _head(kind: str) -> Callable:
    """fused: ``splade_max_pool`` (Triton on CUDA, the chunked twin elsewhere, both with their own backward);
    textbook: logits materialised, autograd through them; compiled: the textbook head through torch.compile
    (one compiled function per process, so that models share its compiled graphs)."""
    if kind == "fused":
        return splade_max_pool
    if kind == "textbook":
        return splade_max_pool_reference
    if kind == "compiled":
        return torch.compile(splade_max_pool_reference)
    raise ValueError(f"head must be one of {HEADS}, got {kind!r}")


class SpladeModel(nn.Module):
    """Texts' token ids -> SPLADE weights, differentiable. ``half`` runs the transformer under bfloat16 autocast
    and the head on bfloat16 hidden states (mixed precision on GPU); parameters stay float32."""

    def __init__(self, mlm: nn.Module, tokenizer, head: str = "fused", half: bool = False):
        super().__init__()
        decoder = mlm.get_output_embeddings()
        if decoder is None or not hasattr(decoder, "weight"):
            raise ValueError(f"{type(mlm).__name__} has no masked-LM output projection")
        decoder.forward = _passthrough
        self.mlm, self.decoder, self.tokenizer = mlm, decoder, tokenizer
        self.head_kind, self.half = head, half
        self._head = _head(head)

    @classmethod
    def from_pretrained(cls, name_or_path: str, head: str = "fused", half: bool = False) -> "SpladeModel":
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from lsr.encoding.encoder import ModelLoadError
        from lsr.encoding.models import resolve_model

        path = resolve_model(name_or_path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            mlm = AutoModelForMaskedLM.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"could not load {name_or_path!r} as a masked-LM checkpoint ({e})") from e
        return cls(mlm, tokenizer, head, half)

    @property
    def device(self) -> torch.device:
        return self.decoder.weight.device

    def tokenize(self, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(texts, truncation=True, max_length=max_length, padding=True,
                             return_token_type_ids=False, return_tensors="pt")
        return {k: enc[k].to(self.device) for k in ("input_ids", "attention_mask")}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.half else contextlib.nullcontext()
        with autocast:
            hidden = self.mlm(input_ids=input_ids, attention_mask=attention_mask).logits  # decoder skipped: (B, L, H)
        if self.half:
            hidden = hidden.to(torch.bfloat16)
        weight, bias = self.decoder.weight, self.decoder.bias
        if self.head_kind != "fused":  # the textbook head computes its logits in the hidden states' precision
            weight, bias = weight.to(hidden.dtype), None if bias is None else bias.to(hidden.dtype)
        return self._head(hidden, weight, bias, attention_mask).float()

    def encode(self, texts: list[str], max_length: int) -> torch.Tensor:
        return self(**self.tokenize(texts, max_length))

    def save(self, folder: str | Path) -> None:
        """An ordinary Hugging Face checkpoint (weights, config, tokenizer) that ``Encoder.from_pretrained`` loads."""
        self.mlm.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)

    @torch.no_grad()
    def encode_sparse(self, texts: list[str], max_length: int, batch_size: int = 32) -> SparseBatch:
        """Vectors of ``texts`` in input order, dropout off, batches sorted by length (as the Encoder does)."""
        was_training = self.training
        self.eval()
        order = np.argsort([-len(t) for t in texts], kind="stable")
        parts = []
        try:
            for lo in range(0, len(texts), batch_size):
                w = self.encode([texts[i] for i in order[lo:lo + batch_size]], max_length)
                parts.append(SparseBatch.from_dense(w.cpu().numpy()))
        finally:
            self.train(was_training)
        if not parts:
            return SparseBatch.from_rows([], int(self.decoder.weight.shape[0]))
        inverse = np.empty(len(texts), np.int64)
        inverse[order] = np.arange(len(texts))
        return SparseBatch.concat(parts).take(inverse)


class IdfQueries:
    """Inference-free queries (OpenSearch's recipe): each distinct query token, special tokens excluded, weighted
    by its IDF over the training corpus; what ``Encoder(query_mode="idf")`` computes from the ``idf.json`` this
    writes."""

    def __init__(self, tokenizer, doc_texts: list[str], vocab_size: int, max_length: int):
        from lsr.encoding.encoder import idf_from_documents

        self.tokenizer, self.vocab_size = tokenizer, vocab_size
        special = set(tokenizer.all_special_ids)
        ids = tokenizer(doc_texts, truncation=True, max_length=max_length, add_special_tokens=False)["input_ids"]
        rows = [(t, np.ones(len(t), np.float32))
                for t in (np.array(sorted(set(x) - special), np.int32) for x in ids)]
        self.idf = idf_from_documents(SparseBatch.from_rows(rows, vocab_size))
        self._special = special

    def vectors(self, texts: list[str], max_length: int) -> SparseBatch:
        ids = self.tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)["input_ids"]
        rows = []
        for x in ids:
            terms = np.array(sorted(set(x) - self._special), np.int32)
            w = self.idf[terms]
            rows.append((terms[w > 0], w[w > 0]))
        return SparseBatch.from_rows(rows, self.vocab_size)

    def dense(self, texts: list[str], max_length: int, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(self.vectors(texts, max_length).to_scipy().toarray()).to(device)

    def save(self, folder: str | Path) -> None:
        """``idf.json``: {token: weight} for every token with a weight, the form ``load_idf_json`` reads."""
        import json

        vocab = self.tokenizer.convert_ids_to_tokens(list(range(self.vocab_size)))
        table = {vocab[i]: float(self.idf[i]) for i in np.nonzero(self.idf > 0)[0]}
        with atomic_open(Path(folder) / "idf.json", "w") as f:
            json.dump(table, f, ensure_ascii=False)
