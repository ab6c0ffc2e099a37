"""Command: train the second stage (span rescorer) on a run's out-of-fold word probabilities (issue 13).

``python -m feedback_ner.rescore --oof RUN/oof.npz --data DATA_DIR --out RUN/rescore`` (an ensemble's OOF file too,
with ``--folds``). Prints candidate recall per class, then per class and macro F1 of the same essays by three
routes: the default post-processing (the run's own; the defaults for an OOF file with no checkpoint), the tuned
post-processing (cross-fitted, tuned from that default: for a run, as its CV table's ``tuned`` column is) and the
rescored spans (cross-fitted); writes the final rescorer (trained on every fold) into ``--out`` with
``oof_submission.csv`` (the cross-fitted spans), ``report.csv``, ``summary.json``, ``gains.png`` and
``folds/fold_<k>/`` (the rescorer that scored fold k, trained without it). ``predict --rescore DIR`` applies the
folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedback_ner import rescoring, tuning
from feedback_ner.artifacts import (
    RESCORER_FILE,
    read_run_config,
    run_skip_bad,
)
from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.config import field_default
from feedback_ner.corpus import load_train, train_paths
from feedback_ner.errors import FeedbackError
from feedback_ner.files import atomic_write
from feedback_ner.metric import score
from feedback_ner.oofruns import check_oof_origin, oof_fingerprints, oof_postprocess, run_checkpoint
from feedback_ner.postprocess import submission_from_probs
from feedback_ner.probs import load_word_probs
from feedback_ner.report import bar_chart, format_table
from feedback_ner.span_features import candidate_recall, fit_candidate_config, span_length_limits, stack_words
from feedback_ner.texts import essay_files, read_text

logger = logging.getLogger("feedback_ner.rescore")

SUBMISSION_FILE = "oof_submission.csv"
REPORT_FILE = "report.csv"
CHART_FILE = "gains.png"
ROUTES = ("default", "tuned (cross-fitted)", "rescored (cross-fitted)")


def make_parser() -> argparse.ArgumentParser:
    """Options of ``feedback_ner.rescore``."""
    parser = ArgumentParser(prog="feedback_ner.rescore", description=__doc__.splitlines()[0])
    parser.add_argument("--oof", required=True, help="out-of-fold word probabilities (RUN/oof.npz or an ensemble's)")
    parser.add_argument("--data", required=True, help="the Kaggle folder (train.csv and train/*.txt)")
    parser.add_argument("--out", required=True, help="folder for the rescorer, oof_submission.csv and the chart")
    parser.add_argument("--folds", default=None,
                        help="CSV id,fold (default: the run's fold_<k>/oof.npz beside --oof)")
    parser.add_argument("--model", choices=("single", "per-class", "compare"), default="single",
                        help="one LightGBM model with the class as a categorical feature, one per class, or both "
                        "(the better cross-fitted one is kept) (default: %(default)s)")
    parser.add_argument("--overlap", type=float, default=rescoring.DEFAULT_OVERLAP,
                        help="drop a candidate overlapping a kept span by more than this share of its length "
                        "(default: %(default)s)")
    parser.add_argument("--nested", action=argparse.BooleanOptionalAction, default=True,
                        help="tune fold k's thresholds on scores from models that never saw fold k (K*K models); "
                        "--no-nested: K models, a small leak")
    parser.add_argument("--tune-trials", type=int, default=None,
                        help="Optuna trials per study of the tuned post-processing row (default: the run's "
                        "tune_trials, as its CV table's tuned column; 40 where it has none)")
    parser.add_argument("--no-texts", action="store_true",
                        help="leave out the paragraph/sentence features (then predict needs no texts)")
    parser.add_argument("--skip-bad", action=argparse.BooleanOptionalAction, default=None,
                        help="skip (and count) bad train.csv rows (default: the run's own skip_bad setting)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of LightGBM and the tuning (default: the run's seed, as its CV table's tuned "
                        "column used; 0 for a file without a run)")
    parser.add_argument("--threads", type=int, default=1,
                        help="LightGBM threads (default: %(default)s; more only on cores nothing else uses)")
    return parser


def _inputs(args: argparse.Namespace) -> tuple[dict, pd.DataFrame, dict | None, pd.DataFrame]:
    """OOF probabilities, their essays' ground truth, their texts and every kept train.csv element (for the span
    length limits), checked before the work: train.csv is read and validated as ``train`` reads it."""
    if not 0.0 <= args.overlap <= 1.0:
        raise FeedbackError(f"--overlap {args.overlap}: use a share between 0 and 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise FeedbackError(f"--out {out}: is a file; give a folder for the rescorer")
    if out.is_dir() and any(out.iterdir()):
        others = [p.name for p in out.iterdir() if not _written_by_rescore(p)]
        if others:  # e.g. the data folder: nothing of the user's is mixed with or replaced by a rescorer
            raise FeedbackError(f"--out {out}: a folder holding files rescore does not write ({', '.join(others[:3])}"
                                f"{', ...' if len(others) > 3 else ''}); give a new or empty folder for the rescorer")
        logger.info("--out %s holds an earlier rescore's files: they are replaced", out)
    data = Path(args.data)
    train_paths(data)
    try:
        probs = load_word_probs(args.oof)
    except (FileNotFoundError, ValueError) as err:
        raise FeedbackError(str(err)) from None
    if not probs:
        raise FeedbackError(f"{args.oof}: no essays in the out-of-fold file")
    check_oof_origin(args.oof)  # the route "default" decodes with the checkpoints beside it
    _check_replaced_rescorer(out, args.oof)
    corpus = load_train(data, skip_bad=run_skip_bad(Path(args.oof).parent, args.skip_bad))
    gt = corpus.elements[corpus.elements["id"].isin(set(probs))].reset_index(drop=True)
    if gt.empty:
        raise FeedbackError(f"none of the {len(probs)} essays of {args.oof} occurs in {data / 'train.csv'}; "
                            "are the probabilities and the data from the same corpus?")
    files = {f.stem: f for f in essay_files(data / "train")} if any(i not in corpus.texts for i in probs) else {}
    no_file = [i for i in probs if i not in corpus.texts and i not in files]
    if no_file:
        raise FeedbackError(f"{len(no_file)} of the {len(probs)} essays of {args.oof} have no essay file in "
                            f"{data / 'train'} (e.g. {no_file[0]}.txt); is --data the corpus the run was trained on?")
    missing = [i for i in probs if i not in corpus.texts]
    if missing:
        logger.warning("%d of the %d essays of %s have no kept rows in %s (e.g. %s): each counts as an essay with "
                       "nothing to find", len(missing), len(probs), args.oof, data / "train.csv", missing[0])
    texts = None if args.no_texts else {i: corpus.texts[i] if i in corpus.texts else read_text(files[i])
                                        for i in probs}
    return probs, gt, texts, corpus.elements


def trained_on(oof: str | Path) -> dict[str, Any]:
    """What a rescorer records of the probabilities it learned from (predict and ensemble check it)."""
    return {"oof": str(Path(oof).resolve()), "fingerprints": oof_fingerprints(oof)}


def _check_replaced_rescorer(out: Path, oof: str | Path) -> None:
    """A rescorer in ``--out`` trained on other models' probabilities is not replaced (``runs`` and ensembles
    credit the folder's figures to its run); one from the same run is (a re-run)."""
    path = out / RESCORER_FILE
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8")).get("trained_on") or {}
    except (ValueError, OSError, AttributeError):
        return  # a damaged folder of rescore's own: replaced
    before, now = set(old.get("fingerprints") or []), set(oof_fingerprints(oof))
    if before and now and before != now:
        raise FeedbackError(f"--out {out}: holds a rescorer trained on another run's probabilities "
                            f"({old.get('oof', '?')}, fingerprint {', '.join(sorted(before))}); give another --out, "
                            "or delete it first")


def _written_by_rescore(path: Path) -> bool:
    """Whether a file or folder in ``--out`` is one rescore writes, by its name and how it begins (so a re-run may
    replace it, and a user's ``model.txt`` or ``report.csv`` that only shares a name is never lost)."""
    name = path.name
    if name.startswith(".") and ".tmp" in name:  # files.atomic_write's temporary file, left by a kill
        name = name[1:].split(".", 1)[0] + path.suffix
        return name in {RESCORER_FILE, SUBMISSION_FILE, REPORT_FILE, CHART_FILE, "summary.json"} or (
            name.startswith("model") and name.endswith(".txt"))
    if name == "folds":
        return path.is_dir() and all(p.is_dir() and p.name.startswith("fold_") for p in path.iterdir())
    starts = {RESCORER_FILE: b"{", "summary.json": b"{", SUBMISSION_FILE: b"id,class,predictionstring",
              REPORT_FILE: b"class,", CHART_FILE: b"\x89PNG"}
    if name.startswith("model") and name.endswith(".txt"):
        starts[name] = b"tree"  # a LightGBM model as text
    if name not in starts or not path.is_file():
        return False
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head.lstrip(b"\xef\xbb\xbf").startswith(starts[name]) or head == b""  # empty: cut short by a kill


def verdict(macro: pd.Series, out: Path, n_essays: int, n_folds: int) -> tuple[bool, str]:
    """Which route to decode with, from the cross-fitted macro F1 of the three ``ROUTES``: ``(True, line)`` when the
    rescorer scored at least as well as both others, else ``(False, line)`` naming the better route and why a
    rescorer can lose (each fold's was fitted on the other folds' essays only)."""
    rescored = float(macro[ROUTES[2]])
    if rescored >= max(float(macro[ROUTES[0]]), float(macro[ROUTES[1]])):
        return True, f"use it: predict --rescore {out} (cross-fitted macro F1 {rescored:.4f}, the best of the three)"
    better = ROUTES[0] if macro[ROUTES[0]] >= macro[ROUTES[1]] else ROUTES[1]
    how = ("predict without --rescore" if better == ROUTES[0] else
           "tune the post-processing (feedback_ner.tune) and predict with it, without --rescore")
    fitted_on = n_essays * (n_folds - 1) // max(n_folds, 1)
    return False, (f"the rescorer scored below the {better.split(' (')[0]} route on these {n_essays} essays "
                   f"({rescored:.4f} vs {float(macro[better]):.4f}, cross-fitted): {how}, or fit it on more "
                   f"out-of-fold essays (each fold's rescorer learned from about {fitted_on})")


def _f1_column(sub: pd.DataFrame, gt: pd.DataFrame) -> pd.Series:
    """Per-class and macro F1, the classes of the ground truth only (``ScoreResult.column``)."""
    return score(sub, gt).column().dropna()


@command("rescore")
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = make_parser().parse_args(argv)
    setup_logging()
    # the run's seed and trials: the tuned column then reproduces the CV table's (config.yaml holds non-defaults)
    run_config, is_run = read_run_config(Path(args.oof).parent), run_checkpoint(args.oof) is not None
    if args.seed is None:
        args.seed = int(run_config.get("seed", field_default("seed") if is_run else 0))
    if args.tune_trials is None:
        args.tune_trials = int(run_config.get("tune_trials", 0)) or field_default("tune_trials")
    started = time.time()
    probs, gt, texts, elements = _inputs(args)
    fold_of = tuning.essay_folds(args.oof, list(probs), args.folds)
    ids = list(probs)
    fold_arr = np.array([fold_of[i] for i in ids])
    # candidate settings from all folds' ground truth (span lengths, thresholds by recall): they decide which spans
    # are candidates, never which are kept or how they score
    limits = span_length_limits(elements)
    config = fit_candidate_config(stack_words(probs), gt, limits)
    print(f"{len(ids)} essays in {len(set(fold_arr))} folds; building candidates and features", flush=True)
    data = rescoring.build_set(probs, config, texts, gt)
    recall = candidate_recall(data.words, data.cand, gt)
    print(f"\ncandidates: {len(data.cand)} ({len(data.cand) / max(len(ids), 1):.0f} per essay), "
          f"{int(data.y.sum())} positive; recall per class (share of ground truths some candidate matches)")
    print(format_table(recall))

    default = oof_postprocess(args.oof)
    logger.info("default post-processing: %s", default.source)
    columns = {ROUTES[0]: _f1_column(submission_from_probs(probs, default.config), gt)}
    # tuned from the default column's post-processing, as the CV table's tuned column is (kfold.tuned_column)
    tuned_sub, _ = tuning.cross_fit_tune(probs, gt, fold_of, n_trials=args.tune_trials, seed=args.seed,
                                         start=default.config)
    columns[ROUTES[1]] = _f1_column(tuned_sub, gt)
    modes = {"single": [False], "per-class": [True], "compare": [False, True]}[args.model]
    best = None
    for per_class in modes:
        fit = rescoring.cross_fit(data, fold_arr, gt, per_class=per_class, overlap=args.overlap, nested=args.nested,
                                  seed=args.seed, threads=args.threads)
        sub = rescoring.submission(data.words, data.cand, fit.kept)
        f1 = _f1_column(sub, gt)
        name = "per-class models" if per_class else "one model, class categorical"
        print(f"rescored ({name}): cross-fitted macro F1 {f1['macro']:.4f}")
        if best is None or f1["macro"] > best[2]["macro"]:
            best = (per_class, fit, f1, sub)
    per_class, fit, columns[ROUTES[2]], sub = best
    table = pd.DataFrame(columns)
    table["gain vs default"] = table[ROUTES[2]] - table[ROUTES[0]]
    table["gain vs tuned"] = table[ROUTES[2]] - table[ROUTES[1]]
    table.index.name = "class"
    print(f"\nF1 of the same {len(ids)} essays (cross-fitted: each fold from models/tuning that never saw it)")
    print(format_table(table))

    out = Path(args.out)
    thresholds = rescoring.tune_thresholds(data.words, data.cand, fit.scores, gt, args.overlap)
    final = rescoring.fit_rescorer(data, config, thresholds, per_class, args.overlap, texts is not None, args.seed,
                                   args.threads)
    final.trained_on = trained_on(args.oof)
    final.save(out)
    for k, models in fit.models.items():  # what scored fold k: predict --rescore out/folds/fold_k reproduces it
        rescoring.Rescorer(models, fit.thresholds[k], config, args.overlap, texts is not None,
                           trained_on=final.trained_on).save(out / "folds" / f"fold_{k}")
    atomic_write(out / SUBMISSION_FILE, lambda tmp: sub.to_csv(tmp, index=False))
    atomic_write(out / REPORT_FILE, lambda tmp: table.to_csv(tmp))
    summary = {"candidates": len(data.cand), "recall": recall["recall"].to_dict(), "essays": len(ids),
               "folds": sorted(int(k) for k in set(fold_arr)),
               "f1": {k: float(v) for k, v in table.loc["macro", list(ROUTES)].items()},
               "fold_thresholds": {str(k): v for k, v in fit.thresholds.items()}, "per_class_models": per_class}
    text = json.dumps(summary, indent=2) + "\n"
    atomic_write(out / "summary.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    bar_chart(table[list(ROUTES)], out / CHART_FILE, title="Second stage: F1 per class (cross-fitted)")
    macro = table.loc["macro"]
    print(f"\nmacro F1: default {macro[ROUTES[0]]:.4f}, tuned {macro[ROUTES[1]]:.4f}, rescored "
          f"{macro[ROUTES[2]]:.4f} ({macro['gain vs default']:+.4f} vs default, {macro['gain vs tuned']:+.4f} vs "
          f"tuned)\nsaved: {out} (rescorer.json, model*.txt, folds/fold_<k>/, {SUBMISSION_FILE}, {REPORT_FILE}, "
          f"{CHART_FILE}) in {(time.time() - started) / 60:.1f} min")
    good, line = verdict(macro, out, len(ids), len(set(fold_arr)))
    if good:
        print(line)
    else:
        logger.warning(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
