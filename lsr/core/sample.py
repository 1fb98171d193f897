"""A corpus that every machine already has: the docstrings of the installed Python standard library.

The demo and the tests need real text without a download; each module, class and function docstring of the
standard library becomes one passage, titled by its qualified name.
"""

from __future__ import annotations

import ast
import json
import sysconfig
from pathlib import Path
from typing import Iterator

from lsr.core.atomic import atomic_open
from lsr.core.documents import Document

_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3", "idlelib",
              "turtledemo", "ensurepip", "venv"}


def _docstrings(tree: ast.Module, module: str) -> Iterator[tuple[str, str]]:
    stack: list[tuple[ast.AST, str]] = [(tree, module)]
    while stack:
        node, name = stack.pop()
        doc = ast.get_docstring(node, clean=True)
        if doc:
            yield name, doc
        for child in reversed(getattr(node, "body", [])):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                stack.append((child, f"{name}.{child.name}"))


def stdlib_passages(min_chars: int = 80, limit: int | None = None, root: str | None = None) -> Iterator[Document]:
    """Docstrings of at least ``min_chars`` characters, in a stable order (sorted file paths)."""
    base = Path(root or sysconfig.get_paths()["stdlib"])
    count = 0
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base)
        if _SKIP_DIRS & set(rel.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        for name, doc in _docstrings(tree, module):
            if len(doc) >= min_chars:
                yield Document(id=name, text=" ".join(doc.split()), title=name)
                count += 1
                if limit is not None and count >= limit:
                    return


def write_sample_corpus(path: str | Path, limit: int | None = None) -> int:
    """Writes the passages as JSONL (id, title, text), creating the folder; returns how many."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    n = 0
    seen: set[str] = set()
    with atomic_open(path, "w") as f:
        for d in stdlib_passages(limit=limit):
            if d.id in seen:  # e.g. a property getter and setter share a qualified name
                continue
            seen.add(d.id)
            f.write(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n")
            n += 1
    return n
