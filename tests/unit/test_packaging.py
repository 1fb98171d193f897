"""One import namespace, light to import: what a user's process pays before it uses anything."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["torch", "transformers", "fastapi", "uvicorn", "ray", "numba", "typer"]


def _modules_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_lsr_is_light():
    loaded = _modules_after("import lsr; lsr.__version__")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_cli_help_loads_no_torch_and_no_web_stack():
    code = ("from typer.testing import CliRunner\nfrom lsr.cli import app\n"
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output\n"
            "r = CliRunner().invoke(app, ['index', '--help']); assert r.exit_code == 0, r.output")
    loaded = _modules_after(code)
    assert not loaded & {"torch", "transformers", "fastapi", "ray", "numba"}


def test_one_namespace(tmp_path):
    """The folders index/, service/, eval/, cluster/ are lsr's subpackages, never top-level names (asked from a
    folder outside the checkout: `python -m` puts the working folder first on sys.path)."""
    code = ("import importlib.util as u, lsr.index, lsr.service, lsr.eval, lsr.cluster\n"
            "assert lsr.index.Index.__module__ == 'lsr.index.index'\n"
            "print([n for n in ('index', 'service', 'eval', 'cluster') if u.find_spec(n)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _probe(code: str, cwd) -> tuple[set[str], str]:
    """Modules loaded after ``code``, and what it wrote to stderr."""
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1])), out.stderr


@pytest.fixture(scope="module")
def small_index(tmp_path_factory):
    """An index of the embedded model over four documents (vectors from the numpy encoder: no torch here either)."""
    from lsr.core.documents import Document
    from lsr.encoding.query import QueryEncoder
    from lsr.index import Index

    enc = QueryEncoder.from_pretrained("splade-tiny")
    docs = [Document(f"d{i}", t) for i, t in enumerate(["read a JSON file", "zip a folder", "parse dates",
                                                         "sort a list in place"])]
    path = tmp_path_factory.mktemp("packaging") / "index"
    Index.build(path, enc.encode_documents([d.text for d in docs]), [d.id for d in docs], texts=docs,
                model="splade-tiny", vocab_fingerprint=enc.vocab_fingerprint, methods=["exact"])
    return path


def test_text_query_from_the_cli_loads_no_torch(small_index, tmp_path):
    code = ("from typer.testing import CliRunner\nfrom lsr.cli import app\n"
            f"r = CliRunner().invoke(app, ['search', '--index', {str(small_index)!r}, 'how to load json', '-k', '2'])\n"
            "assert r.exit_code == 0, r.output\nassert 'd0' in r.output.splitlines()[1], r.output")
    loaded, stderr = _probe(code, tmp_path)
    assert not loaded & {"torch", "transformers"}, loaded & {"torch", "transformers"}
    assert "Loading weights" not in stderr


def test_service_queries_and_writes_load_no_torch(small_index, tmp_path):
    """A worker encodes text queries and document writes with the numpy encoder (its memory: no torch)."""
    import shutil

    folder = tmp_path / "index"
    shutil.copytree(small_index, folder)
    code = ("import time\nfrom fastapi.testclient import TestClient\n"
            "from lsr.service import create_app\nfrom lsr.service.settings import Settings\n"
            f"with TestClient(create_app({str(folder)!r}, Settings(api_keys=['k'], refresh_interval=0))) as c:\n"
            "    while c.get('/readyz').json()['status'] == 'loading':\n        time.sleep(0.05)\n"
            "    assert c.get('/readyz').status_code == 200, c.get('/readyz').json()\n"
            "    r = c.post('/documents', json=[{'id': 'new', 'text': 'open a gzip archive'}],\n"
            "               headers={'Authorization': 'Bearer k'})\n    assert r.status_code == 200, r.text\n"
            "    hits = c.post('/search', json={'query': 'gzip', 'k': 1}).json()['hits']\n"
            "    assert hits[0]['id'] == 'new', hits")
    loaded, _ = _probe(code, tmp_path)
    assert not loaded & {"torch", "transformers"}, loaded & {"torch", "transformers"}
