"""The synthetic corpus in the Kaggle Feedback Prize layout: ``train.csv``, ``train/*.txt``, ``test/*.txt``.

Essays come from :mod:`feedback_ner.synthetic.essays` with the real class frequencies and a long-tailed length
distribution. ``predictionstring`` is always derived from the offsets by the competition's rule.
"""

from __future__ import annotations

import csv
import logging
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from feedback_ner.errors import FeedbackError
from feedback_ner.labels import CLASSES, to_predictionstring
from feedback_ner.synthetic.essays import MIN_WORDS, Essay, generate_essay

logger = logging.getLogger("feedback_ner.synthetic.corpus")

# Element counts of the real train set (15,594 essays, 144,293 elements).
REAL_CLASS_COUNTS: dict[str, int] = {
    "Claim": 50208,
    "Evidence": 45702,
    "Position": 15419,
    "Concluding Statement": 13505,
    "Lead": 9305,
    "Counterclaim": 5817,
    "Rebuttal": 4337,
}
REAL_ESSAYS = 15594
TOKENS_PER_WORD = 1.3  # RoBERTa/Longformer BPE on student essays
LONG_TOKENS = 1024
LONGEST_WORDS = 2000  # corpora of LONGEST_FROM essays or more contain one essay at least this long
LONGEST_FROM = 200

# "lf": essays as generated ("\n" line ends); "mixed": each essay gets its own mix of "\n", "\r\n" and "\r" line
# ends, some spaces become tabs or non-breaking spaces (words stay the same: they are str.split() whitespace).
LINE_ENDINGS: tuple[str, ...] = ("lf", "mixed")

TRAIN_COLUMNS = (
    "id",
    "discourse_id",
    "discourse_start",
    "discourse_end",
    "discourse_text",
    "discourse_type",
    "discourse_type_num",
    "predictionstring",
)



def sample_lengths(rng: np.random.Generator, n: int) -> np.ndarray:
    """Target essay lengths in words: most ~150-700, a long tail (~14% over 790 words), one >= 2,000 in big sets."""
    part = rng.random(n)
    main = 255 * np.exp(0.33 * rng.standard_normal(n))
    long = 1030 * np.exp(0.26 * rng.standard_normal(n))
    very = 1550 * np.exp(0.18 * rng.standard_normal(n))
    lengths = np.where(part < 0.81, main, np.where(part < 0.985, long, very))
    lengths = np.clip(lengths, 140, 2600)
    return lengths.astype(np.int64)


def _unique_ids(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    """Essay ids like the real ones: 12 upper-case hex digits."""
    out = []
    while len(out) < n:
        value = f"{rng.getrandbits(48):012X}"
        if value not in taken:
            taken.add(value)
            out.append(value)
    return out


def mix_whitespace(text: str, rng: random.Random) -> tuple[str, np.ndarray]:
    """``text`` with this essay's mix of line ends (``\\n``, ``\\r\\n``, ``\\r``) and some spaces as tabs or
    non-breaking spaces, and where each character of ``text`` starts in it (one more entry: the new length).

    Reading the result with ``\\r\\n`` and ``\\r`` as ``\\n`` gives ``text`` with the same tabs and spaces; the
    words (``str.split()``) are those of ``text`` either way.
    """
    mode = rng.choice(("crlf", "cr", "mixed", "lf"))
    p_tab, p_nbsp = rng.choice((0.0, 0.01, 0.05)), rng.choice((0.0, 0.01, 0.05))
    parts: list[str] = []
    for ch in text:
        if ch == "\n":
            end = mode if mode != "mixed" else rng.choice(("crlf", "cr", "lf"))
            if end == "lf" and parts and parts[-1] == "\r":  # "\r" then "\n" would read as one line end
                end = "cr"
            ch = {"crlf": "\r\n", "cr": "\r", "lf": "\n"}[end]
        elif ch == " ":
            u = rng.random()
            ch = "\t" if u < p_tab else "\xa0" if u < p_tab + p_nbsp else " "
        parts.append(ch)
    starts = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=starts[1:])
    return "".join(parts), starts


def generate_corpus(
    n: int, seed: int = 0, n_test: int = 5, line_endings: str = "lf", normalised_offsets: bool = False,
    max_words: int | None = None,
) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """The corpus in memory: ``train.csv`` rows, train texts by id, test texts by id.

    ``line_endings="mixed"`` writes essays that mix line ends, tabs and non-breaking spaces (:func:`mix_whitespace`);
    their offsets index the text as stored, or, with ``normalised_offsets``, the text read with ``\\r\\n`` and
    ``\\r`` as ``\\n`` (both occur in corpora made on other systems). ``"lf"`` gives the same bytes as before.
    ``max_words`` caps the target length of every essay (a corpus of short essays, with shorter elements; at least
    ``MIN_WORDS``); None keeps the long-tailed lengths.
    """
    if n < 1 or n_test < 0:
        raise ValueError(f"need n >= 1 and n_test >= 0, got n={n}, n_test={n_test}")
    if line_endings not in LINE_ENDINGS:
        raise ValueError(f"line_endings={line_endings!r}; choose one of: {', '.join(LINE_ENDINGS)}")
    if max_words is not None and max_words < MIN_WORDS:
        raise ValueError(f"max_words={max_words}: essays have at least {MIN_WORDS} words")
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    lengths = sample_lengths(nprng, n + n_test)
    if max_words is not None:
        lengths = np.minimum(lengths, max_words)
    # every sizeable corpus gets one essay of >= 2,000 words, so that the far end of the tail is exercised
    longest = int(np.argmax(lengths[:n])) if n >= LONGEST_FROM and max_words is None else -1
    if longest >= 0:
        lengths[longest] = max(int(lengths[longest]), 2300)
    taken: set[str] = set()
    ids = _unique_ids(rng, n + n_test, taken)
    rows: dict[str, list] = {c: [] for c in TRAIN_COLUMNS}
    train: dict[str, str] = {}
    test: dict[str, str] = {}
    used_did: set[int] = set()
    for i, essay_id in enumerate(ids):
        essay_rng = random.Random(rng.getrandbits(64))
        essay = generate_essay(essay_rng, int(lengths[i]), min_words=LONGEST_WORDS if i == longest else MIN_WORDS)
        text, at = essay.text, np.arange(len(essay.text) + 1)
        if line_endings == "mixed":  # its own generator: "lf" corpora keep their bytes
            text, at = mix_whitespace(essay.text, random.Random(f"{seed}/{essay_id}"))
        if i >= n:
            test[essay_id] = text
            continue
        train[essay_id] = text
        # the offsets' text: as stored, or (normalised_offsets) with "\r\n" and "\r" read as "\n"
        quoted_text = text.replace("\r\n", "\n").replace("\r", "\n") if normalised_offsets else text
        if not normalised_offsets:
            essay = Essay(text, tuple(replace(e, start=int(at[e.start]), end=int(at[e.end])) for e in essay.elements),
                          essay.prompt)
        counts: dict[str, int] = {}
        # discourse ids are millisecond timestamps in the real data, rising within an essay
        did = essay_rng.randint(1_617_000_000_000, 1_627_000_000_000)
        for el in essay.elements:
            did += essay_rng.randint(1, 60_000)
            while did in used_did:
                did += 1
            used_did.add(did)
            counts[el.cls] = counts.get(el.cls, 0) + 1
            rows["id"].append(essay_id)
            rows["discourse_id"].append(float(did))
            rows["discourse_start"].append(float(el.start))
            rows["discourse_end"].append(float(el.end))
            rows["discourse_text"].append(quoted_text[el.start:el.end])
            rows["discourse_type"].append(el.cls)
            rows["discourse_type_num"].append(f"{el.cls} {counts[el.cls]}")
            rows["predictionstring"].append(to_predictionstring(el.words))
    return pd.DataFrame(rows, columns=list(TRAIN_COLUMNS)), train, test


def save_corpus(out_dir: str | Path, df: pd.DataFrame, train: dict[str, str], test: dict[str, str]) -> Path:
    """Write a generated corpus in the Kaggle layout; refuses a folder that holds essays of another corpus."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FeedbackError(f"{out}: a file is there, not a folder; choose a new or empty output folder")
    for sub, texts in (("train", train), ("test", test)):
        folder = out / sub
        stale = sorted(p.name for p in folder.glob("*.txt") if p.stem not in texts) if folder.is_dir() else []
        if stale:
            raise FeedbackError(
                f"{folder} already holds {len(stale)} essays of another corpus (e.g. {stale[0]}); "
                "choose an empty output folder or delete that one first"
            )
    for sub, texts in (("train", train), ("test", test)):
        folder = out / sub
        folder.mkdir(parents=True, exist_ok=True)
        for essay_id, text in texts.items():
            (folder / f"{essay_id}.txt").write_text(text, encoding="utf-8", newline="")
    # csv quotes a field holding "\n" but not one holding only "\r": quote every text field of such corpora
    has_cr = df.select_dtypes(include="object").apply(lambda c: c.astype(str).str.contains("\r").any()).any()
    df.to_csv(out / "train.csv", index=False, quoting=csv.QUOTE_NONNUMERIC if has_cr else csv.QUOTE_MINIMAL)
    # like Kaggle's: one placeholder prediction per test essay
    sub_rows = [(essay_id, "Lead", "1 2 3 4 5") for essay_id in test]
    submission = pd.DataFrame(sub_rows, columns=["id", "class", "predictionstring"])
    submission.to_csv(out / "sample_submission.csv", index=False)
    logger.info("wrote %d train and %d test essays to %s", len(train), len(test), out)
    return out


def write_corpus(
    out_dir: str | Path, n: int, seed: int = 0, n_test: int = 5, line_endings: str = "lf",
    normalised_offsets: bool = False, max_words: int | None = None,
) -> Path:
    """Write ``n`` labelled and ``n_test`` unlabelled essays in the Kaggle layout into ``out_dir``; returns it.

    Files: ``train.csv``, ``train/<id>.txt``, ``test/<id>.txt``, ``sample_submission.csv``. Same seed, same bytes.
    ``line_endings`` and ``normalised_offsets``: see :func:`generate_corpus`.
    """
    return save_corpus(out_dir, *generate_corpus(n, seed, n_test, line_endings, normalised_offsets, max_words))


def summarize(df: pd.DataFrame, train: dict[str, str], n_test: int = 0) -> str:
    """A short human-readable summary of a corpus: counts and shares per class next to the real ones, lengths."""
    words = np.array([len(t.split()) for t in train.values()])
    counts = df["discourse_type"].value_counts()
    real_total = sum(REAL_CLASS_COUNTS.values())
    lines = [
        f"essays: {len(words)} train + {n_test} test, elements: {len(df)} "
        f"({len(df) / max(1, len(words)):.2f} per essay; real {real_total / REAL_ESSAYS:.2f})",
        f"{'class':<22}{'count':>8}{'share':>8}{'real':>8}",
    ]
    for cls in sorted(CLASSES, key=lambda c: -REAL_CLASS_COUNTS[c]):
        c = int(counts.get(cls, 0))
        lines.append(f"{cls:<22}{c:>8}{c / max(1, len(df)):>8.3f}{REAL_CLASS_COUNTS[cls] / real_total:>8.3f}")
    if len(words):
        long_share = float(np.mean(words * TOKENS_PER_WORD > LONG_TOKENS))
        lines.append(
            f"words per essay: mean {words.mean():.0f}, min {words.min()}, max {words.max()}; "
            f"> {LONG_TOKENS} tokens (~{TOKENS_PER_WORD} tokens/word): {long_share:.1%}"
        )
    return "\n".join(lines)

