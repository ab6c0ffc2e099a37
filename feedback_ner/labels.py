"""The label scheme and the competition's word indexing, in one place.

Words are ``text.split()``; a span is a set of word indices written as a ``predictionstring``
("3 4 5"). Token-level models use 15 BIO labels: ``O`` plus ``B-``/``I-`` for each of the 7 classes.
"""

from __future__ import annotations

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
assert all(B_IDS[c] + 1 == I_IDS[c] for c in CLASSES)  # relied on by bio_labels_many
CLASS_OF_LABEL: dict[int, str | None] = {i: (None if i == O_ID else LABELS[i][2:]) for i in range(NUM_LABELS)}

# Every code point str.isspace() (and so str.split()) treats as whitespace.
_SPACES = np.array([c for c in range(0x3001) if chr(c).isspace()], dtype=np.uint32)


def group_starts(counts: np.ndarray) -> np.ndarray:
    """Start of each group in a concatenation of groups of the given sizes (int64)."""
    out = np.zeros(len(counts), np.int64)
    np.cumsum(counts[:-1], out=out[1:])
    return out


def segment_min(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The smallest of each run of ``values`` (runs of the given sizes, end to end); int64 max for an empty run."""
    sizes = np.asarray(sizes, dtype=np.int64)
    out = np.full(len(sizes), np.iinfo(np.int64).max)
    nonempty = sizes > 0
    if nonempty.any():
        out[nonempty] = np.minimum.reduceat(values, group_starts(sizes[nonempty]))
    return out


def word_offsets(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Character start and end offsets of the words of ``text.split()`` (vectorised; no word strings built)."""
    if not text:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    is_word = np.ones(len(codes) + 2, dtype=np.int8)
    is_word[0] = is_word[-1] = 0
    is_word[1:-1] = ~np.isin(codes, _SPACES)
    edges = np.diff(is_word)
    return np.flatnonzero(edges == 1).astype(np.int64), np.flatnonzero(edges == -1).astype(np.int64)


# str.isspace() of every code point up to 0x3000 (the last whitespace one); anything above maps to the final False.
_SPACE_LUT = np.zeros(0x3002, dtype=bool)
_SPACE_LUT[_SPACES] = True


def word_offsets_many(texts: Sequence[str], chunk_chars: int = 1 << 18) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`word_offsets` of many texts in a few vectorised passes: flat ``starts`` and ``ends`` (each relative to
    its own text, texts one after the other) and the number of words of each text."""
    n = len(texts)
    n_words = np.zeros(n, dtype=np.int64)
    starts_out: list[np.ndarray] = []
    ends_out: list[np.ndarray] = []
    lo = 0
    while lo < n:
        # a chunk of texts joined by a space: no word crosses from one text into the next
        hi, size = lo, 0
        while hi < n and (hi == lo or size + len(texts[hi]) < chunk_chars):
            size += len(texts[hi]) + 1
            hi += 1
        chunk = texts[lo:hi]
        lengths = np.fromiter(map(len, chunk), dtype=np.int64, count=hi - lo)
        base = group_starts(lengths + 1)
        joined = " ".join(chunk)
        is_word = np.zeros(len(joined) + 2, dtype=np.int8)
        if joined.isascii():  # one byte per character: 4x less to scan
            is_word[1:-1] = ~_SPACE_LUT[np.frombuffer(joined.encode("ascii"), dtype=np.uint8)]
        else:
            codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
            is_word[1:-1] = ~_SPACE_LUT[np.minimum(codes, len(_SPACE_LUT) - 1)]
        edges = np.diff(is_word)
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        text_of = np.searchsorted(base, starts, side="right") - 1
        n_words[lo:hi] = np.bincount(text_of, minlength=hi - lo)
        starts_out.append(starts - base[text_of])
        ends_out.append(ends - base[text_of])
        lo = hi
    empty = np.zeros(0, dtype=np.int64)
    return (np.concatenate(starts_out) if starts_out else empty, np.concatenate(ends_out) if ends_out else empty,
            n_words)


def split_words(text: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Words of ``text`` as ``text.split()`` gives them, with their character start and end offsets."""
    starts, ends = word_offsets(text)
    return [text[a:b] for a, b in zip(starts.tolist(), ends.tolist())], starts, ends


def offsets_to_word_indices(text: str, start: int, end: int) -> list[int]:
    """Word indices of the character span ``[start, end)`` by the competition's own rule.

    ``w0 = len(text[:start].split())``, ``n = len(text[start:end].split())``, words ``w0 .. min(w0+n, N)-1``.
    Off by one for some mid-word offsets; that is how the competition built ``predictionstring``.
    """
    n_words = len(text.split())
    w0 = len(text[:start].split())
    n = len(text[start:end].split())
    return list(range(w0, min(w0 + n, n_words)))


def offsets_to_word_ranges(
    word_starts: np.ndarray, word_ends: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`offsets_to_word_indices` for many spans of one essay: word ranges ``[w0, w1)``.

    Valid for ``0 <= start < end <= len(text)`` (what validation guarantees); ``word_starts``/``word_ends`` are the
    essay's :func:`word_offsets`. ``w0`` counts the words (or word parts) before ``start``; the count of words in
    ``text[start:end]`` counts every word that overlaps the span.
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    w0 = np.searchsorted(word_starts, starts, side="left")
    n = np.searchsorted(word_starts, ends, side="left") - np.searchsorted(word_ends, starts, side="right")
    n = np.where(ends > starts, np.maximum(n, 0), 0)
    return w0, np.minimum(w0 + n, len(word_starts))


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
        idx = np.unique(np.asarray(indices, dtype=np.int64))
        idx = idx[(idx >= 0) & (idx < n_words)]
        if not len(idx):
            continue
        labels[idx[0]] = B_IDS[cls]
        labels[idx[1:]] = I_IDS[cls]
    return labels


def bio_labels_many(
    n_words: np.ndarray, span_essay: np.ndarray, span_class: np.ndarray, indices: np.ndarray, span_sizes: np.ndarray
) -> np.ndarray:
    """:func:`bio_labels` of many essays at once, flat (essays one after the other).

    ``n_words``: words per essay; span ``j`` belongs to essay ``span_essay[j]``, has class index ``span_class[j]``
    (into :data:`CLASSES`) and the word indices ``indices[sum(span_sizes[:j]) : ...]``. Spans are applied in order:
    within an essay a later span overwrites an earlier one where they overlap, as in :func:`bio_labels`.
    """
    n_words = np.asarray(n_words, dtype=np.int64)
    sizes = np.asarray(span_sizes, dtype=np.int64)
    span_essay = np.asarray(span_essay, dtype=np.int64)
    word_base = group_starts(n_words)
    labels = np.zeros(int(n_words.sum()), dtype=np.int64)
    idx = np.asarray(indices, dtype=np.int64)
    valid = (idx >= 0) & (idx < np.repeat(n_words[span_essay], sizes))
    if not valid.all():  # drop out-of-range indices (validated data has none)
        kept = np.r_[0, np.cumsum(valid)]
        ends = np.cumsum(sizes)
        sizes = kept[ends] - kept[ends - sizes]
        idx = idx[valid]
    if not len(idx):
        return labels
    # the lowest index of each span gets B-, the others I- (B- is I- minus one in LABELS)
    first = segment_min(idx, sizes)
    inside = np.array([I_IDS[c] for c in CLASSES], dtype=np.int8)[np.asarray(span_class, dtype=np.int64)]
    value = np.repeat(inside, sizes)
    value -= idx == np.repeat(first, sizes)
    where = np.repeat(word_base[span_essay], sizes)
    where += idx
    if (where[1:] > where[:-1]).all():  # increasing: no word is in two spans (the usual case)
        labels[where] = value
        return labels
    shared = np.bincount(where, minlength=len(labels))[where] > 1
    if not shared.any():
        labels[where] = value
        return labels
    labels[where[~shared]] = value[~shared]
    # where spans overlap (rare), the last one wins
    span = np.repeat(np.arange(len(sizes)), sizes)
    where, value, span = where[shared], value[shared], span[shared]
    order = np.lexsort((span, where))
    where, value = where[order], value[order]
    last = np.r_[where[1:] != where[:-1], True]
    labels[where[last]] = value[last]
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
