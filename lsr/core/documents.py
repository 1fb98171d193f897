"""A document as every layer sees it: an external id, its text and an optional title."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        """The "title text" string that BEIR's conventions encode."""
        return f"{self.title} {self.text}" if self.title else self.text
