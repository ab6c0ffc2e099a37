import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from oracles import Span, decode_spans, postprocess

from feedback_ner.decode import span_bounds
from feedback_ner.labels import (
    CLASSES,
    I_IDS,
    LABEL2ID,
    NUM_LABELS,
    O_ID,
    bio_labels,
    parse_predictionstring,
    split_words,
)
from feedback_ner.postprocess import (
    DEFAULT_MIN_WORDS,
    PostprocessConfig,
    candidate_spans,
    filter_spans,
    kept_spans,
    predictionstrings,
    submission_from_probs,
)
from feedback_ner.probs import ProbsFileError, load_meta, load_word_probs, save_word_probs


def word_probs(labels: list[str], conf: list[float] | float = 0.9) -> np.ndarray:
    """Probabilities whose argmax is ``labels`` (names), with max probability ``conf`` per word."""
    conf = np.broadcast_to(np.asarray(conf, dtype=np.float64), (len(labels),))
    p = np.empty((len(labels), NUM_LABELS), dtype=np.float32)
    for i, (lab, c) in enumerate(zip(labels, conf, strict=True)):
        p[i] = (1 - c) / (NUM_LABELS - 1)
        p[i, LABEL2ID[lab]] = c
    return p


def spans_of(sub: pd.DataFrame) -> set[tuple[str, str, str]]:
    return set(zip(sub["id"], sub["class"], sub["predictionstring"], strict=True))


@pytest.fixture(scope="module")
def one_hot_corpus(corpus_dir: Path):
    """Ground truth of the sample corpus and one-hot word probabilities built from its predictionstrings."""
    gt = pd.read_csv(corpus_dir / "train.csv")
    probs = {}
    eye = np.eye(NUM_LABELS, dtype=np.float32)
    for essay_id, rows in gt.groupby("id", sort=False):
        text = (corpus_dir / "train" / f"{essay_id}.txt").read_text(encoding="utf-8")
        words, _, _ = split_words(text)
        spans = [(c, parse_predictionstring(ps)) for c, ps in zip(rows["discourse_type"], rows["predictionstring"])]
        probs[essay_id] = eye[bio_labels(len(words), spans)]
    return gt, probs


def test_one_hot_ground_truth_decodes_to_train_csv(one_hot_corpus):
    gt, probs = one_hot_corpus
    expected = set(zip(gt["id"], gt["discourse_type"], gt["predictionstring"], strict=True))
    assert len(expected) == len(gt) > 500
    decoded = {(k, s.cls, s.predictionstring) for k, p in probs.items() for s in decode_spans(p)}
    assert decoded == expected
    zeros = PostprocessConfig.zeros()
    kept = {(k, s.cls, s.predictionstring) for k, p in probs.items() for s in postprocess(decode_spans(p), zeros, p)}
    assert kept == expected
    sub = submission_from_probs(probs, zeros)
    assert list(sub.columns) == ["id", "class", "predictionstring"]
    assert len(sub) == len(gt) and spans_of(sub) == expected

    from feedback_ner import metric

    assert metric.score(sub, gt).f1 == 1.0
    # the tuning path: spans as arrays, no predictionstrings built
    spans = filter_spans(candidate_spans(probs), zeros, with_predictionstring=False)
    assert "predictionstring" not in spans.columns
    table = metric.SpanTable.from_arrays(spans["id"], spans["class"], spans["start"], spans["end"])
    assert metric.score(table, gt).f1 == 1.0


def test_default_config_on_one_hot_drops_only_short_spans(one_hot_corpus):
    gt, probs = one_hot_corpus
    sub = submission_from_probs(probs)  # the FACTS.md defaults; one-hot scores 1.0 pass every threshold
    n_words = gt["predictionstring"].str.split().str.len()
    long_enough = gt[n_words >= gt["discourse_type"].map(DEFAULT_MIN_WORDS)]
    assert len(long_enough) < len(gt)
    assert spans_of(sub) == set(zip(long_enough["id"], long_enough["discourse_type"], long_enough["predictionstring"]))


def noisy_probs(seed: int, n_essays: int = 40) -> dict[str, np.ndarray]:
    """Essays whose argmax has all the patterns the rules look at (O gaps, I-X jumps, B-X after X)."""
    rng = np.random.default_rng(seed)
    out = {}
    for e in range(n_essays):
        n = int(rng.integers(0, 120))
        labels = np.repeat(rng.integers(0, NUM_LABELS, size=n), rng.integers(1, 16, size=n))[:n]
        labels[rng.random(n) < 0.15] = O_ID
        p = rng.random((n, NUM_LABELS)).astype(np.float32) * 0.03
        p[np.arange(n), labels] += rng.uniform(0.2, 1.0, size=n).astype(np.float32)
        out[f"essay{e}"] = p / p.sum(axis=1, keepdims=True)
    return out


RULES = PostprocessConfig(
    min_words={c: 2 for c in CLASSES},
    proba_thresh={c: 0.3 for c in CLASSES},
    one_per_essay=["Lead", "Position", "Concluding Statement"],
    join_adjacent=["Counterclaim", "Rebuttal"],
    join_gap=2,
    fill_gaps=2,
)


@pytest.mark.parametrize(
    "config", [PostprocessConfig(), PostprocessConfig.zeros(), RULES], ids=["default", "zeros", "rules"]
)
def test_per_essay_and_table_paths_agree(config):
    probs = noisy_probs(0)
    table = filter_spans(candidate_spans(probs), config)
    per_essay = {
        (k, s.cls, s.predictionstring, round(s.score, 9))
        for k, p in probs.items()
        for s in postprocess(decode_spans(p), config, p)
    }
    assert per_essay == set(zip(table["id"], table["class"], table["predictionstring"], table["score"].round(9)))
    assert len(per_essay) > 20
    assert spans_of(submission_from_probs(probs, config)) == spans_of(table)


def fill_at_word_level(labels: np.ndarray, k: int) -> np.ndarray:
    """The fill_gaps rule written word by word, as a reference."""
    labels = labels.copy()
    i = 0
    while i < len(labels):
        if labels[i] != O_ID:
            i += 1
            continue
        j = i
        while j < len(labels) and labels[j] == O_ID:
            j += 1
        if 0 < i and j < len(labels) and j - i <= k:
            left, right = labels[i - 1], labels[j]
            cls = CLASSES[(left - 1) // 2]
            if (right - 1) // 2 == (left - 1) // 2 and right == I_IDS[cls]:
                labels[i:j] = I_IDS[cls]
        i = j
    return labels


@pytest.mark.parametrize("k", [1, 3])
def test_fill_gaps_matches_the_word_level_rule(k):
    probs = noisy_probs(1)
    config = PostprocessConfig(min_words={c: 1 for c in CLASSES}, proba_thresh={c: 0.0 for c in CLASSES}, fill_gaps=k)
    table = filter_spans(candidate_spans(probs), config)
    expected = set()
    for essay_id, p in probs.items():
        starts, ends = span_bounds(fill_at_word_level(p.argmax(axis=1), k))
        expected |= {(essay_id, " ".join(map(str, range(s, e)))) for s, e in zip(starts, ends)}
    assert set(zip(table["id"], table["predictionstring"])) == expected
    assert len(table) < len(filter_spans(candidate_spans(probs), PostprocessConfig.zeros()))


def test_thresholds_are_inclusive_and_per_class():
    p = word_probs(
        ["B-Claim", "I-Claim", "I-Claim", "O", "B-Evidence", "I-Evidence", "O"], [0.6, 0.5, 0.7, 1, 0.5, 0.5, 1]
    )
    claim, evidence = decode_spans(p)
    assert claim.score == pytest.approx(0.6) and evidence.score == pytest.approx(0.5)
    config = PostprocessConfig(min_words={"Claim": 3, "Evidence": 1}, proba_thresh={"Claim": 0.6, "Evidence": 0.55})
    assert postprocess([claim, evidence], config) == [claim]
    config = PostprocessConfig(min_words={"Claim": 4, "Evidence": 1}, proba_thresh={"Claim": 0.6, "Evidence": 0.5})
    assert postprocess([claim, evidence], config) == [evidence]


def test_one_per_essay_keeps_the_best_of_the_survivors():
    spans = [
        Span("Lead", 0, 10, 0.8),
        Span("Lead", 12, 30, 0.9),
        Span("Lead", 40, 42, 0.99),
        Span("Claim", 50, 60, 0.7),
        Span("Claim", 61, 70, 0.75),
    ]
    config = PostprocessConfig.zeros()
    config.min_words["Lead"] = 5
    assert postprocess(spans, config) == [spans[0], spans[1], spans[3], spans[4]]
    config = PostprocessConfig(min_words=config.min_words, proba_thresh=config.proba_thresh, one_per_essay=["Lead"])
    assert postprocess(spans, config) == [spans[1], spans[3], spans[4]]
    # per essay: each essay keeps its own best Lead
    probs = {
        "a": word_probs(["B-Lead"] * 3 + ["O"] + ["B-Lead"] * 2, [0.9, 0.9, 0.9, 1, 0.95, 0.95]),
        "b": word_probs(["B-Lead", "I-Lead"], 0.5),
    }
    sub = submission_from_probs(
        probs,
        PostprocessConfig(
            min_words={c: 1 for c in CLASSES}, proba_thresh={c: 0.0 for c in CLASSES}, one_per_essay=["Lead"]
        ),
    )
    assert spans_of(sub) == {("a", "Lead", "4"), ("b", "Lead", "0 1")}


def test_join_adjacent_merges_then_filters():
    labels = [
        "B-Rebuttal",
        "I-Rebuttal",
        "I-Rebuttal",
        "B-Rebuttal",
        "I-Rebuttal",
        "I-Rebuttal",
        "O",
        "O",
        "B-Rebuttal",
        "I-Rebuttal",
        "B-Claim",
        "B-Rebuttal",
        "I-Rebuttal",
    ]
    conf = [0.9, 0.9, 0.9, 0.6, 0.6, 0.6, 0.8, 0.8, 0.7, 0.7, 0.9, 0.5, 0.5]
    p = word_probs(labels, conf)
    spans = decode_spans(p)
    assert [(s.start, s.end) for s in spans] == [(0, 3), (3, 6), (8, 10), (10, 11), (11, 13)]
    base = dict(min_words={c: 1 for c in CLASSES}, proba_thresh={c: 0.0 for c in CLASSES})
    no_gap = postprocess(spans, PostprocessConfig(**base, join_adjacent=["Rebuttal"]), p)
    assert [(s.cls, s.start, s.end) for s in no_gap] == [
        ("Rebuttal", 0, 6),
        ("Rebuttal", 8, 10),
        ("Claim", 10, 11),
        ("Rebuttal", 11, 13),
    ]
    assert no_gap[0].score == pytest.approx(0.75)
    gap2 = postprocess(spans, PostprocessConfig(**base, join_adjacent=["Rebuttal"], join_gap=2), p)
    # the O words inside count in the score; a Claim between two Rebuttals stops the join
    assert [(s.start, s.end) for s in gap2] == [(0, 10), (10, 11), (11, 13)]
    assert gap2[0].score == pytest.approx((3 * 0.9 + 3 * 0.6 + 2 * 0.8 + 2 * 0.7) / 10)
    assert postprocess(spans, PostprocessConfig(**base, join_adjacent=["Claim"], join_gap=2), p) == spans
    # merged first, filtered after: two 3-word Rebuttals pass min_words 6 only when joined
    strict = dict(min_words={**base["min_words"], "Rebuttal": 6}, proba_thresh=base["proba_thresh"])
    assert [(s.start, s.end) for s in postprocess(spans, PostprocessConfig(**strict), p)] == [(10, 11)]
    assert [
        (s.start, s.end) for s in postprocess(spans, PostprocessConfig(**strict, join_adjacent=["Rebuttal"]), p)
    ] == [
        (0, 6),
        (10, 11),
    ]


def test_fill_gaps_hand_case():
    labels = ["B-Claim", "I-Claim", "O", "O", "I-Claim", "O", "B-Claim", "I-Claim", "O", "I-Evidence"]
    p = word_probs(labels, [0.8, 0.8, 0.6, 0.6, 0.8, 0.9, 0.7, 0.7, 0.9, 0.9])
    spans = decode_spans(p)
    base = dict(min_words={c: 1 for c in CLASSES}, proba_thresh={c: 0.0 for c in CLASSES})
    filled = postprocess(spans, PostprocessConfig(**base, fill_gaps=2), p)
    # the O pair before I-Claim is filled; the O before B-Claim (a new element) and before I-Evidence are not
    assert [(s.cls, s.start, s.end) for s in filled] == [("Claim", 0, 5), ("Claim", 6, 8), ("Evidence", 9, 10)]
    assert filled[0].score == pytest.approx((0.8 * 3 + 0.6 * 2) / 5)
    assert postprocess(spans, PostprocessConfig(**base, fill_gaps=1), p) == spans
    with pytest.raises(ValueError, match="need the essay's word_probs"):
        postprocess(spans, PostprocessConfig(**base, fill_gaps=2))


def test_config_json_round_trip_and_defaults(tmp_path):
    config = PostprocessConfig(
        min_words={"Lead": 3},
        proba_thresh={"Rebuttal": 0.4},
        one_per_essay=["Position", "Lead"],
        join_adjacent=["Rebuttal"],
        join_gap=1,
        fill_gaps=2,
    )
    assert config.min_words["Lead"] == 3 and config.min_words["Evidence"] == 14  # classes left out keep defaults
    assert config.one_per_essay == ["Lead", "Position"]
    path = config.save(tmp_path / "pp" / "postprocess.json")
    assert PostprocessConfig.load(path) == config
    assert json.loads(path.read_text())["join_gap"] == 1
    assert PostprocessConfig.from_dict(config.to_dict()) == config
    assert PostprocessConfig.from_dict({}) == PostprocessConfig()
    zeros = PostprocessConfig.zeros()
    assert set(zeros.proba_thresh.values()) == {0.0} and max(zeros.min_words.values()) <= 1
    assert not (zeros.one_per_essay or zeros.join_adjacent or zeros.fill_gaps)
    assert list(tmp_path.joinpath("pp").iterdir()) == [path]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_words": {"Leed": 3}}, r"min_words: unknown class\(es\) \['Leed'\]; classes are"),
        ({"min_words": {"Lead": -1}}, r"min_words\['Lead'\] = -1; use a whole number >= 0"),
        ({"proba_thresh": {"Claim": 1.5}}, r"proba_thresh\['Claim'\] = 1.5; use a probability between 0 and 1"),
        ({"one_per_essay": ["Thesis"]}, r"one_per_essay: unknown class"),
        ({"join_adjacent": "Rebuttal"}, r"join_adjacent must be a list of class names"),
        ({"join_gap": -2}, r"join_gap = -2; use a whole number >= 0"),
        ({"fill_gaps": 1.5}, r"fill_gaps = 1.5; use a whole number"),
    ],
)
def test_config_validation_messages(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PostprocessConfig(**kwargs)


def test_config_from_dict_and_load_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown post-processing config key\(s\) \['min_word'\]; known keys are"):
        PostprocessConfig.from_dict({"min_word": {"Lead": 3}})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        PostprocessConfig.load(bad)
    bad.write_text(json.dumps({"fill_gap": 1}))
    with pytest.raises(ValueError, match=r"bad.json: unknown post-processing config key"):
        PostprocessConfig.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        PostprocessConfig.load(tmp_path / "missing.json")


def test_predictionstrings_and_empty_inputs():
    assert predictionstrings(np.array([0, 7, 9998]), np.array([3, 8, 10001])) == ["0 1 2", "7", "9998 9999 10000"]
    empty = submission_from_probs({})
    assert list(empty.columns) == ["id", "class", "predictionstring"] and len(empty) == 0
    only_o = submission_from_probs({"a": word_probs(["O"] * 4), "b": np.zeros((0, NUM_LABELS), np.float32)})
    assert len(only_o) == 0
    with pytest.raises(ValueError, match="essay 'x' have shape"):
        submission_from_probs({"x": np.zeros((3, 4), np.float32)})


def test_probs_file_round_trip(tmp_path):
    probs = noisy_probs(2, n_essays=12)
    path = save_word_probs(tmp_path / "oof.npz", probs, meta={"fold": 3, "model": "tiny"})
    loaded = load_word_probs(path)
    assert list(loaded) == list(probs)
    for k, v in probs.items():
        assert loaded[k].dtype == np.float32
        np.testing.assert_array_equal(loaded[k], v)
    assert load_meta(path) == {"fold": 3, "model": "tiny"}
    half = load_word_probs(save_word_probs(tmp_path / "half", probs, dtype="float16"))
    assert (tmp_path / "half").is_file() and half["essay1"].dtype == np.float32
    np.testing.assert_allclose(half["essay1"], probs["essay1"], atol=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half", "oof.npz"]  # no temporary files left


def test_probs_file_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz: no such word-probabilities file"):
        load_word_probs(tmp_path / "nothing.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip file")
    with pytest.raises(ProbsFileError, match="corrupt.npz"):
        load_word_probs(corrupt)
    good = save_word_probs(tmp_path / "good.npz", noisy_probs(3, n_essays=5))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ProbsFileError, match="truncated.npz"):
        load_word_probs(truncated)
    other = tmp_path / "other.npz"
    np.savez(other, probs=np.zeros((2, 15)))
    with pytest.raises(ProbsFileError, match=r"other.npz: missing key\(s\)"):
        load_word_probs(other)
    with pytest.raises(ValueError, match="essay 'a' has non-finite"):
        save_word_probs(tmp_path / "nan.npz", {"a": np.full((2, 15), np.nan)})


def test_filter_spans_does_not_depend_on_row_order():
    candidates = candidate_spans(noisy_probs(4))
    shuffled = candidates.sample(frac=1.0, random_state=0)
    a, b = filter_spans(candidates, RULES), filter_spans(shuffled, RULES)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) > 10


@pytest.mark.parametrize("chunk_words", [1, 37, 500, 1 << 30])
@pytest.mark.parametrize("config", [PostprocessConfig(), PostprocessConfig.zeros(), RULES], ids=["default", "zeros",
                                                                                                  "rules"])
def test_decoding_in_chunks_equals_one_decode(config, chunk_words):
    """Issue 16: ``submission_from_probs`` decodes a chunk of essays at a time (flat evaluation memory); the
    submission is exactly that of one decode over all essays, including on thresholds equal to a span's score."""
    probs = noisy_probs(5, n_essays=60)
    candidates = candidate_spans(probs)
    # thresholds set to scores that spans have: a score one ulp off in a chunk would flip those spans
    exact = {c: float(candidates.loc[candidates["class"] == c, "score"].median()) for c in CLASSES}
    tight = PostprocessConfig(**{**config.to_dict(), "proba_thresh": exact})
    for cfg in (config, tight):
        whole = filter_spans(candidates, cfg)
        pd.testing.assert_frame_equal(kept_spans(probs, cfg, chunk_words=chunk_words), whole, check_exact=True)
        pd.testing.assert_frame_equal(
            kept_spans(probs, cfg, chunk_words, with_predictionstring=False),
            filter_spans(candidates, cfg, with_predictionstring=False),
            check_exact=True,
        )
        chunked = submission_from_probs(probs, cfg, chunk_words=chunk_words)
        pd.testing.assert_frame_equal(chunked, whole[["id", "class", "predictionstring"]], check_exact=True)
    assert len(whole) > 20


def test_decoding_chunk_size_is_checked():
    with pytest.raises(ValueError, match="chunk_words=0"):
        submission_from_probs(noisy_probs(6, n_essays=2), chunk_words=0)
    with pytest.raises(ValueError, match="chunk_words=True"):
        kept_spans(noisy_probs(6, n_essays=2), chunk_words=True)
