"""An independent SPLADE evaluation that the project's pipeline is checked against (issue 8's first target).

Nothing of lsr's encoder, index or eval code is used: plain transformers materialise the (batch, tokens, vocab)
logits (``bench.encode_cpu.reference_encode``, the textbook SPLADE), scipy multiplies queries by documents, numpy
sorts, and ir-measures scores the run. Only the tokenizer and the checkpoint are shared, as they must be.

Whole collections in two steps, so the encoding can run where a GPU is (it needs only torch and transformers):
    python -m bench.reference_eval texts --dataset beir/scifact/test --output ref/scifact      # texts as JSONL
    python -m bench.reference_eval encode --texts ref/scifact --model MODEL_DIR --device cuda  # vectors as .npz
    python -m bench.reference_eval score --texts ref/scifact --dataset beir/scifact/test       # measures
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import typer

from bench.encode_cpu import reference_encode

app = typer.Typer(no_args_is_help=True)


def encode(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 16) -> sp.csr_matrix:
    """Sparse SPLADE vectors, batches formed in length order (padding changes nothing but the time)."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    rows = [sp.csr_matrix(reference_encode(model, tokenizer, [texts[i] for i in order[lo:lo + batch_size]],
                                           max_length, batch_size))
            for lo in range(0, len(texts), batch_size)]
    m = sp.vstack(rows).tocsr() if rows else sp.csr_matrix((0, model.config.vocab_size), dtype=np.float32)
    inverse = np.empty(len(texts), dtype=np.int64)
    inverse[order] = np.arange(len(texts))
    return m[inverse]


def score(doc_ids: list[str], docs: sp.csr_matrix, qids: list[str], queries: sp.csr_matrix,
          qrels: dict[str, dict[str, int]], *, k: int = 1000, drop_self_hits: bool = True,
          measures: tuple[str, ...] = ("nDCG@10", "R@100", "R@1000")) -> dict[str, float]:
    """Brute-force top-k by scipy, mean measures over the judged queries (unanswered ones count 0).

    A hit is a document with a positive score, as from any inverted index."""
    import ir_measures

    scores = (queries @ docs.T).toarray()
    run = {}
    for qid, row in zip(qids, scores):
        top = np.argsort(-row, kind="stable")[:k + 1]
        hits = [(doc_ids[j], float(row[j])) for j in top if row[j] > 0 and not (drop_self_hits and doc_ids[j] == qid)]
        run[qid] = dict(hits[:k])
    parsed = [ir_measures.parse_measure(m) for m in measures]
    judged = [q for q in qids if q in qrels]
    per_query = {str(m): dict.fromkeys(judged, 0.0) for m in parsed}
    for r in ir_measures.iter_calc(parsed, {q: qrels[q] for q in judged}, {q: run[q] for q in judged if run[q]}):
        per_query[str(r.measure)][r.query_id] = r.value
    return {m: float(np.mean(list(v.values()))) for m, v in per_query.items()}


def _load_model(model_name: str, device: str = "cpu"):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    path = model_name
    if not Path(model_name).exists():
        from lsr.encoding.models import resolve_model  # where the embedded checkpoint lives; nothing else of lsr

        path = resolve_model(model_name)
    return AutoTokenizer.from_pretrained(path), AutoModelForMaskedLM.from_pretrained(path).eval().to(device)


def reference_metrics(doc_ids: list[str], doc_texts: list[str], queries: dict[str, str],
                      qrels: dict[str, dict[str, int]], *, model_name: str = "splade-tiny", max_length: int = 256,
                      query_max_length: int = 256, **score_options) -> dict[str, float]:
    """Encode, search and measure in one call (for collections small enough for a CPU)."""
    tokenizer, model = _load_model(model_name)
    qids = [q for q in queries if q in qrels]
    docs = encode(model, tokenizer, doc_texts, max_length)
    q = encode(model, tokenizer, [queries[i] for i in qids], query_max_length)
    return score(doc_ids, docs, qids, q, qrels, **score_options)


def _read_jsonl(path: Path) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["id"] for r in rows], [r["text"] for r in rows]


@app.command()
def texts(dataset: str = typer.Option(...), output: Path = typer.Option(...)) -> None:
    """Writes OUTPUT.docs.jsonl ("title text", as BEIR encodes) and OUTPUT.queries.jsonl (judged queries)."""
    import ir_datasets

    ds = ir_datasets.load(dataset)
    judged = {r.query_id for r in ds.qrels_iter()}
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{output}.docs.jsonl", "w", encoding="utf-8") as f:
        for d in ds.docs_iter():
            f.write(json.dumps({"id": d.doc_id, "text": f"{d.title} {d.text}" if d.title else d.text}) + "\n")
    with open(f"{output}.queries.jsonl", "w", encoding="utf-8") as f:
        for q in ds.queries_iter():
            if q.query_id in judged:
                f.write(json.dumps({"id": q.query_id, "text": q.text}) + "\n")


@app.command("encode")
def encode_command(texts: Path = typer.Option(..., help="prefix of the .docs.jsonl / .queries.jsonl files"),
                   model: str = typer.Option("splade-tiny"), max_length: int = typer.Option(256),
                   query_max_length: int = typer.Option(256), device: str = typer.Option("cpu"),
                   output: Path | None = typer.Option(None, help="prefix of the .npz files (default: --texts)")) -> None:
    """Encodes both files with the textbook SPLADE; writes PREFIX.docs.npz and PREFIX.queries.npz (CSR arrays)."""
    tokenizer, m = _load_model(model, device)
    output = output or texts
    for kind, length in (("docs", max_length), ("queries", query_max_length)):
        ids, text = _read_jsonl(Path(f"{texts}.{kind}.jsonl"))
        t = time.perf_counter()
        v = encode(m, tokenizer, text, length)
        np.savez(f"{output}.{kind}.npz", indptr=v.indptr, indices=v.indices, values=v.data, ids=np.array(ids),
                 shape=np.array(v.shape), max_length=length, seconds=time.perf_counter() - t)
        print(json.dumps({"kind": kind, "n": len(ids), "nnz": int(v.nnz), "seconds": time.perf_counter() - t}))


@app.command("score")
def score_command(texts: Path = typer.Option(..., help="prefix of the .npz files that `encode` wrote"),
                  dataset: str = typer.Option(...), model: str = typer.Option("splade-tiny"),
                  output: Path = typer.Option(Path("bench/results/reference_eval.json"))) -> None:
    """Measures of the encoded collection against the ir_datasets judgements; merged into OUTPUT."""
    import ir_datasets

    def load(kind):
        z = np.load(f"{texts}.{kind}.npz")
        m = sp.csr_matrix((z["values"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        return [str(i) for i in z["ids"]], m, int(z["max_length"]), float(z["seconds"])

    doc_ids, docs, max_length, docs_s = load("docs")
    qids, queries, query_max_length, queries_s = load("queries")
    qrels: dict[str, dict[str, int]] = {}
    for r in ir_datasets.load(dataset).qrels_iter():
        qrels.setdefault(r.query_id, {})[r.doc_id] = r.relevance
    metrics = score(doc_ids, docs, qids, queries, qrels, drop_self_hits=dataset.startswith("beir/"))
    results = json.loads(output.read_text()) if output.exists() else {}
    results[f"{dataset}|{model}|{max_length}"] = {"metrics": metrics, "query_max_length": query_max_length,
                                                  "documents": len(doc_ids), "queries": len(qids),
                                                  "encode_s": {"docs": docs_s, "queries": queries_s}}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({dataset: metrics}))


if __name__ == "__main__":
    app()
