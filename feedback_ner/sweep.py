"""``python -m feedback_ner.sweep --config C.yaml --space sweeps/<name>.yaml --n-trials N [--storage URL]
[--study NAME] [--folds 0] [--out DIR]``: an Optuna sweep (the library is ``feedback_ner.search``).

Re-running the same command continues the study until it has N finished trials; several workers (processes or
machines) on one storage and study name share the work. A study belongs to one configuration and space: a re-run
whose settings would change trial values (config, flags, the space, --folds) stops before any trial and says what
changed; n_trials, seeds, logging and output paths may change. At the end it prints the best trials and saves
``trials.csv``, Optuna's plots and ``best.yaml``, which ``python -m feedback_ner.train --config <out>/best.yaml``
accepts as it is.
"""

from __future__ import annotations

import logging
import sys
import time

import optuna
import pandas as pd

from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.report import format_table
from feedback_ner.search import FINISHED, TRIALS_FILE, SweepOptions, run_sweep


def make_parser() -> ArgumentParser:
    """Options of a sweep worker; any other ``--<config field> value`` overrides the config for every trial."""
    parser = ArgumentParser(
        prog="feedback-ner sweep",
        description="Optuna sweep of training, data (max_length, stride) and head settings. Re-running continues "
        "the study; several workers (processes or machines) can share one study. Any config field can be "
        "overridden as a flag (e.g. --data_dir DIR); flags belong to the base config and so to best.yaml, while "
        "plain values in the space file are for the search only.",
    )
    parser.add_argument("--config", required=True, help="Base training config YAML (the fields not swept).")
    parser.add_argument("--space", required=True, help="Search-space YAML (sweeps/<name>.yaml).")
    parser.add_argument("--n-trials", type=int, default=4, help="Finished trials the study should have (all workers "
                        "together; re-running continues up to this number). Default 4.")
    parser.add_argument("--storage", default=None, help="Optuna storage URL: sqlite:///path.db (default "
                        "sqlite:///<out>/sweeps.db) or postgresql://user:pw@host/db (pip install -e .[postgres]).")
    parser.add_argument("--study", default=None, help="Study name (default <config stem>-<space stem>); workers "
                        "with the same storage and study name share the study.")
    parser.add_argument("--folds", nargs="+", type=int, default=[0], help="Folds a trial trains and is scored on "
                        "(mean of their best eval_f1). Default 0.")
    parser.add_argument("--out", default=None, help="Folder for trials.csv, plots and best.yaml "
                        "(default sweeps_out/<study>).")
    parser.add_argument("--pruner", default="median", choices=("median", "none"),
                        help="Prune trials whose epoch eval_f1 is below the median of earlier trials. Default median.")
    parser.add_argument("--prune-warmup", type=int, default=2, help="Evaluations (epochs) of a trial before it can "
                        "be pruned. Default 2.")
    parser.add_argument("--seed", type=int, default=None, help="Sampler seed (default random; give each worker of "
                        "a shared study its own seed for reproducible draws).")
    parser.add_argument("--heartbeat", type=int, default=30, help="Seconds between trial heartbeats; a trial with "
                        "no heartbeat for 2x this is failed (its worker died) and retried once. Default 30.")
    parser.add_argument("--top", type=int, default=10, help="Trials shown in the printed table. Default 10.")
    return parser


def format_trials(table: pd.DataFrame) -> str:
    """The trials table as aligned text (floats rounded for reading)."""
    shown = table.copy()
    for col in shown.columns:
        if col != "eval_f1" and pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    return format_table(shown)


class _QuietInterrupt(logging.Filter):
    """Drops Optuna's "Trial N failed ... KeyboardInterrupt" record (and its traceback) and what Optuna logs after
    it: the trial is stored as failed, and the command says in one line that it was interrupted and resumes."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupted = False

    def filter(self, record: logging.LogRecord) -> bool:
        kind = record.exc_info[0] if record.exc_info else None
        self.interrupted |= kind is not None and issubclass(kind, KeyboardInterrupt)
        return not self.interrupted


@command("sweep")
def main(argv: list[str] | None = None) -> int:
    """Run (or join, or continue) a sweep and print its best trials."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    known, flags = parser.parse_known_args(argv)
    setup_logging()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line per trial says what Optuna's would
    for handler in logging.getLogger("optuna").handlers:  # Ctrl-C: the command's one line, not Optuna's traceback
        handler.filters = [f for f in handler.filters if not isinstance(f, _QuietInterrupt)] + [_QuietInterrupt()]
    start = time.time()
    opts = SweepOptions(
        config=known.config, space=known.space, n_trials=known.n_trials, storage=known.storage, study=known.study,
        folds=known.folds, out=known.out, pruner=known.pruner, prune_warmup=known.prune_warmup, seed=known.seed,
        heartbeat=known.heartbeat, flags=flags,
    )
    result = run_sweep(opts)
    table = result.trials
    finished = table[table["state"].isin(FINISHED)] if not table.empty else table
    pruned = int((table["state"] == "PRUNED").sum()) if not table.empty else 0
    print(f"\nstudy {opts.study!r}: {len(finished)} finished trials ({pruned} pruned); best {known.top}:")
    if not finished.empty:
        print(format_trials(finished.head(known.top)))
    if result.best_config is not None:
        best = result.study.best_trial
        print(f"\nbest: trial {best.number}, eval_f1 {best.value:.4f}, params {best.params}")
    for note in result.notes:
        print(f"note: {note}")
    saved = [f"{opts.out}/{TRIALS_FILE}", f"{opts.out}/*.png"] + ([str(result.best_config)] if result.best_config
                                                                   else [])
    print(f"saved: {', '.join(saved)}")
    if result.best_config is not None:
        print(f"train the best: python -m feedback_ner.train --config {result.best_config}")
    print(f"done in {(time.time() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
