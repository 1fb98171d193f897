"""An independent SPLADE evaluation that the project's pipeline is checked against (issue 8's first target).

Nothing of lsr's encoder, index or eval code is used: plain transformers materialise the (batch, tokens, vocab)
logits (``bench.encode_cpu.reference_encode``, the textbook SPLADE), scipy multiplies queries by documents, numpy
sorts, and ir-measures scores the run. Only the tokenizer and the checkpoint are shared, as they must be.
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


def reference_metrics(doc_ids: list[str], doc_texts: list[str], queries: dict[str, str],
                      qrels: dict[str, dict[str, int]], *, model_name: str = "splade-tiny", max_length: int = 256,
                      query_max_length: int = 64, k: int = 1000, drop_self_hits: bool = True,
                      measures: tuple[str, ...] = ("nDCG@10", "R@100", "R@1000")) -> dict[str, float]:
    """Mean measures over the judged queries; a hit is a document with a positive score (as from any index)."""
    import ir_measures
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from lsr.models import resolve_model  # where the embedded checkpoint lives; nothing else of lsr

    path = resolve_model(model_name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForMaskedLM.from_pretrained(path).eval()
    qids = [q for q in queries if q in qrels]
    docs = encode(model, tokenizer, doc_texts, max_length)
    q = encode(model, tokenizer, [queries[i] for i in qids], query_max_length)
    scores = (q @ docs.T).toarray()
    run = {}
    for qid, row in zip(qids, scores):
        top = np.argsort(-row, kind="stable")[:k + 1]
        hits = {doc_ids[j]: float(row[j]) for j in top if row[j] > 0 and not (drop_self_hits and doc_ids[j] == qid)}
        run[qid] = dict(list(hits.items())[:k])
    per_query = {str(m): dict.fromkeys(qids, 0.0) for m in map(ir_measures.parse_measure, measures)}
    for r in ir_measures.iter_calc(list(map(ir_measures.parse_measure, measures)), {i: qrels[i] for i in qids},
                                   {i: h for i, h in run.items() if h}):
        per_query[str(r.measure)][r.query_id] = r.value
    return {m: float(np.mean(list(v.values()))) for m, v in per_query.items()}


@app.command()
def main(dataset: str = typer.Option("beir/scifact/test"), model: str = typer.Option("splade-tiny"),
         max_length: int = typer.Option(256), query_max_length: int = typer.Option(64),
         output: Path = typer.Option(Path("bench/results/reference_eval.json"))) -> None:
    """Reference measures of a whole ir_datasets collection, written as JSON (appended per dataset)."""
    import ir_datasets
    import torch

    torch.set_num_threads(2)
    ds = ir_datasets.load(dataset)
    docs = list(ds.docs_iter())
    qrels: dict[str, dict[str, int]] = {}
    for r in ds.qrels_iter():
        qrels.setdefault(r.query_id, {})[r.doc_id] = r.relevance
    t = time.perf_counter()
    metrics = reference_metrics([d.doc_id for d in docs], [f"{d.title} {d.text}" if d.title else d.text for d in docs],
                                {q.query_id: q.text for q in ds.queries_iter()}, qrels, model_name=model,
                                max_length=max_length, query_max_length=query_max_length,
                                drop_self_hits=dataset.startswith("beir/"))
    results = json.loads(output.read_text()) if output.exists() else {}
    results[f"{dataset}|{model}|{max_length}"] = {"metrics": metrics, "seconds": time.perf_counter() - t}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({dataset: metrics}))


if __name__ == "__main__":
    app()
