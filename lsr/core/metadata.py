"""Document metadata: a flat JSON object of filterable values, checked once where documents enter.

A value is a string, a number, a boolean, or a list of strings or of numbers. Each key has one *kind* across an
index, taken from its first value: ``keyword`` (strings), ``number`` (integers and floats alike, stored as float64,
so integers must lie within +-2^53 to stay exact) or ``bool``; filters are checked against these kinds (a range on a
keyword field is refused). An empty list gives a key no value, and so does a missing key.

The types are pydantic's strict types, so the service's request models (and their OpenAPI schema) use the same
definition, and a bad value is refused with the path of the offending key or list element.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Mapping, Union

from pydantic import (Discriminator, Field, StrictBool, StrictFloat, StrictInt, StrictStr, Tag, TypeAdapter,
                      ValidationError)

KEYWORD, NUMBER, BOOL = "keyword", "number", "bool"
EXACT_INTEGERS = 2**53   # float64 holds every integer up to this

Key = Annotated[str, Field(min_length=1, max_length=256)]
Integer = Annotated[StrictInt, Field(ge=-EXACT_INTEGERS, le=EXACT_INTEGERS)]
Float = Annotated[StrictFloat, Field(allow_inf_nan=False)]
Number = Annotated[Union[Annotated[Integer, Tag("integer")], Annotated[Float, Tag("float")]],
                   Discriminator(lambda v: "integer" if isinstance(v, int) and not isinstance(v, bool) else "float")]


def _tag(value: Any) -> str | None:
    """Which kind of value this is (the union's tag), None for anything a metadata value cannot be."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "strings" if value and isinstance(value[0], str) else "numbers"
    return None


_VALUE_ERROR = "a metadata value is a string, a number, a boolean, or a list of strings or of numbers"
Value = Annotated[
    Union[Annotated[StrictStr, Tag("string")], Annotated[StrictBool, Tag("bool")], Annotated[Number, Tag("number")],
          Annotated[list[StrictStr], Tag("strings")], Annotated[list[Number], Tag("numbers")]],
    Discriminator(_tag, custom_error_type="metadata_value", custom_error_message=_VALUE_ERROR)]
Metadata = dict[Key, Value]
# one value to compare with (a filter's match), without lists
Scalar = Annotated[Union[Annotated[StrictStr, Tag("string")], Annotated[StrictBool, Tag("bool")],
                         Annotated[Number, Tag("number")]],
                   Discriminator(_tag, custom_error_type="scalar_value",
                                 custom_error_message="a value to match is a string, a number or a boolean")]


@functools.cache
def _adapter() -> TypeAdapter:
    return TypeAdapter(Metadata)


_TAGS = frozenset({"string", "bool", "number", "strings", "numbers", "integer", "float"})


def error_path(loc: tuple, tags: frozenset[str] = _TAGS) -> str:
    """A pydantic error location as a path: ("tags", 2) -> "tags[2]"; the ``tags`` of unions are left out."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in tags:
            out += f".{part}" if out else str(part)
    return out


def describe(error: ValidationError, prefix: str, tags: frozenset[str] = _TAGS) -> str:
    """The first problems of a ValidationError, each with its path under ``prefix`` (union ``tags`` left out)."""
    parts = []
    for e in error.errors(include_url=False)[:3]:
        loc = tuple(e["loc"])
        if loc[-1:] == ("[key]",):   # the key itself is bad
            parts.append(f"{prefix}: key {loc[-2]!r}: {e['msg']}")
            continue
        path = error_path(loc, tags)
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{prefix}{'.' + path if path and not path.startswith('[') else path}: {msg}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def check_metadata(value: Any, where: str = "document") -> dict[str, Any] | None:
    """A checked copy of a document's metadata (None for None or {}); ValueError naming ``where`` and the key."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}.metadata must be a JSON object of key: value, got {type(value).__name__}")
    try:
        checked = _adapter().validate_python(dict(value))
    except ValidationError as e:
        raise ValueError(describe(e, f"{where}.metadata")) from None
    return checked or None


def kind(value: Any) -> str | None:
    """The kind of a checked value: keyword, number or bool; None for an empty list."""
    if isinstance(value, list):
        return None if not value else kind(value[0])
    if isinstance(value, bool):
        return BOOL
    return KEYWORD if isinstance(value, str) else NUMBER


def merge_kinds(known: dict[str, str], metadata: Mapping[str, Any] | None, where: str = "document") -> None:
    """Adds the kinds of ``metadata``'s keys to ``known``; ValueError when a key already has another kind."""
    for key, value in (metadata or {}).items():
        k = kind(value)
        if k is None:
            continue
        was = known.setdefault(key, k)
        if was != k:
            raise ValueError(f"{where}.metadata.{key}: the index holds {was} values under {key!r}, got a {k} value; "
                             "a key keeps one kind (keyword, number or bool)")
