"""The ``essay-discourse`` pipeline and ``feedback_ner.SpanPredictor`` (issue 15): the same spans as ``predict``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import feedback_ner
from feedback_ner.errors import FeedbackError
from feedback_ner.predict import predict
from feedback_ner.probs import load_word_probs


@pytest.fixture(scope="module")
def fold_run(bert_run) -> Path:
    """The session's trained run, read only."""
    return bert_run


def held_out(run_dir: Path, corpus_dir: Path, fold: int = 0) -> dict[str, str]:
    ids = sorted(load_word_probs(run_dir / f"fold_{fold}" / "oof.npz"))
    return {k: (corpus_dir / "train" / f"{k}.txt").read_text(encoding="utf-8") for k in ids}


def as_rows(ids, spans_per_text) -> list[tuple[str, str, str]]:
    return sorted((k, s["class"], " ".join(map(str, s["words"]))) for k, spans in zip(ids, spans_per_text)
                  for s in spans)


def test_pipeline_gives_the_spans_of_predict(fold_run, corpus_dir):
    from transformers import pipeline

    import feedback_ner.pipeline  # noqa: F401  (registers the task)

    model = fold_run / "fold_0" / "model"
    texts = held_out(fold_run, corpus_dir)
    find = pipeline("essay-discourse", model=str(model))
    spans = find(list(texts.values()), batch_size=4)
    expected = predict([model], texts)
    assert len(expected) > 0
    assert as_rows(texts, spans) == sorted(map(tuple, expected[["id", "class", "predictionstring"]].values.tolist()))
    first_id, first_text = next(iter(texts.items()))
    one = find(first_text)
    assert [(s["class"], s["start"], s["end"]) for s in one] == [(s["class"], s["start"], s["end"]) for s in spans[0]]
    for s in spans[0]:
        assert s["text"] == first_text[s["start"]:s["end"]]
        words = first_text.split()
        assert s["text"].split() == words[s["words"][0]:s["words"][-1] + 1]
        assert 0 <= s["score"] <= 1


def test_span_predictor_of_two_folds_gives_the_spans_of_predict(fold_run, corpus_dir):
    models = [fold_run / "fold_0" / "model", fold_run / "fold_1" / "model"]
    texts = dict(list(held_out(fold_run, corpus_dir, fold=1).items())[:6])
    predictor = feedback_ner.SpanPredictor(models, weights=[2, 1])
    spans = predictor(list(texts.values()), batch_size=3)
    expected = predict(models, texts, weights=[2, 1])
    assert as_rows(texts, spans) == sorted(map(tuple, expected[["id", "class", "predictionstring"]].values.tolist()))
    assert predictor([]) == []
    with pytest.raises(FeedbackError, match="text 1"):
        predictor(["an essay", 3])


def test_span_predictor_decodes_as_predict_does(fold_run, corpus_dir, tmp_path):
    """Found by probing: after `tune`, predict decoded with the run's tuned postprocess.json and SpanPredictor with
    the checkpoint's (24 spans against 17), and a dict {id: text} was read as a list of its keys. SpanPredictor now
    makes predict's choice, takes a dict (-> a dict of span lists) and refuses mistakes as predict does."""
    from feedback_ner.artifacts import InferenceConfig
    from feedback_ner.postprocess import PostprocessConfig

    run = Path(shutil.copytree(fold_run, tmp_path / "run", ignore=shutil.ignore_patterns("rescore*")))
    PostprocessConfig.zeros().save(run / "postprocess.json")  # a "tuned" file that keeps every candidate
    model = run / "fold_0" / "model"
    texts = dict(list(held_out(run, corpus_dir).items())[:6])
    expected = predict([model], texts)
    assert len(expected) > len(predict([model], texts, postprocess=InferenceConfig.load(model).postprocess))
    predictor = feedback_ner.SpanPredictor(model)
    by_id = predictor(texts, batch_size=4)
    assert list(by_id) == list(texts)
    assert as_rows(by_id, by_id.values()) == sorted(map(tuple, expected[["id", "class", "predictionstring"]].values
                                                        .tolist()))
    for mistake in (dict(models=[model, model]), dict(models=model, weights=[1, 2]), dict(models=model, device="tpu"),
                    dict(models=5)):
        with pytest.raises(FeedbackError):
            feedback_ner.SpanPredictor(**mistake)
    for texts_given, batch in ((None, 4), (["essay"], 0)):
        with pytest.raises(FeedbackError):
            predictor(texts_given, batch_size=batch)
