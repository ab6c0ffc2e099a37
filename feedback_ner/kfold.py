"""The k-fold driver (library): train every fold of one config, keep each fold's best epoch, build the CV table.

The command is ``feedback_ner.train``. Per fold it keeps the best epoch by the competition F1 and
writes, under ``<output_dir>/fold_<k>/``: ``model/`` (best checkpoint: model, tokenizer, ``feedback_ner.json``),
``oof.npz`` (out-of-fold word probabilities) and ``metrics.json``. It ends with a CV table (per class and macro,
per fold and overall) saved as ``cv.csv`` and ``cv.png``. Running it again resumes: finished folds are skipped and
an interrupted fold continues from its last checkpoint.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from accelerate import PartialState
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase
from transformers.trainer_utils import get_last_checkpoint

from feedback_ner.artifacts import InferenceConfig, run_meta
from feedback_ner.config import (
    DataArguments,
    FeedbackTrainingArguments,
    ModelArguments,
    to_flat_dict,
)
from feedback_ner.labels import CLASSES
from feedback_ner.metric import score
from feedback_ner.modelcard import write_fold_card, write_run_card
from feedback_ner.modeling import build_model, encoder_config, resolve_model_path
from feedback_ner.postprocess import PostprocessConfig, submission_from_probs
from feedback_ner.postprocess_defaults import learn_postprocess
from feedback_ner.probs import load_word_probs, save_word_probs
from feedback_ner.report import bar_chart
from feedback_ner.tokens import TokenCache
from feedback_ner.trainer import EvalLogCallback, FeedbackTrainer
from feedback_ner.windows import FeedbackCollator, pad_multiple_for, tokenize_windows
from feedback_ner.wordtable import load_word_table

logger = logging.getLogger("feedback_ner.kfold")

METRICS_FILE = "metrics.json"
OOF_FILE = "oof.npz"
BASELINE_POSTPROCESS = "baseline"  # postprocess value naming the public baseline's table


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
    if not data_args.data_dir:
        raise ValueError("data_dir is not set: put `data_dir: <Kaggle folder>` in the config or pass --data_dir.")
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
    lets every fold reuse the essays' tokens."""
    max_length = max_length or data_args.max_length
    stride = data_args.stride if stride is None else stride
    train_table = table[table["fold"] != fold].reset_index(drop=True)
    eval_table = table[table["fold"] == fold].reset_index(drop=True)
    if len(eval_table) == 0 or len(train_table) == 0:
        raise ValueError(f"fold {fold} is empty or holds every essay; folds present: {sorted(table['fold'].unique())}")
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
        callbacks=[EvalLogCallback(prefix=log_prefix)],
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
    # One config per run, learned from the spans of all its essays: predict, tune and inspect decode a run with
    # one config. (Its eval fold's span lengths take part: a label statistic, never a model output.)
    postprocess = load_postprocess(train_args, gt[gt["id"].isin(set(table["id"]))])
    data = fold_data(table, gt, fold, tokenizer, data_args, token_cache=token_cache)
    trainer = build_trainer(model_args, data_args, args, data, tokenizer, postprocess, log_prefix=f"fold {fold} | ")
    last = get_last_checkpoint(str(fold_dir)) if fold_dir.is_dir() else None
    if last:
        logger.info("fold %d: resuming from %s", fold, last)
    trainer.train(resume_from_checkpoint=last)
    trainer.remove_callback(EvalLogCallback)  # the next evaluation re-scores the best epoch: no new log line
    metrics = trainer.evaluate()  # the best epoch, reloaded by load_best_model_at_end
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
            postprocess=postprocess.to_dict(),
            extra={"fold": fold, "train_config": _jsonable(to_flat_dict(model_args, data_args))},
        ).save(model_dir)
        save_word_probs(fold_dir / OOF_FILE, trainer.word_metric.word_probs, meta={"fold": fold})
        summary = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        summary["best_checkpoint"] = trainer.state.best_model_checkpoint
        summary["nonfinite_steps"] = trainer.nonfinite_steps
        write_fold_card(model_dir, summary, trainer.state)  # README.md (model card) + trainer_state.json
        (fold_dir / METRICS_FILE).write_text(json.dumps(summary, indent=2))  # written last: marks the fold done
        for ckpt in fold_dir.glob("checkpoint-*"):
            shutil.rmtree(ckpt, ignore_errors=True)
    _finish_tracking(train_args)
    del trainer, data
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return metrics


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))


def _finish_tracking(train_args: FeedbackTrainingArguments) -> None:
    """Close this fold's wandb run so the next fold starts its own."""
    if "wandb" in (train_args.report_to or []):
        import wandb

        if wandb.run is not None:
            wandb.finish()


def cv_table(run_dir: str | os.PathLike, folds: list[int], gt: pd.DataFrame) -> pd.DataFrame:
    """Per-class and macro F1 per fold and overall (all folds' OOF predictions scored together)."""
    run_dir = Path(run_dir)
    columns: dict[str, pd.Series] = {}
    all_probs: dict[str, np.ndarray] = {}
    postprocess = None
    for fold in folds:
        fold_dir = run_dir / f"fold_{fold}"
        probs = load_word_probs(fold_dir / OOF_FILE)
        if postprocess is None:  # every fold of a run is evaluated with the same config
            postprocess = PostprocessConfig.from_dict(InferenceConfig.load(fold_dir / "model").postprocess or {})
        all_probs.update(probs)
        fold_gt = gt[gt["id"].isin(set(probs))]
        columns[f"fold_{fold}"] = _score_column(probs, fold_gt, postprocess)
    columns["overall"] = _score_column(all_probs, gt[gt["id"].isin(set(all_probs))], postprocess)
    table = pd.DataFrame(columns)
    table.index.name = "class"
    return table


def _score_column(probs: dict[str, np.ndarray], gt: pd.DataFrame, postprocess: PostprocessConfig) -> pd.Series:
    result = score(submission_from_probs(probs, postprocess), gt)
    column = result.table["F1"].reindex(list(CLASSES)).astype(float)
    column["macro"] = result.f1
    return column


def run(model_args: ModelArguments, data_args: DataArguments, train_args: FeedbackTrainingArguments) -> pd.DataFrame:
    """Train every requested fold of one config and return (and save) its CV table."""
    if not model_args.model_name_or_path:
        raise ValueError("model_name_or_path is not set: put it in the config or pass --model_name_or_path.")
    run_dir = Path(train_args.output_dir)
    state = PartialState()
    if state.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        flat = _jsonable(to_flat_dict(model_args, data_args, train_args))
        (run_dir / "config.yaml").write_text(yaml.safe_dump(flat, sort_keys=False))
    if "wandb" in (train_args.report_to or []):
        os.environ.setdefault("WANDB_RUN_GROUP", run_dir.name)
    model_args = replace(model_args, model_name_or_path=resolve_model_path(model_args.model_name_or_path))  # pkg:
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    folds = list(train_args.folds) or list(range(data_args.num_folds))
    with TokenCache(tokenizer) as tokens:  # each essay tokenised once for all folds
        table, gt = load_data(data_args, token_cache=tokens)
        logger.info("%s: folds %s on %d process(es), device %s", run_dir, folds, state.num_processes,
                    train_args.device)
        for fold in folds:
            if (run_dir / f"fold_{fold}" / METRICS_FILE).is_file():
                logger.info("fold %d: already finished (%s), skipped", fold, run_dir / f"fold_{fold}" / METRICS_FILE)
                continue
            train_fold(model_args, data_args, train_args, fold, table, gt, tokenizer, token_cache=tokens)
    state.wait_for_everyone()
    cv = cv_table(run_dir, folds, gt)
    if state.is_main_process:
        cv.to_csv(run_dir / "cv.csv")
        bar_chart(cv, run_dir / "cv.png", title=f"CV F1 — {run_dir.name}")
        write_run_card(run_dir, cv)
        oof = {}
        for fold in folds:
            oof.update(load_word_probs(run_dir / f"fold_{fold}" / OOF_FILE))
        save_word_probs(run_dir / OOF_FILE, oof, meta=run_meta(run_dir, folds))
    return cv
