"""GPU figures for `lsr train` (issue 19): the training step of a BERT-base-sized SPLADE (random weights, timing
only) with the fused head, the textbook head (materialised (B, L, V) logits) and torch.compile of the textbook
head, on one GPU in one run: step time at a fixed batch and the largest batch that fits.

A step is what ``lsr.training`` runs: B queries of 32 tokens and 2B documents of 256 (each query's positive and
one hard negative), ``SpladeModel`` under bfloat16 autocast, the contrastive + FLOPS loss, backward, AdamW. Before
timing, each head's first three steps from the same weights and dropout are compared with the textbook head's
(losses and gradients, relative to the bf16 tolerance of the head's kernel tests).

    python -m bench.train_gpu --out $OUT/train_gpu.json
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import time

import torch

from lsr.training import objective
from lsr.training.model import HEADS, SpladeModel

QUERY_TOKENS, DOC_TOKENS = 32, 256
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"   # cpu: --smoke only (a tiny model, no figures)


def log(*a) -> None:
    print(*a, flush=True)


def bert(smoke: bool, seed: int = 0):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128) \
        if smoke else BertConfig()   # BERT-base: 12 layers, hidden 768, vocabulary 30,522
    return BertForMaskedLM(config)


def batch(queries: int, seed: int = 0) -> tuple[dict, dict]:
    g = torch.Generator(device=DEVICE).manual_seed(seed)

    def tokens(n, length):
        ids = torch.randint(1000, 30000, (n, length), device=DEVICE, generator=g)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    return tokens(queries, QUERY_TOKENS), tokens(2 * queries, DOC_TOKENS)


class Step:
    """One training step of ``head`` on a fresh copy of the base weights."""

    def __init__(self, base, head: str):
        self.model = SpladeModel(copy.deepcopy(base), None, head=head, half=DEVICE == "cuda").to(DEVICE).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-5)

    def __call__(self, q: dict, d: dict) -> torch.Tensor:
        loss = objective.splade_loss(self.model(**q), self.model(**d), 1e-3, 1e-3)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss

    def close(self) -> None:
        del self.model, self.opt
        gc.collect()
        if DEVICE == "cuda":
            torch.cuda.empty_cache()


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def check(base, queries: int, heads: list[str]) -> dict:
    """Three steps of each head against the textbook head: losses and the whole gradient, relative."""
    q, d = batch(queries, seed=1)
    runs = {}
    for head in {*heads, "textbook"}:
        step = Step(base, head)
        losses, grads = [], []
        for s in range(3):
            torch.manual_seed(s)
            losses.append(step(q, d).item())
            grads.append(torch.cat([p.grad.double().flatten() for p in step.model.parameters()
                                    if p.grad is not None]))
        runs[head] = losses, grads
        step.close()
    ref_l, ref_g = runs["textbook"]
    out = {}
    for head, (losses, grads) in runs.items():
        out[head] = {"losses": losses,
                     "loss_rel": max(abs(a - b) / abs(b) for a, b in zip(losses, ref_l)),
                     "grad_rel": max(((a - b).norm() / b.norm()).item() for a, b in zip(grads, ref_g))}
    return out


def step_ms(base, head: str, queries: int, repeats: int = 5) -> dict:
    step = Step(base, head)
    q, d = batch(queries)
    try:
        for _ in range(3):   # compile, autotune
            step(q, d)
        sync()
        if DEVICE == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            step(q, d)
            sync()
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        return {"ms": times[len(times) // 2], "times_ms": times,
                "peak_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if DEVICE == "cuda" else None}
    finally:
        step.close()


def fits(base, head: str, queries: int) -> bool:
    step = Step(base, head)
    try:
        step(*batch(queries))
        sync()
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        step.close()


def largest_batch(base, head: str, start: int, resolution: int, limit: int) -> dict:
    """Doubling from ``start`` queries until a step runs out of memory, then bisection to ``resolution``."""
    t = time.perf_counter()
    ok, bad = 0, None
    n = start
    while n <= limit:
        if fits(base, head, n):
            ok, n = n, n * 2
        else:
            bad = n
            break
    while bad is not None and bad - ok > resolution:
        mid = (ok + bad) // 2
        ok, bad = (mid, bad) if fits(base, head, mid) else (ok, mid)
    return {"queries": ok, "documents": 2 * ok, "first_oom": bad, "search_s": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--queries", type=int, default=32, help="queries per timed step (2x documents)")
    ap.add_argument("--start", type=int, default=64)
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--limit", type=int, default=4096)
    ap.add_argument("--heads", default=",".join(HEADS), help="which heads to compare (textbook is the reference)")
    ap.add_argument("--smoke", action="store_true", help="a tiny model on the CPU: checks the script, no figures")
    args = ap.parse_args()
    if DEVICE == "cpu" and not args.smoke:
        ap.error("no CUDA device: figures need one (--smoke checks the script on the CPU)")
    name = torch.cuda.get_device_properties(0).name if DEVICE == "cuda" else "cpu (smoke)"
    doc = {"device": name, "torch": torch.__version__, "query_tokens": QUERY_TOKENS, "doc_tokens": DOC_TOKENS,
           "model": "BertForMaskedLM(BertConfig()), random weights" if not args.smoke else "smoke"}
    if DEVICE == "cuda":
        import triton

        doc["triton"], doc["memory_gib"] = triton.__version__, torch.cuda.get_device_properties(0).total_memory / 2 ** 30
    base = bert(args.smoke)
    heads = [h for h in HEADS if h in args.heads.split(",")]
    doc["check"] = check(base, 8, heads)
    log("check", json.dumps(doc["check"]))
    doc["step"] = {h: step_ms(base, h, args.queries) for h in heads}
    log("step", json.dumps(doc["step"]))
    doc["largest"] = {}
    for h in heads:
        doc["largest"][h] = largest_batch(base, h, args.start, args.resolution, args.limit)
        log("largest", h, json.dumps(doc["largest"][h]))
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
    s, m = doc["step"], doc["largest"]
    log(f"\n{name}: B = {args.queries} queries x {QUERY_TOKENS} + {2 * args.queries} documents x {DOC_TOKENS}")
    for h in heads:
        log(f"{h:9s} step {s[h]['ms']:8.1f} ms ({s[h]['ms'] / s['fused']['ms']:.2f} x fused)  peak "
            f"{s[h]['peak_gib'] or 0:6.1f} GiB  largest batch {m[h]['queries']} queries "
            f"({m['fused']['queries'] / max(m[h]['queries'], 1):.2f} x in fused)  "
            f"check loss {doc['check'][h]['loss_rel']:.1e} grad {doc['check'][h]['grad_rel']:.1e}")


if __name__ == "__main__":
    main()
