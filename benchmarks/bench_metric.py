"""Speed of the competition metric: ``feedback_ner.metric.score`` against the public pandas implementation.

Both run on the same competition-sized synthetic set (~140k ground truths over ~15.6k essays, ~116k
predictions made from them: exact, shifted, trimmed, extended, duplicated and wrong-class spans plus random
ones), in the same process. Prints ``name: value`` lines; the two scores must be equal.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from benchmarks.pandas_metric import score_feedback_comp
from feedback_ner.labels import CLASSES
from feedback_ner.metric import score
from feedback_ner.synthetic.corpus import REAL_CLASS_COUNTS

# Real train-set element counts (FACTS.md) and typical element lengths in words.
CLASS_COUNTS = REAL_CLASS_COUNTS
MEAN_WORDS = {
    "Lead": 40,
    "Position": 14,
    "Claim": 11,
    "Counterclaim": 20,
    "Rebuttal": 19,
    "Evidence": 45,
    "Concluding Statement": 35,
}
REAL_ESSAYS = 15594
REAL_ELEMENTS = 144293


def make_data(n_essays: int = 15600, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ground truth (``id, discourse_type, predictionstring``) and predictions (``id, class, predictionstring``)."""
    rng = np.random.default_rng(seed)
    classes = np.array(CLASSES, dtype=object)
    weights = np.array([CLASS_COUNTS[c] for c in CLASSES], dtype=float)
    weights /= weights.sum()
    mean_words = np.array([MEAN_WORDS[c] for c in CLASSES], dtype=float)
    per_essay = 1.07 * REAL_ELEMENTS / REAL_ESSAYS  # some elements fall off the end of short essays
    gt_rows: list[tuple[str, str, int, int]] = []
    for e in range(n_essays):
        essay = f"{rng.integers(16**11, 16**12):012X}{e:05d}"[-12:]
        n_words = int(np.clip(rng.normal(420, 180), 120, 1650))
        n_el = max(1, rng.poisson(per_essay))
        cls = rng.choice(len(CLASSES), size=n_el, p=weights)
        lengths = np.maximum(1, rng.gamma(2.0, mean_words[cls] / 2.0)).astype(int)
        gaps = rng.integers(0, 6, size=n_el)
        pos = 0
        for c, length, gap in zip(cls, lengths, gaps):
            start = pos + int(gap)
            end = min(start + int(length), n_words)
            if start >= end:
                break
            gt_rows.append((essay, classes[c], start, end))
            pos = end
    gt_arr = np.array([(s, e) for _, _, s, e in gt_rows], dtype=np.int64)
    n_gt = len(gt_rows)
    pred_rows: list[tuple[str, str, list[int] | range]] = []
    kind = rng.choice(6, size=n_gt, p=[0.31, 0.18, 0.15, 0.08, 0.04, 0.24])  # exact/shift/trim/extend/wrong/none
    for i, (essay, cls, start, end) in enumerate(gt_rows):
        length = end - start
        k = kind[i]
        if k == 5:
            continue
        if k == 1:
            shift = int(rng.integers(-length // 2 - 1, length // 2 + 2))
            start, end = max(0, start + shift), max(1, end + shift)
        elif k == 2:
            cut = int(rng.integers(0, max(1, length // 2) + 1))
            start, end = (start + cut, end) if rng.random() < 0.5 else (start, end - cut)
        elif k == 3:
            end = end + int(rng.integers(1, length + 2))
        elif k == 4:
            cls = classes[rng.integers(len(CLASSES))]
        if end <= start:
            end = start + 1
        pred_rows.append((essay, cls, range(start, end)))
        if rng.random() < 0.04:  # a duplicate: one TP, one FP
            pred_rows.append((essay, cls, range(start, end)))
    essays = np.array([r[0] for r in gt_rows], dtype=object)
    for _ in range(int(0.06 * n_gt)):  # random spans, some in essays without ground truth
        start = int(rng.integers(0, 600))
        essay = essays[rng.integers(n_gt)] if rng.random() < 0.95 else f"NOGT{rng.integers(10**8):08d}"
        pred_rows.append((essay, classes[rng.integers(len(CLASSES))], range(start, start + int(rng.integers(1, 60)))))
    for i in rng.choice(len(pred_rows), size=min(100, len(pred_rows)), replace=False):  # a few with a hole
        essay, cls, words = pred_rows[i]
        if len(words) > 4:
            pred_rows[i] = (essay, cls, [w for w in words if w != words[len(words) // 2]])
    gt = pd.DataFrame(
        {
            "id": essays,
            "discourse_type": [r[1] for r in gt_rows],
            "predictionstring": [" ".join(map(str, range(s, e))) for s, e in gt_arr],
        }
    )
    pred = pd.DataFrame(
        {
            "id": [r[0] for r in pred_rows],
            "class": [r[1] for r in pred_rows],
            "predictionstring": [" ".join(map(str, r[2])) for r in pred_rows],
        }
    )
    return gt, pred


def run(args: argparse.Namespace) -> None:
    """Time both implementations on the same data and print ``name: value`` lines."""
    quick = bool(getattr(args, "quick", False))
    n_essays = 1560 if quick else 15600
    gt, pred = make_data(n_essays=n_essays, seed=0)
    print(f"metric_gt_rows: {len(gt)}")
    print(f"metric_pred_rows: {len(pred)}")

    # Wall and CPU time: CPU time is the steadier figure on a shared machine (both run single-threaded).
    t0, c0 = time.perf_counter(), time.process_time()
    score_pandas = float(score_feedback_comp(pred, gt))
    pandas_s, pandas_cpu = time.perf_counter() - t0, time.process_time() - c0

    walls, cpus = [], []
    for _ in range(3 if quick else 7):
        t0, c0 = time.perf_counter(), time.process_time()
        result = score(pred, gt)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    ours_s, ours_cpu = statistics.median(walls), statistics.median(cpus)

    print(f"metric_pandas_s: {pandas_s:.3f}")
    print(f"metric_ours_s: {ours_s:.4f}")
    print(f"metric_ours_min_s: {min(walls):.4f}")
    print(f"metric_speedup_vs_pandas: {pandas_s / ours_s:.1f}")
    print(f"metric_pandas_cpu_s: {pandas_cpu:.3f}")
    print(f"metric_ours_cpu_s: {ours_cpu:.4f}")
    print(f"metric_speedup_cpu_vs_pandas: {pandas_cpu / ours_cpu:.1f}")
    print(f"metric_score_pandas: {score_pandas:.12f}")
    print(f"metric_score_ours: {result.f1:.12f}")
    if abs(score_pandas - result.f1) > 1e-12:
        raise RuntimeError(f"metric mismatch: pandas {score_pandas!r} vs ours {result.f1!r}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the data")
    run(parser.parse_args())
