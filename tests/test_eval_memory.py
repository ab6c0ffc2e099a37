"""Issue 16: evaluation memory is flat in the number of essays but for the word probabilities.

``WordF1Metric`` is the evaluation minus the model: it takes each batch's token probabilities, reduces them to words
and, at the last batch, decodes and scores. Fed the same synthetic batches for N and for 4N essays, its traced peak
(``tracemalloc``: deterministic for the same calls) may grow by the word probabilities' growth and a little for the
kept spans and the ground truth, not by the several word-sized arrays it used to hold at once (a second copy of the
probabilities, a fresh accumulator, the word-level decode of all essays and its table of every candidate span: the
peak used to be ~5x the word probabilities).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
from transformers.trainer_utils import EvalPrediction

from feedback_ner.labels import B_IDS, CLASSES, I_IDS, NUM_LABELS, O_ID
from feedback_ner.trainer import WordF1Metric

WORDS, WINDOW, BATCH = 600, 256, 8


def synthetic(n_essays: int, seed: int = 0) -> tuple[list[str], list[int], pd.DataFrame, list[EvalPrediction]]:
    """Essays of WORDS words in elements of 20-60 words, their ground truth, and evaluation batches of windows
    (one token per word, no overlap) whose probabilities favour the true labels."""
    rng = np.random.default_rng(seed)
    ids = [f"e{i}" for i in range(n_essays)]
    gt_rows, labels = [], []
    for essay_id in ids:
        lab = np.full(WORDS, O_ID)
        start = int(rng.integers(0, 10))
        while start < WORDS - 20:
            end = min(WORDS, start + int(rng.integers(20, 60)))
            cls = CLASSES[int(rng.integers(len(CLASSES)))]
            lab[start], lab[start + 1 : end] = B_IDS[cls], I_IDS[cls]
            gt_rows.append((essay_id, cls, " ".join(map(str, range(start, end)))))
            start = end + int(rng.integers(0, 5))
        labels.append(lab)
    gt = pd.DataFrame(gt_rows, columns=["id", "discourse_type", "predictionstring"])
    windows = [(e, w) for e in range(n_essays) for w in range(0, WORDS, WINDOW)]
    batches = []
    for b in range(0, len(windows), BATCH):
        rows = windows[b : b + BATCH]
        packed = np.full((len(rows), 1 + WINDOW), -1, dtype=np.int64)
        probs = rng.random((len(rows), WINDOW, NUM_LABELS), dtype=np.float32)
        for r, (e, w) in enumerate(rows):
            words = np.arange(w, min(w + WINDOW, WORDS))
            packed[r, 0], packed[r, 1 : 1 + len(words)] = e, words
            probs[r, np.arange(len(words)), labels[e][words]] += 20.0
        probs /= probs.sum(axis=2, keepdims=True)
        batches.append(EvalPrediction(predictions=probs, label_ids=packed))
    return ids, [WORDS] * n_essays, gt, batches


def evaluate(metric: WordF1Metric, batches: list[EvalPrediction]) -> dict[str, float]:
    for b in batches[:-1]:
        metric(b, compute_result=False)
    return metric(batches[-1], compute_result=True)


def traced_peak(n_essays: int) -> tuple[float, float, dict[str, float]]:
    """Traced peak (bytes) of one evaluation of ``n_essays`` essays, the size of its word probabilities, metrics."""
    ids, n_words, gt, batches = synthetic(n_essays)
    metric = WordF1Metric(ids, n_words, gt)
    tracemalloc.start()
    try:
        metrics = evaluate(metric, batches)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, sum(p.nbytes for p in metric.word_probs.values()), metrics


def test_evaluation_memory_grows_only_with_the_word_probabilities():
    """Issue 16: from N to 4N essays the traced peak grows by the word probabilities and a small rest."""
    traced_peak(8)  # first calls fill module-level caches (pandas, the metric's canonical strings)
    peak_1, words_1, metrics_1 = traced_peak(40)
    peak_4, words_4, metrics_4 = traced_peak(160)
    assert metrics_1["f1"] > 0.9 and metrics_4["f1"] > 0.9  # the batches decode to the ground truth
    word_growth = words_4 - words_1  # 120 essays x 600 words x 15 x 4 bytes = 4.1 MiB
    rest = (peak_4 - peak_1) - word_growth
    # kept spans and the ground truth's encoding grow a few bytes per word; the old evaluation grew by ~4x word_growth
    assert rest < 0.15 * word_growth, f"evaluation peak grew {rest / 2**20:.2f} MiB beyond the word probabilities"
