"""CPU encoding figures for BENCHMARKS.md: our encoder against the textbook SPLADE and the CPU anchors.

Same texts, same run, same threads, interleaved slice by slice and round by round, so that the load of a shared
machine falls on every variant alike:
- ``reference``: plain transformers materialise (batch, tokens, vocab) logits in input order, log1p(relu), masked
  max: the textbook SPLADE (``reference_encode``);
- ``sentence-transformers``: ``SparseEncoder(backend="torch")`` on the same checkpoint;
- ``onnx-fp32`` / ``onnx-int8``: the whole masked-LM exported by ``torch.onnx.export`` and run by onnxruntime, the
  int8 one quantized by ``onnxruntime.quantization.quantize_dynamic`` (optimum and transformers 5 disagree,
  PEERS.md), with SPLADE pooling in numpy and length-sorted batches;
- ``onnx-body+lsr-head``: onnxruntime runs the transformer, lsr's float32 chunked head (``backend="torch"``, the
  head before the screen) pools;
- ``lsr``: ``Encoder.encode_documents`` (length-sorted batches, the screened head on an AVX2 CPU).
Every variant but int8 must give the reference's vectors (same non-zeros, max |difference| <= 1e-4), checked before
any speed is reported; the int8 anchor's vectors differ, so its nDCG@10 on scifact is measured (``anchor_ndcg``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

TOLERANCE = 1e-4


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


@dataclass
class Variant:
    name: str
    encode: Callable[[list[str]], np.ndarray]   # texts -> dense (n, V) float32 weights
    exact: bool                                 # must equal the reference's vectors


class OnnxModels:
    """The masked-LM and its transformer alone (MLM decoder replaced by an identity) as ONNX files; int8 copy."""

    def __init__(self, model_dir: str, folder: Path):
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModelForMaskedLM

        from lsr.encoding.encoder import _detach_decoder

        self.full, self.body, self.int8 = folder / "full.onnx", folder / "body.onnx", folder / "full.int8.onnx"
        full = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
        body = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
        _detach_decoder(body)
        for model, path in ((full, self.full), (body, self.body)):
            _export(model, path)
        quantize_dynamic(str(self.full), str(self.int8), weight_type=QuantType.QInt8)


class _Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def _export(model, path: Path) -> None:
    ids = torch.randint(1000, 2000, (2, 16))
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=4096)
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(_Logits(model), (ids, torch.ones_like(ids)), str(path), dynamo=True,
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}})


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _pool(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """SPLADE pooling of (B, L, V) logits without (B, L, V) temporaries: the max over each text's real tokens
    (right padding), then log1p(relu) of the (B, V) maxima (both are monotonic)."""
    out = np.stack([logits[i, :n].max(0) for i, n in enumerate(mask.sum(1))])
    return np.log1p(np.maximum(out, 0, out=out), out=out)


def _length_sorted(texts: list[str], batch_size: int, run: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    order = np.argsort([-len(t) for t in texts], kind="stable")
    parts = [run([texts[i] for i in order[lo:lo + batch_size]]) for lo in range(0, len(texts), batch_size)]
    out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
    out[order] = np.concatenate(parts)
    return out


def variants(encoder, reference, model_dir: str, onnx: OnnxModels | None, *, max_length: int, batch_size: int,
             threads: int) -> list[Variant]:
    from sentence_transformers import SparseEncoder

    from lsr.encoding.head import splade_max_pool

    tok = encoder.tokenizer
    st = SparseEncoder(model_dir, backend="torch", device="cpu")
    st.max_seq_length = max_length

    def tokens(texts):
        return tok(texts, padding=True, truncation=True, max_length=max_length, return_token_type_ids=False,
                   return_tensors="np")

    def onnx_full(session):
        def run(texts):
            b = tokens(texts)
            logits = session.run(None, {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]})[0]
            return _pool(logits, b["attention_mask"])
        return lambda texts: _length_sorted(texts, batch_size, run)

    def onnx_body_lsr_head(session):
        def run(texts):
            b = tokens(texts)
            hidden = session.run(None, {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]})[0]
            with torch.inference_mode():
                return splade_max_pool(torch.from_numpy(hidden), encoder.weight, encoder.bias,
                                       torch.from_numpy(b["attention_mask"]), backend="torch").numpy()
        return lambda texts: _length_sorted(texts, batch_size, run)

    def st_encode(texts):
        with torch.inference_mode():
            return st.encode(texts, batch_size=batch_size, convert_to_tensor=True).to_dense().float().numpy()

    out = [Variant("reference", lambda t: reference_encode(reference, tok, t, max_length, batch_size), True),
           Variant("sentence-transformers", st_encode, True)]
    if onnx is not None:
        out += [Variant("onnx-fp32", onnx_full(_session(onnx.full, threads)), True),
                Variant("onnx-int8", onnx_full(_session(onnx.int8, threads)), False),
                Variant("onnx-body+lsr-head", onnx_body_lsr_head(_session(onnx.body, threads)), True)]
    out.append(Variant("lsr", lambda t: encoder.encode_documents(
        t, max_length=max_length, batch_size=batch_size, window_overlap=None).to_scipy().toarray(), True))
    return out


def measure(vs: list[Variant], docs: list[str], *, rounds: int, slice_size: int) -> dict:
    """Seconds per variant over ``rounds`` passes, interleaved slice by slice; vectors checked on the first pass."""
    seconds = dict.fromkeys((v.name for v in vs), 0.0)
    checks = {v.name: {"same_nonzeros": True, "max_abs_diff": 0.0} for v in vs}
    for r in range(rounds):
        for lo in range(0, len(docs), slice_size):
            part, dense = docs[lo:lo + slice_size], {}
            for v in (vs if r % 2 == 0 else vs[::-1]):      # alternate the order: no variant always runs first
                t = time.perf_counter()
                dense[v.name] = v.encode(part)
                seconds[v.name] += time.perf_counter() - t
            if r == 0:
                ref = dense["reference"]
                for name, d in dense.items():
                    checks[name]["same_nonzeros"] &= bool(np.array_equal(d > 0, ref > 0))
                    checks[name]["max_abs_diff"] = max(checks[name]["max_abs_diff"], float(np.abs(d - ref).max()))
    n = len(docs) * rounds
    return {v.name: {"docs_per_s": n / seconds[v.name], "seconds": seconds[v.name], "exact": v.exact,
                     **checks[v.name]} for v in vs}


def anchor_ndcg(dataset: str, onnx: OnnxModels, tokenizer, *, max_length: int, query_max_length: int,
                batch_size: int, threads: int) -> dict:
    """nDCG@10 of the int8 anchor's own document and query vectors, scored like ``bench.reference_eval``."""
    import ir_datasets
    import scipy.sparse as sp

    from bench.reference_eval import score

    ds = ir_datasets.load(dataset)
    session = _session(onnx.int8, threads)

    def encode(texts, length):
        def run(batch):
            b = tokenizer(batch, padding=True, truncation=True, max_length=length, return_token_type_ids=False,
                          return_tensors="np")
            logits = session.run(None, {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]})[0]
            return _pool(logits, b["attention_mask"])
        return sp.csr_matrix(_length_sorted(texts, batch_size, run))

    qrels: dict[str, dict[str, int]] = {}
    for q in ds.qrels_iter():
        qrels.setdefault(q.query_id, {})[q.doc_id] = q.relevance
    docs = list(ds.docs_iter())
    queries = [q for q in ds.queries_iter() if q.query_id in qrels]
    t = time.perf_counter()
    d = encode([f"{x.title} {x.text}" if x.title else x.text for x in docs], max_length)
    q = encode([x.text for x in queries], query_max_length)
    metrics = score([x.doc_id for x in docs], d, [x.query_id for x in queries], q, qrels)
    return {"dataset": dataset, "metrics": metrics, "documents": len(docs), "queries": len(queries),
            "encode_s": time.perf_counter() - t}


def query_latency(encoder, queries: str, n_queries: int) -> dict:
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
    return {"queries": len(qtexts), "query_p50_ms": float(np.percentile(lat, 50)),
            "query_p99_ms": float(np.percentile(lat, 99)), "query_mean_ms": float(np.mean(lat))}


def run(*, dataset: str, queries: str, model: str, max_length: int, batch_size: int, limit: int | None,
        n_queries: int, threads: list[int], rounds: int, output: Path, anchors: bool = True,
        int8_ndcg: str | None = None, speed: bool = True) -> dict:
    from transformers import AutoModelForMaskedLM

    from lsr.core.corpus import read_corpus
    from lsr.encoding import screen
    from lsr.encoding.encoder import Encoder
    from lsr.encoding.head import resolve_backend
    from lsr.encoding.models import resolve_model

    docs = [d.full_text for d in read_corpus(dataset)]
    docs = docs[:limit] if limit else docs
    model_dir = resolve_model(model)
    encoder = Encoder.from_pretrained(model, device="cpu")
    reference = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    result = {"dataset": dataset, "documents": len(docs), "model": model, "max_length": max_length,
              "batch_size": batch_size, "rounds": rounds, "torch": torch.__version__, "cpu_isa": screen.isa(),
              "head": resolve_backend(encoder.head, "cpu"), "cpu_features": sorted(
                  f for f in screen.cpu_features() if f.startswith(("avx", "fma", "amx")))}
    with tempfile.TemporaryDirectory(prefix="lsr-onnx-") as tmp:
        onnx = OnnxModels(model_dir, Path(tmp)) if anchors else None
        if int8_ndcg and onnx is not None:
            torch.set_num_threads(threads[0])
            result["onnx_int8_ndcg"] = anchor_ndcg(int8_ndcg, onnx, encoder.tokenizer, max_length=max_length,
                                                   query_max_length=encoder.query_max_length,
                                                   batch_size=batch_size, threads=threads[0])
        for n in threads if speed else []:
            torch.set_num_threads(n)
            vs = variants(encoder, reference, model_dir, onnx, max_length=max_length, batch_size=batch_size,
                          threads=n)
            vs[-1].encode(docs[:4])  # compile the kernel and pack the decoder before timing
            load = os.getloadavg()
            table = measure(vs, docs, rounds=rounds, slice_size=min(len(docs), 4 * batch_size))
            ref, ours = table["reference"]["docs_per_s"], table["lsr"]["docs_per_s"]
            fastest = max((k for k in table if k not in ("lsr", "reference")), key=lambda k: table[k]["docs_per_s"])
            result[f"threads_{n}"] = {
                "variants": table, "lsr_vs_reference": ours / ref, "fastest_anchor": fastest,
                "lsr_vs_fastest_anchor": ours / table[fastest]["docs_per_s"],
                "lsr_equal_to_reference": table["lsr"]["same_nonzeros"] and table["lsr"]["max_abs_diff"] <= TOLERANCE,
                "loadavg_before": load, "loadavg_after": os.getloadavg()}
            _print_table(n, result[f"threads_{n}"])
    if n_queries:
        torch.set_num_threads(1)
        result["query_1_thread"] = query_latency(encoder, queries, n_queries)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    if "onnx_int8_ndcg" in result:
        print(f"onnx-int8 anchor on {int8_ndcg}: nDCG@10 {result['onnx_int8_ndcg']['metrics']['nDCG@10']:.4f}")
    if "query_1_thread" in result:
        q = result["query_1_thread"]
        print(f"query latency (1 thread) p50 {q['query_p50_ms']:.2f} ms, p99 {q['query_p99_ms']:.2f} ms")
    return result


def _print_table(threads: int, res: dict) -> None:
    ref = res["variants"]["reference"]["docs_per_s"]
    print(f"\n{threads} thread(s), load {res['loadavg_before'][0]:.1f} -> {res['loadavg_after'][0]:.1f}")
    print(f"{'':24}{'docs/s':>9}{'x ref':>8}  {'same nz':>8}{'max |diff|':>12}")
    for name, v in res["variants"].items():
        print(f"{name:24}{v['docs_per_s']:>9.1f}{v['docs_per_s'] / ref:>8.2f}  {v['same_nonzeros']!s:>8}"
              f"{v['max_abs_diff']:>12.1e}")
    if not res["lsr_equal_to_reference"]:
        print("lsr's vectors DIFFER from the reference: its speed is not a result")
    print(f"lsr / reference {res['lsr_vs_reference']:.2f}x, lsr / fastest anchor ({res['fastest_anchor']}) "
          f"{res['lsr_vs_fastest_anchor']:.2f}x")
