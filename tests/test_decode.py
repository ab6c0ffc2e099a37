import logging

import numpy as np
import pytest
from oracles import Span, decode_spans

from feedback_ner.decode import WordProbAccumulator, span_bounds
from feedback_ner.labels import B_IDS, CLASSES, I_IDS, LABEL2ID, NUM_LABELS, O_ID, labels_to_spans
from feedback_ner.postprocess import candidate_spans


def probs_of(rng: np.random.Generator, n: int) -> np.ndarray:
    p = rng.random((n, NUM_LABELS)).astype(np.float32)
    return p / p.sum(axis=1, keepdims=True)


def test_overlapping_windows_are_averaged():
    rng = np.random.default_rng(0)
    a, b = probs_of(rng, 6), probs_of(rng, 6)
    acc = WordProbAccumulator([5])
    # window 1: [CLS] w0 w1 w2 w3 [SEP]; window 2: [CLS] w2 w3 w4 [SEP] [PAD]
    acc.add(np.array([0]), np.array([[-1, 0, 1, 2, 3, -1]]), a[None])
    acc.add(np.array([0]), np.array([[-1, 2, 3, 4, -1, -1]]), b[None])
    out = acc.result(["e"])["e"]
    assert out.dtype == np.float32 and out.shape == (5, NUM_LABELS)
    np.testing.assert_allclose(out[0], a[1], rtol=1e-6)
    np.testing.assert_allclose(out[1], a[2], rtol=1e-6)
    np.testing.assert_allclose(out[2], (a[3] + b[1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(out[3], (a[4] + b[2]) / 2, rtol=1e-6)
    np.testing.assert_allclose(out[4], b[3], rtol=1e-6)
    assert acc.n_uncovered == 0


def test_first_vs_mean_subtoken_rule():
    rng = np.random.default_rng(1)
    a, b = probs_of(rng, 7), probs_of(rng, 4)
    # word 1 is three sub-tokens in window 1 and one token in window 2
    windows = [
        (np.array([[-1, 0, 1, 1, 1, 2, -1]]), a[None]),
        (np.array([[-1, 1, 2, -1]]), b[None]),
    ]
    results = {}
    for rule in ("first", "mean"):
        acc = WordProbAccumulator([3], subtoken=rule)
        for word_ids, p in windows:
            acc.add(np.array([0]), word_ids, p)
        results[rule] = acc.result(["e"])["e"]
    np.testing.assert_allclose(results["first"][1], (a[2] + b[1]) / 2, rtol=1e-6)
    # the mean rule averages within the window first, so each window weighs the same
    np.testing.assert_allclose(results["mean"][1], (a[2:5].mean(axis=0) + b[1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(results["first"][0], a[1], rtol=1e-6)
    np.testing.assert_allclose(results["mean"][2], (a[5] + b[2]) / 2, rtol=1e-6)


def make_windows(n_words: list[int], window: int, step: int, seed: int):
    """Token windows like a sliding tokenizer makes: each word 1-2 tokens, [CLS]/[SEP] as -1."""
    rng = np.random.default_rng(seed)
    rows = []
    for e, n in enumerate(n_words):
        tokens = np.repeat(np.arange(n), rng.integers(1, 3, size=n))
        start = 0
        while True:
            piece = tokens[start : start + window]
            rows.append((e, np.concatenate([[-1], piece, [-1]]), probs_of(rng, len(piece) + 2)))
            if start + window >= len(tokens):
                break
            start += step
    return rows


def feed(acc: WordProbAccumulator, rows, batch: int) -> None:
    for i in range(0, len(rows), batch):
        chunk = rows[i : i + batch]
        width = max(len(w) for _, w, _ in chunk) + 3  # padding too
        word_ids = np.full((len(chunk), width), -1)
        probs = np.zeros((len(chunk), width, NUM_LABELS), dtype=np.float32)
        for r, (_, w, p) in enumerate(chunk):
            word_ids[r, : len(w)] = w
            probs[r, : len(w)] = p
        acc.add(np.array([e for e, _, _ in chunk]), word_ids, probs)


@pytest.mark.parametrize("rule", ["first", "mean"])
def test_batch_split_and_order_independence(rule):
    n_words = [30, 7, 55, 12]
    rows = make_windows(n_words, window=16, step=10, seed=2)
    ids = ["a", "b", "c", "d"]
    results = []
    for batch, order in ((len(rows), None), (1, None), (3, None), (4, np.random.default_rng(3).permutation(len(rows)))):
        acc = WordProbAccumulator(n_words, subtoken=rule)
        feed(acc, rows if order is None else [rows[i] for i in order], batch)
        results.append(acc.result(ids))
        assert acc.n_uncovered == 0
    for other in results[1:]:
        assert list(other) == ids
        for k in ids:
            np.testing.assert_allclose(other[k], results[0][k], rtol=1e-5, atol=1e-7)
    # essay order: the same windows with the essays numbered differently give the same probabilities per id
    perm = [2, 0, 3, 1]  # new row of old essay e is perm[e]
    renumbered = [(perm[e], w, p) for e, w, p in rows]
    acc = WordProbAccumulator([n_words[perm.index(i)] for i in range(4)], subtoken=rule)
    feed(acc, renumbered, 5)
    got = acc.result([ids[perm.index(i)] for i in range(4)])
    for k in ids:
        np.testing.assert_allclose(got[k], results[0][k], rtol=1e-5, atol=1e-7)
    for v in results[0].values():
        np.testing.assert_allclose(v.sum(axis=1), 1.0, rtol=1e-5)


def test_uncovered_words_continue_the_word_before_them(caplog):
    """A word no token covers (the tokenizer drops all its characters: a lone zero-width or control character)
    continues the span of the word before it instead of cutting the span in two; O at an essay's start."""
    rng = np.random.default_rng(4)
    acc = WordProbAccumulator([4, 2])
    acc.add(np.array([0]), np.array([[-1, 0, 1, -1]]), probs_of(rng, 4)[None])
    with caplog.at_level(logging.INFO, logger="feedback_ner.decode"):  # the windows warn; this says it per model
        out = acc.result(["x", "y"])
    assert acc.n_uncovered == 4
    assert "4 words in 2 essays" in caplog.text and "continues the word before it" in caplog.text
    one_hot_o = np.eye(NUM_LABELS, dtype=np.float32)[O_ID]
    for row in (out["y"][0], out["y"][1]):  # nothing before them in their essay
        np.testing.assert_array_equal(row, one_hot_o)
    before = out["x"][1]
    for row in (out["x"][2], out["x"][3]):
        for c in CLASSES:
            assert row[B_IDS[c]] == 0.0
            np.testing.assert_allclose(row[I_IDS[c]], before[I_IDS[c]] + before[B_IDS[c]], rtol=1e-6)
        assert row[O_ID] == before[O_ID]
        np.testing.assert_allclose(row.sum(), 1.0, rtol=1e-5)

    acc = WordProbAccumulator([3])  # B-Claim, <uncovered>, I-Claim: one span of three words, not two
    claim = np.eye(NUM_LABELS, dtype=np.float32)[[B_IDS["Claim"], I_IDS["Claim"]]]
    acc.add(np.array([0]), np.array([[0, 2]]), claim[None])
    labels = acc.result(["z"])["z"].argmax(axis=1)
    assert [int(n) for n in span_bounds(labels)[1] - span_bounds(labels)[0]] == [3]


def test_accumulator_rejects_windows_that_do_not_fit_the_table():
    acc = WordProbAccumulator([3])
    probs = np.full((1, 4, NUM_LABELS), 1 / NUM_LABELS, dtype=np.float32)
    with pytest.raises(ValueError, match="past the end of essay 0"):
        acc.add(np.array([0]), np.array([[-1, 1, 3, -1]]), probs)
    with pytest.raises(ValueError, match="essay_index 1 is out of range"):
        acc.add(np.array([1]), np.array([[-1, 0, 1, -1]]), probs)
    with pytest.raises(ValueError, match="15 labels, expected 3"):
        WordProbAccumulator([3], num_labels=3).add(np.array([0]), np.array([[0, 1, 2, -1]]), probs)
    with pytest.raises(ValueError, match="sub-token rule"):
        WordProbAccumulator([3], subtoken="last")
    with pytest.raises(ValueError, match="got 2 ids for 1 essays"):
        acc.result(["a", "b"])


def library_spans(word_probs: np.ndarray) -> list[Span]:
    """The library decoder (``candidate_spans``) on one essay, as oracle spans."""
    c = candidate_spans({"e": word_probs})
    return [Span(*row) for row in zip(c["class"], c["start"].tolist(), c["end"].tolist(), c["score"].tolist())]


def test_decode_matches_labels_to_spans_on_hard_labels():
    """The decoder (issue 17: ``postprocess.candidate_spans``, the one that runs) against ``labels_to_spans`` and
    the word-by-word oracle."""
    rng = np.random.default_rng(5)
    eye = np.eye(NUM_LABELS, dtype=np.float32)
    for _ in range(300):
        n = int(rng.integers(1, 40))
        # runs of labels so that spans of several words, jumps to I-X and B-X after X all occur
        labels = np.repeat(rng.integers(0, NUM_LABELS, size=n), rng.integers(1, 5, size=n))[:n]
        expected = [(cls, idx[0], idx[-1] + 1) for cls, idx in labels_to_spans(labels)]
        got = library_spans(eye[labels])
        assert [(s.cls, s.start, s.end) for s in got] == expected
        assert got == decode_spans(eye[labels])
        assert all(s.score == pytest.approx(1.0) for s in got)


def test_decode_scores_and_i_jump():
    p = np.full((6, NUM_LABELS), 0.0, dtype=np.float32)
    p[:, O_ID] = 1.0
    p[1] = 0
    p[1, LABEL2ID["I-Claim"]] = 0.6  # a jump to I-Claim starts a span
    p[1, O_ID] = 0.4
    p[2] = 0
    p[2, LABEL2ID["I-Claim"]] = 0.8
    p[2, O_ID] = 0.2
    p[3] = 0
    p[3, LABEL2ID["B-Claim"]] = 0.9  # B-Claim right after a Claim starts another
    p[3, O_ID] = 0.1
    for decode in (library_spans, decode_spans):
        spans = decode(p)
        assert spans == [Span("Claim", 1, 3, pytest.approx(0.7)), Span("Claim", 3, 4, pytest.approx(0.9))]
        assert spans[0].predictionstring == "1 2" and spans[0].n_words == 2
        assert decode(np.zeros((0, NUM_LABELS), dtype=np.float32)) == []


def test_span_bounds_never_cross_essays():
    # essay 1 = [I-Lead I-Lead], essay 2 = [I-Lead]: the same class across the boundary is two spans
    labels = np.array([LABEL2ID["I-Lead"]] * 3)
    starts, ends = span_bounds(labels, np.array([0, 2, 3]))
    assert starts.tolist() == [0, 2] and ends.tolist() == [2, 3]


@pytest.mark.parametrize("rule", ["first", "mean"])
def test_result_in_place_gives_the_same_probabilities_and_spends_the_accumulator(rule):
    """Issue 16: ``result(release=True)`` divides in the accumulator's buffer (no second word-sized array); the
    values are bit for bit those of ``result()``, uncovered words included, and the accumulator takes no more."""
    n_words = [7, 0, 40_000, 3]
    ids = ["a", "b", "c", "d"]
    accs = [WordProbAccumulator(n_words, subtoken=rule) for _ in range(2)]
    rows = make_windows(n_words, 64, 48, seed=7)
    for acc in accs:
        feed(acc, rows[: len(rows) - 2], 8)  # the last windows left out: some words uncovered
    copy, in_place = accs[0].result(ids), accs[1].result(ids, release=True)
    assert accs[0].n_uncovered == accs[1].n_uncovered > 0
    for k in ids:
        assert in_place[k].dtype == np.float32
        np.testing.assert_array_equal(in_place[k], copy[k])
    with pytest.raises(RuntimeError, match="released"):
        feed(accs[1], rows[:1], 1)
    with pytest.raises(RuntimeError, match="released"):
        accs[1].result(ids)
