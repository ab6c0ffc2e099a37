"""Post-processing defaults learned from the training data (issue 14 item 3), not copied from the competition.

The public baseline's table (``postprocess.DEFAULT_MIN_WORDS`` / ``DEFAULT_PROBA_THRESH``) was tuned on the real
essays; on a corpus whose spans are shorter it drops good predictions. :func:`learn_postprocess` derives each
class's minimum span length from a low percentile of that class's span lengths in the training folds, and uses one
conservative probability threshold for every class (dropping only spans the model is unsure of). Pure functions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feedback_ner.labels import CLASSES
from feedback_ner.postprocess import PostprocessConfig

DEFAULT_PERCENTILE = 2.0  # a class's min_words: this percentile of its training span lengths (rounded down)
DEFAULT_SLACK = 0.75  # ... times this, so spans a little shorter than the shortest real ones still count
DEFAULT_PROBA = 0.35  # every class's proba_thresh: conservative (a 15-label model's chance level is ~0.07)


def span_lengths(gt: pd.DataFrame) -> dict[str, np.ndarray]:
    """Words per ground-truth span, per class (``discourse_type`` or ``class`` column, ``predictionstring``)."""
    column = "discourse_type" if "discourse_type" in gt.columns else "class"
    lengths = gt["predictionstring"].astype(str).str.split().str.len()
    return {cls: lengths[gt[column] == cls].to_numpy() for cls in CLASSES}


def learn_postprocess(
    gt: pd.DataFrame,
    percentile: float = DEFAULT_PERCENTILE,
    slack: float = DEFAULT_SLACK,
    proba: float = DEFAULT_PROBA,
) -> PostprocessConfig:
    """A :class:`PostprocessConfig` derived from the ground-truth spans ``gt`` of the training essays.

    ``min_words[c] = max(1, floor(slack * percentile_p(lengths of c)))``; a class without spans gets 1.
    ``proba_thresh[c] = proba`` for every class. The other rules stay off.
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile={percentile} must be in [0, 100].")
    if not 0.0 <= proba <= 1.0:
        raise ValueError(f"proba={proba} must be in [0, 1].")
    min_words = {}
    for cls, lengths in span_lengths(gt).items():
        low = float(np.percentile(lengths, percentile)) if len(lengths) else 1.0
        min_words[cls] = max(1, int(np.floor(slack * low)))
    return PostprocessConfig(min_words=min_words, proba_thresh={c: proba for c in CLASSES})
