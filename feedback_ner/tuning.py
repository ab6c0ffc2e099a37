"""Tuning of the post-processing (:class:`PostprocessConfig`) on out-of-fold word probabilities, with Optuna
(library; the command is ``feedback_ner.tune``).

The search is coordinate-wise. The macro F1 is the mean of per-class F1s, and a class's F1 depends only on that
class's own parameters (``min_words``, ``proba_thresh``, and with rules ``one_per_essay``, ``join_adjacent``) and
on the two shared rule parameters (``fill_gaps``, ``join_gap``). So a round is one Optuna study per ground-truth
class, scoring only that class's candidate spans (cheap, and 2-4 dimensions instead of one joint ~30-dimensional
study), then, with rules on, one study of the shared parameters on the macro F1. Another round follows only if the
shared parameters changed. Every study gets the current config as its first (enqueued) trial, and its best trial
replaces the current values only when strictly better, so the result never scores below the start on this data.

The candidate spans (:func:`postprocess.candidate_spans`) are decoded once; a trial runs only
:func:`postprocess.filter_spans` and the array path of the metric (``metric.SpanTable.from_arrays``).

Studies and resuming: with a storage (e.g. ``sqlite:///tune.db``) each study is saved under
``<study>/<rules|no-rules>/round<r>/<class or shared>/<context>``, where the context is the fixed part of the
config it searched under; running the same command again continues each study up to ``n_trials`` (trial numbers
go on, finished studies are reused as they are), and a study made on other data is refused. The CLI keeps its
studies by default in a SQLite file beside ``--out`` (``<out>.optuna.db``), so an interrupted run resumes by
re-running it; ``--storage memory`` keeps them in memory. The TPE samplers are seeded; a resumed study draws from
a fresh sampler, so its later trials differ from those of an uninterrupted run with the same seed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from tqdm.auto import tqdm

from feedback_ner.errors import FeedbackError
from feedback_ner.labels import CLASSES
from feedback_ner.metric import GT_CLASS_COLUMNS, SpanTable, match_counts
from feedback_ner.postprocess import (
    SUBMISSION_COLUMNS,
    PostprocessConfig,
    candidate_spans,
    filter_spans,
    submission_from_probs,
)
from feedback_ner.probs import load_meta

logger = logging.getLogger("feedback_ner.tune")

MAX_FILL_GAPS = 4  # fill_gaps searched in 0..4 O words
MAX_JOIN_GAP = 8  # join_gap searched in 0..8 O words
MIN_WORDS_HIGH = 40  # min_words searched in 1..max(40, 3 * start value)
DEFAULT_ROUNDS = 2
REPORT_COLUMNS = [f"{m} {w}" for m in ("TP", "FP", "FN", "F1") for w in ("before", "after")]
_DATA_ATTR = "feedback_ner_data"  # user attr of every study: fingerprint of the candidates and ground truth


class _Scorer:
    """Scores configs on fixed candidate spans against a fixed ground truth, for one class or all of them."""

    def __init__(self, candidates: pd.DataFrame, gt: pd.DataFrame, class_column: str) -> None:
        self.candidates = candidates
        self.gt = SpanTable.from_frame(gt, class_column=class_column, name="ground truth")
        present = set(gt[class_column])
        self.classes = [c for c in CLASSES if c in present]
        self.class_candidates = {c: candidates[candidates["class"] == c] for c in self.classes}
        self.class_gt = {
            c: SpanTable.from_frame(gt[gt[class_column] == c], class_column=class_column, name=f"ground truth ({c})")
            for c in self.classes
        }
        digest = hashlib.sha1()
        digest.update(pd.util.hash_pandas_object(candidates, index=False).to_numpy().tobytes())
        digest.update(pd.util.hash_pandas_object(gt[["id", class_column, "predictionstring"]], index=False)
                      .to_numpy().tobytes())
        self.fingerprint = digest.hexdigest()

    def table(self, config: PostprocessConfig) -> pd.DataFrame:
        """Per ground-truth class: TP, FP, FN, F1 of ``config`` (all classes)."""
        return match_counts(_span_table(filter_spans(self.candidates, config, with_predictionstring=False)), self.gt)

    def class_f1(self, cls: str, config: PostprocessConfig) -> float:
        """F1 of class ``cls`` under ``config`` (the same as its row of :meth:`table`, for a fraction of the work)."""
        kept = filter_spans(self.class_candidates[cls], config, with_predictionstring=False)
        return float(match_counts(_span_table(kept), self.class_gt[cls])["F1"].iloc[0])

    def macro_f1(self, config: PostprocessConfig) -> float:
        return float(self.table(config)["F1"].mean())


def _span_table(kept: pd.DataFrame) -> SpanTable:
    return SpanTable.from_arrays(kept["id"].to_numpy(), kept["class"].to_numpy(), kept["start"], kept["end"])


# --- the two kinds of study: one class's parameters, and the shared rule parameters ---------------------------


def _class_params(config: PostprocessConfig, cls: str, rules: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"min_words": config.min_words[cls], "proba_thresh": config.proba_thresh[cls]}
    if rules:
        params["one_per_essay"] = cls in config.one_per_essay
        params["join_adjacent"] = cls in config.join_adjacent
    return params


def _with_class_params(config: PostprocessConfig, cls: str, params: Mapping[str, Any]) -> PostprocessConfig:
    def toggled(names: list[str], on: bool) -> list[str]:
        return [c for c in CLASSES if (c == cls and on) or (c != cls and c in names)]

    return replace(
        config,
        min_words={**config.min_words, cls: int(params["min_words"])},
        proba_thresh={**config.proba_thresh, cls: float(params["proba_thresh"])},
        one_per_essay=toggled(config.one_per_essay, params.get("one_per_essay", cls in config.one_per_essay)),
        join_adjacent=toggled(config.join_adjacent, params.get("join_adjacent", cls in config.join_adjacent)),
    )


def _suggest_class(trial: optuna.Trial, cls: str, start: PostprocessConfig, rules: bool) -> dict[str, Any]:
    # bounds depend on the start only (not on the current config), so a resumed study keeps its search space
    params: dict[str, Any] = {
        "min_words": trial.suggest_int("min_words", 1, max(MIN_WORDS_HIGH, 3 * start.min_words[cls])),
        "proba_thresh": trial.suggest_float("proba_thresh", 0.0, 1.0),
    }
    if rules:
        params["one_per_essay"] = trial.suggest_categorical("one_per_essay", [False, True])
        params["join_adjacent"] = trial.suggest_categorical("join_adjacent", [False, True])
    return params


def _shared_params(config: PostprocessConfig) -> dict[str, Any]:
    return {"fill_gaps": config.fill_gaps, "join_gap": config.join_gap}


def _suggest_shared(trial: optuna.Trial, start: PostprocessConfig) -> dict[str, Any]:
    return {
        "fill_gaps": trial.suggest_int("fill_gaps", 0, max(MAX_FILL_GAPS, start.fill_gaps)),
        "join_gap": trial.suggest_int("join_gap", 0, max(MAX_JOIN_GAP, start.join_gap)),
    }


def _shared_grid_size(start: PostprocessConfig) -> int:
    return (max(MAX_FILL_GAPS, start.fill_gaps) + 1) * (max(MAX_JOIN_GAP, start.join_gap) + 1)


def _context_key(values: Mapping[str, Any]) -> str:
    """A short stable name for the fixed part of the config a study searched under."""
    return hashlib.sha1(repr(sorted(values.items())).encode()).hexdigest()[:10]


# --- running one study -----------------------------------------------------------------------------------------


class _Runner:
    """Opens, continues and reads the studies of one tuning run (shared storage, naming, seeds, progress bar)."""

    def __init__(
        self, storage: str | optuna.storages.BaseStorage | None, study_name: str, fingerprint: str, seed: int,
        show_progress: bool, log_level: int = logging.INFO,
    ) -> None:
        self.storage = optuna.storages.get_storage(storage) if isinstance(storage, str) else storage
        self.study_name = study_name
        self.fingerprint = fingerprint
        self.seed = seed
        self.n_studies = 0
        self.log_level = log_level  # of the per-round lines: DEBUG when tuning is one step of cross-fitting
        self.bar = tqdm(total=0, desc="tune", unit="trial", disable=None if show_progress else True)

    def run(
        self,
        name: str,
        first: dict[str, Any],
        n_trials: int,
        objective: Callable[[optuna.Trial], float],
    ) -> optuna.Study:
        """Continues (or starts) study ``name`` up to ``n_trials`` finished trials, ``first`` as its first trial."""
        full_name = f"{self.study_name}/{name}"
        # distinct seeds: studies of the same shape must not propose the same sequence
        sampler = optuna.samplers.TPESampler(seed=self.seed + 1000 * self.n_studies)
        self.n_studies += 1
        study = optuna.create_study(
            study_name=full_name, storage=self.storage, sampler=sampler, direction="maximize", load_if_exists=True
        )
        made_on = study.user_attrs.get(_DATA_ATTR)
        if made_on is None:
            study.set_user_attr(_DATA_ATTR, self.fingerprint)
        elif made_on != self.fingerprint:
            raise ValueError(
                f"study {full_name!r} in the storage was made on other out-of-fold probabilities or ground truth; "
                "pass another study name (--study) or delete the storage to start over"
            )
        done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        remaining = n_trials - done
        if remaining > 0:
            study.enqueue_trial(first, skip_if_exists=True)
            self.bar.total += remaining
            self.bar.refresh()
            study.optimize(objective, n_trials=remaining, callbacks=[lambda *_: self.bar.update()])
        return study

    def close(self) -> None:
        self.bar.close()


def _best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max(trials, key=lambda t: (t.value, -t.number)) if trials else None


def _cached(evaluate: Callable[[tuple], float]) -> Callable[[tuple], float]:
    """TPE proposes the same discrete point again and again; score each point once."""
    cache: dict[tuple, float] = {}

    def get(key: tuple) -> float:
        if key not in cache:
            cache[key] = evaluate(key)
        return cache[key]

    return get


def _tune_class(
    runner: _Runner, scorer: _Scorer, cls: str, current: PostprocessConfig, start: PostprocessConfig,
    round_no: int, rules: bool, n_trials: int,
) -> PostprocessConfig:
    """One class's study, the other parameters held at ``current``; returns the (possibly) improved config."""
    keys = list(_class_params(current, cls, rules))
    score_of = _cached(lambda values: scorer.class_f1(cls, _with_class_params(current, cls, dict(zip(keys, values)))))

    def objective(trial: optuna.Trial) -> float:
        return score_of(tuple(_suggest_class(trial, cls, start, rules).values()))

    # a class's F1 depends on its own parameters and on the shared ones only: they name the study's context
    context = f"fill{current.fill_gaps}-gap{current.join_gap}"
    slug = cls.replace(" ", "_")
    study = runner.run(f"round{round_no}/{slug}/{context}", _class_params(current, cls, rules), n_trials, objective)
    before = scorer.class_f1(cls, current)
    best = _best(study)
    if best is None or best.value <= before:
        logger.log(runner.log_level, "round %d %s: F1 %.4f kept", round_no, cls, before)
        return current
    params = _tidy(best.params, best.value, lambda p: scorer.class_f1(cls, _with_class_params(current, cls, p)))
    logger.log(runner.log_level, "round %d %s: F1 %.4f -> %.4f %s", round_no, cls, before, best.value, params)
    return _with_class_params(current, cls, params)


def _tidy(params: dict[str, Any], value: float, evaluate: Callable[[dict[str, Any]], float]) -> dict[str, Any]:
    """Rounds ``proba_thresh`` to 2 or 3 decimals when that scores the same, for a readable JSON."""
    for digits in (2, 3):
        rounded = {**params, "proba_thresh": round(float(params["proba_thresh"]), digits)}
        if evaluate(rounded) >= value:
            return rounded
    return dict(params)


def _tune_shared(
    runner: _Runner, scorer: _Scorer, current: PostprocessConfig, start: PostprocessConfig, round_no: int,
    n_trials: int,
) -> PostprocessConfig:
    """The study of ``fill_gaps`` and ``join_gap`` on the macro F1, every class's parameters held at ``current``."""
    score_of = _cached(lambda values: scorer.macro_f1(replace(current, fill_gaps=values[0], join_gap=values[1])))

    def objective(trial: optuna.Trial) -> float:
        p = _suggest_shared(trial, start)
        return score_of((p["fill_gaps"], p["join_gap"]))

    fixed = {k: v for k, v in current.to_dict().items() if k not in ("fill_gaps", "join_gap")}
    n = min(n_trials, _shared_grid_size(start))  # a small grid: more trials would only repeat points
    study = runner.run(f"round{round_no}/shared/{_context_key(fixed)}", _shared_params(current), n, objective)
    before = scorer.macro_f1(current)
    best = _best(study)
    if best is None or best.value <= before:
        logger.log(runner.log_level, "round %d shared rules: macro F1 %.4f kept (%s)", round_no, before,
                   _shared_params(current))
        return current
    logger.log(runner.log_level, "round %d shared rules: macro F1 %.4f -> %.4f %s", round_no, before, best.value,
               best.params)
    return replace(current, fill_gaps=int(best.params["fill_gaps"]), join_gap=int(best.params["join_gap"]))


# --- the public function ---------------------------------------------------------------------------------------


def restrict_gt(gt: pd.DataFrame, essay_ids: list[str]) -> tuple[pd.DataFrame, str]:
    """The ground-truth rows of ``essay_ids`` (as strings) and the name of its class column."""
    class_column = next((c for c in GT_CLASS_COLUMNS if c in gt.columns), None)
    missing = [c for c in ("id", "predictionstring") if c not in gt.columns]
    missing += [] if class_column else ["discourse_type"]
    if missing:
        raise ValueError(
            f"ground truth lacks column(s) {missing}; it needs id, discourse_type (or class) and predictionstring, "
            "as train.csv has"
        )
    gt = gt.assign(id=gt["id"].astype(str))
    wanted = set(essay_ids)
    kept = gt[gt["id"].isin(wanted)].reset_index(drop=True)
    if kept.empty:
        raise ValueError(
            f"none of the {len(wanted)} essays of the word probabilities occurs in the ground truth "
            f"({len(gt)} rows, column id); are the probabilities and the ground truth from the same data?"
        )
    unlabelled = len(wanted - set(kept["id"]))
    if unlabelled:
        logger.warning(
            "%d of %d essays have no ground-truth row; every span predicted in them counts as a false positive",
            unlabelled, len(wanted),
        )
    return kept, class_column


def tune(
    word_probs: Mapping[str, np.ndarray],
    gt: pd.DataFrame,
    n_trials: int = 200,
    seed: int = 0,
    start: PostprocessConfig | None = None,
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
    *,
    rules: bool = True,
    rounds: int = DEFAULT_ROUNDS,
    show_progress: bool = False,
    verbose: bool = True,
) -> tuple[PostprocessConfig, pd.DataFrame]:
    """Tunes the post-processing on ``word_probs`` (out-of-fold) against ``gt`` (train.csv rows; restricted to
    the essays of ``word_probs``), starting from ``start`` (default: :class:`PostprocessConfig` defaults).

    ``n_trials`` is per study: each class's study in each round, and the shared-rules study (capped at its grid
    size). ``rules=False`` searches only ``min_words`` and ``proba_thresh`` and keeps ``start``'s rules. With a
    ``storage`` (Optuna URL), studies are kept under ``study_name`` (default ``tune-<data fingerprint>``) and
    resumed by a later call. Returns the tuned config (never worse than ``start`` on this data) and the per-class
    report: ``TP/FP/FN/F1 before/after`` (``REPORT_COLUMNS``), one row per ground-truth class and ``macro``
    (TP/FP/FN summed, F1 the macro mean). ``verbose=False`` logs the per-round lines at DEBUG, not INFO (the results
    are the same).
    """
    if n_trials < 1:
        raise ValueError(f"n_trials={n_trials}: use at least 1 trial per study")
    if rounds < 1:
        raise ValueError(f"rounds={rounds}: use at least 1 round")
    if not word_probs:
        raise ValueError("no word probabilities to tune on (the out-of-fold file is empty)")
    start = start if start is not None else PostprocessConfig()
    gt, class_column = restrict_gt(gt, [str(k) for k in word_probs])
    scorer = _Scorer(candidate_spans(word_probs), gt, class_column)
    if study_name is None:
        study_name = f"tune-{scorer.fingerprint[:10]}"
    level = logging.INFO if verbose else logging.DEBUG
    logger.log(
        level, "tuning on %d essays, %d candidate spans, %d ground-truth rows; study %r",
        len(word_probs), len(scorer.candidates), len(gt), study_name,
    )
    runner = _Runner(storage, f"{study_name}/{'rules' if rules else 'no-rules'}", scorer.fingerprint, seed,
                     show_progress, level)
    current = start
    try:
        for round_no in range(1, rounds + 1):
            for cls in scorer.classes:
                if scorer.class_candidates[cls].empty:
                    logger.log(level, "%s: no candidate span, nothing to tune", cls)
                    continue
                current = _tune_class(runner, scorer, cls, current, start, round_no, rules, n_trials)
            if not rules:
                break  # the classes' studies are independent of each other: another round would repeat them
            shared_before = _shared_params(current)
            current = _tune_shared(runner, scorer, current, start, round_no, n_trials)
            if _shared_params(current) == shared_before:
                break  # the classes were tuned under these very shared parameters
    finally:
        runner.close()
    before, after = scorer.table(start), scorer.table(current)
    if after["F1"].mean() < before["F1"].mean():  # cannot happen by construction; guard the promise anyway
        logger.warning("tuned config scored below the start (%.4f < %.4f); keeping the start",
                       after["F1"].mean(), before["F1"].mean())
        current, after = start, before
    return current, before_after(before, after)


def before_after(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per-class ``TP/FP/FN/F1 before/after`` from two :func:`metric.match_counts` tables, plus a ``macro`` row."""
    out = pd.DataFrame(index=before.index)
    for metric in ("TP", "FP", "FN", "F1"):
        out[f"{metric} before"] = before[metric]
        out[f"{metric} after"] = after[metric].reindex(before.index)
    macro = {c: out[c].sum() for c in out.columns if not c.startswith("F1")}
    macro.update({"F1 before": before["F1"].mean(), "F1 after": after["F1"].mean()})
    out.loc["macro"] = pd.Series(macro)
    for c in out.columns:
        out[c] = out[c].astype(float if c.startswith("F1") else np.int64)
    out.index.name = "class"
    return out[REPORT_COLUMNS]


def display_table(report: pd.DataFrame) -> pd.DataFrame:
    """The report as ``before -> after`` text cells, for :func:`report.format_table`."""
    cells = pd.DataFrame(index=report.index)
    for metric in ("TP", "FP", "FN", "F1"):
        b, a = report[f"{metric} before"], report[f"{metric} after"]
        if metric == "F1":
            cells[metric] = [f"{x:.4f} -> {y:.4f}" for x, y in zip(b, a, strict=True)]
            cells["change"] = [f"{y - x:+.4f}" for x, y in zip(b, a, strict=True)]
        else:
            cells[metric] = [f"{x} -> {y}" for x, y in zip(b, a, strict=True)]
    return cells


def check_words_cover(word_probs: dict[str, np.ndarray], gt: pd.DataFrame, where: str,
                      skip_bad: bool = False) -> pd.DataFrame:
    """``gt`` after checking that every element of ``word_probs``' essays lies within their words: otherwise the
    probabilities and the ground truth are from different corpora (or a cut file) and every figure would be
    silently low. With ``skip_bad`` (a run trained so: its bad rows were skipped) such rows are left out, counted."""
    mine = gt["id"].astype(str).isin(set(map(str, word_probs))).to_numpy()
    rows = gt[mine]
    last = rows["predictionstring"].astype(str).map(lambda v: max(map(int, v.split()), default=-1))
    n_words = rows["id"].astype(str).map(lambda i: len(word_probs[i]))
    beyond = np.flatnonzero((last >= n_words).to_numpy())
    if len(beyond) and skip_bad:
        logger.warning("%s: skipped %d ground-truth rows beyond their essay's words (skip_bad)", where, len(beyond))
        keep = np.ones(len(gt), bool)
        keep[np.flatnonzero(mine)[beyond]] = False
        return gt[keep]
    if len(beyond):
        i = int(beyond[0])
        raise FeedbackError(
            f"{where}: essay {rows['id'].iat[i]!r} has {n_words.iat[i]} words of probabilities but its ground truth "
            f"reaches word {last.iat[i]} ({len(beyond)} elements beyond their essay's words); are the probabilities "
            "and the ground truth from the same corpus? (a run trained with skip_bad: pass --skip-bad)")
    return gt


def chart_path(out: str | os.PathLike) -> Path:
    """Where the CLI saves the before/after chart: beside the JSON, ``<name>.png``."""
    return Path(out).with_suffix(".png")


# --- folds and cross-fitting -----------------------------------------------------------------------------------


def folds_file_of(oof: str | os.PathLike) -> Path:
    """Where ``ensemble --oof-out`` writes the folds of an ensemble's OOF file: ``<oof>.folds.csv``."""
    oof = Path(oof)
    return oof.with_name(oof.name.removesuffix(".npz") + ".folds.csv")


def essay_folds(oof: str | os.PathLike, ids: list[str], folds_file: str | os.PathLike | None = None) -> dict[str, int]:
    """The fold of each essay of an out-of-fold file, from the most direct record there is.

    1. ``folds_file`` when given: a CSV with ``id`` and ``fold`` (the prepared data's ``folds.csv``, or any split).
    2. Otherwise the run's per-fold files ``fold_<k>/oof.npz`` beside ``oof``: each holds exactly the essays that
       fold's model did not see (``max_essays`` subsets and skipped folds included), which a fold column
       recomputed from the data would not know.
    3. An ensemble's OOF file (``ensemble --oof-out``) has its folds beside it (:func:`folds_file_of`).
    Every essay of ``ids`` must get a fold.
    """
    oof = Path(oof)
    fold_of: dict[str, int] = {}
    if folds_file is None and not any(oof.parent.glob("fold_*/oof.npz")) and folds_file_of(oof).is_file():
        folds_file = folds_file_of(oof)
    if folds_file is not None:
        path = Path(folds_file)
        if not path.is_file():
            raise FeedbackError(f"{path}: no such folds file; pass a CSV with columns id,fold (e.g. folds.csv of "
                                "the prepared data)")
        try:
            table = pd.read_csv(path, dtype={"id": str})
            fold_of = dict(zip(table["id"].astype(str), table["fold"].astype(int), strict=True))
        except (KeyError, ValueError, pd.errors.ParserError) as err:
            raise FeedbackError(f"{path}: not a folds CSV with columns id,fold ({err})") from None
        source = str(path)
    else:
        files = sorted(oof.parent.glob("fold_*/oof.npz"))
        if not files:
            raise FeedbackError(
                f"{oof}: cannot tell the fold of each essay (no fold_<k>/oof.npz beside it, as a training run has); "
                "pass --folds FILE, a CSV with columns id,fold such as the prepared data's folds.csv")
        for file in files:
            fold = load_meta(file).get("fold", file.parent.name.removeprefix("fold_"))
            with np.load(file, allow_pickle=False) as data:
                fold_of.update({str(i): int(fold) for i in data["ids"]})
        source = f"{oof.parent}/fold_*/oof.npz"
    missing = [i for i in ids if i not in fold_of]
    if missing:
        raise FeedbackError(f"{len(missing)} essay(s) of {oof} have no fold in {source}, e.g. {missing[0]!r}; "
                            "pass --folds FILE with the split the run was trained on")
    return {i: fold_of[i] for i in ids}


def cross_fit_tune(
    word_probs: Mapping[str, np.ndarray], gt: pd.DataFrame, fold_of: Mapping[str, int], **kwargs: Any,
) -> tuple[pd.DataFrame, dict[int, PostprocessConfig]]:
    """Honest tuning: for each fold k, :func:`tune` on the other folds' essays and apply it to fold k's.

    Returns the cross-fitted submission of every essay and the config each fold was decoded with. ``kwargs`` go to
    :func:`tune` (``n_trials``, ``seed``, ``start``, ``rules``, ``rounds``, ``storage``; ``verbose`` is False unless
    given: one INFO line per fold, the studies' rounds at DEBUG).
    """
    kwargs.setdefault("verbose", False)
    folds = sorted(set(fold_of.values()))
    if len(folds) < 2:
        raise FeedbackError(f"cross-fitted tuning needs at least 2 folds; the essays are all in fold(s) {folds}")
    subs, configs = [], {}
    for k in folds:
        train = {i: p for i, p in word_probs.items() if fold_of[str(i)] != k}
        test = {i: p for i, p in word_probs.items() if fold_of[str(i)] == k}
        known = set(gt["id"].astype(str))
        if not any(str(i) in known for i in train):
            raise FeedbackError(f"fold {k}: none of the other folds' essays has a ground truth to tune on")
        configs[k], report = tune(train, gt, **kwargs)
        subs.append(submission_from_probs(test, configs[k]) if test else None)
        logger.info("fold %d: tuned on the other folds' %d essays (macro F1 %.4f -> %.4f there), applied to its %d",
                    k, len(train), report.loc["macro", "F1 before"], report.loc["macro", "F1 after"], len(test))
    frames = [s for s in subs if s is not None]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SUBMISSION_COLUMNS), configs


def storage_url(value: str | None, out: Path) -> str | None:
    """The Optuna storage of the command: None (in memory), a URL, or a SQLite URL for a plain file path.

    A PostgreSQL URL needs a driver (psycopg2 or psycopg); without one it is a one-line error before any work.
    """
    if value == "memory":
        return None
    if value is None:
        return f"sqlite:///{out.resolve().with_suffix('.optuna.db')}"
    if "://" not in value:
        return f"sqlite:///{Path(value).resolve()}"
    if value.startswith(("postgresql", "postgres")):
        dialect = value.split("://", 1)[0]
        driver = dialect.split("+", 1)[1] if "+" in dialect else "psycopg2"
        module = {"psycopg2": "psycopg2", "psycopg": "psycopg", "pg8000": "pg8000"}.get(driver, driver)
        import importlib.util

        if importlib.util.find_spec(module) is None:
            raise FeedbackError(
                f"--storage {dialect}://...: the PostgreSQL driver {module!r} is not installed; "
                f"pip install {'psycopg2-binary' if module == 'psycopg2' else module} (or use a sqlite:/// URL)")
    return value
