"""The error-analysis page: a run's (or a submission's) out-of-fold predictions against the ground truth, as one
self-contained HTML file (inline CSS, JS and SVG; no network).

:func:`load_predictions` reads what the page shows from a run folder (``oof.npz`` + the checkpoints' post-processing
+ ``cv.csv``) or from an out-of-fold submission CSV (an ensemble's, a rescored ``oof_submission.csv``);
:func:`page_data` turns an :class:`analysis.ErrorAnalysis` and the essays into the page's JSON and
:func:`write_page` fills the template (``templates/error_page.html``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedback_ner.analysis import GT_KINDS, PRED_KINDS, ErrorAnalysis, length_f1
from feedback_ner.artifacts import choose_postprocess, read_run_config, run_skip_bad
from feedback_ner.errors import FeedbackError
from feedback_ner.files import atomic_write
from feedback_ner.labels import B_IDS, CLASSES, LABEL2ID, word_offsets
from feedback_ner.oofruns import check_oof_origin, oof_postprocess, run_checkpoint
from feedback_ner.postprocess import PostprocessConfig, candidate_spans, filter_spans
from feedback_ner.probs import load_word_probs
from feedback_ner.scorefiles import read_submission

logger = logging.getLogger("feedback_ner.errorpage")

TEMPLATE = "error_page.html"
CLASS_COLORS = {
    "Lead": "#8dd3c7", "Position": "#e6ab02", "Claim": "#80b1d3", "Counterclaim": "#fb8072",
    "Rebuttal": "#bc80bd", "Evidence": "#b3de69", "Concluding Statement": "#fdb462",
}
GT_KIND_COLORS = ("#1b7f3b", "#8fbc8f", "#d98c00", "#7b2cbf", "#b00020")  # GT_KINDS order


@dataclass
class Predictions:
    """What the page shows: predictions (``id, class, predictionstring`` [+ ``score``]) of the essays in ``ids``,
    their word probabilities (None for a submission CSV), the CV table if the run has one, and where the data is."""

    pred: pd.DataFrame
    ids: list[str]
    word_probs: dict[str, np.ndarray] | None
    cv: pd.DataFrame | None
    data_dir: Path
    source: str
    postprocess: str
    skip_bad: bool = False  # the run's own setting: its data is read the way it was trained on


def load_predictions(
    source: str | os.PathLike, data_dir: str | os.PathLike | None = None, postprocess: str | os.PathLike | None = None
) -> Predictions:
    """Predictions from a run folder (its ``oof.npz`` decoded with the checkpoints' post-processing, or with
    ``postprocess``, a JSON such as ``tune``'s) or from a submission CSV. ``data_dir`` defaults to the run's
    ``config.yaml`` ``data_dir``. Raises :class:`FeedbackError` naming the path when something is missing."""
    source = Path(source)
    if source.is_dir():
        return _from_run(source, data_dir, postprocess)
    if source.is_file() and source.suffix == ".csv":
        return _from_csv(source, data_dir)
    if source.is_file() and source.suffix == ".npz":
        return _from_probs(source, source.parent, data_dir, postprocess, cv=None)
    raise FeedbackError(f"{source}: neither a run folder (with oof.npz) nor a submission .csv; check the path")


def _resolve_data(run_dir: Path, data_dir: str | os.PathLike | None) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    value = read_run_config(run_dir).get("data_dir")
    if value:
        return Path(value)
    raise FeedbackError(f"{run_dir}: no config.yaml naming data_dir; pass --data with the Kaggle folder")


def _from_run(run_dir: Path, data_dir: str | os.PathLike | None, postprocess: str | os.PathLike | None) -> Predictions:
    oof = run_dir / "oof.npz"
    if not oof.is_file():
        folds = sorted(run_dir.glob("fold_*/oof.npz"))
        if not folds:
            raise FeedbackError(f"{run_dir}: no oof.npz (nor fold_*/oof.npz); is it a finished training run?")
    cv = None
    if (run_dir / "cv.csv").is_file():
        cv = pd.read_csv(run_dir / "cv.csv", index_col=0)
    return _from_probs(oof, run_dir, data_dir, postprocess, cv)


def _from_probs(
    oof: Path, run_dir: Path, data_dir: str | os.PathLike | None, postprocess: str | os.PathLike | None,
    cv: pd.DataFrame | None,
) -> Predictions:
    if oof.is_file():
        probs = load_word_probs(oof)
        check_oof_origin(oof)
    else:
        probs = {}
        for f in sorted(run_dir.glob("fold_*/oof.npz")):
            probs.update(load_word_probs(f))
    if postprocess is not None:
        if not Path(postprocess).is_file():
            raise FeedbackError(f"{postprocess}: no such post-processing JSON; give the file tune wrote")
        config, how = PostprocessConfig.load(postprocess), str(postprocess)
    else:  # what the CV table (and tune, rescore) decode with: one rule for runs, folds and ensembles
        chosen = oof_postprocess(oof) if oof.is_file() else choose_postprocess(checkpoint=run_checkpoint(oof))
        config, how = chosen.config, chosen.source
    spans = filter_spans(candidate_spans(probs), config)
    pred = spans[["id", "class", "predictionstring", "score"]].reset_index(drop=True)
    return Predictions(pred, list(probs), probs, cv, _resolve_data(run_dir, data_dir), str(oof), how,
                       run_skip_bad(run_dir))


def _from_csv(path: Path, data_dir: str | os.PathLike | None) -> Predictions:
    pred = read_submission(path, "RUN")
    extra = pd.read_csv(path, usecols=lambda c: c == "score")  # a rescored submission's span scores, if any
    if "score" in extra.columns:
        pred["score"] = pd.to_numeric(extra["score"], errors="coerce")
    ids = list(dict.fromkeys(pred["id"].astype(str)))
    return Predictions(pred, ids, None, None, _resolve_data(path.parent, data_dir), str(path), "as in the file",
                       run_skip_bad(path.parent))


def _utf16(text: str, offsets: np.ndarray) -> list[int]:
    """Character offsets of ``text`` as JavaScript counts them (UTF-16 code units: an emoji or any character beyond
    U+FFFF is two), so that the page's ``text.slice`` cuts the same words as Python did."""
    if not any(ord(c) > 0xFFFF for c in text):
        return [int(o) for o in offsets]
    units = np.concatenate([[0], np.cumsum([2 if ord(c) > 0xFFFF else 1 for c in text])])
    return units[np.asarray(offsets, dtype=np.int64)].astype(int).tolist()


def page_data(
    analysis: ErrorAnalysis,
    texts: dict[str, str],
    word_probs: dict[str, np.ndarray] | None = None,
    cv: pd.DataFrame | None = None,
    subtitle: str = "",
    max_essays: int = 300,
) -> dict[str, Any]:
    """The JSON the page renders: tables, charts' numbers and the ``max_essays`` worst essays with their spans."""
    breakdown = analysis.breakdown()
    per_essay = analysis.per_essay()
    words = {k: word_offsets(texts[k]) for k in per_essay.index if k in texts}
    essay_words = pd.Series({k: len(v[0]) for k, v in words.items()})
    by_essay, by_span = length_f1(analysis, essay_words)
    class_index = {c: i for i, c in enumerate(CLASSES)}
    gt_by_id = {k: g for k, g in analysis.gt.groupby("id", sort=False)}
    pred_by_id = {k: p for k, p in analysis.pred.groupby("id", sort=False)}
    essays = []
    for essay_id, row in per_essay.head(max_essays).iterrows():
        if essay_id not in words:
            continue
        ws, we = words[essay_id]
        g = gt_by_id.get(essay_id, analysis.gt.iloc[:0])
        p = pred_by_id.get(essay_id, analysis.pred.iloc[:0])
        essays.append({
            "id": str(essay_id), "f1": float(row["F1"]), "tp": int(row["TP"]), "fp": int(row["FP"]),
            "fn": int(row["FN"]),
            "kinds": {k: int(v) for k, v in row.items() if k.startswith(("gt_", "pred_")) and v
                      and k not in ("gt_matched", "pred_correct")},
            "text": texts[essay_id], "ws": _utf16(texts[essay_id], ws), "we": _utf16(texts[essay_id], we),
            "gold": [[int(a), int(b), class_index.get(c, -1), k] for a, b, c, k in
                     zip(g["start"], g["end"], g["class"], g["kind"])],
            "pred": [[int(a), int(b), class_index.get(c, -1), None if pd.isna(s) else round(float(s), 4), k]
                     for a, b, c, s, k in zip(p["start"], p["end"], p["class"], p["score"], p["kind"])],
            "probs": _class_probs(word_probs[essay_id]) if word_probs and essay_id in word_probs else None,
        })
    return {
        "subtitle": subtitle,
        "classes": list(CLASSES),
        "colors": CLASS_COLORS,
        "cv": _table(cv) if cv is not None else None,
        "breakdown": _table(breakdown),
        "breakdown_gt": [{"cls": c, "counts": [int(breakdown.loc[c, f"gt_{k}"]) for k in GT_KINDS]}
                         for c in breakdown.index],
        "gt_kinds": list(GT_KINDS),
        "kind_colors": list(GT_KIND_COLORS),
        "kinds_all": list(dict.fromkeys([*GT_KINDS, *PRED_KINDS])),
        "confusion": {"labels": [str(x) for x in analysis.confusion().index],
                      "matrix": analysis.confusion().to_numpy().tolist()},
        "length_essay": {**_table(by_essay), "value": "macro_F1"},
        "length_span": {**_table(by_span), "value": "F1"},
        "essays": essays,
        "essays_left_out": max(0, len(per_essay) - len(essays)),
    }


def _class_probs(probs: np.ndarray) -> list[list[int]]:
    """Per class, P(B-X) + P(I-X) of every word in percent (ints keep the page small)."""
    out = []
    for c in CLASSES:
        p = probs[:, B_IDS[c]] + probs[:, LABEL2ID[f"I-{c}"]]
        out.append(np.rint(np.clip(p, 0, 1) * 100).astype(int).tolist())
    return out


def _table(df: pd.DataFrame) -> dict[str, Any]:
    """``{columns, rows}`` with the index as the first column; NaN as null."""
    columns = [str(df.index.name or "")] + [str(c) for c in df.columns]
    rows = []
    for index, values in zip(df.index, df.itertuples(index=False)):
        row: list[Any] = [str(index)]
        for v in values:
            if isinstance(v, (float, np.floating)):
                row.append(None if np.isnan(v) else float(v))
            elif isinstance(v, (int, np.integer)):
                row.append(int(v))
            else:
                row.append(str(v))
        rows.append(row)
    return {"columns": columns, "rows": rows}


def render(data: dict[str, Any], title: str) -> str:
    """The page's HTML: the template with the title and the data. Every ``<`` of the data is written ``\\u003c``
    (the same string to JSON), so essay text can neither close the script element nor open a comment in it
    (``<!--`` followed by ``<script`` would hide the page's own script from the browser)."""
    template = resources.files("feedback_ner").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    safe_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return template.replace("__TITLE__", safe_title).replace("__DATA__", payload)


def write_page(path: str | os.PathLike, data: dict[str, Any], title: str) -> Path:
    """Write the page atomically; returns its path."""
    html = render(data, title)
    return atomic_write(path, lambda tmp: tmp.write_text(html, encoding="utf-8"))
