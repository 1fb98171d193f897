"""Filters in the shape Qdrant users know, parsed by pydantic (the service's request models use these classes, so its
OpenAPI schema documents them) and evaluated per segment into the set of allowed document numbers.

    {"must": [...], "should": [...], "must_not": [...]}          every list optional; conditions nest
    {"key": K, "match": {"value": V}}                            K holds V (a string, a number or a boolean)
    {"key": K, "match": {"any": [V, ...]}}                       K holds one of them (strings, or numbers)
    {"key": K, "range": {"gt" | "gte" | "lt" | "lte": x, ...}}   K holds a number in the range (number fields only)
    {"has_id": [id, ...]}                                        the document's external id is one of these

``must``: every condition holds; ``should``: at least one does (when there is any); ``must_not``: none does. A
document whose value is a list matches when one element does. A key that no document has matches nothing.

A filter is checked twice, each error naming the path of its clause (``filter.must[0].range``): its shape when it is
parsed (unknown conditions, values of the wrong type, size), then against the kinds of the index's keys (a range on
a keyword field, a string matched against numbers) before any segment is searched.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Annotated, Any, Mapping, Union

import numpy as np
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, StrictStr, Tag, ValidationError,
                      model_validator)

from lsr.core.metadata import BOOL, KEYWORD, NUMBER, Key, Number, Scalar, describe
from lsr.index.errors import InvalidFilter

MAX_DEPTH = 16        # nesting levels of must / should / must_not
MAX_TERMS = 4096      # conditions plus the values they list (match any, has_id)
_TAGS = frozenset({"match_condition", "range_condition", "has_id_condition", "nested_filter", "match_value",
                   "match_any", "string", "bool", "number", "integer", "float", "strings", "numbers"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchValue(_Strict):
    value: Scalar = Field(description="the value the key must hold (a list holds it when one element equals it)")


class MatchAny(_Strict):
    any: Annotated[Union[Annotated[list[StrictStr], Tag("strings")], Annotated[list[Number], Tag("numbers")]],
                   Discriminator(lambda v: "strings" if v and isinstance(v[0], str) else "numbers")] = Field(
        description="values, one of which the key must hold: all strings or all numbers")


def _match_kind(v: Any) -> str | None:
    if isinstance(v, dict):
        return "match_value" if "value" in v else "match_any" if "any" in v else None
    return "match_value" if isinstance(v, MatchValue) else "match_any" if isinstance(v, MatchAny) else None


Match = Annotated[Union[Annotated[MatchValue, Tag("match_value")], Annotated[MatchAny, Tag("match_any")]],
                  Discriminator(_match_kind, custom_error_type="match",
                                custom_error_message='a match is {"value": V} or {"any": [V, ...]}')]


class FieldMatch(_Strict):
    key: Key
    match: Match


class Range(_Strict):
    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None

    @model_validator(mode="after")
    def _bounded(self) -> "Range":
        if self.gt is None and self.gte is None and self.lt is None and self.lte is None:
            raise ValueError("a range needs at least one of gt, gte, lt, lte")
        if self.gt is not None and self.gte is not None or self.lt is not None and self.lte is not None:
            raise ValueError("a range takes one lower bound (gt or gte) and one upper bound (lt or lte)")
        return self


class FieldRange(_Strict):
    key: Key
    range: Range


class HasId(_Strict):
    has_id: list[Annotated[str, Field(min_length=1)]] = Field(description="external document ids")


_CONDITIONS = {"match": "match_condition", "range": "range_condition", "has_id": "has_id_condition",
               "must": "nested_filter", "should": "nested_filter", "must_not": "nested_filter"}


def _condition_kind(v: Any) -> str | None:
    if isinstance(v, dict):   # {} is an empty nested filter, which allows everything (as at the top)
        return next((_CONDITIONS[k] for k in _CONDITIONS if k in v), None if v else "nested_filter")
    kinds = {FieldMatch: "match_condition", FieldRange: "range_condition", HasId: "has_id_condition",
             Filter: "nested_filter"}
    return kinds.get(type(v))


Condition = Annotated[
    Union[Annotated[FieldMatch, Tag("match_condition")], Annotated[FieldRange, Tag("range_condition")],
          Annotated[HasId, Tag("has_id_condition")], Annotated["Filter", Tag("nested_filter")]],
    Discriminator(_condition_kind, custom_error_type="filter_condition",
                  custom_error_message='a condition is {"key", "match"}, {"key", "range"}, {"has_id"} or a nested '
                                       '{"must", "should", "must_not"} filter')]


class Filter(_Strict):
    """Documents allowed in a search: every ``must`` condition, at least one ``should`` (when given), no
    ``must_not``."""

    must: list[Condition] = Field(default_factory=list, description="conditions that must all hold")
    should: list[Condition] = Field(default_factory=list, description="conditions of which one must hold")
    must_not: list[Condition] = Field(default_factory=list, description="conditions none of which may hold")

    @model_validator(mode="after")
    def _small(self) -> "Filter":
        depth, terms = _measure(self)
        if depth > MAX_DEPTH:
            raise ValueError(f"a filter nests at most {MAX_DEPTH} levels of must / should / must_not")
        if terms > MAX_TERMS:
            raise ValueError(f"a filter holds at most {MAX_TERMS} conditions and listed values, got {terms}")
        return self

    def clauses(self):
        """(list name, position, condition) of every condition directly in this filter."""
        for name in ("must", "should", "must_not"):
            for i, c in enumerate(getattr(self, name)):
                yield name, i, c


def _measure(f: Filter) -> tuple[int, int]:
    """(nesting depth, conditions plus listed values) of a filter."""
    depth, terms = 1, 0
    for _, _, c in f.clauses():
        if isinstance(c, Filter):
            d, t = _measure(c)
            depth, terms = max(depth, d + 1), terms + t
        else:
            terms += 1 + (len(c.has_id) if isinstance(c, HasId) else
                          len(c.match.any) if isinstance(c, FieldMatch) and isinstance(c.match, MatchAny) else 0)
    return depth, terms


Filter.model_rebuild()


# ---- parsing and checking -------------------------------------------------------------------------------------------
_PARSED: OrderedDict[str | bytes, Filter] = OrderedDict()   # valid filters by their JSON text, most recent last
_PARSED_LOCK = threading.Lock()


def _parsed(key: str | bytes, parse) -> Filter:
    """A service sends the same few filters again and again, and validating one costs more than an exact search of
    a small index: valid ones are kept by their JSON text (a Filter is never changed after parsing)."""
    with _PARSED_LOCK:
        found = _PARSED.get(key)
    if found is None:
        found = parse()
        with _PARSED_LOCK:
            _PARSED[key] = found
            if len(_PARSED) > 256:
                _PARSED.popitem(last=False)
    return found


def parse_filter(given: Filter | Mapping[str, Any] | str | bytes | None) -> Filter | None:
    """A Filter from itself, a mapping or JSON text; InvalidFilter naming the path of the first problems."""
    if given is None or isinstance(given, Filter):
        return given
    try:
        if isinstance(given, (str, bytes)):
            return _parsed(given, lambda: Filter.model_validate_json(given))
        if isinstance(given, Mapping):
            try:
                text = json.dumps(given, sort_keys=True, allow_nan=False)
            except (TypeError, ValueError):   # not JSON (numpy numbers, NaN, ...): validated, not kept
                return Filter.model_validate(dict(given))
            return _parsed(text, lambda: Filter.model_validate(dict(given)))
    except ValidationError as e:
        raise InvalidFilter(describe(e, "filter", _TAGS)) from None
    raise TypeError(f"filter must be a dict (or JSON text, or an lsr.index.filters.Filter), got {type(given).__name__}")


def _value_kind(value: Any) -> str:
    return BOOL if isinstance(value, bool) else KEYWORD if isinstance(value, str) else NUMBER


def check_filter(f: Filter, kinds: Mapping[str, str], path: str = "filter") -> None:
    """InvalidFilter for a clause that cannot apply to keys of these kinds (a key not among them is fine: it
    matches nothing)."""
    for name, i, c in f.clauses():
        where = f"{path}.{name}[{i}]"
        if isinstance(c, Filter):
            check_filter(c, kinds, where)
            continue
        if isinstance(c, HasId) or c.key not in kinds:
            continue
        kind = kinds[c.key]
        if isinstance(c, FieldRange):
            if kind != NUMBER:
                raise InvalidFilter(f"{where}.range: {c.key!r} is a {kind} field; ranges apply to number fields "
                                    "(match its values instead)")
        elif isinstance(c.match, MatchValue):
            got = _value_kind(c.match.value)
            if got != kind:
                raise InvalidFilter(f"{where}.match.value: {c.key!r} holds {kind} values, got a {got} value")
        elif c.match.any:
            got = _value_kind(c.match.any[0])
            if got != kind:
                hint = "; match a boolean with {\"value\": true}" if kind == BOOL else ""
                raise InvalidFilter(f"{where}.match.any: {c.key!r} holds {kind} values, got {got} values{hint}")


# ---- evaluation ---------------------------------------------------------------------------------------------------
def allowed(f: Filter, seg) -> np.ndarray:
    """The segment's documents the filter allows (bool per document; deletes not applied). ``seg`` is an
    ``lsr.index.segment.Segment``; the filter was checked against the index's key kinds."""
    out = np.ones(seg.num_docs, dtype=bool)
    for c in f.must:
        out &= _holds(c, seg)
    if f.should:
        some = np.zeros(seg.num_docs, dtype=bool)
        for c in f.should:
            some |= _holds(c, seg)
        out &= some
    for c in f.must_not:
        out &= ~_holds(c, seg)
    return out


def _holds(c: Any, seg) -> np.ndarray:
    if isinstance(c, Filter):
        return allowed(c, seg)
    out = np.zeros(seg.num_docs, dtype=bool)
    if isinstance(c, HasId):
        numbers = [seg.number_of(i) for i in c.has_id]
        out[[n for n in numbers if n is not None]] = True
        return out
    field = seg.fields.get(c.key)
    if field is None:
        return out
    if isinstance(c, FieldRange):
        r = c.range
        out[field.between(r.gte if r.gt is None else r.gt, r.gt is None, r.lte if r.lt is None else r.lt,
                          r.lt is None)] = True
    else:
        for docs in field.matching([c.match.value] if isinstance(c.match, MatchValue) else c.match.any):
            out[docs] = True
    return out
