import random

import pytest

from bench.passages import PassageBounds, passages, sentences
from bench.textsources import gutenberg_body, gutenberg_paragraphs, is_heading, wikipedia_paragraphs


def _sentence(rng: random.Random, words: int) -> str:
    body = " ".join(rng.choice(["river", "stone", "light", "tower", "garden", "winter", "music", "letter"])
                    for _ in range(words))
    return body[0].upper() + body[1:] + "."


def _paragraph(rng: random.Random, words: int) -> str:
    out, left = [], words
    while left > 0:
        n = min(left, rng.randint(3, 30))
        out.append(_sentence(rng, n))
        left -= n
    return " ".join(out)


def test_sentences_split_at_ends_but_not_at_titles_or_initials():
    text = 'Mr. Woodhouse spoke to J. M. Barrie. "Is it?" she asked. Yes! 1799 came. The end'
    assert sentences(text) == ["Mr. Woodhouse spoke to J. M. Barrie.", '"Is it?" she asked.', "Yes!", "1799 came.",
                               "The end"]


@pytest.mark.parametrize("seed", range(5))
def test_passages_are_in_bounds_contiguous_and_in_order(seed):
    rng = random.Random(seed)
    paragraphs = [_paragraph(rng, rng.choice([2, 7, 40, 120, 199, 260, 700])) for _ in range(60)]
    paragraphs.append(" ".join(["unbroken"] * 450))   # one sentence longer than max_words
    doc = " ".join(paragraphs)
    out = list(passages(paragraphs))
    assert out
    pos = 0
    for p in out:
        assert 50 <= len(p.split()) <= 200
        at = doc.find(p, pos)
        assert at >= pos, "a passage is a run of the document's text, after the previous one"
        pos = at + len(p)
    kept = sum(len(p.split()) for p in out)
    assert kept > 0.95 * len(doc.split())


def test_paragraphs_within_bounds_lose_nothing_and_short_ones_pack():
    rng = random.Random(7)
    paragraphs = [_paragraph(rng, rng.randint(50, 200)) for _ in range(20)] + [_paragraph(rng, 10) for _ in range(20)]
    out = list(passages(paragraphs))
    assert " ".join(out).split() == " ".join(paragraphs).split()


def test_a_short_document_or_tail_is_dropped_and_bounds_are_checked():
    assert list(passages(["Too short to be a passage."])) == []
    # a short run before a sentence that cannot join it goes; a sentence over max_words is cut at words
    assert list(passages(["Tiny bit.", "Alpha beta gamma delta epsilon zeta eta. Theta iota kappa lambda mu."],
                         PassageBounds(5, 8))) == ["Alpha beta gamma delta epsilon zeta eta.", "Theta iota kappa lambda mu."]
    assert list(passages(["One two three four five six."], PassageBounds(3, 4))) == ["One two three", "four five six."]
    with pytest.raises(ValueError, match="min_words <= max_words"):
        PassageBounds(100, 50)


def test_headings_are_short_lines_that_do_not_end_like_a_sentence():
    assert is_heading("CHAPTER IV") and is_heading("Early life") and is_heading("VOLUME I.")
    assert not is_heading("He left.") and not is_heading('"Yes," said she, "I will."')


def test_gutenberg_keeps_the_text_between_the_markers():
    text = ("The Project Gutenberg EBook of X\n\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n\nProduced by A. "
            "Volunteer\n\nCHAPTER I\n\nThe _first_ line\nwraps here.[1]\n\n[Illustration: a cat]\n\nEnd of the Project "
            "Gutenberg EBook of X\n\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\n\nlicence text")
    assert gutenberg_paragraphs(gutenberg_body(text)) == ["The first line wraps here."]
    old = "header\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN*END*\n\nOld text here.\n\nEnd of Project Gutenberg Etext\nx"
    assert gutenberg_paragraphs(gutenberg_body(old)) == ["Old text here."]
    assert gutenberg_body("no markers at all") is None


def test_wikipedia_drops_tables_lists_images_citations_and_references():
    text = "\n\n".join([
        "The ROSETTA STONE is a _stele_ found in 1799.[1][a] See [[Egypt|the Nile]].",
        "History",
        "+-----+-----+\n| a   | b   |\n+=====+=====+",
        "-   a list item",
        "  Name    Year\n  ------  ----\n  A       1",
        "caption of an image.]] It was moved to London.[2]",
        "File:Stone.jpg|a gallery caption",
        "    code block",
        "References",
        "[1] A source, p. 3.",
    ])
    assert wikipedia_paragraphs(text) == ["The ROSETTA STONE is a stele found in 1799. See the Nile.",
                                          "It was moved to London."]
