"""SPLADE encoding: text -> tokenizer -> masked-LM transformer -> fused sparse head -> CSR vectors.

Any Hugging Face masked-LM checkpoint works. The model's output projection (the MLM decoder) is swapped for an
identity, so the transformer returns the transformed hidden states and the vocabulary projection happens only
inside ``splade_max_pool``, which never materialises (batch, tokens, vocab) logits.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from lsr.encoding.heap import keep_freed_memory
from lsr.encoding.head import resolve_backend, splade_max_pool, splade_sum_pool
from lsr.encoding.models import DEFAULT_MODEL, available_models, hub_reachable, in_hub_cache, resolve_model, vocab_fingerprint
from lsr.encoding.query import Network, QueryEncoder, Unsupported
from lsr.encoding.texts import DOCUMENT_MAX_LENGTH, QUERY_MAX_LENGTH, EncodeStats
from lsr.encoding.texts import check_texts as _check_texts
from lsr.encoding.tokens import BatchTokenizer
from lsr.core.sparse import SparseBatch

log = logging.getLogger(__name__)

PREFETCH = 4  # GPU batches tokenized ahead of the model
DOCUMENT_WINDOW_OVERLAP: int | None = None   # documents longer than max_length: truncated (None) or windowed
WINDOW_KEY = "window_of"                     # a windowed batch's row -> text (position in the batch)
PADDED_KEY = "padded"                        # a batch holds padding (known on the host: no device sync to find out)
# Bumped whenever the encoder's arithmetic changes the vectors it makes (the evaluation's cache keys on it).
NUMERICS_VERSION = "2026-12-screen-1"


class ModelLoadError(ValueError):
    """The model could not be found, downloaded, or has no masked-LM head."""


def _pick_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _detach_decoder(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Replaces the MLM output projection by an identity; returns its weight (V, H) and bias (V,)."""
    decoder = model.get_output_embeddings()
    if decoder is None or not hasattr(decoder, "weight"):
        raise ModelLoadError(f"{type(model).__name__} has no masked-LM output projection")
    for module in model.modules():
        for child_name, child in module.named_children():
            if child is decoder:
                setattr(module, child_name, nn.Identity())
                return decoder.weight.detach(), None if decoder.bias is None else decoder.bias.detach()
    raise ModelLoadError(f"could not find the output projection inside {type(model).__name__}")


class Encoder:
    """Turns texts into SPLADE vectors (``SparseBatch``) over the model's vocabulary."""

    def __init__(self, model: nn.Module, tokenizer, *, name: str, device: torch.device, dtype: torch.dtype,
                 pooling: str = "max", head: str = "auto", batch_size: int = 32,
                 max_length: int = DOCUMENT_MAX_LENGTH, query_max_length: int = QUERY_MAX_LENGTH,
                 query_mode: str = "model", idf: np.ndarray | None = None,
                 window_overlap: int | None = DOCUMENT_WINDOW_OVERLAP):
        if pooling not in ("max", "sum"):
            raise ValueError(f"pooling must be 'max' or 'sum', got {pooling!r}")
        if query_mode not in ("model", "idf"):
            raise ValueError(f"query_mode must be 'model' or 'idf', got {query_mode!r}")
        self.name = name
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self.pooling = pooling
        self.head = head
        self.batch_size = batch_size
        self.max_length = max_length
        self.query_max_length = query_max_length
        self.query_mode = query_mode
        self.window_overlap = window_overlap
        self.model = model.to(device=device, dtype=dtype).eval()
        if device.type == "cpu":
            keep_freed_memory()
        self.weight, self.bias = _detach_decoder(self.model)
        self.vocab_size = int(self.weight.shape[0])
        self.vocab_fingerprint = vocab_fingerprint(tokenizer)
        self.idf = None if idf is None else self._check_idf(idf)
        self.stats = EncodeStats()
        self._side_stream: torch.cuda.Stream | None = None
        # SDPA takes a (B, 1, 1, L) key mask as it is; a 2D mask makes transformers check it on the device first
        self.key_mask = device.type == "cuda" and getattr(self.model.config, "_attn_implementation", None) == "sdpa"
        self._batch_tokenizers: dict[tuple[int, int | None], BatchTokenizer | None] = {}
        self._numpy_queries: QueryEncoder | None | bool = None   # False: the model is not covered

    @classmethod
    def from_pretrained(cls, name_or_path: str = DEFAULT_MODEL, device: str | torch.device = "auto",
                        dtype: torch.dtype | str | None = None, **options) -> "Encoder":
        """Loads a masked-LM checkpoint: ``splade-tiny`` (embedded), a local folder, or a Hugging Face hub id.

        dtype defaults to bfloat16 on CUDA and float32 elsewhere. ``query_mode="idf"`` reads ``idf.json``
        from the model folder when it ships one (OpenSearch inference-free models do).
        """
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        path = resolve_model(name_or_path)
        if not os.path.isdir(path) and not in_hub_cache(path) and not hub_reachable():
            raise ModelLoadError(f"{name_or_path!r} is not a local folder and the Hugging Face hub cannot be reached "
                                 f"(offline?); embedded models that need no download: {available_models()}")
        dev = _pick_device(device)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        if dtype is None:
            dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
        except ValueError as e:  # an architecture with no masked-LM class
            raise ModelLoadError(f"{name_or_path!r} is not a masked-LM checkpoint: {e}") from e
        except OSError as e:  # not found locally and no network, or no such hub repo
            raise ModelLoadError(
                f"could not load {name_or_path!r} from the Hugging Face hub or a local folder ({e.__class__.__name__}: "
                f"{str(e).splitlines()[0]}); embedded models that need no download: {available_models()}") from e
        head_missing = [k for k in info.get("missing_keys", []) if "decoder" in k or "lm_head" in k or "cls." in k
                        or "vocab_" in k]
        if head_missing:
            raise ModelLoadError(f"{name_or_path!r} has no trained masked-LM head (missing {head_missing[:3]}); "
                                 "SPLADE needs the MLM head")
        encoder = cls(model, tokenizer, name=name_or_path, device=dev, dtype=dtype, **options)
        if encoder.query_mode == "idf" and encoder.idf is None:
            table = load_idf_json(path, tokenizer, encoder.vocab_size)
            if table is not None:
                encoder.set_idf(table)
        return encoder

    def vector_meta(self, max_length: int, window_overlap: int | None = None, top_k: int | None = None,
                    min_weight: float | None = None) -> dict:
        """What a vectors file records of the encoder that made it (``lsr.core.vectors``): the model, its
        vocabulary, and every setting that changes a vector (``vector_settings``)."""
        return {"model": self.name, "vocab_size": self.vocab_size, "vocab_fingerprint": self.vocab_fingerprint,
                **vector_settings(self.device, self.dtype, head=self.head, pooling=self.pooling, max_length=max_length,
                                  window_overlap=window_overlap, top_k=top_k, min_weight=min_weight)}

    # ---- inference-free queries ---------------------------------------------------------------------------------
    def _check_idf(self, idf: np.ndarray) -> np.ndarray:
        idf = np.asarray(idf, dtype=np.float32)
        if idf.shape != (self.vocab_size,):
            raise ValueError(f"IDF table must have one weight per vocabulary term ({self.vocab_size}), got {idf.shape}")
        return idf

    def set_idf(self, idf: np.ndarray) -> None:
        """Sets the query-token weights used by ``query_mode="idf"`` (e.g. ``idf_from_documents`` of an index)."""
        self.idf = self._check_idf(idf)

    # ---- encoding -----------------------------------------------------------------------------------------------
    def encode_documents(self, texts: Sequence[str], **kw) -> SparseBatch:
        """Document vectors; texts longer than max_length are split into windows overlapping by
        ``window_overlap`` tokens (the encoder's default unless given; None truncates), max-pooled into one vector."""
        kw.setdefault("window_overlap", self.window_overlap)
        return self.encode(texts, max_length=kw.pop("max_length", None) or self.max_length, **kw)

    def encode_queries(self, texts: Sequence[str], **kw) -> SparseBatch:
        """Query vectors; on the CPU in float32 through the numpy ``QueryEncoder`` over this model's own weights
        (the same vectors, without torch's per-call overhead), else through ``encode``."""
        max_length = kw.pop("max_length", None) or self.query_max_length
        if self.query_mode == "idf":
            return self._encode_idf(texts, max_length, **kw)
        fast = self.query_encoder()
        if fast is None:
            return self.encode(texts, max_length=max_length, **kw)
        try:
            return fast.encode_queries(texts, max_length=max_length, **kw)
        finally:
            self.stats = fast.stats

    def query_encoder(self) -> QueryEncoder | None:
        """The numpy query encoder sharing this model's weights (no copy), or None where it does not apply: another
        device or dtype, a slow tokenizer, an architecture the numpy forward does not cover."""
        if self._numpy_queries is None:
            self._numpy_queries = False
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            if self.device.type == "cpu" and self.dtype == torch.float32 and backend is not None:
                tensors = {k: v.detach().numpy() for k, v in self.model.state_dict().items()}
                decoder = (self.weight.numpy(), np.zeros(self.vocab_size, np.float32) if self.bias is None
                           else self.bias.numpy())
                try:
                    network = Network.from_tensors(self.model.config.to_dict(), tensors, decoder)
                except Unsupported as e:
                    log.info("queries of %s are encoded with torch: %s", self.name, e)
                else:
                    from tokenizers import Tokenizer

                    self._numpy_queries = QueryEncoder(
                        network, Tokenizer.from_str(backend.to_str()), name=self.name, pooling=self.pooling,
                        batch_size=self.batch_size, max_length=self.max_length,
                        query_max_length=self.query_max_length)
        return self._numpy_queries or None

    def _tokenize(self, texts: list[str], max_length: int, pad_to: int | None) -> tuple[dict[str, torch.Tensor], int]:
        """Padded token ids and attention mask of one batch, truncated to max_length; how many were truncated."""
        kw = dict(truncation=True, max_length=max_length, padding=True, pad_to_multiple_of=pad_to,
                  return_token_type_ids=False, return_tensors="np")
        enc = self.tokenizer(texts, return_overflowing_tokens=True, **kw)
        mapping = enc.get("overflow_to_sample_mapping")
        if mapping is None:  # slow tokenizers: no overflow mapping
            full = self.tokenizer(texts, truncation=False, return_attention_mask=False, return_token_type_ids=False)
            truncated = sum(len(x) > max_length for x in full["input_ids"])
            enc = self.tokenizer(texts, **kw)
            first = slice(None)
        else:  # the first row of each text; later rows hold what truncation cut off
            mapping = np.asarray(mapping)
            first = np.r_[True, mapping[1:] != mapping[:-1]]
            truncated = int(np.count_nonzero(np.bincount(mapping, minlength=len(texts)) > 1))
        batch = {k: torch.from_numpy(np.ascontiguousarray(enc[k][first])) for k in ("input_ids", "attention_mask")}
        return batch, truncated

    def _batches(self, texts: list[str], order: np.ndarray, batch_size: int, max_length: int,
                 window_overlap: int | None = None) -> Iterable[tuple[np.ndarray, dict]]:
        """Batches of texts[order], tokenized, padded and copied to the device on a thread while the model runs.

        The tokenizer (Rust) releases the GIL, so the CPU prepares the next batches while the GPU works on this one.
        """
        chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        cuda = self.device.type == "cuda"

        def prepare(chunk):
            if window_overlap is None:
                batch, truncated = self._tokenize([texts[i] for i in chunk], max_length, 8 if cuda else None)
            else:
                batch, truncated = self._tokenize_windows([texts[i] for i in chunk], max_length, window_overlap,
                                                          8 if cuda else None)
            self.stats.truncated += truncated
            self.stats.tokens += int(batch["attention_mask"].sum())
            return chunk, {**{k: (v.pin_memory() if cuda else v).to(self.device, non_blocking=True)
                              for k, v in batch.items()}, PADDED_KEY: not bool(batch["attention_mask"].all())}

        if len(chunks) <= 1:   # one batch (a query, a micro-batch): a thread hand-off would only add latency
            yield from map(prepare, chunks)
            return
        q: queue.Queue = queue.Queue(maxsize=4)

        def producer():
            try:
                for c in chunks:
                    q.put(prepare(c))
            except BaseException as e:  # surfaced in the consumer
                q.put(e)
            q.put(None)

        threading.Thread(target=producer, daemon=True).start()
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def _batch_tokenizer(self, max_length: int, pad_to: int | None) -> BatchTokenizer | None:
        """The Rust-tokenizer batcher for these settings (built once), or None for a slow tokenizer."""
        key = (max_length, pad_to)
        if key not in self._batch_tokenizers:
            try:
                self._batch_tokenizers[key] = BatchTokenizer(self.tokenizer, max_length, pad_to)
            except (TypeError, ImportError):
                self._batch_tokenizers[key] = None
        return self._batch_tokenizers[key]

    def _prefetched_batches(self, texts: list[str], order: np.ndarray, batch_size: int,
                            max_length: int) -> Iterable[tuple[np.ndarray, dict]]:
        """Batches for the GPU, the same tensors as ``_batches``, prepared PREFETCH batches ahead by two threads.

        Each batch is tokenized by the Rust tokenizer (all cores, the GIL released: ``lsr.encoding.tokens``) and
        pinned on a worker; this thread only starts the non-blocking copies, so the host work of the next batches
        runs while the GPU computes this one.
        """
        cuda = self.device.type == "cuda"
        tokenize = self._batch_tokenizer(max_length, 8 if cuda else None)
        if tokenize is None:
            yield from self._batches(texts, order, batch_size, max_length)
            return
        chunks = iter([order[i:i + batch_size] for i in range(0, len(order), batch_size)])

        def prepare(chunk: np.ndarray) -> tuple[np.ndarray, int, dict[str, torch.Tensor]]:
            tokens = tokenize([texts[i] for i in chunk])
            host = {"input_ids": torch.from_numpy(tokens.input_ids),
                    "attention_mask": torch.from_numpy(tokens.attention_mask)}
            return chunk, tokens.truncated, {k: v.pin_memory() if cuda else v for k, v in host.items()}

        with ThreadPoolExecutor(2, thread_name_prefix="lsr-tokenize") as pool:
            ahead = deque(pool.submit(prepare, c) for _, c in zip(range(PREFETCH), chunks))
            try:
                while ahead:
                    chunk, truncated, host = ahead.popleft().result()
                    if (nxt := next(chunks, None)) is not None:
                        ahead.append(pool.submit(prepare, nxt))
                    self.stats.truncated += truncated
                    self.stats.tokens += int(host["attention_mask"].sum())
                    yield chunk, {**{k: v.to(self.device, non_blocking=True) for k, v in host.items()},
                                  PADDED_KEY: not bool(host["attention_mask"].all())}
            finally:
                for f in ahead:
                    f.cancel()

    @torch.inference_mode()
    def weights(self, batch: dict, padded: bool = True) -> torch.Tensor:
        """Dense (B, V) float32 SPLADE weights of one tokenized batch.

        A batch without padding (``padded`` False: length-sorted batches of texts past max_length, 41% of
        scifact's) reaches the model without its all-ones attention mask: the same result, and no mask check that
        would make the host wait for the GPU to finish the previous batch before it can queue this one. A padded
        batch's mask goes in as a (B, 1, 1, L) key mask where attention is SDPA (``key_mask``, on CUDA), for the same
        reason: transformers hands a 4D mask to attention unchecked."""
        if not padded:
            inputs = {"input_ids": batch["input_ids"]}
        elif self.key_mask:
            keys = batch["attention_mask"][:, None, None, :].bool()
            inputs = {"input_ids": batch["input_ids"], "attention_mask": keys}
        else:
            inputs = batch
        hidden = self.model(**inputs).logits  # the decoder is an identity: transformed hidden states (B, L, H)
        if self.pooling == "sum":
            return splade_sum_pool(hidden, self.weight, self.bias, batch["attention_mask"])
        return splade_max_pool(hidden, self.weight, self.bias, batch["attention_mask"], backend=self.head)

    def _to_csr_when_ready(self, w: torch.Tensor, ready: torch.cuda.Event | None) -> SparseBatch:
        """CSR of a batch's weights. On CUDA the compaction runs on a side stream that waits for this batch only,
        so the next batch, already queued on the main stream, keeps the GPU busy meanwhile."""
        if ready is None:
            return _to_csr(w, self.vocab_size)
        if self._side_stream is None:
            self._side_stream = torch.cuda.Stream(self.device)
        with torch.cuda.stream(self._side_stream):
            self._side_stream.wait_event(ready)
            return _to_csr(w, self.vocab_size)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], *, max_length: int, batch_size: int | None = None,
               top_k: int | None = None, min_weight: float | None = None,
               progress: Callable[[int], None] | None = None, window_overlap: int | None = None) -> SparseBatch:
        """Vectors of ``texts`` in input order. Batches are length-sorted to waste no compute on padding.

        top_k keeps the heaviest terms of each vector, min_weight drops smaller weights.
        progress(n) is called after each batch of n texts. window_overlap: see ``encode_documents``.
        """
        texts = _check_texts(texts)
        if top_k is not None and top_k <= 0:
            raise ValueError(f"top_k must be positive, got {top_k}")
        check_window_overlap(window_overlap, max_length)
        batch_size = batch_size or self.batch_size
        self.stats = EncodeStats(texts=len(texts), max_length=max_length)
        blank = np.array([i for i, t in enumerate(texts) if not t.strip()], dtype=np.int64)  # -> empty vectors
        kept = np.setdiff1d(np.arange(len(texts)), blank)
        # longest first by characters, which orders tokens closely enough and costs no tokenization up front
        order = kept[np.argsort(-np.array([len(texts[i]) for i in kept], dtype=np.int64), kind="stable")]
        parts, orders = [], []
        if len(blank):
            parts.append(SparseBatch(np.zeros(len(blank) + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32),
                                     self.vocab_size))
            orders.append(blank)
        pending = None  # the previous batch: its CSR is built while this one runs
        if window_overlap is not None:  # windows, on any device
            stream = self._batches(texts, order, batch_size, max_length, window_overlap)
        elif self.device.type == "cuda":
            stream = self._prefetched_batches(texts, order, batch_size, max_length)
        else:
            stream = self._batches(texts, order, batch_size, max_length)
        for chunk, batch in stream:
            window_of = batch.pop(WINDOW_KEY, None)
            w = self.weights(batch, batch.pop(PADDED_KEY, True))
            if window_of is not None:
                w = _pool_windows(w, window_of, len(chunk))
            if top_k is not None and top_k < w.shape[1]:
                top = torch.topk(w, top_k, dim=1)
                w = torch.zeros_like(w).scatter_(1, top.indices, top.values)
            if min_weight is not None:
                w = w.masked_fill(w < min_weight, 0)
            ready = None
            if w.is_cuda:
                ready = torch.cuda.Event()
                ready.record()
            if pending is not None:
                self._finish(pending, parts, orders, progress)
            pending = (chunk, w, ready)
        if pending is not None:
            self._finish(pending, parts, orders, progress)
        if self.stats.truncated:
            log.info("%d of %d texts were longer than %d tokens and were truncated", self.stats.truncated,
                     len(texts), max_length)
        if self.stats.windowed:
            log.info("%d of %d texts were longer than %d tokens and were encoded in overlapping windows",
                     self.stats.windowed, len(texts), max_length)
        if not parts:
            return SparseBatch(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), self.vocab_size)
        if progress and len(blank):
            progress(len(blank))
        inverse = np.empty(len(texts), dtype=np.int64)
        inverse[np.concatenate(orders)] = np.arange(len(texts))
        return SparseBatch.concat(parts).take(inverse)

    def _finish(self, pending, parts: list, orders: list, progress: Callable[[int], None] | None) -> None:
        chunk, w, ready = pending
        parts.append(self._to_csr_when_ready(w, ready))
        orders.append(chunk)
        if progress:
            progress(len(chunk))

    def _tokenize_windows(self, texts: list[str], max_length: int, overlap: int,
                          pad_to: int | None) -> tuple[dict[str, torch.Tensor], int]:
        """Every window of max_length tokens (consecutive ones sharing ``overlap`` tokens, each with the model's
        special tokens) of a batch, with ``WINDOW_KEY``: the text each row belongs to. Nothing is truncated."""
        enc = self.tokenizer(texts, truncation=True, max_length=max_length, stride=overlap, padding=True,
                             pad_to_multiple_of=pad_to, return_overflowing_tokens=True, return_token_type_ids=False,
                             return_tensors="np")
        mapping = enc.get("overflow_to_sample_mapping")
        if mapping is None:
            raise ValueError("window_overlap needs a fast (Rust) tokenizer: this model's cannot return overflowing "
                             "windows")
        mapping = np.asarray(mapping, dtype=np.int64)
        self.stats.windowed += int(np.count_nonzero(np.bincount(mapping, minlength=len(texts)) > 1))
        batch = {k: torch.from_numpy(np.ascontiguousarray(enc[k])) for k in ("input_ids", "attention_mask")}
        batch[WINDOW_KEY] = torch.from_numpy(mapping)
        return batch, 0

    def _encode_idf(self, texts: Sequence[str], max_length: int, **_) -> SparseBatch:
        """Inference-free query vectors: each distinct query token (special tokens excluded) weighted by its IDF."""
        texts = _check_texts(texts)
        if self.idf is None:
            raise ValueError("query_mode='idf' needs an IDF table: ship idf.json with the model, or call set_idf()")
        if not texts:
            self.stats = EncodeStats(max_length=max_length)
            return SparseBatch.from_rows([], self.vocab_size)
        batch, truncated = self._tokenize(texts, max_length, None)
        ids, mask = batch["input_ids"].numpy(), batch["attention_mask"].numpy().astype(bool)
        self.stats = EncodeStats(texts=len(texts), truncated=truncated, tokens=int(mask.sum()), max_length=max_length)
        special = set(self.tokenizer.all_special_ids)
        rows = []
        for x, m in zip(ids, mask):
            terms = np.array(sorted(set(x[m].tolist()) - special), dtype=np.int32)
            w = self.idf[terms]
            rows.append((terms[w > 0], w[w > 0]))
        return SparseBatch.from_rows(rows, self.vocab_size)


def vector_settings(device: str | torch.device, dtype: torch.dtype | str | None = None, *, head: str = "auto",
                    pooling: str = "max", max_length: int, window_overlap: int | None = None,
                    top_k: int | None = None, min_weight: float | None = None) -> dict:
    """Everything besides the model that changes a vector, as an encoder on ``device`` would resolve it (without
    loading a model): what a cache of vectors must be keyed by. The head backend counts because the float32
    results of two backends may differ in their last bits; ``numerics`` is bumped when the arithmetic changes."""
    dev = _pick_device(device)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    dtype = dtype or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    return {"max_length": max_length, "pooling": pooling, "window_overlap": window_overlap,
            "top_k": top_k, "min_weight": min_weight, "dtype": str(dtype).removeprefix("torch."),
            "head": resolve_backend(head, dev) if pooling == "max" else "sum", "numerics": NUMERICS_VERSION}


def check_window_overlap(overlap: int | None, max_length: int) -> None:
    """An overlap leaves room for new tokens in every window (BERT-like models add 2 special tokens)."""
    if overlap is not None and not 0 <= overlap <= max_length // 2:
        raise ValueError(f"window_overlap must be between 0 and max_length // 2 = {max_length // 2} tokens, "
                         f"got {overlap}")


def _pool_windows(w: torch.Tensor, window_of: torch.Tensor, texts: int) -> torch.Tensor:
    """(windows, V) weights -> (texts, V): each text's elementwise maximum over its windows (= max-pooling over all
    of its tokens, as log1p(relu) is monotonic)."""
    out = torch.zeros(texts, w.shape[1], dtype=w.dtype, device=w.device)
    index = window_of.to(w.device)[:, None].expand_as(w)
    return out.scatter_reduce_(0, index, w, reduce="amax", include_self=True)


def _to_csr(w: torch.Tensor, vocab_size: int) -> SparseBatch:
    """Dense (B, V) weights to CSR, compacted where they are: from a GPU only the row counts, term ids and weights
    of the non-zeros cross to the host, packed into one copy."""
    keep = w > 0
    nz = torch.nonzero(keep)  # row-major: term ids come out sorted within each row
    n, rows = len(nz), w.shape[0]
    packed = torch.cat([keep.sum(1, dtype=torch.int32), nz[:, 1].to(torch.int32),
                        w[nz[:, 0], nz[:, 1]].float().view(torch.int32)]).cpu().numpy()
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(packed[:rows], out=indptr[1:])
    return SparseBatch(indptr, packed[rows:rows + n], packed[rows + n:].view(np.float32), vocab_size)


def idf_from_documents(docs: SparseBatch) -> np.ndarray:
    """IDF weights, log(1 + (N - df + 0.5) / (df + 0.5)), from the document frequencies of an indexed corpus."""
    df = np.bincount(docs.indices, minlength=docs.vocab_size).astype(np.float64)
    n = max(len(docs), 1)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    idf[df == 0] = 0.0
    return idf.astype(np.float32)


def load_idf_json(model_dir: str, tokenizer, vocab_size: int) -> np.ndarray | None:
    """The ``idf.json`` ({token: weight}) that inference-free models ship, as a vocabulary-sized array."""
    import json

    path = os.path.join(model_dir, "idf.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        table = json.load(f)
    vocab = tokenizer.get_vocab()
    idf = np.zeros(vocab_size, dtype=np.float32)
    for token, weight in table.items():
        if vocab.get(token, vocab_size) < vocab_size and math.isfinite(weight):
            idf[vocab[token]] = weight
    return idf
