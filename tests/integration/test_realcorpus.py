"""`lsr bench corpus build` on tiny Gutenberg and Wikipedia folders made here, with a tiny judged BEIR folder as needles."""

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lsr.cli import app

runner = CliRunner()
BOUNDS = ["--min-words", "20", "--max-words", "40"]


def _prose(rng: random.Random, words: list[str], sentences: int) -> str:
    out = []
    for _ in range(sentences):
        s = " ".join(rng.choice(words) for _ in range(rng.randint(6, 14)))
        out.append(s[0].upper() + s[1:] + ".")
    return " ".join(out)


def _book(rng: random.Random, words: list[str], paragraphs: int) -> str:
    body = "\n\n".join(_prose(rng, words, rng.randint(1, 5)) for _ in range(paragraphs))
    return body.replace(". ", ".\n", 3)   # hard-wrapped lines, as Gutenberg's


def make_sources(root: Path) -> tuple[Path, Path, Path]:
    rng = random.Random(0)
    g, w, n = root / "gutenberg", root / "wikipedia", root / "mini"
    (g / "Doe, Jane").mkdir(parents=True)
    (g / "Roe, Rick").mkdir()
    book = _book(rng, ["river", "stone", "garden", "letter", "morning", "candle"], 30)
    (g / "Doe, Jane" / "A Book.txt").write_text(
        "The Project Gutenberg EBook of A Book, by Jane Doe\r\nLICENSEWORD header\r\n\r\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK A BOOK ***\r\n\r\nProduced by Someone\r\n\r\nCHAPTER I\r\n\r\n"
        + book.replace("\n", "\r\n") + "\r\n\r\nEnd of the Project Gutenberg EBook of A Book\r\n\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK A BOOK ***\r\n\r\nLICENSEWORD terms follow.\r\n")
    (g / "Doe, Jane" / "Z Copy.txt").write_text(   # another edition with an afterword: most passages duplicates
        "header\n\n*** START OF THE PROJECT GUTENBERG EBOOK A BOOK ***\n\n" + book + "\n\n" +
        _book(rng, ["afterword", "editor", "footnote"], 8) + "\n\n*** END OF THE PROJECT GUTENBERG EBOOK A BOOK ***\n")
    old = _book(rng, ["harbour", "sailor", "compass", "anchor"], 12)
    (g / "Roe, Rick" / "Old Style.txt").write_bytes(
        ("old header LICENSEWORD\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n" + old +
         "\n\nEnd of Project Gutenberg Etext of Old Style\nLICENSEWORD\n").encode("cp1252"))
    (g / "Roe, Rick" / "No Markers.txt").write_text(_book(rng, ["unmarked"], 5))
    (w / "Page").mkdir(parents=True)
    (w / "Abstract").mkdir()
    page = "\n\n".join([
        "The ALPHA is a " + _prose(rng, ["valley", "meadow", "ridge"], 3) + "[1][a]",
        "History",
        _prose(rng, ["valley", "meadow", "ridge", "village"], 6) + "[2]",
        "+-------+--------+\n| TABLEWORD | 1 |\n+=======+========+\n| x | y |\n+-------+--------+",
        "-   LISTWORD item one\n-   LISTWORD item two",
        "an image CAPTIONWORD of the ridge.]] " + _prose(rng, ["valley", "ridge", "harvest"], 5),
        "References",
        "[1] REFWORD, p. 3.",
    ])
    (w / "Page" / "Alpha.md").write_text(page)
    (w / "Abstract" / "Alpha.md").write_text(page.split("\n")[0] + " ABSTRACTCOPY")  # its page exists: not read
    (w / "Abstract" / "Beta.md").write_text(_prose(rng, ["glacier", "summit", "cloud"], 6))
    (n / "qrels").mkdir(parents=True)
    (n / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "title": f"T{i}", "text": t}) + "\n"
                                            for i, t in enumerate(["needle one", "needle two", "needle three"])))
    (n / "queries.jsonl").write_text('{"_id": "1", "text": "first"}\n{"_id": "2", "text": "second"}\n'
                                     '{"_id": "3", "text": "unjudged"}\n')
    (n / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td0\t1\n2\td1\t2\n2\td2\t1\n")
    return g, w, n


def build(tmp_path: Path, out: str = "out", *extra: str):
    g, w, n = make_sources(tmp_path / "src") if not (tmp_path / "src").exists() else \
        (tmp_path / "src" / "gutenberg", tmp_path / "src" / "wikipedia", tmp_path / "src" / "mini")
    return runner.invoke(app, ["bench", "corpus", "build", "--gutenberg", str(g), "--wikipedia", str(w),
                               "--needles", str(n), "--output", str(tmp_path / out), "--heldout", "3", *BOUNDS,
                               *extra])


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_build_writes_a_clean_deduplicated_beir_folder_with_needles(tmp_path):
    r = build(tmp_path)
    assert r.exit_code == 0, r.output
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    corpus = _jsonl(out / "corpus.jsonl")
    texts = [d["text"] for d in corpus]
    passages = [d for d in corpus if not d["_id"].startswith("mini:")]
    g = summary["sources"]["gutenberg"]
    # boilerplate, headings, credits, tables, lists, captions, citations and references are gone
    for word in ("LICENSEWORD", "Gutenberg", "CHAPTER", "Produced", "TABLEWORD", "LISTWORD", "CAPTIONWORD", "REFWORD",
                 "History", "ABSTRACTCOPY", "[1]", "[a]", "|", "+---", "unmarked"):
        assert not any(word in t for t in texts), word
    assert any("harbour" in t for t in texts) and any("glacier" in t for t in texts)   # old-style book, abstract
    assert all(20 <= len(d["text"].split()) <= 40 for d in passages)
    # the second edition's passages are exact duplicates of the first's, but for its afterword: it goes whole
    assert g["documents"] == 4 and g["skipped_no_start_marker"] == 1 and g["duplicates_dropped"] > 0
    assert g["other_editions_dropped"] == 1 and g["their_other_passages_dropped"] > 0
    assert len(set(texts)) == len(texts)
    assert not any("Z_Copy" in d["_id"] for d in corpus) and not any("afterword" in t for t in texts)
    assert any("A_Book" in d["_id"] for d in corpus)
    assert summary["sources"]["wikipedia"]["documents"] == 2
    # needles whole, with their judgements under prefixed ids; held-out passages left the corpus
    needles = {d["_id"]: d for d in corpus if d["_id"].startswith("mini:")}
    assert needles["mini:d1"] == {"_id": "mini:d1", "title": "T1", "text": "needle two"} and len(needles) == 3
    held = _jsonl(out / "heldout.jsonl")
    queries = {q["_id"]: q["text"] for q in _jsonl(out / "queries.jsonl")}
    assert len(held) == 3 and not {h["_id"] for h in held} & {d["_id"] for d in corpus}
    for h in held:
        assert h["text"].startswith(queries[h["query"]]) and queries[h["query"]].endswith(".")
    assert set(queries) == {h["query"] for h in held} | {"q:mini:1", "q:mini:2"}
    assert (out / "qrels" / "test.tsv").read_text().splitlines() == [
        "query-id\tcorpus-id\tscore", "q:mini:1\tmini:d0\t1", "q:mini:2\tmini:d1\t2", "q:mini:2\tmini:d2\t1"]
    assert summary["documents"] == len(corpus) and summary["needles"] == 3
    assert summary["queries"] == {"heldout": 3, "mini": 2}
    assert not (tmp_path / "out.partial").exists()
    # the folder is what `lsr eval` reads: only the judged queries count there
    from lsr.eval.datasets import load_eval_set

    es = load_eval_set(out)
    assert set(es.queries) == {"q:mini:1", "q:mini:2"}


def test_build_is_deterministic_and_the_seed_shuffles(tmp_path):
    assert build(tmp_path, "a").exit_code == 0
    assert build(tmp_path, "b").exit_code == 0
    assert build(tmp_path, "c", "--seed", "1").exit_code == 0
    read = lambda name: (tmp_path / name / "corpus.jsonl").read_bytes()   # noqa: E731
    assert read("a") == read("b")
    ids = lambda name: [d["_id"] for d in _jsonl(tmp_path / name / "corpus.jsonl")]   # noqa: E731
    assert ids("a") != ids("c")


def test_build_refuses_bad_input(tmp_path):
    make_sources(tmp_path / "src")
    assert build(tmp_path).exit_code == 0
    r = build(tmp_path)
    assert r.exit_code == 2 and "exists" in r.output
    assert build(tmp_path, "out", "--overwrite").exit_code == 0
    r = runner.invoke(app, ["bench", "corpus", "build", "--gutenberg", str(tmp_path / "nope"), "--output",
                            str(tmp_path / "x")])
    assert r.exit_code == 2 and "no such folder" in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["bench", "corpus", "build", "--gutenberg", str(tmp_path / "empty"), "--needles", "",
                            "--output", str(tmp_path / "x")])
    assert r.exit_code == 2 and "no .txt book" in r.output
    r = runner.invoke(app, ["bench", "corpus", "build", "--wikipedia", str(tmp_path / "empty"), "--needles", "",
                            "--output", str(tmp_path / "x")])
    assert r.exit_code == 2 and "no article" in r.output
    r = runner.invoke(app, ["bench", "corpus", "build", "--needles", "", "--output", str(tmp_path / "x")])
    assert r.exit_code == 2 and "at least one source" in r.output
    r = runner.invoke(app, ["bench", "corpus", "build", "--wikipedia", str(tmp_path / "src" / "wikipedia"),
                            "--needles", str(tmp_path / "src" / "mini"), "--needles", str(tmp_path / "src" / "mini"),
                            "--output", str(tmp_path / "x")])
    assert r.exit_code == 2 and "distinct names" in r.output
    r = runner.invoke(app, ["bench", "corpus", "build", "--wikipedia", str(tmp_path / "src" / "wikipedia"),
                            "--needles", "no/such/collection", "--output", str(tmp_path / "x")])
    assert r.exit_code == 2 and "no/such/collection" in r.output
    r = runner.invoke(app, ["bench", "corpus", "build", "--wikipedia", str(tmp_path / "src" / "wikipedia"),
                            "--min-words", "50", "--max-words", "10", "--output", str(tmp_path / "x")])
    assert r.exit_code == 2 and "min_words <= max_words" in r.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()


@pytest.mark.parametrize("heldout", [0, 1000])
def test_held_out_queries_are_capped_by_what_qualifies(tmp_path, heldout):
    r = build(tmp_path, "out", "--heldout", str(heldout))
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    held = summary["queries"]["heldout"]
    assert held == 0 if heldout == 0 else 0 < held < heldout
