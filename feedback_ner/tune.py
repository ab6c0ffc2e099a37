"""Command: tune the post-processing on out-of-fold word probabilities (library: :mod:`feedback_ner.tuning`).

``python -m feedback_ner.tune --oof runs/x/oof.npz --gt data/train.csv`` writes ``runs/x/postprocess.json`` (beside
the OOF file, where ``predict``/``ensemble`` look for a run's tuned post-processing) and a before/after chart. It
prints two figures: the in-sample gain (tuned and scored on the same essays, optimistic) and the cross-fitted one
(for each fold, tuned on the other folds and applied to it), the number to trust.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from feedback_ner import tuning
from feedback_ner.artifacts import labels_changed, oof_folds, run_skip_bad, tuned_on_path
from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.errors import FeedbackError
from feedback_ner.files import atomic_write, check_output
from feedback_ner.metric import score
from feedback_ner.oofruns import check_oof_origin, oof_postprocess
from feedback_ner.postprocess import PostprocessConfig
from feedback_ner.probs import load_word_probs
from feedback_ner.report import bar_chart, format_table
from feedback_ner.scorefiles import read_ground_truth
from feedback_ner.storage import open_storage
from feedback_ner.tuning import DEFAULT_ROUNDS, REPORT_COLUMNS, chart_path, check_words_cover, display_table, tune  # noqa: F401

logger = logging.getLogger("feedback_ner.tune")

POSTPROCESS_FILE = "postprocess.json"


def make_parser() -> argparse.ArgumentParser:
    """Options of ``feedback_ner.tune``."""
    parser = ArgumentParser(
        prog="feedback_ner.tune",
        description="Tune the post-processing (per-class min_words and proba_thresh, optional rules) on "
        "out-of-fold word probabilities with Optuna; writes the JSON that predict and train (--postprocess) read, "
        "and a before/after chart beside it.",
    )
    parser.add_argument("--oof", required=True, help="out-of-fold word probabilities (.npz, e.g. runs/<name>/oof.npz)")
    parser.add_argument("--gt", required=True, help="ground truth: the Kaggle train.csv (restricted to the OOF essays)")
    parser.add_argument("--out", default=None,
                        help=f"tuned config JSON to write (default: {POSTPROCESS_FILE} beside --oof, the file "
                        "predict and ensemble pick up for the run)")
    parser.add_argument("--trials", type=int, default=200,
                        help="trials per study: one study per class and round, plus the shared rules "
                        "(default: %(default)s)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL or SQLite file; default: a SQLite file beside --out "
                        "(<out>.optuna.db), so re-running the same command resumes; 'memory' keeps nothing")
    parser.add_argument("--study", default=None,
                        help="study name (default: tune-<fingerprint of the data>, so other data starts a new study)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the TPE samplers (default: %(default)s)")
    parser.add_argument("--start", default=None,
                        help="post-processing JSON to start from (default: the run's own, as its CV table decodes; "
                        "the built-in defaults for a file without one); the result never scores below it on this data")
    parser.add_argument("--rules", action=argparse.BooleanOptionalAction, default=True,
                        help="also search one_per_essay and join_adjacent per class, join_gap and fill_gaps "
                        "(--no-rules: only min_words and proba_thresh; the start's rules are kept)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help="most rounds of per-class then shared-rule studies (default: %(default)s)")
    parser.add_argument("--folds", default=None,
                        help="CSV id,fold giving each essay's fold for the cross-fitted figure (default: the run's "
                        "fold_<k>/oof.npz files beside --oof)")
    parser.add_argument("--skip-bad", action=argparse.BooleanOptionalAction, default=None,
                        help="skip (and count) bad ground-truth rows (default: the run's own skip_bad setting)")
    parser.add_argument("--cross-fit", action=argparse.BooleanOptionalAction, default=True,
                        help="also report the cross-fitted gain (tune on the other folds, apply to each fold)")
    return parser


def _load(args: argparse.Namespace, out: Path) -> tuple[PostprocessConfig | None, str, dict, pd.DataFrame, Any]:
    """Inputs checked before any tuning work (user mistakes become one-line errors): the start point and its name,
    the word probabilities, the ground truth and the opened storage."""
    storage = tuning.storage_url(args.storage, out)
    if args.trials < 1 or args.rounds < 1:
        raise FeedbackError(f"--trials {args.trials} --rounds {args.rounds}: use at least 1 of each")
    if out.is_dir():
        raise FeedbackError(f"--out {out}: is a folder; give the JSON file to write")
    # a post-processing JSON (never a model's config.json); --start is read before, so it may be --out
    check_output(out, "--out", inputs=(args.gt, args.oof), kind="json:min_words")
    try:
        start, start_name = (PostprocessConfig.load(args.start), "--start") if args.start else (None, "")
        word_probs = load_word_probs(args.oof)
        if start is None:  # the run's own post-processing: tuning never ends below what the run decodes with
            start, start_name = _run_postprocess(args.oof)
    except (FileNotFoundError, ValueError) as err:
        raise FeedbackError(str(err)) from None
    if not word_probs:
        raise FeedbackError(f"{args.oof}: no word probabilities to tune on (the out-of-fold file is empty)")
    check_oof_origin(args.oof)  # its tuned postprocess.json goes beside it, where predict picks it up
    changed = labels_changed(Path(args.oof).parent, args.gt)
    if changed:  # tuned on labels the run never saw: predict would decode with it
        logger.warning("--gt %s", changed)
    skip_bad = run_skip_bad(Path(args.oof).parent, args.skip_bad)  # the ground truth read as the run read it
    gt = check_words_cover(word_probs, read_ground_truth(args.gt, "--gt", skip_bad), str(args.oof), skip_bad)
    # opened here: a database that cannot be created or reached is one line before the work
    return start, start_name, word_probs, gt, open_storage(storage) if storage is not None else None


def _run_postprocess(oof: str | Path) -> tuple[PostprocessConfig | None, str]:
    """What the run of ``oof`` decodes with (:func:`oofruns.oof_postprocess`, as its CV table and ``rescore``'s
    default route do) and its name; (None, "the built-in defaults") where it has none."""
    chosen = oof_postprocess(oof)
    if chosen.source == "defaults":
        return None, "the built-in defaults"
    return chosen.config, ("the ensemble's post-processing" if chosen.source.startswith("the ensemble's") else
                           "the run's post-processing")


@command("tune")
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = make_parser().parse_args(argv)
    setup_logging()
    out = Path(args.out) if args.out else Path(args.oof).parent / POSTPROCESS_FILE
    start, start_name, word_probs, gt, storage = _load(args, out)
    fold_of = tuning.essay_folds(args.oof, list(word_probs), args.folds) if args.cross_fit else None
    if fold_of is not None and len(set(fold_of.values())) < 2:
        print(f"note: the essays of {args.oof} are all in one fold: no cross-fitted figure (train more folds)")
        fold_of = None
    out.parent.mkdir(parents=True, exist_ok=True)
    options = dict(n_trials=args.trials, seed=args.seed, start=start, rules=args.rules, rounds=args.rounds)
    try:
        config, report = tune(word_probs, gt, storage=storage, study_name=args.study, show_progress=True, **options)
        crossed = tuning.cross_fit_tune(word_probs, gt, fold_of, **options)[0] if fold_of else None
    except ValueError as err:
        raise FeedbackError(str(err)) from None
    config.save(out)
    record = {"oof": str(Path(args.oof).resolve()), "folds": oof_folds(args.oof), "essays": len(word_probs)}
    atomic_write(tuned_on_path(out), lambda tmp: tmp.write_text(json.dumps(record) + "\n", encoding="utf-8"))
    chart = bar_chart(
        pd.DataFrame({"before": report["F1 before"], "after": report["F1 after"]}),
        chart_path(out),
        title="Post-processing tuning: F1 per class (out-of-fold)",
    )
    macro = report.loc["macro"]
    print(f"\nmacro F1 {macro['F1 before']:.4f} -> {macro['F1 after']:.4f} "
          f"({start_name} -> tuned, in-sample: tuned and scored on the same "
          "essays)")
    if crossed is not None:
        essays_gt = gt[gt["id"].astype(str).isin(set(map(str, word_probs)))]
        honest = score(crossed, essays_gt).f1
        print(f"macro F1 {macro['F1 before']:.4f} -> {honest:.4f} cross-fitted (each fold tuned on the others; "
              f"{len(set(fold_of.values()))} folds)")
    print(format_table(display_table(report)))
    print(f"\nsaved: {out}, {chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
