"""Spelling normalisation of student essays (issue 14): each word corrected one-to-one, never changing the number of
``text.split()`` words, so word indices and ``predictionstring``s stay valid.

A word is corrected only when it is a plain lower- or capitalised alphabetic word (surrounding punctuation kept
as it is), at least ``min_length`` letters long, absent from the dictionary, and the dictionary's most frequent
suggestion is within ``max_edit_distance`` and not just a form the British dictionary lacks (see
:func:`_likely_valid`); names, numbers, URLs, emoji, words with digits or inner capitals and
non-English words without a close suggestion are left alone. Uses ``symspellpy`` with its bundled English
frequency dictionary (``pip install symspellpy``). The whitespace of the text is kept byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_WORD = re.compile(r"\S+")
# a word's core: ASCII letters only, with any non-letters around it (punctuation glued to the word)
_CORE = re.compile(r"^([^A-Za-z]*)([A-Za-z]+)([^A-Za-z]*)$")


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

    def correct_word(self, word: str) -> str:
        """``word`` with its core corrected, or unchanged; never contains whitespace."""
        match = _CORE.match(word)
        if not match:
            return word
        head, core, tail = match.groups()
        if len(core) < self.min_length or not (core.islower() or (core[0].isupper() and core[1:].islower())):
            return word
        key = core.lower()
        if key not in self._cache:
            self._cache[key] = self._lookup(key)
        fixed = self._cache[key]
        if fixed == key:
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
        raise ImportError("spelling normalisation needs symspellpy: pip install symspellpy") from None
    import importlib.resources

    sym = SymSpell(max_dictionary_edit_distance=max_edit_distance, prefix_length=7)
    path = importlib.resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt"
    with importlib.resources.as_file(path) as p:
        sym.load_dictionary(str(p), term_index=0, count_index=1)
    return sym
