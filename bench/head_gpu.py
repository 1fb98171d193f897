"""GPU figures for the fused SPLADE head (issue 3): one run on the device checks every variant, then times it.

Parts (``--parts``, default all):
- ``head``: the head alone at the issue's four shapes, bf16 and fp32, forward and forward + backward, for eager
  PyTorch (materialised logits), torch.compile of the same function, the chunked PyTorch head and the fused Triton
  kernels, plus cuBLAS's bare matmul as the ceiling. Median of CUDA-event timings (triton.testing.do_bench) and
  peak memory beyond the inputs. Every variant is first checked against a float64 reference (forward values, and
  the three gradients for ours) on ragged masks with an all-padding row.
- ``model``: forward of a BERT-base-sized SPLADE (random weights) on 256-token inputs in bf16: eager transformers
  (MLM logits, then the textbook pooling) against ``Encoder.weights`` (identity decoder + fused head).
- ``e2e``: ``Encoder.encode_documents`` (tokenization, batching, CSR on the host) against sentence-transformers'
  SparseEncoder (tokenization included, its sparse output) on the same real texts, for splade-tiny and the
  BERT-base-sized model, whose random decoder bias is shifted so that about 150 terms per text are non-zero, as in
  a trained SPLADE (dense outputs would measure the host copy, not the encoder). Vectors are checked first (the GPU
  input path bit for bit against the plain one, timed once each, both against SparseEncoder within bf16); then,
  interleaved: ours and SparseEncoder; then the parts: the model alone on the corpus's batches already
  on the GPU and on 128 x 256 random tokens, the input path alone, the time the GPU loop waited for input, and one
  encode under torch.profiler (GPU busy share, top operations: ``profile_<model>.txt`` beside ``--out``).

    python -m bench.head_gpu --out $OUT/head_gpu.json --texts corpus.jsonl --parts e2e
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SHAPES = [(32, 256, 768, 30522), (128, 128, 768, 30522), (32, 256, 768, 250002), (8, 512, 1024, 250002)]
DEV = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a smoke test of the script (--smoke), no figures
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}
TOLERANCE = {"bf16": 1e-2, "fp16": 2e-3, "fp32": 1e-5}
MiB = 2 ** 20
FORWARD_OF = {"fused": "auto", "fused_tma": "tma", "fused_persistent": "persistent", "fused_ptr": "pointer"}
OURS = ("chunked", *FORWARD_OF)


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# inputs and the float64 reference
def make_inputs(B, L, H, V, dtype, seed=0, ragged=True):
    """Hidden states like layer-normed ones, a decoder like tied embeddings; ragged masks with an empty row."""
    g = torch.Generator(device=DEV).manual_seed(seed)
    hidden = torch.randn(B, L, H, device=DEV, generator=g).to(dtype)
    weight = (torch.randn(V, H, device=DEV, generator=g) * 0.05).to(dtype)
    bias = (torch.randn(V, device=DEV, generator=g) * 0.1).to(dtype)
    if ragged:
        lengths = torch.randint(1, L + 1, (B,), device=DEV, generator=g)
        mask = (torch.arange(L, device=DEV)[None] < lengths[:, None]).long()
        mask[0] = 1
        if B > 1:
            mask[-1] = 0
    else:
        mask = torch.ones(B, L, dtype=torch.long, device=DEV)
    return hidden, weight, bias, mask


def reference64(hidden, weight, bias, mask, grad_out=None, chunk=4096):
    """log1p(relu(max logits)) in float64, and (with grad_out) the three gradients by autograd, vocabulary chunk
    by chunk so that the materialised float64 logits fit."""
    h = hidden.double().requires_grad_(grad_out is not None)
    keep = mask.bool()[..., None]
    outs, gw, gb, args, gaps = [], [], [], [], []
    for lo in range(0, weight.shape[0], chunk):
        w = weight[lo:lo + chunk].double().requires_grad_(grad_out is not None)
        b = bias[lo:lo + chunk].double().requires_grad_(grad_out is not None)
        with torch.set_grad_enabled(grad_out is not None):
            logits = (h @ w.T + b).masked_fill(~keep, float("-inf"))
            y = torch.log1p(torch.relu(logits.max(dim=1).values))
            top = logits.detach().topk(min(2, logits.shape[1]), dim=1)
            args.append(top.indices[:, 0])
            gaps.append(top.values[:, 0] - top.values[:, -1] if logits.shape[1] > 1 else torch.full_like(y, 1e9))
            if grad_out is not None:
                y.backward(grad_out[:, lo:lo + chunk].double())
                gw.append(w.grad)
                gb.append(b.grad)
        outs.append(y.detach())
    out = torch.cat(outs, 1)
    top = (torch.cat(args, 1), torch.cat(gaps, 1))
    if grad_out is None:
        return out, None, top
    return out, (h.grad, torch.cat(gw), torch.cat(gb)), top


def argmax_of(name, hidden, weight, bias, mask):
    """Our implementations' winning token per output, through the same internals the head uses."""
    from lsr.encoding.head import max_pool_torch
    from lsr.encoding.kernels import fused_head

    if name == "chunked":
        return max_pool_torch(hidden, weight, bias, mask)
    fused_head.FORWARD = FORWARD_OF[name]
    return fused_head.max_pool_triton(hidden, weight, bias, mask)


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-300)).item()


# ---------------------------------------------------------------------------------------------------------------
# timing and memory
def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def median_ms(fn):
    from triton.testing import do_bench

    fn()
    sync()
    t = time.perf_counter()
    fn()
    sync()
    once = (time.perf_counter() - t) * 1e3
    if DEV != "cuda":
        return once
    return do_bench(fn, warmup=max(25, 2 * once), rep=min(2000, max(200, 25 * once)), return_mode="median")


def peak_extra_mib(fn):
    if DEV != "cuda":
        return math.nan
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del out
    return peak / MiB


# ---------------------------------------------------------------------------------------------------------------
# part 1: the head
def head_impls():
    from lsr.encoding.head import splade_max_pool, splade_max_pool_reference

    # every shape, dtype and grad mode is a recompilation; past dynamo's default limit (8) it silently runs eager
    torch._dynamo.config.recompile_limit = 64
    torch._dynamo.config.accumulated_recompile_limit = 512
    compiled = torch.compile(splade_max_pool_reference, dynamic=False)
    from lsr.encoding.kernels import fused_head

    def fused(kind):
        def run(h, w, b, m):
            fused_head.FORWARD = kind
            return splade_max_pool(h, w, b, m, backend="triton")
        return run

    return {
        **{name: fused(kind) for name, kind in FORWARD_OF.items()},
        "chunked": lambda h, w, b, m: splade_max_pool(h, w, b, m, backend="torch"),
        "eager": splade_max_pool_reference,
        "compile": compiled,
    }


def check_head(impls, results, cases):
    """Every variant against float64 on ragged masks with an empty row: forward values and the three gradients,
    and the inference path (no arg-max) equal to the autograd one. torch.compile only at the timed shapes (each
    new shape is a new compilation)."""
    for shape, dname in cases:
        hidden, weight, bias, mask = make_inputs(*shape, DTYPES[dname], seed=sum(shape))
        grad_out = torch.randn(shape[0], shape[3], device=DEV)
        ref, ref_grads, (ref_arg, ref_gap) = reference64(hidden, weight, bias, mask, grad_out)
        for name, fn in impls.items():
            if name == "compile" and tuple(shape) not in SHAPES:
                continue
            leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
            try:
                out = fn(leaves[0], leaves[1], leaves[2], mask)
                grads = torch.autograd.grad(out, leaves, grad_out)
                errs = {"forward": rel(out, ref), **{k: rel(g, r) for k, g, r in
                                                     zip(("d_hidden", "d_weight", "d_bias"), grads, ref_grads)}}
                with torch.no_grad():
                    errs["no_grad_equal"] = bool(torch.equal(fn(hidden, weight, bias, mask), out.detach()))
            except torch.OutOfMemoryError:
                errs = {"error": "OOM"}
            # the baselines round the logits to the input dtype before the max, so in 16 bits their arg-max (and
            # with it their gradients) differs from float64's: their gradient errors are recorded, not judged
            grad_tol = TOLERANCE[dname]
            if name in OURS and "error" not in errs:
                # where float64's best two tokens are within rounding of each other, the float32 logits may pick
                # the other one: legitimate, but each such column sends its gradient to another token. Such near
                # ties widen the gradient tolerance by their share; any other disagreement is a failure.
                y, arg = argmax_of(name, hidden, weight, bias, mask)
                differ = (arg.long() != ref_arg) & (y > 0)
                near = ref_gap <= 1e-4 * (1 + ref.exp())
                errs["argmax_near_ties"] = int((differ & near).sum())
                errs["argmax_wrong"] = int((differ & ~near).sum())
                grad_tol += 3 * math.sqrt(2 * errs["argmax_near_ties"] / differ.numel())
            judged = [(k, v) for k, v in errs.items() if isinstance(v, float) and (k == "forward" or name in OURS)]
            ok = all(v < (TOLERANCE[dname] if k == "forward" else grad_tol) for k, v in judged)
            ok = ok and errs.get("argmax_wrong", 0) == 0
            if "error" in errs or (name in OURS and not errs["no_grad_equal"]):
                ok = False
            results.append({"shape": shape, "dtype": dname, "impl": name, "ok": ok, **errs})
            log(f"check {shape} {dname:4s} {name:8s} {'ok ' if ok else 'BAD'} " +
                " ".join(f"{k}={v:.1e}" if isinstance(v, float) else f"{k}={v}" for k, v in errs.items()))
            del leaves
            empty_cache()


def empty_cache():
    if DEV == "cuda":
        torch.cuda.empty_cache()


def time_head(impls, results, shapes, dtypes, modes, names, save):
    for shape in shapes:
        B, L, H, V = shape
        for dname in dtypes:
            hidden, weight, bias, mask = make_inputs(B, L, H, V, DTYPES[dname], seed=1, ragged=False)
            flops = 2 * B * L * H * V
            out_mib = B * V * 4 / MiB
            for mode in modes:
                grad_out = torch.randn(B, V, device=DEV) if mode == "fwd+bwd" else None
                leaves = [t.clone().requires_grad_(mode == "fwd+bwd") for t in (hidden, weight, bias)]
                cases = dict(impls)
                if mode == "fwd":
                    h2, wt = hidden.view(B * L, H), weight.T
                    cases["cublas_mm"] = lambda *_: torch.mm(h2, wt)
                for name, fn in cases.items():
                    if name not in names and name != "cublas_mm":
                        continue
                    if mode == "fwd":
                        def call(fn=fn):
                            with torch.no_grad():
                                return fn(*leaves, mask)
                    else:
                        def call(fn=fn):
                            return torch.autograd.grad(fn(*leaves, mask), leaves, grad_out)
                    row = {"shape": shape, "dtype": dname, "mode": mode, "impl": name, "out_mib": out_mib}
                    try:
                        t0 = time.perf_counter()
                        call()  # compile, autotune
                        row["first_call_s"] = time.perf_counter() - t0
                        if name.startswith("fused"):
                            row["autotune"] = autotune_timings()
                        row["ms"] = median_ms(call)
                        row["peak_mib"] = peak_extra_mib(call)
                        row["tflops"] = flops / row["ms"] / 1e9
                    except torch.OutOfMemoryError:
                        row["error"] = "OOM"
                    empty_cache()
                    results.append(row)
                    save()
                    log("time {shape} {dtype:4s} {mode:7s} {impl:9s} ".format(**row) +
                        (f"{row['ms']:8.3f} ms {row['peak_mib']:9.1f} MiB {row['tflops']:6.1f} TFLOP/s "
                         f"(first call {row['first_call_s']:.1f} s)" if "ms" in row else row["error"]))
                del leaves
            del hidden, weight, bias, mask
            empty_cache()


def autotune_timings():
    """Each candidate configuration's time (ms) in the kernels' latest tuning (none when read from disk)."""
    from lsr.encoding.kernels import fused_head as fh

    report = {}
    for name in ("_forward_kernel", "_forward_kernel_tma", "_forward_kernel_persistent", "_grad_hidden_kernel",
                 "_grad_weight_kernel"):
        timings = getattr(getattr(fh, name), "configs_timings", None) or {}
        report[name] = {str(c): t[0] if isinstance(t, (list, tuple)) else t for c, t in timings.items()}
        getattr(fh, name).configs_timings = None
    report["forward_choice"] = {str(k): v for k, v in fh._FORWARD_CHOICE.items()}
    return report


# ---------------------------------------------------------------------------------------------------------------
# part 2: model forward
def bert_base(config=None, seed=0):
    """BERT-base (or the given config's sizes) with random weights, as a masked LM."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    return BertForMaskedLM(BertConfig(**(config or {}))).eval()


def time_model(results, batch, length, config=None):
    from lsr.encoding.encoder import Encoder
    from lsr.encoding.models import resolve_model
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model("splade-tiny"))
    ref = bert_base(config).to(DEV, torch.bfloat16)
    ours = Encoder(copy.deepcopy(ref), tok, name="bert-base-random", device=torch.device(DEV), dtype=torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (batch, length), generator=g)
    ids[:, 0], ids[:, -1] = tok.cls_token_id, tok.sep_token_id
    inputs = {"input_ids": ids.to(DEV), "attention_mask": torch.ones(batch, length, dtype=torch.long, device=DEV)}

    def eager():
        with torch.inference_mode():
            logits = ref(**inputs).logits
            return (torch.log1p(torch.relu(logits)) * inputs["attention_mask"][..., None]).amax(1)

    def fused():
        return ours.weights(inputs)

    err = rel(fused(), eager())
    row = {"part": "model", "batch": batch, "length": length, "rel_err_vs_eager": err}
    for name, fn in (("eager", eager), ("ours", fused), ("eager", eager), ("ours", fused)):
        ms = median_ms(fn)
        row.setdefault(name + "_ms", []).append(ms)
    for name in ("eager", "ours"):
        row[name + "_docs_s"] = batch / (min(row[name + "_ms"]) / 1e3)
    row["speedup"] = row["ours_docs_s"] / row["eager_docs_s"]
    results.append(row)
    log(f"model  BERT-base bf16 {batch}x{length}: eager {row['eager_docs_s']:.0f} docs/s, ours "
        f"{row['ours_docs_s']:.0f} docs/s, x{row['speedup']:.2f} (rel. difference {err:.1e})")
    del ref, ours
    empty_cache()


# ---------------------------------------------------------------------------------------------------------------
# part 3: end to end
def read_texts(path, n):
    from lsr.core.corpus import read_corpus

    texts = []
    for doc in read_corpus(path):
        texts.append(doc.full_text)
        if len(texts) == n:
            break
    return texts


def save_bert_base_splade(folder, texts, config=None, nnz_per_text=150):
    """A random BERT-base MLM whose decoder bias is shifted so ~nnz_per_text terms per text are positive."""
    from lsr.encoding.models import resolve_model
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model("splade-tiny"))
    model = bert_base(config).to(DEV, torch.bfloat16)
    model.cls.predictions.bias.data.zero_()
    batch = tok(texts[:64], padding=True, truncation=True, max_length=256, return_tensors="pt").to(DEV)
    with torch.inference_mode():
        logits = model(**batch).logits.float().masked_fill(~batch["attention_mask"].bool()[..., None], -1e9)
        top = logits.amax(1).flatten()
    shift = torch.quantile(top, 1 - nnz_per_text / model.config.vocab_size).item()
    model.cls.predictions.bias.data.fill_(-shift)
    model.float().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def csr_equal(a, b):
    return all(np.array_equal(x, y) for x, y in ((a.indptr, b.indptr), (a.indices, b.indices), (a.values, b.values)))


def check_e2e(ours, st, texts, batch_size, max_length, n_st=512):
    """Vectors before speed: ours through the GPU input path equal, bit for bit, ours through the plain path
    (transformers tokenizer with overflow rows, same batches); and equal to SparseEncoder's within bf16 (the two
    run the same bf16 transformer; ours keeps float32 max logits): identical non-zero sets up to a few entries at
    the threshold, relative difference under 1e-2 (the head's bf16 tolerance)."""
    n_st = min(n_st, len(texts))
    sync()
    t0 = time.perf_counter()
    fast = ours.encode_documents(texts, max_length=max_length)
    t1 = time.perf_counter()
    truncated = ours.stats.truncated
    plain = plain_path(ours).encode_documents(texts, max_length=max_length)
    t2 = time.perf_counter()
    a = fast.to_scipy()[:n_st].toarray()
    b = st.encode_document(texts[:n_st], batch_size=batch_size).to_dense().float().cpu().numpy()
    union = ((a > 0) | (b > 0)).sum()
    row = {"identical_to_plain_path": csr_equal(fast, plain), "truncated": truncated,
           "check_ours_s": t1 - t0, "check_plain_path_s": t2 - t1,
           "truncated_plain_path": ours.stats.truncated, "st_checked_texts": n_st,
           "rel_diff_vs_st": float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)),
           "support_jaccard": float(((a > 0) & (b > 0)).sum() / max(union, 1)),
           "support_differences": int(((a > 0) != (b > 0)).sum()), "nnz_per_text": float(np.diff(fast.indptr).mean())}
    row["ok"] = (row["identical_to_plain_path"] and truncated == row["truncated_plain_path"]
                 and row["rel_diff_vs_st"] < TOLERANCE["bf16"] and row["support_jaccard"] >= 0.999)
    return row


class plain_path:
    """The encoder with the GPU input path switched off (tokenization on one thread through transformers, with
    overflow rows to count truncation: the path this issue replaces), for the same-run comparison."""

    def __init__(self, encoder):
        self.encoder = encoder

    def encode_documents(self, texts, **kw):
        self.encoder._prefetched_batches = self.encoder._batches
        try:
            return self.encoder.encode_documents(texts, **kw)
        finally:
            del self.encoder._prefetched_batches


def device_batches(ours, texts, batch_size, max_length):
    """The corpus's batches exactly as encode_documents forms them, tokenized and on the GPU in advance, each with
    whether it holds padding (as encode_documents passes it to ``weights``)."""
    from lsr.encoding.encoder import PADDED_KEY

    order = np.argsort(-np.array([len(t) for t in texts]), kind="stable")
    batches = [(b, b.pop(PADDED_KEY)) for _, b in ours._prefetched_batches(texts, order, batch_size, max_length)]
    sync()
    return batches


def forward_only(ours, batches):
    """docs/s of the model (transformer + fused head) alone on batches already on the GPU."""
    def run():
        for b, padded in batches:
            ours.weights(b, padded)
    run()
    sync()
    t0 = time.perf_counter()
    run()
    sync()
    return sum(len(b["input_ids"]) for b, _ in batches) / (time.perf_counter() - t0)


def host_only(ours, texts, batch_size, max_length):
    """docs/s of the GPU input path with no model: tokenize, pin, copy."""
    order = np.argsort(-np.array([len(t) for t in texts]), kind="stable")
    t0 = time.perf_counter()
    for _ in ours._prefetched_batches(texts, order, batch_size, max_length):
        pass
    sync()
    return len(texts) / (time.perf_counter() - t0)


def input_waits(ours, texts, max_length):
    """Seconds the GPU loop spent waiting for its next input batch during one encode (host-bound when large)."""
    inner = ours._prefetched_batches
    waited = [0.0]

    def timed(*a):
        it = iter(inner(*a))
        while True:
            t0 = time.perf_counter()
            item = next(it, None)
            waited[0] += time.perf_counter() - t0
            if item is None:
                return
            yield item

    ours._prefetched_batches = timed
    try:
        sync()
        t0 = time.perf_counter()
        ours.encode_documents(texts, max_length=max_length)
        sync()
        return waited[0], time.perf_counter() - t0
    finally:
        del ours._prefetched_batches


def profile_e2e(ours, texts, max_length, out_dir, label):
    """One encode under torch.profiler: the GPU's busy share of the wall time (union of kernel intervals) and the
    top host and device operations, written to out_dir."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        ours.encode_documents(texts, max_length=max_length)
        sync()
        wall = time.perf_counter() - t0
    kernels = sorted((e.time_range.start, e.time_range.end) for e in prof.events()
                     if e.device_type == torch.autograd.DeviceType.CUDA and e.time_range.end > e.time_range.start)
    busy, end = 0.0, -math.inf
    for lo, hi in kernels:
        if hi > end:
            busy += hi - max(lo, end)
            end = hi
    span = (kernels[-1][1] - kernels[0][0]) if kernels else math.nan
    averages = prof.key_averages()
    text = (averages.table(sort_by="self_cpu_time_total", row_limit=25) + "\n" +
            averages.table(sort_by="self_device_time_total", row_limit=15))
    if out_dir:
        (out_dir / f"profile_{label}.txt").write_text(text)
    return {"profiled_wall_s": wall, "gpu_busy_s": busy / 1e6, "gpu_span_s": span / 1e6,
            "gpu_busy_share_of_wall": busy / 1e6 / wall,
            "top_host_ops": [(e.key, e.self_cpu_time_total / 1e3) for e in
                             sorted(averages, key=lambda e: -e.self_cpu_time_total)[:8]]}


def time_model_fixed(ours, batch=128, length=256):
    """docs/s of ``Encoder.weights`` on one fixed (batch, length) of random tokens, no padding (the issue's
    model-forward-only reference: BERT-base, fused head, bf16, 128 x 256)."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (batch, length), generator=g)
    inputs = {"input_ids": ids.to(DEV), "attention_mask": torch.ones(batch, length, dtype=torch.long, device=DEV)}
    return batch / (median_ms(lambda: ours.weights(inputs, padded=False)) / 1e3)


def time_e2e(results, texts, batch_size=128, max_length=256, repeats=2, config=None, out_dir=None, only=None):
    from lsr.encoding.encoder import Encoder
    from lsr.encoding.models import resolve_model
    from sentence_transformers import SparseEncoder

    tmp = tempfile.mkdtemp()
    models = {"splade-tiny": lambda: resolve_model("splade-tiny"),
              "bert-base-random": lambda: save_bert_base_splade(os.path.join(tmp, "bert"), texts, config)}
    models = {label: make() for label, make in models.items() if label in (only or models)}
    for label, path in models.items():
        ours = Encoder.from_pretrained(path, device=DEV, batch_size=batch_size, dtype=torch.bfloat16)
        st = SparseEncoder(path, device=DEV).to(torch.bfloat16)
        st.max_seq_length = max_length
        t0 = time.perf_counter()
        ours.encode_documents(texts, max_length=max_length)  # autotunes the kernels for each length bucket
        row = {"part": "e2e", "model": label, "texts": len(texts), "batch_size": batch_size, "max_length": max_length,
               "warmup_s": time.perf_counter() - t0}
        st.encode_document(texts[:512], batch_size=batch_size)
        row.update(check_e2e(ours, st, texts, batch_size, max_length))
        log(f"check  {label:16s} {'ok ' if row['ok'] else 'BAD'} identical to the plain path: "
            f"{row['identical_to_plain_path']}, vs SparseEncoder on {row['st_checked_texts']} texts: rel. diff "
            f"{row['rel_diff_vs_st']:.1e}, support Jaccard {row['support_jaccard']:.4f} "
            f"({row['support_differences']} entries), truncated {row['truncated']}/{len(texts)}")
        if not row["ok"]:
            results.append(row)
            continue   # no speed without equal vectors
        runs = {"ours": lambda: ours.encode_documents(texts, max_length=max_length),
                "st": lambda: st.encode_document(texts, batch_size=batch_size)}
        for _ in range(repeats):  # interleaved
            for name, fn in runs.items():
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                row.setdefault(name + "_s", []).append(time.perf_counter() - t0)
        for name in runs:
            row[name + "_docs_s"] = len(texts) / float(np.median(row[name + "_s"]))
        row["speedup"] = row["ours_docs_s"] / row["st_docs_s"]
        row["ours_plain_path_docs_s"] = len(texts) / row["check_plain_path_s"]  # one warm run, in the check
        row["speedup_plain_path"] = row["ours_plain_path_docs_s"] / row["st_docs_s"]
        batches = device_batches(ours, texts, batch_size, max_length)
        row["forward_only_corpus_docs_s"] = float(np.median([forward_only(ours, batches) for _ in range(repeats)]))
        row["padded_batches"] = sum(padded for _, padded in batches) / len(batches)
        del batches
        row["forward_only_128x256_docs_s"] = time_model_fixed(ours, batch_size, max_length)
        row["host_only_docs_s"] = float(np.median([host_only(ours, texts, batch_size, max_length)
                                                   for _ in range(repeats)]))
        row["input_wait_s"], row["input_wait_wall_s"] = input_waits(ours, texts, max_length)
        row["e2e_share_of_forward_corpus"] = row["ours_docs_s"] / row["forward_only_corpus_docs_s"]
        row["e2e_share_of_forward_128x256"] = row["ours_docs_s"] / row["forward_only_128x256_docs_s"]
        if DEV == "cuda":
            try:
                row["profile"] = profile_e2e(ours, texts, max_length, out_dir, label)
            except Exception as e:  # the figures above stand without it
                row["profile"] = {"error": repr(e)}
        results.append(row)
        log(f"e2e    {label:16s} {len(texts)} texts: ours {row['ours_docs_s']:.0f} docs/s (plain path "
            f"{row['ours_plain_path_docs_s']:.0f}), SparseEncoder {row['st_docs_s']:.0f} docs/s, x{row['speedup']:.2f}"
            f" (plain path x{row['speedup_plain_path']:.2f}); forward only {row['forward_only_corpus_docs_s']:.0f} "
            f"(corpus batches) / {row['forward_only_128x256_docs_s']:.0f} (128x256): e2e = "
            f"{row['e2e_share_of_forward_corpus']:.2f} / {row['e2e_share_of_forward_128x256']:.2f} of it; host only "
            f"{row['host_only_docs_s']:.0f} docs/s; input wait {row['input_wait_s']:.3f} of "
            f"{row['input_wait_wall_s']:.3f} s; GPU busy {row.get('profile', {}).get('gpu_busy_share_of_wall', 0):.2f}"
            f" of the profiled wall")
        del ours, st
        empty_cache()


# ---------------------------------------------------------------------------------------------------------------
def ceilings():
    from triton.testing import do_bench

    if DEV != "cuda":
        return {}
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    mm = do_bench(lambda: a @ b, return_mode="median")
    x = torch.randn(2 ** 28, device="cuda")
    y = torch.empty_like(x)
    cp = do_bench(lambda: y.copy_(x), return_mode="median")
    return {"bf16_mm_tflops": 2 * 8192 ** 3 / mm / 1e9, "copy_tb_s": 2 * x.numel() * 4 / cp / 1e9}


def package_versions():
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("transformers", "tokenizers", "sentence-transformers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def summary(doc):
    """The issue's targets, as ratios measured in this run."""
    rows = [r for r in doc["head"] if "ms" in r]

    def get(shape, dtype, mode, impl, key="ms"):
        for r in rows:
            if tuple(r["shape"]) == shape and r["dtype"] == dtype and r["mode"] == mode and r["impl"] == impl:
                return r[key]
        return math.nan

    lines = []
    for shape in SHAPES:
        for dtype in ("bf16", "fp32"):
            for mode in ("fwd", "fwd+bwd"):
                f, c, e = (get(shape, dtype, mode, i) for i in ("fused", "compile", "eager"))
                fm, em = get(shape, dtype, mode, "fused", "peak_mib"), get(shape, dtype, mode, "eager", "peak_mib")
                out = get(shape, dtype, mode, "fused", "out_mib")
                mm = get(shape, dtype, "fwd", "cublas_mm")
                lines.append(f"{str(shape):24s} {dtype:4s} {mode:7s} fused {f:8.3f} ms  compile {c:8.3f}  eager "
                             f"{e:8.3f}  cublas mm {mm:7.3f}  fused/compile {f / c:5.2f}  mem fused {fm:8.1f} MiB = "
                             f"{fm / out:4.2f} x out, {fm / em:5.3f} x eager")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--texts", type=Path, help="JSONL corpus for the end-to-end part")
    ap.add_argument("--n-texts", type=int, default=8192)
    ap.add_argument("--parts", default="head,model,e2e")
    ap.add_argument("--models", help="e2e models, comma-separated (default: splade-tiny,bert-base-random)")
    ap.add_argument("--impls", default="fused,chunked,eager,compile")
    ap.add_argument("--dtypes", default="bf16,fp32")
    ap.add_argument("--modes", default="fwd,fwd+bwd")
    ap.add_argument("--shapes", default="0,1,2,3")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--quick-check", action="store_true", help="check at the first timed shape only")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, to try the script on a CPU")
    args = ap.parse_args()
    parts = args.parts.split(",")
    import triton

    global SHAPES
    checks = [((4, 77, 768, 30522), "bf16"), ((4, 77, 768, 30522), "fp16"), ((4, 77, 768, 30522), "fp32"),
              ((3, 1, 64, 1000), "bf16"), ((5, 300, 96, 4099), "bf16"), ((2, 40, 1024, 250002), "bf16")]
    checks += [(s, d) for s in SHAPES[:1] for d in ("bf16", "fp32")]
    if args.quick_check:
        checks = [(SHAPES[0], "bf16"), (SHAPES[0], "fp32")]
    model_size, bert, e2e_size = (128, 256), None, {}
    if args.smoke:
        SHAPES = [(2, 16, 32, 300), (3, 8, 32, 170)]
        checks = [(SHAPES[0], "bf16"), (SHAPES[1], "fp32"), ((2, 1, 16, 40), "fp32")]
        model_size, args.n_texts, e2e_size = (4, 32), min(args.n_texts, 48), dict(batch_size=16, max_length=64)
        bert = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    props = torch.cuda.get_device_properties(0) if DEV == "cuda" else None
    doc = {"device": props.name if props else "cpu", "sms": props.multi_processor_count if props else 0,
           "torch": torch.__version__,
           "triton": triton.__version__, "versions": package_versions(), "cpus": os.cpu_count(), "argv": sys.argv[1:], "ceilings": ceilings(), "checks": [], "head": []}
    log(json.dumps({k: doc[k] for k in ("device", "sms", "torch", "triton", "ceilings")}))

    def save():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1))

    try:
        if "head" in parts:
            impls = {k: v for k, v in head_impls().items() if k in args.impls.split(",")}
            if not args.no_check:
                check_head(impls, doc["checks"], checks)
                save()
            shapes = [SHAPES[int(i)] for i in args.shapes.split(",") if int(i) < len(SHAPES)]
            time_head(impls, doc["head"], shapes, args.dtypes.split(","), args.modes.split(","), set(impls), save)
        if "model" in parts:
            doc["model"] = []
            time_model(doc["model"], *model_size, bert)
            save()
        if "e2e" in parts:
            doc["e2e"] = []
            time_e2e(doc["e2e"], read_texts(args.texts, args.n_texts), config=bert, out_dir=args.out.parent,
                     only=args.models and args.models.split(","), **e2e_size)
    finally:
        save()
    log("\n".join(summary(doc)) if doc["head"] else "")
    bad = [c for c in doc["checks"] if not c["ok"]]
    log(f"checks: {len(doc['checks']) - len(bad)} ok, {len(bad)} bad")
    for r in doc.get("model", []) + doc.get("e2e", []):
        log({k: v for k, v in r.items() if not isinstance(v, list)})


if __name__ == "__main__":
    main()
