"""Errors of bad input that every layer raises, so that callers (the CLI, the service) can tell them from bugs."""

from __future__ import annotations


class CorpusError(ValueError):
    """The corpus cannot be read: unknown form, missing fields, malformed records."""
