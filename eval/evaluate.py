"""One evaluation: cached vectors -> the project's index -> a run -> measures and latency, as one JSON result.

Three kinds of retriever share the same engine: a SPLADE model's vectors searched by any index method (exact,
bmp, seismic, ... with their parameters passed through), BM25 vectors (``eval.bm25``) searched exactly, and a
hybrid that fuses the two (``eval.fusion``). ``latency_ms`` is the mean time of one query's search on one
thread (``Index.search_one``, after a warm-up), query encoding excluded and reported apart (``query_encode_ms``);
a hybrid's latency is the sum of its two searches and the fusion.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from lsr.retrieval.analyzer import Analyzer
from lsr.retrieval.bm25 import BM25, bm25_config
from lsr.eval.cache import VectorCache
from lsr.eval.datasets import EvalSet
from lsr.retrieval.fusion import hybrid
from lsr.eval.metrics import evaluate_run, within_depth
from lsr.eval.runs import Run, from_hits
from lsr.core.progress import ProgressFactory, no_progress
from lsr.encoding.texts import QUERY_MAX_LENGTH
from lsr.core.sparse import SparseBatch
from lsr.core.vectors import VectorsFile, load_vectors

FUSION_PARAMS = ("fusion", "rrf_k", "weight")  # a hybrid setting's own keys; the rest go to the SPLADE search


@dataclass
class Options:
    """Everything that is fixed across the settings of one evaluation."""

    model: str = "splade-tiny"
    max_length: int = 256
    window_overlap: int | None | Literal["default"] = "default"   # long documents: the encoder's default, windows
                                                                  # sharing N tokens, or None (truncated)
    query_max_length: int = QUERY_MAX_LENGTH   # longer queries are truncated, and counted in the result
    batch_size: int = 32
    device: str = "auto"
    k: int = 1000
    measures: Sequence[str] | None = None
    build_params: dict = field(default_factory=dict)
    quantization: str = "uint8"
    splade_method: str = "exact"  # the SPLADE side of a hybrid
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    stemmer: str = "porter"
    bm25_quantization: str = "float32"
    latency_queries: int = 1000
    threads: int | None = None
    cache_dir: str | Path | None = None
    doc_vectors: str | Path | None = None
    progress: ProgressFactory = field(default=no_progress, repr=False, compare=False)   # bars for long work


@dataclass
class Side:
    """One retriever: an index, the query vectors (aligned with the query ids), its method."""

    model: str
    index: Any
    queries: SparseBatch
    method: str
    encode_s: float | None
    query_encode_s: float
    build_s: float
    truncated: dict = field(default_factory=dict)   # SPLADE: documents / queries cut to their max length (counts)


# ---- vectors ------------------------------------------------------------------------------------------------------
def _queries_key(es: EvalSet) -> str:
    digest = hashlib.sha256(json.dumps(es.queries, sort_keys=True).encode()).hexdigest()[:12]
    return f"{es.name}-queries-{digest}"


def window_overlap(opts: Options) -> int | None:
    """The document windows' overlap that ``opts`` means (None: long documents are truncated)."""
    if opts.window_overlap != "default":
        return opts.window_overlap
    from lsr.encoding.encoder import DOCUMENT_WINDOW_OVERLAP

    return DOCUMENT_WINDOW_OVERLAP


def _check_doc_vectors(vf: VectorsFile, es: EvalSet, opts: Options, path: Path) -> None:
    """Precomputed vectors must be of this model, this max_length and this corpus (by count and judged ids)."""
    for key, want in (("model", opts.model), ("max_length", opts.max_length), ("window_overlap", window_overlap(opts))):
        if key in vf.meta and vf.meta[key] != want:
            raise ValueError(f"{path} was encoded with {key}={vf.meta[key]!r}, this evaluation uses {want!r}")
    if es.doc_count is not None and es.doc_count != len(vf.ids):
        raise ValueError(f"{path} holds {len(vf.ids)} documents, {es.corpus} has {es.doc_count}")
    judged = {d for j in es.qrels.values() for d in j}
    if judged and judged.isdisjoint(vf.ids.tolist()):
        raise ValueError(f"{path}: none of the judged documents of {es.name} is among its ids: another corpus")


def splade_vectors(es: EvalSet, opts: Options) -> tuple[VectorsFile, VectorsFile]:
    """Document and query vectors of ``opts.model`` (cached by every setting that changes a vector); the encoder
    is loaded only on a cache miss."""
    from lsr.encoding.encoder import vector_settings
    from lsr.encoding.pipeline import encode_corpus

    cache = VectorCache(opts.cache_dir)
    encoder = None
    overlap = window_overlap(opts)
    query_length = opts.query_max_length

    def load_encoder():
        nonlocal encoder
        if encoder is None:
            from lsr.encoding.encoder import Encoder

            encoder = Encoder.from_pretrained(opts.model, device=opts.device, window_overlap=overlap)
        return encoder

    def encode_docs():
        enc = load_encoder()
        t = time.perf_counter()
        with opts.progress(f"encoding {es.corpus}", es.doc_count) as advance:
            out = encode_corpus(es.corpus, enc, max_length=opts.max_length, batch_size=opts.batch_size,
                                progress=advance)
        return out.vectors, out.ids, {**enc.vector_meta(opts.max_length, overlap), "encode_s": time.perf_counter() - t,
                                      "truncated": out.truncated, "windowed": out.windowed}

    if opts.doc_vectors is not None:
        docs = load_vectors(opts.doc_vectors)
        _check_doc_vectors(docs, es, opts, Path(opts.doc_vectors))
    else:
        settings = vector_settings(opts.device, max_length=opts.max_length, window_overlap=overlap)
        docs, _ = cache.get(es.docs_key, opts.model, "docs", settings, encode_docs)

    def encode_queries():
        enc = load_encoder()
        t = time.perf_counter()
        vectors = enc.encode_queries(list(es.queries.values()), max_length=query_length, batch_size=opts.batch_size)
        return vectors, list(es.queries), {**enc.vector_meta(query_length), "encode_s": time.perf_counter() - t,
                                            "truncated": enc.stats.truncated}

    queries, _ = cache.get(_queries_key(es), opts.model, "queries",
                           vector_settings(opts.device, max_length=query_length), encode_queries)
    fp_docs, fp_queries = docs.meta.get("vocab_fingerprint"), queries.meta.get("vocab_fingerprint")
    if fp_docs and fp_queries and fp_docs != fp_queries:
        raise ValueError(f"document vectors (vocabulary {fp_docs}) and query vectors ({fp_queries}) come from "
                         "different models")
    if queries.ids.tolist() != list(es.queries):
        raise ValueError(f"the cached query vectors of {es.name} are for other queries; delete {cache.root}")
    return docs, queries


def bm25_vectors(es: EvalSet, opts: Options) -> tuple[BM25, VectorsFile, float]:
    """The BM25 model and document vectors of the corpus (cached by analyzer and parameters), and the seconds the
    fit took."""
    analyzer = Analyzer(stemmer=opts.stemmer)
    config = json.dumps(bm25_config(opts.bm25_k1, opts.bm25_b, analyzer), sort_keys=True)
    key = f"bm25-{opts.stemmer}-{hashlib.sha256(config.encode()).hexdigest()[:12]}"
    cache = VectorCache(opts.cache_dir)
    model_file = cache.path(es.docs_key, key, "bm25-model", {}, ".json")
    docs_file = cache.path(es.docs_key, key, "docs", {})
    if not model_file.exists():
        docs_file.unlink(missing_ok=True)  # vectors without their vocabulary are of no use

    def fit():
        t = time.perf_counter()
        ids, texts = [], []
        for d in es.docs():
            ids.append(d.id)
            texts.append(d.full_text)
        with opts.progress(f"BM25 over {es.corpus}", len(texts)) as advance:
            model, vectors = BM25.fit(texts, k1=opts.bm25_k1, b=opts.bm25_b, analyzer=analyzer, progress=advance)
        model_file.parent.mkdir(parents=True, exist_ok=True)
        model.save(model_file)
        return vectors, ids, {"model": model.name, "vocab_size": model.vocab_size,
                              "vocab_fingerprint": model.vocab_fingerprint, "encode_s": time.perf_counter() - t}

    docs, _ = cache.get(es.docs_key, key, "docs", {}, fit)
    return BM25.load(model_file), docs, float(docs.meta.get("encode_s") or 0.0)


# ---- retrievers ---------------------------------------------------------------------------------------------------
def _build(tmp: Path, name: str, vectors: VectorsFile, model: str, fingerprint: str | None, method: str,
           quantization: str, build_params: dict) -> tuple[Any, float]:
    from lsr.core import validate
    from lsr.index import Index
    from lsr.index.methods import build_configs

    params = dict(build_params)
    reorder = validate.choice("reorder", params.pop("reorder", True), (True, False))   # the index's; the rest: method's
    t = time.perf_counter()
    index = Index.build(tmp / name, vectors.vectors, vectors.ids.tolist(), model=model, vocab_fingerprint=fingerprint,
                        quantization=quantization, reorder=reorder, methods=(method,),
                        params=build_configs((method,), params))
    return index, time.perf_counter() - t


def splade_side(es: EvalSet, opts: Options, method: str, tmp: Path) -> Side:
    docs, queries = splade_vectors(es, opts)
    index, build_s = _build(tmp, "splade", docs, opts.model, docs.meta.get("vocab_fingerprint"), method,
                            opts.quantization, opts.build_params)
    return Side(opts.model, index, queries.vectors, method, docs.meta.get("encode_s"),
                float(queries.meta.get("encode_s") or 0.0), build_s,
                {"documents": docs.meta.get("truncated"), "queries": queries.meta.get("truncated")})


def bm25_side(es: EvalSet, opts: Options, tmp: Path) -> Side:
    model, docs, fit_s = bm25_vectors(es, opts)
    # exact search only: reordering documents for block pruning would cost build time and change nothing
    index, build_s = _build(tmp, "bm25", docs, model.name, model.vocab_fingerprint, "exact", opts.bm25_quantization,
                            {"reorder": False})
    t = time.perf_counter()
    queries = model.encode_queries(list(es.queries.values()))
    return Side(model.name, index, queries, "exact", fit_s, time.perf_counter() - t, build_s)


def search_run(side: Side, es: EvalSet, k: int, params: dict, threads: int | None) -> Run:
    extra = 1 if es.drop_self_hits else 0
    res = side.index.search(side.queries, k=k + extra, method=side.method, threads=threads, params=params)
    ids = side.index.doc_ids
    hits = [[ids[d] for d in row if d >= 0] for row in res.docs]
    return from_hits(list(es.queries), hits, res.scores, k, es.drop_self_hits)


def search_latency(side: Side, k: int, params: dict, n: int) -> np.ndarray:
    """Milliseconds per query of ``search_one`` for the first n queries, after a warm-up on the first few."""
    n = min(n, len(side.queries))
    for i in range(min(n, 5)):
        side.index.search_one(*side.queries.row(i), k=k, method=side.method, params=params)
    out = np.empty(n)
    for i in range(n):
        terms, weights = side.queries.row(i)
        t = time.perf_counter()
        side.index.search_one(terms, weights, k=k, method=side.method, params=params)
        out[i] = (time.perf_counter() - t) * 1000
    return out


# ---- the evaluation -----------------------------------------------------------------------------------------------
def _result(es: EvalSet, opts: Options, model: str, method: str, params: dict, run: Run, latency: np.ndarray,
            encode_s: float | None, query_encode_s: float, build_s: float, num_docs: int,
            truncated: dict | None = None) -> dict:
    """``truncated``: how many documents and queries were longer than max_length / query_max_length (None where
    the vectors' file does not record it)."""
    measures = opts.measures or within_depth(es.measures, opts.k) or es.measures  # a very shallow run: all
    metrics, per_query = evaluate_run(run, {q: es.qrels[q] for q in es.queries}, measures)
    return {
        "dataset": es.name, "model": model, "method": method, "params": params, "metrics": metrics,
        "latency_ms": float(latency.mean()) if len(latency) else None,
        "latency_p99_ms": float(np.percentile(latency, 99)) if len(latency) else None,
        "encode_s": encode_s, "query_encode_ms": 1000 * query_encode_s / max(len(es.queries), 1),
        "build_s": build_s, "queries": len(es.queries), "documents": num_docs, "k": opts.k,
        **({"query_max_length": opts.query_max_length, "queries_truncated": truncated.get("queries"),
            "documents_truncated": truncated.get("documents")} if truncated is not None else {}),
        "per_query": per_query,
    }


def evaluate(es: EvalSet, method: str, settings: Sequence[dict], opts: Options,
             progress: ProgressFactory | None = None) -> list[tuple[dict, Run]]:
    """(result, run) per setting. ``method`` is an index method (exact, bmp, seismic, ...), "bm25" or "hybrid";
    a setting is the method's search parameters (for a hybrid: fusion, rrf_k, weight, and the SPLADE method's).
    ``progress`` shows the long steps (encoding, BM25 fitting)."""
    if progress is not None:
        opts = replace(opts, progress=progress)
    from lsr.index import methods

    settings = list(settings) or [{}]
    if method != "bm25":
        methods.get(opts.splade_method if method == "hybrid" else method)  # fails before minutes of encoding
    with tempfile.TemporaryDirectory(prefix="lsr-eval-") as tmp:
        tmp = Path(tmp)
        if method == "bm25":
            if settings != [{}]:
                raise ValueError("bm25 takes no search parameters (set --bm25-k1, --bm25-b, --stemmer)")
            side = bm25_side(es, opts, tmp)
            return [_single(es, opts, side, "bm25", {}, _bm25_record(opts))]
        if method == "hybrid":
            fusions = [_fusion(s) for s in settings]  # bad fusion settings fail before any work
            splade, bm25 = splade_side(es, opts, opts.splade_method, tmp), bm25_side(es, opts, tmp)
            return [_hybrid(es, opts, splade, bm25, f, s) for f, s in zip(fusions, settings)]
        splade = splade_side(es, opts, method, tmp)
        return [_single(es, opts, splade, method, s, {**s, **_build_record(opts)}) for s in settings]


def _build_record(opts: Options) -> dict:
    return {"max_length": opts.max_length, "window_overlap": window_overlap(opts), "quantization": opts.quantization,
            **opts.build_params}


def _bm25_record(opts: Options) -> dict:
    return {"k1": opts.bm25_k1, "b": opts.bm25_b, "stemmer": opts.stemmer, "quantization": opts.bm25_quantization}


def _single(es: EvalSet, opts: Options, side: Side, method: str, search: dict, params: dict) -> tuple[dict, Run]:
    run = search_run(side, es, opts.k, search, opts.threads)
    lat = search_latency(side, opts.k, search, opts.latency_queries)
    return _result(es, opts, side.model, method, params, run, lat, side.encode_s, side.query_encode_s,
                   side.build_s, side.index.num_docs, side.truncated or None), run


def _fusion(setting: dict) -> dict:
    """The fusion part of a hybrid setting, with defaults (plain RRF, k = 60; linear with SPLADE's weight 0.5),
    checked before any work."""
    fusion = {"fusion": "rrf", "weight": 0.5, **{k: v for k, v in setting.items() if k in FUSION_PARAMS}}
    if fusion["fusion"] == "rrf":
        fusion.setdefault("rrf_k", 60.0)
    elif "rrf_k" in fusion:
        raise ValueError("rrf_k applies to fusion=rrf only")
    hybrid([], [], fusion["fusion"], **{k: float(v) for k, v in fusion.items() if k != "fusion"})
    return fusion


def _hybrid(es: EvalSet, opts: Options, splade: Side, bm25: Side, fusion: dict, setting: dict) -> tuple[dict, Run]:
    search = {key: v for key, v in setting.items() if key not in FUSION_PARAMS}
    params = {k: float(v) for k, v in fusion.items() if k != "fusion"}
    runs = (search_run(splade, es, opts.k, search, opts.threads), search_run(bm25, es, opts.k, {}, opts.threads))
    run, fuse_ms = {}, []
    for q in es.queries:
        t = time.perf_counter()
        run[q] = hybrid(runs[0][q], runs[1][q], fusion["fusion"], k=opts.k, **params)
        fuse_ms.append((time.perf_counter() - t) * 1000)
    n = min(opts.latency_queries, len(es.queries))
    lat = search_latency(splade, opts.k, search, n) + search_latency(bm25, opts.k, {}, n) + np.array(fuse_ms[:n])
    params = {**fusion, "splade_method": splade.method, **search, **_build_record(opts),
              "bm25": _bm25_record(opts)}
    encode_s = None if splade.encode_s is None else splade.encode_s + (bm25.encode_s or 0.0)
    result = _result(es, opts, f"{splade.model}+{bm25.model}", "hybrid", params, run, lat, encode_s,
                     splade.query_encode_s + bm25.query_encode_s, splade.build_s + bm25.build_s,
                     splade.index.num_docs, splade.truncated)
    return result, run
