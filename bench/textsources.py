"""Plain paragraphs out of two public text collections: Project Gutenberg books and Wikipedia articles as markdown.

Gutenberg (one ``Author/Title.txt`` per book): only the text between the ``*** START OF ... ***`` and
``*** END OF ... ***`` lines is kept (older files open their text after ``*END*THE SMALL PRINT!...`` and close it
with ``End of (the) Project Gutenberg ...``; those markers count too); a book with no start marker is skipped.
Inside, paragraphs are blocks between blank lines; producer credits and paragraphs naming Project Gutenberg go.

Wikipedia (``Page/NAME.md``, pandoc's conversion of each article; ``Abstract/NAME.md`` is the first line of the page
of the same name, so an abstract is read only where its page is absent): the article ends at its first reference
section (References, Notes, See also, ...); tables (grid and simple), templates, math blocks, lists, code blocks and
footnote definitions are dropped, image captions cut off, citation marks (``[12]``, ``[a]``), links and emphasis
removed.

Both: whitespace is normalised and headings go (a block of fewer than ``HEADING_WORDS`` words that does not end like
a sentence, or one without a lower-case letter: "CHAPTER IV", "Early life").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

HEADING_WORDS = 10


@dataclass(frozen=True)
class SourceDocument:
    id: str                 # stable, whitespace-free: "gutenberg:Austen,_Jane/Emma", "wikipedia:Rosetta_Stone"
    title: str
    paragraphs: list[str]   # whitespace-normalised, non-empty


def read_text(path: Path) -> str:
    """A text file as str: UTF-8 when it decodes, else Windows-1252 (older Gutenberg files), newlines as \\n."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _normalise(text: str) -> str:
    return " ".join(text.split())


_SENTENCE_TAIL = re.compile(r"[.!?:;…\"'”’)\]]$")


def is_heading(paragraph: str) -> bool:
    """A title line rather than prose: no lower-case letter, or short and not ending like a sentence."""
    if paragraph == paragraph.upper():
        return True
    return not _SENTENCE_TAIL.search(paragraph) and len(paragraph.split(maxsplit=HEADING_WORDS)) < HEADING_WORDS


def _blocks(text: str) -> list[str]:
    return [b for b in re.split(r"\n[ \t]*\n", text) if b.strip()]


# ---- Gutenberg ----------------------------------------------------------------------------------------------------
_G_START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG.*$|^\*END\*THE SMALL PRINT.*$", re.MULTILINE)
_G_END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG|"
                    r"^[ \t]*(?:End|END) of (?:[Tt]he |[Tt]his |THE |THIS )?(?:Project Gutenberg|PROJECT GUTENBERG|Etext)",
                    re.MULTILINE)
_G_CREDITS = ("produced by", "etext prepared by", "e-text prepared by", "transcriber")
_G_INLINE = re.compile(r"\[(Illustration|Footnote)[^\]]*\]|\[\d+\]")
_EMPHASIS = re.compile(r"(?<![\w*])[_*]{1,2}(?=\S)(.+?)(?<=\S)[_*]{1,2}(?![\w*])")


def _emphasis(text: str) -> str:
    """_italic_ and **bold** as plain words."""
    return _EMPHASIS.sub(r"\1", text) if "_" in text or "*" in text else text


def gutenberg_body(text: str) -> str | None:
    """The book between its start and end markers, None when it has no start marker."""
    start = _G_START.search(text)
    if not start:
        return None
    end = _G_END.search(text, start.end())
    return text[start.end():end.start() if end else len(text)]


def gutenberg_paragraphs(body: str) -> list[str]:
    out = []
    for block in _blocks(body):
        p = _normalise(_emphasis(_G_INLINE.sub(" ", block) if "[" in block else block))
        low = p.lower()
        if p and not low.startswith(_G_CREDITS) and "gutenberg" not in low and not is_heading(p):
            out.append(p)
    return out


def gutenberg_books(folder: Path) -> list[Path]:
    """Every ``.txt`` under ``folder`` (``Author/Title.txt``), in a stable order."""
    return sorted(folder.rglob("*.txt"), key=lambda p: p.relative_to(folder).as_posix())


def gutenberg_document(folder: Path, path: Path) -> SourceDocument | None:
    """A book's paragraphs, None when it has no start marker."""
    body = gutenberg_body(read_text(path))
    if body is None:
        return None
    rel = path.relative_to(folder).with_suffix("")
    author = rel.parent.as_posix() if rel.parent != Path(".") else ""
    title = f"{rel.name} ({author})" if author else rel.name
    return SourceDocument("gutenberg:" + "_".join(rel.as_posix().split()), title, gutenberg_paragraphs(body))


# ---- Wikipedia ----------------------------------------------------------------------------------------------------
_W_STOP = re.compile(r"^(References|Notes|See also|External links|Further reading|Bibliography|Sources|Footnotes|"
                     r"Citations|Notes and references|References and notes|Works cited)\s*$",
                     re.IGNORECASE | re.MULTILINE)
# a block is dropped when a line starts like a table, template, math, list, footnote definition or code
_W_DROP_LINE = re.compile(r"^(Category:|\||\+[-=:]|\{\{|\}\}|\{\||!|\[TABLE\]|\$\$|\\begin|[-*+−•]\s|\d+[.)]\s|\[\d+\]|:+\S|"
                          r" {4}|\t)|^[\s\-=:+]*-{3,}[\s\-=:+]*$")
_W_CITATION = re.compile(r"\[(\d+|[a-z]|[a-z]? ?\d+|nb \d+|note \d+|[^\]\[]{0,40} needed|sic)\]", re.IGNORECASE)
_W_INLINE = re.compile(r"\{\{[^{}]*\}\}|https?://\S+|<[^>]{1,200}>")
_W_LINK = re.compile(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]|\[([^\]]+)\]\([^)]*\)")
_W_IMAGE = re.compile(r"^(File|Image):.*|\S+\.(jpe?g|png|svg|gif|tiff?)\b", re.IGNORECASE)


def _wiki_line(line: str) -> str:
    """A line with links as their text and images cut off: what follows a caption's dangling ``]]`` stays, what
    follows a dangling ``[[File:...`` goes, so do gallery lines (``File:...``) and image file names."""
    line = _W_LINK.sub(lambda m: m.group(1) or m.group(2) or "", line)
    return _W_IMAGE.sub(" ", line.rsplit("]]", 1)[-1].split("[[", 1)[0])


def wikipedia_paragraphs(text: str) -> list[str]:
    stop = _W_STOP.search(text)
    out = []
    for block in _blocks(text[:stop.start()] if stop else text):
        lines = block.split("\n")
        if any(_W_DROP_LINE.match(line) for line in lines):
            continue
        p = " ".join(_wiki_line(line) for line in lines)
        p = _normalise(_emphasis(_W_CITATION.sub("", _W_INLINE.sub(" ", p))))
        if p and not is_heading(p):
            out.append(p)
    return out


def wikipedia_articles(folder: Path) -> list[Path]:
    """``Page/*.md``, then each ``Abstract/*.md`` whose page is absent, in a stable order."""
    pages = sorted((folder / "Page").glob("*.md"), key=lambda p: p.name)
    have = {p.name for p in pages}
    abstracts = sorted((p for p in (folder / "Abstract").glob("*.md") if p.name not in have), key=lambda p: p.name)
    return pages + abstracts


def wikipedia_document(path: Path) -> SourceDocument:
    name = "_".join(path.stem.split())
    return SourceDocument(f"wikipedia:{name}", name.replace("_", " "), wikipedia_paragraphs(read_text(path)))


def documents(gutenberg: Path | None, wikipedia: Path | None) -> Iterator[tuple[str, Path]]:
    """(source, file) of every input document, Gutenberg first, each in its stable order."""
    for path in gutenberg_books(gutenberg) if gutenberg else ():
        yield "gutenberg", path
    for path in wikipedia_articles(wikipedia) if wikipedia else ():
        yield "wikipedia", path
