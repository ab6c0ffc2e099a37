"""The quality benchmark (issue 14): its baseline's span joining, its row selection, and that `make bench` skips it."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from benchmarks.__main__ import available
from benchmarks.bench_quality import (
    DONE_FILE,
    _tags_to_spans,
    best_run,
    fold_scores,
    last_epoch_f1,
    main,
    make_parser,
    postprocess_table,
    row_stamp,
    write_outputs,
)
from feedback_ner.labels import CLASSES


def test_baseline_joins_argmax_tags_into_spans_like_run_ner_notebooks():
    tags = ["B-Claim", "I-Claim", "I-Claim", "O", "I-Lead", "I-Lead", "B-Lead", "I-Evidence", "I-Evidence"]
    assert _tags_to_spans("e", tags) == [
        ("e", "Claim", "0 1 2"), ("e", "Lead", "4 5"), ("e", "Lead", "6"), ("e", "Evidence", "7 8"),
    ]
    assert _tags_to_spans("e", ["O", "O"]) == []


def test_quality_benchmark_is_not_part_of_make_bench():
    assert "quality" not in available() and "metric" in available()


def test_unknown_row_is_refused_before_any_work(capsys, tmp_path):
    assert main(["--rows", "baseline,nope", "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_fold_scores_read_every_class_of_metrics_json():
    metrics = {"eval_f1": 0.5, **{f"eval_f1_{c.replace(' ', '_')}": i / 10 for i, c in enumerate(CLASSES)}}
    scores = fold_scores(metrics)
    assert scores["macro"] == 0.5 and scores["Concluding Statement"] == CLASSES.index("Concluding Statement") / 10


def test_best_row_of_a_single_winner_points_at_that_recipes_run(tmp_path):
    assert best_run(tmp_path) == "best"  # no best row yet
    (tmp_path / "best").mkdir()
    row = {"macro": 0.9, "settings": json.dumps({"recipes": ["awp"], "same_as": "awp"})}
    (tmp_path / "best" / DONE_FILE).write_text(json.dumps(row))
    assert best_run(tmp_path) == "awp"
    row["settings"] = json.dumps({"recipes": ["awp", "fgm"], "awp_lr": 5e-4})
    (tmp_path / "best" / DONE_FILE).write_text(json.dumps(row))
    assert best_run(tmp_path) == "best"


def test_last_epoch_f1_is_that_epochs_evaluation_not_the_final_reload_of_the_best(tmp_path):
    assert last_epoch_f1(tmp_path, 0) != last_epoch_f1(tmp_path, 0)  # NaN without a run
    model = tmp_path / "fold_0" / "model"
    model.mkdir(parents=True)
    history = [{"epoch": 1.0, "eval_f1": 0.6}, {"epoch": 2.0, "loss": 0.3}, {"epoch": 2.0, "eval_f1": 0.5},
               {"epoch": 2.0, "eval_f1": 0.6}]  # load_best_model_at_end evaluates epoch 1's weights again
    (model / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    assert last_epoch_f1(tmp_path, 0) == 0.5


def test_second_seed_rows_are_checked_before_any_work(capsys, tmp_path):
    assert main(["--rows", "default", "--second-seed-rows", "best", "--out", str(tmp_path)]) == 2
    assert "--second-seed" in capsys.readouterr().err
    assert main(["--rows", "default", "--second-seed", "--second-seed-rows", "awp", "--out", str(tmp_path)]) == 2
    assert "awp" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_rows_at_a_second_seed_are_compared_with_that_seeds_baseline_and_default(tmp_path):
    def row(macro: float) -> dict:
        return {"macro": macro, **{c: macro for c in CLASSES}, "train_s": 10.0, "settings": "{}"}

    rows = {"baseline": row(0.5), "default": row(0.7), "awp": row(0.8),
            "baseline@seed43": row(0.6), "default@seed43": row(0.9), "best@seed43": row(0.95)}
    table = write_outputs(rows, tmp_path)
    assert table.loc["awp", "delta_vs_default"] == pytest.approx(0.1)
    assert table.loc["best@seed43", "delta_vs_default"] == pytest.approx(0.05)
    assert table.loc["best@seed43", "delta_vs_baseline"] == pytest.approx(0.35)
    assert table.loc["default", "delta_vs_baseline"] == pytest.approx(0.2)
    assert table.loc["baseline@seed43", "last_epoch"] == 0.6  # the baseline reports its last epoch
    assert (tmp_path / "quality.csv").is_file()


def test_best_recipes_are_checked_before_any_work(capsys, tmp_path):
    assert main(["--rows", "best", "--best-recipes", "awp,dropout", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--best-recipes" in err and "awp" in err
    assert not any(tmp_path.iterdir())


def test_postprocess_table_decodes_each_trained_run_once(tmp_path, bert_run, corpus_dir):
    """Every trained row's out-of-fold probabilities, three decodings each; the learned defaults reproduce the row's
    own F1; a single-winner best (the same run as its recipe) and rows without probabilities are left out."""
    for name in ("default", "awp"):
        shutil.copytree(bert_run, tmp_path / name)
    (tmp_path / "tuned").mkdir()
    rows = {"baseline": {}, "default": {}, "awp": {}, "best": {"settings": json.dumps({"same_as": "awp"})},
            "tuned": {"settings": json.dumps({"from": "awp"})}}
    gt = pd.read_csv(corpus_dir / "train.csv")
    table = postprocess_table(tmp_path, rows, 0, gt)
    assert list(dict.fromkeys(table.index.get_level_values("row"))) == ["default", "awp"]
    assert list(table.loc["default"].index) == ["learned defaults", "no thresholds", "public baseline table"]
    own = fold_scores(json.loads((bert_run / "fold_0" / "metrics.json").read_text()))["macro"]
    assert table.loc[("default", "learned defaults"), "macro"] == pytest.approx(own, abs=1e-9)
    assert postprocess_table(tmp_path, {"baseline": {}}, 0, gt).empty


def _baseline_row(out, stamp: dict | None) -> None:
    (out / "baseline").mkdir(parents=True)
    row = {"macro": 0.5, **{c: 0.5 for c in CLASSES}, "train_s": 1.0, "settings": "{}"}
    if stamp is not None:
        row["stamp"] = json.dumps(stamp, sort_keys=True)
    (out / "baseline" / DONE_FILE).write_text(json.dumps(row))


def test_a_cached_row_measured_with_other_settings_is_refused_not_reused(capsys, tmp_path, corpus_dir, tiny_models):
    """No stale figures: a finished row is reused only when its data, model, budget, fold and seed are the ones
    asked for; otherwise one line names the row, what changed and what to do (exit 2), before any training."""
    argv = ["--rows", "baseline", "--data", str(corpus_dir), "--model", str(tiny_models("bert")), "--epochs", "2"]
    same = make_parser().parse_args([*argv, "--out", str(tmp_path / "same")])
    _baseline_row(tmp_path / "same", row_stamp(same, "baseline"))
    assert main([*argv, "--out", str(tmp_path / "same")]) == 0
    assert "baseline: reused" in capsys.readouterr().out

    other = make_parser().parse_args([*argv, "--out", str(tmp_path / "other"), "--epochs", "8"])
    _baseline_row(tmp_path / "other", row_stamp(other, "baseline"))
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--out", str(tmp_path / "other")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "epochs 8.0 -> 2.0" in err[0] and "delete" in err[0] and "baseline" in err[0]

    _baseline_row(tmp_path / "unstamped", None)
    with pytest.raises(SystemExit):
        main([*argv, "--out", str(tmp_path / "unstamped")])
    assert "before rows recorded their settings" in capsys.readouterr().err


def test_second_stage_rows_are_stamped_with_the_tuning_route():
    args = make_parser().parse_args(["--data", "x"])
    assert "second_stage" in row_stamp(args, "tuned") and "second_stage" in row_stamp(args, "rescored@seed43")
    assert "second_stage" not in row_stamp(args, "default")
    assert row_stamp(args, "awp@seed43")["recipe"]["awp_eps"] > 0 and "recipe" not in row_stamp(args, "default")
    assert "best_recipes" in row_stamp(args, "best") and "best_recipes" in row_stamp(args, "tuned")
