"""Reading the files the metric scores (library): a ground truth (``train.csv``-shaped) and a submission as text
columns, each checked in one line per mistake (:func:`check_ground_truth`, optionally skipping and counting bad
rows), and what a submission covers of a ground truth (:func:`coverage`: essays without a prediction, classes and
ids the ground truth does not have). The metric itself is :mod:`feedback_ner.metric`.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from feedback_ner.corpus import load_train
from feedback_ner.errors import DataError, InvalidInputError, MissingFileError
from feedback_ner.labels import CLASSES
from feedback_ner.metric import GT_CLASS_COLUMNS, PRED_COLUMNS, parse_predictionstrings
from feedback_ner.texts import UNICODE_BOMS, csv_field_counts, read_text

logger = logging.getLogger("feedback_ner.metric")


def read_csv_columns(
    path: str | os.PathLike, what: str, required: Sequence[str], one_of: Sequence[str] = ()
) -> pd.DataFrame:
    """The columns the metric needs from a CSV, as text (empty fields as ""); a one-line error otherwise.

    ``one_of``: alternatives of which the first present is read (e.g. ``discourse_type`` or ``class``).
    """
    path = Path(path)
    if path.is_dir():
        inside = next((path / n for n in ("train.csv", "submission.csv") if (path / n).is_file()), None)
        raise MissingFileError(f"{what} {path}: is a folder; give a CSV file" + (f", e.g. {inside}" if inside else ""))
    if not path.is_file():
        raise MissingFileError(f"{what} {path}: no such file")
    source = _csv_source(path)
    try:
        header = [str(c).strip() for c in pd.read_csv(source, nrows=0).columns]  # "id, class": as train reads it
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise InvalidInputError(f"{what} {path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise InvalidInputError(f"{what} {path}: column(s) {', '.join(twice)} given twice (spaces aside); keep one")
    columns = [c for c in required if c in header]
    missing = [c for c in required if c not in header]
    if one_of:
        present = [c for c in one_of if c in header]
        if present:
            columns.append(present[0])
        else:
            missing.append(" or ".join(one_of))
    if missing:
        raise InvalidInputError(
            f"{what} {path}: lacks column(s) {', '.join(missing)} (has: {', '.join(header) or 'nothing'})"
        )
    if isinstance(source, io.StringIO):
        source.seek(0)
    try:
        table = pd.read_csv(source, usecols=lambda c: str(c).strip() in columns, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise InvalidInputError(f"{what} {path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    if (table == "").to_numpy().any():  # a field pandas read as empty may be missing: a line cut short
        _check_not_cut(source, path, what, header, needed=1 + max(header.index(c) for c in columns))
    return table.rename(columns=lambda c: str(c).strip())


def _check_not_cut(source: Path | io.StringIO, path: Path, what: str, header: list[str], needed: int) -> None:
    """A row that ends before one of the columns read (``needed`` fields) is a one-line error naming its line:
    pandas reads its missing fields as empty ones, e.g. a predictionstring "" that matches nothing."""
    text = source.getvalue() if isinstance(source, io.StringIO) else path.read_text(encoding="utf-8")
    for line, n in csv_field_counts(text):
        if n < needed:
            raise InvalidInputError(f"{what} {path}: line {line}: only {n} of the {len(header)} fields, the row "
                                    f"ends before {header[n]}; complete the row (a line cut short, or commas "
                                    "missing)")


def _csv_source(path: Path) -> Path | io.StringIO:
    """What pandas reads: the path, or for a file with a byte-order mark (UTF-16/32, UTF-8) its text decoded as
    ``train`` decodes it (:func:`texts.read_text`), so a train.csv training accepted is one the metric reads."""
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(codecs.BOM_UTF8) or head.startswith(tuple(bom for bom, _ in UNICODE_BOMS)):
        try:
            return io.StringIO(read_text(path))
        except DataError as err:
            raise InvalidInputError(str(err)) from None
    return path


def read_ground_truth(path: str | os.PathLike, what: str = "ground truth", skip_bad: bool = False) -> pd.DataFrame:
    """``id, discourse_type (or class), predictionstring`` of a train.csv-shaped file, as text, checked by
    :func:`check_ground_truth`. With ``skip_bad``, a Kaggle folder's ``train.csv`` (``train/`` beside it) keeps
    exactly the rows training kept with ``skip_bad`` (:func:`corpus.load_train`: rows of missing essays, repeated
    ids, words beyond the essay, ... are skipped and counted too), so a score matches the run's CV."""
    path = Path(path)
    if skip_bad and path.name == "train.csv" and (path.parent / "train").is_dir():
        try:
            corpus = load_train(path.parent, skip_bad=True)
        except DataError as err:
            raise InvalidInputError(f"{what} {err}") from None
        report = corpus.report
        if report.n_rows_skipped:
            kinds = ", ".join(f"{k} {i.rows or i.count}" for k, i in report.issues.items() if i.action == "skipped")
            logger.warning("%s %s: skipped %d of %d rows as training does with skip_bad (%s)", what, path,
                           report.n_rows_skipped, report.n_rows, kinds)
        gt = corpus.elements[["id", "discourse_type", "predictionstring"]].reset_index(drop=True)
        return check_ground_truth(gt, f"{what} {path}", skip_bad)
    gt = read_csv_columns(path, what, ("id", "predictionstring"), one_of=GT_CLASS_COLUMNS)
    return check_ground_truth(gt, f"{what} {path}", skip_bad)


def read_submission(path: str | os.PathLike, what: str = "submission") -> pd.DataFrame:
    """``id, class, predictionstring`` of a submission file, as text; a predictionstring that is not word indices is
    a one-line error naming the file and row (a row with no words is allowed: it matches nothing)."""
    pred = read_csv_columns(path, what, PRED_COLUMNS)
    strings = pred["predictionstring"].astype(str)
    odd = ~(strings.str.fullmatch(_INDICES).to_numpy(dtype=bool) | (strings.str.strip() == "").to_numpy())
    if odd.any():  # e.g. other scripts' digits ("٣٤"), which int() would read: the ground truth refuses them too
        i = int(np.argmax(odd))
        raise InvalidInputError(f"{what} {path}: row {i + 1} (id {pred['id'].iat[i]}): predictionstring "
                                f"{strings.iat[i]!r} is not word indices ({int(odd.sum())} of {len(pred)} rows); "
                                "write ASCII word indices, e.g. '3 4 5'")
    parse_predictionstrings(pred["predictionstring"], name=f"{what} {path}", ids=pred["id"])
    return pred


_INDICES = r"\s*[0-9]{1,12}(?:\s+[0-9]{1,12})*\s*"  # word indices, as parse_predictionstrings reads them
SKIP_GT_HINT = "or pass --skip-bad to skip and count such rows, as training did with skip_bad"


def check_ground_truth(gt: pd.DataFrame, where: str, skip_bad: bool = False) -> pd.DataFrame:
    """``gt`` with its class names stripped of surrounding spaces, after checking what would make a score silently
    wrong: no rows, a class outside :data:`labels.CLASSES` (which would become an extra macro class), an element with
    no words (always missed) or a predictionstring that is not word indices. :class:`InvalidInputError` names
    ``where``, the first bad row (1-based, header excluded), its id, and the count of rows like it; with
    ``skip_bad`` (a run trained with ``skip_bad``) those rows are left out and counted in a warning instead."""
    if gt.empty:
        raise InvalidInputError(f"{where}: no rows, only a header; give the ground truth (train.csv's rows)")
    column = next(c for c in GT_CLASS_COLUMNS if c in gt.columns)
    classes = gt[column].astype(str).str.strip()
    strings = gt["predictionstring"].astype(str)
    problems = (
        (~classes.isin(CLASSES).to_numpy(), column, "is not a class",
         f"use one of: {', '.join(CLASSES)} (case matters)"),
        ((strings.str.strip() == "").to_numpy(), "predictionstring", "is empty",
         "every element needs the indices of its words"),
        (~strings.str.fullmatch(_INDICES).to_numpy(dtype=bool), "predictionstring", "is not word indices",
         "write the element's word indices, e.g. '3 4 5'"),
    )
    bad = np.zeros(len(gt), bool)
    for rows, field_name, what, fix in problems:
        rows = rows & ~bad
        if rows.any() and not skip_bad:
            i = int(np.argmax(rows))
            raise InvalidInputError(
                f"{where}: row {i + 1} (id {gt['id'].iat[i]}): {field_name} {gt[field_name].iat[i]!r} {what} "
                f"({int(rows.sum())} of {len(gt)} rows); {fix}; {SKIP_GT_HINT}")
        bad |= rows
    if bad.any():
        logger.warning("%s: skipped %d of %d rows (bad class or predictionstring; skip_bad)", where, int(bad.sum()),
                       len(gt))
    gt = gt.assign(**{column: classes})[~bad]
    if gt.empty:
        raise InvalidInputError(f"{where}: no valid rows left ({int(bad.sum())} skipped); fix the ground truth")
    parse_predictionstrings(gt["predictionstring"], name=where, ids=gt["id"])
    return gt


@dataclass
class Coverage:
    """How a submission lines up with the ground truth: what would make its score silently wrong."""

    gt_essays: int
    pred_essays: int
    essays_without_prediction: int
    unknown_ids: int
    unknown_id_rows: int
    foreign_classes: dict[str, int]
    empty_rows: int = 0  # predicted rows with no words: each a false positive
    repeated_rows: int = 0  # predicted rows repeating an earlier (id, class, words): each a false positive
    decoded: bool = False  # the predictions decoded here from word probabilities of every essay (inspect RUN)

    def warnings(self) -> list[str]:
        """One sentence per problem, with counts (empty when the submission covers the ground truth cleanly)."""
        out = []
        if self.essays_without_prediction and self.decoded:  # each essay has probabilities: nothing to choose
            out.append(f"{self.essays_without_prediction} of the {self.gt_essays} essays have no predicted span "
                       "(the post-processing kept none): all their elements count as missed")
        elif self.essays_without_prediction:
            out.append(
                f"{self.essays_without_prediction} of the {self.gt_essays} essays in the ground truth have no "
                "prediction (all their elements count as missed); to score only the "
                f"{self.pred_essays - self.unknown_ids} predicted essays, pass --only-predicted-essays (for "
                "out-of-fold predictions, --essays-of with their oof.npz keeps essays left without spans)"
            )
        if self.foreign_classes:
            listed = ", ".join(f"{c!r} ({n} rows)" for c, n in self.foreign_classes.items())
            out.append(
                f"{sum(self.foreign_classes.values())} predicted rows have a class that is not in the ground truth "
                f"and are ignored: {listed}; classes are {', '.join(CLASSES)} (case matters)"
            )
        if self.unknown_ids:
            out.append(
                f"{self.unknown_ids} predicted essay ids ({self.unknown_id_rows} rows) match no essay of the "
                "ground truth; they count as false positives"
            )
        if self.empty_rows:
            out.append(f"{self.empty_rows} predicted rows have an empty predictionstring (no words); each counts as "
                       "a false positive")
        if self.repeated_rows:
            out.append(f"{self.repeated_rows} predicted rows repeat an earlier row (same id, class and words); each "
                       "repeat counts as a false positive")
        return out


def coverage(pred: pd.DataFrame, gt: pd.DataFrame, decoded: bool = False) -> Coverage:
    """Counts of ground-truth essays without prediction, predicted ids not in the ground truth and predicted
    classes the ground truth does not have (``pred``: ``id, class``; ``gt``: ``id`` and a class column).
    ``decoded``: ``pred`` was decoded from word probabilities of every essay of ``gt`` (a run's out-of-fold file)."""
    gt_class = next(c for c in GT_CLASS_COLUMNS if c in gt.columns)
    gt_ids = set(gt["id"].astype(str))
    pred_id = pred["id"].astype(str)
    pred_ids = set(pred_id)
    unknown = pred_ids - gt_ids
    gt_classes = set(gt[gt_class].astype(str))
    foreign = pred.loc[~pred["class"].astype(str).isin(gt_classes), "class"].astype(str).value_counts()
    words = pred["predictionstring"].astype(str).str.split().str.join(" ") if "predictionstring" in pred else None
    return Coverage(
        gt_essays=len(gt_ids),
        pred_essays=len(pred_ids),
        essays_without_prediction=len(gt_ids - pred_ids),
        unknown_ids=len(unknown),
        unknown_id_rows=int(pred_id.isin(unknown).sum()),
        foreign_classes={str(k): int(v) for k, v in foreign.items()},
        empty_rows=int((words == "").sum()) if words is not None else 0,
        repeated_rows=int(pd.DataFrame({"id": pred_id, "class": pred["class"].astype(str), "w": words})
                          .duplicated().sum()) if words is not None else 0,
        decoded=decoded,
    )
