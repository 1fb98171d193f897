"""Test collections for the evaluation tests, built from the shared BEIR downloads without touching the network.

The shared folder (``../shared/ir_datasets`` beside the checkout, or ``$LSR_SHARED_IR_DATASETS``) holds the BEIR
``source.zip`` files that ir_datasets downloads; tests skip with the reason when it is absent.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = tuple(Path(p) for p in [os.environ.get("LSR_SHARED_IR_DATASETS", "")] if p) + (
    REPO.parent / "shared" / "ir_datasets",)


def shared_ir_datasets_path() -> Path | None:
    """The shared ir_datasets home with BEIR in it, or None."""
    return next((p for p in CANDIDATES if (p / "beir").is_dir()), None)


def shared_ir_datasets() -> Path:
    path = shared_ir_datasets_path()
    if path is not None:
        return path
    pytest.skip(f"the shared BEIR data is absent (looked in {', '.join(map(str, CANDIDATES))}): "
                "copy the ir_datasets home with beir/scifact and beir/nfcorpus there to run this test")


def ir_datasets_home(tmp: Path) -> Path:
    """A writable copy of the shared ir_datasets home (ir_datasets writes caches beside the data)."""
    home = tmp / "ir_datasets"
    if not home.exists():
        shutil.copytree(shared_ir_datasets(), home)
        for p in home.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
    return home


def read_beir(name: str) -> tuple[list[dict], dict[str, str], dict[str, dict[str, int]]]:
    with zipfile.ZipFile(shared_ir_datasets() / "beir" / name / "source.zip") as z:
        corpus = [json.loads(x) for x in z.read(f"{name}/corpus.jsonl").decode().splitlines() if x.strip()]
        queries = {str(q["_id"]): q["text"] for q in map(json.loads, z.read(f"{name}/queries.jsonl").decode()
                                                        .splitlines()) if q}
        qrels: dict[str, dict[str, int]] = {}
        for line in z.read(f"{name}/qrels/test.tsv").decode().splitlines()[1:]:
            q, d, s = line.split("\t")
            qrels.setdefault(q, {})[d] = int(s)
    return corpus, queries, qrels


def write_beir_folder(dest: Path, corpus: list[dict], queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> Path:
    (dest / "qrels").mkdir(parents=True, exist_ok=True)
    with open(dest / "corpus.jsonl", "w") as f:
        for d in corpus:
            f.write(json.dumps({"_id": str(d["_id"]), "title": d.get("title", ""), "text": d["text"]}) + "\n")
    with open(dest / "queries.jsonl", "w") as f:
        for q, text in queries.items():
            f.write(json.dumps({"_id": q, "text": text}) + "\n")
    with open(dest / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, judged in qrels.items():
            for d, s in judged.items():
                f.write(f"{q}\t{d}\t{s}\n")
    return dest


def beir_folder(name: str, dest: Path, n_queries: int | None = None, n_other: int = 0, seed: int = 0) -> Path:
    """The BEIR set as a local folder: all of it, or its first n judged test queries, their judged documents and
    n_other other documents drawn at random."""
    corpus, queries, qrels = read_beir(name)
    judged = [q for q in queries if q in qrels]
    if n_queries is not None:
        judged = judged[:n_queries]
        wanted = {d for q in judged for d in qrels[q]}
        others = [d for d in corpus if d["_id"] not in wanted]
        wanted |= {d["_id"] for d in random.Random(seed).sample(others, min(n_other, len(others)))}
        corpus = [d for d in corpus if d["_id"] in wanted]  # the collection's own order
    return write_beir_folder(dest, corpus, {q: queries[q] for q in judged}, {q: qrels[q] for q in judged})


MSMARCO_PASSAGES = {
    "0": "The Manhattan Project was the research effort that produced the first nuclear weapons.",
    "1": "Cats are small carnivorous mammals kept as pets for thousands of years.",
    "2": "The Amazon rainforest covers much of the Amazon basin of South America.",
    "3": "Photosynthesis converts light energy into chemical energy in plants.",
    "4": "A violin is a wooden string instrument played with a bow.",
    "5": "The stock market crash of 1929 began the Great Depression.",
}
MSMARCO_QUERIES = {"1001": "what was the manhattan project", "1002": "how do plants make energy from light",
                   "1003": "what instrument is played with a bow"}
MSMARCO_QRELS = {"1001": "0", "1002": "3", "1003": "4"}


def msmarco_home(dest: Path) -> Path:
    """An ir_datasets home in which ``msmarco-passage/dev/small`` is a tiny collection in the real files' format.

    ir_datasets reads these paths before it would download anything: collection.tsv (pid, passage), the dev/small
    queries (qid, text) and qrels (qid 0 pid 1), and irds_version.txt, whose absence would make it rebuild.
    """
    base = dest / "msmarco-passage"
    (base / "dev" / "small").mkdir(parents=True, exist_ok=True)
    (base / "irds_version.txt").write_text("v2")
    (base / "collection.tsv").write_text("".join(f"{p}\t{t}\n" for p, t in MSMARCO_PASSAGES.items()))
    (base / "dev" / "small" / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in MSMARCO_QUERIES.items()))
    (base / "dev" / "small" / "qrels").write_text("".join(f"{q}\t0\t{p}\t1\n" for q, p in MSMARCO_QRELS.items()))
    return dest
