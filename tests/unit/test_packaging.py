"""One import namespace, light to import: what a user's process pays before it uses anything."""

from __future__ import annotations

import json
import subprocess
import sys

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
