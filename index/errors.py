"""Errors the index raises on purpose, so callers can tell bad input from a damaged index."""

from __future__ import annotations


class IndexCorrupt(RuntimeError):
    """An index folder cannot be trusted: missing manifest, missing or truncated file, checksum mismatch."""


class VocabularyMismatch(ValueError):
    """Query vectors come from a vocabulary other than the one the index was built with."""


class IndexLocked(RuntimeError):
    """Another writer (another process, or another writable Index in this one) holds the index's writer lock."""


class ReadOnlyIndex(RuntimeError):
    """A write was asked of an Index opened for reading only."""


class InvalidQuery(ValueError):
    """A query vector no index can search: ids outside the vocabulary, negative or non-finite weights, repeats."""


class InvalidFilter(ValueError):
    """A filter no index can apply: malformed, an unknown condition, a value of the wrong type, a range on a keyword
    field. The message names the path of the bad clause (``filter.must[0].range``)."""
