"""Post-processing defaults learned from the training folds (issue 14 item 3)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import small_config

from feedback_ner.artifacts import InferenceConfig
from feedback_ner.config import parse_config
from feedback_ner.kfold import load_data, run
from feedback_ner.labels import CLASSES
from feedback_ner.postprocess import PostprocessConfig
from feedback_ner.postprocess_defaults import learn_postprocess, span_lengths


def spans(cls: str, lengths: list[int]) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [f"e{i}" for i in range(len(lengths))],
        "discourse_type": cls,
        "predictionstring": [" ".join(map(str, range(n))) for n in lengths],
    })


def test_min_words_come_from_a_low_percentile_of_the_span_lengths():
    gt = pd.concat([spans("Claim", [4, 5, 6, 7, 8] * 20), spans("Concluding Statement", list(range(10, 15)) * 20)])
    assert list(span_lengths(gt)["Claim"][:3]) == [4, 5, 6]
    config = learn_postprocess(gt, percentile=0, slack=1.0, proba=0.2)
    assert config.min_words["Claim"] == 4 and config.min_words["Concluding Statement"] == 10
    assert config.min_words["Rebuttal"] == 1, "a class without training spans filters nothing by length"
    assert set(config.proba_thresh.values()) == {0.2}
    # the default is conservative: below the shortest spans, so the 10-14-word conclusions are all kept
    default = learn_postprocess(gt)
    assert default.min_words["Concluding Statement"] <= 10 and default.min_words["Claim"] <= 4
    assert all(0 < default.proba_thresh[c] < min(PostprocessConfig().proba_thresh.values()) for c in CLASSES)


@pytest.mark.parametrize("kwargs,needle", [({"percentile": 120}, "percentile"), ({"proba": -1}, "proba")])
def test_bad_arguments_name_the_argument(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        learn_postprocess(spans("Claim", [3]), **kwargs)


def test_kfold_evaluates_with_the_config_learned_from_its_training_folds(tmp_path, corpus_dir, tiny_models):
    """Issue 14: with no postprocess file the fold's evaluation (and its checkpoint) use the defaults learned from
    the run's spans;
    `postprocess: baseline` keeps the public table."""
    for value, expected in ((None, "learned"), ("baseline", "table")):
        out = tmp_path / str(value)
        cfg = small_config(corpus_dir, tiny_models("bert"), out, folds=[0], max_essays=20, max_steps=2,
                           postprocess=value)
        model_args, data_args, train_args = parse_config(None, overrides=cfg)
        run(model_args, data_args, train_args)
        table, gt = load_data(data_args)
        train_gt = gt[gt["id"].isin(set(table["id"]))]  # one config per run: all its essays' spans
        saved = PostprocessConfig.from_dict(InferenceConfig.load(out / "fold_0" / "model").postprocess)
        assert saved == (learn_postprocess(train_gt) if expected == "learned" else PostprocessConfig())
        assert "eval_f1" in json.loads((out / "fold_0" / "metrics.json").read_text())
