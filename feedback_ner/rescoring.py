"""The second stage (issue 13): rescore candidate spans with LightGBM, decode by score, cross-fitted honestly.

Word probabilities -> :func:`span_features.make_candidates` -> :func:`span_features.features` -> a LightGBM
binary model (label: the candidate matches a ground truth of its class by the competition's overlap rule) ->
:func:`decode`: per essay and class, candidates by descending score above the class's threshold, one dropped when
it overlaps an already taken span by more than ``overlap`` of its own length.

Cross-fitting (:func:`cross_fit`): fold k's candidates are scored by a model trained on the other folds only, and
fold k's thresholds are tuned on scores of the other folds' essays that themselves come from models trained
without fold k (nested), so nothing about fold k's ground truth reaches fold k's spans. The final
:class:`Rescorer` is trained on every fold; its thresholds are tuned on the cross-fitted scores.

A :class:`Rescorer` is a folder: ``model.txt`` (one binary model with the class as a categorical feature) or
``model_<class>.txt`` (one per class), in LightGBM's own text format, and ``rescorer.json`` (thresholds, overlap,
feature list, candidate settings incl. span-length limits, whether the features used the essays' texts).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedback_ner.errors import FeedbackError
from feedback_ner.files import atomic_write
from feedback_ner.labels import CLASSES
from feedback_ner.metric import GT_CLASS_COLUMNS, SpanTable, match_counts
from feedback_ner.postprocess import SUBMISSION_COLUMNS, predictionstrings
from feedback_ner.span_features import (
    CATEGORICAL,
    FEATURES,
    CandidateConfig,
    Candidates,
    Words,
    candidate_labels,
    features,
    make_candidates,
    stack_words,
)

logger = logging.getLogger("feedback_ner.rescoring")

CONFIG_FILE = "rescorer.json"  # artifacts.RESCORER_FILE names it for modules that do not load LightGBM
FORMAT_VERSION = 1
DEFAULT_OVERLAP = 0.15
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)
LGB_PARAMS: dict[str, Any] = {
    "objective": "binary", "learning_rate": 0.1, "num_leaves": 31, "max_depth": -1, "min_data_in_leaf": 40,
    "max_bin": 63, "feature_fraction": 0.7, "bagging_fraction": 0.7, "bagging_freq": 1, "lambda_l1": 1.0,
    "lambda_l2": 5.0, "verbosity": -1,
    # one thread: on a shared or small machine OpenMP threads spin against each other (20x slower measured on
    # 2 busy cores); more with train_model(threads=...), rescore --threads
    "num_threads": 1,
}
MAX_ROUNDS = 500
EARLY_STOPPING = 20
HOLDOUT_SHARE = 0.15  # of the training essays: the held-out candidates that stop boosting early


@dataclass
class CandidateSet:
    """Everything the model sees for a corpus: stacked words, candidates, features, labels (None unlabelled)."""

    words: Words
    cand: Candidates
    x: np.ndarray
    y: np.ndarray | None = None


def build_set(
    word_probs: Mapping[str, np.ndarray], config: CandidateConfig, texts: Mapping[str, str] | None = None,
    gt: pd.DataFrame | None = None,
) -> CandidateSet:
    """Candidates and features of every essay (and labels when ``gt`` is given)."""
    words = stack_words(word_probs, texts)
    cand = make_candidates(words, config)
    x = features(words, cand)
    y = candidate_labels(words, cand, gt) if gt is not None else None
    return CandidateSet(words, cand, x, y)


# --- the model ------------------------------------------------------------------------------------------------


def _lgb():
    import lightgbm

    return lightgbm


def train_model(
    x: np.ndarray, y: np.ndarray, essay: np.ndarray, class_id: np.ndarray, per_class: bool = False, seed: int = 0,
    threads: int = 1,
) -> dict[str, Any]:
    """LightGBM binary model(s): ``{"all": booster}`` (class as a categorical feature) or one per class present.

    Boosting stops early on the candidates of a random ``HOLDOUT_SHARE`` of the essays (grouped, so one essay's
    near-identical candidates are never on both sides).
    """
    lgb = _lgb()
    rng = np.random.default_rng(seed)
    essays = np.unique(essay)
    held = np.isin(essay, rng.choice(essays, size=max(1, int(len(essays) * HOLDOUT_SHARE)), replace=False))
    if len(essays) < 2:
        held[:] = False
    params = {**LGB_PARAMS, "seed": seed, "num_threads": threads}
    groups = {"all": np.ones(len(y), bool)} if not per_class else {
        CLASSES[c]: class_id == c for c in np.unique(class_id)}
    models: dict[str, Any] = {}
    for name, rows in groups.items():
        fit, stop = rows & ~held, rows & held
        if y[fit].min(initial=1) == y[fit].max(initial=0):  # one label only: a constant model
            models[name] = float(y[rows].mean()) if rows.any() else 0.0
            continue
        cat = [FEATURES.index(c) for c in CATEGORICAL] if not per_class else []
        train = lgb.Dataset(x[fit], y[fit], feature_name=list(FEATURES), categorical_feature=cat, free_raw_data=True)
        kwargs: dict[str, Any] = {}
        if stop.any() and 0 < y[stop].sum() < stop.sum():
            valid = lgb.Dataset(x[stop], y[stop], reference=train)
            kwargs = {"valid_sets": [valid], "callbacks": [lgb.early_stopping(EARLY_STOPPING, verbose=False)]}
        models[name] = lgb.train(params, train, num_boost_round=MAX_ROUNDS, **kwargs)
    return models


def predict_scores(models: Mapping[str, Any], x: np.ndarray, class_id: np.ndarray) -> np.ndarray:
    """The models' probability that each candidate is a match."""
    out = np.zeros(len(x), np.float64)
    if len(x) == 0:
        return out
    for name, model in models.items():
        rows = np.ones(len(x), bool) if name == "all" else class_id == CLASSES.index(name)
        if not rows.any():
            continue
        if isinstance(model, float):
            out[rows] = model
        else:
            out[rows] = model.predict(x[rows], num_iteration=model.best_iteration or None)
    return out


# --- decoding and thresholds -----------------------------------------------------------------------------------


def decode(
    cand: Candidates, scores: np.ndarray, thresholds: Mapping[str, float] | float = 0.0,
    overlap: float = DEFAULT_OVERLAP,
) -> np.ndarray:
    """Rows of ``cand`` kept: per (essay, class), by descending score above the threshold, skipping a candidate
    whose overlap with an already kept span exceeds ``overlap`` of its own length. Vectorised in rounds: each round
    keeps the best remaining candidate of every group and removes what overlaps it.

    Greedy by score, so the spans kept with a higher threshold are exactly those kept with a lower one that pass
    it (:func:`tune_thresholds` relies on it).
    """
    thr = np.array([thresholds.get(c, 1.0) for c in CLASSES] if isinstance(thresholds, Mapping)
                   else [float(thresholds)] * len(CLASSES))
    alive = np.flatnonzero(scores >= thr[cand.class_id]) if len(cand) else np.zeros(0, np.int64)
    alive = alive[np.lexsort((-scores[alive], cand.class_id[alive], cand.essay[alive]))]
    group = cand.essay[alive].astype(np.int64) * len(CLASSES) + cand.class_id[alive]
    kept = []
    while alive.size:
        first = np.concatenate([[True], group[1:] != group[:-1]])
        best = alive[first]
        kept.append(best)
        seg = np.cumsum(first) - 1
        bs, be = cand.start[best][seg], cand.end[best][seg]
        s, e = cand.start[alive], cand.end[alive]
        inter = np.maximum(np.minimum(e, be) - np.maximum(s, bs), 0)
        survive = ~first & (inter <= overlap * (e - s))
        alive, group = alive[survive], group[survive]
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)


def submission(words: Words, cand: Candidates, rows: np.ndarray) -> pd.DataFrame:
    """The kept candidates as a submission ``id, class, predictionstring`` (essay-local word indices)."""
    sub = cand.take(rows)
    base = words.offsets[sub.essay]
    ids = np.array(words.ids, dtype=object)[sub.essay] if len(sub) else np.zeros(0, object)
    return pd.DataFrame({
        "id": ids, "class": np.array(CLASSES, dtype=object)[sub.class_id],
        "predictionstring": predictionstrings(sub.start - base, sub.end - base),
    }, columns=SUBMISSION_COLUMNS)


def _gt_span_table(gt: pd.DataFrame, ids: Sequence[str]) -> SpanTable | None:
    class_column = next((c for c in GT_CLASS_COLUMNS if c in gt.columns), None)
    gt = gt[gt["id"].astype(str).isin(set(ids))]
    if gt.empty or class_column is None:
        return None
    return SpanTable.from_frame(gt.assign(id=gt["id"].astype(str)), class_column=class_column, name="ground truth")


def tune_thresholds(
    words: Words, cand: Candidates, scores: np.ndarray, gt: pd.DataFrame, overlap: float = DEFAULT_OVERLAP,
    grid: np.ndarray = THRESHOLD_GRID,
) -> dict[str, float]:
    """Per class, the threshold of ``grid`` with the best F1 of :func:`decode` against ``gt`` (ties: the lower;
    classes absent from the ground truth or without candidates keep 0.5)."""
    out = {c: 0.5 for c in CLASSES}
    table = _gt_span_table(gt, words.ids)
    if table is None or len(cand) == 0:
        return out
    rows = decode(cand, scores, float(grid.min()), overlap)
    local = cand.take(rows).frame(words)
    kept_scores = scores[rows]
    present = {table.class_names[c] for c in np.unique(table.cls)}
    for cls in CLASSES:
        if cls not in present:
            continue
        mine = np.flatnonzero(local["class"].to_numpy() == cls)
        best_f1, best_t = -1.0, 0.5
        for t in grid:
            sel = mine[kept_scores[mine] >= t]
            pred = SpanTable.from_arrays(local["id"].to_numpy()[sel], local["class"].to_numpy()[sel],
                                         local["start"].to_numpy()[sel], local["end"].to_numpy()[sel])
            f1 = float(match_counts(pred, table)["F1"].get(cls, 0.0))
            if f1 > best_f1:
                best_f1, best_t = f1, float(t)
        out[cls] = best_t
    return out


# --- cross-fitting ---------------------------------------------------------------------------------------------


@dataclass
class CrossFit:
    """Cross-fitted results: out-of-fold scores, the thresholds each fold was decoded with, the kept rows, and
    the models that scored each fold (trained without it)."""

    scores: np.ndarray
    thresholds: dict[int, dict[str, float]]
    kept: np.ndarray
    fold_of_candidate: np.ndarray
    models: dict[int, dict[str, Any]] = field(default_factory=dict)


def _oof_scores(
    data: CandidateSet, fold: np.ndarray, folds: Sequence[int], per_class: bool, seed: int, threads: int,
    models_out: dict[int, dict[str, Any]] | None = None,
) -> np.ndarray:
    """Scores of the candidates of ``folds``, each fold scored by a model trained on the others of ``folds``."""
    scores = np.full(len(data.cand), np.nan)
    models_out = {} if models_out is None else models_out
    for k in folds:
        train = np.isin(fold, [f for f in folds if f != k])
        test = fold == k
        if not test.any():
            continue
        if not train.any():
            raise FeedbackError(f"fold {k}: no candidates in the other folds to train the rescorer on")
        models = train_model(data.x[train], data.y[train], data.cand.essay[train], data.cand.class_id[train],
                             per_class, seed, threads)
        scores[test] = predict_scores(models, data.x[test], data.cand.class_id[test])
        models_out[k] = models
    return scores


def cross_fit(
    data: CandidateSet, fold_of_essay: np.ndarray, gt: pd.DataFrame, per_class: bool = False,
    overlap: float = DEFAULT_OVERLAP, nested: bool = True, seed: int = 0, threads: int = 1,
) -> CrossFit:
    """Cross-fitted scores and spans of every fold (see the module docstring). ``fold_of_essay`` per ``Words.ids``.

    ``nested=False`` tunes fold k's thresholds on the other folds' out-of-fold scores (K models instead of K*K;
    those scores come from models that saw fold k, a small leak). With 2 folds the nested scores come from the
    other fold's essays split in two halves.
    """
    if data.y is None:
        raise FeedbackError("cross-fitting needs labelled candidates (a ground truth)")
    fold = np.asarray(fold_of_essay)[data.cand.essay]
    folds = sorted(int(f) for f in np.unique(fold_of_essay))
    if len(folds) < 2:
        raise FeedbackError(f"cross-fitting needs at least 2 folds; the essays are all in fold(s) {folds}")
    fold_models: dict[int, dict[str, Any]] = {}
    scores = _oof_scores(data, fold, folds, per_class, seed, threads, fold_models)
    thresholds: dict[int, dict[str, float]] = {}
    kept = []
    for k in folds:
        others = [f for f in folds if f != k]
        if nested:  # inner folds: the other folds, or with only one other fold its essays split in two
            inner_fold = fold if len(others) > 1 else np.where(np.isin(fold, others), data.cand.essay % 2, -1)
            inner_folds = others if len(others) > 1 else [0, 1]
            inner = _oof_scores(data, inner_fold, inner_folds, per_class, seed, threads)
        else:
            inner = scores
        rows = np.flatnonzero(np.isin(fold, others))
        ids_others = [i for i, f in zip(data.words.ids, fold_of_essay, strict=True) if f != k]
        thresholds[k] = tune_thresholds(data.words, data.cand.take(rows), inner[rows],
                                        gt[gt["id"].astype(str).isin(set(ids_others))], overlap)
        mine = np.flatnonzero(fold == k)
        kept.append(mine[decode(data.cand.take(mine), scores[mine], thresholds[k], overlap)])
        logger.info("fold %d: thresholds %s", k, thresholds[k])
    kept_rows = np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)
    return CrossFit(scores, thresholds, kept_rows, fold, fold_models)


# --- the saved rescorer ----------------------------------------------------------------------------------------


@dataclass
class Rescorer:
    """A trained second stage: model(s), per-class thresholds, overlap, candidate settings, the feature list."""

    models: dict[str, Any]
    thresholds: dict[str, float]
    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    overlap: float = DEFAULT_OVERLAP
    uses_texts: bool = True
    features: tuple[str, ...] = FEATURES
    # the probabilities it learned from: {"oof": path, "fingerprints": [run fingerprints]} (oofruns.oof_fingerprints)
    trained_on: dict[str, Any] = field(default_factory=dict)

    def spans(self, word_probs: Mapping[str, np.ndarray], texts: Mapping[str, str] | None = None) -> pd.DataFrame:
        """Word probabilities (and the essays' texts, when trained with them) -> submission."""
        if self.uses_texts and texts is None:
            raise FeedbackError("this rescorer was trained with the essays' texts (paragraph/sentence features); "
                                "pass the texts")
        data = build_set(word_probs, self.candidates, texts if self.uses_texts else None)
        scores = predict_scores(self.models, data.x, data.cand.class_id)
        return submission(data.words, data.cand, decode(data.cand, scores, self.thresholds, self.overlap))

    def save(self, folder: str | os.PathLike) -> Path:
        """Writes the folder: LightGBM text model(s) and ``rescorer.json`` (written last)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for name, model in self.models.items():
            file = "model.txt" if name == "all" else f"model_{name.replace(' ', '_')}.txt"
            if isinstance(model, float):
                files[name] = {"constant": model}
                continue
            text = model.model_to_string()
            atomic_write(folder / file, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
            files[name] = {"file": file}
        meta = {
            "version": FORMAT_VERSION, "models": files, "thresholds": self.thresholds, "overlap": self.overlap,
            "candidates": self.candidates.to_dict(), "uses_texts": self.uses_texts, "features": list(self.features),
        }
        if self.trained_on:
            meta["trained_on"] = self.trained_on
        text = json.dumps(meta, indent=2) + "\n"
        return atomic_write(folder / CONFIG_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Rescorer:
        """Reads a folder written by :meth:`save`; a missing or corrupt file is a one-line :class:`FeedbackError`."""
        folder = Path(folder)
        path = folder / CONFIG_FILE
        if not folder.is_dir():
            raise FeedbackError(f"{folder}: no such rescorer folder (written by feedback_ner.rescore --out)")
        if not path.is_file():
            inside = sorted(p.parent.name for p in folder.glob(f"*/{CONFIG_FILE}"))
            if inside or (folder / "oof.npz").is_file():  # a run folder (rescore --out RUN/rescore) or a parent
                hint = f"its rescorer is {folder / inside[0]}" if inside else "run feedback_ner.rescore on its oof.npz"
                raise FeedbackError(f"{folder}: not a rescorer folder (no {CONFIG_FILE}); {hint}")
            raise FeedbackError(f"{path}: missing; the rescorer folder is incomplete, run feedback_ner.rescore again")
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            version, files = int(meta["version"]), dict(meta["models"])
            thresholds = {str(k): float(v) for k, v in meta["thresholds"].items()}
            candidates = CandidateConfig(**meta["candidates"])
            names = tuple(meta["features"])
            trained_on = dict(meta.get("trained_on") or {})
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise FeedbackError(f"{path}: corrupt rescorer settings ({type(err).__name__}: {err}); "
                                "run feedback_ner.rescore again") from None
        if version > FORMAT_VERSION:
            raise FeedbackError(f"{path}: format version {version} is newer than this package reads; upgrade it")
        if names != FEATURES:
            raise FeedbackError(f"{path}: trained on another feature list ({len(names)} features, this package "
                                f"computes {len(FEATURES)}); retrain it with feedback_ner.rescore")
        lgb = _lgb()
        models: dict[str, Any] = {}
        for name, entry in files.items():
            if "constant" in entry:
                models[name] = float(entry["constant"])
                continue
            file = folder / str(entry.get("file"))
            if not file.is_file():
                raise FeedbackError(f"{file}: missing model file of the rescorer; run feedback_ner.rescore again")
            try:
                models[name] = lgb.Booster(model_str=file.read_text(encoding="utf-8"))
            except (lgb.basic.LightGBMError, UnicodeDecodeError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise FeedbackError(f"{file}: corrupt LightGBM model ({first}); run feedback_ner.rescore again") \
                    from None
            if models[name].num_feature() != len(FEATURES):
                raise FeedbackError(f"{file}: model has {models[name].num_feature()} features, expected "
                                    f"{len(FEATURES)}; run feedback_ner.rescore again")
        return cls(models, thresholds, candidates, float(meta.get("overlap", DEFAULT_OVERLAP)),
                   bool(meta.get("uses_texts", True)), names, trained_on)


def fit_rescorer(
    data: CandidateSet, config: CandidateConfig, thresholds: Mapping[str, float], per_class: bool = False,
    overlap: float = DEFAULT_OVERLAP, uses_texts: bool = True, seed: int = 0, threads: int = 1,
) -> Rescorer:
    """The final rescorer: a model trained on every candidate of ``data`` with the given thresholds."""
    if data.y is None:
        raise FeedbackError("training the rescorer needs labelled candidates (a ground truth)")
    models = train_model(data.x, data.y, data.cand.essay, data.cand.class_id, per_class, seed, threads)
    return Rescorer(models, dict(thresholds), config, overlap, uses_texts)
