"""The k-fold driver's tuned column (issue 14 item 3): post-processing tuned cross-fitted at the end of a run."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from conftest import small_config

from feedback_ner.config import parse_config
from feedback_ner.kfold import run, tuned_column
from feedback_ner.probs import load_word_probs
from feedback_ner.tuning import cross_fit_tune


def rerun(bert_run, corpus_dir, tiny_models, out, **extra) -> pd.DataFrame:
    """The CV table of a copy of the session's trained run (both folds finished: nothing is trained again)."""
    shutil.copytree(bert_run, out)
    config = small_config(corpus_dir, tiny_models("bert"), out, learning_rate=1e-3, num_train_epochs=6,
                          per_device_train_batch_size=4, **extra)
    return run(*parse_config(None, overrides=config))


def test_cv_table_has_a_tuned_column_that_is_cross_fitted(tmp_path, bert_run, corpus_dir, tiny_models):
    cv = rerun(bert_run, corpus_dir, tiny_models, tmp_path / "run", tune_trials=5)
    assert list(cv.columns) == ["fold_0", "fold_1", "overall", "tuned"]
    saved = pd.read_csv(tmp_path / "run" / "cv.csv", index_col=0)
    assert saved.loc["macro", "tuned"] == pytest.approx(cv.loc["macro", "tuned"])
    # the same figure as tuning each fold on the other fold's essays by hand, started from the run's defaults
    gt = pd.read_csv(corpus_dir / "train.csv")
    probs, fold_of = {}, {}
    for k in (0, 1):
        part = load_word_probs(tmp_path / "run" / f"fold_{k}" / "oof.npz")
        probs.update(part)
        fold_of.update({i: k for i in part})
    from feedback_ner.artifacts import InferenceConfig
    from feedback_ner.metric import score
    from feedback_ner.postprocess import PostprocessConfig

    start = PostprocessConfig.from_dict(InferenceConfig.load(tmp_path / "run" / "fold_0" / "model").postprocess)
    sub, configs = cross_fit_tune(probs, gt, fold_of, n_trials=5, seed=7, start=start)
    assert sorted(configs) == [0, 1]
    assert cv.loc["macro", "tuned"] == pytest.approx(score(sub, gt[gt["id"].isin(set(probs))]).f1)
    assert tuned_column(probs, fold_of, gt, start, 5, seed=7)["macro"] == pytest.approx(cv.loc["macro", "tuned"])


def test_tune_trials_zero_leaves_the_table_as_it_was(tmp_path, bert_run, corpus_dir, tiny_models):
    cv = rerun(bert_run, corpus_dir, tiny_models, tmp_path / "run", tune_trials=0)
    assert list(cv.columns) == ["fold_0", "fold_1", "overall"]
    original = pd.read_csv(bert_run / "cv.csv", index_col=0)
    assert cv["overall"].to_numpy() == pytest.approx(original["overall"].to_numpy(), nan_ok=True)


def test_a_single_fold_gets_no_tuned_column(tmp_path, bert_run, corpus_dir, tiny_models):
    """A run with one finished fold (its other fold never trained) has nothing to cross-fit on."""
    shutil.copytree(bert_run, tmp_path / "one")
    shutil.rmtree(tmp_path / "one" / "fold_1")
    cv = rerun(tmp_path / "one", corpus_dir, tiny_models, tmp_path / "run", folds=[0])
    assert list(cv.columns) == ["fold_0", "overall"]


def test_train_command_prints_both_figures_without_optuna_chatter(tmp_path, bert_run, corpus_dir, tiny_models):
    """`feedback_ner.train` on the finished run (resumed: nothing trained): its headline gives the CV and the tuned
    figure, and Optuna's per-trial INFO lines (on again after optuna's import) stay out of the output."""
    import subprocess
    import sys

    import yaml

    out = tmp_path / "run"
    shutil.copytree(bert_run, out)
    config = small_config(corpus_dir, tiny_models("bert"), out, learning_rate=1e-3, num_train_epochs=6,
                          per_device_train_batch_size=4, tune_trials=5)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "feedback_ner.train", "--config", str(tmp_path / "cfg.yaml")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert "post-processing tuned cross-fitted: " in done.stdout and "tuned" in done.stdout
    assert "Trial 0 finished" not in log and "A new study created" not in log, log[-3000:]
