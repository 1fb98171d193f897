"""Query encoding without torch: the masked-LM forward of a BERT-family model in numpy, then the SPLADE head.

A process that loads torch and transformers to encode one query pays ~3 s and ~500 MB before it starts, and each
query then pays the frameworks' per-call overhead around a few products of (tokens x 128)-sized matrices. Here the
weights come from the checkpoint's ``model.safetensors`` (``safetensors.numpy``), the tokenizer from its
``tokenizer.json`` (the Rust ``tokenizers`` library), and each layer is a few numpy products. The vectors are the
torch Encoder's: the same non-zero terms, weights equal to float32 rounding (tests/unit/test_query_encoder.py).

Covered: config ``model_type`` "bert" and "distilbert" (absolute positions; gelu, gelu_new or relu). Anything else
raises ``Unsupported``, and ``lsr.encoding.loader.load_query_encoder`` falls back to the torch ``Encoder``.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lsr.core.sparse import SparseBatch
from lsr.encoding import forward, gemm, screen
from lsr.encoding.heap import keep_freed_memory
from lsr.encoding.models import DEFAULT_MODEL, resolve_model, vocab_fingerprint
from lsr.encoding.texts import DOCUMENT_MAX_LENGTH, QUERY_MAX_LENGTH, EncodeStats, check_texts

log = logging.getLogger(__name__)

_LOGITS_BYTES = 8 * 2**20   # bounds the float32 logits of one vocabulary chunk (a batch of long texts)

# Texts of many kinds whose mean token state centres the screen for every text (``screen.Centre``): fixed, so a
# text's vector never depends on what was encoded before.
CALIBRATION = (
    "What causes the seasons to change on Earth?",
    "How do I reset a forgotten password on my laptop?",
    "The committee approved the budget after a long debate about taxes and public schools.",
    "Patients treated with the new drug showed fewer symptoms than those given a placebo.",
    "best pizza restaurants near the train station open late",
    "She walked along the river at dawn, listening to the birds in the old oak trees.",
    "The function returns a sorted list of unique values from the input array.",
    "Which team won the football championship in 1998?",
    "Protein folding depends on temperature, acidity and the sequence of amino acids.",
    "symptoms of vitamin d deficiency in adults",
    "The company reported higher quarterly profits as sales of its phones grew in Asia.",
    "history of the roman empire and its fall",
)


class Unsupported(ValueError):
    """The checkpoint is outside what the numpy forward covers (the torch Encoder handles it)."""


@dataclass(frozen=True)
class Dense:
    """A linear map y = x @ W.T + b, its weight packed for the forward's product kernel (``lsr.encoding.gemm``)."""

    weight: np.ndarray   # (ceil(out / 16), in, 16) float32 panels
    bias: np.ndarray     # (16 * ceil(out / 16),) float32, zero-padded
    size: int            # out

    @classmethod
    def of(cls, weight: np.ndarray, bias: np.ndarray) -> Dense:
        """From a checkpoint's (out, in) weight and (out,) bias (a copy: the checkpoint's arrays may be freed)."""
        return cls(*gemm.pack(weight, bias), int(weight.shape[0]))


@dataclass(frozen=True)
class Norm:
    weight: np.ndarray
    bias: np.ndarray
    eps: float


@dataclass(frozen=True)
class Layer:
    """A post-LayerNorm transformer block, as BERT and DistilBERT share it."""

    qkv: Dense   # query, key and value in one product: (3H, H)
    out: Dense
    norm1: Norm
    up: Dense
    down: Dense
    norm2: Norm


@dataclass(frozen=True)
class Network:
    """The weights of a masked-LM transformer and its MLM head, named by role."""

    words: np.ndarray          # (V, H)
    positions: np.ndarray      # (P, H)
    token_type: np.ndarray     # (H,): type 0, or zeros for models without token types
    norm0: Norm
    layers: tuple[Layer, ...]
    heads: int
    activation: str
    transform: Dense
    transform_norm: Norm
    decoder: np.ndarray        # (H, V): the output projection, transposed (a view, or a copy laid out for BLAS)
    decoder_bias: np.ndarray   # (V,)

    @classmethod
    def from_tensors(cls, config: dict, tensors: dict[str, np.ndarray],
                     decoder: tuple[np.ndarray, np.ndarray] | None = None, own: bool = False) -> Network:
        """From a checkpoint's config and tensors (legacy ``gamma``/``beta`` LayerNorm names accepted); ``decoder``
        overrides the output projection (weight, bias). Unsupported for an architecture the forward does not cover.

        ``own``: the tensors are this network's alone. Where the screen is not available, the output projection is
        then stored transposed, (H, V) contiguous (the float32 head's product is ~20% faster so; tied word
        embeddings are looked up in that copy). The screen reads whole decoder rows (its survivors) and the
        embeddings read rows, so with the screen every array stays as stored, (V, H), as it does for a caller's
        arrays (a torch model's weights: no second copy). A survivor's row read from the (H, V) copy touched 128
        cache lines: 0.14 ms of a query for ~110 survivors."""
        model_type = config.get("model_type")
        if model_type not in _NAMES:
            raise Unsupported(f"model_type {model_type!r} (covered: {sorted(_NAMES)})")
        names, fields = _NAMES[model_type], _config_fields(model_type, config)
        tensors = {_modern(k): v for k, v in tensors.items()}

        def get(key: str) -> np.ndarray:
            if key not in tensors:
                raise Unsupported(f"the checkpoint has no tensor {key!r}")
            t = tensors[key]
            if t.dtype != np.float32:
                raise Unsupported(f"{key} is {t.dtype}; the numpy forward runs float32 checkpoints")
            return t

        def dense(*prefixes: str) -> Dense:   # several: their outputs side by side
            return Dense.of(*(np.concatenate([get(f"{p}.{t}") for p in prefixes]) for t in ("weight", "bias")))

        def norm(prefix: str) -> Norm:
            return Norm(get(f"{prefix}.weight"), get(f"{prefix}.bias"), fields["eps"])

        def layer(i: int) -> Layer:
            p = names["layer"].format(i=i)
            return Layer(dense(*(p + names[r] for r in ("query", "key", "value"))), dense(p + names["out"]),
                         norm(p + names["norm1"]),
                         dense(p + names["up"]), dense(p + names["down"]), norm(p + names["norm2"]))

        words = get(names["words"])
        hidden = words.shape[1]
        if hidden % fields["heads"]:
            raise Unsupported(f"hidden size {hidden} is not a multiple of {fields['heads']} heads")
        types = get(names["types"])[0] if names.get("types") else np.zeros(hidden, np.float32)
        if decoder is None:
            weight = tensors.get(names["decoder"])
            if weight is None and not config.get("tie_word_embeddings", True):
                raise Unsupported(f"the checkpoint has no tensor {names['decoder']!r} and untied embeddings")
            bias = next((tensors[k] for k in names["decoder_bias"] if k in tensors), None)
            if bias is None:
                raise Unsupported(f"the checkpoint has none of {names['decoder_bias']}")
            decoder = (words if weight is None else weight, bias)
        projection = decoder[0].T
        if own and not screen.available():
            projection = np.ascontiguousarray(projection)
            if decoder[0] is words:
                words = projection.T
        return cls(words, get(names["positions"]), types, norm(names["norm0"]),
                   tuple(layer(i) for i in range(fields["layers"])), fields["heads"], fields["activation"],
                   dense(names["transform"]), norm(names["transform_norm"]), projection, decoder[1])

    @functools.cached_property
    def packed_decoder(self) -> screen.PackedWeight:
        """The output projection as the screened head's integers (packed on first use: ~0.3 s for 30,522 rows)."""
        return screen.pack(self.decoder.T)

    @property
    def vocab_size(self) -> int:
        return int(self.decoder.shape[1])

    def hidden(self, ids: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """The MLM head's transformed hidden states (tokens, H) of texts laid end to end: text s is the token ids
        ``ids[starts[s]:starts[s + 1]]`` (int64)."""
        act = forward.ACTIVATIONS[self.activation]
        linear = gemm.kernel()[1]
        n0 = self.norm0
        x = forward.embed(ids, starts, self.words, self.positions, self.token_type, n0.weight, n0.bias, n0.eps)
        for f in self.layers:
            x = forward.layer(x, starts, self.heads, f.qkv.weight, f.qkv.bias, f.out.weight, f.out.bias,
                              f.norm1.weight, f.norm1.bias, f.up.weight, f.up.bias, f.up.size, f.down.weight,
                              f.down.bias, f.norm2.weight, f.norm2.bias, f.norm2.eps, act, linear)
        t, tn = self.transform, self.transform_norm
        return forward.transform(x, t.weight, t.bias, tn.weight, tn.bias, tn.eps, act, linear)

    def splade(self, ids: np.ndarray, starts: np.ndarray, pooling: str = "max",
               centre: screen.Centre | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """SPLADE vectors of texts laid end to end (as ``hidden``), one (terms ascending int32, weights float32)
        pair of non-zeros per text: log(1 + relu(logits)) max- (or sum-) pooled over each text's tokens.

        Max pooling goes through ``lsr.encoding.screen`` wherever the CPU allows, always: a text's vector must not
        depend on what the process encoded before (the two heads differ in the last bits). ``centre``: the
        screen's fixed centre (``screen.Centre``); each text's own mean when None. Elsewhere the (tokens, V) logits
        exist one vocabulary chunk at a time; for max pooling the bias is added after the max (the same float32
        result: rounding is monotonic) and log1p(relu) runs on the (texts, V) maxima only.
        """
        h = self.hidden(ids, starts)
        if pooling == "max" and screen.available():   # the integer screen, then the survivors in float32
            docs = [h[a:b] for a, b in itertools.pairwise(starts)]
            return screen.max_pool_rows(docs, self.decoder.T, self.decoder_bias, self.packed_decoder, centre=centre)
        V, texts = self.vocab_size, len(starts) - 1
        out = np.empty((texts, V), dtype=np.float32)
        step = max(256, min(V, _LOGITS_BYTES // (4 * max(len(h), 1))))
        for lo in range(0, V, step):
            hi = min(V, lo + step)
            logits = h @ self.decoder[:, lo:hi]
            if pooling == "max":
                out[:, lo:hi] = logits.max(0) if texts == 1 else np.maximum.reduceat(logits, starts[:-1], axis=0)
            else:
                logits += self.decoder_bias[lo:hi]
                np.log1p(np.maximum(logits, 0, out=logits), out=logits)
                out[:, lo:hi] = np.add.reduceat(logits, starts[:-1], axis=0)
        if pooling == "max":
            out += self.decoder_bias
            np.maximum(out, 0, out=out)
        rows = []
        for w in out:
            terms = np.flatnonzero(w > 0)   # a few dozen of the V columns: log1p there only for max pooling
            rows.append((terms.astype(np.int32), np.log1p(w[terms]) if pooling == "max" else w[terms]))
        return rows


# Tensor names by role; a layer's names follow its prefix.
_NAMES: dict[str, dict] = {
    "bert": {
        "words": "bert.embeddings.word_embeddings.weight", "positions": "bert.embeddings.position_embeddings.weight",
        "types": "bert.embeddings.token_type_embeddings.weight", "norm0": "bert.embeddings.LayerNorm",
        "layer": "bert.encoder.layer.{i}.", "query": "attention.self.query", "key": "attention.self.key",
        "value": "attention.self.value", "out": "attention.output.dense", "norm1": "attention.output.LayerNorm",
        "up": "intermediate.dense", "down": "output.dense", "norm2": "output.LayerNorm",
        "transform": "cls.predictions.transform.dense", "transform_norm": "cls.predictions.transform.LayerNorm",
        "decoder": "cls.predictions.decoder.weight",
        "decoder_bias": ("cls.predictions.decoder.bias", "cls.predictions.bias"),   # the first: what forward adds
    },
    "distilbert": {
        "words": "distilbert.embeddings.word_embeddings.weight",
        "positions": "distilbert.embeddings.position_embeddings.weight", "norm0": "distilbert.embeddings.LayerNorm",
        "layer": "distilbert.transformer.layer.{i}.", "query": "attention.q_lin", "key": "attention.k_lin",
        "value": "attention.v_lin", "out": "attention.out_lin", "norm1": "sa_layer_norm", "up": "ffn.lin1",
        "down": "ffn.lin2", "norm2": "output_layer_norm", "transform": "vocab_transform",
        "transform_norm": "vocab_layer_norm", "decoder": "vocab_projector.weight",
        "decoder_bias": ("vocab_projector.bias",),
    },
}


def _config_fields(model_type: str, config: dict) -> dict:
    if model_type == "bert":
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise Unsupported(f"position_embedding_type {config['position_embedding_type']!r}")
        fields = {"heads": config["num_attention_heads"], "layers": config["num_hidden_layers"],
                  "activation": config.get("hidden_act", "gelu"), "eps": config.get("layer_norm_eps", 1e-12)}
    else:
        fields = {"heads": config["n_heads"], "layers": config["n_layers"],
                  "activation": config.get("activation", "gelu"), "eps": 1e-12}
    if fields["activation"] not in forward.ACTIVATIONS:
        raise Unsupported(f"activation {fields['activation']!r} (covered: {sorted(forward.ACTIVATIONS)})")
    return fields


def _modern(key: str) -> str:
    """Old BERT checkpoints name LayerNorm parameters gamma and beta."""
    if key.endswith(".gamma"):
        return key[:-6] + ".weight"
    if key.endswith(".beta"):
        return key[:-5] + ".bias"
    return key


def _model_files(path: str) -> dict[str, str]:
    """config.json, model.safetensors and tokenizer.json of a local folder, or of a hub id in the local cache."""
    names = ("config.json", "model.safetensors", "tokenizer.json")
    if os.path.isdir(path):
        found = {n: os.path.join(path, n) for n in names if os.path.exists(os.path.join(path, n))}
    else:
        from huggingface_hub import try_to_load_from_cache

        found = {}
        for n in names:
            try:
                hit = try_to_load_from_cache(path, n)
            except ValueError:   # not a valid repo id
                hit = None
            if isinstance(hit, str):
                found[n] = hit
    missing = [n for n in names if n not in found]
    if missing:
        raise Unsupported(f"{path} has no local {', '.join(missing)}")
    return found


class QueryEncoder:
    """Texts to SPLADE vectors (``SparseBatch``) on the CPU in numpy, with the interface of the torch ``Encoder``.

    Made for queries; ``encode_documents`` runs the same forward at the document length, for the service's
    document writes, so a serving process never loads torch. Bulk document encoding belongs to the torch Encoder
    (``lsr index``, ``lsr encode``). Calls from several threads run in parallel (``parallel_calls``): the products
    and the screen's kernel release the GIL, and two threads of one process encode at 1.95-2.0 x one thread's rate
    on 2 cores.
    """

    parallel_calls = True

    def __init__(self, network: Network, tokenizer, *, name: str, pooling: str = "max", batch_size: int = 32,
                 max_length: int = DOCUMENT_MAX_LENGTH, query_max_length: int = QUERY_MAX_LENGTH):
        if pooling not in ("max", "sum"):
            raise ValueError(f"pooling must be 'max' or 'sum', got {pooling!r}")
        self.network = network
        self.tokenizer = tokenizer   # a tokenizers.Tokenizer of its own: its truncation is set here
        self.name = name
        self.pooling = pooling
        self.batch_size = batch_size
        self.max_length = max_length
        self.query_max_length = query_max_length
        self.vocab_size = network.vocab_size
        self.vocab_fingerprint = vocab_fingerprint(tokenizer)
        self.stats = EncodeStats()
        tokenizer.no_padding()
        self._length = 0   # the tokenizer's truncation length
        self._encode_batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)   # fast: no offsets
        self._lock = threading.Lock()
        keep_freed_memory()

    @classmethod
    def from_pretrained(cls, name_or_path: str = DEFAULT_MODEL, *, threads: int | None = None,
                        **options) -> QueryEncoder:
        """The model's query encoder from its files alone (no torch, no transformers); Unsupported when the numpy
        forward does not cover it or a file is not local. ``threads`` caps numpy's BLAS threads process-wide."""
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        files = _model_files(resolve_model(name_or_path))
        with open(files["config.json"], encoding="utf-8") as f:
            config = json.load(f)
        network = Network.from_tensors(config, load_file(files["model.safetensors"]), own=True)
        if threads is not None:
            limit_blas_threads(threads)
        return cls(network, Tokenizer.from_file(files["tokenizer.json"]), name=name_or_path, **options)

    @functools.cached_property
    def _centre(self) -> screen.Centre | None:
        """The screen's fixed centre: the mean token state of CALIBRATION (None where the screen is not used)."""
        if self.pooling != "max" or not screen.available():
            return None
        encodings = self._tokenize(list(CALIBRATION), len(self.network.positions))
        ids, starts = _laid_end_to_end([e.ids for e in encodings])
        with screen.one_blas_thread():
            states = self.network.hidden(ids, starts)
        net = self.network
        return screen.Centre.of(states, net.decoder.T, net.decoder_bias)

    def vector_meta(self, max_length: int) -> dict:
        """What a vectors file records of the encoder that made it (as ``Encoder.vector_meta``)."""
        return {"model": self.name, "vocab_size": self.vocab_size, "vocab_fingerprint": self.vocab_fingerprint,
                "max_length": max_length, "pooling": self.pooling}

    def _tokenize(self, texts: list[str], max_length: int) -> list:
        if max_length < 2 or max_length > len(self.network.positions):
            raise ValueError(f"max_length must be within 2..{len(self.network.positions)} (the model's positions), "
                             f"got {max_length}")
        with self._lock:
            if self._length != max_length:
                self.tokenizer.enable_truncation(max_length)
                self._length = max_length
            return self._encode_batch(texts)

    def encode_queries(self, texts: Sequence[str], **kw) -> SparseBatch:
        return self.encode(texts, max_length=kw.pop("max_length", None) or self.query_max_length, **kw)

    def encode_documents(self, texts: Sequence[str], **kw) -> SparseBatch:
        return self.encode(texts, max_length=kw.pop("max_length", None) or self.max_length, **kw)

    def encode(self, texts: Sequence[str], *, max_length: int, batch_size: int | None = None,
               top_k: int | None = None, min_weight: float | None = None,
               progress: Callable[[int], None] | None = None) -> SparseBatch:
        """Vectors of ``texts`` in input order; blank texts give empty vectors. top_k keeps the heaviest terms of each
        vector, min_weight drops smaller weights, progress(n) follows each batch."""
        texts = check_texts(texts)
        if top_k is not None and top_k <= 0:
            raise ValueError(f"top_k must be positive, got {top_k}")
        batch_size = batch_size or self.batch_size
        kept = [i for i, t in enumerate(texts) if t.strip()]
        encodings = self._tokenize([texts[i] for i in kept], max_length) if kept else []
        lengths = [len(e.ids) for e in encodings]
        self.stats = EncodeStats(texts=len(texts), truncated=sum(bool(e.overflowing) for e in encodings),
                                 tokens=sum(lengths), max_length=max_length)
        rows: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.int32), np.zeros(0, np.float32))] * len(texts)
        with screen.one_blas_thread():   # the same vector whatever the process's BLAS threads
            for lo in range(0, len(kept), batch_size):
                ids, starts = _laid_end_to_end([e.ids for e in encodings[lo:lo + batch_size]])
                vectors = self.network.splade(ids, starts, self.pooling, self._centre)
                for row, j in zip(vectors, kept[lo:lo + batch_size]):
                    rows[j] = row
                if progress:
                    progress(len(vectors))
        if progress and len(texts) > len(kept):
            progress(len(texts) - len(kept))
        if self.stats.truncated:
            log.info("%d of %d texts were longer than %d tokens and were truncated", self.stats.truncated,
                     len(texts), max_length)
        return SparseBatch.from_rows(rows, self.vocab_size).prune(top_k, min_weight)


def _laid_end_to_end(token_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Texts' token ids end to end (int64) and where each starts (texts + 1 offsets): ``Network.hidden``'s input."""
    starts = np.zeros(len(token_ids) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in token_ids], out=starts[1:])
    return np.fromiter((i for t in token_ids for i in t), np.int64, int(starts[-1])), starts


def limit_blas_threads(threads: int) -> None:
    """Caps the threads of numpy's BLAS for the whole process: the query products are small, and on a shared or
    busy CPU extra BLAS threads only wait on each other."""
    # the BLAS of Numba's np.dot (lsr.encoding.forward), a second OpenBLAS: limited only once loaded
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads, user_api="blas")
