"""Schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks``): the strings of generated request bodies, keys
included, may become hostile text: lone surrogates (valid JSON escapes, invalid Unicode), control characters, very
long tokens, or ordinary text with those inside. The service must answer each with a 2xx or a clear 4xx."""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)
CONTROL = st.integers(0, 0x1F).map(chr) | st.integers(0x7F, 0x9F).map(chr)
HOSTILE = st.one_of(
    st.text(SURROGATE, min_size=1, max_size=3),
    st.text(CONTROL, min_size=1, max_size=20),
    st.text(st.sampled_from("abcdefghijklmnop"), min_size=200, max_size=3000),   # very long tokens
    st.tuples(st.text(max_size=12), st.text(SURROGATE | CONTROL, min_size=1, max_size=3),
              st.text(max_size=12)).map("".join),
)


def hostile(value) -> st.SearchStrategy:
    """``value`` with each of its strings either kept or replaced by hostile text."""
    if isinstance(value, str):
        return st.just(value) | HOSTILE
    if isinstance(value, dict):
        return st.tuples(*[st.tuples(hostile(k), hostile(v)) for k, v in value.items()]).map(dict)
    if isinstance(value, list):
        return st.tuples(*[hostile(v) for v in value]).map(list)
    return st.just(value)


@schemathesis.hook
def flatmap_body(context, body):
    return hostile(body)


FILTER = "#/components/schemas/Filter"
FILTER_DEPTH = 3   # deeper filters, up to the service's limit and past it, are tests/integration/test_filters.py's


def _relinked(node, target: str | None):
    """A copy of ``node`` whose alternatives naming the Filter schema name ``target`` instead, or are dropped when
    ``target`` is None."""
    if isinstance(node, list):
        return [_relinked(item, target) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {}
    for key, value in node.items():
        if key in ("oneOf", "anyOf"):
            value = [{"$ref": target} if alt == {"$ref": FILTER} else alt for alt in value
                     if target is not None or alt != {"$ref": FILTER}]
        copy[key] = _relinked(value, target)
    return copy


@schemathesis.hook
def before_load_schema(context, raw_schema):
    """Filters nest at most ``FILTER_DEPTH`` levels in generated requests. Schemathesis builds a recursive schema's
    strategy level by level while it shrinks, and on the self-referencing Filter that ran past Python's recursion
    limit (a clean-clone CI run: RecursionError in schemathesis itself, on POST /search/batch)."""
    schemas = raw_schema["components"]["schemas"]
    below = None
    for level in range(FILTER_DEPTH - 1):
        schemas[f"Filter{level}"] = _relinked(schemas["Filter"], below)
        below = f"#/components/schemas/Filter{level}"
    schemas["Filter"] = _relinked(schemas["Filter"], below)
