"""Speed of preprocessing: Kaggle folder -> word table -> token windows, against the tokenizer's raw batch encoding.

On a sample corpus of the real size (15,594 essays; 2,000 with ``--quick``) and the tiny Longformer tokenizer (byte-
level BPE, trained on a small corpus from the same generator), side by side in one process:

- ``preprocess_s``: the whole pipeline from a cold cache, as ``feedback_ner.train`` runs it: a ``tokens.TokenCache``
  that tokenises the essays in a background thread from the moment they are read, ``wordtable.load_word_table`` (read
  + validate, word labels, folds, parquet) meanwhile, then ``windows.tokenize_windows`` (max_length 1024, stride
  128, one process) cutting the windows from the cached tokens;
- ``tokenizer_raw_s``: ``tokenizer(texts)`` over the same texts in batches of 1,000, with the same two-core budget
  (the Rust tokenizer's own thread pool on, two threads on this machine);
- ``preprocess_cached_s``: the pipeline again, every stage read from its cache.

Each cold figure is the best of ``--repeats`` runs (fresh cache folders each time) because the machine is shared;
the ``*_cpu_s`` lines (CPU seconds of this process and its workers) show the work done, whatever else is running.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import datasets
from transformers import AutoTokenizer

from feedback_ner.synthetic.corpus import write_corpus
from feedback_ner.synthetic.models import build_tiny
from feedback_ner.tokens import TokenCache
from feedback_ner.windows import tokenize_windows
from feedback_ner.wordtable import REPORT_FILE, load_word_table

REAL_ESSAYS = 15594
MAX_LENGTH, STRIDE, NUM_PROC = 1024, 128, 1
TARGET_OVERHEAD, TARGET_CACHED_S = 1.5, 5.0


def cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes (the map workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def pipeline(data_dir: Path, cache_dir: Path, tokenizer) -> tuple[float, dict[str, float], int]:
    """Run load -> word table -> folds -> windows with caches under ``cache_dir``; seconds, stage seconds, windows."""
    cpu = cpu_seconds()
    start = time.perf_counter()
    with two_core_budget(), TokenCache(tokenizer) as tokens:
        table, _ = load_word_table(data_dir, cache_dir / "prepared", token_cache=tokens)
        prepared, prepared_cpu = time.perf_counter(), cpu_seconds()
        windows = tokenize_windows(table, tokenizer, MAX_LENGTH, STRIDE, num_proc=NUM_PROC,
                                   cache_dir=cache_dir / "windows", token_cache=tokens)
    end = time.perf_counter()
    end_cpu = cpu_seconds()
    stages = {"prepare_s": prepared - start, "windows_s": end - prepared, "cpu_s": end_cpu - cpu,
              "windows_cpu_s": end_cpu - prepared_cpu}
    report = cache_dir / "prepared" / REPORT_FILE
    if report.is_file():
        stages.update(json.loads(report.read_text()).get("timings", {}))
    return end - start, stages, len(windows)


@contextlib.contextmanager
def two_core_budget() -> Iterator[None]:
    """The Rust tokenizer's thread pool on (two threads here) for the block, whatever the environment says (the
    benchmark runner turns it off for the other benchmarks); the same budget for the pipeline and the raw tokenizer."""
    previous = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"  # read by the Rust side on every batch call
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous


def raw_tokenizer(texts: list[str], tokenizer, batch_size: int = 1000) -> tuple[float, float]:
    """Seconds and CPU seconds for ``tokenizer(texts)`` in batches (within :func:`two_core_budget`)."""
    cpu, start = cpu_seconds(), time.perf_counter()
    for i in range(0, len(texts), batch_size):
        tokenizer(texts[i : i + batch_size])
    return time.perf_counter() - start, cpu_seconds() - cpu


def run(args: argparse.Namespace) -> None:
    quick = bool(getattr(args, "quick", False))
    repeats = int(getattr(args, "repeats", None) or (1 if quick else 2))
    n = 2000 if quick else REAL_ESSAYS
    workdir = getattr(args, "workdir", None)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_preprocess_")
        workdir = tmp.name
    work = Path(workdir)
    datasets.disable_progress_bars()
    try:
        t0 = time.perf_counter()
        data_dir = write_corpus(work / "corpus", n=n, seed=1, n_test=0)
        tok_dir = build_tiny("longformer", write_corpus(work / "tok_corpus", n=300, seed=2, n_test=0), work / "tiny")
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        print(f"essays: {n}")
        print(f"setup_s: {time.perf_counter() - t0:.1f}")

        cold, raw = [], []
        texts: list[str] = []
        for r in range(repeats):
            cache = work / f"cache{r}"
            seconds, stages, n_windows = pipeline(data_dir, cache, tokenizer)
            cold.append((seconds, stages))
            if not texts:
                table, _ = load_word_table(data_dir, cache / "prepared")
                texts = table["text"].tolist()
                n_tokens = sum(len(ids) for ids in tokenizer(texts[:2000])["input_ids"])
                print(f"windows: {n_windows}")
                print(f"tokens_per_essay_first2000: {n_tokens / min(len(texts), 2000):.0f}")
            with two_core_budget():
                raw.append(raw_tokenizer(texts, tokenizer))
            if r < repeats - 1:
                shutil.rmtree(cache)
        seconds, stages = min(cold, key=lambda c: c[0])
        raw_s, raw_cpu = min(raw)
        cached_s, _, _ = pipeline(data_dir, work / f"cache{repeats - 1}", tokenizer)

        for name, value in stages.items():
            print(f"preprocess_{name}: {value:.2f}")
        print(f"preprocess_s: {seconds:.2f}  (runs: {', '.join(f'{c[0]:.1f}' for c in cold)})")
        print(f"tokenizer_raw_s: {raw_s:.2f}  (runs: {', '.join(f'{r[0]:.1f}' for r in raw)})")
        print(f"tokenizer_raw_cpu_s: {raw_cpu:.2f}")
        windows_ratio, windows_cpu_ratio = stages["windows_s"] / raw_s, stages["windows_cpu_s"] / raw_cpu
        print(f"windows_only_vs_tokenizer: {windows_ratio:.2f}  (cpu {windows_cpu_ratio:.2f})")
        overhead = seconds / raw_s
        print(f"preprocess_overhead_vs_tokenizer: {overhead:.2f}  (target <= {TARGET_OVERHEAD})")
        print(f"preprocess_cached_s: {cached_s:.2f}  (target <= {TARGET_CACHED_S})")
    finally:
        if tmp is not None:
            tmp.cleanup()


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_preprocess", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 essays instead of 15,594")
    parser.add_argument("--repeats", type=int, default=None, help="cold runs to take the best of (default 2; 1 quick)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the corpus and caches (default tmp)")
    return parser


def main(argv: list[str] | None = None) -> None:
    run(make_parser().parse_args(argv))


if __name__ == "__main__":
    main()
