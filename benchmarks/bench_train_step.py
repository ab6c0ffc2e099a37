"""Seconds per training step (forward, backward, AdamW) of each tiny model on one 1,024-token sequence.

The tiny models (``feedback_ner.tiny``) are what the tests, the demo and CI train; this is their cost per step
on the machine at hand, with torch's default thread count (set OMP_NUM_THREADS to change it).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from benchmarks import median_time, sample_corpus
from feedback_ner.labels import NUM_LABELS
from feedback_ner.synthetic.models import ARCHS, build_tiny

SEQ_LEN = 1024


def _step_seconds(folder: Path, text: str, repeat: int) -> tuple[float, float]:
    """Median wall seconds and mean process CPU seconds of one training step."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder)
    ids = tokenizer(text, truncation=True, max_length=SEQ_LEN)["input_ids"]
    if len(ids) < SEQ_LEN:
        raise RuntimeError(f"the sample corpus gives only {len(ids)} tokens; {SEQ_LEN} are needed")
    input_ids = torch.tensor([ids])
    attention_mask = torch.ones_like(input_ids)
    labels = torch.randint(0, NUM_LABELS, input_ids.shape, generator=torch.Generator().manual_seed(0))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    cpu_start = time.process_time()
    wall = median_time(step, repeat=repeat, warmup=2)
    return wall, (time.process_time() - cpu_start) / (repeat + 2)


def run(args: argparse.Namespace) -> None:
    """Build each tiny model on a small sample corpus and time its training step."""
    quick = bool(getattr(args, "quick", False))
    workdir = getattr(args, "workdir", None) or Path(tempfile.mkdtemp(prefix="bench_train_step_"))  # standalone
    corpus = sample_corpus(workdir / "corpus", n=40 if quick else 80)
    text = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted((corpus / "train").glob("*.txt")))
    print(f"train_step_torch_threads: {torch.get_num_threads()}")
    for arch in ARCHS:
        folder = build_tiny(arch, corpus, workdir / arch, seed=0)
        wall, cpu = _step_seconds(folder, text, repeat=3 if quick else 10)
        name = arch.replace("-", "_")
        print(f"train_step_1024_s_{name}: {wall:.4f}", flush=True)
        # CPU seconds (all threads) say what a step costs even when other processes share the cores.
        print(f"train_step_1024_cpu_s_{name}: {cpu:.4f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats on a smaller corpus")
    run(parser.parse_args())
