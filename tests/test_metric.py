"""The competition metric against a literal reading of its rule, the public pandas code, and hand counts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedback_ner.errors import FeedbackError
from feedback_ner.labels import CLASSES
from feedback_ner.metric import ScoreResult, SpanTable, parse_predictionstrings, score
from feedback_ner.score import main as score_main

ROOT = Path(__file__).resolve().parents[1]


def _load_baseline():
    spec = importlib.util.spec_from_file_location("pandas_metric", ROOT / "benchmarks" / "pandas_metric.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pandas_metric = _load_baseline()


# --- the rule of FACTS.md, written as plainly as possible -----------------------------------------------------


def literal_score(pred: pd.DataFrame, gt: pd.DataFrame) -> tuple[float, dict[str, tuple[int, int, int, float]]]:
    """Macro F1 and {class: (TP, FP, FN, F1)} by loops over sets, straight from the rule."""

    def words(text: str) -> frozenset[int]:
        return frozenset(int(w) for w in str(text).split())

    preds = [(i, c, words(t)) for i, c, t in pred[["id", "class", "predictionstring"]].itertuples(False, None)]
    gts = [(i, c, words(t), t) for i, c, t in gt[["id", "discourse_type", "predictionstring"]].itertuples(False, None)]
    per_class = {}
    for cls in sorted({g[1] for g in gts}):
        potential = []  # (prediction row, ground-truth row, max overlap)
        for i, (pid, pcls, pw) in enumerate(preds):
            for j, (gid, gcls, gw, _) in enumerate(gts):
                if pcls != cls or gcls != cls or pid != gid or not pw or not gw:
                    continue
                inter = len(pw & gw)
                o1, o2 = inter / len(gw), inter / len(pw)
                if o1 >= 0.5 and o2 >= 0.5:
                    potential.append((i, j, max(o1, o2)))
        best = {}  # (essay, text) -> (prediction row, overlap); ties to the earlier prediction row
        for i, j, overlap in potential:
            group = (gts[j][0], gts[j][3])
            if group not in best or overlap > best[group][1] or (overlap == best[group][1] and i < best[group][0]):
                best[group] = (i, overlap)
        taken = {i for i, _ in best.values()}
        matched = {j for _, j, _ in potential}
        tp = len(best)
        fp = sum(1 for i, p in enumerate(preds) if p[1] == cls and i not in taken)
        fn = sum(1 for j, g in enumerate(gts) if g[1] == cls and j not in matched)
        per_class[cls] = (tp, fp, fn, tp / (tp + 0.5 * (fp + fn)))
    return sum(v[3] for v in per_class.values()) / len(per_class), per_class


# --- random essays ----------------------------------------------------------------------------------------------

GT_CLASSES = ["Lead", "Claim", "Evidence", "Concluding Statement"]
PRED_CLASSES = GT_CLASSES + ["Rebuttal"]  # Rebuttal never in the ground truth: predicted-only
GT_IDS = ["e0", "e1", "e2"]
PRED_IDS = GT_IDS + ["x9"]  # an essay without ground truth


@st.composite
def word_set(draw, base: int) -> list[int]:
    """Word indices of one span: mostly a run, sometimes with holes; `base` moves them across digit counts."""
    if draw(st.integers(0, 3)):
        start = base + draw(st.integers(0, 14))
        return list(range(start, start + draw(st.integers(1, 12))))
    return sorted(set(draw(st.lists(st.integers(base, base + 20), min_size=1, max_size=8))))


def write(words: list[int], messy: bool) -> str:
    """A predictionstring; `messy` repeats or reorders words (same set, other text: another group)."""
    if messy and len(words) > 1:
        words = words[::-1] if words[0] % 2 else words + words[:1]
    return " ".join(map(str, words))


@st.composite
def essays(draw, allow_empty: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    base = draw(st.sampled_from([0, 3, 95, 995, 99_990]))
    gt_rows = []
    for _ in range(draw(st.integers(1, 14))):
        words = draw(word_set(base))
        gt_rows.append((draw(st.sampled_from(GT_IDS)), draw(st.sampled_from(GT_CLASSES)), words))
    for i in draw(st.lists(st.integers(0, len(gt_rows) - 1), max_size=3)):  # identical ground truths: one group
        gt_rows.append(gt_rows[i])
    pred_rows = []
    for essay, cls, words in gt_rows:
        action = draw(st.sampled_from(["skip", "same", "shift", "trim", "class", "dup"]))
        if action == "skip":
            continue
        if action == "shift":
            k = draw(st.integers(-6, 6))
            words = [w + k for w in words if w + k >= 0] or [base]
        elif action == "trim" and len(words) > 1:
            cut = draw(st.integers(1, len(words) - 1))
            words = words[cut:] if draw(st.booleans()) else words[:-cut]
        elif action == "class":
            cls = draw(st.sampled_from(PRED_CLASSES))
        pred_rows.append((essay, cls, words))
        if action == "dup":
            pred_rows.append((essay, cls, words))
    for _ in range(draw(st.integers(0, 5))):  # random spans, some for essays without ground truth
        pred_rows.append((draw(st.sampled_from(PRED_IDS)), draw(st.sampled_from(PRED_CLASSES)), draw(word_set(base))))
    order = draw(st.permutations(range(len(pred_rows))))
    pred_rows = [pred_rows[i] for i in order]
    gt = pd.DataFrame(
        [(e, c, write(w, draw(st.integers(0, 5)) == 0)) for e, c, w in gt_rows],
        columns=["id", "discourse_type", "predictionstring"],
    )
    pred = pd.DataFrame(
        [(e, c, write(w, draw(st.integers(0, 5)) == 0)) for e, c, w in pred_rows],
        columns=["id", "class", "predictionstring"],
    )
    if allow_empty and len(pred) and draw(st.integers(0, 4)) == 0:
        pred.loc[draw(st.integers(0, len(pred) - 1)), "predictionstring"] = ""
    if allow_empty and draw(st.integers(0, 9)) == 0:
        gt.loc[draw(st.integers(0, len(gt) - 1)), "predictionstring"] = ""
    return pred, gt


def assert_same(result: ScoreResult, expected: tuple[float, dict]) -> None:
    macro, per_class = expected
    assert list(result.table.index) == [c for c in CLASSES if c in per_class]
    for cls, (tp, fp, fn, f1) in per_class.items():
        row = result.table.loc[cls]
        assert (row["TP"], row["FP"], row["FN"]) == (tp, fp, fn), cls
        assert row["F1"] == pytest.approx(f1, abs=1e-12)
    assert result.f1 == pytest.approx(macro, abs=1e-12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(essays())
def test_score_matches_literal_rule(data):
    pred, gt = data
    assert_same(score(pred, gt), literal_score(pred, gt))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(essays(allow_empty=False))
def test_pandas_baseline_agrees(data):
    pred, gt = data
    macro, per_class = pandas_metric.score_feedback_comp(pred, gt, return_class_scores=True)
    result = score(pred, gt)
    assert result.f1 == pytest.approx(macro, abs=1e-12)
    for cls, f1 in per_class.items():
        assert result.table.loc[cls, "F1"] == pytest.approx(f1, abs=1e-12)


# --- the fast predictionstring reader ----------------------------------------------------------------------------


@st.composite
def predictionstrings(draw) -> str:
    """Canonical runs (across digit-count changes) and near misses of them."""
    start = draw(st.sampled_from([0, 1, 7, 9, 10, 95, 99, 100, 998, 9_995, 123_456, 9_999_990]))
    start += draw(st.integers(0, 5))
    words = list(range(start, start + draw(st.integers(1, 25))))
    text = " ".join(map(str, words))
    change = draw(st.sampled_from(["none", "none", "none", "digit", "space", "edge", "zero", "order", "random"]))
    if change == "digit":
        i = draw(st.integers(0, len(text) - 1))
        if text[i].isdigit():
            text = text[:i] + str((int(text[i]) + draw(st.integers(1, 9))) % 10) + text[i + 1 :]
    elif change == "space":
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.sampled_from([" ", "\t", "\n"])) + text[i:]
    elif change == "edge":
        text = draw(st.sampled_from([" ", ""])) + text + draw(st.sampled_from([" ", "", "\n"]))
    elif change == "zero":
        text = "0" + text
    elif change == "order":
        text = " ".join(map(str, draw(st.permutations(words))))
    elif change == "random":
        text = draw(st.text(alphabet="0123456789 ", max_size=30))
    return text


@settings(max_examples=100, deadline=None)
@given(st.lists(predictionstrings(), min_size=1, max_size=20), st.integers(0, 3))
def test_parse_predictionstrings_is_exact(texts, skip):
    series = pd.Series(texts, dtype="str")
    if any(int(w) >= 2**40 for text in texts for w in text.split()):
        with pytest.raises(ValueError, match="is not space-separated word indices"):
            parse_predictionstrings(texts)
        return
    for values, rows in ((texts, texts), (series.iloc[skip:], texts[skip:])):  # also a slice of an arrow array
        start, end, size, text_key, sets = parse_predictionstrings(values)
        for i, text in enumerate(rows):
            expected = {int(w) for w in text.split()}
            got = set(sets[i]) if i in sets else set(range(start[i], end[i]))
            assert got == expected, text
            assert size[i] == len(expected)
            is_run = expected and max(expected) - min(expected) + 1 == len(expected)
            canonical = is_run and text == " ".join(map(str, range(min(expected), max(expected) + 1)))
            if canonical and min(expected) < 10**5:
                assert i not in sets and text_key[i] >= 0, text  # the fast path took it (others get keys < 0)
        for i in range(len(rows)):  # equal key <=> equal text
            for j in range(len(rows)):
                assert (text_key[i] == text_key[j]) == (rows[i] == rows[j]), (rows[i], rows[j])


@pytest.mark.parametrize("skip", [0, 1, 2])
def test_every_byte_of_a_run_is_checked(skip):
    runs = [run(0, 1), run(7, 12), run(95, 104), run(8, 9), run(990, 1003), run(3, 5)]
    text = "\n".join(runs)
    for i, char in enumerate(text):
        if not char.isdigit():
            continue
        texts = (text[:i] + str((int(char) + 1) % 10) + text[i + 1 :]).split("\n")
        start, end, size, _, sets = parse_predictionstrings(pd.Series(texts, dtype="str").iloc[skip:])
        for row, changed in enumerate(texts[skip:]):
            expected = {int(w) for w in changed.split()}
            assert (set(sets[row]) if row in sets else set(range(start[row], end[row]))) == expected, changed


# --- hand-computed cases -------------------------------------------------------------------------------------


def frame(rows: list[tuple[str, str, str]], gt: bool = False) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "discourse_type" if gt else "class", "predictionstring"])


def run(a: int, b: int) -> str:
    return " ".join(map(str, range(a, b)))


def counts(result: ScoreResult, cls: str = "Claim") -> tuple[int, int, int]:
    row = result.table.loc[cls]
    return int(row["TP"]), int(row["FP"]), int(row["FN"])


def test_half_overlap_is_the_boundary():
    gt = frame([("a", "Claim", run(0, 10))], gt=True)
    assert counts(score(frame([("a", "Claim", run(5, 15))]), gt)) == (1, 0, 0)  # 5/10 and 5/10
    assert counts(score(frame([("a", "Claim", run(6, 16))]), gt)) == (0, 1, 1)  # 4/10
    assert counts(score(frame([("a", "Claim", run(0, 20))]), gt)) == (1, 0, 0)  # 10/10 and 10/20
    assert counts(score(frame([("a", "Claim", run(0, 21))]), gt)) == (0, 1, 1)  # 10/21 < 0.5


def test_duplicate_prediction_is_one_tp_and_one_fp():
    gt = frame([("a", "Claim", run(0, 10))], gt=True)
    result = score(frame([("a", "Claim", run(0, 10)), ("a", "Claim", run(0, 10))]), gt)
    assert counts(result) == (1, 1, 0)
    assert result.f1 == pytest.approx(1 / 1.5)


def test_one_prediction_can_match_two_ground_truths():
    gt = frame([("a", "Claim", "0 1 2 3"), ("a", "Claim", "1 2 3 4")], gt=True)
    assert counts(score(frame([("a", "Claim", "0 1 2 3 4")]), gt)) == (2, 0, 0)


def test_identical_ground_truths_are_one_group():
    gt = frame([("a", "Claim", "0 1 2"), ("a", "Claim", "0 1 2")], gt=True)
    assert counts(score(frame([("a", "Claim", "0 1 2")]), gt)) == (1, 0, 0)
    assert counts(score(frame([("a", "Claim", "7 8")]), gt)) == (0, 1, 2)


def test_ties_go_to_the_earlier_prediction():
    # P0 and P1 tie on G1 (max overlap 1); only P1 matches G2. If G1 takes P0 both are used, else P0 is an FP.
    gt = frame([("a", "Claim", run(0, 4)), ("a", "Claim", run(2, 8))], gt=True)
    p0, p1 = ("a", "Claim", run(0, 4)), ("a", "Claim", run(0, 6))
    assert counts(score(frame([p0, p1]), gt)) == (2, 0, 0)
    assert counts(score(frame([p1, p0]), gt)) == (2, 1, 0)
    assert pandas_metric.score_feedback_comp(frame([p0, p1]), gt) == score(frame([p0, p1]), gt).f1
    assert pandas_metric.score_feedback_comp(frame([p1, p0]), gt) == score(frame([p1, p0]), gt).f1


def test_classes_essays_and_empty_predictions():
    gt = frame([("a", "Lead", run(0, 5)), ("a", "Claim", run(5, 9)), ("b", "Claim", run(0, 3))], gt=True)
    pred = frame(
        [
            ("a", "Lead", run(0, 5)),
            ("a", "Rebuttal", run(5, 9)),  # class not in the ground truth: ignored
            ("zz", "Claim", run(0, 3)),  # essay without ground truth: an FP of Claim
            ("b", "Claim", ""),  # empty: matches nothing
        ]
    )
    result = score(pred, gt)
    assert list(result.table.index) == ["Lead", "Claim"]
    assert counts(result, "Lead") == (1, 0, 0)
    assert counts(result, "Claim") == (0, 2, 2)
    assert result.f1 == pytest.approx((1.0 + 0.0) / 2)
    assert result.table[["TP", "FP", "FN"]].dtypes.tolist() == [np.int64] * 3

    empty = score(frame([]), gt)
    assert empty.table["FN"].tolist() == [1, 2] and empty.f1 == 0.0


def test_as_dict_and_class_column_ground_truth():
    gt = pd.DataFrame(
        {"id": ["a", "a"], "class": ["Concluding Statement", "Claim"], "predictionstring": [run(0, 5), run(7, 9)]}
    )
    result = score(frame([("a", "Concluding Statement", run(0, 5))]), gt)
    assert result.as_dict("eval_") == {"eval_f1": 0.5, "eval_f1_Claim": 0.0, "eval_f1_Concluding_Statement": 1.0}


def test_span_table_from_arrays_scores_like_strings():
    gt = frame([("a", "Claim", run(0, 10)), ("b", "Evidence", run(3, 30))], gt=True)
    spans = [("a", "Claim", 2, 12), ("b", "Evidence", 0, 14), ("b", "Evidence", 3, 30)]
    from_strings = score(frame([(e, c, run(s, t)) for e, c, s, t in spans]), gt)
    from_arrays = score(SpanTable.from_arrays(*map(list, zip(*spans))), SpanTable.from_frame(gt, "discourse_type"))
    pd.testing.assert_frame_equal(from_strings.table, from_arrays.table)


def test_bad_input_is_named():
    """Each mistake is one FeedbackError naming it (found by probing: a path for ``gt`` got an AttributeError)."""
    gt = frame([("a", "Claim", "1 2")], gt=True)
    with pytest.raises(FeedbackError, match="predictions lacks column.*'predictionstring'"):
        score(pd.DataFrame({"id": ["a"], "class": ["Claim"]}), gt)
    with pytest.raises(FeedbackError, match=r"predictions row 2 \(id b\): predictionstring '3 x'"):
        score(frame([("a", "Claim", "1 2"), ("b", "Claim", "3 x")]), gt)
    with pytest.raises(FeedbackError, match=r"ground truth lacks a class column.*\(has: id, predictionstring\)"):
        score(frame([]), gt.drop(columns="discourse_type"))
    with pytest.raises(FeedbackError, match="ground truth has no rows"):
        score(frame([]), gt.iloc[:0])
    with pytest.raises(FeedbackError, match="score: gt is a str; give a DataFrame"):
        score(frame([]), "train.csv")
    with pytest.raises(FeedbackError, match=r"predictions row 1: id is missing \(1 rows\)"):
        score(pd.DataFrame({"id": [None], "class": ["Claim"], "predictionstring": ["1"]}), gt)


def test_cli_prints_table_and_names_bad_files(tmp_path, capsys):
    frame([("a", "Claim", run(0, 10)), ("a", "Lead", run(10, 14))], gt=True).to_csv(tmp_path / "gt.csv", index=False)
    frame([("a", "Claim", run(1, 10)), ("a", "Claim", "")]).to_csv(tmp_path / "sub.csv", index=False)
    score_main(["--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "sub.csv")])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["class", "TP", "FP", "FN", "F1"]
    assert out[1].split() == ["Lead", "0", "0", "1", "0.0000"]
    assert out[2].split() == ["Claim", "1", "1", "0", "0.6667"]
    assert out[3].split() == ["macro", "F1", "0.3333"]

    assert score_main(["--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("feedback-ner score: error: --pred ") and "nope.csv: no such file" in err
    pd.DataFrame({"id": ["a"], "predictionstring": ["1"]}).to_csv(tmp_path / "bad.csv", index=False)
    assert score_main(["--gt", str(tmp_path / "bad.csv"), "--pred", str(tmp_path / "sub.csv")]) == 2
    assert "bad.csv: lacks column(s) discourse_type or class" in capsys.readouterr().err


def test_score_warns_about_what_makes_the_number_wrong(tmp_path, capsys):
    """Issue 12 item 5: a subset of essays scored against the whole ground truth, lower-case or unknown classes and
    ids that match no essay each get a warning with counts; --only-predicted-essays scores the predicted ones."""
    gt_rows = [(f"e{i}", "Claim", run(0, 10)) for i in range(4)] + [(f"e{i}", "Lead", run(10, 14)) for i in range(4)]
    frame(gt_rows, gt=True).to_csv(tmp_path / "gt.csv", index=False)
    pred = [("e0", "Claim", run(0, 10)), ("e0", "Lead", run(10, 14)), ("e1", "claim", run(0, 10)),
            ("e1", "Lead", run(10, 14)), ("e1", "Thesis", run(0, 3)), ("zz", "Claim", run(0, 5))]
    frame(pred).to_csv(tmp_path / "sub.csv", index=False)
    args = ["--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "sub.csv")]
    assert score_main(args) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3, captured.err
    assert "2 of the 4 essays in the ground truth have no prediction" in warnings[0]
    assert "--only-predicted-essays" in warnings[0]
    assert "2 predicted rows have a class that is not in the ground truth" in warnings[1]
    assert "'claim' (1 rows)" in warnings[1] and "'Thesis' (1 rows)" in warnings[1]
    assert "1 predicted essay ids (1 rows) match no essay" in warnings[2]
    whole = float(captured.out.splitlines()[-1].split()[-1])
    assert score_main([*args, "--only-predicted-essays"]) == 0
    captured = capsys.readouterr()
    assert "have no prediction" not in captured.err and "class that is not in the ground truth" in captured.err
    only = float(captured.out.splitlines()[-1].split()[-1])
    # e0, e1 only: Claim 1 TP, 1 FP (zz), 1 FN (e1's lower-case claim); Lead 2 TP
    assert only == pytest.approx((1 / (1 + 0.5 * 2) + 1.0) / 2) and whole < only
    # a clean submission: no warning
    frame(gt_rows).to_csv(tmp_path / "clean.csv", index=False)
    assert score_main(["--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "clean.csv")]) == 0
    assert "warning" not in capsys.readouterr().err
    # rows with no words and repeated rows: each is a false positive of the metric, now said with counts
    frame(gt_rows + [("e2", "Claim", ""), ("e3", "Lead", run(10, 14)), ("e3", "Lead", run(10, 14))]).to_csv(
        tmp_path / "odd.csv", index=False)
    assert score_main(["--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "odd.csv")]) == 0
    err = capsys.readouterr().err
    assert "1 predicted rows have an empty predictionstring" in err
    assert "2 predicted rows repeat an earlier row" in err
