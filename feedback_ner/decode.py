"""From token probabilities to word probabilities, and the BIO rule that cuts word labels into spans.

:class:`WordProbAccumulator` merges the token probabilities of (overlapping) windows into one probability row per
word, batch by batch, so evaluation never holds all token logits. :func:`span_bounds` is the widely copied baseline
rule on argmax word labels: a span starts at ``B-X`` (or at ``I-X`` after another class) and extends over the
following ``I-X`` words. The decoder that runs everywhere, built on it, is :func:`postprocess.candidate_spans`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from feedback_ner.labels import B_IDS, CLASSES, NUM_LABELS, O_ID

logger = logging.getLogger("feedback_ner.decode")

SUBTOKEN_RULES = ("first", "mean")
_BLOCK_ROWS = 1 << 14  # words divided at a time by WordProbAccumulator.result(release=True)

# label id -> class index (-1 for O) and label id -> "is a B- label", for vectorised decoding
LABEL_CLASS: np.ndarray = np.array([-1] + [i for i in range(len(CLASSES)) for _ in (0, 1)], dtype=np.int64)
LABEL_IS_BEGIN: np.ndarray = np.zeros(NUM_LABELS, dtype=bool)
LABEL_IS_BEGIN[list(B_IDS.values())] = True


class WordProbAccumulator:
    """Merges windows' token probabilities into word probabilities, one batch at a time.

    Within a window a word's probability is its first sub-token's (``subtoken="first"``; the first position where
    ``word_ids[t] != word_ids[t-1]``) or the mean of its sub-tokens (``"mean"``). Across windows the per-window
    word probabilities are averaged where windows overlap.
    """

    def __init__(self, n_words: Sequence[int], num_labels: int = NUM_LABELS, subtoken: str = "first") -> None:
        if subtoken not in SUBTOKEN_RULES:
            raise ValueError(f"subtoken={subtoken!r} is not a sub-token rule; use one of {SUBTOKEN_RULES}")
        n = np.asarray(n_words, dtype=np.int64).reshape(-1)
        if n.size and n.min() < 0:
            raise ValueError(f"n_words[{int(np.argmin(n))}] = {int(n.min())}; word counts must be >= 0")
        self.n_words = n
        self.num_labels = int(num_labels)
        self.subtoken = subtoken
        self.offsets = np.concatenate([[0], np.cumsum(n)]).astype(np.int64)
        total = int(self.offsets[-1])
        # float32 sums: the real train set has ~6M words; float64 would double a 375 MB buffer for no useful gain
        self._sums: np.ndarray | None = np.zeros((total, self.num_labels), dtype=np.float32)
        self._counts: np.ndarray | None = np.zeros(total, dtype=np.int32)
        self.n_uncovered = 0

    def add(self, essay_index: np.ndarray, word_ids: np.ndarray, token_probs: np.ndarray) -> None:
        """Adds a batch: ``essay_index[B]``, ``word_ids[B, T]`` (-1 = no word), ``token_probs[B, T, L]``."""
        if self._sums is None:
            raise RuntimeError("add(): this accumulator was released by result(release=True); start a new one")
        essay_index = np.asarray(essay_index, dtype=np.int64).reshape(-1)
        word_ids = np.asarray(word_ids, dtype=np.int64)
        token_probs = np.asarray(token_probs)
        if word_ids.ndim != 2 or token_probs.ndim != 3 or token_probs.shape[:2] != word_ids.shape:
            raise ValueError(
                f"add(): word_ids {word_ids.shape} and token_probs {token_probs.shape} must be [B, T] and [B, T, L]"
                " with the same B and T"
            )
        if token_probs.shape[2] != self.num_labels:
            raise ValueError(f"add(): token_probs has {token_probs.shape[2]} labels, expected {self.num_labels}")
        if essay_index.shape[0] != word_ids.shape[0]:
            raise ValueError(f"add(): essay_index has {essay_index.shape[0]} rows, word_ids has {word_ids.shape[0]}")
        n_essays = self.n_words.shape[0]
        bad = (essay_index < 0) | (essay_index >= n_essays)
        if bad.any():
            raise ValueError(f"add(): essay_index {int(essay_index[bad][0])} is out of range [0, {n_essays})")
        valid = word_ids >= 0
        too_far = valid & (word_ids >= self.n_words[essay_index][:, None])
        if too_far.any():
            row = int(np.nonzero(too_far.any(axis=1))[0][0])
            raise ValueError(
                f"add(): word id {int(word_ids[too_far][0])} in batch row {row} is past the end of essay "
                f"{int(essay_index[row])} ({int(self.n_words[essay_index[row]])} words); the windows do not "
                "match the word table they were built from"
            )
        # a word's tokens form a run of equal word ids; -1 before t=0 makes every row start a new run
        prev = np.concatenate([np.full((word_ids.shape[0], 1), -1, dtype=np.int64), word_ids[:, :-1]], axis=1)
        run_start = valid & (word_ids != prev)
        global_word = self.offsets[essay_index][:, None] + word_ids
        if self.subtoken == "first":
            words = global_word[run_start]
            probs = token_probs[run_start].astype(np.float32, copy=False)
        else:
            flat_valid = valid.ravel()
            probs_valid = token_probs.reshape(-1, self.num_labels)[flat_valid].astype(np.float32, copy=False)
            starts_in_valid = np.nonzero(run_start.ravel()[flat_valid])[0]
            if starts_in_valid.size == 0:
                return
            run_len = np.diff(np.append(starts_in_valid, probs_valid.shape[0]))
            probs = np.add.reduceat(probs_valid, starts_in_valid, axis=0) / run_len[:, None].astype(np.float32)
            words = global_word[run_start]
        if words.size == 0:
            return
        # a word can occur in several rows of one batch (overlapping windows), so unbuffered adds
        np.add.at(self._sums, words, probs)
        np.add.at(self._counts, words, 1)

    def result(self, ids: Sequence[str], release: bool = False) -> dict[str, np.ndarray]:
        """Word probabilities per essay id (``ids[i]`` is essay row ``i``); ``float32 [n_words, L]``.

        A word no token covered (its characters all dropped by the tokenizer, e.g. a lone zero-width or control
        character between spaces) continues the covered word before it in its essay (that word's probabilities with
        each ``B-X`` moved to ``I-X``: a span is not cut in two by it), or gets probability 1 on ``O`` at an essay's
        start; such words are counted in ``n_uncovered`` and logged.
        With ``release`` the probabilities are divided out in the accumulator's own buffer (the same values, without
        a second ``[total_words, L]`` array at the end of an evaluation) and the accumulator takes no more batches.
        """
        if self._sums is None:
            raise RuntimeError("result(): this accumulator was released by result(release=True); start a new one")
        ids = list(ids)
        if len(ids) != self.n_words.shape[0]:
            raise ValueError(f"result(): got {len(ids)} ids for {self.n_words.shape[0]} essays")
        if len(set(ids)) != len(ids):
            raise ValueError("result(): essay ids are not unique")
        counts = self._counts
        if release:
            out = self._sums
            for lo in range(0, out.shape[0], _BLOCK_ROWS):  # blocks: no word-sized temporary either
                block = out[lo : lo + _BLOCK_ROWS]
                np.divide(block, np.maximum(counts[lo : lo + _BLOCK_ROWS], 1)[:, None].astype(np.float32), out=block)
            self._sums = self._counts = None
        else:
            out = self._sums / np.maximum(counts, 1)[:, None].astype(np.float32)
        self.n_uncovered = int(counts.shape[0] - np.count_nonzero(counts))
        if self.n_uncovered:
            uncovered = np.nonzero(counts == 0)[0]
            essay_of = np.searchsorted(self.offsets, uncovered, side="right") - 1
            _continue_previous(out, counts > 0, uncovered, self.offsets[essay_of])
            logger.info(  # the windows' warning has said it once per tokenizer; this is per checkpoint
                "%d words in %d essays have no token in any window (first: essay %r); each continues the word "
                "before it (O at an essay's start): the tokenizer drops all their characters (see its warning)",
                self.n_uncovered,
                len(np.unique(essay_of)),
                ids[int(essay_of[0])],
            )
        return {essay_id: out[self.offsets[i] : self.offsets[i + 1]] for i, essay_id in enumerate(ids)}


_B_COLUMNS = np.array(list(B_IDS.values()))
_I_COLUMNS = _B_COLUMNS + 1  # labels.LABELS: B-X, then I-X


def _continue_previous(out: np.ndarray, covered: np.ndarray, uncovered: np.ndarray, first_word: np.ndarray) -> None:
    """Fill the rows ``uncovered`` of ``out`` in place: each from the last covered row before it and at or after its
    essay's ``first_word``, with the ``B-X`` probabilities added to ``I-X``; one-hot ``O`` where there is none."""
    index = np.where(covered, np.arange(covered.shape[0]), -1)
    previous = np.maximum.accumulate(index)[uncovered]
    has = previous >= first_word
    rows = out[previous[has]]
    rows[:, _I_COLUMNS] += rows[:, _B_COLUMNS]
    rows[:, _B_COLUMNS] = 0.0
    out[uncovered[has]] = rows
    out[uncovered[~has]] = 0.0
    out[uncovered[~has], O_ID] = 1.0


def span_bounds(labels: np.ndarray, essay_offsets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Spans of hard word labels as ``(starts, ends)`` (end exclusive), indices into ``labels``.

    ``labels`` may be several essays concatenated, with ``essay_offsets[E+1]`` their boundaries; spans never
    cross a boundary. A span starts at ``B-X``, or at ``I-X`` whose previous word is not of class X.
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    cls = LABEL_CLASS[labels]
    prev_cls = np.empty(n, dtype=np.int64)
    prev_cls[:1] = -1
    prev_cls[1:] = cls[:-1]
    essay_first = np.zeros(n, dtype=bool)
    if essay_offsets is not None:
        first = np.asarray(essay_offsets, dtype=np.int64)[:-1]
        essay_first[first[first < n]] = True
        prev_cls[essay_first] = -1
    in_span = cls >= 0
    is_start = in_span & (LABEL_IS_BEGIN[labels] | (prev_cls != cls))
    starts = np.nonzero(is_start)[0]
    # a span ends before the next start, O word or essay, whichever comes first
    breaks = np.append(np.nonzero(is_start | ~in_span | essay_first)[0], n)
    ends = breaks[np.searchsorted(breaks, starts, side="right")]
    return starts, ends
