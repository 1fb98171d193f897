"""A word-level English analyzer shaped like Lucene's (and so Anserini's) default one, for the BM25 baseline.

Published BM25 figures for BEIR (Anserini "flat") come from Lucene's StandardTokenizer, English possessive removal,
lowercasing, the 33 Lucene English stopwords and the Porter stemmer. Matching those steps is what lets our BM25
reproduce them, so each step is here and named; ``Analyzer.config`` records them in the BM25 model's fingerprint.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cached_property

# org.apache.lucene.analysis.en.EnglishAnalyzer.ENGLISH_STOP_WORDS_SET
LUCENE_STOPWORDS = frozenset("""a an and are as at be but by for if in into is it no not of on or such that the their
then there these they this to was will with""".split())

# A word is a run of letters/digits (Unicode \w), joined across one inner punctuation mark the way Unicode word
# segmentation (UAX #29, which StandardTokenizer implements) joins them: "don't", "e.g", "U.S.A" (letter-mark-letter),
# "3.5", "1,000" (digit-mark-digit). Hyphens, slashes and everything else split.
_LETTER = r"[^\W\d_]"
_TOKEN = re.compile(rf"\w+(?:(?:(?<={_LETTER})[.'’:](?={_LETTER})|(?<=\d)[.,;'’](?=\d))\w+)*")
_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)


@dataclass(frozen=True)
class Analyzer:
    """Text -> list of index terms. ``stemmer`` is a PyStemmer algorithm ("porter" as Lucene, "english" = Snowball)
    or "none"; ``stopwords`` is "lucene" or "none"."""

    stemmer: str = "porter"
    stopwords: str = "lucene"
    lowercase: bool = True

    def __post_init__(self) -> None:
        if self.stopwords not in ("lucene", "none"):
            raise ValueError(f"stopwords must be 'lucene' or 'none', got {self.stopwords!r}")
        if self.stemmer != "none":
            import Stemmer

            if self.stemmer not in Stemmer.algorithms():
                raise ValueError(f"unknown stemmer {self.stemmer!r}; PyStemmer has {Stemmer.algorithms()} or 'none'")

    @property
    def config(self) -> dict:
        return asdict(self)

    @cached_property
    def _stem(self):
        if self.stemmer == "none":
            return None
        import Stemmer

        return Stemmer.Stemmer(self.stemmer, 100_000).stemWords

    def __call__(self, text: str) -> list[str]:
        tokens = [_POSSESSIVE.sub("", t) for t in _TOKEN.findall(text)]
        if self.lowercase:
            tokens = [t.lower() for t in tokens]
        if self.stopwords == "lucene":
            tokens = [t for t in tokens if t not in LUCENE_STOPWORDS]
        tokens = [t for t in tokens if t]
        if self._stem is None:
            return tokens
        # Porter's reference code (and Lucene's port) leaves words of one or two letters alone; Snowball strips "s"
        return [s if len(t) > 2 else t for t, s in zip(tokens, self._stem(tokens))]
