"""Command: build a tiny local model (a tokenizer trained on a corpus + a small random token classifier).

``python -m feedback_ner.tiny --arch longformer --corpus DIR --out DIR [--seed S] [--overwrite]``. The builders live
in :mod:`feedback_ner.synthetic.models` (``build_tiny`` for Python callers).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.errors import FeedbackError
from feedback_ner.synthetic.models import ARCHS, DEFAULT_VOCAB_SIZE, build_tiny


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="feedback-ner tiny",
        description="Build a small local model of one architecture family: a tokenizer trained on the corpus and a "
        "randomly initialised token classifier with the 15 BIO labels (no Hub access needed).",
    )
    parser.add_argument("--arch", required=True, choices=ARCHS, help="architecture family")
    parser.add_argument("--corpus", required=True, type=Path, help="Kaggle-layout folder with train/*.txt, test/*.txt")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the tokenizer and model into")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default 0)")
    parser.add_argument(
        "--vocab-size",
        type=int,
        default=DEFAULT_VOCAB_SIZE,
        help=f"tokenizer vocabulary size (default {DEFAULT_VOCAB_SIZE})",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace the model already in --out")
    return parser


@command("tiny")
def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    setup_logging()
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise FeedbackError(f"--out {out}: a file is there, not a folder; choose a new folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "config.json").is_file():
            raise FeedbackError(f"--out {out}: the folder holds files but no model; choose a new or empty folder")
        if not args.overwrite:
            raise FeedbackError(f"--out {out}: a model is there already; pass --overwrite to replace it")
    # built beside the target and moved in at the end: a failed build leaves the old model, a finished one no old file
    staging = out.with_name(f".{out.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        build_tiny(args.arch, args.corpus, staging, seed=args.seed, vocab_size=args.vocab_size)
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
