"""``FeedbackTrainer``: a thin ``Trainer`` subclass whose evaluation is the competition score.

Evaluation runs the windows through the stock evaluation loop with ``batch_eval_metrics=True``: each batch's
token probabilities are reduced to word probabilities as they come (never holding the eval set's token logits),
then the windows are merged, decoded with the post-processing config and scored with the competition metric. Its
memory grows with the evaluation set by the word probabilities (the out-of-fold predictions) and the kept spans only.
The returned metrics are flat floats: ``eval_f1``, ``eval_f1_<class>``, ``eval_loss``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PrinterCallback, ProgressCallback, Trainer, TrainerCallback
from transformers.trainer_utils import EvalPrediction, get_last_checkpoint

from feedback_ner.decode import WordProbAccumulator
from feedback_ner.files import atomic_write
from feedback_ner.metric import SpanTable, ground_truth_table, score
from feedback_ner.modeling import model_inputs, pack_inputs, token_loss, trim_to, varied_length_attention
from feedback_ner.postprocess import PostprocessConfig, kept_spans
from feedback_ner.recipes import Recipes
from feedback_ner.windows import LengthGroupedBatches

logger = logging.getLogger("feedback_ner.trainer")


class WordF1Metric:
    """``compute_metrics`` for ``batch_eval_metrics``: accumulates word probabilities, scores on the last batch.

    ``label_ids`` of each batch carry ``[essay_index, word_ids...]`` (packed by ``FeedbackTrainer.prediction_step``)
    and ``predictions`` the token probabilities. After scoring, ``word_probs`` holds the evaluation's word
    probabilities per essay (the out-of-fold file of a fold).
    """

    def __init__(
        self,
        ids: Sequence[str],
        n_words: Sequence[int],
        gt: pd.DataFrame,
        postprocess: PostprocessConfig | None = None,
        subtoken_rule: str = "first",
    ) -> None:
        self.ids = list(ids)
        self.n_words = list(n_words)
        self.gt_table = ground_truth_table(gt)  # encoded once, scored at every evaluation
        self.postprocess = postprocess or PostprocessConfig()
        self.subtoken_rule = subtoken_rule
        self.word_probs: dict[str, np.ndarray] = {}
        self._acc: WordProbAccumulator | None = None  # made at an evaluation's first batch, dropped at its last

    def reset(self) -> None:
        """Forgets a partial evaluation (one interrupted before its last batch)."""
        self._acc = None

    def __call__(self, eval_pred: EvalPrediction, compute_result: bool = True) -> dict[str, float]:
        # Memory stays flat in the number of essays but for the word probabilities (issue 16): each batch is reduced
        # to words at once, the sums become the word probabilities in place, the previous evaluation's word
        # probabilities are dropped before the next accumulator is made, decoding runs a chunk of essays at a time
        # and the kept spans are scored as arrays (no predictionstrings) against the ground truth encoded once.
        if self._acc is None:
            self.word_probs = {}
            self._acc = WordProbAccumulator(self.n_words, subtoken=self.subtoken_rule)
        probs = _to_numpy(eval_pred.predictions)
        packed = _to_numpy(eval_pred.label_ids).astype(np.int64)
        self._acc.add(packed[:, 0], packed[:, 1:], probs)
        del probs, packed
        if not compute_result:
            return {}
        acc, self._acc = self._acc, None
        self.word_probs = acc.result(self.ids, release=True)
        del acc
        spans = kept_spans(self.word_probs, self.postprocess, with_predictionstring=False)
        pred = SpanTable.from_arrays(spans["id"].to_numpy(), spans["class"].to_numpy(), spans["start"], spans["end"])
        del spans
        return score(pred, self.gt_table).as_dict()


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


class EvalLogCallback(TrainerCallback):
    """One readable line after each evaluation: epoch, training loss, F1, the best so far and whether this epoch
    became the best.

    "Best" is the Trainer's own rule (``metric_for_best_model``, ``greater_is_better``), seeded from the
    ``TrainerState`` when training starts, so after a resume the line agrees with the checkpoint that is kept
    (issue 12). "kept as the best checkpoint" is said only where the Trainer keeps and reloads one.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.best: tuple[float, float] | None = None  # (value of the best metric, its epoch)
        self.logged = 0  # entries of the log history that an earlier line has covered

    @staticmethod
    def _key(args: Any) -> str:
        name = args.metric_for_best_model or "f1"
        return name if name.startswith("eval_") else f"eval_{name}"

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001 (upstream signature)
        """Start from the resumed state's best (``state.best_metric``), not from nothing."""
        evaluated = [i for i, h in enumerate(state.log_history) if any(k.startswith("eval_") for k in h)]
        self.best, self.logged = None, evaluated[-1] + 1 if evaluated else 0  # a resume: since its last evaluation
        if state.best_metric is None:
            return
        key = self._key(args)
        epochs = [h.get("epoch", 0.0) for h in state.log_history if h.get(key) == state.best_metric]
        # the first epoch that reached it: a later tie is not better, so the Trainer kept the first one's checkpoint
        self.best = (float(state.best_metric), float(epochs[0]) if epochs else float("nan"))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001 (upstream signature)
        key = self._key(args)
        if not metrics or "eval_f1" not in metrics or key not in metrics:
            return
        value, epoch = float(metrics[key]), float(state.epoch or 0)
        greater = args.greater_is_better is not False
        is_best = self.best is None or (value > self.best[0] if greater else value < self.best[0])
        if is_best:
            self.best = (value, epoch)
        keeps = args.load_best_model_at_end and args.save_strategy != "no"
        if is_best:
            note = "new best, kept as the best checkpoint" if keeps else "new best"
        else:
            note = "not better, best checkpoint unchanged" if keeps else "not better"
        # the last training loss logged since the previous line: with fewer steps per epoch than logging_steps there
        # is none, and an older one would pass for this epoch's
        losses = [h["loss"] for h in state.log_history[self.logged:] if "loss" in h]
        self.logged = len(state.log_history)
        train_loss = f" | loss {losses[-1]:.4f}" if losses else ""
        best_name = key.removeprefix("eval_")
        logger.info(
            "%sepoch %.2f%s | eval_f1 %.4f | eval_loss %.4f | best %s %.4f (epoch %.2f) | %s",
            self.prefix, epoch, train_loss, float(metrics["eval_f1"]), metrics.get("eval_loss", float("nan")),
            best_name, self.best[0], self.best[1], note,
        )


class EpochProgressCallback(TrainerCallback):
    """One progress bar per epoch on the main process (terminals only: ``disable=None`` turns it off when
    stderr is a file), closed before the epoch's evaluation so :class:`EvalLogCallback`'s line stands on its own.

    It replaces the Trainer's ``ProgressCallback``/``PrinterCallback``, which print every log dict.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.bar: Any = None
        self.step = 0

    def on_epoch_begin(self, args, state, control, **kwargs):  # noqa: ANN001 (upstream signature)
        if not state.is_world_process_zero or args.disable_tqdm or not state.max_steps:
            return
        epochs = max(1, int(state.num_train_epochs or math.ceil(args.num_train_epochs)))
        per_epoch = math.ceil(state.max_steps / epochs)
        epoch = min(int(state.global_step // per_epoch), epochs - 1)
        self.step = state.global_step
        self.bar = tqdm(
            total=per_epoch, initial=state.global_step - epoch * per_epoch, desc=f"{self.prefix}epoch {epoch + 1}/"
            f"{epochs}", unit="step", leave=False, disable=None, dynamic_ncols=True,
        )

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001 (upstream signature)
        if self.bar is not None:
            self.bar.update(state.global_step - self.step)
            self.step = state.global_step

    def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001 (upstream signature)
        self._close()

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001 (upstream signature)
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def checkpoint_folders(folder: str | Path) -> list[Path]:
    """The Trainer's ``checkpoint-<step>`` folders in ``folder``, oldest step first."""
    found = [p for p in Path(folder).glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]))


class KeepBestAndLastCallback(TrainerCallback):
    """``save_total_limit: 1`` as transformers keeps it while training (the best checkpoint and the newest; one when
    they are the same), without its deletion of the newest at the end of ``train()``: a fold stopped before its
    results are written then resumes at its last step instead of training again after its best epoch. Use it with
    ``save_total_limit=None`` (it does the rotation)."""

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001 (upstream signature)
        if not args.should_save:
            return
        best = Path(state.best_model_checkpoint).resolve() if state.best_model_checkpoint else None
        for folder in checkpoint_folders(args.output_dir)[:-1]:
            if folder.resolve() != best:
                shutil.rmtree(folder, ignore_errors=True)


class TrainingClock(TrainerCallback):
    """A fold's training seconds across interruptions: each checkpoint records the seconds spent up to it
    (``elapsed.json``), and a fold resumed from one starts its clock there (``train_runtime`` counts only the last
    session). ``seconds`` after ``train()``: the fold's whole training time."""

    FILE = "elapsed.json"

    def __init__(self, resume_from: str | Path | None = None) -> None:
        self.before = self.read(resume_from) if resume_from else 0.0
        self.start = time.monotonic()

    @classmethod
    def read(cls, checkpoint: str | Path) -> float:
        try:
            return float(json.loads((Path(checkpoint) / cls.FILE).read_text(encoding="utf-8"))["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0  # a checkpoint of an older version: its time is not known

    @property
    def seconds(self) -> float:
        return self.before + time.monotonic() - self.start

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001 (upstream signature)
        self.start = time.monotonic()

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001 (upstream signature)
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if args.should_save and folder.is_dir():  # whole or not at all: a kill mid-write leaves no torn file
            text = json.dumps({"seconds": self.seconds}) + "\n"
            atomic_write(folder / self.FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))


@dataclass
class WordEvaluation:
    """What one evaluation returns: the flat ``eval_*`` metrics and the word probabilities they were scored on
    (per essay id, ``[n_words, 15]`` float32), i.e. a fold's out-of-fold predictions."""

    metrics: dict[str, float]
    word_probs: dict[str, np.ndarray]


def _outputs_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None,
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """The Trainer's ``compute_loss_func``: :func:`token_loss` of the model's logits (label smoothing included)."""
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    return token_loss(logits, labels, num_items_in_batch, label_smoothing)


class FeedbackTrainer(Trainer):
    """``Trainer`` whose evaluation returns the competition F1, with a guard against non-finite losses.

    Extra keyword arguments: ``eval_table`` (the word table of the evaluation essays, row order = ``essay_index``),
    ``eval_gt`` (their ground-truth rows), ``postprocess`` (a :class:`PostprocessConfig`), ``subtoken_rule`` and
    ``packed`` (training batches padding-free, :func:`modeling.pack_inputs`; flash attention only).
    """

    def __init__(
        self,
        *args: Any,
        eval_table: pd.DataFrame | None = None,
        eval_gt: pd.DataFrame | None = None,
        postprocess: PostprocessConfig | None = None,
        subtoken_rule: str = "first",
        packed: bool = False,
        **kwargs: Any,
    ) -> None:
        self.packed = packed
        self.word_metric: WordF1Metric | None = None
        if eval_table is not None:
            if eval_gt is None:
                raise ValueError("FeedbackTrainer: eval_table needs eval_gt (the ground-truth rows of those essays).")
            n_words = [len(s) for s in eval_table["word_start"]]
            self.word_metric = WordF1Metric(eval_table["id"], n_words, eval_gt, postprocess, subtoken_rule)
            kwargs["compute_metrics"] = self.word_metric
        args_ = kwargs.get("args", args[1] if len(args) > 1 else None)
        if args_ is not None:
            # Evaluation reduces batch by batch and needs our pipeline columns: enforce, never mutate.
            args_ = dataclasses.replace(
                args_, batch_eval_metrics=True, remove_unused_columns=False, label_names=["labels"]
            )
            if "args" in kwargs:
                kwargs["args"] = args_
            else:
                args = (args[0], args_, *args[2:])
        # every model's loss normalised over the whole accumulated batch, label smoothing included (token_loss)
        smoothing = args_.label_smoothing_factor if args_ is not None else 0.0
        kwargs.setdefault("compute_loss_func", functools.partial(_outputs_loss, label_smoothing=smoothing))
        super().__init__(*args, **kwargs)
        # Our bar (one per epoch) and our evaluation line instead of the Trainer's bars and raw metric dicts.
        for cb in list(self.callback_handler.callbacks):
            if isinstance(cb, (PrinterCallback, ProgressCallback)) or type(cb).__name__ == "NotebookProgressCallback":
                self.remove_callback(cb)
        if not any(isinstance(cb, EpochProgressCallback) for cb in self.callback_handler.callbacks):
            self.add_callback(EpochProgressCallback())
        self.recipes = Recipes(self.args, self.processing_class)  # AWP, FGM, EMA, masking, cutmix, LLRD (issue 14)
        for callback in self.recipes.callbacks():
            self.add_callback(callback)
        self._nonfinite_run = 0
        self.nonfinite_steps = 0

    def evaluate_words(self, **kwargs: Any) -> WordEvaluation:
        """``evaluate()`` that also returns the word probabilities it scored (the out-of-fold predictions);
        keyword arguments go to ``evaluate``."""
        if self.word_metric is None:
            raise ValueError("evaluate_words needs eval_table and eval_gt (the evaluation essays).")
        self.word_metric.word_probs = {}
        metrics = self.evaluate(**kwargs)
        word_probs, self.word_metric.word_probs = self.word_metric.word_probs, {}
        if not word_probs and self.word_metric.ids:
            raise RuntimeError("evaluation produced no word probabilities (no evaluation batch reached the metric)")
        return WordEvaluation(metrics=metrics, word_probs=word_probs)

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
        if self.word_metric is not None:
            self.word_metric.reset()  # sums of an evaluation that raised must not leak into this one
        return super().evaluation_loop(*args, **kwargs)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        """``group_by_length``: :class:`windows.LengthGroupedBatches` over the windows' stored lengths (batches of
        similar length in random order; the stock sampler runs long-to-short within chunks, which hurt the CV)."""
        dataset = self.train_dataset if train_dataset is None else train_dataset
        columns = getattr(dataset, "column_names", None) or []
        if self.args.train_sampling_strategy == "group_by_length" and self.args.length_column_name in columns:
            return LengthGroupedBatches(dataset[self.args.length_column_name], self.args.train_batch_size)
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        """Evaluation windows longest first (least padding, an out-of-memory error at once); the word-level
        accumulator keys each window by its essay, so the order changes nothing else (issue 16)."""
        columns = getattr(eval_dataset, "column_names", None) or []
        if self.args.world_size <= 1 and self.args.length_column_name in columns:
            lengths = np.asarray(eval_dataset[self.args.length_column_name])
            return np.argsort(-lengths, kind="stable").tolist()
        return super()._get_eval_sampler(eval_dataset)

    def _model_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        pad_id = getattr(self.processing_class, "pad_token_id", None) or 0
        return model_inputs(inputs, self.model.config, pad_id)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        inputs = self._model_inputs(inputs)
        if self.packed and model.training:  # evaluation keeps padded batches: it needs logits per window
            inputs = pack_inputs(inputs)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):  # noqa: ANN001
        word_ids, essay_index = inputs["word_ids"], inputs["essay_index"]
        length = inputs["input_ids"].shape[1]
        with varied_length_attention(self.args.device):
            loss, logits, _ = super().prediction_step(model, self._model_inputs(inputs), False, ignore_keys)
        probs = trim_to(logits, length).float().softmax(-1)
        packed = torch.cat([essay_index.view(-1, 1).to(word_ids), word_ids], dim=1)
        return loss, probs, packed

    def create_optimizer(self, model=None):  # noqa: ANN001
        self.recipes.create_optimizer(self, model)  # layer-wise LR decay, when on
        return super().create_optimizer(model)

    def get_batch_samples(self, epoch_iterator, num_batches, device):  # noqa: ANN001
        # token masking and cutmix (training batches only) before the Trainer counts the labelled tokens that
        # divide the summed loss: cutmix moves labels with their tokens, and so the count
        return super().get_batch_samples(map(self.recipes.augment, epoch_iterator), num_batches, device)

    def training_step(self, model, inputs, num_items_in_batch=None):  # noqa: ANN001
        # forward and backward alike: gradient checkpointing recomputes the forward inside the backward
        with varied_length_attention(self.args.device):
            loss = super().training_step(model, inputs, num_items_in_batch)
            if self.recipes.adversarial and torch.isfinite(loss).all():  # AWP, FGM: extra forward/backward
                adversarial = self.recipes.adversarial_step(self, model, inputs, num_items_in_batch)
                loss = loss if torch.isfinite(adversarial) else adversarial.to(loss.device)
        bad = torch.tensor(float(not torch.isfinite(loss).all()), device=loss.device)
        if self.args.world_size > 1:  # a NaN on one rank poisons every rank's all-reduced gradients
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if bad.item() == 0:
            self._nonfinite_run = 0
            return loss
        self.nonfinite_steps += 1
        self._nonfinite_run += 1
        # Dropping the gradients makes the optimizer skip every parameter for this step.
        for p in model.parameters():
            p.grad = None
        logger.warning(
            "non-finite loss at step %d: step skipped (%d in a row, %d in all)",
            self.state.global_step, self._nonfinite_run, self.nonfinite_steps,
        )
        if self._nonfinite_run >= self.args.max_nonfinite_steps:
            self._restore_last_checkpoint()
        return loss

    def _restore_last_checkpoint(self) -> None:
        """After too many non-finite losses in a row, reload the weights of the last saved checkpoint."""
        self._nonfinite_run = 0
        last = get_last_checkpoint(self.args.output_dir) if self.args.output_dir else None
        if last is None:
            logger.warning("no checkpoint yet to go back to; continuing with the current (finite) weights")
            return
        logger.warning("%d non-finite losses in a row: reloading weights from %s", self.args.max_nonfinite_steps, last)
        self._load_from_checkpoint(last)
