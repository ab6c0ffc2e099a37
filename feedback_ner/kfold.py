"""The k-fold driver (library): train every fold of one config, keep each fold's best epoch, build the CV table.

The command is ``feedback_ner.train``. Per fold it keeps the best epoch by the competition F1 and
writes, under ``<output_dir>/fold_<k>/``: ``model/`` (best checkpoint: model, tokenizer, ``feedback_ner.json``),
``oof.npz`` (out-of-fold word probabilities) and ``metrics.json``. It ends with a CV table (per class and macro,
per fold and overall) saved as ``cv.csv`` and ``cv.png``. Running it again resumes: finished folds are skipped and
an interrupted fold continues from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from accelerate import PartialState
from transformers import AutoConfig, PreTrainedTokenizerBase

from feedback_ner.artifacts import (
    FINGERPRINT_FILE,
    LABELS_FILE,
    POSTPROCESS_FILE,
    RUN_CONFIG_FILE,
    InferenceConfig,
    oof_folds,
)
from feedback_ner.config import (
    DataArguments,
    FeedbackTrainingArguments,
    ModelArguments,
    to_flat_dict,
)
from feedback_ner.config import fingerprint as config_fingerprint
from feedback_ner.errors import FeedbackError
from feedback_ner.files import atomic_write, file_sha1, folder_lock
from feedback_ner.metric import score
from feedback_ner.modelcard import best_epoch, write_fold_card, write_run_card
from feedback_ner.modeling import build_model, encoder_config, load_tokenizer, resolve_model_path
from feedback_ner.oofruns import run_meta
from feedback_ner.postprocess import PostprocessConfig, submission_from_probs
from feedback_ner.postprocess_defaults import learn_postprocess
from feedback_ner.preflight import (  # noqa: F401 (METRICS_FILE, OOF_FILE: the run folder's names, also kfold's)
    DATA_FILE,
    METRICS_FILE,
    MODEL_FILE,
    OOF_FILE,
    check_data_dir,
    check_data_unchanged,
    check_fold_postprocess,
    check_fold_settings,
    check_model,
    check_model_unchanged,
    check_run_dir,
    data_digest,
    finished_folds,
    last_good_checkpoint,
    model_digest,
    rescorer_folders,
)
from feedback_ner.probs import load_word_probs, save_word_probs
from feedback_ner.report import bar_chart
from feedback_ner.tokens import TokenCache
from feedback_ner.trainer import (
    EpochProgressCallback,
    EvalLogCallback,
    FeedbackTrainer,
    KeepBestAndLastCallback,
    TrainingClock,
)

# imported with the module, not where it is used: optuna's import sets its logger to INFO, which must happen before
# cli.setup_logging quiets it (else the tuned column logs a line per trial)
from feedback_ner.tuning import cross_fit_tune
from feedback_ner.windows import FeedbackCollator, pad_multiple_for, tokenize_windows
from feedback_ner.wordtable import load_word_table

logger = logging.getLogger("feedback_ner.kfold")

BASELINE_POSTPROCESS = "baseline"  # postprocess value naming the public baseline's table
SPELLING_DONE = "feedback_ner.normalized_spelling"  # DataFrame.attrs key: this word table is normalised already
SPELLING_SAMPLE = 1000  # essays whose tokens the normalize_spelling log line counts (cheap on a full corpus)


@dataclass
class FoldData:
    """The windows and tables of one fold: train on the other folds, evaluate on this one."""

    train: Any
    eval: Any
    eval_table: pd.DataFrame
    eval_gt: pd.DataFrame


def load_data(data_args: DataArguments, token_cache: TokenCache | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The word table (with folds) and the ground-truth rows, prepared once and cached (main process first).

    ``token_cache``: where the table must be built, the essays are tokenised into it in the background meanwhile.
    """
    check_data_dir(data_args)
    with PartialState().main_process_first():
        table, gt = load_word_table(
            data_args.data_dir,
            data_args.resolved_cache_dir,
            k=data_args.num_folds,
            seed=data_args.fold_seed,
            skip_bad=data_args.skip_bad,
            token_cache=token_cache,
        )
    if data_args.max_essays:
        keep = set(sorted(table["id"])[: data_args.max_essays])
        table = table[table["id"].isin(keep)].reset_index(drop=True)
        gt = gt[gt["id"].isin(keep)].reset_index(drop=True)
    return table, gt


def fold_data(
    table: pd.DataFrame,
    gt: pd.DataFrame,
    fold: int,
    tokenizer: PreTrainedTokenizerBase,
    data_args: DataArguments,
    max_length: int | None = None,
    stride: int | None = None,
    token_cache: TokenCache | None = None,
) -> FoldData:
    """Token windows for training (all other folds) and evaluation (this fold); ``token_cache`` (of ``tokenizer``)
    lets every fold reuse the essays' tokens. With ``normalize_spelling`` the windows (and the evaluation table) are
    those of the spelling-corrected texts (:func:`spelling_table`)."""
    max_length = max_length or data_args.max_length
    stride = data_args.stride if stride is None else stride
    table = spelling_table(table, data_args)
    train_table = table[table["fold"] != fold].reset_index(drop=True)
    eval_table = table[table["fold"] == fold].reset_index(drop=True)
    if len(eval_table) == 0 or len(train_table) == 0:
        present = sorted(int(k) for k in table["fold"].unique())
        cut = f"max_essays {data_args.max_essays} keeps {len(table)} essays; " if data_args.max_essays else ""
        raise FeedbackError(
            f"fold {fold} {'has no essays' if len(eval_table) == 0 else 'holds every essay'} (folds present: "
            f"{present}); {cut}give num_folds ({data_args.num_folds}) folds enough essays"
            f"{': raise max_essays or lower num_folds' if data_args.max_essays else ''}"
        )
    options = dict(
        label_all_subtokens=data_args.label_all_subtokens,
        keep_newlines=data_args.keep_newlines,
        num_proc=data_args.num_proc,
        cache_dir=data_args.resolved_cache_dir,
        token_cache=token_cache,
    )
    with PartialState().main_process_first():
        train_ds = tokenize_windows(train_table, tokenizer, max_length, stride, **options)
        eval_ds = tokenize_windows(
            eval_table, tokenizer, data_args.eval_max_length or max_length, stride, **options
        )
    eval_gt = gt[gt["id"].isin(set(eval_table["id"]))].reset_index(drop=True)
    return FoldData(train_ds, eval_ds, eval_table, eval_gt)


def spelling_table(table: pd.DataFrame, data_args: DataArguments) -> pd.DataFrame:
    """The word table as the model sees it: with ``normalize_spelling`` each essay's words corrected one to one
    (``spelling.normalize_table``: word counts, labels and folds unchanged), else ``table`` itself."""
    if not data_args.normalize_spelling or table.attrs.get(SPELLING_DONE):
        return table
    from feedback_ner.spelling import normalize_table

    fixed = normalize_table(table)[0]
    fixed.attrs[SPELLING_DONE] = True
    return fixed


def report_spelling(table: pd.DataFrame, normalised: pd.DataFrame, token_cache: TokenCache,
                    sample: int = SPELLING_SAMPLE) -> dict[str, float]:
    """Queue ``normalised``'s texts (:func:`spelling_table` of ``table``) for tokenising and log one line: the share of
    words changed and the sub-tokens per word before and after, on up to ``sample`` essays spread over the table."""
    from feedback_ner.spelling import figures_line, spelling_figures

    fixed = normalised["text"].tolist()
    token_cache.prefetch(fixed)
    rows = np.unique(np.linspace(0, len(fixed) - 1, min(sample, len(fixed))).astype(np.int64)) if fixed else []
    before = [table["text"].iat[i] for i in rows]
    after = [fixed[i] for i in rows]
    figures = spelling_figures(before, after, token_cache.arrays(before).n_tokens, token_cache.arrays(after).n_tokens)
    logger.info("%s", figures_line(figures))
    return figures


def make_model_init(model_args: ModelArguments):
    """``model_init(trial=None)`` for the Trainer (called after seeding, once per run or sweep trial)."""

    def model_init(trial: Any = None):
        params = getattr(trial, "params", None) or (trial if isinstance(trial, dict) else {})
        return build_model(
            model_args.model_name_or_path,
            head=params.get("head", model_args.head),
            classifier_dropout=params.get("classifier_dropout", model_args.classifier_dropout),
            multi_sample_dropout=params.get("multi_sample_dropout", model_args.multi_sample_dropout),
            rnn_hidden_size=model_args.rnn_hidden_size,
            attn_implementation=model_args.attn_implementation,
            head_hidden_size=params.get("head_hidden_size", model_args.head_hidden_size),
            head_activation=params.get("head_activation", model_args.head_activation),
        )

    return model_init


def load_postprocess(train_args: FeedbackTrainingArguments, train_gt: pd.DataFrame | None = None) -> PostprocessConfig:
    """The post-processing used in evaluation and best-epoch selection: a JSON file if given, ``baseline`` for the
    public baseline's table, else learned from the training spans ``train_gt`` (issue 14; the baseline table when
    they are not given)."""
    if train_args.postprocess == BASELINE_POSTPROCESS:
        return PostprocessConfig()
    if train_args.postprocess:
        return PostprocessConfig.load(train_args.postprocess)
    return learn_postprocess(train_gt) if train_gt is not None and len(train_gt) else PostprocessConfig()


def build_trainer(
    model_args: ModelArguments,
    data_args: DataArguments,
    train_args: FeedbackTrainingArguments,
    data: FoldData,
    tokenizer: PreTrainedTokenizerBase,
    postprocess: PostprocessConfig,
    log_prefix: str = "",
) -> FeedbackTrainer:
    """A ``FeedbackTrainer`` wired for one fold."""
    model_init = make_model_init(model_args)
    collator = make_collator(tokenizer, model_args.model_name_or_path)
    return FeedbackTrainer(
        model_init=model_init,
        args=train_args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        data_collator=collator,
        processing_class=tokenizer,
        eval_table=data.eval_table,
        eval_gt=data.eval_gt,
        postprocess=postprocess,
        subtoken_rule=data_args.subtoken_rule,
        packed=model_args.packed,
        callbacks=[EvalLogCallback(prefix=log_prefix), EpochProgressCallback(prefix=log_prefix)],
    )


def make_collator(tokenizer: PreTrainedTokenizerBase, model_name_or_path: str) -> FeedbackCollator:
    """The collator for a model: batches padded to the multiple its attention needs (Longformer, BigBird)."""
    config = encoder_config(AutoConfig.from_pretrained(resolve_model_path(model_name_or_path)))
    return FeedbackCollator(tokenizer, pad_to_multiple_of=pad_multiple_for(config))


def train_fold(
    model_args: ModelArguments,
    data_args: DataArguments,
    train_args: FeedbackTrainingArguments,
    fold: int,
    table: pd.DataFrame,
    gt: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    token_cache: TokenCache | None = None,
) -> dict[str, float]:
    """Train one fold (resuming from its last checkpoint), keep its best epoch, write model, OOF and metrics."""
    fold_dir = Path(train_args.output_dir) / f"fold_{fold}"
    run_name = f"{train_args.run_name or Path(train_args.output_dir).name}-fold{fold}"
    args = replace(train_args, output_dir=str(fold_dir), run_name=run_name)
    keep_last = args.save_total_limit == 1 and args.metric_for_best_model and args.save_strategy != "best"
    if keep_last:  # the rotation of limit 1 without the deletion of the last checkpoint at the end of train()
        args = replace(args, save_total_limit=None)
    # One config per run, learned from the spans of all its essays: predict, tune and inspect decode a run with
    # one config. (Its eval fold's span lengths take part: a label statistic, never a model output.)
    postprocess = load_postprocess(train_args, gt[gt["id"].isin(set(table["id"]))])
    data = fold_data(table, gt, fold, tokenizer, data_args, token_cache=token_cache)
    trainer = build_trainer(model_args, data_args, args, data, tokenizer, postprocess, log_prefix=f"fold {fold} | ")
    if keep_last:
        trainer.add_callback(KeepBestAndLastCallback())
    last = last_good_checkpoint(fold_dir, fold)
    if last:
        logger.info("fold %d: resuming from %s", fold, last)
    clock = TrainingClock(last)  # the fold's seconds across sessions (train_runtime: the last session's)
    trainer.add_callback(clock)
    trainer.train(resume_from_checkpoint=last)
    train_seconds = clock.seconds
    trainer.remove_callback(EvalLogCallback)  # the next evaluation re-scores the best epoch: no new log line
    evaluation = trainer.evaluate_words()  # the best epoch, reloaded by load_best_model_at_end
    metrics = evaluation.metrics
    logger.info("fold %d: best checkpoint reloaded, eval_f1 %.4f", fold, metrics["eval_f1"])
    if trainer.is_world_process_zero():
        model_dir = fold_dir / "model"
        trainer.save_model(str(model_dir))
        InferenceConfig(
            max_length=data_args.eval_max_length or data_args.max_length,
            stride=data_args.stride,
            subtoken_rule=data_args.subtoken_rule,
            keep_newlines=data_args.keep_newlines,
            label_all_subtokens=data_args.label_all_subtokens,
            normalize_spelling=data_args.normalize_spelling,
            postprocess=postprocess.to_dict(),
            extra={
                "fold": fold,
                "fingerprint": run_fingerprint(model_args, data_args, train_args),
                "trained": uuid.uuid4().hex[:12],  # this training of the fold: a retrain in place is another
                "train_config": _jsonable(to_flat_dict(model_args, data_args)),
            },
        ).save(model_dir)
        save_word_probs(fold_dir / OOF_FILE, evaluation.word_probs, meta={"fold": fold})
        summary = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        summary["best_checkpoint"] = trainer.state.best_model_checkpoint
        summary["best_epoch"] = best_epoch(trainer.state.log_history, trainer.state.best_metric,
                                           train_args.metric_for_best_model)  # ("epoch": the epochs trained)
        summary["nonfinite_steps"] = trainer.nonfinite_steps
        summary["train_seconds"] = train_seconds
        write_fold_card(model_dir, summary, trainer.state)  # README.md (model card) + trainer_state.json
        _write_text(fold_dir / METRICS_FILE, json.dumps(summary, indent=2))  # written last: marks the fold done
        for ckpt in fold_dir.glob("checkpoint-*"):
            shutil.rmtree(ckpt, ignore_errors=True)
    _finish_tracking(train_args)
    del trainer, data, evaluation
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return metrics


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def run_fingerprint(model_args: ModelArguments, data_args: DataArguments, train_args: FeedbackTrainingArguments) -> str:
    """The fingerprint of a run's settings (``config.fingerprint``): what its folder and fold models carry."""
    return config_fingerprint(_jsonable(to_flat_dict(model_args, data_args, train_args)))


def _finish_tracking(train_args: FeedbackTrainingArguments) -> None:
    """Close this fold's wandb run so the next fold starts its own."""
    if "wandb" in (train_args.report_to or []):
        import wandb

        if wandb.run is not None:
            wandb.finish()


def cv_table(run_dir: str | os.PathLike, folds: list[int], gt: pd.DataFrame) -> pd.DataFrame:
    """Per-class and macro F1 per fold and overall (all folds' OOF predictions scored together)."""
    run_dir = Path(run_dir)
    postprocess = run_postprocess(run_dir, folds)
    columns: dict[str, pd.Series] = {}
    all_probs: dict[str, np.ndarray] = {}
    for fold in folds:
        probs = load_word_probs(run_dir / f"fold_{fold}" / OOF_FILE)
        all_probs.update(probs)
        columns[f"fold_{fold}"] = _f1_column(submission_from_probs(probs, postprocess), gt, probs)
    columns["overall"] = _f1_column(submission_from_probs(all_probs, postprocess), gt, all_probs)
    table = pd.DataFrame(columns)
    table.index.name = "class"
    return table


def run_postprocess(run_dir: Path, folds: list[int]) -> PostprocessConfig:
    """The post-processing the run's folds were evaluated with (the same for every fold of a run)."""
    return PostprocessConfig.from_dict(InferenceConfig.load(run_dir / f"fold_{folds[0]}" / "model").postprocess or {})


def tuned_column(probs: dict[str, np.ndarray], fold_of: dict[str, int], gt: pd.DataFrame, start: PostprocessConfig,
                 n_trials: int, seed: int = 0) -> pd.Series:
    """Per-class and macro F1 of a run's out-of-fold probabilities (``fold_of``: each essay's fold) with the
    post-processing tuned cross-fitted (:func:`tuning.cross_fit_tune`: each fold decoded by a tuning of the other
    folds' essays, started from ``start``, the run's own post-processing), so the figure is as honest as the CV it
    sits beside."""
    sub, _ = cross_fit_tune(probs, gt, fold_of, n_trials=n_trials, seed=seed, start=start)
    return _f1_column(sub, gt, probs)


def _f1_column(sub: pd.DataFrame, gt: pd.DataFrame, probs: dict[str, np.ndarray]) -> pd.Series:
    """Per-class and macro F1 of ``sub`` against the ground truth of ``probs``' essays."""
    return score(sub, gt[gt["id"].isin(set(probs))]).column()


def run(model_args: ModelArguments, data_args: DataArguments, train_args: FeedbackTrainingArguments) -> pd.DataFrame:
    """Train every requested fold of one config and return (and save) its CV table.

    Every mistake that can be seen before the work (model folder, data folder, folds, a run folder of other
    settings) is a one-line :class:`FeedbackError` raised before any model or corpus is loaded.
    """
    folds = check_before_run(model_args, data_args, train_args)
    run_dir = Path(train_args.output_dir)
    state = PartialState()
    with contextlib.ExitStack() as stack:

        def hold_run_dir() -> None:  # one train at a time writes into a run folder
            if not run_dir.is_file():  # (a file: check_run_dir says so in one line)
                run_dir.mkdir(parents=True, exist_ok=True)
                stack.enter_context(folder_lock(run_dir, "train"))

        _main_process_check(state, hold_run_dir)
        return _run(model_args, data_args, train_args, folds, run_dir, state)


def check_before_run(model_args: ModelArguments, data_args: DataArguments,
                     train_args: FeedbackTrainingArguments) -> list[int]:
    """The checks of a config that need no model or corpus loaded (model folder, data folder, folds); returns the
    folds to train. ``train`` runs them on every config of a queue before the first one trains."""
    check_model(resolve_model_path(model_args.model_name_or_path))
    check_data_dir(data_args)
    folds = list(train_args.folds) or list(range(data_args.num_folds))
    wrong = [f for f in folds if not 0 <= f < data_args.num_folds]
    if wrong:
        raise FeedbackError(f"fold {wrong[0]} is out of range: num_folds is {data_args.num_folds}, so folds are "
                            f"0..{data_args.num_folds - 1}.")
    return folds


def _main_process_check(state: PartialState, check: Callable[[], None]) -> None:
    """Run ``check`` on the main process; a :class:`FeedbackError` it raises is raised by every process of an
    ``accelerate launch`` (the others would wait at the next barrier until the timeout)."""
    problem = None
    if state.is_main_process:
        try:
            check()
        except FeedbackError as err:
            problem = str(err)
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        problem = broadcast_object_list([problem])[0]
    if problem:
        raise FeedbackError(problem)


def _run(model_args: ModelArguments, data_args: DataArguments, train_args: FeedbackTrainingArguments,
         folds: list[int], run_dir: Path, state: PartialState) -> pd.DataFrame:
    """:func:`run` once the run folder is checked and held."""
    flat = _jsonable(to_flat_dict(model_args, data_args, train_args))
    fingerprint = config_fingerprint(flat)
    if state.is_main_process or not train_args.overwrite_output_dir:
        check_run_dir(run_dir, fingerprint, flat, train_args.overwrite_output_dir and state.is_main_process)

    def finished_folds_match() -> None:  # the folds the CV table will include
        given = load_postprocess(train_args) if train_args.postprocess not in (None, BASELINE_POSTPROCESS) else None
        for fold in finished_folds(run_dir, data_args.num_folds):
            check_fold_settings(run_dir / f"fold_{fold}", fingerprint)
            if given is not None:  # a file: its path is in the fingerprint, its content is checked here
                check_fold_postprocess(run_dir / f"fold_{fold}", given, str(train_args.postprocess))

    _main_process_check(state, finished_folds_match)
    model_hash = model_digest(resolve_model_path(model_args.model_name_or_path)) if state.is_main_process else ""
    _main_process_check(state, lambda: check_model_unchanged(run_dir, model_hash))
    if state.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_text(run_dir / FINGERPRINT_FILE, fingerprint + "\n")  # first: what marks a run folder (preflight)
        _write_text(run_dir / RUN_CONFIG_FILE, yaml.safe_dump(flat, sort_keys=False))
        if model_hash:
            _write_text(run_dir / MODEL_FILE, model_hash + "\n")
    state.wait_for_everyone()
    if "wandb" in (train_args.report_to or []):
        os.environ.setdefault("WANDB_RUN_GROUP", run_dir.name)
    tokenizer = load_tokenizer(model_args.model_name_or_path)  # a pkg: name stays in configs, resolved here
    with TokenCache(tokenizer) as tokens:  # each essay tokenised once for all folds
        table, gt = load_data(data_args, token_cache=tokens)
        digest = data_digest(table)
        _main_process_check(state, lambda: check_data_unchanged(run_dir, digest))
        if state.is_main_process:
            _write_text(run_dir / DATA_FILE, digest + "\n")
            _write_text(run_dir / LABELS_FILE, file_sha1(Path(data_args.data_dir) / "train.csv") + "\n")
        if data_args.normalize_spelling:  # once per run: the marked table is not normalised again per fold
            normalised = spelling_table(table, data_args)
            report_spelling(table, normalised, tokens)
            table = normalised
        logger.info("%s: folds %s on %d process(es), device %s", run_dir, folds, state.num_processes,
                    train_args.device)
        for fold in folds:
            if (run_dir / f"fold_{fold}" / METRICS_FILE).is_file():
                logger.info("fold %d: already finished (%s), skipped", fold, run_dir / f"fold_{fold}" / METRICS_FILE)
                continue
            train_fold(model_args, data_args, train_args, fold, table, gt, tokenizer, token_cache=tokens)
    state.wait_for_everyone()
    # the run-level files cover every finished fold, not only this command's (--folds 0 on a finished run)
    done = sorted(set(folds) | set(finished_folds(run_dir, data_args.num_folds)))
    if done != sorted(folds):
        logger.info("%s: the CV table and oof.npz cover folds %s (%s trained earlier)", run_dir, done,
                    sorted(set(done) - set(folds)))
    folds = done
    cv = cv_table(run_dir, folds, gt)
    if state.is_main_process:
        oof: dict[str, np.ndarray] = {}
        fold_of: dict[str, int] = {}
        for fold in folds:
            part = load_word_probs(run_dir / f"fold_{fold}" / OOF_FILE)
            oof.update(part)
            fold_of.update(dict.fromkeys(part, fold))
        if train_args.tune_trials > 0 and len(folds) >= 2:
            logger.info("%s: tuning the post-processing on the out-of-fold probabilities, cross-fitted over %d "
                        "folds (%d trials per study; tune_trials: 0 turns it off)", run_dir, len(folds),
                        train_args.tune_trials)
            cv["tuned"] = tuned_column(oof, fold_of, gt, run_postprocess(run_dir, folds), train_args.tune_trials,
                                       seed=train_args.seed)
        atomic_write(run_dir / "cv.csv", lambda tmp: cv.to_csv(tmp))
        bar_chart(cv, run_dir / "cv.png", title=f"CV F1 — {run_dir.name}")
        write_run_card(run_dir, cv)
        _warn_stale_tuning(run_dir, folds)
        save_word_probs(run_dir / OOF_FILE, oof, meta=run_meta(run_dir, folds))
    return cv


def _warn_stale_tuning(run_dir: Path, folds: list[int]) -> None:
    """What was made from the run's previous ``oof.npz`` — a tuned ``postprocess.json`` (``predict`` decodes with
    it), rescorer folders, the ``inspect`` page — no longer covers the run when its folds changed (``--folds``
    trained more): say so, and keep them (they are the user's to redo or delete)."""
    previous = run_dir / OOF_FILE
    made = [p for p in (run_dir / POSTPROCESS_FILE, run_dir / "report.html") if p.is_file()]
    made += rescorer_folders(run_dir)
    if not made or not previous.is_file():
        return
    try:
        before = oof_folds(previous)
    except (ValueError, TypeError, OSError):
        return
    if before and before != sorted(folds):
        still = " (predict still decodes with its postprocess.json)" if made[0].name == POSTPROCESS_FILE else ""
        logger.warning("%s made from the out-of-fold probabilities of folds %s; the run now has folds %s%s: run "
                       "tune / rescore / inspect again", ", ".join(str(p) for p in made), before, folds, still)
