"""Issue 16: ``predict_vs_pipeline`` (benchmarks/bench_predict.py): the pipeline's character spans mapped to words,
the benchmark run end to end on a tiny model, and predict's optional CPU bf16 path."""

from __future__ import annotations

import argparse
import shutil

import numpy as np
import pytest

from benchmarks.bench_predict import char_spans_to_words, pipeline_submission, run
from feedback_ner.artifacts import InferenceConfig
from feedback_ner.inference import cpu_bf16_supported, predict
from feedback_ner.metric import score
from feedback_ner.texts import load_texts

TEXT = "Cars  are\nbad. They pollute,\tsadly!"
#       0    5    10   15   20   25   30
# words: Cars(0-4) are(6-9) bad.(10-14) They(15-19) pollute,(20-28) sadly!(29-35)


@pytest.mark.parametrize(
    "span, words",
    [
        ((0, 4), [0]),  # exactly one word
        ((0, 9), [0, 1]),  # two words and the double space between them
        ((2, 7), [0, 1]),  # starts and ends mid-word: both words overlap
        ((4, 6), []),  # only the whitespace between two words
        ((9, 10), []),  # the newline alone
        ((4, 7), [1]),  # whitespace then the first letter of "are"
        ((14, 15), []),  # ends exactly where "They" starts: touching is not overlapping
        ((10, 35), [2, 3, 4, 5]),  # to the end of the text
        ((28, 40), [5]),  # past the end: clipped by the words themselves
    ],
)
def test_char_spans_to_words(span, words):
    assert TEXT.split()[1] == "are" and len(TEXT) == 35
    (got,) = char_spans_to_words(TEXT, [span])
    assert got.tolist() == words


def test_char_spans_to_words_many_spans_and_empty_text():
    got = char_spans_to_words(TEXT, [(0, 4), (15, 28)])
    assert [g.tolist() for g in got] == [[0], [3, 4]]
    assert [g.tolist() for g in char_spans_to_words("", [(0, 3)])] == [[]]


def test_pipeline_submission_scores_like_the_ground_truth():
    texts = {"a": TEXT, "b": "One two three"}
    outputs = [
        [{"entity_group": "Claim", "start": 0, "end": 14, "score": 0.9},
         {"entity_group": "Evidence", "start": 4, "end": 6, "score": 0.5}],  # whitespace only: dropped
        [{"entity_group": "Concluding Statement", "start": 4, "end": 13, "score": 0.8}],
    ]
    sub = pipeline_submission(texts, outputs)
    assert sub.values.tolist() == [["a", "Claim", "0 1 2"], ["b", "Concluding Statement", "1 2"]]
    gt = sub.rename(columns={"class": "discourse_type"})
    assert score(sub, gt).f1 == 1.0


def test_bench_entry_runs_on_a_tiny_model(tiny_models, capsys):
    """The whole entry (fit a head, predict vs pipeline, F1 of both) on the tiny BERT in a few seconds."""
    args = argparse.Namespace(quick=True, model=str(tiny_models("bert")), essays=25, head_epochs=5, max_length=64,
                              repeats=1, no_bf16=True)
    figures = run(args)
    out = capsys.readouterr().out
    for name in ("predict_essays_per_s", "pipeline_essays_per_s", "predict_vs_pipeline", "predict_f1", "pipeline_f1",
                 "predict_outside_model_share"):
        assert f"\n{name}: " in out, name
        assert np.isfinite(figures[name]), name
    assert "\npredict_vs_pipeline_computed_tokens: " in out
    assert "predict_speedup_vs_loop" not in out and "predict_overhead_share:" not in out
    assert 0 <= figures["predict_outside_model_share"] <= 1
    assert 0 <= figures["predict_f1"] <= 1 and 0 <= figures["pipeline_f1"] <= 1
    assert figures["pipeline_spans"] > 0  # the pipeline's spans did reach the metric as word indices


@pytest.mark.skipif(not cpu_bf16_supported(), reason="this CPU has no native bf16")
def test_predict_cpu_bf16_is_close_to_fp32(tiny_models, corpus_dir, tmp_path):
    """Issue 16: ``predict(..., cpu_bf16=True)`` runs under bf16 autocast; its word probabilities stay close."""
    from feedback_ner.probs import load_word_probs

    model = tmp_path / "model"
    shutil.copytree(tiny_models("bert"), model)
    InferenceConfig(max_length=128, stride=32).save(model)
    texts = dict(list(load_texts(corpus_dir / "train").items())[:4])
    predict([model], texts, device="cpu", probs_out=tmp_path / "fp32.npz")
    predict([model], texts, device="cpu", probs_out=tmp_path / "bf16.npz", cpu_bf16=True)
    fp32, bf16 = load_word_probs(tmp_path / "fp32.npz"), load_word_probs(tmp_path / "bf16.npz")
    diffs = [float(np.abs(fp32[k] - bf16[k]).max()) for k in texts]
    assert 0 < max(diffs) < 0.05  # different (bf16 did run) but close


def test_bench_entry_is_skipped_without_the_offline_encoder(monkeypatch, capsys):
    """Without the ``offline-encoder`` package the entry prints why it is skipped and returns no figures."""
    import benchmarks.bench_predict as bench

    monkeypatch.setattr(bench, "PACKAGE", "no_such_package_for_feedback_ner")
    assert bench.run(argparse.Namespace(quick=True)) is None
    out = capsys.readouterr().out
    assert out.startswith("predict_vs_pipeline: skipped (") and "offline-encoder" in out
