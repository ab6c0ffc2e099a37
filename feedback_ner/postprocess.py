"""The span decoder and its post-processing: from word probabilities to the submission.

This module holds the package's one decoder. :func:`submission_from_probs` is the one function that training-time
evaluation, prediction, tuning and ensembles call. It is two steps, exposed for tuning:

1. :func:`candidate_spans` — the decoder: everything that depends on the word probabilities, computed once: the
   argmax BIO decode of every essay (the BIO rule of :func:`decode.span_bounds`, over all essays at once) into a
   table of spans with their score and what the rules need about their neighbours (``begins_with_b``,
   ``gap_after``, ``gap_score``).
2. :func:`filter_spans` — everything that depends on the :class:`PostprocessConfig`, as table operations on the
   candidates only (no word-level work): merging (``fill_gaps``, ``join_adjacent``), the ``min_words`` and
   ``proba_thresh`` filters, then ``one_per_essay``. A tuning trial re-runs only this step.

:func:`kept_spans` runs both steps a chunk of whole essays at a time (the rules never cross an essay), which is how
:func:`submission_from_probs` decodes: its memory stays bounded but for the kept spans, whatever the number of essays.

Order of the rules: merge, then filter (so merged spans are judged whole), then keep one span per essay of the
``one_per_essay`` classes among the survivors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedback_ner.decode import LABEL_CLASS, LABEL_IS_BEGIN, span_bounds
from feedback_ner.errors import InvalidInputError, MissingFileError
from feedback_ner.files import atomic_write
from feedback_ner.labels import CLASSES, NUM_LABELS

DEFAULT_MIN_WORDS: dict[str, int] = {
    "Lead": 9,
    "Position": 5,
    "Evidence": 14,
    "Claim": 3,
    "Concluding Statement": 11,
    "Counterclaim": 6,
    "Rebuttal": 4,
}
DEFAULT_PROBA_THRESH: dict[str, float] = {
    "Lead": 0.70,
    "Position": 0.55,
    "Evidence": 0.65,
    "Claim": 0.55,
    "Concluding Statement": 0.70,
    "Counterclaim": 0.50,
    "Rebuttal": 0.55,
}
SUBMISSION_COLUMNS = ["id", "class", "predictionstring"]
CANDIDATE_COLUMNS = [
    "id",
    "essay",
    "class",
    "class_id",
    "start",
    "end",
    "n_words",
    "score",
    "begins_with_b",
    "gap_after",
    "gap_score",
]
_CLASS_INDEX = {c: i for i, c in enumerate(CLASSES)}
# words decoded at a time by submission_from_probs: ~40 essays; its working arrays stay ~2 MB
DECODE_CHUNK_WORDS = 1 << 14


@dataclass
class PostprocessConfig:
    """Per-class filters and optional rules applied to decoded spans. Saved as JSON beside a model."""

    min_words: dict[str, int] = field(
        default_factory=lambda: dict(DEFAULT_MIN_WORDS),
        metadata={"help": "per class: drop spans with fewer words (classes left out keep the default)"},
    )
    proba_thresh: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_PROBA_THRESH),
        metadata={"help": "per class: drop spans whose score (mean max word probability) is lower"},
    )
    one_per_essay: list[str] = field(
        default_factory=list,
        metadata={"help": "classes kept at most once per essay (highest score), e.g. Lead, Position"},
    )
    join_adjacent: list[str] = field(
        default_factory=list,
        metadata={"help": "classes whose consecutive spans separated by at most join_gap O words are merged"},
    )
    join_gap: int = field(default=0, metadata={"help": "most O words between two spans that join_adjacent merges"})
    fill_gaps: int = field(
        default=0,
        metadata={
            "help": "a run of at most this many O words between a span of class X and a following I-X word "
            "becomes part of the span (0 = off)"
        },
    )

    def __post_init__(self) -> None:
        self.min_words = _class_dict(self.min_words, "min_words", DEFAULT_MIN_WORDS, _check_count)
        self.proba_thresh = _class_dict(self.proba_thresh, "proba_thresh", DEFAULT_PROBA_THRESH, _check_prob)
        self.one_per_essay = _class_list(self.one_per_essay, "one_per_essay")
        self.join_adjacent = _class_list(self.join_adjacent, "join_adjacent")
        self.join_gap = _check_count(self.join_gap, "join_gap")
        self.fill_gaps = _check_count(self.fill_gaps, "fill_gaps")

    @classmethod
    def zeros(cls) -> PostprocessConfig:
        """No filtering at all: every decoded span is kept."""
        return cls(min_words={c: 1 for c in CLASSES}, proba_thresh={c: 0.0 for c in CLASSES})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PostprocessConfig:
        """Inverse of :meth:`to_dict`; keys left out take their defaults, unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"post-processing config must be a JSON object, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InvalidInputError(f"unknown post-processing config key(s) {unknown}; known keys are {known}")
        return cls(**dict(data))

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the config as JSON (atomically)."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> PostprocessConfig:
        """Reads a config written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"{path}: no such post-processing config file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InvalidInputError(f"{path}: not valid JSON ({err}); fix or re-create the file") from err
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise InvalidInputError(f"{path}: {err}") from err


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidInputError(f"PostprocessConfig.{name} = {value!r}; use a whole number >= 0")
    return int(value)


def _check_prob(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0.0 <= float(value) <= 1.0:
        raise InvalidInputError(f"PostprocessConfig.{name} = {value!r}; use a probability between 0 and 1")
    return float(value)


def _unknown_classes(names: Sequence[str], where: str) -> None:
    unknown = [n for n in names if n not in _CLASS_INDEX]
    if unknown:
        raise InvalidInputError(f"PostprocessConfig.{where}: unknown class(es) {unknown}; classes are {list(CLASSES)}")


def _class_dict(value: Any, name: str, defaults: Mapping[str, Any], check) -> dict:
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"PostprocessConfig.{name} must be a mapping class -> value, got {type(value).__name__}"
        )
    _unknown_classes(list(value), name)
    merged = {**defaults, **value}
    return {c: check(merged[c], f"{name}[{c!r}]") for c in CLASSES}


def _class_list(value: Any, name: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInputError(f"PostprocessConfig.{name} must be a list of class names, got {value!r}")
    _unknown_classes(list(value), name)
    return [c for c in CLASSES if c in set(value)]


def _word_arrays(ids: list[str], arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Essay offsets, argmax labels and max probabilities of all words of these essays, concatenated."""
    lengths = np.fromiter((a.shape[0] for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    labels = np.empty(int(offsets[-1]), dtype=np.intp)
    maxprob = np.empty(int(offsets[-1]), dtype=np.float32)
    rows = np.arange(int(lengths.max()) if len(arrays) else 0)
    # a loop over essays beats concatenating ~400 MB of probabilities first, in time and memory
    for i, a in enumerate(arrays):
        if a.ndim != 2 or a.shape[1] != NUM_LABELS:
            raise ValueError(f"word probabilities of essay {ids[i]!r} have shape {a.shape}; need [n_words, 15]")
        lo, hi = offsets[i], offsets[i + 1]
        am = labels[lo:hi]
        a.argmax(axis=1, out=am)
        maxprob[lo:hi] = a[rows[: hi - lo], am]
    return offsets, labels, maxprob


def candidate_spans(word_probs: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Every span of the argmax decode of every essay, unfiltered: the cached half of tuning.

    Columns: ``id``, ``essay`` (position in ``word_probs``), ``class``, ``class_id`` (index in ``CLASSES``),
    ``start``, ``end`` (exclusive word indices), ``n_words``, ``score`` (mean max word probability),
    ``begins_with_b`` (first word is ``B-X``, not ``I-X``), ``gap_after`` (number of O words up to the next span of
    the essay, -1 for the last span) and ``gap_score`` (sum of those O words' max probabilities). Sorted by essay,
    then start.
    """
    return _candidates([str(k) for k in word_probs], list(word_probs.values()), 0, 0.0)[0]


def _chunks(word_probs: Mapping[str, np.ndarray], chunk_words: int) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """Consecutive groups of whole essays of about ``chunk_words`` words (at least one essay; one empty group when
    there are no essays)."""
    ids: list[str] = []
    arrays: list[np.ndarray] = []
    words = 0
    for key, a in word_probs.items():
        ids.append(str(key))
        arrays.append(a)
        words += a.shape[0] if np.ndim(a) else 0
        if words >= chunk_words:
            yield ids, arrays
            ids, arrays, words = [], [], 0
    if ids or not word_probs:
        yield ids, arrays


def _candidates(ids: list[str], arrays: list[np.ndarray], essay0: int, csum0: float) -> tuple[pd.DataFrame, float]:
    """:func:`candidate_spans` of the essays ``ids`` (positions ``essay0 ...`` of the whole set), and the running sum
    of max probabilities after them. The sums run on from ``csum0`` (the sum over the essays before), so spans'
    scores are bit for bit those of one decode over all essays."""
    offsets, labels, maxprob = _word_arrays(ids, arrays)
    starts, ends = span_bounds(labels, offsets)
    essay = np.searchsorted(offsets, starts, side="right") - 1
    # a float64 running sum, one word after another (accumulate is sequential), continued from csum0
    csum = np.empty(maxprob.shape[0] + 1, dtype=np.float64)
    csum[0] = csum0
    csum[1:] = maxprob
    np.cumsum(csum, out=csum)
    n_words = ends - starts
    score = (csum[ends] - csum[starts]) / np.maximum(n_words, 1)
    # every word between two consecutive spans of an essay is argmax O: any other word would be in a span
    same_essay_next = np.append(essay[1:] == essay[:-1], False)
    next_start = np.append(starts[1:], 0)
    gap_after = np.where(same_essay_next, next_start - ends, -1)
    gap_score = np.where(same_essay_next, csum[np.where(same_essay_next, next_start, ends)] - csum[ends], 0.0)
    class_id = LABEL_CLASS[labels[starts]]
    frame = pd.DataFrame(
        {
            "id": np.array(ids, dtype=object)[essay],
            "essay": essay + essay0,
            "class": np.array(CLASSES, dtype=object)[class_id],
            "class_id": class_id,
            "start": starts - offsets[essay],
            "end": ends - offsets[essay],
            "n_words": n_words,
            "score": score,
            "begins_with_b": LABEL_IS_BEGIN[labels[starts]],
            "gap_after": gap_after,
            "gap_score": gap_score,
        }
    )
    return frame, float(csum[-1])


def _merge(c: dict[str, np.ndarray], config: PostprocessConfig) -> dict[str, np.ndarray]:
    """Merges consecutive candidates by the ``fill_gaps`` and ``join_adjacent`` rules."""
    n = c["start"].shape[0]
    if n < 2 or (config.fill_gaps == 0 and not config.join_adjacent):
        return c
    prev_gap = c["gap_after"][:-1]
    # the gap counted in the candidates must be the one to this very row (the table may have been pre-filtered)
    neighbours = (
        (c["essay"][1:] == c["essay"][:-1])
        & (c["class_id"][1:] == c["class_id"][:-1])
        & (prev_gap >= 0)
        & (c["start"][1:] - c["end"][:-1] == prev_gap)
    )
    join_class = np.zeros(len(CLASSES), dtype=bool)
    join_class[[_CLASS_INDEX[x] for x in config.join_adjacent]] = True
    by_join = join_class[c["class_id"][1:]] & (prev_gap <= config.join_gap)
    by_fill = (prev_gap >= 1) & (prev_gap <= config.fill_gaps) & ~c["begins_with_b"][1:]
    merge_prev = np.concatenate([[False], neighbours & (by_join | by_fill)])
    if not merge_prev.any():
        return c
    first = np.nonzero(~merge_prev)[0]
    last = np.append(first[1:], n) - 1
    # gap words inside a merged span count in its score like its other words
    inner_gap = np.where(np.append(merge_prev[1:], False), c["gap_score"], 0.0)
    total = np.add.reduceat(c["score"] * c["n_words"] + inner_gap, first)
    out = {k: v[first] for k, v in c.items()}
    out["end"] = c["end"][last]
    out["n_words"] = out["end"] - out["start"]
    out["score"] = total / out["n_words"]
    out["gap_after"] = c["gap_after"][last]
    out["gap_score"] = c["gap_score"][last]
    return out


def filter_spans(
    candidates: pd.DataFrame, config: PostprocessConfig, with_predictionstring: bool = True
) -> pd.DataFrame:
    """Applies ``config`` to a :func:`candidate_spans` table (the per-trial half of tuning).

    Returns the kept spans with columns ``id, class, predictionstring`` (the submission; ``predictionstring``
    left out when ``with_predictionstring`` is False, e.g. for ``metric.SpanTable.from_arrays``) followed by
    ``essay, start, end, n_words, score``, sorted by essay then start.
    """
    missing = [k for k in CANDIDATE_COLUMNS if k not in candidates.columns]
    if missing:
        raise ValueError(f"filter_spans(): candidates lack column(s) {missing}; build them with candidate_spans()")
    c = {k: candidates[k].to_numpy() for k in CANDIDATE_COLUMNS if k not in ("id", "class")}
    c["row"] = np.arange(len(candidates))  # to fetch the id later without carrying strings through numpy
    key = c["essay"].astype(np.int64) * (int(c["end"].max()) + 1 if len(candidates) else 1) + c["start"]
    if (np.diff(key) < 0).any():  # merging looks at consecutive rows: restore candidate_spans' order
        order = np.argsort(key, kind="stable")
        c = {k: v[order] for k, v in c.items()}
    c = _merge(c, config)
    min_words = np.array([config.min_words[x] for x in CLASSES])
    thresh = np.array([config.proba_thresh[x] for x in CLASSES])
    keep = (c["n_words"] >= min_words[c["class_id"]]) & (c["score"] >= thresh[c["class_id"]])
    if config.one_per_essay:
        once = np.zeros(len(CLASSES), dtype=bool)
        once[[_CLASS_INDEX[x] for x in config.one_per_essay]] = True
        limited = np.nonzero(keep & once[c["class_id"]])[0]
        # per (essay, class): the highest score, the earliest span on ties
        order = limited[
            np.lexsort((c["start"][limited], -c["score"][limited], c["class_id"][limited], c["essay"][limited]))
        ]
        key = c["essay"][order] * len(CLASSES) + c["class_id"][order]
        best = order[np.append(True, key[1:] != key[:-1])] if order.size else order
        keep[limited] = False
        keep[best] = True
    rows = np.nonzero(keep)[0]
    id_col = candidates["id"].to_numpy()[c["row"][rows]]
    out = {
        "id": id_col,
        "class": np.array(CLASSES, dtype=object)[c["class_id"][rows]],
    }
    if with_predictionstring:
        out["predictionstring"] = predictionstrings(c["start"][rows], c["end"][rows])
    for k in ("essay", "start", "end", "n_words", "score"):
        out[k] = c[k][rows]
    return pd.DataFrame(out)


class _Numbers:
    """``"0 1 2 ... n"`` with the offset of each number, so a predictionstring is one slice."""

    def __init__(self) -> None:
        self.text = ""
        self.pos = np.zeros(1, dtype=np.int64)

    def upto(self, n: int) -> None:
        if n < self.pos.shape[0]:
            return
        size = max(n + 1, 2 * self.pos.shape[0], 4096)
        numbers = [str(i) for i in range(size)]
        self.text = " ".join(numbers) + " "
        self.pos = np.concatenate([[0], np.cumsum([len(s) + 1 for s in numbers])]).astype(np.int64)


_NUMBERS = _Numbers()


def predictionstrings(starts: np.ndarray, ends: np.ndarray) -> list[str]:
    """``"s s+1 ... e-1"`` for each ``[s, e)``."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.size == 0:
        return []
    _NUMBERS.upto(int(ends.max()))
    text = _NUMBERS.text
    lo = _NUMBERS.pos[starts].tolist()
    hi = (_NUMBERS.pos[ends] - 1).tolist()
    return [text[a:b] for a, b in zip(lo, hi, strict=True)]


def kept_spans(
    word_probs: Mapping[str, np.ndarray],
    config: PostprocessConfig | None = None,
    chunk_words: int = DECODE_CHUNK_WORDS,
    with_predictionstring: bool = True,
) -> pd.DataFrame:
    """``filter_spans(candidate_spans(word_probs), config, with_predictionstring)``, decoded ``chunk_words`` words of
    whole essays at a time (every rule stays within an essay; default config if None).

    The word-level working arrays and the table of candidate spans stay bounded whatever the number of essays: only
    the kept spans add up (issue 16). Equal to the one-step decode, scores bit for bit (their running sums carry on
    from chunk to chunk).
    """
    config = PostprocessConfig() if config is None else config
    if isinstance(chunk_words, bool) or not isinstance(chunk_words, (int, np.integer)) or chunk_words < 1:
        raise ValueError(f"kept_spans(chunk_words={chunk_words!r}): use a whole number >= 1")
    parts: list[pd.DataFrame] = []
    essay0, csum = 0, 0.0
    for ids, arrays in _chunks(word_probs, int(chunk_words)):
        candidates, csum = _candidates(ids, arrays, essay0, csum)
        essay0 += len(ids)
        parts.append(filter_spans(candidates, config, with_predictionstring))
        del candidates
    kept = [p for p in parts if len(p)] or parts[:1]
    return (kept[0] if len(kept) == 1 else pd.concat(kept)).reset_index(drop=True)


def submission_from_probs(
    word_probs: Mapping[str, np.ndarray],
    config: PostprocessConfig | None = None,
    chunk_words: int = DECODE_CHUNK_WORDS,
) -> pd.DataFrame:
    """Word probabilities per essay -> submission ``id, class, predictionstring`` (default config if None), decoded
    a chunk of essays at a time (:func:`kept_spans`)."""
    return kept_spans(word_probs, config, chunk_words)[SUBMISSION_COLUMNS].reset_index(drop=True)
