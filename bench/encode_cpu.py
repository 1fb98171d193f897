"""CPU encoding figures for BENCHMARKS.md: our encoder against the plain transformers reference.

Same texts, same run, same threads: the reference materialises (batch, tokens, vocab) logits in input order
(no length sorting), as a straightforward SPLADE implementation does; ours sorts by length and runs the chunked
head. Both must give the same vectors, which this script checks before it reports a speed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch


def reference_encode(model, tokenizer, texts: list[str], max_length: int, batch_size: int) -> np.ndarray:
    """log1p(relu(logits)) max-pooled over real tokens, from the full logits: the textbook SPLADE."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            b = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt").to(model.device)
            logits = model(**b).logits
            w = torch.log1p(torch.relu(logits)) * b["attention_mask"][..., None]
            out.append(w.amax(1).float().cpu().numpy())
    return np.concatenate(out)


def run(*, dataset: str, queries: str, model: str, max_length: int, batch_size: int, limit: int | None,
        n_queries: int, threads: int, output: Path) -> dict:
    from transformers import AutoModelForMaskedLM

    from lsr.core.corpus import read_corpus
    from lsr.encoding.encoder import Encoder
    from lsr.encoding.models import resolve_model

    torch.set_num_threads(threads)
    docs = [d.full_text for d in read_corpus(dataset)]
    docs = docs[:limit] if limit else docs
    encoder = Encoder.from_pretrained(model, device="cpu")
    reference = AutoModelForMaskedLM.from_pretrained(resolve_model(model)).eval()

    # Interleaved slices: both sides see the same load on this shared machine.
    ours_s = ref_s = 0.0
    same_support, max_diff, slice_size = True, 0.0, 1024
    for lo in range(0, len(docs), slice_size):
        part = docs[lo:lo + slice_size]
        t = time.perf_counter()
        ours = encoder.encode_documents(part, max_length=max_length, batch_size=batch_size)
        ours_s += time.perf_counter() - t
        t = time.perf_counter()
        ref = reference_encode(reference, encoder.tokenizer, part, max_length, batch_size)
        ref_s += time.perf_counter() - t
        dense = ours.to_scipy().toarray()
        same_support &= bool(np.array_equal(dense > 0, ref > 0))
        max_diff = max(max_diff, float(np.abs(dense - ref).max()))

    import ir_datasets

    qtexts = [q.text for q in ir_datasets.load(queries).queries_iter()]
    qtexts = (qtexts * (n_queries // max(len(qtexts), 1) + 1))[:n_queries]
    for q in qtexts[:10]:
        encoder.encode_queries([q])  # warm-up
    lat = []
    for q in qtexts:
        t = time.perf_counter()
        encoder.encode_queries([q])
        lat.append((time.perf_counter() - t) * 1000)
    result = {
        "dataset": dataset, "documents": len(docs), "model": model, "max_length": max_length,
        "batch_size": batch_size, "threads": threads,
        "ours_docs_per_s": len(docs) / ours_s, "reference_docs_per_s": len(docs) / ref_s,
        "speedup": ref_s / ours_s, "same_nonzeros": same_support, "max_abs_diff": max_diff,
        "queries": len(qtexts), "query_p50_ms": float(np.percentile(lat, 50)),
        "query_p99_ms": float(np.percentile(lat, 99)), "query_mean_ms": float(np.mean(lat)),
        "torch": torch.__version__,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':24}{'docs/s':>10}")
    print(f"{'lsr encoder':24}{result['ours_docs_per_s']:>10.1f}")
    print(f"{'transformers reference':24}{result['reference_docs_per_s']:>10.1f}")
    print(f"speedup {result['speedup']:.2f}x, same non-zeros: {same_support}, max |diff| {max_diff:.2e}")
    print(f"query latency p50 {result['query_p50_ms']:.2f} ms, p99 {result['query_p99_ms']:.2f} ms "
          f"({len(qtexts)} queries, one at a time)")
    return result
