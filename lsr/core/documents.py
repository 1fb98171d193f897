"""A document as every layer sees it: an external id, its text, an optional title and optional metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from lsr.core.metadata import check_metadata


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""
    # filterable values (lsr.core.metadata), checked and copied on construction; None when there are none. Left out
    # of the hash (a dict is not hashable), kept in equality: equal documents still hash alike.
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.metadata is not None:
            object.__setattr__(self, "metadata", check_metadata(self.metadata, f"document {self.id!r}"))

    @property
    def full_text(self) -> str:
        """The "title text" string that BEIR's conventions encode."""
        return f"{self.title} {self.text}" if self.title else self.text

    @classmethod
    def from_mapping(cls, obj: Mapping[str, Any], where: str = "document") -> "Document":
        """From a record {"id" (or BEIR's "_id", or "doc_id"), "text", "title"?, "metadata"?}; ValueError naming
        ``where`` for a missing field, a text or title that is not a string, or bad metadata."""
        doc_id = obj.get("id", obj.get("_id", obj.get("doc_id")))
        if doc_id is None or "text" not in obj:
            raise ValueError(f"{where}: a document needs 'id' (or '_id') and 'text' fields, got {sorted(obj)}")
        text, title = obj["text"], obj.get("title") or ""
        if not isinstance(text, str) or not isinstance(title, str):
            raise ValueError(f"{where}: 'text' and 'title' must be strings")
        try:
            return cls(str(doc_id), text, title, obj.get("metadata"))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None


def as_document(obj: Any, where: str = "document") -> Document:
    """A Document as it is, or one made from a dict record (``Document.from_mapping``); TypeError for anything
    else, so that a wrong argument fails with its name rather than deep inside a write."""
    if isinstance(obj, Document):
        return obj
    if isinstance(obj, Mapping):
        return Document.from_mapping(obj, where)
    raise TypeError(f"{where} must be an lsr Document or a dict with 'id', 'text' and optional 'title' and "
                    f"'metadata', got {type(obj).__name__}")
