"""Shared fixtures: the embedded model (loaded once) and a private copy of the offline BEIR data."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.eval_data import shared_ir_datasets_path

_HOME: Path | None = None


def pytest_configure(config) -> None:
    """Copies the shared BEIR data to a private IR_DATASETS_HOME before anything imports ir_datasets
    (its dataset paths are fixed at import, and it writes caches beside the data)."""
    global _HOME
    source = shared_ir_datasets_path()
    if source is None:
        return
    _HOME = Path(tempfile.mkdtemp(prefix="lsr-ir-datasets-"))
    shutil.copytree(source, _HOME, dirs_exist_ok=True)
    for p in _HOME.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    os.environ["IR_DATASETS_HOME"] = str(_HOME)


def pytest_collection_modifyitems(config, items) -> None:
    """The folder a test lives in is its kind: tests/unit, tests/integration, tests/slow."""
    for item in items:
        kind = Path(str(item.fspath)).parent.name
        if kind in ("unit", "integration", "slow"):
            item.add_marker(kind)


def pytest_unconfigure(config) -> None:
    if _HOME is not None:
        shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def ir_datasets_home() -> Path:
    if _HOME is None:
        pytest.skip("the offline BEIR data (../shared/ir_datasets) is not on this machine")
    return _HOME


@pytest.fixture(scope="session")
def encoder():
    from lsr.encoding.encoder import Encoder

    return Encoder.from_pretrained("splade-tiny", device="cpu")


SCIFACT_DOCS, SCIFACT_QUERIES, SCIFACT_MAX_LENGTH = 300, 60, 96


@pytest.fixture(scope="session")
def scifact_sample(encoder):
    """Real splade-tiny vectors of shipped data, made once per session: the first 300 scifact documents ("title
    text", 96 tokens) and its first 60 judged test queries, encoded on one torch thread (on 2 shared cores two
    threads wait on each other: 10-13 s against 30-40 s at load 9). Returns (document vectors, ids, query vectors)."""
    import torch

    from tests.eval_data import read_beir

    corpus, queries, qrels = read_beir("scifact")
    corpus = corpus[:SCIFACT_DOCS]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        docs = encoder.encode_documents([f"{d.get('title', '')} {d['text']}".strip() for d in corpus],
                                        max_length=SCIFACT_MAX_LENGTH)
        vectors = encoder.encode_queries([queries[q] for q in qrels][:SCIFACT_QUERIES])
    finally:
        torch.set_num_threads(threads)
    return docs, [str(d["_id"]) for d in corpus], vectors


LIVE_TEXTS = [
    "Aspirin lowers the risk of heart attack in adults with cardiovascular disease.",
    "Vitamin D supplements do not prevent bone fractures in healthy older women.",
    "Regular aerobic exercise improves memory and reduces anxiety in teenagers.",
    "Coffee consumption is associated with a lower risk of type 2 diabetes.",
    "Antibiotic resistance spreads between bacteria through plasmid transfer.",
    "Sleep deprivation impairs glucose metabolism and insulin sensitivity.",
    "The measles vaccine is safe and does not cause autism in children.",
    "Mediterranean diets rich in olive oil reduce stroke incidence.",
    "Smoking during pregnancy increases the risk of low birth weight.",
    "Gut microbiota composition influences obesity and inflammation.",
    "Statins reduce LDL cholesterol but may raise blood sugar levels.",
    "Air pollution with fine particles damages lung function in cities.",
    "Red meat intake is linked to colorectal cancer in large cohort studies.",
    "Mindfulness meditation lowers blood pressure in hypertensive patients.",
    "Tumor suppressor gene p53 mutations drive many human cancers.",
    "Insulin resistance precedes the onset of type 2 diabetes by years.",
    "High salt diets raise blood pressure and the risk of kidney disease.",
    "Omega-3 fatty acids show little benefit for depression in trials.",
    "Breastfeeding protects infants against respiratory infections.",
    "Stem cells can regenerate damaged heart muscle after infarction.",
    "Alcohol consumption increases the risk of liver cirrhosis and cancer.",
    "Physical inactivity is a leading cause of chronic disease worldwide.",
    "Zinc lozenges shorten the duration of the common cold.",
    "Malaria parasites develop resistance to artemisinin in Southeast Asia.",
    "Childhood obesity predicts cardiovascular risk in adulthood.",
    "CRISPR gene editing corrects mutations in human embryos.",
    "Chronic stress elevates cortisol and weakens the immune response.",
    "Influenza vaccination reduces hospital admissions among the elderly.",
    "Processed sugar intake is associated with dental caries in children.",
    "Deep brain stimulation relieves tremor in Parkinson disease.",
    "Iron deficiency anemia impairs cognitive development in toddlers.",
    "Hand washing with soap prevents diarrheal disease in developing countries.",
    "Screen time before bed delays sleep onset in adolescents.",
    "HPV vaccination prevents cervical cancer in young women.",
    "Obstructive sleep apnea is linked to atrial fibrillation.",
    "Green tea catechins have antioxidant effects in cell cultures.",
    "Folic acid before conception prevents neural tube defects.",
    "Loneliness increases mortality as much as smoking does.",
    "Metformin may slow aging and reduce cancer incidence.",
    "Noise exposure at work causes permanent hearing loss.",
]


@pytest.fixture(scope="session")
def live_corpus(encoder):
    """Real splade-tiny vectors for the live-update tests, cheap to make: the 40 short texts above are encoded, and
    each document is a pair of them (texts joined, vector = their element-wise maximum, roughly what the encoder
    gives the joined text). Returns (vectors, ids, Documents, queries): 600 documents, 14 queries."""
    import numpy as np

    from lsr.core.documents import Document
    from lsr.core.sparse import SparseBatch

    base = encoder.encode_documents(LIVE_TEXTS, max_length=32).to_scipy()
    pairs = [(i, j) for i in range(len(LIVE_TEXTS)) for j in range(i + 1, len(LIVE_TEXTS))]
    pairs = [pairs[p] for p in np.random.default_rng(7).permutation(len(pairs))[:600]]
    vectors = SparseBatch.from_scipy(base[[i for i, _ in pairs]].maximum(base[[j for _, j in pairs]]))
    ids = [f"p{i}-{j}" for i, j in pairs]
    docs = [Document(d, f"{LIVE_TEXTS[i]} {LIVE_TEXTS[j]}", title=f"pair {i} {j}") for d, (i, j) in zip(ids, pairs)]
    queries = encoder.encode_queries([" ".join(t.split()[:5]) for t in LIVE_TEXTS[1::3]])
    return vectors, ids, docs, queries
