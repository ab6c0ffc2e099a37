"""The rescore command end to end on a small trained run, ``predict --rescore`` reproducing a fold's cross-fitted
F1, and one-line errors for bad inputs (issue 13)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_one_line_error, run_cli

from feedback_ner.metric import score
from feedback_ner.predict import predict
from feedback_ner.probs import load_word_probs, save_word_probs
from feedback_ner.rescoring import CONFIG_FILE
from feedback_ner.span_features import FEATURES
from feedback_ner.texts import load_texts


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, bert_run) -> Path:
    """A copy of the session's trained run (the rescorer is written into it)."""
    out = tmp_path_factory.mktemp("rescore") / "run"
    shutil.copytree(bert_run, out)
    return out


@pytest.fixture(scope="module")
def rescored(trained_run, corpus_dir) -> tuple[Path, str]:
    out = trained_run / "rescore"
    # the run's own tuning settings (seed 7, tune_trials 40), so that the tuned route can be held against cv.csv's
    done = run_cli("feedback_ner.rescore", "--oof", str(trained_run / "oof.npz"), "--data", str(corpus_dir),
                   "--out", str(out), "--tune-trials", "40", "--seed", "7")
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout + done.stderr


def test_rescore_prints_three_routes_and_writes_the_folder(rescored, corpus_dir, trained_run):
    out, printed = rescored
    for needle in ("recall", "default", "tuned (cross-fitted)", "rescored (cross-fitted)", "macro"):
        assert needle in printed
    # one closing line says which route to decode with
    assert (f"use it: predict --rescore {out}" in printed) != ("the rescorer scored below the" in printed)
    meta = json.loads((out / CONFIG_FILE).read_text())
    assert meta["features"] == list(FEATURES) and set(meta["thresholds"]) >= {"Claim", "Evidence"}
    assert (out / "model.txt").read_text().startswith("tree")
    assert (out / "gains.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {p.name for p in (out / "folds").iterdir()} == {"fold_0", "fold_1"}
    # oof_submission.csv is the cross-fitted rescored row of the report, by the competition metric
    gt = pd.read_csv(corpus_dir / "train.csv")
    probs = load_word_probs(trained_run / "oof.npz")
    sub = pd.read_csv(out / "oof_submission.csv")
    report = pd.read_csv(out / "report.csv", index_col="class")
    assert score(sub, gt[gt["id"].isin(set(probs))]).f1 == pytest.approx(
        report.loc["macro", "rescored (cross-fitted)"], abs=1e-9)


def test_rescore_tuned_route_is_the_cv_tables_tuned_column(rescored, trained_run):
    """One meaning of "tuned": rescore's tuned route starts from the run's own post-processing (its default column),
    as the CV table's tuned column does, so on the same run, trials and seed the two agree class by class."""
    out, _ = rescored
    report = pd.read_csv(out / "report.csv", index_col="class")
    cv = pd.read_csv(trained_run / "cv.csv", index_col="class")
    assert report.loc["macro", "default"] == pytest.approx(cv.loc["macro", "overall"], abs=1e-9)
    pd.testing.assert_series_equal(report["tuned (cross-fitted)"], cv["tuned"].reindex(report.index),
                                   check_names=False, atol=1e-9)


def test_predict_rescore_reproduces_the_folds_cross_fitted_f1(rescored, corpus_dir, trained_run):
    """Issue 13: one code path: predict --rescore on fold 0's essays with fold 0's checkpoint and the rescorer
    trained without fold 0 gives fold 0's cross-fitted out-of-fold F1."""
    out, _ = rescored
    fold0 = list(load_word_probs(trained_run / "fold_0" / "oof.npz"))
    gt = pd.read_csv(corpus_dir / "train.csv")
    gt0 = gt[gt["id"].isin(set(fold0))]
    texts = load_texts([corpus_dir / "train" / f"{i}.txt" for i in fold0])
    predicted = predict([trained_run / "fold_0" / "model"], texts, rescore=out / "folds" / "fold_0")
    oof_sub = pd.read_csv(out / "oof_submission.csv")
    expected = score(oof_sub[oof_sub["id"].isin(set(fold0))], gt0).f1
    assert score(predicted, gt0).f1 == pytest.approx(expected, abs=1e-9)


def _without_essays(tmp: Path, corpus_dir: Path, probs: dict) -> Path:
    """A copy of the corpus without ``probs``' first essays (their files and rows): another corpus."""
    other = tmp / "other-corpus"
    if not other.exists():
        shutil.copytree(corpus_dir, other, ignore=shutil.ignore_patterns(".cache*"))
        gone = list(probs)[:3]
        for essay_id in gone:
            (other / "train" / f"{essay_id}.txt").unlink()
        rows = pd.read_csv(other / "train.csv", dtype=str, keep_default_na=False)
        rows[~rows["id"].isin(gone)].to_csv(other / "train.csv", index=False)
    return other


def _bad_inputs(tmp: Path, corpus_dir: Path, trained_run: Path) -> dict[str, tuple[list[str], list[str]]]:
    lone = tmp / "lone" / "oof.npz"  # an OOF file with no fold files beside it (as an ensemble's)
    probs = load_word_probs(trained_run / "oof.npz")
    save_word_probs(lone, probs)
    no_data = tmp / "nodata"
    no_data.mkdir(exist_ok=True)
    oof = str(trained_run / "oof.npz")
    return {
        "missing oof": (["--oof", str(tmp / "none.npz"), "--data", str(corpus_dir), "--out", str(tmp / "o")],
                        ["none.npz"]),
        "no train.csv": (["--oof", oof, "--data", str(no_data), "--out", str(tmp / "o")], ["nodata", "train.csv"]),
        "no folds": (["--oof", str(lone), "--data", str(corpus_dir), "--out", str(tmp / "o")], ["--folds"]),
        "overlap": (["--oof", oof, "--data", str(corpus_dir), "--out", str(tmp / "o"), "--overlap", "2"],
                    ["--overlap", "2"]),
        "out is a file": (["--oof", oof, "--data", str(corpus_dir), "--out", oof], ["--out", "is a file"]),
        # found by probing: "No such file or directory; choose another path (or free space)"
        "essays not in --data": (["--oof", oof, "--data", str(_without_essays(tmp, corpus_dir, probs)), "--out",
                                  str(tmp / "o")], ["have no essay file in", "is --data the corpus"]),
    }


@pytest.mark.parametrize("case", ["missing oof", "no train.csv", "no folds", "overlap", "out is a file",
                                  "essays not in --data"])
def test_rescore_bad_inputs_are_one_line(case, tmp_path, corpus_dir, trained_run):
    args, needles = _bad_inputs(tmp_path, corpus_dir, trained_run)[case]
    assert_one_line_error(run_cli("feedback_ner.rescore", *args), "rescore", *needles)


@pytest.mark.parametrize("damage", ["missing folder", "corrupt json"])
def test_predict_rescore_with_a_bad_folder_is_one_line(damage, rescored, tmp_path, corpus_dir, trained_run):
    out, _ = rescored
    folder = tmp_path / "r"
    if damage == "corrupt json":
        folder.mkdir()
        (folder / "model.txt").write_text((out / "model.txt").read_text())
        (folder / CONFIG_FILE).write_text("{")
    done = run_cli("feedback_ner.predict", "--model", str(trained_run / "fold_0" / "model"), "--texts",
                   str(corpus_dir / "test"), "--out", str(tmp_path / "s.csv"), "--rescore", str(folder))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and str(folder) in lines[0], done.stderr[-2000:]
    assert not (tmp_path / "s.csv").exists()


def test_default_route_uses_the_checkpoint_beside_a_run_or_a_folds_oof(tmp_path):
    """Issue 13: `rescore --oof RUN/fold_k/oof.npz` compares with that fold's own post-processing, not the defaults."""
    from feedback_ner.oofruns import run_checkpoint

    run = tmp_path / "run"
    for k in (1, 0):
        (run / f"fold_{k}" / "model").mkdir(parents=True)
    assert run_checkpoint(run / "oof.npz") == run / "fold_0" / "model"
    assert run_checkpoint(run / "fold_1" / "oof.npz") == run / "fold_1" / "model"
    assert run_checkpoint(tmp_path / "ensemble_oof.npz") is None


def test_rescore_takes_the_runs_trials_and_seed(trained_run, corpus_dir, tmp_path):
    """Found by probing: a run with ``tune_trials: 5`` printed a tuned CV of 0.0803 and rescore's tuned row 0.0759,
    because rescore ran 40 trials. Without --tune-trials / --seed, rescore takes the run's (config.yaml), so its tuned
    row is the run's tuned column computed with them."""
    from feedback_ner.kfold import run_postprocess, tuned_column
    from feedback_ner.tuning import essay_folds

    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("rescore"))
    config = run / "config.yaml"
    config.write_text(config.read_text() + "tune_trials: 3\n")
    out = run / "second-stage"
    done = run_cli("feedback_ner.rescore", "--oof", str(run / "oof.npz"), "--data", str(corpus_dir), "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    probs = load_word_probs(run / "oof.npz")
    gt = pd.read_csv(corpus_dir / "train.csv")
    expected = tuned_column(probs, essay_folds(run / "oof.npz", list(probs), None), gt[gt["id"].isin(set(probs))],
                            run_postprocess(run, [0, 1]), n_trials=3, seed=7)
    report = pd.read_csv(out / "report.csv", index_col="class")
    assert report.loc["macro", "tuned (cross-fitted)"] == pytest.approx(expected["macro"], abs=1e-9)
