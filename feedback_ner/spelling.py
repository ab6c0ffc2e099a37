"""Spelling normalisation of student essays (issue 14): each word corrected one-to-one, never changing the number of
``text.split()`` words, so word indices and ``predictionstring``s stay valid.

A word is corrected only when it is a plain lower- or capitalised alphabetic word (surrounding punctuation kept
as it is), at least ``min_length`` letters long, absent from the dictionary, and the dictionary's most frequent
suggestion is within ``max_edit_distance`` and not just a form the British dictionary lacks (see
:func:`_likely_valid`); names, numbers, URLs, emoji, words with digits or inner capitals and
non-English words without a close suggestion are left alone. Words run together by sentence punctuation where a
space is missing (``know.Technolgy``) have each part corrected; a capitalised word only into a common word
(:data:`COMMON_COUNT`). Uses ``symspellpy`` with its bundled English
frequency dictionary (``pip install feedback_ner[spelling]``). The whitespace of the text is kept byte for byte.

Wiring (the ``normalize_spelling`` config field): :func:`normalize_table` turns a word table into the one the model
sees (texts corrected, word offsets recomputed, everything else kept), used by ``kfold.fold_data`` before the
windows are cut and by ``inference`` for a checkpoint whose ``feedback_ner.json`` records the flag;
:func:`spelling_figures` gives the one log line of a run (share of words changed, sub-tokens per word before and
after).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from feedback_ner.errors import FeedbackError
from feedback_ner.labels import word_offsets_many

if TYPE_CHECKING:
    import pandas as pd

_WORD = re.compile(r"\S+")
# A capitalised word (often a name, or a foreign word) is corrected only into a word at least this frequent in the
# dictionary: "Rvier" -> "River" (79M), not "Schule" -> "Schulz" (0.9M). The words students misspell are common.
COMMON_COUNT = 5_000_000
# a word's core: ASCII letters only, with any non-letters around it (punctuation glued to the word)
_CORE = re.compile(r"^([^A-Za-z]*)([A-Za-z]+)([^A-Za-z]*)$")
# two or more words joined by sentence punctuation, a space missing ("know.Technolgy", "Students,becuase"); each
# part is corrected on its own. Apostrophes, hyphens, slashes, "@", "_" and digits never join parts (contractions,
# compounds, URLs, e-mail addresses, placeholders such as Generic_Name), nor does a web address's "www."/".com".
_JOINED = re.compile(r"^[^A-Za-z]*[A-Za-z]+(?:[.,;:!?]+[A-Za-z]+)+[^A-Za-z]*$")
_PART = re.compile(r"[A-Za-z]+|[^A-Za-z]+")
_WEB = re.compile(r"(?i)www\.|\.(?:com|org|net|edu|gov|io|html?)\b")


class MissingDependencyError(FeedbackError, ImportError):
    """symspellpy is not installed (a one-line error in the commands)."""


@dataclass(frozen=True)
class SpellingStats:
    """How many ``text.split()`` words a normalisation saw and changed."""

    words: int
    changed: int

    @property
    def share_changed(self) -> float:
        return self.changed / self.words if self.words else 0.0


class SpellingNormalizer:
    """Corrects misspelt words one-to-one with symspellpy's bundled English dictionary (loaded once per process)."""

    def __init__(self, max_edit_distance: int = 1, min_length: int = 5) -> None:
        if max_edit_distance not in (1, 2):
            raise ValueError(f"max_edit_distance={max_edit_distance}: use 1 or 2.")
        self.max_edit_distance = max_edit_distance
        self.min_length = min_length
        self._sym = _symspell(max_edit_distance)
        self._cache: dict[str, str] = {}
        self._texts: dict[str, tuple[str, SpellingStats]] = {}  # every fold of a run normalises the same essays

    def correct_word(self, word: str) -> str:
        """``word`` with its core corrected, or unchanged; never contains whitespace."""
        match = _CORE.match(word)
        if not match:
            if _JOINED.match(word) and not _WEB.search(word):
                return "".join(self.correct_word(part) if part.isalpha() else part for part in _PART.findall(word))
            return word
        head, core, tail = match.groups()
        if len(core) < self.min_length or not (core.islower() or (core[0].isupper() and core[1:].islower())):
            return word
        key = core.lower()
        if key not in self._cache:
            self._cache[key] = self._lookup(key)
        fixed = self._cache[key]
        if fixed == key or (core[0].isupper() and self._sym.words.get(fixed, 0) < COMMON_COUNT):
            return word
        fixed = fixed[0].upper() + fixed[1:] if core[0].isupper() else fixed
        return f"{head}{fixed}{tail}"

    def _lookup(self, key: str) -> str:
        from symspellpy import Verbosity

        if key in self._sym.words:
            return key
        found = self._sym.lookup(key, Verbosity.TOP, max_edit_distance=self.max_edit_distance)
        if not found or not found[0].term.isalpha() or len(found[0].term) < 2:
            return key
        fixed = found[0].term
        return key if _likely_valid(key, fixed, self._sym.words) else fixed

    def normalize(self, text: str) -> tuple[str, SpellingStats]:
        """``text`` with each word corrected in place (whitespace untouched) and what changed."""
        hit = self._texts.get(text)
        if hit is None:
            hit = self._texts[text] = self._normalize(text)
        return hit

    def _normalize(self, text: str) -> tuple[str, SpellingStats]:
        pieces: list[str] = []
        last = words = changed = 0
        for m in _WORD.finditer(text):
            pieces.append(text[last : m.start()])
            fixed = self.correct_word(m.group())
            words += 1
            changed += fixed != m.group()
            pieces.append(fixed)
            last = m.end()
        pieces.append(text[last:])
        return "".join(pieces), SpellingStats(words, changed)


@lru_cache(maxsize=1)
def default_normalizer() -> SpellingNormalizer:
    """The normaliser that ``normalize_spelling`` uses (default settings; one per process, its caches shared)."""
    return SpellingNormalizer()


def normalize_table(
    table: pd.DataFrame, normalizer: SpellingNormalizer | None = None
) -> tuple[pd.DataFrame, SpellingStats]:
    """A copy of a word table (``text``, ``word_start``, ``word_end``, ...) with each essay's text normalised and its
    word offsets recomputed on the new text; ids, labels, folds and every essay's word count are unchanged, so word
    indices and ``predictionstring``s stay valid. Returns the table and what changed over all its essays."""
    normalizer = normalizer or default_normalizer()
    texts = table["text"].tolist()
    done = [normalizer.normalize(t) for t in texts]
    fixed = [t for t, _ in done]
    starts, ends, n_words = word_offsets_many(fixed)
    expected = np.fromiter(map(len, table["word_start"]), np.int64, count=len(table))
    if not np.array_equal(n_words, expected):  # a broken invariant of correct_word, never a user's mistake
        row = int(np.flatnonzero(n_words != expected)[0])
        raise AssertionError(f"spelling normalisation changed the word count of essay row {row}")
    out = table.copy()
    out["text"] = fixed
    out["word_start"] = _rows(starts, n_words)
    out["word_end"] = _rows(ends, n_words)
    return out, SpellingStats(sum(s.words for _, s in done), sum(s.changed for _, s in done))


def _rows(flat: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``flat`` cut into one array per row, as a 1-d object array (equal sizes must not become a 2-d array)."""
    out = np.empty(len(sizes), dtype=object)
    for i, part in enumerate(np.split(flat, np.cumsum(sizes)[:-1]) if len(sizes) else []):
        out[i] = part
    return out


def spelling_figures(
    before: Sequence[str], after: Sequence[str], tokens_before: Sequence[int], tokens_after: Sequence[int]
) -> dict[str, float]:
    """Over the essays given (texts before and after normalisation, and their token counts without special
    tokens): ``essays``, ``words``, ``share_changed`` (of ``text.split()`` words) and ``subtokens_per_word_before``
    / ``_after``."""
    words = changed = 0
    for old, new in zip(before, after, strict=True):
        old_words, new_words = old.split(), new.split()
        words += len(old_words)
        changed += sum(a != b for a, b in zip(old_words, new_words, strict=True))
    per_word = 1.0 / words if words else 0.0
    return {
        "essays": len(before),
        "words": words,
        "share_changed": changed * per_word,
        "subtokens_per_word_before": float(sum(tokens_before)) * per_word,
        "subtokens_per_word_after": float(sum(tokens_after)) * per_word,
    }


def figures_line(figures: dict[str, float]) -> str:
    """:func:`spelling_figures` as one log line."""
    return (
        f"spelling normalisation: {figures['share_changed']:.2%} of {int(figures['words']):,} words changed; "
        f"sub-tokens per word {figures['subtokens_per_word_before']:.3f} -> {figures['subtokens_per_word_after']:.3f}"
        f" (on {int(figures['essays']):,} essays)"
    )


def _likely_valid(key: str, fixed: str, words: dict) -> bool:
    """Forms the bundled (British, apostrophe-keeping) dictionary lacks but students write correctly: plurals and
    possessives (``counselors``, ``thats``), apostrophe-less negations (``wasnt``), American spellings
    (``neighbor``, ``traveling``)."""
    if key.endswith("s") and key[:-1] in words:
        return True
    if key.endswith("nt"):
        return True
    if fixed.replace("our", "or") == key:
        return True
    return len(fixed) == len(key) + 1 and any(
        fixed[i] == fixed[i + 1] and fixed[:i] + fixed[i + 1 :] == key for i in range(len(fixed) - 1)
    )


@lru_cache(maxsize=2)
def _symspell(max_edit_distance: int):
    try:
        from symspellpy import SymSpell
    except ImportError:
        raise MissingDependencyError(
            "spelling normalisation (normalize_spelling, also recorded in a checkpoint's feedback_ner.json) needs "
            "symspellpy: pip install 'feedback_ner[spelling]'"
        ) from None
    import importlib.resources

    sym = SymSpell(max_dictionary_edit_distance=max_edit_distance, prefix_length=7)
    path = importlib.resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt"
    with importlib.resources.as_file(path) as p:
        sym.load_dictionary(str(p), term_index=0, count_index=1)
    return sym
