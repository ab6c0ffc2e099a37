"""The second stage (issue 13) on hand-made arrays: candidates, features, labels, decoding, thresholds, honest
cross-fitting, and the rescorer folder. No model, no corpus files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from feedback_ner import rescoring as rs
from feedback_ner import span_features as sf
from feedback_ner.errors import FeedbackError
from feedback_ner.labels import B_IDS, CLASSES, I_IDS, NUM_LABELS, O_ID
from feedback_ner.metric import score


def one_hot(labels: list[int], p: float = 0.9) -> np.ndarray:
    out = np.full((len(labels), NUM_LABELS), (1 - p) / (NUM_LABELS - 1), np.float32)
    out[np.arange(len(labels)), labels] = p
    return out


def claim_essay() -> np.ndarray:
    """10 words: a Claim on words 2..5."""
    labels = [O_ID] * 10
    labels[2] = B_IDS["Claim"]
    labels[3:6] = [I_IDS["Claim"]] * 3
    return one_hot(labels)


def synthetic(n: int = 60, seed: int = 0, sigma: float = 1.6) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """``n`` essays of 80 words with 3-5 random spans each; probabilities = noisy one-hot BIO labels."""
    rng = np.random.default_rng(seed)
    probs, rows = {}, []
    for e in range(n):
        labels = np.zeros(80, np.int64)
        pos = 0
        for _ in range(rng.integers(3, 6)):
            pos += int(rng.integers(1, 5))
            length = int(rng.integers(3, 14))
            if pos + length > 80:
                break
            cls = CLASSES[rng.integers(0, len(CLASSES))]
            labels[pos] = B_IDS[cls]
            labels[pos + 1 : pos + length] = I_IDS[cls]
            rows.append((f"e{e}", cls, " ".join(map(str, range(pos, pos + length)))))
            pos += length
        logits = 2.5 * np.eye(NUM_LABELS)[labels] + rng.normal(0, sigma, (80, NUM_LABELS))
        x = np.exp(logits - logits.max(1, keepdims=True))
        probs[f"e{e}"] = (x / x.sum(1, keepdims=True)).astype(np.float32)
    return probs, pd.DataFrame(rows, columns=["id", "discourse_type", "predictionstring"])


def test_candidates_cover_the_span_and_flag_the_decoder_span():
    words = sf.stack_words({"a": claim_essay()})
    cand = sf.make_candidates(words)
    frame = cand.frame(words)
    claim = frame[frame["class"] == "Claim"]
    assert ((claim["start"] == 2) & (claim["end"] == 6)).any()
    row = np.flatnonzero((frame["class"] == "Claim") & (frame["start"] == 2) & (frame["end"] == 6))[0]
    assert cand.from_decoder[row]
    assert (claim["end"] > claim["start"]).all() and claim["end"].max() <= 10
    recall = sf.candidate_recall(words, cand, pd.DataFrame({"id": ["a"], "discourse_type": ["Claim"],
                                                            "predictionstring": ["2 3 4 5"]}))
    assert recall.loc["Claim", "recall"] == 1.0 and recall.loc["mean", "recall"] == 1.0


def test_max_words_limits_candidate_length():
    words = sf.stack_words({"a": claim_essay()})
    for limit in (1, 2, 3, 4):
        cand = sf.make_candidates(words, sf.CandidateConfig(max_words={c: limit for c in CLASSES},
                                                            start_thresh={c: 0.0 for c in CLASSES}))
        own = ~cand.from_decoder
        assert own.any() and (cand.end - cand.start)[own].max() <= limit
        # the decoder's span is always a candidate, whatever the limit
        assert (cand.from_decoder & (cand.start == 2) & (cand.end == 6)).sum() == 1


def test_labels_follow_the_competition_overlap_rule():
    words = sf.stack_words({"a": claim_essay()})
    cand = sf.Candidates(np.zeros(4, np.int64), np.array([2, 2, 2, 0]), np.array([2, 2, 0, 2]),
                         np.array([6, 4, 10, 6]), np.zeros(4, bool))
    gt = pd.DataFrame({"id": ["a"], "discourse_type": ["Claim"], "predictionstring": ["2 3 4 5"]})
    # (2,6) exact; (2,4) covers half of the truth and is all inside; (0,10): 4 of 10 words; (2,6) as Lead: class
    assert sf.candidate_labels(words, cand, gt).tolist() == [1, 1, 0, 0]


def test_features_match_a_per_candidate_oracle():
    probs, _ = synthetic(6, seed=3)
    words = sf.stack_words(probs)
    cand = sf.make_candidates(words)
    x = sf.features(words, cand)
    col = {n: j for j, n in enumerate(sf.FEATURES)}
    assert x.shape == (len(cand), len(sf.FEATURES)) and len(set(sf.FEATURES)) == len(sf.FEATURES)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(cand), 200, replace=False):
        c, s, e = cand.class_id[i], cand.start[i], cand.end[i]
        lo, hi = words.offsets[cand.essay[i]], words.offsets[cand.essay[i] + 1]
        pc = words.probs[:, B_IDS[CLASSES[c]]] + words.probs[:, I_IDS[CLASSES[c]]]
        b_any = words.probs[:, [B_IDS[k] for k in CLASSES]].sum(1)
        assert x[i, col["n_words"]] == e - s and x[i, col["start_pos"]] == s - lo
        assert x[i, col["mean"]] == pytest.approx(pc[s:e].mean(), abs=1e-5)
        assert x[i, col["std"]] == pytest.approx(pc[s:e].std(), abs=1e-3)
        assert x[i, col["min"]] == pytest.approx(pc[s:e].min()) and x[i, col["max"]] == pytest.approx(pc[s:e].max())
        assert x[i, col["b_inner_max"]] == pytest.approx(words.probs[s + 1:e, B_IDS[CLASSES[c]]].max(initial=0.0))
        assert x[i, col["b_any_inner_max"]] == pytest.approx(b_any[s + 1:e].max(initial=0.0), abs=1e-6)
        assert (np.isnan(x[i, col["before_1"]]) if s == lo else x[i, col["before_1"]] == pytest.approx(pc[s - 1]))
        assert (np.isnan(x[i, col["after_2"]]) if e + 1 >= hi else x[i, col["after_2"]] == pytest.approx(pc[e + 1]))
        same = (cand.essay == cand.essay[i]) & (cand.class_id == c)
        means = x[same, col["mean"]]
        assert x[i, col["group_size"]] == same.sum()
        assert x[i, col["rank"]] == (means > x[i, col["mean"]]).sum() or np.isclose(means, x[i, col["mean"]]).sum() > 1


def test_text_structure_features():
    text = "Intro words here.\n\nSecond para. It has two sentences\nThird"
    probs = {"t": claim_essay()}
    words = sf.stack_words(probs, {"t": text})
    assert words.paragraph_start.tolist() == [1, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    assert words.sentence_start.tolist() == [1, 0, 0, 1, 0, 1, 0, 0, 0, 1]
    cand = sf.Candidates(np.zeros(1, np.int64), np.array([2]), np.array([3]), np.array([5]), np.zeros(1, bool))
    x = sf.features(words, cand)[0]
    col = {n: j for j, n in enumerate(sf.FEATURES)}
    assert x[col["paragraph"]] == 1 and x[col["paragraphs"]] == 3 and x[col["paragraph_from_end"]] == 1
    assert x[col["starts_paragraph"]] == 1 and x[col["ends_sentence"]] == 1 and x[col["sentence"]] == 1
    with pytest.raises(FeedbackError, match="10"):
        sf.stack_words(probs, {"t": "too few words"})


def test_empty_essays_and_essays_without_candidates():
    probs = {"empty": np.zeros((0, NUM_LABELS), np.float32), "none": one_hot([O_ID] * 8, p=0.999),
             "a": claim_essay()}
    data = rs.build_set(probs, sf.CandidateConfig(), {"empty": "", "none": "a b c d e f g h", "a": " ".join("x" * 10)},
                        pd.DataFrame({"id": ["a"], "discourse_type": ["Claim"], "predictionstring": ["2 3 4 5"]}))
    assert set(data.cand.essay.tolist()) == {2}
    assert data.x.shape == (len(data.cand), len(sf.FEATURES))
    scores = data.y * data.x[:, sf.FEATURES.index("n_words")] / 10  # the longest matching candidate first
    sub = rs.submission(data.words, data.cand, rs.decode(data.cand, scores, 0.35))
    assert sub.values.tolist() == [["a", "Claim", "2 3 4 5"]]
    nothing = rs.build_set({"empty": probs["empty"]}, sf.CandidateConfig())
    assert len(nothing.cand) == 0 and nothing.x.shape == (0, len(sf.FEATURES))
    assert rs.submission(nothing.words, nothing.cand, rs.decode(nothing.cand, np.zeros(0))).empty


def test_decode_takes_by_score_and_suppresses_overlaps():
    cand = sf.Candidates(np.zeros(5, np.int64), np.array([2, 2, 2, 5, 2]), np.array([0, 8, 10, 8, 30]),
                         np.array([10, 20, 20, 20, 40]), np.zeros(5, bool))
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.3])
    # (8,20) overlaps the kept (0,10) by 2 of its 12 words (> 0.15); (10,20) does not overlap; Evidence is
    # another class; (30,40) is under the threshold
    assert rs.decode(cand, scores, {c: 0.5 for c in CLASSES}).tolist() == [0, 2, 3]
    assert rs.decode(cand, scores, {c: 0.5 for c in CLASSES}, overlap=0.2).tolist() == [0, 1, 3]


def test_decode_with_higher_threshold_keeps_a_subset():
    probs, gt = synthetic(20, seed=1)
    data = rs.build_set(probs, sf.CandidateConfig(), gt=gt)
    scores = np.random.default_rng(0).random(len(data.cand))
    low = rs.decode(data.cand, scores, 0.1)
    for t in (0.3, 0.6, 0.9):
        assert rs.decode(data.cand, scores, t).tolist() == low[scores[low] >= t].tolist()


def test_thresholds_drop_false_positives():
    words = sf.stack_words({"a": claim_essay()})
    cand = sf.Candidates(np.zeros(2, np.int64), np.array([2, 2]), np.array([2, 7]), np.array([6, 9]),
                         np.zeros(2, bool))
    gt = pd.DataFrame({"id": ["a"], "discourse_type": ["Claim"], "predictionstring": ["2 3 4 5"]})
    thresholds = rs.tune_thresholds(words, cand, np.array([0.8, 0.4]), gt)
    assert 0.4 < thresholds["Claim"] <= 0.8 and thresholds["Lead"] == 0.5


@pytest.fixture(scope="module")
def corpus():
    probs, gt = synthetic(60, seed=0)
    fold = np.arange(60) % 3
    return probs, gt, fold


def test_rescoring_beats_the_default_decoder_cross_fitted(corpus):
    from feedback_ner.postprocess import submission_from_probs

    probs, gt, fold = corpus
    data = rs.build_set(probs, sf.CandidateConfig(max_words=sf.span_length_limits(gt)), gt=gt)
    fit = rs.cross_fit(data, fold, gt)
    assert not np.isnan(fit.scores).any() and set(fit.models) == {0, 1, 2}
    rescored = score(rs.submission(data.words, data.cand, fit.kept), gt).f1
    assert rescored > score(submission_from_probs(probs), gt).f1


def test_fold_scores_ignore_that_folds_own_ground_truth(corpus):
    """Issue 13: no candidate's own label reaches its score, nor its fold's thresholds and spans."""
    probs, gt, fold = corpus
    config = sf.CandidateConfig(max_words=sf.span_length_limits(gt))
    ids0 = {f"e{i}" for i in np.flatnonzero(fold == 0)}
    altered = pd.concat([gt[~gt["id"].isin(ids0)],
                         gt[gt["id"].isin(ids0)].assign(discourse_type="Rebuttal").iloc[::2]], ignore_index=True)
    runs = []
    for truth in (gt, altered):
        data = rs.build_set(probs, config, gt=truth)
        fit = rs.cross_fit(data, fold, truth)
        runs.append((data, fit))
    (d1, f1), (d2, f2) = runs
    in0 = f1.fold_of_candidate == 0
    assert not np.array_equal(d1.y[in0], d2.y[in0]), "the alteration changed fold 0's labels"
    np.testing.assert_array_equal(f1.scores[in0], f2.scores[in0])
    assert f1.thresholds[0] == f2.thresholds[0]
    assert f1.kept[in0[f1.kept]].tolist() == f2.kept[in0[f2.kept]].tolist()
    assert not np.array_equal(f1.scores[~in0], f2.scores[~in0]), "other folds did learn from fold 0"


def test_class_absent_from_ground_truth(corpus):
    probs, gt, fold = corpus
    gt = gt[gt["discourse_type"] != "Rebuttal"]
    data = rs.build_set(probs, sf.CandidateConfig(), gt=gt)
    fit = rs.cross_fit(data, fold, gt, per_class=True, nested=False)
    assert all(t["Rebuttal"] == 0.5 for t in fit.thresholds.values())
    assert "Rebuttal" not in score(rs.submission(data.words, data.cand, fit.kept), gt).table.index


def test_span_length_limits():
    gt = pd.DataFrame({"id": ["a"] * 3, "discourse_type": ["Claim", "Claim", "Lead"],
                       "predictionstring": ["1 2", "1 2 3 4", "0 1 2 3 4 5 6 7 8 9"]})
    limits = sf.span_length_limits(gt, quantile=1.0)
    assert limits["Claim"] == 4 and limits["Lead"] == 10 and limits["Evidence"] == 10


@pytest.mark.parametrize("per_class", [False, True])
def test_rescorer_folder_round_trip(tmp_path, corpus, per_class):
    probs, gt, _ = corpus
    config = sf.CandidateConfig(max_words=sf.span_length_limits(gt))
    data = rs.build_set(probs, config, gt=gt)
    rescorer = rs.fit_rescorer(data, config, {c: 0.5 for c in CLASSES}, per_class=per_class, uses_texts=False)
    rescorer.save(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / rs.CONFIG_FILE).read_text())
    assert meta["features"] == list(sf.FEATURES) and meta["candidates"]["max_words"] == config.max_words
    loaded = rs.Rescorer.load(tmp_path / "r")
    pd.testing.assert_frame_equal(loaded.spans(probs), rescorer.spans(probs))
    assert not rescorer.spans(probs).empty


@pytest.mark.parametrize("damage, needle", [
    ("no-json", "rescorer.json: missing"),
    ("bad-json", "corrupt rescorer settings"),
    ("no-model", "missing model file"),
    ("bad-model", "corrupt LightGBM model"),
    ("features", "another feature list"),
    ("no-folder", "no such rescorer folder"),
])
def test_rescorer_folder_damage_is_one_clear_error(tmp_path, corpus, damage, needle):
    probs, gt, _ = corpus
    data = rs.build_set(probs, sf.CandidateConfig(), gt=gt)
    folder = tmp_path / "r"
    rs.fit_rescorer(data, sf.CandidateConfig(), {c: 0.5 for c in CLASSES}, uses_texts=False).save(folder)
    meta_path = folder / rs.CONFIG_FILE
    if damage == "no-json":
        meta_path.unlink()
    elif damage == "bad-json":
        meta_path.write_text("{not json")
    elif damage == "no-model":
        (folder / "model.txt").unlink()
    elif damage == "bad-model":
        (folder / "model.txt").write_text("tree\nversion=v4\ngarbage")
    elif damage == "features":
        meta = json.loads(meta_path.read_text())
        meta["features"] = meta["features"][:-1]
        meta_path.write_text(json.dumps(meta))
    else:
        folder = tmp_path / "missing"
    with pytest.raises(FeedbackError, match=needle) as err:
        rs.Rescorer.load(folder)
    assert "\n" not in str(err.value)


def test_candidate_thresholds_learned_by_recall():
    probs, gt = synthetic(30, seed=2, sigma=2.5)
    words = sf.stack_words(probs)
    limits = sf.span_length_limits(gt)
    sharp = sf.fit_candidate_config(sf.stack_words({"a": claim_essay()}), pd.DataFrame(
        {"id": ["a"], "discourse_type": ["Claim"], "predictionstring": ["2 3 4 5"]}), limits)
    assert sharp.start_thresh["Claim"] == pytest.approx(0.1) and sharp.end_thresh["Claim"] == pytest.approx(0.1)
    assert sharp.start_thresh["Lead"] == sf.CandidateConfig().start_thresh["Lead"]  # no Lead: the default
    learned = sf.fit_candidate_config(words, gt, limits, recall=0.99)
    recall = sf.candidate_recall(words, sf.make_candidates(words, learned), gt)
    assert recall.loc["mean", "recall"] >= 0.95 and learned.max_words == limits


def test_candidate_thresholds_read_a_span_with_gaps_by_its_extent():
    """"3 4 7 8" was read as word 0 (the metric keeps such a span as a set, start = end = 0): thresholds from
    another place in the essay. Its extent 3..8 is what the start and end scores belong to."""
    probs, gt = synthetic(30, seed=2, sigma=2.5)
    words, limits = sf.stack_words(probs), sf.span_length_limits(gt)
    spans = gt["predictionstring"].str.split()
    gapped = gt.assign(predictionstring=[" ".join(w[:1] + w[2:]) if len(w) > 3 else " ".join(w) for w in spans])
    assert (gapped["predictionstring"] != gt["predictionstring"]).sum() > 10
    assert sf.fit_candidate_config(words, gapped, limits) == sf.fit_candidate_config(words, gt, limits)


def test_verdict_recommends_the_rescorer_only_where_it_scored_best(tmp_path):
    from feedback_ner.rescore import ROUTES, verdict

    def macro(default: float, tuned: float, rescored: float) -> pd.Series:
        return pd.Series({ROUTES[0]: default, ROUTES[1]: tuned, ROUTES[2]: rescored})

    good, line = verdict(macro(0.90, 0.91, 0.93), tmp_path, 90, 5)
    assert good and f"predict --rescore {tmp_path}" in line
    good, line = verdict(macro(0.9379, 0.9365, 0.9097), tmp_path, 90, 5)
    assert not good and "below the default route" in line and "predict without --rescore" in line
    assert "0.9097 vs 0.9379" in line and "about 72" in line
    good, line = verdict(macro(0.90, 0.92, 0.91), tmp_path, 90, 5)
    assert not good and "below the tuned route" in line and "feedback_ner.tune" in line
