"""Speed of ``feedback_ner.predict.predict`` against a plain loop, and how much of predict is not the model.

Both run the same checkpoint over the same ~200 sample essays in one process: ``predict`` (windows sorted by length,
batched) and a plain loop that takes one essay at a time and runs each of its windows alone through the same model
(the same windows, the same merge and post-processing; no batching). The share of ``predict``'s time spent outside
the model forward (loading, tokenising, collating, merging windows into words, decoding, post-processing) comes
from timers inside ``predict`` (its ``timings`` argument), not from estimates.

A tiny model makes the forward nearly free, so the share outside it is at its largest there; ``--realistic`` also
times a base-sized Longformer (768 hidden, 12 layers, random weights, built locally) on a few essays, where the
forward costs what a real checkpoint's does. Prints ``name: value`` lines.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from feedback_ner.artifacts import InferenceConfig
from feedback_ner.corpus import load_texts
from feedback_ner.decode import WordProbAccumulator
from feedback_ner.inference import load_checkpoint, predict
from feedback_ner.modeling import encoder_config, model_inputs, trim_to
from feedback_ner.postprocess import submission_from_probs
from feedback_ner.synthetic.corpus import write_corpus
from feedback_ner.synthetic.models import build_tiny
from feedback_ner.windows import FeedbackCollator, pad_multiple_for, tokenize_windows
from feedback_ner.wordtable import test_word_table

MAX_LENGTH = 1024  # a typical inference window (FACTS.md: 1024-2048 in the best solutions)
STRIDE = 128


def make_checkpoint(root: Path, n_essays: int, seed: int = 0) -> tuple[Path, Path]:
    """A tiny Longformer checkpoint folder (with ``feedback_ner.json``) and a folder of ``n_essays`` essays."""
    corpus = write_corpus(root / "corpus", n=60, seed=seed, n_test=n_essays)
    model_dir = build_tiny("longformer", corpus, root / "tiny", seed=seed)
    InferenceConfig(max_length=MAX_LENGTH, stride=STRIDE).save(model_dir)
    return model_dir, corpus / "test"


def make_base_checkpoint(tiny_dir: Path, out: Path) -> Path:
    """A base-sized Longformer (random weights) with the tiny checkpoint's tokenizer and inference settings."""
    from transformers import LongformerConfig, LongformerForTokenClassification

    config = LongformerConfig.from_pretrained(tiny_dir)
    config.update(dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                       attention_window=[256] * 12))
    torch.manual_seed(0)
    LongformerForTokenClassification(config).save_pretrained(out)
    for f in tiny_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "feedback_ner")):
            shutil.copy2(f, out / f.name)
    return out


def loop_predict(model_dir: Path, texts: dict[str, str], timings: dict[str, float]) -> dict[str, np.ndarray]:
    """The plain way: load, make the same windows, then one essay at a time, one window per forward."""
    t_start = time.perf_counter()
    ckpt = load_checkpoint(model_dir, "cpu")
    cfg, model = ckpt.config, ckpt.model
    table = test_word_table(texts)
    ds = tokenize_windows(table, ckpt.tokenizer, cfg.max_length, cfg.stride, keep_newlines=cfg.keep_newlines)
    windows = ds.to_list()
    collator = FeedbackCollator(ckpt.tokenizer, pad_to_multiple_of=pad_multiple_for(encoder_config(model.config)))
    acc = WordProbAccumulator([len(s) for s in table["word_start"]], subtoken=cfg.subtoken_rule)
    by_essay: dict[int, list[dict]] = {}
    for w in windows:
        by_essay.setdefault(w["essay_index"], []).append(w)
    forward = 0.0
    with torch.inference_mode():
        for essay in range(len(table)):
            for window in by_essay.get(essay, []):
                batch = collator([window])
                word_ids, essay_index = batch.pop("word_ids").numpy(), batch.pop("essay_index").numpy()
                length = batch["input_ids"].shape[1]
                t0 = time.perf_counter()
                logits = model(**model_inputs(batch, model.config, collator.pad_id)).logits
                probs = trim_to(logits, length).float().softmax(-1).numpy()
                forward += time.perf_counter() - t0
                acc.add(essay_index, word_ids, probs)
    probs = acc.result(table["id"].tolist())
    submission_from_probs(probs, None)
    timings["forward_s"] = forward
    timings["total_s"] = time.perf_counter() - t_start
    return probs


def _compare(model_dir: Path, texts: dict[str, str], batch_size: int, prefix: str, repeats: int) -> None:
    n = len(texts)
    best_p: dict[str, float] | None = None
    best_l: dict[str, float] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):  # alternate the two, keep each one's fastest run
            tp: dict[str, float] = {}
            predict([model_dir], texts, batch_size=batch_size, device="cpu", timings=tp,
                    probs_out=Path(tmp) / "p.npz")
            if best_p is None or tp["total_s"] < best_p["total_s"]:
                best_p = tp
            tl: dict[str, float] = {}
            loop_probs = loop_predict(model_dir, texts, tl)
            if best_l is None or tl["total_s"] < best_l["total_s"]:
                best_l = tl
        from feedback_ner.probs import load_word_probs

        pred_probs = load_word_probs(Path(tmp) / "p.npz")
    diff = max(float(np.abs(pred_probs[k] - loop_probs[k]).max()) for k in texts if len(pred_probs[k]))
    print(f"{prefix}essays: {n}")
    print(f"{prefix}batch_size: {batch_size}")
    print(f"{prefix}predict_essays_per_s: {n / best_p['total_s']:.2f}")
    print(f"{prefix}loop_essays_per_s: {n / best_l['total_s']:.2f}")
    print(f"{prefix}predict_speedup_vs_loop: {best_l['total_s'] / best_p['total_s']:.2f}")
    outside = best_p["total_s"] - best_p["forward_s"]
    print(f"{prefix}predict_overhead_share: {outside / best_p['total_s']:.3f}")
    print(f"{prefix}predict_overhead_share_excl_load: "
          f"{(outside - best_p['load_s']) / (best_p['total_s'] - best_p['load_s']):.3f}")
    print(f"{prefix}predict_breakdown_s: " + ", ".join(f"{k} {v:.3f}" for k, v in best_p.items()))
    print(f"{prefix}loop_forward_share: {best_l['forward_s'] / best_l['total_s']:.3f}")
    print(f"{prefix}max_prob_diff_predict_vs_loop: {diff:.2e}")


def run(args: argparse.Namespace) -> None:
    """Time predict and the plain loop side by side; print ``name: value`` lines."""
    quick = bool(getattr(args, "quick", False))
    realistic = bool(getattr(args, "realistic", False))
    n_essays = int(getattr(args, "essays", 0) or (60 if quick else 200))
    batch_size = int(getattr(args, "batch_size", 0) or 8)
    logging.getLogger("feedback_ner").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        root = Path(tmp)
        model_dir, text_dir = make_checkpoint(root, n_essays)
        texts = load_texts(text_dir)
        print(f"predict_torch_threads: {torch.get_num_threads()}")
        _compare(model_dir, texts, batch_size, "", repeats=1 if quick else 2)
        if realistic:
            base = make_base_checkpoint(model_dir, root / "base")
            few = dict(list(texts.items())[:6])
            _compare(base, few, batch_size, "base_", repeats=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="60 essays, one repeat")
    parser.add_argument("--realistic", action="store_true", help="also a base-sized model on 6 essays")
    parser.add_argument("--essays", type=int, default=0, help="number of essays (default 200)")
    parser.add_argument("--batch-size", type=int, default=0, help="windows per forward in predict (default 8)")
    run(parser.parse_args())
