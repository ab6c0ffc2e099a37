"""Ensemble weights (library): one weight per run, searched on out-of-fold word probabilities.

Runs meet at the word level (``[n_words, 15]`` per essay), so runs of different architectures and tokenizers average
directly. The objective of a weight vector is the competition macro F1 of ``submission_from_probs`` of the weighted
mean, on the essays every run has out-of-fold probabilities for. Optuna's seeded TPE searches it; equal weights and
each run alone are tried first, so the tuned weights never score below them on that data. The command is
``feedback_ner.ensemble``; the ensemble file it writes is :class:`artifacts.EnsembleSpec`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedback_ner.errors import FeedbackError, InvalidInputError
from feedback_ner.labels import NUM_LABELS
from feedback_ner.metric import SpanTable, score
from feedback_ner.postprocess import PostprocessConfig, candidate_spans, filter_spans

logger = logging.getLogger("feedback_ner.ensemble_weights")


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
        raise InvalidInputError(f"{', '.join(names)}: no essay is in every run's out-of-fold probabilities")
    for name, r in zip(names, runs, strict=True):
        if len(r) > len(ids):
            logger.info("%s: %d of its %d essays are shared by every run", name, len(ids), len(r))
    n_words = np.array([runs[0][k].shape[0] for k in ids], dtype=np.int64)
    for name, r in zip(names, runs, strict=True):
        for k, n in zip(ids, n_words, strict=True):
            a = r[k]
            if a.ndim != 2 or a.shape[0] != n or a.shape[1] != NUM_LABELS:
                raise InvalidInputError(
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


def write_ensemble_oof(path: Path, mean: dict[str, np.ndarray], runs: Sequence[Any],
                       postprocess: dict[str, Any] | None = None) -> Path:
    """The ensemble's OOF probabilities at ``path`` and each essay's fold (the first run's) at ``path.folds.csv``; a
    run whose split differs is warned about (a rescorer cross-fitted on mixed splits sees a little of each fold).
    ``postprocess`` (the ensemble's, what ``predict --ensemble`` decodes with) is kept in the file's meta, so that
    ``rescore``'s default route is that one."""
    from feedback_ner.files import atomic_write
    from feedback_ner.probs import save_word_probs
    from feedback_ner.tuning import essay_folds, folds_file_of

    ids = list(mean)
    fold_of = essay_folds(runs[0].oof, ids)
    for run in runs[1:]:
        try:
            other = essay_folds(run.oof, ids)
        except FeedbackError as err:
            logger.warning("%s: its split is not checked against %s (%s)", run.oof, runs[0].oof, err)
            continue
        differ = sum(other[i] != fold_of[i] for i in ids)
        if differ:
            logger.warning("%s: %d essay(s) are in another fold than in %s; the folds file follows %s",
                           run.oof, differ, runs[0].oof, runs[0].oof)
    meta: dict[str, Any] = {"ensemble_of": [str(r.oof) for r in runs]}
    if all(getattr(r, "fingerprint", None) for r in runs):  # whose probabilities (a rescorer trained on them says)
        meta["fingerprints"] = sorted({str(r.fingerprint) for r in runs})
    if postprocess is not None:
        meta["postprocess"] = postprocess
    save_word_probs(path, mean, meta=meta)
    folds = folds_file_of(path)
    table = pd.DataFrame({"id": ids, "fold": [fold_of[i] for i in ids]})
    atomic_write(folds, lambda tmp: table.to_csv(tmp, index=False))
    return folds
