"""Model cards: a ``README.md`` in the Hugging Face model-card format for every saved fold model and for the run
folder, so a folder uploaded to the Hub or to a Kaggle dataset explains itself.

The YAML header carries ``library_name: transformers``, ``pipeline_tag: token-classification``, tags and a
``model-index`` with the fold's macro overlap-F1 and per-class F1; the body has the F1 table, the settings, the
training log (per evaluated epoch) and how to load and predict. :func:`write_fold_card` also keeps the fold's
``trainer_state.json`` (the log the card's table comes from) beside the model, since the Trainer's checkpoints,
which hold it, are deleted once the best one is saved.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from feedback_ner.artifacts import InferenceConfig
from feedback_ner.files import atomic_write
from feedback_ner.labels import CLASSES

CARD_FILE = "README.md"
STATE_FILE = "trainer_state.json"
TAGS = ["feedback_ner", "token-classification", "feedback-prize", "persuade", "discourse-elements", "essays"]
DATASET = {"name": "Feedback Prize - Evaluating Student Writing (PERSUADE)", "type": "feedback-prize-2021"}
SETTINGS = (
    "model_name_or_path", "head", "max_length", "stride", "subtoken_rule", "label_all_subtokens", "keep_newlines",
    "normalize_spelling",
    "num_folds", "fold_seed", "learning_rate", "num_train_epochs", "per_device_train_batch_size",
    "lr_scheduler_type", "warmup_steps", "weight_decay", "seed",
)


def _class_f1(metrics: Mapping[str, Any], prefix: str = "eval_f1_") -> dict[str, float]:
    out = {}
    for cls in CLASSES:
        key = prefix + cls.replace(" ", "_")
        if key in metrics:
            out[cls] = float(metrics[key])
    return out


def _header(name: str, f1: float, per_class: Mapping[str, float], split: str, base_model: str | None) -> str:
    metrics = [{"type": "f1", "value": round(float(f1), 4), "name": f"macro overlap-F1 ({split})"}]
    metrics += [{"type": "f1", "value": round(float(v), 4), "name": f"F1 {cls} ({split})"} for cls, v in
                per_class.items()]
    meta: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "token-classification",
        "tags": list(TAGS),
        "metrics": ["f1"],
        "model-index": [{
            "name": name,
            "results": [{
                "task": {"type": "token-classification", "name": "Discourse element segmentation"},
                "dataset": {**DATASET, "split": split},
                "metrics": metrics,
            }],
        }],
    }
    if base_model and _is_hub_name(str(base_model)):
        meta["base_model"] = base_model  # local folders and package models are not linked
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _is_hub_name(name: str) -> bool:
    """``owner/name`` or ``name`` as on the Hub, not a local path (absolute, relative, existing) or ``pkg:`` model."""
    return (name.count("/") <= 1 and not name.startswith((".", "/", "~", "pkg:")) and "\\" not in name
            and not Path(name).exists())


def _f1_table(per_class: Mapping[str, float], macro: float) -> str:
    lines = ["| class | F1 |", "| --- | ---: |"]
    lines += [f"| {cls} | {v:.4f} |" for cls, v in per_class.items()]
    lines.append(f"| **macro** | **{macro:.4f}** |")
    return "\n".join(lines)


def _settings_table(settings: Mapping[str, Any]) -> str:
    lines = ["| setting | value |", "| --- | --- |"]
    for key in SETTINGS:
        if key in settings and settings[key] is not None:
            lines.append(f"| `{key}` | `{settings[key]}` |")
    return "\n".join(lines)


def training_evals(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The evaluations of a Trainer log made while training: those after its last ``train_runtime`` entry re-score
    the reloaded best epoch, and would read as another evaluation at the last epoch."""
    ends = [i for i, h in enumerate(history) if "train_runtime" in h]
    kept = history[: ends[-1]] if ends else history
    return [h for h in kept if "eval_f1" in h]


def best_epoch(history: list[dict[str, Any]], best_metric: float | None, metric: str | None = "f1") -> float | None:
    """The first epoch whose evaluation scored ``best_metric`` on ``metric`` (``metric_for_best_model``; the epoch
    kept: ties keep the first); None when unknown."""
    key = f"eval_{metric or 'f1'}".replace("eval_eval_", "eval_")
    if best_metric is None:
        return None
    return next((float(h["epoch"]) for h in training_evals(history)
                 if "epoch" in h and key in h and abs(float(h[key]) - float(best_metric)) < 1e-12), None)


def _history_table(history: list[dict[str, Any]]) -> str:
    evals = training_evals(history)
    if not evals:
        return ""
    losses = {round(h["epoch"], 2): h["loss"] for h in history if "loss" in h and "epoch" in h}
    lines = ["| epoch | step | training loss | eval loss | eval F1 |", "| ---: | ---: | ---: | ---: | ---: |"]
    for h in evals:
        epoch = h.get("epoch", float("nan"))
        loss = losses.get(round(epoch, 2))
        lines.append(f"| {epoch:.2f} | {h.get('step', '')} | {'' if loss is None else f'{loss:.4f}'} | "
                     f"{h.get('eval_loss', float('nan')):.4f} | {h['eval_f1']:.4f} |")
    return "\n".join(lines)


def _usage(model_ref: str) -> str:
    return f"""## How to use

Install `feedback_ner` (offline: `pip install --no-index --find-links <wheels> feedback_ner`), then:

```python
from transformers import pipeline
import feedback_ner.pipeline  # registers the "essay-discourse" pipeline

find = pipeline("essay-discourse", model="{model_ref}")
spans = find("Some people think that ...")  # [{{"class", "words", "start", "end", "text", "score"}}, ...]
```

Several checkpoints (the folds of a run, other runs), averaged at the word level:

```python
from feedback_ner import SpanPredictor

spans = SpanPredictor(["run/fold_0/model", "run/fold_1/model"])(["essay one ...", "essay two ..."], batch_size=8)
```

A Kaggle submission: `python -m feedback_ner.predict --model {model_ref} --texts test/ --out submission.csv`.
Prediction reproduces training-time evaluation: windows, stride, sub-token rule and post-processing come from
`feedback_ner.json` in this folder.
"""


def write_fold_card(
    model_dir: str | os.PathLike, metrics: Mapping[str, Any], state: Any = None, name: str | None = None
) -> Path:
    """Write ``model_dir/README.md`` for a fold's best checkpoint from its evaluation ``metrics`` (``eval_f1``,
    ``eval_f1_<class>``) and, when given, the Trainer ``state`` (its log becomes the training table and is saved
    as ``trainer_state.json``). Settings come from the folder's ``feedback_ner.json``."""
    model_dir = Path(model_dir)
    config = InferenceConfig.load(model_dir)
    fold = config.extra.get("fold", "?")
    settings = {**config.extra.get("train_config", {}), "max_length": config.max_length, "stride": config.stride,
                "subtoken_rule": config.subtoken_rule, "keep_newlines": config.keep_newlines,
                "label_all_subtokens": config.label_all_subtokens}
    history: list[dict[str, Any]] = []
    if state is not None:
        history = list(getattr(state, "log_history", []) or [])
        if hasattr(state, "save_to_json"):
            state.save_to_json(str(model_dir / STATE_FILE))
    f1 = float(metrics.get("eval_f1", float("nan")))
    per_class = _class_f1(metrics)
    run_name = model_dir.parent.parent.name or "run"
    name = name or f"{run_name}-fold{fold}"
    split = f"fold {fold}, held out"
    body = [
        _header(name, f1, per_class, split, settings.get("model_name_or_path")),
        f"# {name}\n",
        f"A token-classification model that finds the discourse elements of student essays (Lead, Position, Claim, "
        f"Counterclaim, Rebuttal, Evidence, Concluding Statement) as word spans, trained with "
        f"`feedback_ner` on every fold but fold {fold} of the Feedback Prize (PERSUADE) data.\n",
        f"## Fold {fold} F1 (competition macro overlap-F1 on its held-out essays)\n",
        _f1_table(per_class, f1) + "\n",
        "## Settings\n",
        _settings_table(settings) + "\n",
        "Post-processing (per-class minimum words and probability thresholds) is stored in `feedback_ner.json`.\n",
    ]
    table = _history_table(history)
    if table:
        body += ["## Training log (evaluated epochs)\n", table + "\n"]
    body.append(_usage(str(model_dir)))
    return _write(model_dir / CARD_FILE, "\n".join(body))


def write_run_card(run_dir: str | os.PathLike, cv: pd.DataFrame) -> Path:
    """Write ``run_dir/README.md``: the CV table (per class, per fold and overall) and the folds' cards' links."""
    run_dir = Path(run_dir)
    overall = cv["overall"] if "overall" in cv.columns else cv.iloc[:, -1]
    per_class = {c: float(overall[c]) for c in CLASSES if c in overall.index and pd.notna(overall[c])}
    macro = float(overall.get("macro", float("nan")))
    config_file = run_dir / "config.yaml"
    settings = (yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
    folds = sorted(p.parent.name for p in run_dir.glob("fold_*/model"))
    cv_lines = ["| class | " + " | ".join(map(str, cv.columns)) + " |", "| --- |" + " ---: |" * len(cv.columns)]
    for idx, row in cv.iterrows():
        cv_lines.append(f"| {idx} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
    body = [
        _header(run_dir.name, macro, per_class, "out-of-fold, all folds", settings.get("model_name_or_path")),
        f"# {run_dir.name}\n",
        f"{len(folds)} fold model(s) trained with feedback_ner; each fold's model folder has its own card.\n",
        "## Cross-validation (competition macro overlap-F1, out-of-fold)\n",
        "\n".join(cv_lines) + "\n",
        "## Settings\n",
        _settings_table(settings) + "\n",
        "Fold models: " + ", ".join(f"[`{f}/model`]({f}/model/README.md)" for f in folds) + "\n",
        _usage(str(run_dir / (folds[0] if folds else "fold_0") / "model")),
    ]
    return _write(run_dir / CARD_FILE, "\n".join(body))


def read_card(path: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """The YAML header (dict) and the Markdown body of a card."""
    text = Path(path).read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise ValueError(f"{path}: no YAML header")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def _write(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
