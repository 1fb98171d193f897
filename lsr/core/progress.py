"""How long work reports progress without knowing who shows it: a factory of counters.

``progress(description, total)`` is a context manager yielding ``advance(n)``; the CLI passes one that draws a bar,
library callers pass nothing and get ``no_progress``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, ContextManager, Iterator

Advance = Callable[[int], None]
ProgressFactory = Callable[[str, "int | None"], ContextManager[Advance]]


@contextmanager
def no_progress(description: str, total: int | None) -> Iterator[Advance]:
    yield lambda n: None
