"""Post-processing tuning (issue 4): tune() on the out-of-fold probabilities of a short training run and on noisy
synthetic probabilities, resuming SQLite studies, the tuned JSON read back by predict, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from conftest import small_config

from feedback_ner.config import parse_config
from feedback_ner.errors import FeedbackError
from feedback_ner.kfold import run
from feedback_ner.labels import CLASSES, NUM_LABELS, bio_labels, parse_predictionstring, split_words
from feedback_ner.metric import score
from feedback_ner.postprocess import PostprocessConfig, submission_from_probs
from feedback_ner.probs import load_word_probs, save_word_probs
from feedback_ner.tune import REPORT_COLUMNS, chart_path, main, tune

ROOT = Path(__file__).resolve().parents[1]


def tune_config(corpus_dir: Path, model_dir: Path, out: Path) -> dict:
    """One fold of a tiny BERT, trained just long enough to predict spans of several lengths and confidences.

    (Shorter runs or higher learning rates leave it predicting I-Evidence everywhere: nothing to tune then.)
    """
    return small_config(
        corpus_dir, model_dir, out, folds=[0], learning_rate=1e-3, num_train_epochs=6, per_device_train_batch_size=4
    )


@pytest.fixture(scope="module")
def oof_run(tmp_path_factory, corpus_dir, tiny_models) -> Path:
    """A short training run; its ``oof.npz`` holds the out-of-fold probabilities of fold 0's essays."""
    out = tmp_path_factory.mktemp("tune") / "run"
    run(*parse_config(None, overrides=tune_config(corpus_dir, tiny_models("bert"), out)))
    return out


@pytest.fixture(scope="module")
def oof(oof_run, corpus_dir):
    probs = load_word_probs(oof_run / "oof.npz")
    gt = pd.read_csv(corpus_dir / "train.csv")
    return probs, gt, gt[gt["id"].isin(set(probs))].reset_index(drop=True)


@pytest.fixture(scope="module")
def tuned(oof):
    probs, gt, _ = oof
    config, report = tune(probs, gt, n_trials=25, seed=0)
    return config, report


def noisy_probs(corpus_dir: Path, sigma: float, seed: int, n: int = 40) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Word probabilities of the first ``n`` essays: the true BIO labels plus Gaussian logit noise."""
    gt = pd.read_csv(corpus_dir / "train.csv")
    rng = np.random.default_rng(seed)
    probs = {}
    for essay_id, rows in list(gt.groupby("id", sort=False))[:n]:
        words, _, _ = split_words((corpus_dir / "train" / f"{essay_id}.txt").read_text(encoding="utf-8"))
        spans = [(c, parse_predictionstring(p)) for c, p in zip(rows["discourse_type"], rows["predictionstring"])]
        noise = rng.normal(0, sigma, (len(words), NUM_LABELS))
        logits = 2.5 * np.eye(NUM_LABELS)[bio_labels(len(words), spans)] + noise
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs[essay_id] = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs, gt


def f1_of(probs, gt, config: PostprocessConfig) -> float:
    """The macro F1 by the plain path: full submission with predictionstrings, scored by metric.score."""
    return score(submission_from_probs(probs, config), gt[gt["id"].isin(set(probs))]).f1


def test_tune_raises_macro_f1_on_out_of_fold_probabilities(oof, tuned):
    probs, gt, gt_oof = oof
    config, report = tuned
    before, after = report.loc["macro", "F1 before"], report.loc["macro", "F1 after"]
    print(f"out-of-fold macro F1: defaults {before:.4f} -> tuned {after:.4f}")
    assert after > before
    # the report's figures are the competition metric of the plain submissions
    assert before == pytest.approx(f1_of(probs, gt, PostprocessConfig()), abs=1e-12)
    assert after == pytest.approx(f1_of(probs, gt, config), abs=1e-12)
    table = score(submission_from_probs(probs, config), gt_oof).table
    assert list(report.columns) == REPORT_COLUMNS
    assert list(report.index) == list(table.index) + ["macro"]
    for metric in ("TP", "FP", "FN"):
        assert report[f"{metric} after"].iloc[:-1].tolist() == table[metric].tolist()
        assert report.loc["macro", f"{metric} after"] == table[metric].sum()
    assert config != PostprocessConfig()


@pytest.mark.parametrize(
    "start",
    [
        PostprocessConfig(),
        PostprocessConfig.zeros(),
        PostprocessConfig(proba_thresh={c: 0.9 for c in CLASSES}, one_per_essay=["Lead"], fill_gaps=3),
    ],
    ids=["defaults", "zeros", "strict"],
)
def test_tune_never_scores_below_its_start(oof, start):
    probs, gt, _ = oof
    config, report = tune(probs, gt, n_trials=4, seed=1, start=start)
    assert report.loc["macro", "F1 before"] == pytest.approx(f1_of(probs, gt, start), abs=1e-12)
    assert f1_of(probs, gt, config) >= f1_of(probs, gt, start)
    # one trial per study is the enqueued start itself: nothing can change
    same, report_same = tune(probs, gt, n_trials=1, seed=1, start=start)
    assert same == start
    assert (report_same["F1 after"] == report_same["F1 before"]).all()


def test_tune_on_noisy_probabilities_is_seeded_and_keeps_the_rules_with_no_rules(corpus_dir):
    probs, gt = noisy_probs(corpus_dir, sigma=1.0, seed=0)
    start = PostprocessConfig(one_per_essay=["Lead", "Position"], join_adjacent=["Rebuttal"], join_gap=1)
    config, report = tune(probs, gt, n_trials=8, seed=3, start=start, rules=False)
    assert report.loc["macro", "F1 after"] > report.loc["macro", "F1 before"]
    assert (config.one_per_essay, config.join_adjacent, config.join_gap, config.fill_gaps) == (
        ["Lead", "Position"], ["Rebuttal"], 1, 0
    )
    again, _ = tune(probs, gt, n_trials=8, seed=3, start=start, rules=False)
    assert again == config


def _trials_by_study(storage: str) -> dict[str, list[tuple[int, dict]]]:
    names = optuna.get_all_study_names(storage)
    return {n: [(t.number, t.params) for t in optuna.load_study(study_name=n, storage=storage).trials] for n in names}


def test_resuming_a_sqlite_study_continues_its_trial_numbers(oof, tmp_path):
    probs, gt, _ = oof
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    first, _ = tune(probs, gt, n_trials=3, seed=0, storage=storage, study_name="s", rules=False)
    studies = _trials_by_study(storage)
    assert studies and all(name.startswith("s/") for name in studies)
    assert all([n for n, _ in trials] == [0, 1, 2] for trials in studies.values())

    resumed, _ = tune(probs, gt, n_trials=5, seed=0, storage=storage, study_name="s", rules=False)
    continued = _trials_by_study(storage)
    assert set(continued) == set(studies)
    for name, trials in continued.items():
        assert [n for n, _ in trials] == [0, 1, 2, 3, 4], name
        assert trials[:3] == studies[name], "the first trials are kept, not re-run"
    assert f1_of(probs, gt, resumed) >= f1_of(probs, gt, first)

    # the same call again finds every study complete: no new trial, the same result
    again, _ = tune(probs, gt, n_trials=5, seed=0, storage=storage, study_name="s", rules=False)
    assert _trials_by_study(storage) == continued and again == resumed

    other = dict(list(probs.items())[1:])  # other out-of-fold data: one essay fewer
    with pytest.raises(ValueError, match="made on other out-of-fold probabilities"):
        tune(other, gt, n_trials=5, seed=0, storage=storage, study_name="s", rules=False)


def test_tuned_json_round_trips_and_is_read_by_predict(oof, tuned, oof_run, corpus_dir, tmp_path):
    probs, gt, gt_oof = oof
    config, report = tuned
    path = config.save(tmp_path / "postprocess.json")
    assert PostprocessConfig.load(path) == config
    assert PostprocessConfig.from_dict(json.loads(path.read_text())) == config
    predict_module = pytest.importorskip("feedback_ner.predict")
    texts = {k: (corpus_dir / "train" / f"{k}.txt").read_text(encoding="utf-8") for k in probs}
    model = oof_run / "fold_0" / "model"
    with_json = predict_module.predict([model], texts, postprocess=path)
    with_defaults = predict_module.predict([model], texts, postprocess=PostprocessConfig())
    assert not with_json.equals(with_defaults)
    # predict recomputes the out-of-fold probabilities of these essays, so it scores what tune reported
    assert score(with_json, gt_oof).f1 == pytest.approx(report.loc["macro", "F1 after"], abs=1e-9)
    assert score(with_defaults, gt_oof).f1 == pytest.approx(report.loc["macro", "F1 before"], abs=1e-9)


def test_cli_help_and_run_write_json_and_chart(oof_run, corpus_dir, tmp_path, capsys):
    help_ = subprocess.run(
        [sys.executable, "-m", "feedback_ner.tune", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    for flag in ("--oof", "--gt", "--out", "--trials", "--storage", "--study", "--seed", "--start", "--no-rules"):
        assert flag in help_.stdout
    out = tmp_path / "tuned" / "postprocess.json"
    argv = ["--oof", str(oof_run / "oof.npz"), "--gt", str(corpus_dir / "train.csv"), "--out", str(out),
            "--trials", "3", "--seed", "0"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    config = PostprocessConfig.load(out)
    png = chart_path(out)
    assert png == out.with_suffix(".png") and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.with_suffix(".optuna.db").is_file(), "default storage: a SQLite file beside --out"
    assert "macro F1" in printed and "->" in printed and "Concluding Statement" in printed
    # re-running the same command resumes the finished studies: same config, no new work
    assert main(argv) == 0
    assert PostprocessConfig.load(out) == config


def test_bad_inputs_get_one_line_errors(oof, tmp_path, capsys, corpus_dir):
    probs, gt, _ = oof
    with pytest.raises(ValueError, match="lacks column.*predictionstring"):
        tune(probs, gt.drop(columns=["predictionstring"]), n_trials=1)
    with pytest.raises(ValueError, match="none of the .* essays"):
        tune(probs, gt.assign(id="other"), n_trials=1)
    with pytest.raises(ValueError, match="n_trials"):
        tune(probs, gt, n_trials=0)
    empty = save_word_probs(tmp_path / "empty.npz", {})
    run_dir = empty.parent / "run"
    save_word_probs(run_dir / "oof.npz", {})
    (tmp_path / "train.csv").write_text("id,discourse_type,predictionstring\n")
    # found by probing: a CSV got numpy's advice to unpickle it, a run folder "no such file"
    for oof_file, message in ((tmp_path / "missing.npz", "no such word-probabilities file"),
                              (empty, "no word probabilities"),
                              (tmp_path / "train.csv", "train.csv: not a word-probabilities .npz"),
                              (run_dir, f"is a folder, not a word-probabilities .npz; give its {run_dir / 'oof.npz'}")):
        code = main(["--oof", str(oof_file), "--gt", str(corpus_dir / "train.csv"), "--out", str(tmp_path / "x.json")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1 and "pickle" not in err


def _two_fold_run(corpus_dir: Path, tmp_path: Path) -> tuple[Path, dict, pd.DataFrame]:
    """A run folder as training leaves it: fold_0/oof.npz, fold_1/oof.npz and the run-level oof.npz."""
    probs, gt = noisy_probs(corpus_dir, sigma=1.0, seed=5, n=40)
    ids = list(probs)
    run_dir = tmp_path / "run"
    for k in (0, 1):
        save_word_probs(run_dir / f"fold_{k}" / "oof.npz", {i: probs[i] for i in ids[k::2]}, meta={"fold": k})
    save_word_probs(run_dir / "oof.npz", probs, meta={"folds": [0, 1]})
    return run_dir, probs, gt


def test_cross_fitted_tuning_never_sees_the_folds_own_truth(corpus_dir, tmp_path):
    """Issue 13: fold k's tuned spans come from tuning on the other folds only."""
    from feedback_ner.tuning import cross_fit_tune, essay_folds

    run_dir, probs, gt = _two_fold_run(corpus_dir, tmp_path)
    fold_of = essay_folds(run_dir / "oof.npz", list(probs))
    assert sorted(set(fold_of.values())) == [0, 1] and list(fold_of) == list(probs)
    fold0 = [i for i, k in fold_of.items() if k == 0]
    sub, configs = cross_fit_tune(probs, gt, fold_of, n_trials=6, seed=0, rounds=1)
    assert set(configs) == {0, 1} and set(sub["id"]) <= set(probs)
    altered = gt[~(gt["id"].isin(fold0) & (gt.index % 2 == 0))]
    sub2, configs2 = cross_fit_tune(probs, altered, fold_of, n_trials=6, seed=0, rounds=1)
    assert configs2[0] == configs[0]
    pd.testing.assert_frame_equal(sub[sub["id"].isin(fold0)].reset_index(drop=True),
                                  sub2[sub2["id"].isin(fold0)].reset_index(drop=True))
    # a folds CSV works as well; an OOF file with neither is a clear error
    pd.DataFrame({"id": list(fold_of), "fold": list(fold_of.values())}).to_csv(tmp_path / "folds.csv", index=False)
    assert essay_folds(tmp_path / "elsewhere.npz", list(probs), tmp_path / "folds.csv") == fold_of
    with pytest.raises(FeedbackError, match="--folds"):
        essay_folds(tmp_path / "elsewhere.npz", list(probs))


def test_cli_prints_in_sample_and_cross_fitted_and_writes_the_run_postprocess(corpus_dir, tmp_path, capsys):
    run_dir, _, _ = _two_fold_run(corpus_dir, tmp_path)
    argv = ["--oof", str(run_dir / "oof.npz"), "--gt", str(corpus_dir / "train.csv"), "--trials", "4",
            "--rounds", "1", "--storage", "memory"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "in-sample" in printed and "cross-fitted" in printed
    assert PostprocessConfig.load(run_dir / "postprocess.json")


def test_postgresql_url_without_driver_is_one_line(oof_run, corpus_dir, tmp_path, capsys):
    import importlib.util

    driver = next((d for d in ("psycopg2", "psycopg", "pg8000") if importlib.util.find_spec(d) is None), None)
    if driver is None:
        pytest.skip("every PostgreSQL driver is installed here")
    url = f"postgresql+{driver}://user@localhost/db"
    code = main(["--oof", str(oof_run / "oof.npz"), "--gt", str(corpus_dir / "train.csv"), "--storage", url,
                 "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and driver in err and "feedback-ner tune: error:" in err
    assert not (tmp_path / "x.json").exists()


def test_cross_fitted_tuning_logs_one_info_line_per_fold(corpus_dir, caplog):
    """Issue 13 (make demo's log): cross-fitting logs each fold's tuning in one INFO line, its studies' rounds at
    DEBUG; `verbose` changes the log only, never the result."""
    from feedback_ner.tuning import cross_fit_tune

    probs, gt = noisy_probs(corpus_dir, sigma=1.0, seed=0)
    fold_of = {k: i % 2 for i, k in enumerate(probs)}
    with caplog.at_level("DEBUG", logger="feedback_ner"):
        loud, _ = tune(probs, gt, n_trials=3, seed=0, rounds=1)
        assert any(r.levelname == "INFO" and r.getMessage().startswith("round 1") for r in caplog.records)
        caplog.clear()
        quiet, _ = tune(probs, gt, n_trials=3, seed=0, rounds=1, verbose=False)
        assert quiet == loud
        assert [r for r in caplog.records if r.levelname == "INFO"] == []
        assert any(r.levelname == "DEBUG" and r.getMessage().startswith("round 1") for r in caplog.records)
        caplog.clear()
        cross_fit_tune(probs, gt, fold_of, n_trials=3, seed=0, rounds=1)
    info = [r.getMessage() for r in caplog.records if r.levelname == "INFO" and r.name == "feedback_ner.tune"]
    assert len(info) == 2 and all(m.startswith(f"fold {k}: tuned on") for k, m in enumerate(info)), info


def test_tune_starts_from_the_runs_own_post_processing(bert_run, corpus_dir, tmp_path):
    """tune started from the built-in table: its 'before' figure was not the run's CV, and on a small run it wrote a
    postprocess.json scoring below the run's own decoding, which predict then preferred."""
    import pandas as pd
    from conftest import run_cli

    out = tmp_path / "pp.json"
    done = run_cli("feedback_ner.tune", "--oof", str(bert_run / "oof.npz"), "--gt", str(corpus_dir / "train.csv"),
                   "--out", str(out), "--trials", "3", "--rounds", "1", "--no-cross-fit", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if "-> tuned" in x)
    assert "(the run's post-processing -> tuned" in line
    before, after = float(line.split()[2]), float(line.split()[4])
    cv = pd.read_csv(bert_run / "cv.csv", index_col=0)
    assert before == pytest.approx(float(cv.loc["macro", "overall"]), abs=1e-4) and after >= before
