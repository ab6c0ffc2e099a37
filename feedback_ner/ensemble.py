"""Command: find per-run ensemble weights on out-of-fold word probabilities and write one ensemble JSON.

``python -m feedback_ner.ensemble --oof runA/oof.npz runB/oof.npz --gt train.csv --out ensemble.json
[--models "runA/fold_*/model" "runB/fold_*/model"] [--oof-submission oof_submission.csv] [--trials 50]
[--postprocess tuned.json] [--rescore RUN/rescore] [--oof-out ensemble_oof.npz] [--seed 42]``.

Each run's ``oof.npz`` names its run (``oofruns.run_meta``), so the fold checkpoints are found from it; given
``--models`` patterns (any order) are matched to the runs by that identity, and a pattern that belongs to no run is
refused. The post-processing is the explicit ``--postprocess``, else the first run's tuned ``postprocess.json``,
else its checkpoint's (``artifacts.choose_postprocess``); it is used in the search and written into the ensemble
file, which ``feedback_ner.predict --ensemble`` reads. A run's weight is split equally over its fold checkpoints.
The search itself is :mod:`feedback_ner.ensemble_weights`. ``--rescore DIR`` records a span rescorer (a folder of
``feedback_ner.rescore``, checked here) in the file, relative to it: ``predict --ensemble`` then decodes with it
(``artifacts.choose_decoder``); the weight search and ``--oof-submission`` still use the threshold post-processing.
``--oof-out FILE`` writes the ensemble's out-of-fold word probabilities (the weighted mean) and, beside it,
``FILE`` with ``.folds.csv`` (each essay's fold, from the first run's folds): ``feedback_ner.rescore --oof FILE``
trains a rescorer on the ensemble's probabilities, cross-fitted on the runs' own split.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from feedback_ner.artifacts import (
    EnsembleSpec,
    check_rescorer_fits,
    choose_postprocess,
    run_skip_bad,
    save_ensemble,
)
from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.ensemble_weights import shared_probs, tune_weights, write_ensemble_oof
from feedback_ner.errors import FeedbackError
from feedback_ner.files import atomic_write, check_distinct_outputs, check_output
from feedback_ner.oofruns import check_oof_origin, match_models, oof_run
from feedback_ner.postprocess import submission_from_probs
from feedback_ner.probs import load_meta, load_word_probs
from feedback_ner.report import format_table
from feedback_ner.scorefiles import read_ground_truth
from feedback_ner.tuning import check_words_cover, folds_file_of

logger = logging.getLogger("feedback_ner.ensemble")


def make_parser() -> argparse.ArgumentParser:
    """Options of ``feedback_ner.ensemble``."""
    parser = ArgumentParser(
        prog="feedback_ner.ensemble",
        description="Find per-run ensemble weights on out-of-fold word probabilities (Optuna TPE) and write one "
        "ensemble JSON for feedback_ner.predict --ensemble.",
    )
    parser.add_argument("--oof", nargs="+", required=True, help="each run's oof.npz (runs/<name>/oof.npz)")
    parser.add_argument("--gt", required=True, help="ground truth: the competition's train.csv")
    parser.add_argument("--models", nargs="+", default=None,
                        help="each run's checkpoint folders as one quoted glob (\"runA/fold_*/model\") or the run "
                        "folder, in any order; default: the fold checkpoints each oof.npz names")
    parser.add_argument("--out", default="ensemble.json", help="ensemble JSON to write (default: ensemble.json)")
    parser.add_argument("--oof-submission", default=None,
                        help="also write the ensemble's out-of-fold submission (CSV) on the shared essays, to score")
    parser.add_argument("--trials", type=int, default=50, help="Optuna trials (default: 50)")
    parser.add_argument("--postprocess", default=None,
                        help="post-processing JSON used in the search and written into the ensemble "
                        "(default: the first run's tuned postprocess.json, else its checkpoint's)")
    parser.add_argument("--rescore", default=None, metavar="DIR",
                        help="record this span rescorer folder (from feedback_ner.rescore) in the ensemble file: "
                        "predict --ensemble decodes with it instead of thresholds")
    parser.add_argument("--oof-out", default=None, metavar="FILE",
                        help="write the ensemble's out-of-fold word probabilities (.npz) and FILE.folds.csv, for "
                        "feedback_ner.rescore --oof FILE")
    parser.add_argument("--seed", type=int, default=42, help="seed of the TPE sampler (default: 42)")
    parser.add_argument("--skip-bad", action=argparse.BooleanOptionalAction, default=None,
                        help="skip (and count) bad ground-truth rows (default: on when a run was trained with "
                        "skip_bad)")
    return parser


@command("ensemble")
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = make_parser().parse_args(argv)
    setup_logging()
    inputs = [*args.oof, args.gt, args.postprocess]
    check_distinct_outputs({"--out": args.out, "--oof-submission": args.oof_submission, "--oof-out": args.oof_out,
                            "--oof-out's folds file": folds_file_of(args.oof_out) if args.oof_out else None})
    out = check_output(args.out, "--out", inputs, kind="json:models")
    oof_sub = check_output(args.oof_submission, "--oof-submission", inputs, kind="submission")
    oof_out = check_output(args.oof_out, "--oof-out", inputs, kind="npz:ensemble-oof")
    if oof_out is not None and oof_out.suffix != ".npz":
        raise FeedbackError(f"--oof-out {oof_out}: name an .npz file (word probabilities)")
    rescorer = None
    if args.rescore is not None:
        from feedback_ner.rescoring import Rescorer  # LightGBM loads only for a rescorer

        try:
            rescorer = Rescorer.load(args.rescore)  # a missing or corrupt folder is one line, before the search
        except FeedbackError as err:
            raise FeedbackError(f"--rescore {err}") from None
    seen: dict[Path, str] = {}
    for p in args.oof:  # the same run twice would weigh it twice and run its checkpoints twice in predict
        key = Path(p).resolve()
        if key in seen:
            raise FeedbackError(f"--oof {p}: given twice (also as {seen[key]}); give each run's oof.npz once")
        seen[key] = str(p)
    for p in args.oof:
        check_oof_origin(p)
    runs = [oof_run(p, load_meta(p)) for p in args.oof]
    if rescorer is not None:
        check_rescorer_fits(f"--rescore {args.rescore}", rescorer.trained_on, {r.fingerprint for r in runs},
                            "these runs")
    folders = match_models(runs, args.models)
    probs = [load_word_probs(r.oof) for r in runs]
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        names = [str(r.oof) for r in runs]
    chosen = choose_postprocess(args.postprocess, None, runs[0].run_dir, folders[0][0])
    logger.info("post-processing: %s", chosen.source)
    if len(runs) > 1 and chosen.source.startswith("run's tuned"):  # the order of --oof decides, and it is in-sample
        logger.warning("the %s was tuned on %s's own out-of-fold essays: in-sample for it, so its single-run row "
                       "and weight are flattered (another order of --oof gives others); for figures that do not "
                       "favour one run give --postprocess, or tune the ensemble's own (tune --oof <--oof-out file>)",
                       chosen.source, names[0])
    skip_bad = args.skip_bad if args.skip_bad is not None else any(run_skip_bad(r.run_dir) for r in runs)
    gt = read_ground_truth(args.gt, "--gt", skip_bad)
    for name, run_probs in zip(names, probs, strict=True):
        gt = check_words_cover(run_probs, gt, name, skip_bad)
    result = tune_weights(probs, gt, chosen.config, trials=args.trials, seed=args.seed, names=names)

    models, weights = [], []
    for run_folders, w in zip(folders, result.weights, strict=True):
        models += run_folders
        weights += [w / len(run_folders)] * len(run_folders)
    spec = EnsembleSpec(
        models, weights, chosen.config.to_dict(),
        rescore=Path(args.rescore) if args.rescore is not None else None,
        extra={
            "runs": [{"oof": str(r.oof), "models": [str(f) for f in fs], "weight": w}
                     for r, fs, w in zip(runs, folders, result.weights, strict=True)],
            "scores": {str(k): float(v) for k, v in result.table["F1"].items()},
        },
    )
    path = save_ensemble(out, spec)
    print(format_table(result.table))
    if spec.rescore is not None:
        print(f"span rescorer: {args.rescore} (predict --ensemble decodes with it)")
    print(f"\nwrote {path}: {len(models)} checkpoints, run weights "
          + ", ".join(f"{n} {w:.3f}" for n, w in zip(names, result.weights, strict=True))
          + f" (OOF macro F1 {result.f1:.4f}, post-processing: {chosen.source})")
    if oof_sub is not None or oof_out is not None:
        shared = shared_probs(probs, names)
        mean = shared.mean(result.weights)
    if oof_sub is not None:
        sub = submission_from_probs(mean, chosen.config)
        atomic_write(oof_sub, lambda tmp: sub.to_csv(tmp, index=False))
        print(f"wrote {oof_sub}: the tuned ensemble's out-of-fold submission ({len(shared.ids)} essays; "
              f"{sub['id'].nunique()} with a span): score it with feedback_ner.score --gt {args.gt} --pred "
              f"{oof_sub} --essays-of {' '.join(str(r.oof) for r in runs)}")
    if oof_out is not None:
        folds = write_ensemble_oof(oof_out, mean, runs, chosen.config.to_dict())
        print(f"wrote {oof_out} and {folds}: the ensemble's out-of-fold word probabilities ({len(mean)} essays) "
              f"and their folds; train a rescorer with feedback_ner.rescore --oof {oof_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
