"""Candidate spans of the second stage and their features, vectorised over a whole corpus (issue 13).

All essays are stacked into one word axis (:class:`Words`); a candidate is ``(essay, class, start, end)`` with
``start``/``end`` global word indices (``end`` exclusive). Every feature is an array operation over all candidates
of a class at once: sums and means from cumulative sums, minima and maxima from ``ufunc.reduceat`` over the
candidates' word ranges. No Python loop runs per candidate (the loops are over the 7 classes).

- :func:`make_candidates`: start words whose ``B-X`` probability, or jump in the class probability ``B-X + I-X``,
  passes a low per-class threshold, combined with every plausible end word (the class probability of the last word
  times the probability that the next word does not continue the span passes a low threshold, or the essay ends)
  up to the class's span-length limit (:func:`span_length_limits`: a percentile of train.csv's lengths), plus the
  spans of the ordinary decoder (:func:`postprocess.candidate_spans`).
- :data:`FEATURES` and :func:`features`: the feature matrix (the list of features lives here only).
- :func:`candidate_labels`: 1 where a candidate matches a ground truth of its class by the competition's
  >= 0.5 / >= 0.5 overlap rule; :func:`candidate_recall`: the share of ground truths some candidate matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from feedback_ner.errors import FeedbackError
from feedback_ner.labels import B_IDS, CLASSES, I_IDS, NUM_LABELS, O_ID, word_offsets
from feedback_ner.metric import GT_CLASS_COLUMNS, SpanTable, _intersections, match_counts
from feedback_ner.postprocess import candidate_spans

N_CLASSES = len(CLASSES)
B_COLS = np.array([B_IDS[c] for c in CLASSES])
I_COLS = np.array([I_IDS[c] for c in CLASSES])
SENTENCE_END = ".!?"

# The one list of features, in the column order of the matrix (the rescorer folder stores it and checks it).
FEATURES: tuple[str, ...] = (
    "class_id", "n_words", "start_pos", "end_pos", "rel_start", "rel_end", "essay_words",
    "mean", "std", "min", "max", "head_mean", "tail_mean", "instability", "argmax_share",
    "b_start", "b_second", "b_inner_max", "b_any_start", "b_any_inner_max",
    "before_1", "before_2", "after_1", "after_2", "i_after", "b_any_after",
    "window_before", "window_after", "other_best_mean", "o_mean", "essay_class_mean", "essay_class_max",
    "from_decoder", "rank", "group_size", "mean_vs_best",
    "paragraph", "paragraph_from_end", "paragraphs", "sentence", "sentence_from_end",
    "starts_paragraph", "ends_paragraph", "starts_sentence", "ends_sentence",
)
CATEGORICAL = ("class_id",)


@dataclass
class CandidateConfig:
    """Low per-class thresholds that decide which spans become candidates (recall matters, not precision)."""

    start_thresh: dict[str, float] = field(
        default_factory=lambda: {c: 0.02 if c in ("Counterclaim", "Rebuttal") else 0.05 for c in CLASSES})
    jump_thresh: dict[str, float] = field(default_factory=lambda: {c: 0.1 for c in CLASSES})
    end_thresh: dict[str, float] = field(default_factory=lambda: {c: 0.05 for c in CLASSES})
    min_mean: float = 0.1  # a candidate's mean class probability must reach this
    max_ends: int = 10  # per start word, the ends with the highest end scores (0: all)
    end_rule: str = "drop"  # end score of word w: "drop" P_X(w) - P(I-X)(w+1), "product" P_X(w) (1 - P(I-X)(w+1))
    max_words: dict[str, int] = field(default_factory=lambda: {c: 400 for c in CLASSES})

    def __post_init__(self) -> None:
        for name in ("start_thresh", "jump_thresh", "end_thresh", "max_words"):
            value = getattr(self, name)
            unknown = sorted(set(value) - set(CLASSES))
            if unknown:
                raise FeedbackError(f"candidate config {name}: unknown class(es) {unknown}; classes are {CLASSES}")
            default = CandidateConfig.__dataclass_fields__[name].default_factory()
            setattr(self, name, {c: type(default[c])(value.get(c, default[c])) for c in CLASSES})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def span_length_limits(gt: pd.DataFrame, quantile: float = 0.995) -> dict[str, int]:
    """Per class, the ``quantile`` of the ground-truth span lengths in words (classes absent: the overall value)."""
    class_column = next((c for c in GT_CLASS_COLUMNS if c in gt.columns), None)
    if class_column is None or "predictionstring" not in gt.columns or gt.empty:
        raise FeedbackError("ground truth needs rows with discourse_type (or class) and predictionstring columns")
    lengths = gt["predictionstring"].astype(str).str.split().str.len()
    overall = int(np.ceil(np.quantile(lengths, quantile)))
    per_class = lengths.groupby(gt[class_column]).quantile(quantile)
    return {c: int(np.ceil(per_class[c])) if c in per_class.index else overall for c in CLASSES}


def fit_candidate_config(
    words: Words, gt: pd.DataFrame, max_words: Mapping[str, int], recall: float = 0.97, floor: float = 0.02,
    cap: float = 0.1, **fixed: Any,
) -> CandidateConfig:
    """Low per-class thresholds learned from the data, as the winners set theirs "by recall": for each class the
    start (``B`` or jump) and end scores that ``recall`` of its ground-truth spans reach, clipped to
    ``[floor, cap]``; ``min_mean`` likewise over all spans. A sharp model gets the cap (few spurious starts), a weak
    one low thresholds (recall first). Classes without ground truth keep the defaults."""
    base = CandidateConfig(max_words=dict(max_words), **fixed)
    table = _gt_table(gt, words)
    if table is None:
        return base
    essay_index = {k: i for i, k in enumerate(words.ids)}
    gt_essay = np.array([essay_index[str(x)] for x in table.ids], np.int64)[table.essay]
    gt_class = np.array([CLASSES.index(x) if x in CLASSES else -1 for x in table.class_names], np.int64)[table.cls]
    ok = (table.size > 0) & (gt_class >= 0)
    first, last = table.start.copy(), table.end.copy()
    for row, ws in table.sets.items():  # a span written out of order or with gaps ("3 4 7 8"): its extent
        first[row], last[row] = min(ws), max(ws) + 1
    start = words.offsets[gt_essay] + first
    end = words.offsets[gt_essay] + np.maximum(last, first + 1)
    n = int(words.offsets[-1])
    ok &= end <= n
    q = 1.0 - recall
    means = []
    for c, cls in enumerate(CLASSES):
        rows = np.flatnonzero(ok & (gt_class == c))
        if len(rows) == 0:
            continue
        b, i = words.probs[:, B_COLS[c]], words.probs[:, I_COLS[c]]
        pc = b + i
        s, e = start[rows], end[rows]
        prev = np.where(np.isin(s, words.offsets[:-1]), 0.0, pc[np.maximum(s - 1, 0)])
        start_score = np.maximum(b[s], pc[s] - prev)
        nxt = np.where(np.isin(e, words.offsets[1:]), 0.0, i[np.minimum(e, n - 1)])
        end_score = pc[e - 1] - nxt if base.end_rule == "drop" else pc[e - 1] * (1.0 - nxt)
        t_start = round(float(np.clip(np.quantile(start_score, q), floor, cap)), 4)
        base.start_thresh[cls] = base.jump_thresh[cls] = t_start
        base.end_thresh[cls] = round(float(np.clip(np.quantile(end_score, q), floor, cap)), 4)
        cs = np.concatenate([[0.0], np.cumsum(pc, dtype=np.float64)])
        means.append((cs[e] - cs[s]) / (e - s))
    if means:
        base.min_mean = round(float(np.clip(np.quantile(np.concatenate(means), q), 0.01, cap)), 4)
    return base


@dataclass
class Words:
    """All essays on one word axis: ``probs`` [N, 15], ``offsets`` [E+1], and, from the texts, paragraph and
    sentence starts per word (None without texts: those features are then missing values)."""

    ids: list[str]
    offsets: np.ndarray
    probs: np.ndarray
    paragraph_start: np.ndarray | None = None
    sentence_start: np.ndarray | None = None
    sentence_end: np.ndarray | None = None

    @property
    def essay_of_word(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.ids)), np.diff(self.offsets))


def stack_words(word_probs: Mapping[str, np.ndarray], texts: Mapping[str, str] | None = None) -> Words:
    """Stacks ``{id: [n_words, 15]}`` (and, when given, the essays' texts for paragraph/sentence features)."""
    ids = [str(k) for k in word_probs]
    arrays = list(word_probs.values())
    for essay_id, a in zip(ids, arrays, strict=True):
        if a.ndim != 2 or a.shape[1] != NUM_LABELS:
            raise FeedbackError(f"word probabilities of essay {essay_id!r} have shape {a.shape}; need [n_words, 15]")
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    probs = np.concatenate(arrays).astype(np.float32, copy=False) if arrays else np.zeros((0, NUM_LABELS), np.float32)
    words = Words(ids, offsets, probs)
    if texts is not None:
        missing = [i for i in ids if i not in texts]
        if missing:
            raise FeedbackError(f"no text for {len(missing)} essay(s) of the word probabilities, e.g. {missing[0]!r}")
        n = int(offsets[-1])
        para, sent, ends = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
        for i, essay_id in enumerate(ids):  # one pass per essay (not per candidate)
            p, s, e = _text_structure(texts[essay_id])
            if len(p) != lengths[i]:
                raise FeedbackError(
                    f"essay {essay_id!r}: its text has {len(p)} words but its word probabilities {lengths[i]}; "
                    "are the texts and the probabilities from the same essays?")
            para[offsets[i]:offsets[i + 1]], sent[offsets[i]:offsets[i + 1]] = p, s
            ends[offsets[i]:offsets[i + 1]] = e
        words.paragraph_start, words.sentence_start, words.sentence_end = para, sent, ends
    return words


def _text_structure(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per word of ``text.split()``: starts a paragraph (a line end before it: ``\\n``, ``\\r\\n`` or a lone ``\\r``),
    starts a sentence, ends one."""
    starts, ends = word_offsets(text)
    if len(starts) == 0:
        return np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, bool)
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    newlines = np.concatenate([[0], np.cumsum((codes == 10) | (codes == 13))])
    para = np.ones(len(starts), bool)
    para[1:] = newlines[starts[1:]] > newlines[ends[:-1]]
    last_chars = np.array([text[e - 1] for e in ends.tolist()])
    sentence_end = np.isin(last_chars, list(SENTENCE_END))
    sent = para.copy()
    sent[1:] |= sentence_end[:-1]
    return para, sent, sentence_end


@dataclass
class Candidates:
    """Candidate spans: ``essay`` (row of ``Words.ids``), ``class_id``, global ``start``/``end`` (exclusive),
    ``from_decoder`` (also a span of the ordinary decoder). Sorted by class, essay, start, end."""

    essay: np.ndarray
    class_id: np.ndarray
    start: np.ndarray
    end: np.ndarray
    from_decoder: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    def take(self, rows: np.ndarray) -> Candidates:
        return Candidates(*(getattr(self, k)[rows] for k in ("essay", "class_id", "start", "end", "from_decoder")))

    def frame(self, words: Words) -> pd.DataFrame:
        """``id, class, start, end`` with essay-local word indices."""
        base = words.offsets[self.essay]
        return pd.DataFrame({
            "id": np.array(words.ids, dtype=object)[self.essay] if len(self) else np.zeros(0, object),
            "class": np.array(CLASSES, dtype=object)[self.class_id],
            "start": self.start - base, "end": self.end - base,
        })


def _ranges_expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows with index ranges ``[lo, hi)``: (row of each element, element index)."""
    counts = np.maximum(hi - lo, 0)
    row = np.repeat(np.arange(len(lo)), counts)
    first = np.cumsum(counts) - counts
    return row, np.repeat(lo - first, counts) + np.arange(int(counts.sum()), dtype=np.int64)


def make_candidates(words: Words, config: CandidateConfig | None = None) -> Candidates:
    """Every (start, end) pair of plausible start and end words per class, plus the decoder's spans, deduplicated."""
    config = config or CandidateConfig()
    n = int(words.offsets[-1])
    essay_of = words.essay_of_word
    lengths = np.diff(words.offsets)
    first_word = np.zeros(n, bool)
    first_word[words.offsets[:-1][lengths > 0]] = True
    last_word = np.zeros(n, bool)
    last_word[words.offsets[1:][lengths > 0] - 1] = True
    keys = []
    for c, cls in enumerate(CLASSES):
        b, i = words.probs[:, B_COLS[c]], words.probs[:, I_COLS[c]]
        pc = b + i
        prev = np.concatenate([[0.0], pc[:-1]]).astype(np.float32)
        prev[first_word] = 0.0
        starts = np.flatnonzero((b >= config.start_thresh[cls]) | (pc - prev >= config.jump_thresh[cls]))
        next_i = np.concatenate([i[1:], [0.0]]).astype(np.float32)
        next_i[last_word] = 0.0
        end_score = pc - next_i if config.end_rule == "drop" else pc * (1.0 - next_i)
        lasts = np.flatnonzero(end_score >= config.end_thresh[cls])
        limit = np.minimum(starts + config.max_words[cls] - 1, words.offsets[essay_of[starts] + 1] - 1)
        row, at = _ranges_expand(np.searchsorted(lasts, starts, "left"), np.searchsorted(lasts, limit, "right"))
        s, e = starts[row], lasts[at] + 1
        csum = np.concatenate([[0.0], np.cumsum(pc, dtype=np.float64)])
        good = (csum[e] - csum[s]) >= config.min_mean * (e - s)
        if config.max_ends:
            good &= _rank_in_group(row, -end_score[e - 1]) < config.max_ends
        keys.append(_key(c, s[good], e[good], n))
    decoded = candidate_spans({k: words.probs[a:b] for k, a, b in
                               zip(words.ids, words.offsets[:-1].tolist(), words.offsets[1:].tolist())})
    d_base = words.offsets[decoded["essay"].to_numpy()]
    d_key = _key(decoded["class_id"].to_numpy(), d_base + decoded["start"].to_numpy(),
                 d_base + decoded["end"].to_numpy(), n)
    key = np.unique(np.concatenate(keys + [d_key]))
    c, rest = np.divmod(key, (n + 1) ** 2)
    s, e = np.divmod(rest, n + 1)
    return Candidates(essay_of[s] if n else s, c.astype(np.int64), s, e, np.isin(key, d_key))


def _rank_in_group(group: np.ndarray, value: np.ndarray) -> np.ndarray:
    """0-based rank of each element by ascending ``value`` within its ``group`` (groups given as sorted ints)."""
    order = np.lexsort((value, group))
    g = group[order]
    new = np.concatenate([[True], g[1:] != g[:-1]]) if len(g) else np.zeros(0, bool)
    first = np.flatnonzero(new)
    rank = np.empty(len(group), np.int64)
    rank[order] = np.arange(len(group)) - first[np.cumsum(new) - 1]
    return rank


def _key(c: Any, s: np.ndarray, e: np.ndarray, n: int) -> np.ndarray:
    return (np.asarray(c, np.int64) * (n + 1) + s) * (n + 1) + e


def _seg_reduce(ufunc: np.ufunc, values: np.ndarray, lo: np.ndarray, hi: np.ndarray, empty: float) -> np.ndarray:
    """``ufunc.reduce(values[lo:hi])`` per row; ``empty`` where ``lo >= hi``."""
    if len(lo) == 0:
        return np.zeros(0, np.float32)
    padded = np.append(values, values.dtype.type(0))
    idx = np.empty(2 * len(lo), np.int64)
    idx[0::2], idx[1::2] = lo, np.maximum(hi, lo)
    idx = np.minimum(idx, len(values))
    out = ufunc.reduceat(padded, idx)[0::2]
    return np.where(hi > lo, out, empty).astype(np.float32)


def _at(values: np.ndarray, pos: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``values[pos]`` where ``lo <= pos < hi`` (the essay's words), NaN elsewhere."""
    inside = (pos >= lo) & (pos < hi)
    return np.where(inside, values[np.clip(pos, 0, max(len(values) - 1, 0))], np.nan).astype(np.float32)


def features(words: Words, cand: Candidates) -> np.ndarray:
    """The ``[n_candidates, len(FEATURES)]`` float32 matrix, columns in :data:`FEATURES` order."""
    out = np.full((len(cand), len(FEATURES)), np.nan, np.float32)
    col = {name: j for j, name in enumerate(FEATURES)}
    if len(cand) == 0:
        return out
    p = words.probs
    class_probs = p[:, B_COLS] + p[:, I_COLS]  # [N, 7]
    b_any = p[:, B_COLS].sum(axis=1)
    argmax_class = np.where(p.argmax(axis=1) == O_ID, -1, (p.argmax(axis=1) - 1) // 2)
    cs_all = np.concatenate([np.zeros((1, N_CLASSES)), np.cumsum(class_probs, axis=0, dtype=np.float64)])
    cs_o = np.concatenate([[0.0], np.cumsum(p[:, O_ID], dtype=np.float64)])
    essay_lo, essay_hi = words.offsets[cand.essay], words.offsets[cand.essay + 1]
    for c in range(N_CLASSES):
        rows = np.flatnonzero(cand.class_id == c)
        if len(rows) == 0:
            continue
        s, e, lo, hi = cand.start[rows], cand.end[rows], essay_lo[rows], essay_hi[rows]
        k = (e - s).astype(np.float64)
        pc = class_probs[:, c]
        cs = cs_all[:, c]
        cs2 = np.concatenate([[0.0], np.cumsum(pc.astype(np.float64) ** 2)])
        diff2 = np.concatenate([[0.0], np.cumsum(np.diff(pc.astype(np.float64), append=pc[-1:]) ** 2)])
        is_c = np.concatenate([[0], np.cumsum(argmax_class == c)])
        b = p[:, B_COLS[c]]
        mean = (cs[e] - cs[s]) / k
        head = np.minimum(s + 3, e)
        tail = np.maximum(e - 3, s)
        win_lo, win_hi = np.maximum(s - (e - s), lo), np.minimum(e + (e - s), hi)
        other = (cs_all[e] - cs_all[s]) / k[:, None]
        other[:, c] = -np.inf
        essay_sum = cs[hi] - cs[lo]
        values = {
            "class_id": np.full(len(rows), c), "n_words": k, "start_pos": s - lo, "end_pos": e - lo,
            "rel_start": (s - lo) / np.maximum(hi - lo, 1), "rel_end": (e - lo) / np.maximum(hi - lo, 1),
            "essay_words": hi - lo, "mean": mean,
            "std": np.sqrt(np.maximum((cs2[e] - cs2[s]) / k - mean**2, 0.0)),
            "min": _seg_reduce(np.minimum, pc, s, e, np.nan), "max": _seg_reduce(np.maximum, pc, s, e, np.nan),
            "head_mean": (cs[head] - cs[s]) / (head - s), "tail_mean": (cs[e] - cs[tail]) / (e - tail),
            "instability": np.where(k > 1, (diff2[e - 1] - diff2[s]) / np.maximum(k - 1, 1), 0.0),
            "argmax_share": (is_c[e] - is_c[s]) / k,
            "b_start": b[s], "b_second": _at(b, s + 1, lo, e),
            "b_inner_max": _seg_reduce(np.maximum, b, s + 1, e, 0.0), "b_any_start": b_any[s],
            "b_any_inner_max": _seg_reduce(np.maximum, b_any, s + 1, e, 0.0),
            "before_1": _at(pc, s - 1, lo, hi), "before_2": _at(pc, s - 2, lo, hi),
            "after_1": _at(pc, e, lo, hi), "after_2": _at(pc, e + 1, lo, hi),
            "i_after": _at(p[:, I_COLS[c]], e, lo, hi), "b_any_after": _at(b_any, e, lo, hi),
            "window_before": np.where(s > win_lo, (cs[s] - cs[win_lo]) / np.maximum(s - win_lo, 1), np.nan),
            "window_after": np.where(win_hi > e, (cs[win_hi] - cs[e]) / np.maximum(win_hi - e, 1), np.nan),
            "other_best_mean": other.max(axis=1), "o_mean": (cs_o[e] - cs_o[s]) / k,
            "essay_class_mean": essay_sum / np.maximum(hi - lo, 1),
            "from_decoder": cand.from_decoder[rows],
        }
        max_per_essay = _seg_reduce(np.maximum, pc, words.offsets[:-1], words.offsets[1:], 0.0)
        values["essay_class_max"] = max_per_essay[cand.essay[rows]]
        values.update(_rank_features(cand.essay[rows], mean))
        for name, v in values.items():
            out[rows, col[name]] = v
    add_structure(words, cand, out)
    return out


def _rank_features(essay: np.ndarray, mean: np.ndarray) -> dict[str, np.ndarray]:
    """Rank of each candidate by mean class probability among its essay's candidates of the class."""
    order = np.lexsort((-mean, essay))
    g = essay[order]
    new = np.concatenate([[True], g[1:] != g[:-1]])
    first = np.flatnonzero(new)
    seg = np.cumsum(new) - 1
    rank = np.empty(len(mean))
    rank[order] = np.arange(len(mean)) - first[seg]
    size = np.empty(len(mean))
    size[order] = np.diff(np.append(first, len(mean)))[seg]
    best = np.empty(len(mean))
    best[order] = mean[order][first][seg]
    return {"rank": rank, "group_size": size, "mean_vs_best": mean / np.maximum(best, 1e-9)}


def _structure_indices(words: Words) -> dict[str, np.ndarray] | None:
    if words.paragraph_start is None:
        return None
    essay_of = words.essay_of_word
    out = {}
    for name, flags in (("paragraph", words.paragraph_start), ("sentence", words.sentence_start)):
        cum = np.cumsum(flags)
        before = np.concatenate([[0], cum])[words.offsets[:-1]]  # flags before each essay
        index = cum - before[essay_of] - 1  # 0-based index within the essay
        total = np.concatenate([[0], cum])[words.offsets[1:]] - before
        out[name], out[f"{name}_total"] = index, total
    return out


def add_structure(words: Words, cand: Candidates, x: np.ndarray) -> None:
    """Fills the paragraph/sentence columns of ``x`` in place (left missing without texts)."""
    structure = _structure_indices(words)
    if structure is None or len(cand) == 0:
        return
    col = {name: j for j, name in enumerate(FEATURES)}
    essay = cand.essay
    para, sent = structure["paragraph"], structure["sentence"]
    n_para, n_sent = structure["paragraph_total"][essay], structure["sentence_total"][essay]
    s, e, hi = cand.start, cand.end, words.offsets[essay + 1]
    after = np.minimum(e, len(para) - 1)
    ends_essay = e >= hi
    x[:, col["paragraph"]] = para[s]
    x[:, col["paragraphs"]] = n_para
    x[:, col["paragraph_from_end"]] = n_para - 1 - para[s]
    x[:, col["sentence"]] = sent[s]
    x[:, col["sentence_from_end"]] = n_sent - 1 - sent[s]
    x[:, col["starts_paragraph"]] = words.paragraph_start[s]
    x[:, col["ends_paragraph"]] = ends_essay | words.paragraph_start[after]
    x[:, col["starts_sentence"]] = words.sentence_start[s]
    x[:, col["ends_sentence"]] = words.sentence_end[e - 1]


def candidate_labels(words: Words, cand: Candidates, gt: pd.DataFrame) -> np.ndarray:
    """1 where a candidate matches a ground-truth span of its class (|P∩G| >= |G|/2 and >= |P|/2), else 0."""
    labels = np.zeros(len(cand), np.int8)
    table = _gt_table(gt, words)
    if table is None or len(cand) == 0:
        return labels
    pred, gt_table, pair_p, pair_g = _pairs(words, cand, table)
    inter = _intersections(pred, gt_table, pair_p, pair_g)
    ok = (inter > 0) & (2 * inter >= gt_table.size[pair_g]) & (2 * inter >= pred.size[pair_p])
    labels[pair_p[ok]] = 1
    return labels


def _gt_table(gt: pd.DataFrame, words: Words) -> SpanTable | None:
    class_column = next((c for c in GT_CLASS_COLUMNS if c in gt.columns), None)
    if class_column is None:
        raise FeedbackError("ground truth lacks a class column: it needs id, discourse_type (or class), "
                            "predictionstring, as train.csv has")
    gt = gt[gt["id"].astype(str).isin(set(words.ids)) & gt[class_column].isin(CLASSES)]
    if gt.empty:
        return None
    return SpanTable.from_frame(gt.assign(id=gt["id"].astype(str)), class_column=class_column, name="ground truth")


def _pairs(words: Words, cand: Candidates, gt: SpanTable) -> tuple[SpanTable, SpanTable, np.ndarray, np.ndarray]:
    """Candidates (essay-local) as a SpanTable, and every (candidate, ground truth) pair of one essay and class."""
    local = cand.frame(words)
    pred = SpanTable.from_arrays(local["id"].to_numpy(), local["class"].to_numpy(), local["start"], local["end"])
    essay_index = {k: i for i, k in enumerate(words.ids)}
    gt_essay = np.array([essay_index[str(x)] for x in gt.ids], np.int64)[gt.essay]
    gt_class = np.array([CLASSES.index(x) for x in gt.class_names], np.int64)[gt.cls]
    gt_key = gt_essay * N_CLASSES + gt_class
    order = np.argsort(gt_key, kind="stable")
    sorted_keys = gt_key[order]
    key = cand.essay * N_CLASSES + cand.class_id
    row, at = _ranges_expand(np.searchsorted(sorted_keys, key, "left"), np.searchsorted(sorted_keys, key, "right"))
    return pred, gt, row, order[at]


def candidate_recall(words: Words, cand: Candidates, gt: pd.DataFrame) -> pd.DataFrame:
    """Per ground-truth class: ground-truth spans, candidates, share of ground truths some candidate matches."""
    table = _gt_table(gt, words)
    counts = np.bincount(cand.class_id, minlength=N_CLASSES)
    if table is None:
        return pd.DataFrame(columns=["gt spans", "candidates", "recall"])
    local = cand.frame(words)
    pred = SpanTable.from_arrays(local["id"].to_numpy(), local["class"].to_numpy(), local["start"], local["end"])
    matched = match_counts(pred, table)
    rows_per_class = pd.Series(np.asarray(table.class_names, dtype=object)[table.cls]).value_counts()
    n_gt = rows_per_class.reindex(matched.index).astype(np.int64)
    out = pd.DataFrame({
        "gt spans": n_gt,
        "candidates": [int(counts[CLASSES.index(c)]) for c in matched.index],
        "recall": 1.0 - matched["FN"] / n_gt.clip(lower=1),
    }, index=matched.index)
    out.loc["mean"] = [int(n_gt.sum()), int(counts.sum()), float(out["recall"].mean())]
    return out
