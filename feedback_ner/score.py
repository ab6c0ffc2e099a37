"""Command: score a submission against a ground truth with the competition metric.

``python -m feedback_ner.score --gt train.csv --pred submission.csv [--only-predicted-essays | --essays-of OOF.npz
...]`` prints TP, FP, FN
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
from feedback_ner.probs import essay_ids
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
    parser.add_argument(
        "--essays-of", nargs="+", type=Path, default=None, metavar="OOF_NPZ",
        help="score only the essays these out-of-fold files (oof.npz) all cover, e.g. the runs an ensemble's "
        "--oof-submission was made from: an essay whose spans were all filtered out still counts its elements as "
        "missed (which --only-predicted-essays drops)",
    )
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip (and count) ground-truth rows with a bad class or predictionstring")
    return parser


def _covered_essays(paths: list[Path]) -> set[str]:
    """The essay ids every one of ``paths`` (word-probability files) holds."""
    covered: set[str] | None = None
    for path in paths:
        ids = set(essay_ids(path))
        covered = ids if covered is None else covered & ids
    return covered or set()


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
    if args.only_predicted_essays and args.essays_of:
        raise InvalidInputError("--only-predicted-essays and --essays-of choose the essays two ways; give one")
    if args.essays_of:
        covered = _covered_essays(args.essays_of)
        gt = gt[gt["id"].isin(covered)]
        if gt.empty:
            raise InvalidInputError(f"--essays-of: none of the {len(covered)} essays of "
                                    f"{', '.join(map(str, args.essays_of))} is in --gt {args.gt}; check the files")
        print(f"scoring the {gt['id'].nunique()} ground-truth essays of {len(args.essays_of)} out-of-fold file(s)",
              file=sys.stderr)
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
