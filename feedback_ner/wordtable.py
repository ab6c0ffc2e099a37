"""Word labels and folds: the word table (one row per essay) written as ``words.parquet``, cached by input fingerprint.

Command: ``python -m feedback_ner.prepare --data DIR --out DIR [--num-folds 5] [--seed 42] [--skip-bad]``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feedback_ner.corpus import Corpus, DataError, LoadReport, load_train, train_paths
from feedback_ner.files import atomic_write, file_sha1
from feedback_ner.labels import (
    CLASSES,
    bio_labels_many,
    group_starts,
    offsets_to_word_ranges,
    segment_min,
    to_predictionstring,
    word_offsets,
    word_offsets_many,
)
from feedback_ner.texts import is_essay_file

logger = logging.getLogger("feedback_ner.wordtable")

# Bump when the files written here change meaning, so older caches are rebuilt.
FORMAT_VERSION = 3  # 2: the text column holds the essay as stored (line ends kept; issue 12); 3: .TXT and
# UTF-16/32 essays are read (texts.py), so a table prepared without them is not reused
WORDS_FILE = "words.parquet"
ELEMENTS_FILE = "elements.parquet"
FOLDS_FILE = "folds.csv"
REPORT_FILE = "prepare_report.json"
FINGERPRINT_FILE = "fingerprint.json"
# Per-class element counts are stratified as indicators "none" and "at least t" for these t. Cumulative thresholds
# balance the per-class totals across folds (their sum is the count); "none" balances near-universal classes
# (Position, Concluding Statement), which iterative stratification would otherwise leave to chance.
COUNT_THRESHOLDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10)


def build_word_table(corpus: Corpus) -> pd.DataFrame:
    """One row per essay (sorted by id): ``id, text, word_start, word_end, labels`` (``int64`` arrays per row).

    Labels are BIO ids from each element's ``predictionstring`` (the truth). Rows whose character offsets give other
    words by the competition's rule are counted in ``corpus.report`` as ``offsets_disagree`` (recounted per call).
    Vectorised over the whole corpus (no per-essay loop).
    """
    elements = corpus.elements
    ids = sorted(corpus.texts)
    texts = [corpus.texts[i] for i in ids]
    if corpus.words is not None and corpus.words[0] == ids:
        starts, ends, n_words = corpus.words[1:]
    else:
        starts, ends, n_words = word_offsets_many(texts)
    word_base = group_starts(n_words)

    # elements per essay in order of their first word, so that later spans are the later ones in the text
    words_col = elements["word_indices"].to_numpy(dtype=object)
    sizes = np.fromiter(map(len, words_col), dtype=np.int64, count=len(words_col))
    essay = pd.Index(ids).get_indexer(elements["id"].to_numpy(dtype=object))
    if (essay < 0).any():
        bad = int(np.flatnonzero(essay < 0)[0])
        raise DataError(f"train.csv row for essay {elements['id'].iat[bad]!r} has no essay text; reload the data")
    order = np.lexsort((segment_min(_concat_int64(words_col), sizes), essay))
    essay, sizes = essay[order], sizes[order]
    bounds = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    flat = _concat_int64(words_col[order])  # the elements' word indices, in that order
    class_index = pd.Index(list(CLASSES)).get_indexer(elements["discourse_type"].to_numpy(dtype=object)[order])
    labels = bio_labels_many(n_words, essay, class_index, flat, sizes)

    # the competition's offsets -> words rule for every element at once; predictionstring wins where they differ
    lo, hi = _offset_word_ranges(
        starts, ends, n_words, word_base, essay,
        elements["discourse_start"].to_numpy(dtype=np.int64)[order],
        elements["discourse_end"].to_numpy(dtype=np.int64)[order],
    )
    n = hi - lo
    ne = sizes > 0
    padded = np.r_[flat, -1]  # an empty element's bounds may point one past the end; masked out below
    first_given = np.where(ne, padded[bounds[:-1]], -1)
    last_given = np.where(ne, padded[bounds[1:] - 1], -1)
    # steps of +1 between consecutive indices of an element (the last index of each element starts no step)
    step_bad = np.r_[np.diff(flat) != 1, False]
    step_bad[bounds[1:][ne] - 1] = False
    contiguous = np.ones(len(sizes), dtype=bool)
    if ne.any():
        contiguous[ne] = ~np.logical_or.reduceat(step_bad, bounds[:-1][ne])
    agree = (sizes == n) & ((n == 0) | ((first_given == lo) & (last_given == hi - 1) & contiguous))
    # the rare rest by word sets: "5 3 4" or "3 3 4" names the same words as offsets giving 3-5 or 3-4
    disagree = [(int(j), list(range(int(lo[j]), int(hi[j])))) for j in np.flatnonzero(~agree)
                if set(flat[bounds[j]:bounds[j + 1]].tolist()) != set(range(int(lo[j]), int(hi[j])))]
    corpus.report.issues.pop("offsets_disagree", None)
    _report_disagreements(elements, [(int(order[j]), words) for j, words in disagree], corpus.report)

    cuts = word_base[1:]
    return pd.DataFrame(
        {
            "id": ids,
            "text": texts,
            "word_start": np.split(starts, cuts),
            "word_end": np.split(ends, cuts),
            "labels": np.split(labels, cuts),
        }
    )


def _concat_int64(rows: Sequence[np.ndarray]) -> np.ndarray:
    """The integer arrays ``rows`` end to end, as int64."""
    return np.concatenate(list(rows)).astype(np.int64, copy=False) if len(rows) else np.zeros(0, np.int64)


def _offset_word_ranges(
    starts: np.ndarray, ends: np.ndarray, n_words: np.ndarray, word_base: np.ndarray, essay: np.ndarray,
    span_start: np.ndarray, span_end: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`labels.offsets_to_word_ranges` of character spans (``essay`` = each span's essay row) against flat word
    offsets: the essays' words are laid end to end on one character axis so that one ``searchsorted`` serves all."""
    last_end = np.zeros(len(n_words), dtype=np.int64)
    has = n_words > 0
    last_end[has] = ends[(word_base + n_words - 1)[has]]
    char_base = group_starts(last_end + 1)
    shift = np.repeat(char_base, n_words)
    g_starts, g_ends = starts + shift, ends + shift
    # offsets past an essay's last word end count no further word: clip them there, so that they stay on its axis
    s = np.minimum(span_start, last_end[essay]) + char_base[essay]
    e = np.minimum(span_end, last_end[essay]) + char_base[essay]
    w0, w1 = offsets_to_word_ranges(g_starts, g_ends, s, e)
    # the rule's last clip is to the essay's own word count (a mid-word start can count one word past it)
    return w0 - word_base[essay], np.minimum(w1 - word_base[essay], n_words[essay])


def test_word_table(texts: dict[str, str]) -> pd.DataFrame:
    """Word table of unlabelled essays (in the given order): ``id, text, word_start, word_end, fold`` (-1)."""
    word_start, word_end = [], []
    for text in texts.values():
        starts, ends = word_offsets(text)
        word_start.append(starts)
        word_end.append(ends)
    return pd.DataFrame(
        {
            "id": list(texts),
            "text": list(texts.values()),
            "word_start": word_start,
            "word_end": word_end,
            "fold": np.full(len(texts), -1, dtype=np.int64),
        }
    )


test_word_table.__test__ = False  # not a pytest test, despite the name


def class_counts(ids: pd.Series | list[str] | np.ndarray, elements: pd.DataFrame) -> np.ndarray:
    """Elements per class (columns in ``CLASSES`` order) of each essay in ``ids``; ids without elements count 0."""
    essay_index = pd.Index(np.asarray(ids, dtype=object)).get_indexer(elements["id"].to_numpy(dtype=object))
    class_index = pd.Index(list(CLASSES)).get_indexer(elements["discourse_type"].to_numpy(dtype=object))
    ok = (essay_index >= 0) & (class_index >= 0)
    flat = essay_index[ok] * len(CLASSES) + class_index[ok]
    return np.bincount(flat, minlength=len(ids) * len(CLASSES)).reshape(len(ids), len(CLASSES))


def stratification_matrix(ids: pd.Series | list[str] | np.ndarray, elements: pd.DataFrame) -> np.ndarray:
    """Indicator matrix (essays x columns) of per-class counts (none, >= t), the target of stratification."""
    counts = class_counts(ids, elements)
    cols = [counts == 0] + [counts >= t for t in COUNT_THRESHOLDS]
    y = np.concatenate(cols, axis=1)
    return y[:, y.any(axis=0)]


def assign_folds(table: pd.DataFrame, elements: pd.DataFrame, k: int = 5, seed: int = 42) -> np.ndarray:
    """Fold (0..k-1) of each row of ``table``: multilabel-stratified on binned per-essay class counts, seeded.

    Essays are sorted by id before splitting, so the result depends only on the ids, the elements, ``k`` and ``seed``.
    """
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    n = len(table)
    if k < 2:
        raise DataError(f"num_folds={k}: need at least 2 folds")
    if n < k:
        raise DataError(f"num_folds={k}: only {n} essays; use at most {n} folds (num_folds / --num_folds in train, "
                        "--num-folds in prepare)")
    ids = table["id"].astype(str).to_numpy()
    order = np.argsort(ids, kind="stable")
    y = stratification_matrix(ids[order], elements)
    if y.shape[1] < 2:  # the splitter wants 2+ indicator columns; constant ones change nothing but the type
        y = np.column_stack([y, np.ones((n, 2 - y.shape[1]), dtype=bool)])
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    sorted_folds = np.empty(n, dtype=np.int64)
    for fold, (_, test_idx) in enumerate(splitter.split(np.zeros((n, 1)), y)):
        sorted_folds[test_idx] = fold
    folds = np.empty(n, dtype=np.int64)
    folds[order] = sorted_folds
    return folds


def fold_class_counts(table: pd.DataFrame, elements: pd.DataFrame) -> pd.DataFrame:
    """Essays and elements per class in each fold (rows: folds; columns: ``essays`` then the classes)."""
    counts = pd.DataFrame(class_counts(table["id"], elements), columns=list(CLASSES))
    counts.insert(0, "essays", 1)
    out = counts.groupby(table["fold"].to_numpy()).sum().astype(np.int64)
    out.index.name = "fold"
    return out


def fingerprint(data_dir: str | os.PathLike, k: int, seed: int, skip_bad: bool) -> dict:
    """What the prepared files depend on: the content of train.csv (the file users edit: an edit that keeps its size
    and time, as ``cp -p``, ``rsync -a`` or an unpacked archive leave it, is seen too), sizes + mtimes of every
    train/*.txt, and the parameters."""
    csv_path, txt_dir = train_paths(data_dir)
    csv_digest = file_sha1(csv_path)  # ~0.1 s for the competition's train.csv
    digest = hashlib.sha1()
    n_txt = 0
    for entry in sorted(os.scandir(txt_dir), key=lambda e: e.name):
        if is_essay_file(entry):  # the files load_train reads
            st = entry.stat()
            digest.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            n_txt += 1
    return {
        "format_version": FORMAT_VERSION,
        "train_csv": csv_digest,
        "train_txt": [n_txt, digest.hexdigest()],
        "k": int(k),
        "seed": int(seed),
        "skip_bad": bool(skip_bad),
    }


def prepare(
    data_dir: str | os.PathLike, out_dir: str | os.PathLike, k: int = 5, seed: int = 42, skip_bad: bool = False
) -> Path:
    """Validate ``data_dir``, write ``words.parquet`` (with ``fold``), ``elements.parquet`` (kept ground truth),
    ``folds.csv``, ``prepare_report.json`` and the input fingerprint to ``out_dir``; returns ``out_dir``."""
    _prepare(data_dir, Path(out_dir), k, seed, skip_bad)
    return Path(out_dir)


def _prepare(
    data_dir: str | os.PathLike, out_dir: Path, k: int, seed: int, skip_bad: bool, token_cache: Any = None,
    stamp: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`prepare`, returning the word table and the kept elements as written."""
    stamp = stamp or fingerprint(data_dir, k, seed, skip_bad)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    corpus = load_train(data_dir, skip_bad=skip_bad, token_cache=token_cache)
    timings["load_validate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = build_word_table(corpus)
    corpus.report.log(kinds=["offsets_disagree"])
    timings["word_table_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    table["fold"] = assign_folds(table, corpus.elements, k=k, seed=seed)
    timings["folds_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    fp_path = out_dir / FINGERPRINT_FILE
    fp_path.unlink(missing_ok=True)  # written last: a half-written folder never looks up to date
    _write_parquet(table, out_dir / WORDS_FILE)
    _write_parquet(corpus.elements, out_dir / ELEMENTS_FILE)
    atomic_write(out_dir / FOLDS_FILE, lambda tmp: table[["id", "fold"]].to_csv(tmp, index=False))
    timings["write_s"] = time.perf_counter() - t0
    per_fold = fold_class_counts(table, corpus.elements)
    report = {
        "data_dir": str(Path(data_dir).resolve()),
        "k": k,
        "seed": seed,
        "skip_bad": skip_bad,
        "load": corpus.report.to_dict(),
        "summary": corpus.report.summary(),
        "fold_counts": {str(f): row.to_dict() for f, row in per_fold.iterrows()},
        "timings": {name: round(s, 3) for name, s in timings.items()},
    }
    atomic_write(out_dir / REPORT_FILE, lambda tmp: tmp.write_text(json.dumps(report, indent=2) + "\n"))
    atomic_write(fp_path, lambda tmp: tmp.write_text(json.dumps(stamp, indent=2) + "\n"))
    logger.info("prepared %d essays into %s (%s)", len(table), out_dir,
                ", ".join(f"{name} {s:.2f}" for name, s in timings.items()))
    return table, corpus.elements


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    """``df`` as parquet (zstd). A column of integer arrays becomes a list column in one step (``from_pandas`` walks
    it row by row)."""
    columns = {}
    for name in df.columns:
        values = df[name]
        if values.dtype == object and len(values) and isinstance(values.iat[0], np.ndarray):
            rows = values.tolist()
            offsets = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum(np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)), out=offsets[1:])
            columns[name] = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(_concat_int64(rows)))
        else:
            columns[name] = pa.array(values)
    # atomic: a run preparing the same cache folder at the same time never reads a half-written file
    atomic_write(path, lambda tmp: pq.write_table(pa.table(columns), tmp, compression="zstd"))


def load_word_table(
    data_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    k: int = 5,
    seed: int = 42,
    skip_bad: bool = False,
    token_cache: Any = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The word table (with ``fold``) and the kept ground-truth elements, reusing ``cache_dir`` when its fingerprint
    matches the inputs and parameters, else running :func:`prepare` into it first.

    ``token_cache`` (a :class:`windows.TokenCache`), when the table has to be built, gets the essay files queued so
    that they are tokenised in the background meanwhile.
    """
    cache_dir = Path(cache_dir)
    stamp = fingerprint(data_dir, k, seed, skip_bad)
    fp_path = cache_dir / FINGERPRINT_FILE
    cached = None
    if fp_path.is_file():
        try:
            cached = json.loads(fp_path.read_text())
        except json.JSONDecodeError:
            cached = None
    if cached == stamp:
        logger.info("reusing the prepared word table in %s (inputs unchanged)", cache_dir)
        _log_cached_report(cache_dir)
        return read_word_table(cache_dir)
    logger.info("preparing %s into %s (%s)", data_dir, cache_dir, "inputs changed" if cached else "no cache")
    return _prepare(data_dir, cache_dir, k, seed, skip_bad, token_cache=token_cache, stamp=stamp)


def _log_cached_report(cache_dir: Path) -> None:
    """Warn again about what the cached preparation skipped, excluded or flagged (as when it was built)."""
    try:
        data = json.loads((cache_dir / REPORT_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return
    if isinstance(data, dict) and isinstance(data.get("load"), dict):
        LoadReport.from_dict(data["load"]).log()


def read_word_table(out_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The word table and kept elements that :func:`prepare` wrote to ``out_dir`` (no fingerprint check)."""
    out_dir = Path(out_dir)
    table = pd.read_parquet(out_dir / WORDS_FILE)
    elements = pd.read_parquet(out_dir / ELEMENTS_FILE)
    return table, elements


def _report_disagreements(el: pd.DataFrame, disagree: list[tuple[int, list[int]]], report: LoadReport) -> None:
    """Count the rows of ``el`` whose offsets give other words than their predictionstring (``(row, words)``)."""
    lines, dids = el["line"].to_numpy(), el["discourse_id"].to_numpy(dtype=object)
    words = el["word_indices"].to_numpy(dtype=object)
    examples = [
        f"line {lines[j]} (discourse_id {dids[j]}): offsets give words {_span(by_offsets)}, "
        f"predictionstring {_span(words[j])}"
        for j, by_offsets in disagree[:3]
    ]
    report.add("offsets_disagree", len(disagree), examples)


def _span(indices) -> str:
    idx = [int(i) for i in indices]
    if not idx:
        return "(none)"
    if idx == list(range(idx[0], idx[-1] + 1)):
        return f"{idx[0]}-{idx[-1]}" if len(idx) > 1 else str(idx[0])
    return repr(to_predictionstring(idx))
