"""Command: choose max_length from the data. ``python -m feedback_ner.lengths --data DIR --model M [M ...]``.

Per tokenizer: token lengths of the essays, coverage at 512/1024/1536/2048/4096 tokens, windows per essay and the
padding share at each length, the lengths covering 90/95/99% of essays, and a histogram PNG. See
:mod:`feedback_ner.tokenlengths`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.corpus import DataError
from feedback_ner.errors import FeedbackError
from feedback_ner.files import check_output
from feedback_ner.inference import offline
from feedback_ner.modeling import load_tokenizer
from feedback_ner.report import format_table
from feedback_ner.texts import load_texts
from feedback_ner.tokenlengths import LENGTHS, histogram_png, length_quantiles, summary, token_lengths


def make_parser() -> ArgumentParser:
    """Options of ``feedback_ner.lengths``."""
    parser = ArgumentParser(
        prog="feedback_ner.lengths",
        description="Token lengths of the essays per tokenizer and what each max_length costs (coverage, windows, "
        "padding).",
    )
    parser.add_argument("--data", required=True, help="Kaggle folder (its train/ essays) or a folder of .txt essays")
    parser.add_argument("--model", nargs="+", required=True, metavar="M",
                        help="model folders or names whose tokenizers to compare (local files only)")
    parser.add_argument("--lengths", nargs="+", type=int, default=list(LENGTHS), help="window lengths to compare")
    parser.add_argument("--stride", type=int, default=128, help="window overlap in tokens (default: 128)")
    parser.add_argument("--keep-newlines", action="store_true", help="count the paragraph markers keep_newlines adds")
    parser.add_argument("--png", default="lengths.png", help="histogram PNG to write (default: lengths.png)")
    return parser


@command("lengths")
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = make_parser().parse_args(argv)
    setup_logging()
    bad = [x for x in args.lengths if x < 16]
    if bad:
        raise FeedbackError(f"--lengths {bad[0]}: window lengths must be at least 16 tokens")
    if args.stride < 0:
        raise FeedbackError(f"--stride {args.stride}: use 0 or more tokens of overlap")
    check_output(args.png, "--png", kind="png:lengths")
    data = Path(args.data)
    folder = data / "train" if (data / "train").is_dir() else data
    try:
        texts = load_texts(folder)
    except DataError as err:
        raise FeedbackError(str(err)) from None
    with offline():  # local files only: a name that is not a folder fails at once, not after the Hub's retries
        tokenizers = [load_tokenizer(m, "--model") for m in args.model]
    lengths = [token_lengths(Path(m).name or m, tok, texts, args.keep_newlines)
               for m, tok in zip(args.model, tokenizers, strict=True)]
    table = summary(lengths, args.lengths, args.stride)
    lowered = table[table["stride"] < args.stride]
    for (name, length), used in lowered.groupby(["tokenizer", "max_length"])["stride"].first().items():
        print(f"note: --stride {args.stride} does not fit max_length {length}'s window ({name}): lowered to "
              f"{used} for that length")
    print(f"{len(texts)} essays from {folder}; stride {args.stride}\n")
    print(format_table(length_quantiles(lengths), floatfmt=".1f", index_name="tokenizer"))
    print()
    shown = table.set_index("tokenizer")
    print(format_table(shown, floatfmt=".3f", index_name="tokenizer"))
    print("\ncoverage: share of essays that fit in one window; padding_share: share of padding when every window is "
          "padded to max_length")
    try:
        histogram_png(lengths, args.png, args.lengths)
    except OSError as err:
        raise FeedbackError(f"--png {args.png}: cannot write it ({err.strerror or err}); choose another path") from None
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
