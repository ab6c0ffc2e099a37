"""Padding in training batches, random vs length-grouped, and the training step time both ways (issue 16).

On the sample corpus (450 essays, as in the demo) the windows of max_length 512/1024/1536 (stride 128) are batched
four at a time as the Trainer batches them: in random order (``train_sampling_strategy="random"``) and
length-grouped (``"group_by_length"``, the default here: ``windows.LengthGroupedBatches`` fed from the windows'
``length`` column, seeded: windows of similar length share a batch, the batches come in random order).
``train_pad_share`` is the share of the tokens a model computes that are padding, for a Longformer (batches padded to
a multiple of its 512-token attention window, as ``allenai/longformer-*-4096`` needs) and a BERT/DeBERTa-style
model (padded to a multiple of 8 for tensor cores), averaged over 5 epochs' orders. Then the training step
(forward, backward, AdamW) of one fixed model, the tiny BERT (hidden 64, 2 layers) at max_length 1024, is timed on
the same number of batches drawn from each order.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from benchmarks import sample_corpus
from feedback_ner.corpus import load_train
from feedback_ner.inference import WindowArrays
from feedback_ner.synthetic.models import build_tiny
from feedback_ner.windows import FeedbackCollator, LengthGroupedBatches, tokenize_windows
from feedback_ner.wordtable import build_word_table

BATCH = 4
STRIDE = 128
EPOCHS = 5
# family -> (tiny architecture whose tokenizer makes the windows, multiple a batch is padded to)
FAMILIES = {"longformer": ("longformer", 512), "pad8": ("bert", 8)}


def batch_orders(lengths: np.ndarray, grouped: bool, seed: int) -> list[np.ndarray]:
    """The batches of one epoch, as the Trainer's sampler orders them (random or length-grouped)."""
    generator = torch.Generator().manual_seed(seed)
    if grouped:
        order = np.fromiter(LengthGroupedBatches(lengths, BATCH, generator=generator), np.int64)
    else:
        order = torch.randperm(len(lengths), generator=generator).numpy()
    return [order[i : i + BATCH] for i in range(0, len(order), BATCH)]


def pad_share(lengths: np.ndarray, batches: list[np.ndarray], multiple: int) -> float:
    """Share of the computed tokens (batch width rounded up to ``multiple``, times rows) that are padding."""
    real = computed = 0
    for rows in batches:
        width = -(-int(lengths[rows].max()) // multiple) * multiple
        real += int(lengths[rows].sum())
        computed += width * len(rows)
    return 1 - real / computed


def step_seconds(model_dir: Path, windows: WindowArrays, batches: list[np.ndarray]) -> tuple[float, int]:
    """Wall seconds of the training steps over ``batches`` (after one untimed warm-up step) and the tokens they
    computed (padding included)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(model_dir)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    collator = FeedbackCollator(tokenizer, pad_to_multiple_of=8)
    labels_gen = torch.Generator().manual_seed(0)
    computed = 0

    def step(rows: np.ndarray) -> int:
        batch = collator(windows.features(rows))
        labels = torch.randint(0, 15, batch["input_ids"].shape, generator=labels_gen)
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return batch["input_ids"].numel()

    step(batches[0])
    start = time.perf_counter()
    for rows in batches:
        computed += step(rows)
    return time.perf_counter() - start, computed


def run(args: argparse.Namespace) -> None:
    """Pad shares of random and length-grouped batches, and the step time of each."""
    quick = bool(getattr(args, "quick", False))
    workdir = getattr(args, "workdir", None) or Path(tempfile.mkdtemp(prefix="bench_padding_"))  # standalone
    corpus = sample_corpus(workdir / "corpus", n=120 if quick else 450)
    table = build_word_table(load_train(corpus))
    n_steps = 4 if quick else 12
    print(f"train_pad_essays: {len(table)}")
    for family, (arch, multiple) in FAMILIES.items():
        model_dir = build_tiny(arch, corpus, workdir / arch, seed=0)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        for max_length in (512, 1024, 1536):
            windows = WindowArrays(tokenize_windows(table, tokenizer, max_length, STRIDE))
            lengths = windows.lengths
            shares = {}
            for grouped in (False, True):
                kind = "grouped" if grouped else "random"
                shares[kind] = float(np.mean([pad_share(lengths, batch_orders(lengths, grouped, seed), multiple)
                                              for seed in range(EPOCHS)]))
                print(f"train_pad_share_{family}_{max_length}_{kind}: {shares[kind]:.4f}")
            print(f"train_pad_share_{family}_{max_length}_cut: {1 - shares['grouped'] / shares['random']:.3f}",
                  flush=True)
            if family == "pad8" and max_length == 1024:
                step_time(model_dir, windows, n_steps)


def step_time(model_dir: Path, windows: WindowArrays, n_steps: int) -> None:
    """Training step time of random and grouped batches: ``n_steps`` evenly spaced batches of one epoch's order each;
    the epoch estimate is their seconds per computed token times the tokens the whole epoch computes."""
    lengths = windows.lengths
    epochs = {}
    for grouped in (False, True):
        kind = "grouped" if grouped else "random"
        epoch = batch_orders(lengths, grouped, seed=0)
        picked = [epoch[int(i)] for i in np.linspace(0, len(epoch) - 1, n_steps)]
        seconds, computed = step_seconds(model_dir, windows, picked)
        epoch_tokens = sum(-(-int(lengths[rows].max()) // 8) * 8 * len(rows) for rows in epoch)
        epochs[kind] = seconds / computed * epoch_tokens
        print(f"train_step_s_tiny_bert_1024_{kind}: {seconds / n_steps:.4f}")
        print(f"train_epoch_est_s_tiny_bert_1024_{kind}: {epochs[kind]:.1f}")
    print(f"train_epoch_grouped_vs_random: {epochs['grouped'] / epochs['random']:.3f}", flush=True)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller corpus and fewer timed steps")
    run(parser.parse_args())
