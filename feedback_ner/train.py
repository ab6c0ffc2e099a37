"""``accelerate launch -m feedback_ner.train --config configs/<x>.yaml [B.yaml ...] [--folds 0 2]``: k-fold training.

Each config runs in turn (a queue), each fold in turn (``feedback_ner.kfold.run``); the CV table is printed at the
end of each config. Re-running the same command resumes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from feedback_ner.cli import ArgumentParser, command, is_main_process, setup_logging
from feedback_ner.config import parse_config
from feedback_ner.errors import FeedbackError
from feedback_ner.kfold import OOF_FILE, check_before_run, run
from feedback_ner.report import format_table


def make_parser() -> argparse.ArgumentParser:
    """Options of the driver; every config field is also a flag (``--learning_rate 2e-5``), see ``--help-fields``."""
    parser = ArgumentParser(
        prog="feedback-ner train",
        description="k-fold training with best-epoch saving by the competition F1 and a CV table. "
        "Any config field can be overridden as a flag, e.g. --learning_rate 2e-5 --num_train_epochs 3.",
    )
    parser.add_argument("--config", nargs="+", default=[], help="YAML config(s), run one after another.")
    parser.add_argument("--folds", nargs="+", type=int, default=None, help="Folds to train (default: all).")
    parser.add_argument("--help-fields", action="store_true", help="List every config field and exit.")
    return parser


@command("train")
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    known, flags = parser.parse_known_args(argv)
    if known.help_fields:
        from feedback_ner.config import make_parser as fields_parser

        fields_parser().print_help()
        return 0
    if known.folds is not None:
        flags += ["--folds", *map(str, known.folds)]
    setup_logging()
    # Every config of the queue is read and checked first: a mistake in the last one stops the queue before any
    # training, naming its file
    paths = known.config or [None]
    configs = [parse_config(path, flags) for path in paths]
    if len(configs) > 1:
        _check_queue(paths, configs)
    for model_args, data_args, train_args in configs:
        cv = run(model_args, data_args, train_args)
        if is_main_process():
            run_dir = Path(train_args.output_dir)
            tuned = f", post-processing tuned cross-fitted: {cv.loc['macro', 'tuned']:.4f}" if "tuned" in cv else ""
            print(f"\nCV of {run_dir} (macro F1 overall: {cv.loc['macro', 'overall']:.4f}{tuned})")
            print(format_table(cv))
            print(f"\nsaved: {run_dir / 'cv.csv'}, {run_dir / 'cv.png'}, {run_dir / OOF_FILE}, "
                  f"best checkpoints in {run_dir}/fold_*/model")
    return 0


def _check_queue(paths: list[str], configs: list[tuple]) -> None:
    """Each config's pre-run checks (``kfold.check_before_run``), and one output_dir per config."""
    writes: dict[Path, str] = {}
    for path, (model_args, data_args, train_args) in zip(paths, configs, strict=True):
        try:
            check_before_run(model_args, data_args, train_args)
        except FeedbackError as err:
            raise FeedbackError(f"{path}: {err}") from None
        out = Path(train_args.output_dir).resolve()
        if out in writes:
            raise FeedbackError(f"{writes[out]} and {path} both write to output_dir {train_args.output_dir} (a flag "
                                "applies to every config of the queue); give each config its own output_dir")
        writes[out] = path


if __name__ == "__main__":
    sys.exit(main())
