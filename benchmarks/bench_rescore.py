"""Speed of the second stage (issue 13): candidates + features + LightGBM scoring + decoding at the real size.

Word probabilities of 15,594 essays (1,500 with ``--quick``) are made from a sample corpus' labels: the one-hot
BIO labels as logits (scale 5) plus Gaussian noise (sigma 0.5), in 30% of the essays the second half of the words
confused with one I- label, through a softmax (:func:`noisy_probs`). A rescorer is trained (untimed) on the first
500 essays (candidate thresholds learned there, as ``rescore`` does); then, timed, the path of
``predict --rescore`` runs on every essay: stack the words with their texts' paragraph and sentence structure,
make the candidates, compute the features, score with LightGBM, decode. Prints the seconds, the share in
candidates + features vs LightGBM, and the candidate recall. Target: under 60 s at the real size on this machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from feedback_ner import rescoring as rs
from feedback_ner import span_features as sf
from feedback_ner.labels import CLASSES, NUM_LABELS
from feedback_ner.synthetic.corpus import write_corpus
from feedback_ner.wordtable import load_word_table

REAL_ESSAYS = 15594
TRAIN_ESSAYS = 500
TARGET_S = 60.0


def noisy_probs(table, seed: int = 0, sigma: float = 0.5, scale: float = 5.0, confuse: float = 0.3
                ) -> dict[str, np.ndarray]:
    """Softmax of ``scale`` * one-hot labels + N(0, sigma) logits, per essay of the word table; in a share
    ``confuse`` of the essays the second half of the words also gets a high logit for one random I- label (a model
    unsure of the class), so that there is something to rescore."""
    rng = np.random.default_rng(seed)
    out = {}
    for essay_id, labels in zip(table["id"], table["labels"], strict=True):
        labels = np.asarray(labels, dtype=np.int64)
        logits = rng.normal(0.0, sigma, (len(labels), NUM_LABELS)).astype(np.float32)
        logits[np.arange(len(labels)), labels] += scale
        if rng.random() < confuse:
            half = np.arange(len(labels) // 2, len(labels))
            logits[half, 2 * rng.integers(1, len(CLASSES) + 1)] += scale * rng.uniform(0.7, 1.1)  # an I- label
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        out[str(essay_id)] = logits / logits.sum(axis=1, keepdims=True)
    return out


def run(args: argparse.Namespace) -> None:
    n = 1500 if args.quick else REAL_ESSAYS
    corpus = write_corpus(args.workdir / "corpus", n=n, seed=0)
    table, gt = load_word_table(corpus, args.workdir / "prepared")
    texts = dict(zip(table["id"].astype(str), table["text"], strict=True))
    probs = noisy_probs(table)
    gt = gt.rename(columns={"class": "discourse_type"}) if "discourse_type" not in gt.columns else gt
    n_words = sum(len(p) for p in probs.values())
    print(f"rescore_essays: {len(probs)}\nrescore_words: {n_words}")

    train_ids = list(probs)[:TRAIN_ESSAYS]
    train_probs, train_gt = {i: probs[i] for i in train_ids}, gt[gt["id"].astype(str).isin(set(train_ids))]
    config = sf.fit_candidate_config(sf.stack_words(train_probs), train_gt, sf.span_length_limits(gt))
    train = rs.build_set(train_probs, config, {i: texts[i] for i in train_ids}, train_gt)
    rescorer = rs.fit_rescorer(train, config, {c: 0.5 for c in CLASSES})

    t0 = time.perf_counter()
    words = sf.stack_words(probs, texts)
    t1 = time.perf_counter()
    cand = sf.make_candidates(words, config)
    t2 = time.perf_counter()
    x = sf.features(words, cand)
    t3 = time.perf_counter()
    scores = rs.predict_scores(rescorer.models, x, cand.class_id)
    t4 = time.perf_counter()
    kept = rs.decode(cand, scores, rescorer.thresholds, rescorer.overlap)
    rs.submission(words, cand, kept)
    t5 = time.perf_counter()
    total = t5 - t0
    features_s = t3 - t0
    recall = sf.candidate_recall(words, cand, gt)
    print(f"rescore_candidates: {len(cand)}")
    print(f"rescore_stack_s: {t1 - t0:.2f}\nrescore_candidates_s: {t2 - t1:.2f}\nrescore_features_s: {t3 - t2:.2f}")
    print(f"rescore_lightgbm_s: {t4 - t3:.2f}\nrescore_decode_s: {t5 - t4:.2f}")
    print(f"rescore_total_s: {total:.2f}")
    print(f"rescore_share_candidates_features: {features_s / total:.2f}")
    print(f"rescore_share_lightgbm: {(t4 - t3) / total:.2f}")
    print(f"rescore_candidate_recall_mean: {recall.loc['mean', 'recall']:.4f}")
    print(f"rescore_target_s: {TARGET_S:.0f} ({'met' if total < TARGET_S or args.quick else 'NOT met'})")
