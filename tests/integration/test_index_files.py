"""Index files as untrusted input: the manifest checksums itself and is checked field by field, every segment array is
checked against it before a kernel reads it, and random damage to any file (truncation, flipped bits, edited
manifest numbers) is refused as IndexCorrupt or leaves every answer as it was. Crafted files whose checksums were
recomputed are fuzzed in tests/slow/test_index_fuzz.py, under Numba's bounds checks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from lsr.cli import app
from lsr.index import Index, IndexCorrupt
from lsr.index.wal import log_files
from tests import index_fuzz
from tests.index_fuzz import _edit_manifest, _rewrite, answers


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "index"
    index_fuzz.build(path)
    return path


@pytest.fixture()
def copy(pristine, tmp_path):
    path = tmp_path / "index"
    shutil.copytree(pristine, path)
    return path


def test_an_edited_manifest_is_refused_by_its_checksum(copy):
    """The red team's edit: a segment's num_docs from its value to 80% of it, valid JSON, array checksums intact."""
    raw = json.loads((copy / "manifest.json").read_text())
    raw["segments"][0]["num_docs"] = raw["segments"][0]["num_docs"] * 4 // 5
    (copy / "manifest.json").write_text(json.dumps(raw, indent=1))
    with pytest.raises(IndexCorrupt, match="manifest.json: checksum mismatch"):
        Index.open(copy, verify=False)


@pytest.mark.parametrize("field,value,reason", [
    (("segments", 1, "num_docs"), 24, "30 rows .*, 24 expected"),   # 30 documents, their rows and arrays
    (("segments", 1, "num_docs"), 36, "30 rows .*, 36 expected"),
    (("segments", 0, "num_docs"), 240, "bad deletes entry"),   # its bitmap has a byte per 8 of 300 documents
    (("segments", 1, "nnz"), 10, "fwd_indptr"),
    (("vocab_size",), 300, "fwd_terms holds values outside"),
    (("vocab_size",), 70000, "fwd_terms"),
    (("segments", 0, "name"), "../seg-000001", "bad name"),
    (("segments", 0, "scale"), -1.0, "bad scale"),
    (("quantization",), "float32", "fwd_values"),
    (("segments", 0, "deletes", "count"), 400, "bad deletes entry"),
])
def test_a_signed_manifest_that_disagrees_with_the_arrays_is_refused(copy, field, value, reason):
    """Checksum recomputed: the field and array checks refuse it before any kernel runs."""
    _edit_manifest(copy, field, value, sign=True)
    with pytest.raises(IndexCorrupt, match=reason):
        Index.open(copy, verify=False)


@pytest.mark.parametrize("array,kind,seed,reason", [
    ("post_docs.npy", 0, 3, "post_docs"), ("fwd_indptr.npy", 1, 1, "fwd_indptr"), ("fwd_terms.npy", 2, 0, "fwd_terms"),
    ("bmp.blocks.npy", 1, 1, "bmp.blocks"), ("bmp.offsets.npy", 0, 11, "bmp"), ("seismic.docs.npy", 0, 2, "seismic"),
    ("seismic.entries.npy", 0, 5, "seismic"), ("seismic.record_sizes.npy", 0, 7, "seismic"), ("dense.npy", 1, 0, "dense"),
])
def test_a_signed_array_that_breaks_the_layout_is_refused(pristine, copy, array, kind, seed, reason):
    seg = Index.open(copy).manifest.segments[0].name
    for attempt in range(seed, seed + 50):   # a random element may happen to keep the layout valid: try the next
        shutil.copy(pristine / seg / array, copy / seg / array)
        _rewrite(copy, seg, array, kind, attempt)
        try:
            Index.open(copy, verify=True)
        except IndexCorrupt as e:
            assert reason in str(e)
            return
    pytest.fail(f"no rewrite of {array} was refused")


def test_a_version_1_manifest_is_upgraded_by_repair(copy):
    raw = json.loads((copy / "manifest.json").read_text())
    del raw["checksum"]
    raw["version"] = 1
    (copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(IndexCorrupt, match="version 1 has no manifest checksum.*--repair"):
        Index.open(copy)
    r = CliRunner().invoke(app, ["index", "-o", str(copy), "--repair"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.splitlines()[-1])["manifest_upgraded"] is True
    assert Index.open(copy).num_docs == 320 + 10   # the record left in the log is replayed and committed


def test_random_damage_is_refused_or_changes_nothing(pristine, tmp_path):
    """Truncations, bit flips and manifest edits of every file, 150 of them: IndexCorrupt or the same answers;
    a writer replaying the damaged log: IndexCorrupt, or a torn tail cut (the last record, never acknowledged)."""
    baseline = answers(pristine)
    rng = np.random.default_rng(17)
    failures = index_fuzz.run(pristine, tmp_path / "work", index_fuzz.damage(pristine, rng, 120), [baseline])
    assert not failures, failures[:10]
    # the log's one record: a writer replays it, or (a torn tail) cuts it off
    with_record = answers(pristine, writable=True)
    cut = tmp_path / "cut"
    shutil.copytree(pristine, cut)
    (log,) = log_files(cut)
    log.write_bytes(log.read_bytes()[:20])
    without = answers(cut, writable=True)
    assert without["documents"] == with_record["documents"] - 10
    rel = log.relative_to(cut)
    size = (pristine / rel).stat().st_size
    wal = [(f"truncate {rel} at {at}", lambda p, at=at: index_fuzz._truncate(p / rel, at))
           for at in rng.integers(0, size, 10)]
    wal += [(f"flip byte {at} of {rel}", lambda p, at=at: index_fuzz._flip(p / rel, at, int(at) % 8))
            for at in rng.integers(0, size, 20)]
    failures = index_fuzz.run(pristine, tmp_path / "work", wal, [with_record, without], writable=True)
    assert not failures, failures[:10]
