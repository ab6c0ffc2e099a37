"""The ``feedback-ner`` console script: one subcommand per module, each also ``python -m feedback_ner.<name>``."""

from __future__ import annotations

import argparse
import errno
import functools
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

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
    "inspect": ("feedback_ner.inspect", "error analysis of a run: HTML page, table and CSV"),
    "runs": ("feedback_ner.runs", "compare training runs: one row each, differing settings marked"),
    "lengths": ("feedback_ner.lengths", "token lengths per tokenizer and what each max_length costs"),
    "wheels": ("feedback_ner.wheels", "the folder of wheels the offline Kaggle notebook installs from"),
}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners and notebooks swap it)."""

    @property
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass  # StreamHandler.__init__ assigns a stream; ignored, the getter always answers the current sys.stderr


def is_main_process() -> bool:
    """Whether this is the main process of a launch (``accelerate launch``/``torchrun`` set ``RANK``); no
    distributed set-up is needed to answer, so commands can call it before anything else."""
    rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))
    return rank.strip() in ("", "0")


def setup_logging(level: int = logging.INFO) -> None:
    """The one logging set-up of every command: our lines at ``level`` on the main process (WARNING on the
    others), third-party libraries quiet (errors only, no model-loading or shard-writing bars).

    The Trainer's own progress bars and metric dicts are replaced by ``trainer.EpochProgressCallback`` (one bar
    per epoch) and ``trainer.EvalLogCallback`` (one line per evaluation).
    """
    main_process = is_main_process()
    pkg = logging.getLogger("feedback_ner")
    pkg.setLevel(level if main_process else max(level, logging.WARNING))
    # Where the root logger already has handlers (the user's, pytest's), records reach them by propagation;
    # a handler of our own there would print every line twice.
    if not logging.getLogger().handlers and not any(isinstance(h, _StderrHandler) for h in pkg.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        pkg.addHandler(handler)
    _quiet_third_party()


def _quiet_third_party() -> None:
    """Errors only from transformers, datasets and the Hub client, and none of their progress bars: our own
    bars (training epochs, tokenisation, prediction) say what is going on."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # "Loading weights", "Writing model shards"
    try:
        import datasets

        datasets.utils.logging.set_verbosity_error()
        datasets.disable_progress_bars()  # "Map", "Saving the dataset", "Loading dataset shards"
    except ImportError:  # pragma: no cover - datasets is a dependency; kept optional for light commands
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass
    for name in ("accelerate", "torch.distributed", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line: ``<prog>: error: <message> (--help lists ...)``.

    Options are never abbreviated (``--learning_rat`` is not ``--learning_rate``, ``--fold`` not ``--folds``), and an
    option given twice is refused (:func:`repeated_option`): argparse would keep the last value silently."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        twice = repeated_option(argv)
        if twice:
            self.error(f"{twice} is given twice; give it once (a list option takes several values: {twice} A B)")
        return super().parse_known_args(argv, namespace)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")


def repeated_option(argv: Sequence[str]) -> str | None:
    """The first ``--option`` that ``argv`` gives twice (``--x 1`` or ``--x=1``, or ``--x`` and its ``--no-x`` /
    ``--no_x``; up to a bare ``--``), else None."""
    seen: set[str] = set()
    for token in argv:
        if token == "--":
            break
        if token.startswith("--") and len(token) > 2:
            name = token.split("=", 1)[0]
            key = "--" + name[5:] if name.startswith(("--no-", "--no_")) else name
            if key in seen:
                return name
            seen.add(key)
    return None


_PATH_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                          errno.EISDIR, errno.EEXIST, errno.ENOENT, errno.ENAMETOOLONG})


def command(name: str) -> Callable[[Callable[..., int | None]], Callable[..., int]]:
    """Decorate a command's ``main(argv)``: a :class:`FeedbackError` becomes one line on stderr and exit code 2.

    So does an ``OSError`` naming a path the file system refuses (``_PATH_ERRNOS``: not writable, read-only, full,
    not a folder); other exceptions are bugs and keep their traceback.
    """

    def wrap(main_fn: Callable[..., int | None]) -> Callable[..., int]:
        @functools.wraps(main_fn)
        def main(argv: list[str] | None = None) -> int:
            try:
                return int(main_fn(argv) or 0)
            except FeedbackError as err:
                print(f"feedback-ner {name}: error: {err}", file=sys.stderr)
                return 2
            except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback; outputs are written atomically
                again = "; the same command resumes where it stopped" if name == "train" else ""
                print(f"feedback-ner {name}: interrupted{again}", file=sys.stderr)
                return 130
            except OSError as err:  # a path the file system refuses (read-only, full, not a folder): the user's
                if err.filename is None or err.errno not in _PATH_ERRNOS:
                    raise
                print(f"feedback-ner {name}: error: {err.filename}: {err.strerror}; choose another path (or free "
                      "space)", file=sys.stderr)
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
