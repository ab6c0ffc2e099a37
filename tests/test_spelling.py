"""Spelling normalisation (issue 14): one-to-one per word, the word count and the whitespace never change."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("symspellpy")

from feedback_ner.spelling import SpellingNormalizer  # noqa: E402
from feedback_ner.texts import load_texts  # noqa: E402

AWKWARD = [
    "Students,becuase they   dont know.Technolgy is\n\nimportant!!",
    "In 2019 , 45% of studnets (about 1,200) used http://example.com/some_page?x=1 and e-mail: a.b@c.org",
    "Emoji 😀😀 are fun 👍🏽 ; naïve café résumé Schule Straße 東京 учеников",
    "Generic_Name said: \"PROPERTY_NAME is grate\" -- tabs\there\r\nand CRLF; McDonald's iPhone",
    "",
    "   ",
    "a",
    "odd\x1cseparators\x1fand\xa0no-break\u2028line\u3000ideographic\x85next studnets",
]


@pytest.fixture(scope="module")
def speller():
    return SpellingNormalizer()


def check(text: str, fixed: str) -> None:
    assert len(fixed.split()) == len(text.split())
    assert re.findall(r"\s+", fixed) == re.findall(r"\s+", text), "whitespace kept byte for byte"


@pytest.mark.parametrize("text", AWKWARD)
def test_awkward_texts_keep_their_words_and_whitespace(speller, text):
    fixed, stats = speller.normalize(text)
    check(text, fixed)
    assert stats.words == len(text.split())


def test_common_misspellings_are_corrected_one_to_one(speller):
    fixed, stats = speller.normalize("Studnets, becuase technolgy... Generic_Name 2019 dont")
    assert fixed == "Students, because technology... Generic_Name 2019 dont"
    assert stats.changed == 3 and stats.words == 6


def test_every_essay_of_the_sample_corpus_keeps_its_word_count(speller, corpus_dir):
    texts = load_texts(corpus_dir / "train")
    total = changed = 0
    for text in texts.values():
        fixed, stats = speller.normalize(text)
        check(text, fixed)
        total, changed = total + stats.words, changed + stats.changed
    assert total > 0 and changed / total < 0.2


def test_valid_forms_missing_from_the_dictionary_are_kept(speller):
    text = "Thats my neighbors traveling. The counselors wasnt there; whould poeple belive"
    fixed, stats = speller.normalize(text)
    assert fixed == "Thats my neighbors traveling. The counselors wasnt there; would people believe"
    assert stats.changed == 3
