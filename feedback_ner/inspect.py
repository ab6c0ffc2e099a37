"""Command: see what a model gets wrong. ``python -m feedback_ner.inspect RUN [--data DIR] [--out RUN/report.html]``.

RUN is a run folder (``oof.npz``, fold models, ``cv.csv``) or an out-of-fold submission CSV (an ensemble's, a
rescored ``oof_submission.csv``). Writes one self-contained HTML page (open it in any browser, offline), prints the
span-level error breakdown per class and writes it as CSV beside the page (``errors.csv``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from feedback_ner.analysis import analyse
from feedback_ner.artifacts import labels_changed
from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.corpus import load_train
from feedback_ner.errorpage import Predictions, load_predictions, page_data, write_page
from feedback_ner.errors import FeedbackError
from feedback_ner.files import check_distinct_outputs, check_output
from feedback_ner.report import format_table
from feedback_ner.scorefiles import coverage

logger = logging.getLogger("feedback_ner.inspect")


def make_parser() -> ArgumentParser:
    """Options of ``feedback_ner.inspect``."""
    parser = ArgumentParser(
        prog="feedback_ner.inspect",
        description="Error analysis of a run's out-of-fold predictions: an HTML page, a terminal table and a CSV.",
    )
    parser.add_argument("run", metavar="RUN", help="run folder (with oof.npz) or an out-of-fold submission .csv")
    parser.add_argument("--data", default=None, help="Kaggle folder (train.csv, train/); default: the run's data_dir")
    parser.add_argument("--out", default=None, help="HTML page to write (default: RUN/report.html)")
    parser.add_argument("--csv", default=None, help="breakdown CSV to write (default: errors.csv beside the page)")
    parser.add_argument("--postprocess", default=None, help="post-processing JSON to decode the run with "
                        "(default: the checkpoints' own, as in the CV table)")
    parser.add_argument("--skip-bad", action=argparse.BooleanOptionalAction, default=None,
                        help="skip (and count) bad train.csv rows as training did with skip_bad (default: the run's "
                        "own setting)")
    parser.add_argument("--max-essays", type=int, default=300, help="worst essays shown on the page (default 300)")
    parser.add_argument("--only-predicted-essays", action="store_true",
                        help="a submission CSV: analyse only the essays it has rows for (default: every essay of "
                        "train.csv, as `score` does; an essay whose spans were all filtered out has no row)")
    return parser


def _check_words(preds: Predictions, texts: dict[str, str]) -> None:
    """Word probabilities must have one row per word of their essay's text, else every figure is wrong."""
    for essay_id, probs in (preds.word_probs or {}).items():
        text = texts.get(essay_id)
        if text is not None and len(text.split()) != len(probs):
            raise FeedbackError(f"{preds.source}: essay {essay_id!r} has {len(text.split())} words in "
                                f"{preds.data_dir} but {len(probs)} rows of word probabilities; is the data the "
                                "corpus the run was trained on?")


@command("inspect")
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = make_parser().parse_args(argv)
    setup_logging()
    source = Path(args.run)
    if args.max_essays < 1:
        raise FeedbackError(f"--max-essays {args.max_essays}: give a positive number of essays")
    default_dir = source if source.is_dir() else source.parent
    out = Path(args.out) if args.out else default_dir / "report.html"
    csv_path = Path(args.csv) if args.csv else out.with_name("errors.csv")
    check_distinct_outputs({"--out": out, "--csv": csv_path})
    check_output(out, "--out", [source], kind="html")  # never over train.csv, oof.npz or another file of the user's
    check_output(csv_path, "--csv", [source], kind="csv:class")
    preds = load_predictions(source, args.data, args.postprocess)
    if args.only_predicted_essays and preds.word_probs is not None:
        raise FeedbackError(f"--only-predicted-essays: {source} holds word probabilities of each of its essays, all "
                            "analysed; the option is for a submission CSV")
    print(f"post-processing: {preds.postprocess}")
    if preds.word_probs is not None:  # a run's probabilities: scored on the labels it was trained on?
        changed = labels_changed(source if source.is_dir() else source.parent, Path(preds.data_dir) / "train.csv")
        if changed:
            logger.warning("%s", changed)
    skip_bad = preds.skip_bad if args.skip_bad is None else args.skip_bad
    corpus = load_train(preds.data_dir, skip_bad=skip_bad)
    ids = set(preds.ids)
    if not ids & set(corpus.elements["id"]):
        raise FeedbackError(f"{source}: none of its {len(ids)} essays is in {preds.data_dir}/train.csv; "
                            "is --data the corpus the run was trained on?")
    if preds.word_probs is None and not args.only_predicted_essays:
        # a CSV names only essays with a span; the others' elements are missed, as `score` counts them
        ids = set(corpus.elements["id"])
    gt = corpus.elements[corpus.elements["id"].isin(ids)].reset_index(drop=True)
    _check_words(preds, corpus.texts)
    # e.g. classes in another case: those rows match nothing
    for warning in coverage(preds.pred, gt, decoded=preds.word_probs is not None).warnings():
        logger.warning("%s: %s", source, warning)
    analysis = analyse(preds.pred, gt[["id", "discourse_type", "predictionstring"]])
    breakdown = analysis.breakdown()
    subtitle = (f"{preds.source} | {len(ids)} essays, {len(gt)} ground-truth spans, {len(preds.pred)} predictions | "
                f"post-processing: {preds.postprocess} | data: {preds.data_dir}")
    data = page_data(analysis, corpus.texts, preds.word_probs, preds.cv, subtitle, max_essays=args.max_essays)
    title = f"feedback_ner errors: {source.name if source.is_dir() else source}"
    write_page(out, data, title)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    breakdown.to_csv(csv_path)
    if preds.cv is not None:
        print(format_table(preds.cv, index_name="class"))
        print()
    gt_cols = ["TP", "FP", "FN", "F1", *[c for c in breakdown.columns if c.startswith("gt_")]]
    print("ground-truth spans by kind (matched = TP; boundary + wrong_class + missed = FN)")
    print(format_table(breakdown[gt_cols].rename(columns=lambda c: c.removeprefix("gt_")), floatfmt=".4f"))
    print("\npredicted spans by kind (correct = predictions - FP; the others are the FP)")
    pred_cols = [c for c in breakdown.columns if c.startswith("pred_")]
    print(format_table(breakdown[pred_cols].rename(columns=lambda c: c.removeprefix("pred_")), floatfmt=".4f"))
    print(f"\nmacro F1 {breakdown['F1'].mean():.4f} over {len(breakdown)} classes")
    print(f"wrote {out} and {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
