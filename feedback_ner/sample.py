"""Command: write the synthetic corpus (the embedded default) in the Kaggle Feedback Prize layout.

``python -m feedback_ner.sample --out DIR [--n N] [--seed S] [--n-test T] [--line-endings mixed]``. The generator
lives in :mod:`feedback_ner.synthetic` (``synthetic.corpus.write_corpus`` for Python callers).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.errors import FeedbackError
from feedback_ner.synthetic.corpus import LINE_ENDINGS, MIN_WORDS, generate_corpus, save_corpus, summarize


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="feedback-ner sample",
        description="Write a synthetic corpus of student essays in the Kaggle Feedback Prize layout.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--n", type=int, default=1000, help="number of labelled essays (real set: 15594)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same bytes")
    parser.add_argument("--n-test", type=int, default=5, help="number of unlabelled test essays")
    parser.add_argument(
        "--line-endings", choices=LINE_ENDINGS, default="lf",
        help="lf: essays use \\n (default); mixed: essays mix \\n, \\r\\n, \\r, tabs and non-breaking spaces",
    )
    parser.add_argument(
        "--normalised-offsets", action="store_true",
        help="with --line-endings mixed: write offsets into the text with \\r\\n and \\r read as \\n",
    )
    parser.add_argument(
        "--max-words", type=int, default=None,
        help=f"cap every essay's target length (at least {MIN_WORDS}): a corpus of short essays and short elements",
    )
    return parser


@command("sample")
def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    setup_logging()
    if args.n < 1:
        raise FeedbackError(f"--n {args.n}: need at least 1 labelled essay")
    if args.n_test < 0:
        raise FeedbackError(f"--n-test {args.n_test}: need 0 or more test essays")
    if args.max_words is not None and args.max_words < MIN_WORDS:
        raise FeedbackError(f"--max-words {args.max_words}: essays have at least {MIN_WORDS} words; give a larger cap")
    if args.out.exists() and not args.out.is_dir():
        raise FeedbackError(f"--out {args.out}: a file is there, not a folder; choose a new or empty folder")
    t0 = time.perf_counter()
    df, train, test = generate_corpus(
        args.n, args.seed, args.n_test, line_endings=args.line_endings, normalised_offsets=args.normalised_offsets,
        max_words=args.max_words,
    )
    out = save_corpus(args.out, df, train, test)
    print(summarize(df, train, len(test)))
    print(f"written to {out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
