"""Benchmark corpora built on the spot from data that ships offline.

``windows``: every run of three consecutive sentences of the scifact and nfcorpus documents (stride one sentence),
about 63,000 passages of ~75 words: real scientific text, larger than either BEIR set, deterministic.
``queries``: the test and train queries of both sets, the realistic query stream for latency figures.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer

from lsr.core.atomic import atomic_open

SOURCES = ("beir/scifact", "beir/nfcorpus")
QUERY_SETS = ("beir/scifact/test", "beir/scifact/train", "beir/nfcorpus/test", "beir/nfcorpus/train")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")

app = typer.Typer(no_args_is_help=True)


def sentence_windows(text: str, width: int = 3) -> list[str]:
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    if len(sentences) <= width:
        return [" ".join(sentences)] if sentences else []
    return [" ".join(sentences[i:i + width]) for i in range(len(sentences) - width + 1)]


@app.command()
def windows(output: Path = typer.Option(...), width: int = 3) -> None:
    """Write the sentence-window passage corpus as JSONL (id = source:doc_id:window)."""
    import ir_datasets

    n = 0
    with atomic_open(output, "w") as f:
        for source in SOURCES:
            name = source.split("/")[-1]
            for doc in ir_datasets.load(source).docs_iter():
                for w, text in enumerate(sentence_windows(doc.text, width)):
                    f.write(json.dumps({"id": f"{name}:{doc.doc_id}:{w}", "title": doc.title, "text": text}) + "\n")
                    n += 1
    print(json.dumps({"output": str(output), "passages": n}))


@app.command()
def queries(output: Path = typer.Option(...)) -> None:
    """Write the query texts of the scifact and nfcorpus test and train sets as JSONL (id, text)."""
    import ir_datasets

    n = 0
    with atomic_open(output, "w") as f:
        for qs in QUERY_SETS:
            for q in ir_datasets.load(qs).queries_iter():
                f.write(json.dumps({"id": f"{qs}:{q.query_id}", "text": q.text}) + "\n")
                n += 1
    print(json.dumps({"output": str(output), "queries": n}))


if __name__ == "__main__":
    app()
