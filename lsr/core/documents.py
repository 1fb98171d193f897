"""A document as every layer sees it: an external id, its text and an optional title."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        """The "title text" string that BEIR's conventions encode."""
        return f"{self.title} {self.text}" if self.title else self.text

    @classmethod
    def from_mapping(cls, obj: Mapping[str, Any], where: str = "document") -> "Document":
        """From a record {"id" (or BEIR's "_id", or "doc_id"), "text", "title"?}; ValueError naming ``where`` for a
        missing field or a text or title that is not a string."""
        doc_id = obj.get("id", obj.get("_id", obj.get("doc_id")))
        if doc_id is None or "text" not in obj:
            raise ValueError(f"{where}: a document needs 'id' (or '_id') and 'text' fields, got {sorted(obj)}")
        text, title = obj["text"], obj.get("title") or ""
        if not isinstance(text, str) or not isinstance(title, str):
            raise ValueError(f"{where}: 'text' and 'title' must be strings")
        return cls(str(doc_id), text, title)


def as_document(obj: Any, where: str = "document") -> Document:
    """A Document as it is, or one made from a dict record (``Document.from_mapping``); TypeError for anything
    else, so that a wrong argument fails with its name rather than deep inside a write."""
    if isinstance(obj, Document):
        return obj
    if isinstance(obj, Mapping):
        return Document.from_mapping(obj, where)
    raise TypeError(f"{where} must be an lsr Document or a dict with 'id', 'text' and optional 'title', "
                    f"got {type(obj).__name__}")
