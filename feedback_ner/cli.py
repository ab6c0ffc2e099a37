"""The ``feedback-ner`` console script: one subcommand per module, each also ``python -m feedback_ner.<name>``."""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import sys
from collections.abc import Callable
from typing import NoReturn

from feedback_ner.errors import FeedbackError

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "sample": ("feedback_ner.sample", "write a synthetic corpus in the Kaggle layout"),
    "tiny": ("feedback_ner.tiny", "build a small local model and tokenizer from a corpus"),
    "prepare": ("feedback_ner.prepare", "validate a Kaggle folder and write word labels + folds (parquet)"),
    "train": ("feedback_ner.train", "k-fold training with best-epoch saving and a CV table"),
    "score": ("feedback_ner.score", "score a submission with the competition metric"),
    "tune": ("feedback_ner.tune", "tune post-processing on out-of-fold word probabilities"),
    "sweep": ("feedback_ner.sweep", "Optuna hyper-parameter sweep (incl. max_length)"),
    "predict": ("feedback_ner.predict", "predict essays into a submission.csv"),
    "ensemble": ("feedback_ner.ensemble", "find ensemble weights on out-of-fold probabilities"),
    "rescore": ("feedback_ner.rescore", "second stage: rescore candidate spans with LightGBM (cross-fitted)"),
    "demo": ("feedback_ner.demo", "the whole job on the embedded sample corpus"),
}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners and notebooks swap it)."""

    @property
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass  # StreamHandler.__init__ assigns a stream; ignored, the getter always answers the current sys.stderr


def setup_logging(level: int = logging.INFO) -> None:
    """Show this package's progress lines on stderr (CLI entry points call this)."""
    pkg = logging.getLogger("feedback_ner")
    pkg.setLevel(level)
    # Where the root logger already has handlers (the user's, pytest's), records reach them by propagation;
    # a handler of our own there would print every line twice.
    if not logging.getLogger().handlers and not any(isinstance(h, _StderrHandler) for h in pkg.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        pkg.addHandler(handler)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line: ``<prog>: error: <message> (--help lists ...)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")


def command(name: str) -> Callable[[Callable[..., int | None]], Callable[..., int]]:
    """Decorate a command's ``main(argv)``: a :class:`FeedbackError` becomes one line on stderr and exit code 2.

    Other exceptions are bugs and keep their traceback.
    """

    def wrap(main_fn: Callable[..., int | None]) -> Callable[..., int]:
        @functools.wraps(main_fn)
        def main(argv: list[str] | None = None) -> int:
            try:
                return int(main_fn(argv) or 0)
            except FeedbackError as err:
                print(f"feedback-ner {name}: error: {err}", file=sys.stderr)
                return 2

        return main

    return wrap


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: feedback-ner <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`feedback-ner <command> --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``feedback-ner <command> ...`` to ``feedback_ner.<command>.main``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"feedback-ner: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv = [f"feedback-ner {name}", *rest]
    result = module.main(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
