"""Command: compare training runs. ``python -m feedback_ner.runs DIR [DIR ...] [--png runs.png] [--csv runs.csv]``.

Every run found under the folders becomes one row (best CV first); settings that differ between runs carry a
``*`` on the terminal and are bold in the PNG. See :mod:`feedback_ner.runtable`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.errors import FeedbackError
from feedback_ner.files import check_distinct_outputs, check_output
from feedback_ner.labels import CLASSES
from feedback_ner.report import format_table
from feedback_ner.runtable import comparison_table, find_configless, find_unfinished, load_runs, table_png

UNFINISHED_SHOWN = 5  # names of unfinished run folders printed


def make_parser() -> ArgumentParser:
    """Options of ``feedback_ner.runs``."""
    parser = ArgumentParser(
        prog="feedback_ner.runs",
        description="One row per training run found under the folders, best CV first, differing settings marked.",
    )
    parser.add_argument("folders", nargs="+", metavar="DIR", help="folders holding run folders (searched below)")
    parser.add_argument("--png", default="runs.png", help="PNG of the table to write (default: runs.png)")
    parser.add_argument("--csv", default=None, help="also write the table as CSV")
    parser.add_argument("--data", default=None, help="Kaggle folder for the tuned_file scores (a run's tuned "
                        "postprocess.json on its oof.npz, in-sample; default: each run's data_dir); `--data none` "
                        "skips them. The tuned column is the CV table's (cross-fitted), rescored rescore's")
    return parser


@command("runs")
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = make_parser().parse_args(argv)
    setup_logging()
    check_distinct_outputs({"--png": args.png, "--csv": args.csv})
    check_output(args.png, "--png", kind="png:runs")  # never over a file of the user's (a run's cv.csv, train.csv)
    check_output(args.csv, "--csv", kind="csv:run")
    if args.data not in (None, "none") and not (Path(args.data) / "train.csv").is_file():
        raise FeedbackError(f"--data {args.data}: no train.csv there; give the Kaggle folder the runs trained on, "
                            "or --data none to leave the tuned_file column out")
    try:
        runs = load_runs(args.folders, args.data)
    except FileNotFoundError as err:
        raise FeedbackError(str(err)) from None
    if not runs:
        unfinished = find_unfinished(args.folders)
        note = f" ({len(unfinished)} unfinished: config.yaml but no cv.csv yet)" if unfinished else ""
        raise FeedbackError(f"no run (a folder with cv.csv and config.yaml) under {' '.join(args.folders)}{note}")
    table, differ = comparison_table(runs)
    shown = table.drop(columns=["time_source"]).copy()
    shown["run"] = [Path(r).name for r in shown["run"]]
    scores = {"CV", "tuned", "tuned_file", "rescored", *CLASSES}
    for column in [c for c in shown.columns if c not in scores and pd.api.types.is_float_dtype(shown[c])]:
        # settings and seconds as written (5 epochs, 0.0003), not as scores with 4 decimals (5.0000, 0.0003)
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:g}")
    marked = {c: f"{c}*" for c in differ if c in shown.columns}
    if "model_name_or_path" in differ:
        marked["model"] = "model*"
    print(format_table(shown.set_index("run").rename(columns=marked), index_name="run"))
    sources = set(table["time_source"]) - {""}
    print(f"\n{len(table)} run(s); * = setting that differs between runs; time_s from "
          f"{' and '.join(sorted(sources)) or 'nowhere'} (trainer = train_runtime, files = file times)")
    configless = find_configless(args.folders)
    if configless:
        print(f"left out {len(configless)} folder(s) with cv.csv but no config.yaml (not runs train wrote, or their "
              f"config was deleted): {_some([str(p) for p in configless])}")
    unfinished = find_unfinished(args.folders)
    if unfinished:
        print(f"left out {len(unfinished)} unfinished run folder(s) (config.yaml but no cv.csv yet): "
              f"{_some([p.name for p in unfinished])}")
    _write(args.png, "--png", lambda: table_png(table, differ, args.png, title=f"{len(table)} runs, best CV first"))
    print(f"wrote {args.png}")
    if args.csv:
        csv = Path(args.csv)

        def write_csv() -> None:
            csv.parent.mkdir(parents=True, exist_ok=True)  # as --png's folder is made
            table.to_csv(csv, index=False)

        _write(csv, "--csv", write_csv)
        print(f"wrote {args.csv}")
    return 0


def _some(names: list[str]) -> str:
    """The first :data:`UNFINISHED_SHOWN` names, and how many more."""
    more = f", ... ({len(names) - UNFINISHED_SHOWN} more)" if len(names) > UNFINISHED_SHOWN else ""
    return ", ".join(names[:UNFINISHED_SHOWN]) + more


def _write(path: str | Path, option: str, write: Callable[[], object]) -> None:
    """Runs ``write``; an ``OSError`` (a path :func:`files.check_output` could not foresee) becomes one line."""
    try:
        write()
    except OSError as err:
        raise FeedbackError(f"{option} {path}: cannot write it ({err.strerror or err}); choose another path") from None


if __name__ == "__main__":
    sys.exit(main())
