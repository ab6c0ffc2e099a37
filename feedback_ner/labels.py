"""The label scheme and the competition's word indexing, in one place.

Words are ``text.split()``; a span is a set of word indices written as a ``predictionstring``
("3 4 5"). Token-level models use 15 BIO labels: ``O`` plus ``B-``/``I-`` for each of the 7 classes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

CLASSES: tuple[str, ...] = (
    "Lead",
    "Position",
    "Claim",
    "Counterclaim",
    "Rebuttal",
    "Evidence",
    "Concluding Statement",
)
LABELS: tuple[str, ...] = ("O",) + tuple(f"{p}-{c}" for c in CLASSES for p in ("B", "I"))
LABEL2ID: dict[str, int] = {label: i for i, label in enumerate(LABELS)}
ID2LABEL: dict[int, str] = dict(enumerate(LABELS))
NUM_LABELS = len(LABELS)  # 15
O_ID = 0
B_IDS: dict[str, int] = {c: LABEL2ID[f"B-{c}"] for c in CLASSES}
I_IDS: dict[str, int] = {c: LABEL2ID[f"I-{c}"] for c in CLASSES}
CLASS_OF_LABEL: dict[int, str | None] = {i: (None if i == O_ID else LABELS[i][2:]) for i in range(NUM_LABELS)}

# `\S+` matches exactly the pieces of str.split(): Python's re and str.isspace agree on every code point.
_WORD = re.compile(r"\S+")


def split_words(text: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Words of ``text`` as ``text.split()`` gives them, with their character start and end offsets."""
    matches = list(_WORD.finditer(text))
    starts = np.fromiter((m.start() for m in matches), dtype=np.int64, count=len(matches))
    ends = np.fromiter((m.end() for m in matches), dtype=np.int64, count=len(matches))
    return [m.group() for m in matches], starts, ends


def offsets_to_word_indices(text: str, start: int, end: int) -> list[int]:
    """Word indices of the character span ``[start, end)`` by the competition's own rule.

    ``w0 = len(text[:start].split())``, ``n = len(text[start:end].split())``, words ``w0 .. min(w0+n, N)-1``.
    Off by one for some mid-word offsets; that is how the competition built ``predictionstring``.
    """
    n_words = len(text.split())
    w0 = len(text[:start].split())
    n = len(text[start:end].split())
    return list(range(w0, min(w0 + n, n_words)))


def to_predictionstring(indices: Iterable[int]) -> str:
    """``[3, 4, 5]`` -> ``"3 4 5"``."""
    return " ".join(str(int(i)) for i in indices)


def parse_predictionstring(value: str) -> list[int]:
    """``"3 4 5"`` -> ``[3, 4, 5]``; raises ``ValueError`` on anything that is not integers."""
    return [int(x) for x in str(value).split()]


def bio_labels(n_words: int, spans: Iterable[tuple[str, Sequence[int]]]) -> np.ndarray:
    """Word-level BIO label ids for an essay of ``n_words`` words from ``(class, word indices)`` spans.

    The first (lowest) index of a span gets ``B-<class>``, the others ``I-<class>``. Later spans overwrite
    earlier ones where they overlap; the data pipeline reports overlaps before calling this.
    """
    labels = np.zeros(n_words, dtype=np.int64)
    for cls, indices in spans:
        idx = sorted(int(i) for i in indices if 0 <= int(i) < n_words)
        if not idx:
            continue
        labels[idx[0]] = B_IDS[cls]
        labels[idx[1:]] = I_IDS[cls]
    return labels


def labels_to_spans(labels: Sequence[int]) -> list[tuple[str, list[int]]]:
    """Inverse of :func:`bio_labels` for hard labels: a span starts at ``B-X`` or at ``I-X`` after another class."""
    spans: list[tuple[str, list[int]]] = []
    current: tuple[str, list[int]] | None = None
    for i, lab in enumerate(labels):
        lab = int(lab)
        cls = CLASS_OF_LABEL[lab]
        if cls is None:
            current = None
            continue
        is_begin = lab == B_IDS[cls]
        if current is None or is_begin or current[0] != cls:
            current = (cls, [i])
            spans.append(current)
        else:
            current[1].append(i)
    return spans
