"""Token ids and offsets: the byte-level path gives every token the word the tokenizer's own offsets give it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import pre_tokenizers
from transformers import AutoTokenizer

from feedback_ner.labels import word_offsets_many
from feedback_ner.tokens import Encoder, TokenArrays, TokenCache, byte_level_lengths, private_backend
from feedback_ner.windows import token_word_ids

# text that stresses the byte arithmetic: multi-byte letters, emoji, CJK, no-break and ideographic spaces (str.split
# whitespace, several bytes in UTF-8), tabs, CR, runs of spaces and newlines, special-token strings, empty texts
TRICKY = [
    "",
    "   ",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 \u201cquoted\u201d text.\n\nNext paragraph\u2019s start",
    "emoji \U0001f600\U0001f44d in words like x\U0001f600y, and \u4e2d\u6587 characters",
    "no\u00a0break\u00a0spaces and\u3000ideographic\u3000ones \u2028 line separator",
    "\ttabs\tand \r\n CRLF \r lone CR  double  spaces   \n\n\n",
    "<s> essays may hold </s> and <pad> or <mask> as text",
    " leading and trailing space ",
    "\u00c2\u00a0mojibake\u00c2 \u00e2\u0080\u0099 like real essays",
]


@pytest.fixture(scope="module")
def byte_level(tiny_models):
    return AutoTokenizer.from_pretrained(tiny_models("longformer"))


def word_ids(texts: list[str], tokens: TokenArrays) -> np.ndarray:
    """Each token's word (index into all words of ``texts``), every text on one character axis."""
    starts, ends, n_words = word_offsets_many(texts)
    base = np.zeros(len(texts), np.int64)
    np.cumsum([len(t) + 1 for t in texts[:-1]], out=base[1:])
    w_start, w_end = starts + np.repeat(base, n_words), ends + np.repeat(base, n_words)
    t_base = np.repeat(base, tokens.n_tokens)
    return token_word_ids(w_start, w_end, tokens.starts + t_base, tokens.ends + t_base)


def assert_same_words(tokenizer, texts: list[str]) -> None:
    fast, slow = Encoder(tokenizer), Encoder(tokenizer, byte_offsets=False)
    assert fast.byte_lengths is not None and slow.byte_lengths is None
    got, want = fast.encode(texts), slow.encode(texts)
    np.testing.assert_array_equal(got.n_tokens, want.n_tokens)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(word_ids(texts, got), word_ids(texts, want))
    assert (got.starts < got.ends).all()


def test_the_byte_level_path_is_taken_only_for_plain_byte_level_bpe(tiny_models, byte_level):
    assert byte_level_lengths(private_backend(byte_level)) is not None
    for arch in ("bert", "deberta-v2"):  # WordPiece and Unigram/Metaspace: the tokenizer's offsets
        assert byte_level_lengths(private_backend(AutoTokenizer.from_pretrained(tiny_models(arch)))) is None
    prefixed = private_backend(byte_level)
    prefixed.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    assert byte_level_lengths(prefixed) is None
    added = AutoTokenizer.from_pretrained(tiny_models("longformer"))
    added.add_tokens(["paragraph"])  # a non-special added token is matched in the text, whatever its bytes
    assert byte_level_lengths(private_backend(added)) is None


def test_byte_level_offsets_give_the_words_of_the_tokenizer_offsets(byte_level):
    assert_same_words(byte_level, TRICKY)
    for text in TRICKY:
        assert_same_words(byte_level, [text])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="ab \n\r\t\u00a0\u3000\u00e9\U0001f600\u4e2d.,'\u201c", max_size=60), max_size=6))
def test_byte_level_offsets_property(byte_level, texts):
    assert_same_words(byte_level, texts)


def test_a_batch_whose_bytes_do_not_add_up_gets_the_tokenizer_offsets(byte_level):
    encoder, reference = Encoder(byte_level), Encoder(byte_level, byte_offsets=False)
    texts = TRICKY[2:5]
    ids = encoder.encode(texts).ids
    encoder.byte_lengths = encoder.byte_lengths.copy()
    encoder.byte_lengths[ids[0]] += 1  # a wrong byte count for one token of the batch
    got, want = encoder.encode(texts), reference.encode(texts)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_split_and_concat_are_inverses(byte_level):
    tokens = Encoder(byte_level).encode(TRICKY)
    per_text = tokens.split()
    assert len(per_text) == len(TRICKY) and [len(ids) for ids, _, _ in per_text] == tokens.n_tokens.tolist()
    for a, b in zip(TokenArrays.concat(per_text), tokens):
        np.testing.assert_array_equal(a, b)
    empty = Encoder(byte_level).encode([])
    assert empty.split() == [] and len(TokenArrays.concat([]).ids) == 0


def test_token_cache_gives_what_the_encoder_gives(byte_level):
    texts = TRICKY + ["one more essay", TRICKY[2]]
    want = Encoder(byte_level).encode(texts)
    with TokenCache(byte_level, chunk_size=3) as cache:
        cache.prefetch(texts[:6])
        got = cache.arrays(texts)  # some prefetched, some encoded on the spot, one text twice
        assert len(cache) == len(set(texts))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
