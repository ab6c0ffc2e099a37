"""CLI: score a submission against a ground truth with the competition metric.

``python -m feedback_ner.score --gt train.csv --pred submission.csv`` prints TP, FP, FN and F1 per
ground-truth class and the macro F1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from feedback_ner.metric import GT_CLASS_COLUMNS, PRED_COLUMNS, ScoreResult, score


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Macro overlap-F1 of a submission (id,class,predictionstring) against train.csv-style rows.",
    )
    parser.add_argument(
        "--gt", type=Path, required=True, help="ground truth CSV: id, discourse_type (or class), predictionstring"
    )
    parser.add_argument("--pred", type=Path, required=True, help="submission CSV: id, class, predictionstring")
    return parser


def read_frame(path: Path, what: str, required: tuple[str, ...], one_of: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read the columns the metric needs from a CSV, as text; ``ValueError`` with a one-line reason otherwise."""
    if not path.is_file():
        raise ValueError(f"{what} file not found: {path}")
    try:
        header = list(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} file {path} is not a readable CSV: {str(err).splitlines()[0]}") from None
    columns = [c for c in required if c in header]
    missing = [c for c in required if c not in header]
    if one_of:
        present = [c for c in one_of if c in header]
        if present:
            columns.append(present[0])
        else:
            missing.append(" or ".join(one_of))
    if missing:
        raise ValueError(
            f"{what} file {path} lacks column(s) {', '.join(missing)} (has: {', '.join(header) or 'nothing'})"
        )
    # Text, with empty fields as "" (an empty predictionstring is a legal, if useless, prediction).
    return pd.read_csv(path, usecols=columns, dtype=str, keep_default_na=False)


def format_table(result: ScoreResult) -> str:
    """The per-class table and the macro F1 as aligned text."""
    table = result.table
    width = max(len("class"), *(len(str(c)) for c in table.index))
    lines = [f"{'class':<{width}}  {'TP':>7}  {'FP':>7}  {'FN':>7}  {'F1':>7}"]
    for cls, tp, fp, fn, f1 in table[["TP", "FP", "FN", "F1"]].itertuples(name=None):
        lines.append(f"{cls:<{width}}  {tp:>7d}  {fp:>7d}  {fn:>7d}  {f1:>7.4f}")
    lines.append(f"{'macro F1':<{width}}  {'':>7}  {'':>7}  {'':>7}  {result.f1:>7.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    from feedback_ner.cli import setup_logging  # the one logging set-up of every command (issue 17)

    setup_logging()
    try:
        gt = read_frame(args.gt, "--gt", ("id", "predictionstring"), one_of=GT_CLASS_COLUMNS)
        pred = read_frame(args.pred, "--pred", PRED_COLUMNS)
        result = score(pred, gt)
    except ValueError as err:
        sys.exit(f"error: {err}")
    print(format_table(result))


if __name__ == "__main__":
    main()
