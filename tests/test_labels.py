import numpy as np

from feedback_ner.labels import (
    LABELS,
    NUM_LABELS,
    bio_labels,
    labels_to_spans,
    offsets_to_word_indices,
    split_words,
    to_predictionstring,
)


def test_label_scheme_has_15_labels_o_first():
    assert NUM_LABELS == 15 and LABELS[0] == "O"
    assert LABELS[1:3] == ("B-Lead", "I-Lead")


def test_split_words_matches_str_split_with_offsets():
    text = "  Hello,\tworld\r\n\nthis\u00a0is  it \x1c end"
    words, starts, ends = split_words(text)
    assert words == text.split()
    assert [text[s:e] for s, e in zip(starts, ends)] == words


def test_competition_rule_off_by_one_on_mid_word_start():
    text = "one two three four"
    # a start in the middle of "two" counts "tw" as a word before it, so the span starts at word 2
    assert offsets_to_word_indices(text, 6, 18) == [2, 3]
    assert offsets_to_word_indices(text, 4, 13) == [1, 2]
    assert to_predictionstring([1, 2]) == "1 2"


def test_bio_round_trip():
    spans = [("Lead", [0, 1, 2]), ("Claim", [3, 4]), ("Claim", [5]), ("Evidence", [7, 8])]
    labels = bio_labels(10, spans)
    assert labels_to_spans(labels) == spans
    assert np.count_nonzero(labels == 0) == 2


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from feedback_ner.labels import offsets_to_word_ranges, word_offsets  # noqa: E402

_TEXT = st.text(alphabet=st.sampled_from(list("ab é\n\r\t\u00a0\u3000\x1c.,")), max_size=60)


@given(_TEXT)
@settings(max_examples=300, deadline=None)
def test_word_offsets_agree_with_str_split(text):
    starts, ends = word_offsets(text)
    assert [text[a:b] for a, b in zip(starts, ends)] == text.split()


@given(_TEXT, st.data())
@settings(max_examples=300, deadline=None)
def test_vectorised_word_ranges_follow_the_competition_rule(text, data):
    if not text:
        return
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    ws, we = word_offsets(text)
    w0, w1 = offsets_to_word_ranges(ws, we, [start], [end])
    assert list(range(int(w0[0]), int(w1[0]))) == offsets_to_word_indices(text, start, end)


from feedback_ner.labels import CLASSES, bio_labels_many, word_offsets_many  # noqa: E402


@given(st.lists(_TEXT, max_size=6), st.integers(1, 40))
@settings(max_examples=200, deadline=None)
def test_word_offsets_many_agree_with_one_text_at_a_time(texts, chunk_chars):
    starts, ends, n_words = word_offsets_many(texts, chunk_chars=chunk_chars)
    one = [word_offsets(t) for t in texts]
    assert n_words.tolist() == [len(s) for s, _ in one]
    assert starts.tolist() == [int(x) for s, _ in one for x in s]
    assert ends.tolist() == [int(x) for _, e in one for x in e]


_SPANS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 6), st.lists(st.integers(-2, 13), max_size=6)),
                  max_size=6)


@given(st.lists(st.integers(0, 12), min_size=1, max_size=3), _SPANS)
@settings(max_examples=300, deadline=None)
def test_bio_labels_many_agree_with_one_essay_at_a_time(n_words, spans):
    """Overlaps (the later span wins), repeated and out-of-range indices, spans in any order, empty essays."""
    spans = [(essay % len(n_words), cls, idx) for essay, cls, idx in spans]
    flat = np.array([i for _, _, idx in spans for i in idx], dtype=np.int64)
    got = bio_labels_many(np.array(n_words), np.array([e for e, _, _ in spans], dtype=np.int64),
                          np.array([c for _, c, _ in spans], dtype=np.int64), flat,
                          np.array([len(idx) for _, _, idx in spans], dtype=np.int64))
    expected = [bio_labels(n, [(CLASSES[c], idx) for e, c, idx in spans if e == essay]) for essay, n in
                enumerate(n_words)]
    assert got.tolist() == [int(x) for labels in expected for x in labels]


from feedback_ner.labels import group_starts, segment_min  # noqa: E402


@given(st.lists(st.lists(st.integers(-50, 50), max_size=5), max_size=8))
@settings(max_examples=200, deadline=None)
def test_group_starts_and_segment_min_agree_with_python(runs):
    sizes = np.array([len(r) for r in runs], dtype=np.int64)
    values = np.array([v for r in runs for v in r], dtype=np.int64)
    assert group_starts(sizes).tolist() == [sum(len(r) for r in runs[:i]) for i in range(len(runs))]
    assert segment_min(values, sizes).tolist() == [min(r) if r else np.iinfo(np.int64).max for r in runs]
