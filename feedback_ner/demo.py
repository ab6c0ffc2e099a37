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

from feedback_ner.cli import setup_logging
from feedback_ner.report import format_table

logger = logging.getLogger("feedback_ner.demo")

# The embedded default: `make demo` and, on a fresh clone, `make sweep` generate these.
DEMO_ESSAYS = 450
DEMO_SEED = 0


def ensure_corpus(corpus: Path, n: int = DEMO_ESSAYS, seed: int = DEMO_SEED) -> bool:
    """Write the sample corpus into ``corpus`` unless one is there; whether it was written."""
    if (corpus / "train.csv").is_file():
        return False
    from feedback_ner.sample import write_corpus

    write_corpus(corpus, n=n, seed=seed)
    return True


def ensure_tiny(arch: str, corpus: Path, model_dir: Path, seed: int = DEMO_SEED) -> bool:
    """Build the tiny model of ``arch`` from ``corpus`` into ``model_dir`` unless one is there; whether it was built."""
    if (model_dir / "config.json").is_file():
        return False
    from feedback_ner.tiny import build_tiny

    build_tiny(arch, corpus, model_dir, seed=seed)
    return True



def make_parser() -> argparse.ArgumentParser:
    """Options of the demo."""
    parser = argparse.ArgumentParser(prog="feedback_ner.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo", help="Folder for the corpus, the tiny model, runs and submission.")
    parser.add_argument("--config", default="configs/demo.yaml", help="Training config (paths inside are replaced).")
    parser.add_argument("--n", type=int, default=DEMO_ESSAYS, help="Essays in the sample corpus.")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="Seed of the sample corpus and the tiny model.")
    parser.add_argument("--arch", default="longformer", help="Tiny architecture to build.")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the demo end to end and print where everything is."""
    args = make_parser().parse_args(argv)
    setup_logging()
    from feedback_ner.config import parse_config
    from feedback_ner.kfold import run
    from feedback_ner.predict import predict

    start = time.time()
    out = Path(args.out)
    corpus = out / "corpus"
    print(f"[1/4] sample corpus ({args.n} essays) in {corpus}", flush=True)
    print("      written" if ensure_corpus(corpus, args.n, args.seed) else "      found, reused")
    model_dir = out / f"tiny-{args.arch}"
    print(f"[2/4] tiny {args.arch} (tokenizer trained on the corpus) in {model_dir}", flush=True)
    print("      built" if ensure_tiny(args.arch, corpus, model_dir, args.seed) else "      found, reused")
    run_dir = out / "runs" / Path(args.config).stem
    overrides = {"data_dir": str(corpus), "model_name_or_path": str(model_dir), "output_dir": str(run_dir)}
    model_args, data_args, train_args = parse_config(args.config, overrides=overrides)
    print(f"[3/4] training {data_args.num_folds} folds into {run_dir}")
    cv = run(model_args, data_args, train_args)
    print(f"\nCV of {run_dir} (macro F1 overall: {cv.loc['macro', 'overall']:.4f})")
    print(format_table(cv))
    folds = sorted(run_dir.glob("fold_*/model"))
    submission_path = out / "submission.csv"
    print(f"[4/4] predicting {corpus / 'test'} with {len(folds)} fold checkpoints")
    submission = predict([str(f) for f in folds], corpus / "test", out=submission_path)
    # the second stage (issue 13): rescore the out-of-fold candidate spans, cross-fitted
    from feedback_ner.rescore import main as rescore_main

    rescore_dir = run_dir / "rescore"
    print(f"[+] second stage: rescoring candidate spans into {rescore_dir}", flush=True)
    if rescore_main(["--oof", str(run_dir / "oof.npz"), "--data", str(corpus), "--out", str(rescore_dir)]) == 0:
        gains = pd.read_csv(rescore_dir / "report.csv", index_col="class").loc["macro"]
        print(f"\nsecond stage (cross-fitted macro F1): default {gains.iloc[0]:.4f}, tuned {gains.iloc[1]:.4f}, "
              f"rescored {gains.iloc[2]:.4f} ({gains.iloc[3]:+.4f} vs default); rescorer: {rescore_dir}")
    minutes = (time.time() - start) / 60
    print(
        f"\ndone in {minutes:.1f} min — CV macro F1 {cv.loc['macro', 'overall']:.4f}\n"
        f"  corpus:      {corpus}\n  tiny model:  {model_dir}\n  run:         {run_dir} (cv.csv, cv.png, oof.npz)\n"
        f"  checkpoints: {', '.join(map(str, folds))}\n"
        f"  submission:  {submission_path} ({len(submission)} rows)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
