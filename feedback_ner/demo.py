"""The main job on the embedded default: sample corpus -> tiny model -> k-fold training -> CV table -> submission.

``make demo`` runs ``python -m feedback_ner.demo --out demo``. Everything is generated locally, nothing downloaded.
Re-running reuses what is there (the corpus, the model, finished folds).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import pandas as pd

from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.errors import FeedbackError
from feedback_ner.report import format_table
from feedback_ner.synthetic.demo_data import DEMO_ESSAYS, DEMO_SEED, ensure_corpus, ensure_tiny

logger = logging.getLogger("feedback_ner.demo")

MIN_ESSAYS = 30  # the fewest essays the demo can split into folds


def make_parser() -> argparse.ArgumentParser:
    """Options of the demo."""
    parser = ArgumentParser(prog="feedback-ner demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo", help="Folder for the corpus, the tiny model, runs and submission.")
    parser.add_argument("--config", default="configs/demo.yaml", help="Training config (paths inside are replaced).")
    parser.add_argument("--n", type=int, default=DEMO_ESSAYS, help="Essays in the sample corpus.")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="Seed of the sample corpus and the tiny model.")
    parser.add_argument("--arch", default="longformer", help="Tiny architecture to build.")
    parser.add_argument("--setup-only", action="store_true", help="Only write the corpus and the tiny model.")
    return parser


@command("demo")
def main(argv: list[str] | None = None) -> int:
    """Run the demo end to end and print where everything is."""
    args = make_parser().parse_args(argv)
    setup_logging()
    from feedback_ner.config import parse_config
    from feedback_ner.kfold import run
    from feedback_ner.predict import predict
    from feedback_ner.synthetic.models import ARCHS

    if args.n < MIN_ESSAYS:
        raise FeedbackError(f"--n {args.n}: the demo needs at least {MIN_ESSAYS} essays to split into folds.")
    if args.arch not in ARCHS:
        raise FeedbackError(f"--arch {args.arch!r}: choose one of {', '.join(ARCHS)}.")
    start = time.time()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise FeedbackError(f"--out {str(out)!r} is a file; give a folder for the demo's corpus, model and runs.")
    corpus = out / "corpus"
    model_dir = out / f"tiny-{args.arch}"
    run_dir = out / "runs" / Path(args.config).stem
    # tune_trials 0: the demo's second stage (step 4) reports the tuned post-processing next to the rescorer's
    overrides = {"data_dir": str(corpus), "model_name_or_path": str(model_dir), "output_dir": str(run_dir),
                 "tune_trials": 0}
    if not args.setup_only:  # the config's mistakes come first; --setup-only needs no config
        model_args, data_args, train_args = parse_config(args.config, overrides=overrides)
    print(f"[1/5] sample corpus ({args.n} essays) in {corpus}", flush=True)
    print("      written" if ensure_corpus(corpus, args.n, args.seed) else "      found, reused")
    print(f"[2/5] tiny {args.arch} (tokenizer trained on the corpus) in {model_dir}", flush=True)
    print("      built" if ensure_tiny(args.arch, corpus, model_dir, args.seed) else "      found, reused")
    if args.setup_only:
        return 0
    print(f"[3/5] training {data_args.num_folds} folds into {run_dir}")
    cv = run(model_args, data_args, train_args)
    print(f"\nCV of {run_dir} (macro F1 overall: {cv.loc['macro', 'overall']:.4f})")
    print(format_table(cv))
    folds = sorted(run_dir.glob("fold_*/model"))
    # the second stage (issue 13): candidate spans rescored by LightGBM, cross-fitted over the folds
    from feedback_ner.rescore import main as rescore_main

    rescore_dir = run_dir / "rescore"
    print(f"[4/5] second stage: rescoring candidate spans into {rescore_dir}", flush=True)
    rescored = rescore_main(["--oof", str(run_dir / "oof.npz"), "--data", str(corpus), "--out", str(rescore_dir)]) == 0
    if rescored:
        gains = pd.read_csv(rescore_dir / "report.csv", index_col="class").loc["macro"]
        print(f"\nsecond stage (cross-fitted macro F1): default {gains.iloc[0]:.4f}, tuned {gains.iloc[1]:.4f}, "
              f"rescored {gains.iloc[2]:.4f} ({gains.iloc[3]:+.4f} vs default)")
    submission_path = out / "submission.csv"
    print(f"[5/5] predicting {corpus / 'test'} with {len(folds)} fold checkpoints"
          + (" and the rescorer" if rescored else ""))
    submission = predict([str(f) for f in folds], corpus / "test", out=submission_path,
                         rescore=rescore_dir if rescored else None)
    minutes = (time.time() - start) / 60
    print(
        f"\ndone in {minutes:.1f} min — CV macro F1 {cv.loc['macro', 'overall']:.4f}\n"
        f"  corpus:      {corpus}\n  tiny model:  {model_dir}\n  run:         {run_dir} (cv.csv, cv.png, oof.npz)\n"
        f"  checkpoints: {', '.join(map(str, folds))}\n"
        + (f"  rescorer:    {rescore_dir}\n" if rescored else "")
        + f"  submission:  {submission_path} ({len(submission)} rows)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
