"""What our trainer costs on top of plain transformers, on the same model and windows (issue 16).

- ``train_step_overhead``: seconds per training step of ``FeedbackTrainer`` with ``FeedbackCollator`` over a plain
  ``Trainer`` with ``DataCollatorForTokenClassification``; same model (a small BERT: 128 hidden, 2 layers, random
  weights, the tiny BERT's tokenizer), same windows in the same order (sequential sampler), same batch size.
- ``eval_overhead``: our evaluation (``FeedbackTrainer.evaluate``: token probabilities reduced to words batch by
  batch, windows merged, spans decoded, competition metric) over a plain ``Trainer.predict`` on the same windows.
- ``eval_peak_traced_mb_1x`` / ``_4x``: peak Python/numpy memory (``tracemalloc``; torch's own buffers are not
  traced) of our evaluation on the evaluation essays and on four copies of them, beside the size of the word
  probabilities and of the token probabilities that a plain ``Trainer.predict`` keeps (windows x tokens x 15 float32):
  what grows should be word-level only.

Each side is run twice, alternating, and its faster run kept; torch runs on one thread (two threads spin-wait badly
when other processes share the cores, which would swamp the differences measured here).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import tracemalloc
from pathlib import Path

import pandas as pd
import torch
from transformers import (
    AutoConfig,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from benchmarks import sample_corpus
from feedback_ner.config import FeedbackTrainingArguments
from feedback_ner.corpus import load_train
from feedback_ner.synthetic.models import build_tiny
from feedback_ner.trainer import FeedbackTrainer
from feedback_ner.windows import FeedbackCollator, tokenize_windows
from feedback_ner.wordtable import build_word_table

MAX_LENGTH, STRIDE, BATCH = 512, 64, 8
PIPELINE_COLUMNS = ("word_ids", "essay_index", "length")


class StepTimer(TrainerCallback):
    """Wall time from the end of the first ``skip`` steps to the end of training (warm-up excluded)."""

    def __init__(self, skip: int = 2) -> None:
        self.skip, self.start, self.end, self.steps = skip, None, None, 0

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001 (upstream signature)
        if state.global_step == self.skip:
            self.start = time.perf_counter()
        elif state.global_step > self.skip:
            self.end, self.steps = time.perf_counter(), state.global_step - self.skip

    def seconds_per_step(self) -> float:
        return (self.end - self.start) / self.steps


def small_model(tiny_dir: Path) -> AutoModelForTokenClassification:
    config = AutoConfig.from_pretrained(tiny_dir)
    config.update(dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512))
    torch.manual_seed(0)
    return AutoModelForTokenClassification.from_config(config)


def common_args(out: Path, steps: int) -> dict:
    return dict(output_dir=str(out), per_device_train_batch_size=BATCH, per_device_eval_batch_size=2 * BATCH,
                max_steps=steps, use_cpu=True, report_to="none", disable_tqdm=True, save_strategy="no",
                eval_strategy="no", logging_strategy="no", train_sampling_strategy="sequential", seed=0)


def plain_trainer(tiny_dir: Path, tokenizer, windows, out: Path, steps: int) -> Trainer:
    args = TrainingArguments(**common_args(out, steps))
    return Trainer(model=small_model(tiny_dir), args=args, train_dataset=windows.remove_columns(list(PIPELINE_COLUMNS)),
                   data_collator=DataCollatorForTokenClassification(tokenizer), processing_class=tokenizer)


def our_trainer(tiny_dir: Path, tokenizer, windows, out: Path, steps: int, eval_table=None, eval_gt=None,
                eval_windows=None) -> FeedbackTrainer:
    args = FeedbackTrainingArguments(**common_args(out, steps), load_best_model_at_end=False)
    return FeedbackTrainer(model=small_model(tiny_dir), args=args, train_dataset=windows, eval_dataset=eval_windows,
                           data_collator=FeedbackCollator(tokenizer), processing_class=tokenizer,
                           eval_table=eval_table, eval_gt=eval_gt)


def step_seconds(trainer: Trainer) -> float:
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    return timer.seconds_per_step()


def copies(table: pd.DataFrame, gt: pd.DataFrame, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``k`` copies of the essays under new ids (``<id>_<copy>``), with their ground truth."""
    tables, gts = [], []
    for c in range(k):
        tables.append(table.assign(id=table["id"] + f"_{c}"))
        gts.append(gt.assign(id=gt["id"] + f"_{c}"))
    return pd.concat(tables, ignore_index=True), pd.concat(gts, ignore_index=True)


def run(args: argparse.Namespace) -> None:
    """Train and evaluation overheads against plain transformers; evaluation memory at 1x and 4x."""
    quick = bool(getattr(args, "quick", False))
    workdir = getattr(args, "workdir", None) or Path(tempfile.mkdtemp(prefix="bench_overhead_"))  # standalone
    logging.getLogger("transformers").setLevel(logging.ERROR)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _run(quick, workdir)
    finally:
        torch.set_num_threads(threads)


def _run(quick: bool, workdir: Path) -> None:
    corpus = sample_corpus(workdir / "corpus", n=80 if quick else 160)
    tiny_dir = build_tiny("bert", corpus, workdir / "bert", seed=0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    table = build_word_table(load_train(corpus))
    gt = pd.read_csv(corpus / "train.csv")
    n_eval = 20 if quick else 40
    eval_table, train_table = table.iloc[:n_eval].reset_index(drop=True), table.iloc[n_eval:].reset_index(drop=True)
    eval_gt = gt[gt["id"].isin(set(eval_table["id"]))].reset_index(drop=True)
    windows = tokenize_windows(train_table, tokenizer, MAX_LENGTH, STRIDE)
    eval_windows = tokenize_windows(eval_table, tokenizer, MAX_LENGTH, STRIDE)
    steps = 6 if quick else 12

    plain_s, ours_s = [], []
    for _ in range(2):
        plain_s.append(step_seconds(plain_trainer(tiny_dir, tokenizer, windows, workdir / "plain", steps)))
        ours_s.append(step_seconds(our_trainer(tiny_dir, tokenizer, windows, workdir / "ours", steps)))
    print(f"train_step_s_plain_trainer: {min(plain_s):.4f}")
    print(f"train_step_s_feedback_trainer: {min(ours_s):.4f}")
    print(f"train_step_overhead: {min(ours_s) / min(plain_s):.3f}", flush=True)

    plain = plain_trainer(tiny_dir, tokenizer, windows, workdir / "plain", steps)
    ours = our_trainer(tiny_dir, tokenizer, windows, workdir / "ours", steps, eval_table, eval_gt, eval_windows)
    ours.model.load_state_dict(plain.model.state_dict())
    bare = eval_windows.remove_columns(list(PIPELINE_COLUMNS))
    plain_eval, ours_eval = [], []
    for _ in range(2):
        start = time.perf_counter()
        plain.predict(bare)
        plain_eval.append(time.perf_counter() - start)
        start = time.perf_counter()
        metrics = ours.evaluate()
        ours_eval.append(time.perf_counter() - start)
    print(f"eval_windows: {len(eval_windows)}")
    print(f"eval_s_trainer_predict: {min(plain_eval):.3f}")
    print(f"eval_s_feedback_evaluate: {min(ours_eval):.3f} (eval_f1 {metrics['eval_f1']:.4f})")
    print(f"eval_overhead: {min(ours_eval) / min(plain_eval):.3f}", flush=True)

    for k in (1, 4):
        k_table, k_gt = copies(eval_table, eval_gt, k)
        k_windows = tokenize_windows(k_table, tokenizer, MAX_LENGTH, STRIDE)
        trainer = our_trainer(tiny_dir, tokenizer, windows, workdir / "ours", steps, k_table, k_gt, k_windows)
        trainer.model.load_state_dict(plain.model.state_dict())
        tracemalloc.start()
        trainer.evaluate()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        word_mb = sum(p.nbytes for p in trainer.word_metric.word_probs.values()) / 2**20
        token_mb = sum(k_windows["length"]) * 15 * 4 / 2**20
        print(f"eval_peak_traced_mb_{k}x: {peak / 2**20:.1f} (word probabilities {word_mb:.2f} MB; token "
              f"probabilities, not kept: {token_mb:.2f} MB; {len(k_windows)} windows)", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller corpus and fewer steps")
    run(parser.parse_args())
