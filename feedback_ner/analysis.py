"""Error analysis at the span level: what each ground-truth and each predicted span became, per class.

Consistent with :mod:`feedback_ner.metric` by construction: a pair of spans of one class is a *potential match*
when both overlaps are >= 0.5; ground truths are grouped by (essay, class, predictionstring text) and each group with
a potential match takes the pair with the highest ``max(o1, o2)`` (ties: the earliest prediction row).

Kinds of a **ground-truth** span (per class, ``matched`` = the metric's TP, the other kinds add up to its FN):

- ``matched``: the first row of a group that took a prediction;
- ``duplicate``: another row of such a group (identical text in one essay and class: neither TP nor FN);
- ``boundary``: no potential match, but a prediction of its class overlaps it (under the 0.5 rule);
- ``wrong_class``: no prediction of its class overlaps it, a prediction of another class matches it by the rule;
- ``missed``: nothing of the above.

Kinds of a **predicted** span (they add up to the number of predictions; ``correct`` = predictions minus FP):

- ``correct``: taken by a group; ``duplicate``: a potential match of its class, but its group took another one;
- ``boundary``: overlaps a ground truth of its class, under the rule; ``wrong_class``: matches a ground truth of
  another class by the rule; ``invented``: nothing of the above.

The confusion table counts, per ground-truth class (rows, plus ``(none)`` for predictions matching no ground truth of
any class), the class of the prediction that overlaps it best under the rule (columns, ``(none)`` when none does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from feedback_ner.labels import CLASSES
from feedback_ner.metric import GT_CLASS_COLUMNS, SpanTable

GT_KINDS = ("matched", "duplicate", "boundary", "wrong_class", "missed")
PRED_KINDS = ("correct", "duplicate", "boundary", "wrong_class", "invented")
NONE = "(none)"
ESSAY_BINS = ("short", "medium", "long")
SPAN_BINS = ((1, 5), (6, 10), (11, 20), (21, 40), (41, 80), (81, None))


@dataclass
class ErrorAnalysis:
    """Per-span kinds and the tables built from them.

    ``gt``: one row per ground-truth span (``id, class, start, end, n_words, kind, other_class``, where
    ``other_class`` is the class of the best-overlapping prediction under the rule, ``(none)`` if none). ``pred``:
    one row per prediction (``id, class, start, end, n_words, score, kind, other_class``). ``start``/``end`` are the
    first word and one past the last (a non-contiguous predictionstring keeps its extent).
    """

    gt: pd.DataFrame
    pred: pd.DataFrame

    def breakdown(self) -> pd.DataFrame:
        """Per ground-truth class: TP, FP, FN, F1 (as the metric) and the count of every kind (``gt_*``, ``pred_*``)."""
        classes = _classes(self.gt)
        gt_counts = pd.crosstab(self.gt["class"], self.gt["kind"]).reindex(index=classes, columns=GT_KINDS)
        pred = self.pred[self.pred["class"].isin(classes)]
        pred_counts = pd.crosstab(pred["class"], pred["kind"]).reindex(index=classes, columns=PRED_KINDS)
        gt_counts = gt_counts.fillna(0).astype(np.int64).add_prefix("gt_")
        pred_counts = pred_counts.fillna(0).astype(np.int64).add_prefix("pred_")
        table = pd.DataFrame(index=pd.Index(classes, name="class"))
        table["TP"] = gt_counts["gt_matched"]
        n_pred = pred_counts.sum(axis=1)
        table["FP"] = n_pred - pred_counts["pred_correct"]
        table["FN"] = gt_counts[["gt_boundary", "gt_wrong_class", "gt_missed"]].sum(axis=1)
        table["F1"] = table["TP"] / (table["TP"] + 0.5 * (table["FP"] + table["FN"]))
        return pd.concat([table, gt_counts, pred_counts], axis=1)

    def confusion(self) -> pd.DataFrame:
        """Ground-truth class (rows) x class of the best-overlapping prediction (columns), counts."""
        labels = _classes(self.gt) + [NONE]
        rows = pd.concat(
            [
                self.gt[["class", "other_class"]].rename(columns={"class": "gt", "other_class": "pred"}),
                self.pred.loc[self.pred["other_class"] == NONE, ["class"]].rename(columns={"class": "pred"})
                .assign(gt=NONE),
            ]
        )
        table = pd.crosstab(rows["gt"], rows["pred"]).reindex(index=labels, columns=labels).fillna(0)
        table.index.name, table.columns.name = "ground truth", "predicted"
        return table.astype(np.int64)

    def per_essay(self) -> pd.DataFrame:
        """One row per essay (of the ground truth or predictions): TP, FP, FN, micro F1 and the kind counts,
        worst first."""
        gt = self.gt.assign(tp=self.gt["kind"] == "matched", fn=self.gt["kind"].isin(["boundary", "wrong_class",
                                                                                      "missed"]))
        pred = self.pred.assign(fp=self.pred["kind"] != "correct")
        table = pd.concat(
            [
                gt.groupby("id")[["tp", "fn"]].sum(),
                pred.groupby("id")[["fp"]].sum(),
                pd.crosstab(self.gt["id"], self.gt["kind"]).add_prefix("gt_"),
                pd.crosstab(self.pred["id"], self.pred["kind"]).add_prefix("pred_"),
            ],
            axis=1,
        ).fillna(0).astype(np.int64)
        table = table.rename(columns={"tp": "TP", "fp": "FP", "fn": "FN"})
        denom = table["TP"] + 0.5 * (table["FP"] + table["FN"])
        table["F1"] = np.where(denom > 0, table["TP"] / denom.where(denom > 0, 1), 1.0)
        table = table[["TP", "FP", "FN", "F1", *[c for c in table.columns if c.startswith(("gt_", "pred_"))]]]
        table.index.name = "id"
        return table.sort_values(["F1", "FN"], ascending=[True, False], kind="stable")


def analyse(pred: pd.DataFrame, gt: pd.DataFrame) -> ErrorAnalysis:
    """The kind of every span of ``pred`` (``id, class, predictionstring`` [+ ``score``]) and ``gt`` (train.csv rows
    or ``id, class, predictionstring``), see the module docstring. As in the metric, a prediction for an essay
    without ground truth is ``invented``."""
    gt_class = next((c for c in GT_CLASS_COLUMNS if c in gt.columns), None)
    if gt_class is None:
        raise ValueError("ground truth lacks a class column: it needs id, discourse_type (or class), predictionstring")
    if len(gt) == 0:
        raise ValueError("the ground truth has no rows: there is nothing to analyse against")
    g = SpanTable.from_frame(gt.reset_index(drop=True), class_column=gt_class, name="ground truth")
    p = SpanTable.from_frame(pred.reset_index(drop=True), class_column="class", name="predictions")
    gt_names = np.asarray(g.class_names, dtype=object)[g.cls]
    pred_names = np.asarray(p.class_names, dtype=object)[p.cls]
    # essays as ground-truth codes (-1 where a prediction's essay has no ground truth)
    pred_essay = pd.Index(g.ids, dtype=object).get_indexer(pd.Index(p.ids, dtype=object))[p.essay]

    pair_p, pair_g = _pairs(pred_essay, g.essay)
    inter = _intersections(p, g, pair_p, pair_g)
    keep = inter > 0
    pair_p, pair_g, inter = pair_p[keep], pair_g[keep], inter[keep]
    same = pred_names[pair_p] == gt_names[pair_g]
    rule = (2 * inter >= g.size[pair_g]) & (2 * inter >= p.size[pair_p])
    max_overlap = inter / np.minimum(p.size[pair_p], g.size[pair_g])

    # the metric's winners: per ground-truth group, the highest max_overlap, then the earliest prediction
    group = _gt_groups(g, gt_names)
    pot = np.flatnonzero(same & rule)
    order = pot[np.lexsort((pair_p[pot], -max_overlap[pot], group[pair_g[pot]]))]
    first = np.concatenate(([True], group[pair_g[order][1:]] != group[pair_g[order][:-1]])) if len(order) else order
    winners = order[first.astype(bool)] if len(order) else order
    taken = np.zeros(len(p), dtype=bool)
    taken[pair_p[winners]] = True
    won_group = np.zeros(int(group.max()) + 1 if len(group) else 0, dtype=bool)
    won_group[group[pair_g[winners]]] = True

    def flag(n: int, idx: np.ndarray) -> np.ndarray:
        out = np.zeros(n, dtype=bool)
        out[idx] = True
        return out

    gt_potential = flag(len(g), pair_g[same & rule])
    gt_overlap_same = flag(len(g), pair_g[same])
    gt_rule_other = flag(len(g), pair_g[~same & rule])
    group_first = _first_of_group(group)
    gt_kind = np.select(
        [gt_potential & won_group[group] & group_first, gt_potential, gt_overlap_same, gt_rule_other],
        ["matched", "duplicate", "boundary", "wrong_class"],
        default="missed",
    )
    pred_kind = np.select(
        [taken, flag(len(p), pair_p[same & rule]), flag(len(p), pair_p[same]), flag(len(p), pair_p[~same & rule])],
        ["correct", "duplicate", "boundary", "wrong_class"],
        default="invented",
    )
    gt_other = _best_other(len(g), pair_g[rule], max_overlap[rule], pred_names[pair_p[rule]])
    pred_other = _best_other(len(p), pair_p[rule], max_overlap[rule], gt_names[pair_g[rule]])
    (gs, ge), (ps, pe) = _extent(g), _extent(p)
    gt_df = pd.DataFrame(
        {"id": g.ids[g.essay], "class": gt_names, "start": gs, "end": ge, "n_words": g.size,
         "kind": gt_kind, "other_class": gt_other}
    )
    pred_df = pd.DataFrame(
        {"id": p.ids[p.essay], "class": pred_names, "start": ps, "end": pe, "n_words": p.size,
         "score": pred["score"].to_numpy(dtype=float) if "score" in pred.columns else np.nan,
         "kind": pred_kind, "other_class": pred_other}
    )
    return ErrorAnalysis(gt_df, pred_df)


def essay_length_bins(n_words: pd.Series) -> pd.Series:
    """``short`` / ``medium`` / ``long`` by the essays' word-count tertiles (labels carry the word ranges)."""
    if len(n_words) == 0:
        return pd.Series([], dtype=object)
    lo, hi = np.quantile(n_words.to_numpy(), [1 / 3, 2 / 3])
    lo, hi = int(np.ceil(lo)), int(np.ceil(hi))
    names = [f"short (<= {lo} words)", f"medium ({lo + 1}-{hi})", f"long (> {hi})"]
    codes = np.where(n_words <= lo, 0, np.where(n_words <= hi, 1, 2))
    return pd.Series(np.asarray(names, dtype=object)[codes], index=n_words.index)


def span_length_bin(n_words: np.ndarray | pd.Series) -> np.ndarray:
    """The :data:`SPAN_BINS` label (``"1-5"``, ..., ``"81+"``) of each span length."""
    n = np.asarray(n_words)
    labels = [f"{a}-{b}" if b else f"{a}+" for a, b in SPAN_BINS]
    edges = np.array([b for _, b in SPAN_BINS[:-1]])
    return np.asarray(labels, dtype=object)[np.searchsorted(edges, n, side="left")]


def length_f1(analysis: ErrorAnalysis, essay_words: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Macro F1 per essay-length bin (``essay_words``: words per essay id) and micro F1 per span-length bin.

    By essay length the essays of a bin are scored as a corpus (TP/FP/FN of their spans, macro over the classes).
    By span length a ground truth counts in its own length's bin (TP or FN), a false positive in the prediction's.
    """
    bins = essay_length_bins(essay_words)
    rows = []
    for name in [b for b in _ordered(bins)]:
        ids = set(bins.index[bins == name])
        sub = ErrorAnalysis(analysis.gt[analysis.gt["id"].isin(ids)], analysis.pred[analysis.pred["id"].isin(ids)])
        table = sub.breakdown()
        table = table[(table["TP"] + table["FN"]) > 0]
        rows.append({"essays": name, "n_essays": len(ids), "TP": int(table["TP"].sum()),
                     "FP": int(table["FP"].sum()), "FN": int(table["FN"].sum()),
                     "macro_F1": float(table["F1"].mean()) if len(table) else np.nan})
    by_essay = pd.DataFrame(rows).set_index("essays") if rows else pd.DataFrame()

    gt_bin = span_length_bin(analysis.gt["n_words"])
    pred_bin = span_length_bin(analysis.pred["n_words"])
    labels = [f"{a}-{b}" if b else f"{a}+" for a, b in SPAN_BINS]
    tp = pd.Series(gt_bin[analysis.gt["kind"].to_numpy() == "matched"]).value_counts()
    fn = pd.Series(gt_bin[analysis.gt["kind"].isin(["boundary", "wrong_class", "missed"]).to_numpy()]).value_counts()
    fp = pd.Series(pred_bin[analysis.pred["kind"].to_numpy() != "correct"]).value_counts()
    by_span = pd.DataFrame({"TP": tp, "FP": fp, "FN": fn}).reindex(labels).fillna(0).astype(np.int64)
    denom = by_span["TP"] + 0.5 * (by_span["FP"] + by_span["FN"])
    by_span["F1"] = (by_span["TP"] / denom.where(denom > 0)).astype(float)
    by_span.index.name = "span words"
    return by_essay, by_span


def _ordered(bins: pd.Series) -> list[str]:
    seen: dict[str, int] = {}
    for name in bins:
        seen.setdefault(name, len(seen))
    return sorted(seen, key=lambda n: ("short" not in n, "long" in n))


def _classes(gt: pd.DataFrame) -> list[str]:
    present = set(gt["class"])
    return [c for c in CLASSES if c in present] + sorted(present - set(CLASSES))


def _pairs(pred_essay: np.ndarray, gt_essay: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (prediction, ground truth) pair of the same essay, any classes."""
    n_essays = int(gt_essay.max()) + 1 if len(gt_essay) else 0
    gt_order = np.argsort(gt_essay, kind="stable")
    per = np.bincount(gt_essay, minlength=n_essays)
    first = np.cumsum(per) - per
    valid = pred_essay >= 0
    safe = np.where(valid, pred_essay, 0)
    counts = np.where(valid, per[safe] if n_essays else 0, 0)
    pair_p = np.repeat(np.arange(len(pred_essay), dtype=np.int64), counts)
    base = np.repeat(first[safe] if n_essays else np.zeros(len(safe), np.int64), counts)
    within = np.arange(len(pair_p), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return pair_p, gt_order[base + within]


def _words(t: SpanTable, row: int) -> frozenset[int] | range:
    return t.sets.get(row, range(int(t.start[row]), int(t.end[row])))


def _intersections(p: SpanTable, g: SpanTable, pair_p: np.ndarray, pair_g: np.ndarray) -> np.ndarray:
    """``|P ∩ G|`` per pair (arithmetic on runs; sets only for non-contiguous predictionstrings)."""
    inter = np.maximum(np.minimum(p.end[pair_p], g.end[pair_g]) - np.maximum(p.start[pair_p], g.start[pair_g]), 0)
    if p.sets or g.sets:
        in_p = np.isin(pair_p, list(p.sets))
        in_g = np.isin(pair_g, list(g.sets))
        for i in np.flatnonzero(in_p | in_g).tolist():
            a, b = _words(p, int(pair_p[i])), _words(g, int(pair_g[i]))
            inter[i] = len(set(a) & set(b))
    return inter


def _extent(t: SpanTable) -> tuple[np.ndarray, np.ndarray]:
    """First word and one past the last of each span (the extent of a non-contiguous one)."""
    start, end = t.start.copy(), t.end.copy()
    for row, words in t.sets.items():
        start[row], end[row] = min(words), max(words) + 1
    return start, end


def _gt_groups(g: SpanTable, names: np.ndarray) -> np.ndarray:
    """Group code per ground-truth row: equal (essay, class, predictionstring text)."""
    frame = pd.DataFrame({"e": g.essay, "c": names, "t": g.text_key})
    return frame.groupby(["e", "c", "t"], sort=False).ngroup().to_numpy()


def _first_of_group(group: np.ndarray) -> np.ndarray:
    first = np.zeros(len(group), dtype=bool)
    if len(group):
        _, idx = np.unique(group, return_index=True)
        first[idx] = True
    return first


def _best_other(n: int, rows: np.ndarray, overlap: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Per row: the class of its best partner under the rule (highest overlap), :data:`NONE` without one."""
    out = np.full(n, NONE, dtype=object)
    if len(rows):
        order = np.lexsort((-overlap, rows))
        r = rows[order]
        first = np.concatenate(([True], r[1:] != r[:-1]))
        out[r[first]] = classes[order][first]
    return out
