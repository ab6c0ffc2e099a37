"""Command: score a submission against a ground truth with the competition metric.

``python -m feedback_ner.score --gt train.csv --pred submission.csv [--only-predicted-essays]`` prints TP, FP, FN
and F1 per ground-truth class and the macro F1, after a warning with counts for whatever would make that number
silently wrong: ground-truth essays with no prediction, predicted classes the ground truth does not have (lower
case, unknown), predicted ids that match no essay.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.errors import InvalidInputError
from feedback_ner.metric import ScoreResult, score
from feedback_ner.scorefiles import coverage, read_ground_truth, read_submission


def make_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="feedback_ner.score",
        description="Macro overlap-F1 of a submission (id,class,predictionstring) against train.csv-style rows.",
    )
    parser.add_argument(
        "--gt", type=Path, required=True, help="ground truth CSV: id, discourse_type (or class), predictionstring"
    )
    parser.add_argument("--pred", type=Path, required=True, help="submission CSV: id, class, predictionstring")
    parser.add_argument(
        "--only-predicted-essays", action="store_true",
        help="score only the ground-truth essays that have at least one prediction (e.g. out-of-fold predictions "
        "of some folds); an essay whose every span was filtered out then drops out too",
    )
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip (and count) ground-truth rows with a bad class or predictionstring")
    return parser


def format_table(result: ScoreResult) -> str:
    """The per-class table and the macro F1 as aligned text."""
    table = result.table
    width = max(len("class"), *(len(str(c)) for c in table.index))
    lines = [f"{'class':<{width}}  {'TP':>7}  {'FP':>7}  {'FN':>7}  {'F1':>7}"]
    for cls, tp, fp, fn, f1 in table[["TP", "FP", "FN", "F1"]].itertuples(name=None):
        lines.append(f"{cls:<{width}}  {tp:>7d}  {fp:>7d}  {fn:>7d}  {f1:>7.4f}")
    lines.append(f"{'macro F1':<{width}}  {'':>7}  {'':>7}  {'':>7}  {result.f1:>7.4f}")
    return "\n".join(lines)


@command("score")
def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    setup_logging()
    gt = read_ground_truth(args.gt, "--gt", args.skip_bad)
    pred = read_submission(args.pred, "--pred")
    if args.only_predicted_essays:
        predicted = set(pred["id"])
        gt = gt[gt["id"].isin(predicted)]
        if gt.empty:
            raise InvalidInputError(
                f"--only-predicted-essays: no essay of --pred {args.pred} is in --gt {args.gt}; check the files"
            )
        print(f"scoring the {gt['id'].nunique()} ground-truth essays that have a prediction", file=sys.stderr)
    for warning in coverage(pred, gt).warnings():
        print(f"warning: {warning}", file=sys.stderr)
    print(format_table(score(pred, gt)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
