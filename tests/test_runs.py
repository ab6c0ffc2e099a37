"""Run comparison (issue 15): two runs that differ in learning rate show as two rows with learning_rate marked;
the runs' folders carry model cards written by training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, small_config

from feedback_ner.config import parse_config
from feedback_ner.kfold import run
from feedback_ner.modelcard import read_card
from feedback_ner.runtable import comparison_table, find_runs, load_run


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, corpus_dir, tiny_models) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for name, lr in (("slow", 1e-3), ("fast", 3e-3)):
        config = small_config(corpus_dir, tiny_models("bert"), root / "sweep" / name, learning_rate=lr,
                              num_train_epochs=2, per_device_train_batch_size=4)
        run(*parse_config(None, overrides=config))
    return root


def test_runs_table_marks_the_learning_rate(two_runs):
    runs = [load_run(p) for p in find_runs([two_runs])]
    assert [r.path.name for r in runs] == ["fast", "slow"]
    table, differ = comparison_table(runs)
    assert differ == ["learning_rate"]
    assert sorted(table["learning_rate"]) == [1e-3, 3e-3]
    assert list(table["CV"]) == sorted(table["CV"], reverse=True)
    for r in runs:  # training keeps the trainer state beside each fold model: epochs and best epoch are known
        assert r.epochs == [2.0, 2.0] and all(e in (1.0, 2.0) for e in r.best_epochs)
        assert r.time_source == "trainer" and r.seconds > 0
    assert set(table["epochs"]) == {"2/2"} and "?" not in "".join(table["best_epoch"])


def test_runs_command_prints_both_rows_and_a_png(two_runs, tmp_path):
    png = tmp_path / "runs.png"
    done = run_cli("feedback_ner.runs", str(two_runs), "--png", str(png), "--csv", str(tmp_path / "runs.csv"))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "learning_rate*" in lines[0] and "max_length*" not in lines[0]
    rows = [line.split() for line in lines if line.startswith(("fast ", "slow "))]
    assert len(rows) == 2
    # found by probing: settings printed as scores ("num_train_epochs 5.0000"); as written now
    column = lines[0].split().index("learning_rate*")
    assert sorted(row[column] for row in rows) == ["0.001", "0.003"]
    assert png.is_file() and png.stat().st_size > 5_000


def test_training_writes_model_cards(two_runs):
    """Every saved fold model and the run folder get a README.md naming the fold's F1 (issue 15)."""
    run_dir = two_runs / "sweep" / "slow"
    for fold in (0, 1):
        header, body = read_card(run_dir / f"fold_{fold}" / "model" / "README.md")
        f1 = json.loads((run_dir / f"fold_{fold}" / "metrics.json").read_text())["eval_f1"]
        assert header["model-index"][0]["results"][0]["metrics"][0]["value"] == round(f1, 4)
        assert f"| **macro** | **{f1:.4f}** |" in body
    header, body = read_card(run_dir / "README.md")
    assert header["model-index"][0]["results"][0]["metrics"][0]["value"] == round(load_run(run_dir).cv["macro"], 4)


def test_tuned_and_rescored_scores_are_shown(two_runs, corpus_dir):
    """tuned: the CV table's cross-fitted column (what train printed), not the postprocess.json tuned and scored on
    the same essays (that one is tuned_file, in-sample); rescored: what rescore printed, left out once the run has
    other folds than the rescorer saw (its oof_submission.csv was scored against essays it never covered)."""
    import json

    import pandas as pd

    from feedback_ner.labels import CLASSES
    from feedback_ner.metric import score
    from feedback_ner.postprocess import PostprocessConfig, submission_from_probs
    from feedback_ner.probs import load_meta, load_word_probs

    run_dir = two_runs / "sweep" / "fast"
    config = PostprocessConfig(min_words={c: 1 for c in CLASSES}, proba_thresh={c: 0.3 for c in CLASSES})
    config.save(run_dir / "postprocess.json")
    probs = load_word_probs(run_dir / "oof.npz")
    gt = pd.read_csv(corpus_dir / "train.csv")
    gt = gt[gt["id"].isin(set(probs))]
    (run_dir / "rescore").mkdir()
    folds = load_meta(run_dir / "oof.npz")["folds"]
    summary = {"f1": {"rescored (cross-fitted)": 0.4321}, "folds": folds}
    (run_dir / "rescore" / "summary.json").write_text(json.dumps(summary))
    run = load_run(run_dir, pd.read_csv(corpus_dir / "train.csv", dtype={"id": str}))
    cv = pd.read_csv(run_dir / "cv.csv", index_col=0)
    assert run.tuned == pytest.approx(float(cv.loc["macro", "tuned"]))
    assert run.tuned_file == pytest.approx(score(submission_from_probs(probs, config), gt).f1)
    assert run.rescored == pytest.approx(0.4321)
    table, _ = comparison_table([run, load_run(two_runs / "sweep" / "slow")])
    assert {"tuned", "tuned_file", "rescored"} <= set(table.columns)
    (run_dir / "rescore" / "summary.json").write_text(json.dumps({**summary, "folds": folds[:1]}))
    assert load_run(run_dir).rescored is None  # fitted on fewer folds than the run has now


def test_an_edited_config_and_configless_folders_are_reported(two_runs, tmp_path):
    """Found probing from outside: ``runs`` showed an edited config.yaml's values as the run's settings, and left
    folders with a cv.csv but no config.yaml out without a word."""
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(two_runs, root)
    untouched = run_cli("feedback_ner.runs", str(root), "--png", str(tmp_path / "a.png"))
    assert untouched.returncode == 0 and "no longer matches" not in untouched.stderr
    config = root / "sweep" / "fast" / "config.yaml"
    config.write_text(config.read_text().replace("learning_rate: 0.003", "learning_rate: 0.5"))
    (root / "copied").mkdir()
    shutil.copy(root / "sweep" / "slow" / "cv.csv", root / "copied" / "cv.csv")
    done = run_cli("feedback_ner.runs", str(root), "--png", str(tmp_path / "b.png"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fast: config.yaml no longer matches the settings the run was trained with" in done.stderr
    assert "slow: config.yaml" not in done.stderr
    assert "left out 1 folder(s) with cv.csv but no config.yaml" in done.stdout and "copied" in done.stdout


def test_runs_linked_into_a_folder_are_found_once(two_runs, tmp_path):
    """Run folders linked in from elsewhere (another disk, a Kaggle dataset) are runs too; a link back up the tree
    does not loop or count a run twice."""
    board = tmp_path / "board"
    board.mkdir()
    (board / "a").symlink_to(two_runs / "sweep" / "fast", target_is_directory=True)
    (board / "all").symlink_to(two_runs, target_is_directory=True)
    (board / "loop").symlink_to(board, target_is_directory=True)
    found = find_runs([board])
    assert len(found) == 2 and {p.resolve() for p in found} == {(two_runs / "sweep" / n).resolve()
                                                                for n in ("fast", "slow")}


def test_a_setting_left_at_its_default_shows_its_value(two_runs):
    """config.yaml holds the non-default fields: a run at the default (seed 42) showed a blank cell, the column
    turned to floats ('7.0000'), and the same value written out in one run and left out in the other 'differed'."""
    runs = [load_run(p) for p in find_runs([two_runs])]
    runs[0].config.pop("seed", None)
    runs[1].config["seed"] = 42  # the default, written out
    runs[0].config.pop("num_train_epochs")
    table, differ = comparison_table(runs)
    assert "seed" not in differ and "num_train_epochs" in differ
    by_run = table.set_index("run")
    assert by_run.loc[str(runs[0].path), "num_train_epochs"] == 3.0  # the field's default
    assert by_run.loc[str(runs[1].path), "num_train_epochs"] == 2
