"""Command: validate a Kaggle Feedback Prize folder and write the word table, the kept elements and the folds.

``python -m feedback_ner.prepare --data DIR --out DIR [--num-folds 5] [--seed 42] [--skip-bad]``. The library is
:mod:`feedback_ner.wordtable` (``prepare``, ``build_word_table``, ``assign_folds``, ``load_word_table``, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.errors import FeedbackError
from feedback_ner.wordtable import ELEMENTS_FILE, FOLDS_FILE, REPORT_FILE, WORDS_FILE, prepare


class _RenamedOption(argparse.Action):
    """An old option name that stops with a one-line hint naming its new name."""

    def __init__(self, option_strings: list[str], dest: str, new_name: str = "", **kwargs) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new_name = new_name

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        parser.error(f"{option_string} is now {self.new_name} (the number of folds, as the config field num_folds)")


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="feedback-ner prepare",
        description="Validate a Kaggle Feedback Prize folder (train.csv + train/*.txt) and write word labels and "
        "folds: words.parquet, elements.parquet, folds.csv, prepare_report.json.",
    )
    parser.add_argument("--data", required=True, type=Path, help="folder holding train.csv and train/")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--num-folds", type=int, default=5, help="number of folds, k (default: 5)")
    parser.add_argument("--folds", action=_RenamedOption, new_name="--num-folds", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=42, help="seed of the fold split (default: 42)")
    parser.add_argument(
        "--skip-bad", action="store_true", help="skip and count bad rows/essays instead of stopping at the first"
    )
    return parser


@command("prepare")
def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    setup_logging()
    if args.out.exists() and not args.out.is_dir():
        raise FeedbackError(f"--out {args.out}: a file is there, not a folder; choose a folder")
    if args.seed < 0:
        raise FeedbackError(f"--seed {args.seed}: use a seed >= 0")
    out = prepare(args.data, args.out, k=args.num_folds, seed=args.seed, skip_bad=args.skip_bad)
    report = json.loads((out / REPORT_FILE).read_text())
    print(report["summary"])
    per_fold = pd.DataFrame(report["fold_counts"]).T
    per_fold.index.name = "fold"
    print()
    print(f"{args.num_folds} folds (seed {args.seed}): essays and elements per class")
    print(per_fold.to_string())
    print()
    print("timings: " + ", ".join(f"{k} {v:.2f}" for k, v in report["timings"].items()))
    print(f"wrote {out / WORDS_FILE}, {out / ELEMENTS_FILE}, {out / FOLDS_FILE}, {out / REPORT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
