"""The competition metric: macro overlap-F1 over the ground-truth classes.

The rule (``/work/shared/FACTS.md``, "The metric"), per class that occurs in the ground truth and per essay:

1. A prediction ``P`` and a ground truth ``G`` of that class, as sets of word indices, are a *potential match*
   when ``|P∩G|/|G| >= 0.5`` and ``|P∩G|/|P| >= 0.5``.
2. Ground truths are grouped by (essay id, predictionstring text). Every group with a potential match gives one
   TP: the pair with the highest ``max(o1, o2)`` is taken and its prediction counts as matched.
3. FP = predictions of the class that no group took; FN = ground-truth rows with no potential match at all.
4. ``F1 = TP / (TP + 0.5 (FP + FN))``; the score is the plain mean over ground-truth classes.

Consequences of the public pandas reference (``sort_values("max_overlap", ascending=False)`` then
``groupby(["id", "predictionstring_gt"]).first()``) that this module reproduces, and where it had to choose:

- One prediction can be taken by several groups (two overlapping ground truths of one class, or two rows whose
  predictionstrings differ only in text, e.g. ``"1 2"`` and ``"2 1"``): it is then one TP per group and no FP.
- Ground-truth rows with identical text in one essay and class are one group: at most one TP between them, but
  each of them is an FN when none is matched.
- Ties in ``max(o1, o2)`` inside a group never change TP or FN; they can change FP (which prediction is taken).
  The reference sorts with pandas' default quicksort, which is not stable (on AVX-512 machines even five rows
  come out reordered), so its tie-break is platform-dependent. Here ties go to the prediction that comes first in
  the prediction table: exactly what the reference does with a stable sort, since the outer merge lists a
  group's candidate rows in prediction order.
- The public code also counts the NaN that its outer merge puts in ``pred_id`` / ``gt_id`` as one extra FP / FN
  of a class whenever some essay has ground truths but no prediction of it (or the reverse). That is an
  artefact, not the rule; it is not reproduced (``benchmarks/pandas_metric.py`` keeps the reference's shape
  with both points fixed).
- predictionstrings are read as sets of integers (0 .. 2**40-1) split on any whitespace; the reference compares
  sets of ``split(" ")`` strings, which differs only for malformed strings (double spaces, leading zeros). An
  empty predictionstring (or a missing one) matches nothing: an empty prediction is an FP, an empty ground truth
  an FN. Predictions of classes absent from the ground truth are ignored; predictions for essays without ground
  truth are FPs of their class. Ids are compared as text (an int id 12 matches "12").
- ``ScoreResult.as_dict`` names per-class keys with underscores for spaces: ``f1_Concluding_Statement``.

Speed (competition size, ~140k ground truths and ~120k predictions: ~0.11 s of CPU against ~13 s for the pandas
code, see ``benchmarks/bench_metric.py``): spans become arrays (essay code, class code, first word, end word,
word count). The usual predictionstring, one run written canonically (``"12 13 14"``), is recognised without
parsing by comparing its bytes, eight at a time, with the canonical buffer ``"0 1 2 3 ..."`` at the offset its
first word gives; anything else is parsed in Python and, when its words are not one run, kept as a set for an
exact intersection. Pairs are formed only within (essay, class). A ground truth scored many times (tuning) can be
encoded once with :meth:`SpanTable.from_frame` and passed to :func:`score` in place of the frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feedback_ner.errors import InvalidInputError
from feedback_ner.labels import CLASSES

logger = logging.getLogger("feedback_ner.metric")

PRED_COLUMNS = ("id", "class", "predictionstring")
GT_CLASS_COLUMNS = ("discourse_type", "class")  # train.csv has discourse_type; a submission-shaped frame has class

_MAX_FIRST_DIGITS = 6  # a canonical string starts below 10**6; others take the Python path
_MAX_WORD = 1 << 40  # word indices beyond this are not words of an essay (and would overflow int64 keys)
_MAX_CANON_WORDS = 1 << 17  # the canonical buffer "0 1 ... M" stays below ~1 MB (essays have < 2,000 words)
_TAIL_MASKS = np.array([0] + [(1 << (8 * r)) - 1 for r in range(1, 8)] + [(1 << 64) - 1], dtype=np.uint64)


@dataclass(frozen=True)
class SpanTable:
    """Spans encoded as arrays, one row per span (the fast path of :func:`score`).

    ``essay``/``cls`` index ``ids``/``class_names``. A span whose words form one run ``start .. end-1`` has
    ``start``/``end`` set; any other span has its words in ``sets[row]``. ``size`` is the number of distinct
    words (0: empty span, it matches nothing). Equal ``text_key`` within an essay and class means equal
    predictionstring text (the reference groups ground truths by text).
    """

    ids: np.ndarray
    essay: np.ndarray
    class_names: tuple[str, ...]
    cls: np.ndarray
    start: np.ndarray
    end: np.ndarray
    size: np.ndarray
    text_key: np.ndarray
    sets: dict[int, frozenset[int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.essay)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, class_column: str = "class", name: str = "frame") -> SpanTable:
        """Encode a frame with ``id``, ``class_column`` and ``predictionstring`` (``name`` is used in errors)."""
        missing = [c for c in ("id", class_column, "predictionstring") if c not in df.columns]
        if missing:
            raise InvalidInputError(
                f"{name} lacks column(s) {', '.join(repr(c) for c in missing)}; "
                f"it needs id, {class_column}, predictionstring (has: {', '.join(map(str, df.columns))})"
            )
        for column in ("id", class_column):
            missing_rows = np.flatnonzero(df[column].isna().to_numpy())
            if len(missing_rows):
                raise InvalidInputError(
                    f"{name} row {missing_rows[0] + 1}: {column} is missing ({len(missing_rows)} rows)")
        essay, ids = _factorize(df["id"])
        cls_codes, class_names = _factorize(df[class_column])
        start, end, size, text_key, sets = parse_predictionstrings(df["predictionstring"], name=name, ids=df["id"])
        return cls(ids, essay, tuple(class_names), cls_codes, start, end, size, text_key, sets)

    @classmethod
    def from_arrays(
        cls,
        ids: Sequence[str] | np.ndarray,
        classes: Sequence[str] | np.ndarray,
        starts: Sequence[int] | np.ndarray,
        ends: Sequence[int] | np.ndarray,
    ) -> SpanTable:
        """Contiguous spans ``starts[i] .. ends[i]-1`` without building predictionstrings (e.g. from a decoder)."""
        essay, uniq_ids = _factorize(pd.Series(np.asarray(ids, dtype=object)))
        cls_codes, class_names = _factorize(pd.Series(np.asarray(classes, dtype=object)))
        start = np.asarray(starts, dtype=np.int64)
        end = np.asarray(ends, dtype=np.int64)
        if not (len(start) == len(end) == len(essay) == len(cls_codes)):
            raise ValueError("ids, classes, starts and ends must have the same length")
        if len(start) and (start.min() < 0 or (end < start).any()):
            raise ValueError("spans need 0 <= start <= end")
        size = end - start
        text_key = _run_key(start, size)
        return cls(uniq_ids, essay, tuple(class_names), cls_codes, start, end, size, text_key, {})


@dataclass
class ScoreResult:
    """Macro F1 and the per-class table (index: ground-truth classes; columns TP, FP, FN int, F1 float)."""

    f1: float
    table: pd.DataFrame

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """Flat floats: ``{prefix}f1`` and ``{prefix}f1_<class>`` with spaces as underscores
        (``f1_Concluding_Statement``), ready for Trainer metrics and Optuna."""
        out = {f"{prefix}f1": float(self.f1)}
        for cls, f1 in self.table["F1"].items():
            out[f"{prefix}f1_{str(cls).replace(' ', '_')}"] = float(f1)
        return out

    def column(self) -> pd.Series:
        """Per-class F1 in ``labels.CLASSES`` order (NaN for a class the ground truth lacks), then ``macro``:
        one column of a CV table or of ``rescore``'s table."""
        column = self.table["F1"].reindex(list(CLASSES)).astype(float)
        column["macro"] = self.f1
        return column


def score(pred: pd.DataFrame | SpanTable, gt: pd.DataFrame | SpanTable) -> ScoreResult:
    """The competition macro overlap-F1 of ``pred`` (``id, class, predictionstring``) against ``gt``
    (``id, discourse_type, predictionstring`` as in train.csv, or ``id, class, predictionstring``).

    Either side may be a prepared :class:`SpanTable` (e.g. a ground truth encoded once and scored many times).
    """
    for side, value in (("pred", pred), ("gt", gt)):
        if not isinstance(value, (pd.DataFrame, SpanTable)):
            raise InvalidInputError(f"score: {side} is a {type(value).__name__}; give a DataFrame (e.g. "
                                    "pd.read_csv(path, dtype={'id': str})) or a SpanTable; for files, use "
                                    "python -m feedback_ner.score")
    if isinstance(gt, pd.DataFrame):
        gt = ground_truth_table(gt)
    if isinstance(pred, pd.DataFrame):
        pred = SpanTable.from_frame(pred, class_column="class", name="predictions")
    table = match_counts(pred, gt)
    return ScoreResult(f1=float(table["F1"].mean()), table=table)


def ground_truth_table(gt: pd.DataFrame) -> SpanTable:
    """``gt`` (``id, discourse_type, predictionstring`` as in train.csv, or ``id, class, predictionstring``) encoded
    once, for scoring many times with :func:`score`."""
    gt_class = next((c for c in GT_CLASS_COLUMNS if c in gt.columns), None)
    if gt_class is None:
        raise InvalidInputError(
            "ground truth lacks a class column: it needs id, discourse_type (or class), predictionstring "
            f"(has: {', '.join(map(str, gt.columns))})"
        )
    return SpanTable.from_frame(gt, class_column=gt_class, name="ground truth")


def match_counts(pred: SpanTable, gt: SpanTable) -> pd.DataFrame:
    """Per ground-truth class: TP, FP, FN (int64) and F1 (float), by the rule in the module docstring."""
    if len(gt) == 0:
        raise InvalidInputError("the ground truth has no rows: there is nothing to score against")
    # Output classes: those present in the ground truth, labels.CLASSES order first, then any others sorted.
    present = {gt.class_names[c] for c in np.flatnonzero(np.bincount(gt.cls))}
    classes = [c for c in CLASSES if c in present] + sorted(present - set(CLASSES))
    n_cls = len(classes)
    gt_cls = _recode(gt.class_names, classes)[gt.cls]
    pred_cls = _recode(pred.class_names, classes)[pred.cls]
    pred_essay = _recode(pred.ids, gt.ids)[pred.essay]

    # Candidate pairs: every prediction against every ground truth of its (essay, class).
    n_keys = len(gt.ids) * n_cls
    gt_key = gt.essay * n_cls + gt_cls
    pred_key = np.where((pred_essay >= 0) & (pred_cls >= 0), pred_essay * n_cls + pred_cls, -1)
    gt_order, gt_group = _gt_groups(gt_key, gt.text_key)
    per_key = np.bincount(gt_key, minlength=n_keys)
    key_first = np.cumsum(per_key) - per_key
    valid = pred_key >= 0
    counts = np.where(valid, per_key[np.where(valid, pred_key, 0)], 0)
    lo = key_first[np.where(valid, pred_key, 0)]
    pair_p = np.repeat(np.arange(len(pred), dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    pair_g = gt_order[np.repeat(lo - first, counts) + np.arange(len(pair_p), dtype=np.int64)]

    inter = _intersections(pred, gt, pair_p, pair_g)
    size_p = pred.size[pair_p]
    size_g = gt.size[pair_g]
    potential = (inter > 0) & (2 * inter >= size_g) & (2 * inter >= size_p)
    pair_p, pair_g, inter = pair_p[potential], pair_g[potential], inter[potential]
    # max(o1, o2) = inter / min(|P|, |G|); float division is monotone, so this equals the reference's max.
    max_overlap = inter / np.minimum(size_p[potential], size_g[potential])
    winners = _best_per_group(gt_group[pair_g], pair_p, max_overlap, len(pred))

    tp = np.bincount(gt_cls[pair_g[winners]], minlength=n_cls)
    taken = np.zeros(len(pred), dtype=bool)
    taken[pair_p[winners]] = True
    fp = np.bincount(pred_cls[pred_cls >= 0], minlength=n_cls)  # essays without ground truth included
    fp -= np.bincount(pred_cls[taken], minlength=n_cls)
    matched_gt = np.zeros(len(gt), dtype=bool)
    matched_gt[pair_g] = True
    fn = np.bincount(gt_cls[~matched_gt], minlength=n_cls)

    table = pd.DataFrame(
        {"TP": tp.astype(np.int64), "FP": fp.astype(np.int64), "FN": fn.astype(np.int64)},
        index=pd.Index(classes, name="class"),
    )
    table["F1"] = table["TP"] / (table["TP"] + 0.5 * (table["FP"] + table["FN"]))
    return table


def _best_per_group(group: np.ndarray, pair_p: np.ndarray, max_overlap: np.ndarray, n_pred: int) -> np.ndarray:
    """Index of the winning pair of each group: highest ``max_overlap``, then the earliest prediction row."""
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(group * (n_pred + 1) + pair_p, kind="stable")  # by group, then prediction row; timsort
    # is quick here because pairs come grouped by essay when the rows are
    g = group[order]
    new_group = np.concatenate(([True], g[1:] != g[:-1]))
    seg_start = np.flatnonzero(new_group)
    seg_of = np.cumsum(new_group) - 1
    mo = max_overlap[order]
    candidates = np.flatnonzero(mo == np.maximum.reduceat(mo, seg_start)[seg_of])
    first_in_seg = np.concatenate(([True], seg_of[candidates][1:] != seg_of[candidates][:-1]))
    return order[candidates[first_in_seg]]


def parse_predictionstrings(
    values: pd.Series | Sequence[str], name: str = "frame", ids: pd.Series | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, frozenset[int]]]:
    """``start, end, size, text_key, sets`` of each predictionstring (see :class:`SpanTable`).

    Raises :class:`InvalidInputError` (a ``ValueError``) naming ``name``, the row (1-based) and the essay id when a
    value is not integers.
    """
    arr = _arrow_strings(values)
    n = len(arr)
    offsets, data = _arrow_buffers(arr)
    lens = np.diff(offsets)
    start = np.zeros(n, dtype=np.int64)
    end = np.zeros(n, dtype=np.int64)
    canonical = _canonical_runs(offsets, lens, data, start, end)
    canonical |= lens == 0  # the empty string: no words

    sets: dict[int, frozenset[int]] = {}
    text_code = np.zeros(n, dtype=np.int64)
    rest = np.flatnonzero(~canonical)
    if len(rest):
        texts: dict[str, int] = {}
        strings = arr.take(pa.array(rest)).to_pylist()
        for row, text in zip(rest.tolist(), strings):
            try:
                words = {int(w) for w in text.split()}
                if words and not 0 <= min(words) <= max(words) < _MAX_WORD:
                    raise ValueError
            except ValueError:
                essay = f" (id {ids.iloc[row]})" if ids is not None else ""
                raise InvalidInputError(
                    f"{name} row {row + 1}{essay}: predictionstring {text[:60]!r} is not space-separated word indices "
                    f"(integers from 0 to {_MAX_WORD - 1})"
                ) from None
            text_code[row] = -1 - texts.setdefault(text, len(texts))
            if words and max(words) - min(words) + 1 == len(words):
                start[row], end[row] = min(words), max(words) + 1
            elif words:
                sets[row] = frozenset(words)
        logger.debug("%s: %d of %d predictionstrings took the Python path", name, len(rest), n)
    size = end - start
    for row, words in sets.items():
        size[row] = len(words)
    # Canonical text is a function of (start, size); other texts got negative codes above.
    text_key = np.where(canonical, _run_key(start, size), text_code)
    return start, end, size, text_key, sets


def _run_key(start: np.ndarray, size: np.ndarray) -> np.ndarray:
    """A key that is equal for equal (start, size) within one table (exact; compact when the values are)."""
    if len(start) == 0:
        return np.zeros(0, dtype=np.int64)
    lo, width = int(start.min()), int(size.max()) + 1
    if (int(start.max()) - lo + 1) * width < 2**62:
        return (start - lo) * width + size
    return np.unique(np.stack([start, size]), axis=1, return_inverse=True)[1].astype(np.int64)


def _canonical_runs(
    offsets: np.ndarray, lens: np.ndarray, data: np.ndarray, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """Mask of strings that are exactly ``"a a+1 ... b"``; fills ``start``/``end`` for them.

    Every byte is compared with the canonical buffer ``"0 1 2 ... "`` at the place the string's first word
    says: the 8-byte words of ``data`` that start inside a string in one vectorised pass, and per string one
    masked word at its start and one at its end for the bytes the aligned words leave out.
    """
    n = len(lens)
    result = np.zeros(n, dtype=bool)
    if n == 0:
        return result
    # The first word: up to _MAX_FIRST_DIGITS digits, no leading zero, then a space or the end of the string.
    head_word = _read8(data, offsets[:-1])
    head = head_word.view(np.uint8).reshape(n, 8)
    k = np.arange(8)
    digit = (head >= 48) & (head <= 57) & (k < lens[:, None])
    n_digits = np.argmin(np.concatenate([digit, np.zeros((n, 1), dtype=bool)], axis=1), axis=1)
    ok = (n_digits >= 1) & (n_digits <= _MAX_FIRST_DIGITS)
    ok &= (n_digits == lens) | (head[np.arange(n), np.minimum(n_digits, 7)] == 32)
    ok &= (n_digits == 1) | (head[:, 0] != 48)
    first = np.zeros(n, dtype=np.int64)
    for j in range(_MAX_FIRST_DIGITS):
        first = np.where(j < n_digits, first * 10 + (head[:, j].astype(np.int64) - 48), first)
    # A run from `first` written in `len` bytes has at most (len + 1) / 2 words: size the canonical buffer so.
    last_bound = np.where(ok, first + (lens + 1) // 2, 0)
    ok &= last_bound < _MAX_CANON_WORDS
    if not ok.any():
        return result
    canon = _canonical(int(last_bound[ok].max()) + 2)
    a = np.where(ok, first, 0)
    # The run a..b ends one separator before b+1 starts: the number starting there is b+1 (if any does).
    b1 = canon.number_at[np.minimum(canon.pos[a] + lens + 1, len(canon.number_at) - 1)]
    ok &= b1 >= 0
    shift = np.where(ok, canon.pos[a] - offsets[:-1], 0)  # position in canon minus position in data

    # First and last (up to) 8 bytes of each string.
    mask = _TAIL_MASKS[np.minimum(lens, 8)]
    ok &= ((head_word ^ canon.read8(np.where(ok, offsets[:-1] + shift, 0))) & mask) == 0
    tail_at = offsets[1:] - np.minimum(lens, 8)
    ok &= ((_read8(data, tail_at) ^ canon.read8(np.where(ok, tail_at + shift, 0))) & mask) == 0
    # The aligned 8-byte words of data: word i belongs to the string that holds its first byte.
    n_aligned = len(data) // 8
    word_first = np.minimum(-(-offsets // 8), n_aligned)  # first word starting at or after each offset
    counts = np.diff(word_first)
    t_total = int(word_first[-1] - word_first[0])
    if t_total:
        # Index into canon.words8 (8 aligned copies of canon, one per byte shift) of the word each should be.
        s8 = shift % 8
        base = np.where(ok, s8 * canon.m + (shift - s8) // 8, 0)
        idx = np.repeat(base, counts) + np.arange(word_first[0], word_first[-1], dtype=np.int64)
        if not ok.all():  # strings already rejected compare with anything, as long as it is in range
            np.clip(idx, 0, len(canon.words8) - 1, out=idx)
        aligned = data[: 8 * n_aligned].view("<u8")[word_first[0] : word_first[-1]]
        wrong = aligned != canon.words8[idx]
        # A string's last word may run past its end into the next string: the tail check covered those bytes.
        straddle = (8 * word_first[1:] > offsets[1:]) & (counts > 0)
        wrong[(word_first[1:] - 1 - word_first[0])[straddle]] = False
        bad_words = np.flatnonzero(wrong) + word_first[0]
        ok[np.searchsorted(word_first[1:], bad_words, side="right")] = False
    rows = np.flatnonzero(ok)
    result[rows] = True
    start[rows] = a[rows]
    end[rows] = b1[rows]
    return result


def _read8(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The 8 bytes of ``data`` from each position as little-endian uint64 (zeros past the end)."""
    n = len(data)
    out = np.zeros(len(at), dtype=np.uint64)
    if n >= 8:
        view = np.ndarray((n - 7,), dtype="<u8", buffer=data, strides=(1,))  # unaligned reads
        out = view[np.minimum(at, n - 8)]
    over = np.flatnonzero(at > n - 8)
    if len(over):
        lo = max(n - 8, 0)
        pad = np.zeros(24, dtype=np.uint8)
        pad[: n - lo] = data[lo:]
        out[over] = np.ndarray((17,), dtype="<u8", buffer=pad, strides=(1,))[np.minimum(at[over] - lo, 16)]
    return out


@dataclass(frozen=True)
class _Canon:
    """The canonical buffer ``"0 1 2 ... "``: bytes, where each number starts, and 8-byte words to compare."""

    data: np.ndarray  # bytes, zero-padded
    pos: np.ndarray  # pos[x] = offset of number x; pos[x+1] - 1 = end of x
    number_at: np.ndarray  # number_at[pos[x]] = x, -1 at offsets where no number starts
    m: int  # aligned words per copy
    words8: np.ndarray  # words8[s * m + i] = the 8 bytes at 8 i + s

    def read8(self, at: np.ndarray) -> np.ndarray:
        return _read8(self.data, at)


@lru_cache(maxsize=4)
def _canonical_cached(n_words: int) -> _Canon:
    text = (" ".join(map(str, range(n_words))) + " ").encode("ascii")
    m = len(text) // 8 + 2
    data = np.zeros(8 * m + 16, dtype=np.uint8)
    data[: len(text)] = np.frombuffer(text, dtype=np.uint8)
    words8 = np.concatenate([data[s : s + 8 * m].copy().view("<u8") for s in range(8)])
    digits = np.searchsorted(10 ** np.arange(1, 19, dtype=np.int64), np.arange(n_words), side="right") + 1
    pos = np.zeros(n_words + 1, dtype=np.int64)
    np.cumsum(digits + 1, out=pos[1:])
    number_at = np.full(len(data), -1, dtype=np.int64)
    number_at[pos] = np.arange(n_words + 1)
    return _Canon(data, pos, number_at, m, words8)


def _canonical(n_words: int) -> _Canon:
    """The canonical buffer for numbers below at least ``n_words`` (rounded up to a power of two, cached)."""
    return _canonical_cached(max(4096, 1 << int(n_words - 1).bit_length()))


def _arrow_strings(values: pd.Series | Sequence[str]) -> pa.LargeStringArray:
    """The values as one arrow large_string array, missing values as ``""``."""
    try:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        series = pd.Series(values)
        arr = pa.array(
            series.astype(object).where(series.notna(), None).map(str, na_action="ignore"),
            type=pa.large_string(),
            from_pandas=True,
        )
    if isinstance(arr, pa.ChunkedArray):
        # pandas' arrow-backed strings come back as `string` chunks whatever type was asked for: cast first
        arr = arr.cast(pa.large_string()).combine_chunks() if arr.num_chunks else pa.array([], type=pa.large_string())
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    return arr


def _arrow_buffers(arr: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (int64, n+1, starting wherever the slice starts) and the character data (uint8)."""
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1] if off_buf else None
    if offsets is None or len(offsets) == 0:
        offsets = np.zeros(len(arr) + 1, dtype=np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data


def _factorize(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (int64) and the unique values as strings (so int ids and their text match)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    uniques = np.asarray(uniques, dtype=object)
    if pd.api.types.infer_dtype(uniques, skipna=False) != "string":
        uniques = np.asarray([str(u) for u in uniques], dtype=object)
    return codes.astype(np.int64, copy=False), uniques


def _recode(names: Sequence[str] | np.ndarray, targets: Sequence[str] | np.ndarray) -> np.ndarray:
    """Index of each of ``names`` in ``targets`` (-1 where absent)."""
    # object dtype on purpose: pandas would otherwise convert both to arrow strings first, at twice the cost
    return pd.Index(targets, dtype=object).get_indexer(pd.Index(names, dtype=object)).astype(np.int64)


def _gt_groups(gt_key: np.ndarray, text_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth rows sorted by (essay, class, text), and each row's group: equal (essay, class, text)."""
    tk = text_key - text_key.min()
    width = int(tk.max()) + 1
    if (int(gt_key.max()) + 1) * width < 2**62:
        combined = gt_key * width + tk
        order = np.argsort(combined, kind="stable")  # timsort: fast on rows already grouped by essay
        sorted_combined = combined[order]
        change = np.concatenate(([True], sorted_combined[1:] != sorted_combined[:-1]))
    else:
        order = np.lexsort((tk, gt_key))
        sk, st = gt_key[order], tk[order]
        change = np.concatenate(([True], (sk[1:] != sk[:-1]) | (st[1:] != st[:-1])))
    group = np.empty(len(order), dtype=np.int64)
    group[order] = np.cumsum(change) - 1
    return order, group


def _intersections(pred: SpanTable, gt: SpanTable, pair_p: np.ndarray, pair_g: np.ndarray) -> np.ndarray:
    """``|P ∩ G|`` for each pair: arithmetic for two runs, set intersection when either side is a set."""
    lo = np.maximum(pred.start[pair_p], gt.start[pair_g])
    inter = np.maximum(np.minimum(pred.end[pair_p], gt.end[pair_g]) - lo, 0)
    if pred.sets or gt.sets:
        in_sets_p = np.zeros(len(pred), dtype=bool)
        in_sets_p[list(pred.sets)] = True
        in_sets_g = np.zeros(len(gt), dtype=bool)
        in_sets_g[list(gt.sets)] = True
        for i in np.flatnonzero(in_sets_p[pair_p] | in_sets_g[pair_g]).tolist():
            p, g = int(pair_p[i]), int(pair_g[i])
            p_words = pred.sets.get(p, range(pred.start[p], pred.end[p]))
            g_words = gt.sets.get(g, range(gt.start[g], gt.end[g]))
            if isinstance(p_words, frozenset) and isinstance(g_words, frozenset):
                inter[i] = len(p_words & g_words)
            else:  # one side is a run: membership in a range is O(1)
                words, run = (p_words, g_words) if isinstance(p_words, frozenset) else (g_words, p_words)
                inter[i] = sum(1 for w in words if w in run)
    return inter
