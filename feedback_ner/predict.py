"""Command: predict essays into a Kaggle ``submission.csv`` with one or more checkpoints, offline.

``python -m feedback_ner.predict --model DIR [DIR ...] --texts DIR --out submission.csv [--weights W ...]
[--postprocess tuned.json] [--ensemble ensemble.json] [--rescore RUN/rescore] [--probs-out probs.npz]
[--batch-size 8] [--device cuda]``.

The library is :mod:`feedback_ner.inference`; :func:`predict` is re-exported here for notebooks
(``from feedback_ner.predict import predict``), lazily: a mistake in the arguments is reported before torch and
transformers load.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from feedback_ner.artifacts import plan_prediction
from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.texts import load_texts

__all__ = ["main", "make_parser"]  # and `predict`, through __getattr__


def __getattr__(name: str) -> Any:
    if name == "predict":
        from feedback_ner.inference import predict

        return predict
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_parser() -> argparse.ArgumentParser:
    """Options of ``feedback_ner.predict``."""
    parser = ArgumentParser(
        prog="feedback_ner.predict",
        description="Predict essays into a Kaggle submission.csv with one or more checkpoints (word-level "
        "weighted average), offline.",
    )
    parser.add_argument("--model", nargs="*", default=[], metavar="DIR",
                        help="checkpoint folder(s) (runs/<name>/fold_k/model), glob patterns or run folders")
    parser.add_argument("--texts", required=True, help="folder of <id>.txt essays (e.g. the Kaggle test/ folder)")
    parser.add_argument("--out", default="submission.csv", help="submission CSV to write (default: submission.csv)")
    parser.add_argument("--weights", nargs="+", type=float, default=None,
                        help="one weight per checkpoint (normalised; default equal or the ensemble's)")
    parser.add_argument("--postprocess", default=None,
                        help="post-processing JSON (default: the ensemble's, else the run's tuned postprocess.json, "
                        "else the checkpoint's)")
    parser.add_argument("--ensemble", default=None,
                        help="ensemble JSON from feedback_ner.ensemble (with its rescorer, if it records one)")
    parser.add_argument("--probs-out", default=None, help="also write the word probabilities (.npz)")
    parser.add_argument("--rescore", default=None, metavar="DIR",
                        help="decode with the span rescorer in DIR (from feedback_ner.rescore) instead of thresholds "
                        "(default: the ensemble file's rescorer, unless --postprocess is given)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default: 8)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--cpu-bf16", action="store_true",
                        help="CPU with native bf16 (AVX512-BF16/AMX): bf16 weights, faster, probabilities ~1e-2 off")
    return parser


@command("predict")
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = make_parser().parse_args(argv)
    setup_logging()
    # every file is checked and the essays are read before the model libraries load
    # (a missing or corrupt rescorer folder, given or named by the ensemble file, is one line here)
    plan = plan_prediction(args.model, args.weights, args.postprocess, args.ensemble, args.out, args.probs_out,
                           args.rescore)
    essays = load_texts(args.texts)
    from feedback_ner.inference import predict

    timings: dict[str, float] = {}
    submission = predict(
        [str(f) for f in plan.folders], essays, out=args.out, weights=args.weights, postprocess=args.postprocess,
        ensemble=args.ensemble, batch_size=args.batch_size, device=args.device, probs_out=args.probs_out,
        timings=timings, rescore=args.rescore, cpu_bf16=args.cpu_bf16,
    )
    counts = submission["class"].value_counts()
    print(f"wrote {args.out}: {len(submission)} spans in {submission['id'].nunique()} essays (the essays "
          f"without a span have no row) ({timings.get('total_s', 0.0):.1f} s)")
    if len(counts):
        print("  " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    if args.probs_out:
        print(f"wrote {args.probs_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
