"""What our trainer costs on top of plain transformers, on the same model and windows (issue 16).

- ``train_step_overhead``: seconds per training step of ``FeedbackTrainer`` with ``FeedbackCollator`` over a plain
  ``Trainer`` with ``DataCollatorForTokenClassification``; same model (a small BERT: 128 hidden, 2 layers, random
  weights, the tiny BERT's tokenizer), same windows in the same order (sequential sampler), same batch size.
- ``eval_overhead``: our evaluation (``FeedbackTrainer.evaluate``: token probabilities reduced to words batch by
  batch, windows merged, spans decoded, competition metric) over a plain ``Trainer.predict`` on the same windows.
- ``eval_peak_traced_mb_1x`` / ``_4x``: peak Python/numpy memory (``tracemalloc``) of our evaluation on the
  evaluation essays and on four copies of them; ``eval_word_probs_mb_1x`` / ``_4x``: the size of the word
  probabilities it returns (the out-of-fold predictions, the one thing that must grow with the set), beside that of
  the token probabilities a plain ``Trainer.predict`` keeps (windows x tokens x 15 float32).
  ``eval_memory_growth_beyond_word_probs_mb`` = (peak 4x - peak 1x) - (word probabilities 4x - 1x): about 0 when
  evaluation is flat (what is left is the kept spans and the ground truth, a few bytes per word).
- ``eval_peak_rss_growth_mb_1x`` / ``_4x`` and ``eval_rss_growth_beyond_word_probs_mb``: the same from the process's
  resident memory, which also sees torch's tensors (``tracemalloc`` does not): each size is evaluated in a fresh
  subprocess, once to warm up (the first evaluation loads kernels and modules: ~20 MB more) and once measured, with
  the kernel's peak-RSS mark reset (``/proc/self/clear_refs``, Linux) just before it and read (``VmHWM``) after,
  minus the resident memory before. glibc's malloc is told to map large blocks and give freed memory back
  (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``), without which freed-but-kept heap makes the figure wander
  by tens of MB; pages and the allocators still make it coarser than the traced one (~1 MB). Most of it is one
  batch's activations (batch 16 x 512 tokens: the attention scores alone are 32 MB), the same at any size. Where
  the mark cannot be reset the lines say ``n/a`` and why.

Each side is run twice, alternating, and its faster run kept; torch runs on one thread (two threads spin-wait badly
when other processes share the cores, which would swamp the differences measured here).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import re
import subprocess
import sys
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
SIZES = (1, 4)  # copies of the evaluation essays whose evaluation memory is compared
ROOT = Path(__file__).resolve().parents[1]
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

    peak_mb, word_mb = {}, {}
    for k in SIZES:
        k_table, k_gt = copies(eval_table, eval_gt, k)
        k_windows = tokenize_windows(k_table, tokenizer, MAX_LENGTH, STRIDE)
        trainer = our_trainer(tiny_dir, tokenizer, windows, workdir / "ours", steps, k_table, k_gt, k_windows)
        trainer.model.load_state_dict(plain.model.state_dict())
        tracemalloc.start()
        trainer.evaluate()
        peak_mb[k] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        word_mb[k] = sum(p.nbytes for p in trainer.word_metric.word_probs.values()) / 2**20
        token_mb = sum(k_windows["length"]) * 15 * 4 / 2**20
        print(f"eval_peak_traced_mb_{k}x: {peak_mb[k]:.2f} ({len(k_table)} essays, {len(k_windows)} windows; token "
              f"probabilities, never kept: {token_mb:.2f} MB)")
        print(f"eval_word_probs_mb_{k}x: {word_mb[k]:.2f}", flush=True)
        del trainer, k_windows
    lo, hi = SIZES
    print(f"eval_memory_growth_beyond_word_probs_mb: {(peak_mb[hi] - peak_mb[lo]) - (word_mb[hi] - word_mb[lo]):.2f} "
          f"(traced peak +{peak_mb[hi] - peak_mb[lo]:.2f} MB, word probabilities +{word_mb[hi] - word_mb[lo]:.2f} MB)")
    rss: dict[int, dict] = {}
    for k in SIZES:
        rss[k] = rss_in_subprocess(workdir, n_eval, k)
        print(f"eval_peak_rss_growth_mb_{k}x: {rss[k].get('rss_mb', 'n/a')}"
              + (f" ({rss[k]['why']})" if "why" in rss[k] else ""), flush=True)
    if all("rss_mb" in r for r in rss.values()):
        beyond = (rss[hi]["rss_mb"] - rss[lo]["rss_mb"]) - (rss[hi]["word_mb"] - rss[lo]["word_mb"])
        print(f"eval_rss_growth_beyond_word_probs_mb: {beyond:.2f}")
    else:
        print("eval_rss_growth_beyond_word_probs_mb: n/a")


def _rss_kb() -> dict[str, int]:
    with open("/proc/self/status", encoding="ascii") as fh:
        return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", fh.read(), flags=re.M)}


def rss_in_subprocess(workdir: Path, n_eval: int, k: int) -> dict:
    """:func:`rss_child` in a fresh interpreter: ``{"rss_mb", "word_mb"}``, or ``{"why"}`` when not measured."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    cmd = [sys.executable, "-m", "benchmarks.bench_overhead", "--rss-child", str(k), "--workdir", str(workdir),
           "--n-eval", str(n_eval)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"why": f"subprocess failed, exit {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def rss_child(workdir: Path, n_eval: int, k: int) -> dict:
    """In its own process: growth of the peak resident memory over ``evaluate()`` on ``k`` copies of the evaluation
    essays (the corpus and tiny model that the parent wrote to ``workdir``)."""
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    corpus, tiny_dir = workdir / "corpus", workdir / "bert"
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    table = build_word_table(load_train(corpus))
    gt = pd.read_csv(corpus / "train.csv")
    eval_table = table.iloc[:n_eval].reset_index(drop=True)
    eval_gt = gt[gt["id"].isin(set(eval_table["id"]))].reset_index(drop=True)
    k_table, k_gt = copies(eval_table, eval_gt, k)
    k_windows = tokenize_windows(k_table, tokenizer, MAX_LENGTH, STRIDE)
    trainer = our_trainer(tiny_dir, tokenizer, k_windows, workdir / "rss", 1, k_table, k_gt, k_windows)
    trainer.evaluate()  # warm-up: the first evaluation's one-time costs are not the evaluation set's
    trainer.word_metric.word_probs = {}
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # resets VmHWM to the current resident size
    except OSError as err:
        return {"why": f"peak RSS cannot be reset here ({err.__class__.__name__}: {err})"}
    before = _rss_kb()["VmRSS"]
    trainer.evaluate()
    peak = _rss_kb()["VmHWM"]
    word_mb = sum(p.nbytes for p in trainer.word_metric.word_probs.values()) / 2**20
    return {"rss_mb": round((peak - before) / 1024, 2), "word_mb": round(word_mb, 2)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller corpus and fewer steps")
    parser.add_argument("--rss-child", type=int, metavar="K", help=argparse.SUPPRESS)  # internal: rss_in_subprocess
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n-eval", type=int, help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.rss_child:
        print(json.dumps(rss_child(cli.workdir, cli.n_eval, cli.rss_child)))
    else:
        run(cli)
