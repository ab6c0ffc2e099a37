"""Reading and validating a Kaggle Feedback Prize folder (``train.csv`` + ``train/*.txt``) and test essays.

Every problem either raises a one-line :class:`DataError` naming the file, row and field and what to do, or, with
``skip_bad=True`` where skipping makes sense, is skipped and counted in a :class:`LoadReport`. Nothing is dropped
silently. Validation is vectorised so a competition-sized folder loads in a few seconds.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedback_ner.errors import DataError
from feedback_ner.labels import CLASSES, offsets_to_word_ranges, word_offsets, word_offsets_many
from feedback_ner.texts import (
    UNICODE_BOMS,
    csv_field_counts,
    is_csv_record,
    is_essay_file,
    normalise_newlines,
    read_text,
)

logger = logging.getLogger("feedback_ner.corpus")

REQUIRED_COLUMNS: tuple[str, ...] = (
    "id",
    "discourse_id",
    "discourse_start",
    "discourse_end",
    "discourse_type",
    "predictionstring",
)
SKIP_HINT = "pass --skip-bad to skip and count such rows (skip_bad=True in Python)"
SKIP_HINT_ESSAYS = "pass --skip-bad to skip and count such essays (skip_bad=True in Python)"
N_EXAMPLES = 3
QUEUE_CHUNK = 1024  # essays handed to a token cache at a time
# At most 9 digits: a word index, never a number that could overflow int64 when parsed.
_CANONICAL_RE = r"[0-9]{1,9}(?: [0-9]{1,9})*"
_LENIENT_RE = re.compile(r"[ \t]*[0-9]{1,9}(?:[ \t]+[0-9]{1,9})*[ \t]*")

# kind -> (unit, what happened, readable description); the order is the order of the summary.
ISSUE_KINDS: dict[str, tuple[str, str, str]] = {
    "empty_row": ("rows", "skipped", "rows whose every field is empty (a line of commas, e.g. a spreadsheet's)"),
    "short_row": ("rows", "skipped", "rows with fewer fields than the header (a line cut short)"),
    "missing_essay": ("rows", "skipped", "rows whose essay file train/<id>.txt is missing"),
    "undecodable_essay": ("essays", "skipped", "essay files that are not valid UTF-8 (their rows skipped too)"),
    "duplicate_discourse_id": ("rows", "skipped", "rows repeating an earlier discourse_id (first one kept)"),
    "unknown_class": ("rows", "skipped", "rows with a discourse_type outside the 7 classes"),
    "bad_offset": ("rows", "skipped", "rows with non-numeric or out-of-range discourse_start/discourse_end"),
    "bad_predictionstring": ("rows", "skipped", "rows with an empty or non-integer predictionstring"),
    "word_index_out_of_range": ("rows", "skipped", "rows whose predictionstring goes beyond the essay's words"),
    "essay_all_rows_skipped": ("essays", "excluded", "essays left without rows after skipping (not trained on)"),
    "essay_without_rows": ("essays", "excluded", "essay files with no rows in train.csv (not trained on)"),
    "overlapping_elements": ("rows", "kept", "elements sharing words with another element of the same essay"),
    "offsets_disagree": ("rows", "kept", "rows whose offsets give other words than predictionstring (it wins)"),
    "offsets_on_normalised_newlines": (
        "essays", "kept", "essay files with \\r line ends whose offsets count \\r\\n and \\r as one \\n (read so)"
    ),
}


@dataclass
class Issue:
    """One kind of skipped or suspicious input, with a count and a few examples."""

    kind: str
    count: int = 0
    examples: list[str] = field(default_factory=list)
    rows: int = 0  # train.csv rows skipped along with essays (for essay-level kinds)

    @property
    def unit(self) -> str:
        return ISSUE_KINDS[self.kind][0]

    @property
    def action(self) -> str:
        return ISSUE_KINDS[self.kind][1]

    @property
    def description(self) -> str:
        return ISSUE_KINDS[self.kind][2]


@dataclass
class LoadReport:
    """What was read, what was kept, and every kind of problem skipped or flagged (counts + examples)."""

    source: str = ""
    n_rows: int = 0
    n_rows_kept: int = 0
    n_essay_files: int = 0
    n_essays_kept: int = 0
    issues: dict[str, Issue] = field(default_factory=dict)

    def add(self, kind: str, count: int, examples: Iterable[str] = (), rows: int = 0) -> None:
        """Count ``count`` more problems of ``kind`` (and ``rows`` rows skipped with them); keep a few examples."""
        if kind not in ISSUE_KINDS:
            raise KeyError(f"unknown issue kind {kind!r}; known: {', '.join(ISSUE_KINDS)}")
        if count <= 0:
            return
        issue = self.issues.setdefault(kind, Issue(kind))
        issue.count += int(count)
        issue.rows += int(rows)
        for example in examples:
            if len(issue.examples) >= N_EXAMPLES:
                break
            issue.examples.append(example)

    def count(self, kind: str) -> int:
        """How many problems of ``kind`` were seen (0 if none)."""
        issue = self.issues.get(kind)
        return issue.count if issue else 0

    @property
    def n_rows_skipped(self) -> int:
        return self.n_rows - self.n_rows_kept

    def summary(self) -> str:
        """A readable multi-line block: totals, then one line per kind of problem with examples."""
        lines = [
            f"{self.source or 'train.csv'}: {self.n_rows:,} rows read, {self.n_rows_kept:,} kept, "
            f"{self.n_rows_skipped:,} skipped; {self.n_essay_files:,} essay files, {self.n_essays_kept:,} used",
        ]
        if not self.issues:
            lines.append("  no problems found")
        for kind in ISSUE_KINDS:
            issue = self.issues.get(kind)
            if issue is None:
                continue
            rows = f" ({issue.rows:,} rows)" if issue.rows else ""
            lines.append(f"  {issue.action:<8} {issue.count:>7,} {issue.unit:<6} {kind}: {issue.description}{rows}")
            lines += [f"           e.g. {example}" for example in issue.examples]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """A JSON-ready view of the report."""
        return {
            "source": self.source,
            "n_rows": self.n_rows,
            "n_rows_kept": self.n_rows_kept,
            "n_rows_skipped": self.n_rows_skipped,
            "n_essay_files": self.n_essay_files,
            "n_essays_kept": self.n_essays_kept,
            "issues": {
                kind: {"count": i.count, "unit": i.unit, "action": i.action, "rows": i.rows, "examples": i.examples}
                for kind, i in self.issues.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict) -> LoadReport:
        """The report :meth:`to_dict` wrote (unknown kinds from another version are left out)."""
        report = cls(source=data.get("source", ""), n_rows=data.get("n_rows", 0),
                     n_rows_kept=data.get("n_rows_kept", 0), n_essay_files=data.get("n_essay_files", 0),
                     n_essays_kept=data.get("n_essays_kept", 0))
        for kind, issue in (data.get("issues") or {}).items():
            if kind in ISSUE_KINDS:
                report.add(kind, issue.get("count", 0), issue.get("examples", ()), rows=issue.get("rows", 0))
        return report

    def log(self, kinds: Iterable[str] | None = None, log: logging.Logger = logger) -> None:
        """Log each problem kind (all, or those in ``kinds``) as a one-line warning."""
        for kind in ISSUE_KINDS if kinds is None else kinds:
            issue = self.issues.get(kind)
            if issue is not None:
                example = f"; e.g. {issue.examples[0]}" if issue.examples else ""
                log.warning("%s: %s %d %s (%s)%s", self.source, issue.action, issue.count, issue.unit, kind, example)


@dataclass
class Corpus:
    """Essay texts (only those with kept rows), the kept ``train.csv`` rows, and the load report.

    ``elements`` keeps the train.csv columns (strings, offsets as ``int64``) plus ``line`` (1-based line number in
    train.csv, header = line 1) and ``word_indices`` (the parsed ``predictionstring``, an ``int64`` array per row).
    """

    texts: dict[str, str]
    elements: pd.DataFrame
    report: LoadReport
    # labels.word_offsets_many of the essays read, in the order of these ids (kept so the word table reuses them)
    words: tuple[list[str], np.ndarray, np.ndarray, np.ndarray] | None = None


def train_paths(data_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``data_dir/train.csv`` and ``data_dir/train/``; a :class:`DataError` naming the folder when one is missing."""
    data_dir = Path(data_dir)
    csv_path, txt_dir = data_dir / "train.csv", data_dir / "train"
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder; point --data at the Kaggle folder with train.csv and train/")
    if not csv_path.is_file():
        raise DataError(f"{data_dir}: no train.csv here; point --data at the Kaggle folder with train.csv and train/")
    if not txt_dir.is_dir():
        raise DataError(f"{data_dir}: no train/ folder of essays; point --data at the Kaggle folder with train/")
    return csv_path, txt_dir


def load_train(data_dir: str | os.PathLike, skip_bad: bool = False, token_cache: Any = None) -> Corpus:
    """Read and validate ``data_dir/train.csv`` and ``data_dir/train/*.txt``.

    Raises :class:`DataError` on the first problem; with ``skip_bad`` the bad rows/essays are skipped and counted in
    the report instead (missing columns and unreadable files always raise). Overlapping elements and essays without
    rows are counted warnings either way. ``token_cache`` (a :class:`windows.TokenCache`) gets the essays queued as
    they are read, so that they are tokenised in the background while the rest is validated.
    """
    data_dir = Path(data_dir)
    csv_path, txt_dir = train_paths(data_dir)
    df, lines, fields = _read_csv(csv_path)
    report = LoadReport(source=str(csv_path), n_rows=len(df))
    files: dict[str, str] = {}
    for entry in os.scandir(txt_dir):
        if is_essay_file(entry):
            if entry.name[:-4] in files:
                raise DataError(f"{txt_dir}: two files for essay {entry.name[:-4]!r} (.txt in two cases); keep one")
            files[entry.name[:-4]] = entry.path
    report.n_essay_files = len(files)
    if not files:  # e.g. the essays one folder down (train/train/*.txt, as some unzips leave them)
        inner = sorted(p.parent for p in txt_dir.glob("*/*") if is_essay_file(p))
        where = f"; they are in {inner[0]}: move them up, or point data_dir at the folder holding them" if inner else ""
        raise DataError(f"{txt_dir}: no .txt essay files{where}")

    check = _RowChecker(df, lines, csv_path, skip_bad, report)
    ids = df["id"].to_numpy(dtype=object)

    empty = (df[list(REQUIRED_COLUMNS)].apply(lambda col: col.str.strip()) == "").all(axis=1).to_numpy()
    check.reject("empty_row", empty, lambda i: "every field is empty", "delete the line")

    # rows whose essay file is missing
    has_file = df["id"].isin(files.keys()).to_numpy()
    check.reject(
        "missing_essay",
        ~has_file,
        lambda i: f"id: no essay file train/{ids[i]!r}.txt" if ids[i] != str(ids[i]).strip() else
        f"id: no essay file train/{ids[i]}.txt",  # an id with spaces around it: shown quoted
        f"add the file to {txt_dir} or remove its rows",
    )

    # essay files: read those with rows; undecodable ones fail (or are skipped with their rows)
    texts: dict[str, str] = {}
    bad_essays: list[str] = []
    queued: list[str] = []
    for essay_id in sorted(pd.unique(ids[check.keep])):
        try:
            texts[essay_id] = read_text(files[essay_id])
        except DataError as err:
            if not skip_bad:
                raise DataError(f"{err}, or {SKIP_HINT_ESSAYS}") from None
            bad_essays.append(str(err))
            continue
        if token_cache is not None:
            queued.append(texts[essay_id])
            if len(queued) == QUEUE_CHUNK:
                token_cache.prefetch(queued)
                queued = []
    if token_cache is not None and queued:
        token_cache.prefetch(queued)
    if bad_essays:
        bad_rows = check.keep & ~df["id"].isin(texts.keys()).to_numpy()
        report.add("undecodable_essay", len(bad_essays), bad_essays, rows=int(bad_rows.sum()))
        check.keep &= ~bad_rows
    if fields is not None:  # a cut line: its missing fields would read as empty ones ("discourse_type ''")
        needed = 1 + max(list(df.columns).index(c) for c in REQUIRED_COLUMNS)
        check.reject(
            "short_row",
            fields < needed,
            lambda i: f"only {fields[i]} of the {len(df.columns)} fields: the row ends before "
                      f"{df.columns[fields[i]]}",
            "complete the row (a line cut short, or commas missing)",
        )
    _choose_line_ends(texts, df, check.keep, report)

    # duplicate discourse ids: the first one is kept
    did = df["discourse_id"].to_numpy(dtype=object)
    kept = np.flatnonzero(check.keep)
    duplicate = np.zeros(len(df), dtype=bool)
    duplicate[kept] = pd.Series(did[kept]).duplicated(keep="first").to_numpy()
    check.reject(
        "duplicate_discourse_id",
        duplicate,
        lambda i: f"discourse_id {did[i]!r} already used on line {lines[kept[did[kept] == did[i]][0]]}",
        "give every element its own discourse_id",
    )

    # unknown classes
    dtype_col = df["discourse_type"].str.strip()
    check.reject(
        "unknown_class",
        ~dtype_col.isin(CLASSES).to_numpy(),
        lambda i: f"discourse_type {df['discourse_type'].iat[i]!r} is not a class",
        f"use one of: {', '.join(CLASSES)}",
    )

    # offsets: whole numbers with 0 <= start < end <= len(text)
    starts_f = pd.to_numeric(df["discourse_start"], errors="coerce").to_numpy(dtype=float)
    ends_f = pd.to_numeric(df["discourse_end"], errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        whole_start = np.isfinite(starts_f) & (starts_f % 1 == 0) & (np.abs(starts_f) < 2**53)
        whole_end = np.isfinite(ends_f) & (ends_f % 1 == 0) & (np.abs(ends_f) < 2**53)
    whole = whole_start & whole_end

    def not_whole(i: int) -> str:
        name = "discourse_start" if not whole_start[i] else "discourse_end"
        return f"{name}={df[name].iat[i]!r} is not a whole number"

    check.reject("bad_offset", ~whole, not_whole, "write character offsets as integers")
    starts = np.where(whole, starts_f, 0).astype(np.int64)
    ends = np.where(whole, ends_f, 0).astype(np.int64)
    text_len = df["id"].map({k: len(v) for k, v in texts.items()}).fillna(-1).to_numpy(dtype=np.int64)
    in_range = (starts >= 0) & (ends > starts) & (ends <= text_len)
    check.reject(
        "bad_offset",
        ~in_range,
        lambda i: (
            f"discourse_start={starts[i]}, discourse_end={ends[i]}: out of range for train/{ids[i]}.txt "
            f"({text_len[i]} characters; need 0 <= start < end <= length)"
        ),
        "fix the offsets",
    )

    # predictionstring: non-empty, integers only; canonical "3 4 5" is checked in bulk, other spacing row by row
    ps = df["predictionstring"].astype(str)
    canonical = ps.str.fullmatch(_CANONICAL_RE).fillna(False).to_numpy(dtype=bool)
    ps_ok = canonical.copy()
    for i in np.flatnonzero(~canonical & check.keep):
        ps_ok[i] = _LENIENT_RE.fullmatch(ps.iat[i]) is not None
    check.reject(
        "bad_predictionstring",
        ~ps_ok,
        lambda i: f"predictionstring {_clip(ps.iat[i])!r} is empty or not space-separated word indices",
        "write the element's word indices, e.g. '3 4 5'",
    )

    # parse the valid predictionstrings in one go
    parsed = np.flatnonzero(check.keep)
    values = ps.iloc[parsed]
    if not canonical[parsed].all():
        values = values.copy()
        odd = ~canonical[parsed]
        values.iloc[np.flatnonzero(odd)] = [" ".join(v.split()) for v in values[odd]]
    strings = values.tolist()
    counts = np.fromiter((v.count(" ") + 1 for v in strings), dtype=np.int64, count=len(strings))
    flat = np.fromstring(" ".join(strings), dtype=np.int64, sep=" ") if strings else np.zeros(0, np.int64)
    if len(flat) != counts.sum():  # the regex and the parser disagree: a bug here, not bad data
        raise RuntimeError("predictionstring parsing went wrong; please report this")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    row_min = np.zeros(len(df), dtype=np.int64)
    row_max = np.full(len(df), -1, dtype=np.int64)
    if len(parsed):
        row_min[parsed] = np.minimum.reduceat(flat, bounds[:-1])
        row_max[parsed] = np.maximum.reduceat(flat, bounds[:-1])
    text_ids = list(texts)
    word_starts, word_ends, word_counts = word_offsets_many([texts[k] for k in text_ids])
    n_words = df["id"].map(dict(zip(text_ids, word_counts.tolist()))).fillna(0).to_numpy(dtype=np.int64)
    check.reject(
        "word_index_out_of_range",
        row_max >= n_words,
        lambda i: (
            f"predictionstring has word index {row_max[i]} but train/{ids[i]}.txt has {n_words[i]} words "
            f"(indices 0..{n_words[i] - 1})"
        ),
        "fix the predictionstring",
    )

    keep = check.keep
    word_indices = np.empty(len(df), dtype=object)
    for row, a, b in zip(parsed.tolist(), bounds[:-1].tolist(), bounds[1:].tolist()):
        word_indices[row] = flat[a:b]
    elements = df.loc[keep].copy()
    elements["discourse_type"] = dtype_col[keep]
    elements["discourse_start"] = starts[keep]
    elements["discourse_end"] = ends[keep]
    elements["line"] = lines[keep]
    elements["word_indices"] = pd.Series(list(word_indices[keep]), index=elements.index, dtype=object)
    elements = elements.reset_index(drop=True)

    _report_overlaps(elements, row_min[keep], row_max[keep], report)

    if len(elements) == 0:
        raise DataError(f"{csv_path}: no valid rows left ({report.n_rows} read, all skipped); fix the data")
    kept_ids = set(pd.unique(elements["id"]))
    dropped = sorted(set(texts) - kept_ids)
    report.add("essay_all_rows_skipped", len(dropped), (f"train/{d}.txt" for d in dropped))
    texts = {k: texts[k] for k in sorted(kept_ids)}
    without_rows = sorted(set(files) - set(ids))
    report.add("essay_without_rows", len(without_rows), (f"train/{d}.txt" for d in without_rows))
    report.n_rows_kept = len(elements)
    report.n_essays_kept = len(texts)
    report.log()
    return Corpus(texts=texts, elements=elements, report=report,
                  words=(text_ids, word_starts, word_ends, word_counts))


def _choose_line_ends(texts: dict[str, str], df: pd.DataFrame, keep: np.ndarray, report: LoadReport) -> None:
    """Where an essay file has ``\\r`` line ends, keep the text as stored unless its rows' offsets only agree with
    the text read with ``\\r\\n`` and ``\\r`` as ``\\n`` (issue 12); then use that text and count the essay.

    A row agrees with a text when ``text[start:end]`` has the words of ``discourse_text`` (where the column is
    there), else when the offsets give the first and last word of ``predictionstring`` by the competition's rule.
    """
    with_cr = [essay_id for essay_id, text in texts.items() if "\r" in text]
    if not with_cr:
        return
    rows = np.flatnonzero(keep & df["id"].isin(with_cr).to_numpy())
    starts = pd.to_numeric(df["discourse_start"].iloc[rows], errors="coerce").to_numpy(dtype=float)
    ends = pd.to_numeric(df["discourse_end"].iloc[rows], errors="coerce").to_numpy(dtype=float)
    quoted = df["discourse_text"].iloc[rows].tolist() if "discourse_text" in df.columns else None
    given = df["predictionstring"].iloc[rows].tolist()
    valid = np.isfinite(starts) & np.isfinite(ends) & (starts >= 0) & (starts < ends)
    valid_at = np.flatnonzero(valid)
    groups = pd.Series(valid_at).groupby(df["id"].iloc[rows[valid_at]].to_numpy(dtype=object)).indices
    votes: dict[str, list[int]] = {}  # rows agreeing: [as stored, normalised]
    for essay_id in with_cr:
        mine = valid_at[groups.get(essay_id, np.zeros(0, dtype=np.int64))]
        s, e = starts[mine].astype(np.int64), ends[mine].astype(np.int64)
        votes[essay_id] = []
        for text in (texts[essay_id], normalise_newlines(texts[essay_id])):
            fits = e <= len(text)
            if quoted is not None:
                agree = [bool(ok) and text[a:b].split() == quoted[j].split() for j, a, b, ok in zip(mine, s, e, fits)]
            else:
                w0, w1 = offsets_to_word_ranges(*word_offsets(text), s, e)
                agree = [bool(ok) and w1_ > w0_ and _first_last(given[j]) == (w0_, w1_ - 1)
                         for j, w0_, w1_, ok in zip(mine, w0.tolist(), w1.tolist(), fits)]
            votes[essay_id].append(int(sum(agree)))
    normalised = sorted(essay_id for essay_id, (raw, norm) in votes.items() if norm > raw)
    for essay_id in normalised:
        texts[essay_id] = normalise_newlines(texts[essay_id])
    report.add(
        "offsets_on_normalised_newlines", len(normalised),
        (f"train/{d}.txt: {votes[d][1]} rows agree read so, {votes[d][0]} as stored" for d in normalised),
    )


def _first_last(predictionstring: str) -> tuple[int, int] | None:
    """The first and last word index of a predictionstring, or None where it is not integers."""
    parts = predictionstring.split()
    try:
        return (int(parts[0]), int(parts[-1])) if parts else None
    except ValueError:
        return None


class _RowChecker:
    """Applies one check at a time to the rows still kept: raises on the first bad row, or skips and counts."""

    def __init__(self, df: pd.DataFrame, lines: np.ndarray, path: Path, skip_bad: bool, report: LoadReport):
        self.df, self.lines, self.path, self.skip_bad, self.report = df, lines, path, skip_bad, report
        self.keep = np.ones(len(df), dtype=bool)
        self._did = df["discourse_id"].to_numpy(dtype=object)

    def where(self, i: int) -> str:
        did = str(self._did[i]).strip()
        return f"line {self.lines[i]} (discourse_id {did})" if did else f"line {self.lines[i]}"

    def reject(self, kind: str, bad: np.ndarray, reason: Callable[[int], str], fix: str) -> None:
        bad = np.asarray(bad, dtype=bool) & self.keep
        idx = np.flatnonzero(bad)
        if len(idx) == 0:
            return
        if not self.skip_bad:
            more = f" ({len(idx) - 1} more such rows)" if len(idx) > 1 else ""
            raise DataError(f"{self.path}: {self.where(idx[0])}: {reason(idx[0])}; {fix}{more}; or {SKIP_HINT}")
        self.report.add(kind, len(idx), (f"{self.where(i)}: {reason(i)}" for i in idx[:N_EXAMPLES]))
        self.keep &= ~bad


def _read_csv(path: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """``train.csv`` as strings (BOM dropped, universal newlines: no offset changes), each row's line number and,
    where a row may be cut short (pandas reads its missing fields as empty), each row's number of fields."""
    with open(path, "rb") as f:
        data: bytes | str = f.read()
    if data.startswith(codecs.BOM_UTF8) or b"\r" in data or data.startswith(tuple(b for b, _ in UNICODE_BOMS)):
        data = normalise_newlines(read_text(path))
    df = _read_csv_fast(data)  # plain UTF-8 goes to Arrow as read (Arrow checks it is valid UTF-8)
    fields = None  # Arrow refuses a row with too few fields
    if df is None:  # pandas' parser: slower, but it names what is wrong with an odd file
        if isinstance(data, bytes):
            data = normalise_newlines(read_text(path))
        try:
            df = pd.read_csv(io.StringIO(data), dtype=str, keep_default_na=False, na_filter=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            msg = " ".join(str(err).split())
            raise DataError(f"{path}: not a readable CSV ({msg}); fix the file (quotes, field counts)") from None
        if len(df.columns) and (df.iloc[:, -1] == "").any():
            counts = [n for _, n in csv_field_counts(data)]
            fields = np.array(counts, dtype=np.int64) if len(counts) == len(df) else None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing and "discourse_type" in missing and "class" in df.columns:
        df = df.rename(columns={"class": "discourse_type"})
        missing.remove("discourse_type")
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, df.columns))}); "
            f"train.csv needs {', '.join(REQUIRED_COLUMNS)}"
        )
    if len(df) == 0:
        raise DataError(f"{path}: no rows; train.csv needs one row per annotated element")
    return df, _row_lines(data, df), fields


def _read_csv_fast(data: bytes | str) -> pd.DataFrame | None:
    """Every column as strings with Arrow's multithreaded reader (4x faster than pandas' here), or None where it
    cannot give what pandas would (a parse error, a header that is not one plain line, repeated column names)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    raw = data.encode("utf-8") if isinstance(data, str) else data
    end = raw.find(b"\n")
    try:
        first_line = raw[: end if end >= 0 else len(raw)].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if '"' in first_line:
        return None
    names = first_line.split(",")
    if len(set(names)) != len(names) or not all(n.strip() for n in names):
        return None
    try:
        table = pcsv.read_csv(
            pa.BufferReader(raw),
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError, pa.ArrowTypeError):
        return None
    if table.column_names != names:
        return None
    return table.to_pandas()


def _row_lines(data: bytes | str, df: pd.DataFrame) -> np.ndarray:
    """1-based line number where each CSV record starts (header = line 1); ``data`` is the file, newlines ``\\n``."""
    n_rows = len(df)
    newline = "\n" if isinstance(data, str) else b"\n"
    n_lines = data.count(newline) + (0 if data.endswith(newline) else 1)
    # quoted fields keep their newlines: each one pushes the following records one line down
    extra = np.zeros(n_rows, dtype=np.int64)
    for col in df.columns:
        extra += df[col].str.count("\n").to_numpy(dtype=np.int64)
    expected = n_rows + 1 + int(extra.sum())
    # the latter: one blank line, at the very end (a blank line elsewhere pushes the records after it down)
    if n_lines == expected or (n_lines == expected + 1 and data.endswith(newline * 2)):
        return 2 + np.arange(n_rows, dtype=np.int64) + np.concatenate([[0], np.cumsum(extra)[:-1]])
    # blank lines somewhere (pandas skips them): walk the records
    reader = csv.reader(io.StringIO(data if isinstance(data, str) else data.decode("utf-8")))
    next(reader, None)
    starts: list[int] = []
    prev = reader.line_num
    for row in reader:
        if is_csv_record(row):  # a row of commas alone is one (pandas keeps it, with empty fields)
            starts.append(prev + 1)
        prev = reader.line_num
    if len(starts) != n_rows:
        logger.debug("CSV records (%d) and rows (%d) differ; numbering rows by record", len(starts), n_rows)
        return np.arange(2, n_rows + 2, dtype=np.int64)
    return np.asarray(starts, dtype=np.int64)


def _report_overlaps(elements: pd.DataFrame, row_min: np.ndarray, row_max: np.ndarray, report: LoadReport) -> None:
    """Count elements that share a word with another element of the same essay (both are kept).

    Word ranges screen the essays first (cheap); only essays where ranges overlap get the exact word-set check.
    """
    if len(elements) == 0:
        return
    essay = pd.factorize(elements["id"])[0].astype(np.int64)
    order = np.lexsort((row_min, essay))
    big = int(row_max.max()) + 2
    # running max of range ends within each essay: offset by essay so that one accumulate serves all essays
    reach = np.maximum.accumulate(essay[order] * big + row_max[order])
    screened = np.zeros(len(order), dtype=bool)
    screened[1:] = essay[order][1:] * big + row_min[order][1:] <= reach[:-1]
    suspects = np.isin(essay, essay[order][screened])
    if not suspects.any():
        return
    sub = np.flatnonzero(suspects)
    pieces = elements["word_indices"].to_numpy(dtype=object)[sub]
    lengths = np.fromiter((len(w) for w in pieces), dtype=np.int64, count=len(pieces))
    words = np.concatenate(pieces)
    rows = np.repeat(sub, lengths)
    key = np.repeat(essay[sub], lengths) * big + words
    order = np.lexsort((rows, key))
    key, rows = key[order], rows[order]
    shared = (key[1:] == key[:-1]) & (rows[1:] != rows[:-1])
    if not shared.any():
        return
    a, b = rows[:-1][shared], rows[1:][shared]
    involved = np.unique(np.concatenate([a, b]))
    pairs, n_shared = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0, return_counts=True)
    lines, dids, eids = elements["line"].to_numpy(), elements["discourse_id"].to_numpy(), elements["id"].to_numpy()
    examples = [
        f"essay {eids[x]}: line {lines[x]} (discourse_id {dids[x]}) and line {lines[y]} (discourse_id {dids[y]}) "
        f"share {n} words"
        for (x, y), n in zip(pairs[:N_EXAMPLES], n_shared[:N_EXAMPLES])
    ]
    report.add("overlapping_elements", len(involved), examples)


def _clip(value: str, n: int = 40) -> str:
    return value if len(value) <= n else value[:n] + "..."
