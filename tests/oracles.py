"""Reference versions written word by word, for tests only: the library's decoder is the vectorised
``postprocess.candidate_spans`` + ``filter_spans`` (issue 17: one decoder in the library). These per-essay loops
say the same rules in the plainest way, so the tests can hold the fast path to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from feedback_ner.labels import B_IDS, CLASSES, NUM_LABELS, O_ID, to_predictionstring
from feedback_ner.postprocess import PostprocessConfig

_BEGIN = {v: k for k, v in B_IDS.items()}


class Span(NamedTuple):
    """Words ``start .. end-1`` of an essay, of class ``cls``; ``score`` = mean max word probability."""

    cls: str
    start: int
    end: int
    score: float = 1.0

    @property
    def n_words(self) -> int:
        return self.end - self.start

    @property
    def predictionstring(self) -> str:
        return to_predictionstring(range(self.start, self.end))


def _class_of(label: int) -> str | None:
    return None if label == O_ID else CLASSES[(int(label) - 1) // 2]


def decode_spans(word_probs: np.ndarray) -> list[Span]:
    """Argmax BIO decoding of one essay, word by word: a span starts at ``B-X`` or at ``I-X`` after another class
    (or O) and runs over the following ``I-X`` words."""
    word_probs = np.asarray(word_probs)
    assert word_probs.ndim == 2 and word_probs.shape[1] == NUM_LABELS
    labels = word_probs.argmax(axis=1)
    maxprob = word_probs.max(axis=1).astype(np.float64)
    spans: list[Span] = []
    current: list = []  # [cls, start]

    def close(end: int) -> None:
        if current:
            cls, start = current
            spans.append(Span(cls, start, end, float(maxprob[start:end].mean())))
            current.clear()

    for i, label in enumerate(labels.tolist()):
        cls = _class_of(label)
        if cls is None:
            close(i)
        elif not current or label in _BEGIN or current[0] != cls:
            close(i)
            current.extend([cls, i])
    close(len(labels))
    return spans


def postprocess(spans: Sequence[Span], config: PostprocessConfig, word_probs: np.ndarray | None = None) -> list[Span]:
    """The rules on one essay's spans, in word order: merge (``join_adjacent``, ``fill_gaps``), then the
    ``min_words`` / ``proba_thresh`` filters, then one span per essay of the ``one_per_essay`` classes.

    ``word_probs`` is needed to see the gap words (must be argmax O) and the start labels (``fill_gaps`` never
    merges into a ``B-X``); without it only gap-0 joins are possible.
    """
    spans = sorted(spans, key=lambda s: (s.start, s.end))
    if word_probs is None and (config.fill_gaps or (config.join_adjacent and config.join_gap)):
        raise ValueError("postprocess(): fill_gaps and join_adjacent with join_gap > 0 need the essay's word_probs")
    labels = maxprob = None
    if word_probs is not None:
        labels = np.asarray(word_probs).argmax(axis=1)
        maxprob = np.asarray(word_probs).max(axis=1).astype(np.float64)
    merged: list[list] = []  # [cls, start, end, total score, the span itself while nothing was merged into it]
    for s in spans:
        if merged:
            cls, start, end, total, _ = merged[-1]
            gap = s.start - end
            if labels is None:
                gap_ok = gap == 0
            else:
                gap_ok = gap >= 0 and bool((labels[end : s.start] == O_ID).all())
            begins_with_b = True if labels is None else int(labels[s.start]) == B_IDS[s.cls]
            same = cls == s.cls and gap_ok
            join = same and s.cls in config.join_adjacent and gap <= config.join_gap
            fill = same and 1 <= gap <= config.fill_gaps and not begins_with_b
            if join or fill:
                gap_mass = 0.0 if maxprob is None else float(maxprob[end : s.start].sum())
                merged[-1] = [cls, start, s.end, total + s.score * s.n_words + gap_mass, None]
                continue
        merged.append([s.cls, s.start, s.end, s.score * s.n_words, s])
    out = [same or Span(c, a, b, t / (b - a)) for c, a, b, t, same in merged]
    out = [s for s in out if s.n_words >= config.min_words[s.cls] and s.score >= config.proba_thresh[s.cls]]
    for cls in config.one_per_essay:
        of_cls = [s for s in out if s.cls == cls]
        if len(of_cls) > 1:
            best = max(of_cls, key=lambda s: (s.score, -s.start))
            out = [s for s in out if s.cls != cls or s is best]
    return out
