"""Ensemble weights: one weight per run, searched on out-of-fold word probabilities, written as one JSON.

Runs meet at the word level (``[n_words, 15]`` per essay), so runs of different architectures and tokenizers average
directly. The objective of a weight vector is the competition macro F1 of ``submission_from_probs`` of the weighted
mean, on the essays every run has out-of-fold probabilities for. Optuna's seeded TPE searches it; equal weights and
each run alone are tried first, so the tuned weights never score below them on that data.

The ensemble file (``predict(ensemble=...)``, ``feedback_ner.predict --ensemble``)::

    {"models": [checkpoint folders], "weights": [one per folder], "postprocess": {...},
     "runs": [...], "scores": {...}}

A run's weight is split equally over its fold checkpoints, so prediction averages the folds of a run and weights
the runs. Folder paths are written relative to the JSON's folder (so runs and JSON move together, e.g. to Kaggle)
and read back the same way.

CLI: ``python -m feedback_ner.ensemble --oof runA/oof.npz runB/oof.npz --gt train.csv --models "runA/fold_*/model"
"runB/fold_*/model" --out ensemble.json [--trials 50] [--postprocess tuned.json] [--seed 42]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedback_ner.checkpoint import InferenceConfig
from feedback_ner.labels import NUM_LABELS
from feedback_ner.metric import SpanTable, score
from feedback_ner.postprocess import PostprocessConfig, candidate_spans, filter_spans
from feedback_ner.probs import load_word_probs
from feedback_ner.report import format_table

logger = logging.getLogger("feedback_ner.ensemble")

ENSEMBLE_KEYS = ("models", "weights", "postprocess", "runs", "scores")


@dataclass
class EnsembleSpec:
    """Checkpoint folders with one weight each, and the post-processing config (a dict, or None)."""

    models: list[Path]
    weights: list[float]
    postprocess: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def load_ensemble(source: str | os.PathLike | Mapping[str, Any]) -> EnsembleSpec:
    """An ensemble from its JSON file (relative folders resolved against the file's folder) or from a dict."""
    if isinstance(source, Mapping):
        data, base, where = dict(source), Path.cwd(), "ensemble"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ensemble file; write one with `python -m feedback_ner.ensemble`")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: corrupt JSON ({e.msg} at line {e.lineno}); write it again") from e
        base, where = path.parent, str(path)
    if not isinstance(data, dict):
        raise ValueError(f"{where}: an ensemble must be a JSON object with keys models, weights, postprocess")
    unknown = sorted(set(data) - set(ENSEMBLE_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known keys are {list(ENSEMBLE_KEYS)}")
    models, weights = data.get("models"), data.get("weights")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise ValueError(f"{where}: 'models' must be a non-empty list of checkpoint folders")
    if not isinstance(weights, list) or len(weights) != len(models):
        raise ValueError(f"{where}: 'weights' must be a list with one number per model folder ({len(models)})")
    try:
        weights = [float(w) for w in weights]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: 'weights' must be numbers; got {weights}") from None
    post = data.get("postprocess")
    if post is not None:
        PostprocessConfig.from_dict(post)  # validate now, with its own message
    folders = [Path(m) if Path(m).is_absolute() else base / m for m in models]
    extra = {k: data[k] for k in ("runs", "scores") if k in data}
    return EnsembleSpec(folders, weights, post, extra)


def save_ensemble(path: str | os.PathLike, spec: EnsembleSpec) -> Path:
    """Writes the ensemble JSON; folders are stored relative to its folder when they share a root."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    models = []
    for m in spec.models:
        m = Path(m).resolve()
        try:
            models.append(os.path.relpath(m, base))
        except ValueError:  # another drive on Windows
            models.append(str(m))
    data = {"models": models, "weights": [float(w) for w in spec.weights], "postprocess": spec.postprocess}
    data.update(spec.extra)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


@dataclass
class SharedProbs:
    """Out-of-fold probabilities of several runs on their shared essays: ``stack[r]`` is run r's ``[words, 15]``."""

    ids: list[str]
    offsets: np.ndarray
    stack: np.ndarray

    def mean(self, weights: Sequence[float]) -> dict[str, np.ndarray]:
        """Weighted mean (weights normalised) as ``{id: [n_words, 15]}``."""
        w = np.asarray(weights, dtype=np.float64)
        w = (w / w.sum()).astype(np.float32)
        flat = np.tensordot(w, self.stack, axes=1)
        return {k: flat[self.offsets[i] : self.offsets[i + 1]] for i, k in enumerate(self.ids)}


def shared_probs(runs: Sequence[Mapping[str, np.ndarray]], names: Sequence[str] | None = None) -> SharedProbs:
    """Aligns runs' word probabilities on the essays all of them have; word counts must agree."""
    names = list(names) if names is not None else [f"run {i}" for i in range(len(runs))]
    ids = sorted(set.intersection(*(set(r) for r in runs))) if runs else []
    if not ids:
        raise ValueError(f"{', '.join(names)}: no essay is in every run's out-of-fold probabilities")
    for name, r in zip(names, runs, strict=True):
        if len(r) > len(ids):
            logger.info("%s: %d of its %d essays are shared by every run", name, len(ids), len(r))
    n_words = np.array([runs[0][k].shape[0] for k in ids], dtype=np.int64)
    for name, r in zip(names, runs, strict=True):
        for k, n in zip(ids, n_words, strict=True):
            a = r[k]
            if a.ndim != 2 or a.shape[0] != n or a.shape[1] != NUM_LABELS:
                raise ValueError(
                    f"{name}: essay {k!r} has probabilities of shape {a.shape}, {names[0]} has ({n}, {NUM_LABELS}); "
                    "the runs were not made from the same essays"
                )
    offsets = np.concatenate([[0], np.cumsum(n_words)]).astype(np.int64)
    stack = np.stack([np.concatenate([r[k] for k in ids], axis=0).astype(np.float32, copy=False) for r in runs])
    return SharedProbs(ids, offsets, stack)


def ensemble_f1(shared: SharedProbs, weights: Sequence[float], gt: SpanTable | pd.DataFrame,
                postprocess: PostprocessConfig) -> float:
    """Macro F1 of the weighted mean's submission against ``gt`` (a DataFrame is cut to the shared essays)."""
    if isinstance(gt, pd.DataFrame):
        gt = gt[gt["id"].astype(str).isin(set(shared.ids))]
    sub = filter_spans(candidate_spans(shared.mean(weights)), postprocess)
    return score(sub[["id", "class", "predictionstring"]], gt).f1


@dataclass
class WeightSearch:
    """Result of :func:`tune_weights`: the normalised best weights and the comparison table."""

    weights: list[float]
    f1: float
    table: pd.DataFrame


def tune_weights(
    runs: Sequence[Mapping[str, np.ndarray]],
    gt: pd.DataFrame,
    postprocess: PostprocessConfig | None = None,
    trials: int = 50,
    seed: int = 42,
    names: Sequence[str] | None = None,
) -> WeightSearch:
    """Per-run weights maximising the OOF macro F1 of the weighted mean (seeded TPE, ``trials`` trials in all).

    The table has one row per run alone, the equal-weight mean and the tuned weights; columns: the weights, F1.
    """
    import optuna

    names = list(names) if names is not None else [f"run_{i}" for i in range(len(runs))]
    postprocess = postprocess or PostprocessConfig()
    shared = shared_probs(runs, names)
    gt = gt[gt["id"].astype(str).isin(set(shared.ids))]
    gt_class = "discourse_type" if "discourse_type" in gt.columns else "class"
    gt_table = SpanTable.from_frame(gt, class_column=gt_class, name="ground truth")
    n = len(runs)

    def objective(trial: optuna.Trial) -> float:
        w = [trial.suggest_float(f"w_{i}", 0.0, 1.0) for i in range(n)]
        if sum(w) <= 0:
            return 0.0
        return ensemble_f1(shared, w, gt_table, postprocess)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    starts = [np.ones(n)] + ([np.eye(n)[i] for i in range(n)] if n > 1 else [])
    for s in starts:
        study.enqueue_trial({f"w_{i}": float(v) for i, v in enumerate(s)})
    study.optimize(objective, n_trials=max(trials, len(starts)))
    best = np.array([study.best_trial.params[f"w_{i}"] for i in range(n)])
    best = best / best.sum()

    rows: dict[str, list[float]] = {}
    for i, name in enumerate(names):
        rows[f"{name} alone"] = list(np.eye(n)[i])
    rows["equal weights"] = list(np.full(n, 1.0 / n))
    rows["tuned"] = list(best)
    f1 = {k: ensemble_f1(shared, v, gt_table, postprocess) for k, v in rows.items()}
    table = pd.DataFrame(rows, index=[f"w_{name}" for name in names]).T
    table["F1"] = pd.Series(f1)
    table.index.name = f"{len(shared.ids)} shared essays"
    return WeightSearch([float(x) for x in best], float(f1["tuned"]), table)


def expand_models(pattern: str) -> list[Path]:
    """Checkpoint folders of one run: a glob pattern (``runA/fold_*/model``), a run folder or one folder."""
    from feedback_ner.predict import resolve_model_dirs

    folders = resolve_model_dirs([pattern])
    for f in folders:
        if not f.is_dir():
            raise FileNotFoundError(f"{f}: no such checkpoint folder; check --models")
    return folders


def read_gt(path: str | os.PathLike) -> pd.DataFrame:
    """Ground-truth rows (``id, discourse_type, predictionstring``) from a train.csv-shaped file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ground-truth file; pass the competition's train.csv")
    gt = pd.read_csv(path, dtype={"id": str})
    cls = "discourse_type" if "discourse_type" in gt.columns else "class"
    missing = [c for c in ("id", cls, "predictionstring") if c not in gt.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; need id, discourse_type, predictionstring")
    return gt


def make_parser() -> argparse.ArgumentParser:
    """Options of ``feedback_ner.ensemble``."""
    parser = argparse.ArgumentParser(
        prog="feedback_ner.ensemble",
        description="Find per-run ensemble weights on out-of-fold word probabilities (Optuna TPE) and write one "
        "ensemble JSON for feedback_ner.predict --ensemble.",
    )
    parser.add_argument("--oof", nargs="+", required=True, help="each run's oof.npz (runs/<name>/oof.npz)")
    parser.add_argument("--gt", required=True, help="ground truth: the competition's train.csv")
    parser.add_argument("--models", nargs="+", required=True,
                        help="each run's checkpoint folders as one quoted glob, same order as --oof "
                        "(\"runA/fold_*/model\"), or the run folder")
    parser.add_argument("--out", default="ensemble.json", help="ensemble JSON to write (default: ensemble.json)")
    parser.add_argument("--trials", type=int, default=50, help="Optuna trials (default: 50)")
    parser.add_argument("--postprocess", default=None,
                        help="post-processing JSON used in the search and written into the ensemble "
                        "(default: the first checkpoint's)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the TPE sampler (default: 42)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = make_parser().parse_args(argv)
    from feedback_ner.cli import setup_logging  # the one logging set-up of every command (issue 17)

    setup_logging()
    logging.getLogger("feedback_ner").setLevel(logging.INFO)
    try:
        if len(args.oof) != len(args.models):
            raise ValueError(f"--oof has {len(args.oof)} file(s) but --models {len(args.models)} pattern(s); "
                             "give one checkpoint pattern per run, in the same order")
        folders = [expand_models(m) for m in args.models]
        runs = [load_word_probs(p) for p in args.oof]
        names = [_run_name(p) for p in args.oof]
        if len(set(names)) < len(names):
            names = [str(p) for p in args.oof]
        if args.postprocess:
            post = PostprocessConfig.load(args.postprocess)
        else:
            first = InferenceConfig.load(folders[0][0]).postprocess
            post = PostprocessConfig.from_dict(first) if first is not None else PostprocessConfig()
        gt = read_gt(args.gt)
        result = tune_weights(runs, gt, post, trials=args.trials, seed=args.seed, names=names)
    except (FileNotFoundError, ValueError) as err:
        print(f"feedback_ner.ensemble: error: {err}", file=sys.stderr)
        return 2
    models, weights = [], []
    for run_folders, w in zip(folders, result.weights, strict=True):
        models += run_folders
        weights += [w / len(run_folders)] * len(run_folders)
    spec = EnsembleSpec(
        models, weights, post.to_dict(),
        extra={
            "runs": [{"oof": str(o), "models": m, "weight": w} for o, m, w in
                     zip(args.oof, args.models, result.weights, strict=True)],
            "scores": {str(k): float(v) for k, v in result.table["F1"].items()},
        },
    )
    path = save_ensemble(args.out, spec)
    print(format_table(result.table))
    print(f"\nwrote {path}: {len(models)} checkpoints, run weights "
          + ", ".join(f"{n} {w:.3f}" for n, w in zip(names, result.weights, strict=True))
          + f" (OOF macro F1 {result.f1:.4f})")
    return 0


def _run_name(path: str | os.PathLike) -> str:
    """``runs/deberta/oof.npz`` -> ``deberta`` (the run folder's name)."""
    p = Path(path)
    return p.parent.name if p.name == "oof.npz" and p.parent.name else p.stem


if __name__ == "__main__":
    sys.exit(main())
