"""Run comparison (library): every training run under some folders as one row — model, settings, epochs, CV — with
the settings that differ between runs marked, as a table and a PNG.

A run is a folder with ``cv.csv``, ``config.yaml`` and ``fold_*/metrics.json`` (what ``feedback_ner.train`` writes).
Per fold: the epochs trained (``epoch`` in metrics.json) and the best epoch (``best_epoch`` in metrics.json, else
the ``trainer_state.json`` log history, else ``?``). Training time: ``train_runtime`` summed over the folds when
the metrics or trainer state hold it (``time_source`` ``trainer``), else from file times: the run's
``config.yaml`` (written when training starts) to its last ``metrics.json`` (``time_source`` ``files``). The tuned
figure is the CV table's cross-fitted ``tuned`` column (what ``train`` printed); ``tuned_file`` is the run's
``oof.npz`` decoded with its ``postprocess.json`` (written by ``tune``: in-sample, tuned and scored on the same
essays); the rescored figure is the one ``rescore`` printed (``rescore/summary.json``; cross-fitted), left out with a
warning when the run has other folds now than the rescorer saw. ``tuned_file`` is scored against the run's
``data_dir`` ``train.csv``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from feedback_ner.artifacts import FINGERPRINT_FILE, oof_folds, stale_tuning
from feedback_ner.config import fingerprint, setting
from feedback_ner.corpus import load_train
from feedback_ner.errors import FeedbackError
from feedback_ner.labels import CLASSES
from feedback_ner.metric import score
from feedback_ner.postprocess import PostprocessConfig, submission_from_probs
from feedback_ner.probs import load_word_probs
from feedback_ner.report import save_figure

logger = logging.getLogger("feedback_ner.runtable")

# Settings always shown (when present); any other setting is shown when it differs between runs.
KEY_SETTINGS = (
    "learning_rate", "num_train_epochs", "max_length", "stride", "per_device_train_batch_size", "head",
    "lr_scheduler_type",
)
# Column headers of the PNG (the terminal and CSV keep the full names).
SHORT_NAMES = {
    "learning_rate": "lr", "num_train_epochs": "epochs cfg", "per_device_train_batch_size": "batch",
    "lr_scheduler_type": "schedule", "Concluding Statement": "Concl. Stmt", "Counterclaim": "Counter claim",
    "model_name_or_path": "model path",
}
# Settings that never make a difference to results (paths, logging).
IGNORED = {
    "output_dir", "run_name", "logging_dir", "cache_dir", "logging_steps", "report_to", "disable_tqdm",
    "dataloader_num_workers", "dataloader_pin_memory", "save_total_limit", "folds", "overwrite_output_dir",
}


@dataclass
class Run:
    """One run folder's row."""

    path: Path
    config: dict[str, Any]
    cv: pd.Series  # per class + macro (overall column of cv.csv)
    epochs: list[float | None] = field(default_factory=list)
    best_epochs: list[float | None] = field(default_factory=list)
    seconds: float | None = None
    time_source: str = ""
    tuned: float | None = None  # the CV table's cross-fitted tuned column
    tuned_file: float | None = None  # postprocess.json on the oof.npz, in-sample
    rescored: float | None = None


def _files_named(folder: Path, name: str) -> list[Path]:
    """Files called ``name`` at or below ``folder``, following linked folders (runs are often linked in from
    another disk) and visiting each real folder once."""
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        if name in files:
            found.append(Path(root) / name)
    return found


def find_runs(folders: list[str | os.PathLike]) -> list[Path]:
    """Every run folder at or below ``folders`` (a folder holding ``cv.csv`` and ``config.yaml``), sorted."""
    found: set[Path] = set()
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder; give folders holding training runs")
        for cv in _files_named(folder, "cv.csv"):
            if (cv.parent / "config.yaml").is_file():
                found.add(cv.parent)
    return sorted(found)


def find_configless(folders: list[str | os.PathLike]) -> list[Path]:
    """Folders at or below ``folders`` with a ``cv.csv`` but no ``config.yaml`` (not runs this table can describe:
    a deleted config, or a CV table copied elsewhere), sorted."""
    return sorted({cv.parent for folder in map(Path, folders) for cv in _files_named(folder, "cv.csv")
                   if not (cv.parent / "config.yaml").is_file()})


def config_edited(path: Path, config: dict[str, Any]) -> bool:
    """Whether a run's ``config.yaml`` no longer holds the settings it was trained with: its fingerprint differs
    from ``fingerprint.txt`` (written with it by ``train``). False when the run has no fingerprint file."""
    recorded = path / FINGERPRINT_FILE
    if not recorded.is_file():
        return False
    return fingerprint(config) != recorded.read_text(encoding="utf-8").strip()


def find_unfinished(folders: list[str | os.PathLike]) -> list[Path]:
    """Run folders at or below ``folders`` that training started but did not finish: a ``config.yaml`` and no
    ``cv.csv`` (``train`` writes cv.csv last), outside the finished runs; sorted."""
    finished = set(find_runs(folders))
    found: set[Path] = set()
    for folder in map(Path, folders):
        for config in _files_named(folder, "config.yaml"):
            run = config.parent
            if not (run / "cv.csv").is_file() and not any(p in finished for p in run.parents):
                found.add(run)
    return sorted(found)


def load_runs(folders: list[str | os.PathLike], data_dir: str | os.PathLike | None = None) -> list[Run]:
    """Every run under ``folders`` (see :func:`find_runs`), with the in-sample ``tuned_file`` score against
    ``data_dir``'s train.csv (default: each run's ``data_dir``; ``"none"`` skips it)."""
    gts: dict[tuple[str, bool], pd.DataFrame | None] = {}
    runs = []
    for path in find_runs(folders):
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
        data = data_dir or config.get("data_dir")
        key = (str(data), bool(config.get("skip_bad", False)))
        scored = (path / "postprocess.json").is_file()
        if scored and key not in gts:  # the corpus is read only for runs with a tuned postprocess.json
            gts[key] = _ground_truth(data, key[1])
        runs.append(load_run(path, gts.get(key), config))
    return runs


def _ground_truth(data: str | os.PathLike | None, skip_bad: bool) -> pd.DataFrame | None:
    """The kept train.csv rows as training read them (validated, classes stripped, the run's ``skip_bad``); None
    when there is no data folder, or a warning and None when it cannot be read (the tuned/rescored columns stay
    empty rather than scored against other rows)."""
    if not data or str(data) == "none" or not (Path(str(data)) / "train.csv").is_file():
        return None
    try:
        return load_train(data, skip_bad=skip_bad).elements
    except FeedbackError as err:
        logger.warning("tuned_file scores left out for runs on %s: %s", data, err)
        return None


def load_run(path: str | os.PathLike, gt: pd.DataFrame | None = None, config: dict[str, Any] | None = None) -> Run:
    """Read one run folder; ``gt`` (train.csv rows) lets the ``tuned_file`` score be computed; ``config``: its
    ``config.yaml`` when already read."""
    path = Path(path)
    config = config if config is not None else yaml.safe_load((path / "config.yaml").read_text()) or {}
    if config_edited(path, config):
        logger.warning("%s: config.yaml no longer matches the settings the run was trained with (fingerprint.txt): "
                       "its settings in this table are the edited ones; put the file back or re-train", path)
    cv_table = pd.read_csv(path / "cv.csv", index_col=0)
    cv = cv_table["overall"] if "overall" in cv_table.columns else cv_table.iloc[:, -1]
    run = Run(path, config, cv)
    if "tuned" in cv_table.columns and "macro" in cv_table.index:
        run.tuned = _num(cv_table.loc["macro", "tuned"])
    runtimes: list[float] = []
    fold_dirs = sorted(path.glob("fold_*"), key=lambda p: int(p.name.split("_")[1]) if p.name[5:].isdigit() else 0)
    last_mtime = None
    for fold_dir in fold_dirs:
        metrics_file = fold_dir / "metrics.json"
        if not metrics_file.is_file():
            continue
        metrics = json.loads(metrics_file.read_text())
        history = _history(fold_dir)
        run.epochs.append(_num(metrics.get("epoch")))
        run.best_epochs.append(_best_epoch(metrics, history))
        runtime = _num(metrics.get("train_seconds")) or _num(metrics.get("train_runtime")) or next(
            (_num(h["train_runtime"]) for h in history if "train_runtime" in h), None)
        if runtime is not None:
            runtimes.append(runtime)
        mtime = metrics_file.stat().st_mtime
        last_mtime = mtime if last_mtime is None else max(last_mtime, mtime)
    if runtimes and len(runtimes) == len(run.epochs):
        run.seconds, run.time_source = float(sum(runtimes)), "trainer"
    elif last_mtime is not None:
        run.seconds, run.time_source = last_mtime - (path / "config.yaml").stat().st_mtime, "files"
    if gt is not None:
        run.tuned_file = _tuned_file(path, gt)
    run.rescored = _rescored(path)
    return run


def _num(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _history(fold_dir: Path) -> list[dict[str, Any]]:
    for candidate in (fold_dir / "trainer_state.json", fold_dir / "model" / "trainer_state.json"):
        if candidate.is_file():
            try:
                return list(json.loads(candidate.read_text()).get("log_history", []))
            except (ValueError, AttributeError):
                return []
    return []


def _best_epoch(metrics: dict[str, Any], history: list[dict[str, Any]]) -> float | None:
    if _num(metrics.get("best_epoch")) is not None:
        return _num(metrics["best_epoch"])
    evals = [h for h in history if "eval_f1" in h and "epoch" in h]
    if evals:
        return float(max(evals, key=lambda h: h["eval_f1"])["epoch"])
    return None


def _tuned_file(path: Path, gt: pd.DataFrame) -> float | None:
    """The run's ``oof.npz`` decoded with its tuned ``postprocess.json``, macro F1 on its out-of-fold essays
    (in-sample: the file was tuned on them)."""
    if not (path / "oof.npz").is_file() or not (path / "postprocess.json").is_file():
        return None
    stale = stale_tuning(path / "postprocess.json", path / "oof.npz")
    if stale:
        logger.warning("%s: tuned_file left out (run feedback_ner.tune again)", stale)
        return None
    probs = load_word_probs(path / "oof.npz")
    sub = submission_from_probs(probs, PostprocessConfig.load(path / "postprocess.json"))
    return score(sub, gt[gt["id"].isin(set(probs))]).f1


def _rescored(path: Path) -> float | None:
    """The cross-fitted rescored macro F1 ``rescore --out RUN/rescore`` printed (its ``summary.json``); None, with a
    warning, when the run's ``oof.npz`` now holds other folds than the rescorer was fitted on."""
    summary_file = path / "rescore" / "summary.json"
    if not summary_file.is_file():
        return None
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        value = float(summary["f1"]["rescored (cross-fitted)"])
    except (ValueError, KeyError, TypeError, OSError):
        return None
    folds = summary.get("folds")
    if folds is not None and (path / "oof.npz").is_file():
        now = oof_folds(path / "oof.npz")
        if now and now != sorted(folds):
            logger.warning("%s: its rescorer was fitted on folds %s, the run now has %s: rescored figure left out "
                           "(run feedback_ner.rescore again)", path, folds, now)
            return None
    return value


def differing_settings(runs: list[Run]) -> list[str]:
    """Settings whose values are not the same in every run (a field left out is its default), in config order."""
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.config))
    out = []
    for key in keys:
        if key in IGNORED:
            continue
        values = {json.dumps(setting(run.config, key), sort_keys=True, default=str) for run in runs}
        if len(values) > 1:
            out.append(key)
    return out


def comparison_table(runs: list[Run]) -> tuple[pd.DataFrame, list[str]]:
    """One row per run, best CV first: model, settings (key ones and those that differ), epochs, best epochs,
    CV macro and per class, time, tuned and rescored scores. Returns the table and the differing setting names."""
    differ = differing_settings(runs) if len(runs) > 1 else []
    settings = [k for k in KEY_SETTINGS if any(k in r.config for r in runs)]
    settings += [k for k in differ if k not in settings and k != "model_name_or_path"]
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": str(run.path), "model": Path(str(run.config.get("model_name_or_path", "?"))).name}
        for key in settings:
            value = setting(run.config, key)  # config.yaml holds the non-default fields only
            row[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
        row["epochs"] = "/".join(_fmt_epoch(e) for e in run.epochs)
        row["best_epoch"] = "/".join(_fmt_epoch(e) for e in run.best_epochs)
        row["CV"] = float(run.cv.get("macro", np.nan))
        for cls in CLASSES:
            row[cls] = float(run.cv.get(cls, np.nan))
        row["time_s"] = None if run.seconds is None else round(run.seconds, 1)
        row["time_source"] = run.time_source
        row["tuned"] = run.tuned
        row["tuned_file"] = run.tuned_file
        row["rescored"] = run.rescored
        rows.append(row)
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values("CV", ascending=False, kind="stable").reset_index(drop=True)
    for col in ("tuned", "tuned_file", "rescored"):
        if col in table and table[col].isna().all():
            table = table.drop(columns=col)
    return table, [k for k in differ if k in table.columns or k == "model_name_or_path"]


def _fmt_epoch(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def table_png(table: pd.DataFrame, differ: list[str], path: str | os.PathLike, title: str = "runs") -> Path:
    """The comparison table as a PNG; cells of settings that differ between runs in bold on a tinted background,
    the best CV in bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = table.drop(columns=[c for c in ("run", "time_source") if c in table.columns])
    shown.insert(0, "run", [Path(r).name for r in table["run"]])
    bold_cols = {c for c in differ if c in shown.columns}
    if "model_name_or_path" in differ:
        bold_cols.add("model")
    cells = [[_cell(v, name) for v, name in zip(row, shown.columns)] for row in shown.itertuples(index=False)]
    fig_w = max(8.0, 0.95 * len(shown.columns))
    fig, ax = plt.subplots(figsize=(fig_w, 0.42 * (len(cells) + 2) + 0.6))
    ax.axis("off")
    ax.set_title(title + ("   (bold, tinted: settings that differ)" if bold_cols else ""), fontsize=10)
    labels = [SHORT_NAMES.get(c, c).replace(" ", "\n").replace("_", "_\n", 1) for c in shown.columns]
    tab = ax.table(cellText=cells, colLabels=labels, loc="center", cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(7.5)
    tab.scale(1, 1.35)
    for (r, c), cell in tab.get_celld().items():
        name = shown.columns[c]
        if r == 0:
            cell.set_height(cell.get_height() * 2)
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e8ecf1")
        elif name in bold_cols:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#fff2cc")
        elif name == "CV" and r == 1:
            cell.set_text_props(weight="bold")
    return save_figure(fig, path, dpi=120, maker="runs")


def _cell(value: Any, name: str = "") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if name == "time_s":
        return f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)
