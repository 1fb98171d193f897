"""`lsr search`: one query against an index, as text (encoded by the index's model), tokens or term ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from lsr.cli.common import echo_json, fail, load_encoder, parse_params, reported

app = typer.Typer()


@app.command()
def search(
    query: Optional[str] = typer.Argument(None, help="query text (encoded by the index's model)"),
    index_dir: Path = typer.Option(..., "--index", help="index folder"),
    terms: Optional[str] = typer.Option(None, help='a sparse query of tokens, as JSON: \'{"file": 1.2, "read": 0.8}\''),
    vector: Optional[str] = typer.Option(None, help="a sparse query of term ids: ID:WEIGHT,ID:WEIGHT,..."),
    k: int = typer.Option(10, "-k", min=1),
    offset: int = typer.Option(0, "--offset", min=0, help="hits to skip (the page of ranks offset+1 to offset+k)"),
    filter_json: Optional[str] = typer.Option(None, "--filter", help='only documents whose metadata this allows, as '
                                              'JSON: \'{"must": [{"key": "lang", "match": {"value": "en"}}]}\''),
    method: str = typer.Option("exact", help="exact, bmp, seismic (as built)"),
    param: list[str] = typer.Option([], "--param", help="method search parameter KEY=VALUE, e.g. alpha=0.9 (bmp), "
                                                        "query_cut=10, heap_factor=0.9 (seismic)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    device: str = typer.Option("cpu"),
) -> None:
    """Search an index with a text query, or a sparse one (--terms, --vector: no model is loaded)."""
    import numpy as np

    from lsr.index import Index, IndexCorrupt, VocabularyMismatch
    from lsr.index.filters import parse_filter

    if sum(x is not None for x in (query, terms, vector)) != 1:
        fail("give one query: a TEXT argument, --terms or --vector")
    with reported(IndexCorrupt, OSError):
        idx = Index.open(index_dir)
    params = parse_params(param)
    with reported(ValueError):
        idx.check_search(method, params)   # before a model loads
        flt = parse_filter(filter_json)
        idx.snapshot().allowed(flt)        # the filter checked against the index's keys, too
    if vector is not None:
        ids, weights = _parse_vector(vector)
    elif terms is not None:
        ids, weights = _parse_terms(terms, idx)
    else:
        if not idx.model:
            fail(f"{index_dir} records no model, so a text query cannot be encoded for it")
        encoder = _query_encoder(idx.model, device)
        with reported(VocabularyMismatch):
            idx.check_vocabulary(encoder.vocab_fingerprint)
        ids, weights = encoder.encode_queries([query]).row(0)
        if encoder.stats.truncated:
            typer.echo(f"the query is longer than {encoder.stats.max_length} tokens and was truncated", err=True)
    with reported(ValueError):
        scores, docs = idx.search_one(np.asarray(ids), np.asarray(weights, np.float32), k=k, method=method,
                                      params=params, filter=flt, offset=offset)
    hits = [{"rank": r, "score": round(float(s), 4), **idx.document(int(d))}
            for r, (s, d) in enumerate(zip(scores, docs), offset + 1) if d >= 0]
    if as_json:
        echo_json({"query": query if query is not None else terms or vector, "method": method, "hits": hits})
        return
    width = min(max([len(h["id"]) for h in hits] + [2]), 40)
    typer.echo(f"{'rank':>4}  {'score':>8}  {'id':<{width}}  text")
    for h in hits:
        shown = h["text"] if h["title"] in ("", h["id"]) else f"{h['title']}: {h['text']}"
        typer.echo(f"{h['rank']:>4}  {h['score']:8.3f}  {h['id']:<{width}}  {' '.join(shown.split())[:100]}")


def _query_encoder(model: str, device: str):
    """On the CPU the numpy query encoder (no torch: the command is done before torch would have loaded), else,
    or for a model it does not cover, the torch Encoder."""
    if device != "cpu":
        return load_encoder(model, device)
    from lsr.encoding.loader import load_query_encoder

    with reported(ValueError):   # ModelLoadError too
        return load_query_encoder(model, threads=1)


def _parse_vector(text: str):
    ids, weights = [], []
    for part in filter(None, (p.strip() for p in text.split(","))):
        term, sep, weight = part.partition(":")
        try:
            ids.append(int(term))
            weights.append(float(weight) if sep else 1.0)
        except ValueError:
            fail(f"--vector expects ID:WEIGHT,ID:WEIGHT,..., got {part!r}")
    return ids, weights


def _parse_terms(text: str, idx):
    from lsr.encoding.vocabulary import Vocabulary

    try:
        given = json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"--terms is not JSON ({e.msg})")
    if not isinstance(given, dict) or not all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                              for w in given.values()):
        fail('--terms expects a JSON object of token: weight, e.g. \'{"file": 1.2}\'')
    if not idx.model:
        fail("this index records no model, so tokens cannot be mapped to term ids: use --vector")
    with reported(ValueError, OSError):
        vocab = Vocabulary.of_model(idx.model)
    unknown = [t for t in given if t not in vocab.ids]
    if unknown:
        fail(f"tokens not in the vocabulary of {idx.model!r}: {unknown[:10]}")
    return [vocab.ids[t] for t in given], list(given.values())
