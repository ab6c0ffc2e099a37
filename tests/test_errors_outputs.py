"""Outputs never replace what a user has, and damaged or mismatched inputs never give silent figures.

Found by probing the commands from outside: ``tune --out`` onto its own ``--gt``, ``predict --out`` onto a
train.csv, ``rescore --out`` into the data folder; a NaN in an ``oof.npz``; probabilities of other essays than
the texts; the same run twice in an ensemble; a path the file system refuses after the work; a damaged
checkpoint ``feedback_ner.json``; ``--postprocess`` silently unused beside ``--rescore``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import assert_one_line_error, quick_rescorer, run_cli

from feedback_ner.probs import load_word_probs, save_word_probs


def _tune(oof: Path, gt: Path, out: Path, *extra: str):
    return run_cli("feedback_ner.tune", "--oof", str(oof), "--gt", str(gt), "--out", str(out), "--trials", "2",
                   "--rounds", "1", "--no-cross-fit", *extra, timeout=300)


def test_tune_never_writes_over_an_input_or_a_users_file(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    gt = Path(shutil.copy(corpus_dir / "train.csv", tmp_path / "gt.csv"))
    before = gt.read_bytes()
    assert_one_line_error(_tune(bert_run / "oof.npz", gt, gt), "tune", "--out", "gt.csv", "also an input")
    other = Path(shutil.copy(corpus_dir / "train.csv", tmp_path / "notes.csv"))
    assert_one_line_error(_tune(bert_run / "oof.npz", gt, other), "tune", "--out", "notes.csv", "not a json")
    assert gt.read_bytes() == before and other.read_bytes() == before
    done = _tune(bert_run / "oof.npz", gt, tmp_path / "pp.json")
    assert done.returncode == 0, done.stderr[-2000:]
    done = _tune(bert_run / "oof.npz", gt, tmp_path / "pp.json")  # a re-run replaces its own output
    assert done.returncode == 0, done.stderr[-2000:]


def test_predict_and_rescore_outputs_keep_the_users_files(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    victim = Path(shutil.copy(corpus_dir / "train.csv", tmp_path / "train.csv"))
    before = victim.read_bytes()
    done = run_cli("feedback_ner.predict", "--model", str(bert_run / "fold_0" / "model"), "--texts",
                   str(corpus_dir / "test"), "--out", str(victim), timeout=300)
    assert_one_line_error(done, "predict", "train.csv", "not a submission")
    assert victim.read_bytes() == before
    data = Path(shutil.copytree(corpus_dir, tmp_path / "data"))
    done = run_cli("feedback_ner.rescore", "--oof", str(bert_run / "oof.npz"), "--data", str(data), "--out",
                   str(data), timeout=300)
    assert_one_line_error(done, "rescore", "--out", "files rescore does not write")
    assert sorted(p.name for p in data.iterdir()) == sorted(p.name for p in corpus_dir.iterdir())


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc (a folder no file can be made in)")
def test_a_path_the_file_system_refuses_is_one_line(bert_run: Path, corpus_dir: Path):
    """Even as root (every permission check passes) the write fails after the work: one line naming the path."""
    done = run_cli("feedback_ner.predict", "--model", str(bert_run / "fold_0" / "model"), "--texts",
                   str(corpus_dir / "test"), "--out", "/proc/feedback_ner_sub.csv", timeout=300)
    assert_one_line_error(done, "predict", "/proc/feedback_ner_sub.csv")


def _damaged_oof(bert_run: Path, out: Path, how: str) -> Path:
    if how == "nan":  # save_word_probs refuses NaN: the damaged file is written by hand
        with np.load(bert_run / "oof.npz") as data:
            arrays = {k: data[k] for k in data.files}
        arrays["probs"][3, 0] = np.nan
        with open(out, "wb") as fh:
            np.savez(fh, **arrays)
        return out
    probs = load_word_probs(bert_run / "oof.npz")
    save_word_probs(out, {k: v[: len(v) // 2] for k, v in probs.items()})  # "half": other (shorter) essays
    return out


def test_a_nan_in_word_probabilities_is_refused(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    """It made every F1 0.0 (tune, ensemble) or quietly lower (rescore)."""
    oof = _damaged_oof(bert_run, tmp_path / "nan.npz", "nan")
    done = _tune(oof, corpus_dir / "train.csv", tmp_path / "pp.json")
    assert_one_line_error(done, "tune", "nan.npz", "non-finite", "word 3")


def test_probabilities_of_other_essays_are_refused(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    """Probabilities cut to half their words: inspect and tune scored them without a word."""
    oof = _damaged_oof(bert_run, tmp_path / "half.npz", "half")
    done = run_cli("feedback_ner.inspect", str(oof), "--data", str(corpus_dir), "--out", str(tmp_path / "r.html"),
                   timeout=300)
    assert_one_line_error(done, "inspect", "half.npz", "words in", "rows of word probabilities")
    done = _tune(oof, corpus_dir / "train.csv", tmp_path / "pp.json")
    assert_one_line_error(done, "tune", "half.npz", "words of probabilities", "same corpus")


def test_inspect_says_when_predicted_classes_match_nothing(corpus_dir: Path, tmp_path: Path):
    gt = pd.read_csv(corpus_dir / "train.csv", dtype=str, keep_default_na=False)
    sub = gt[["id", "discourse_type", "predictionstring"]].rename(columns={"discourse_type": "class"})
    sub = sub.assign(**{"class": sub["class"].str.lower()})
    sub.to_csv(tmp_path / "lower.csv", index=False)
    done = run_cli("feedback_ner.inspect", str(tmp_path / "lower.csv"), "--data", str(corpus_dir), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(sub)} predicted rows have a class that is not in the ground truth" in done.stderr


def test_the_same_run_twice_in_an_ensemble_is_refused(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    oof = str(bert_run / "oof.npz")
    done = run_cli("feedback_ner.ensemble", "--oof", oof, oof, "--gt", str(corpus_dir / "train.csv"), "--out",
                   str(tmp_path / "e.json"), timeout=300)
    assert_one_line_error(done, "ensemble", "given twice")
    assert not (tmp_path / "e.json").exists()


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("max_length", 0, "max_length 0"),
    ("postprocess", {"proba_thresh": {"Lead": 7}}, "postprocess"),
    ("stride", None, "lacks stride"),  # None: the field removed (a "{}" file was read with default windows)
])
def test_a_damaged_checkpoint_json_is_one_line(bert_run: Path, corpus_dir: Path, tmp_path: Path, field, value,
                                               needle):
    model = Path(shutil.copytree(bert_run / "fold_0" / "model", tmp_path / "model"))
    data = json.loads((model / "feedback_ner.json").read_text())
    if value is None:
        del data[field]
    else:
        data[field] = value
    (model / "feedback_ner.json").write_text(json.dumps(data))
    done = run_cli("feedback_ner.predict", "--model", str(model), "--texts", str(corpus_dir / "test"), "--out",
                   str(tmp_path / "sub.csv"), timeout=300)
    assert_one_line_error(done, "predict", "feedback_ner.json", needle)


def test_postprocess_beside_a_rescorer_is_said_to_be_unused(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    rescorer = quick_rescorer(bert_run / "oof.npz", corpus_dir, tmp_path / "rescore")
    (tmp_path / "pp.json").write_text("{}\n")
    done = run_cli("feedback_ner.predict", "--model", str(bert_run), "--rescore", str(rescorer), "--postprocess",
                   str(tmp_path / "pp.json"), "--texts", str(corpus_dir / "test"), "--out", str(tmp_path / "s.csv"),
                   timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--postprocess is not used" in done.stderr


def test_tune_refines_its_own_output_in_place(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    """``--start`` and the default ``--out`` are the same postprocess.json: it is read before anything is written."""
    run = Path(shutil.copytree(bert_run, tmp_path / "run"))
    assert _tune(run / "oof.npz", corpus_dir / "train.csv", run / "postprocess.json").returncode == 0
    done = _tune(run / "oof.npz", corpus_dir / "train.csv", run / "postprocess.json", "--start",
                 str(run / "postprocess.json"))
    assert done.returncode == 0, done.stderr[-2000:]


def test_scoring_commands_skip_bad_rows_as_the_run_did(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    """A train.csv row training skipped (skip_bad) stopped score and tune; --skip-bad (tune: the run's setting)
    skips and counts it."""
    gt = pd.read_csv(corpus_dir / "train.csv", dtype=str, keep_default_na=False)
    gt.loc[0, "predictionstring"] = "99998 99999"
    gt.loc[1, "discourse_type"] = "Hook"
    gt.to_csv(tmp_path / "gt.csv", index=False)
    sub = gt[["id", "discourse_type", "predictionstring"]].rename(columns={"discourse_type": "class"})
    sub.to_csv(tmp_path / "sub.csv", index=False)
    done = run_cli("feedback_ner.score", "--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "sub.csv"))
    assert_one_line_error(done, "score", "row 2", "'Hook'", "--skip-bad")
    done = run_cli("feedback_ner.score", "--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "sub.csv"),
                   "--skip-bad")
    assert done.returncode == 0 and "skipped 1 of" in done.stderr, done.stderr[-2000:]
    run = Path(shutil.copytree(bert_run, tmp_path / "run"))
    first = str(pd.read_csv(corpus_dir / "train.csv", dtype=str)["id"].iat[0])
    if first not in load_word_probs(run / "oof.npz"):
        pytest.skip("the first essay is not in the run's out-of-fold essays")
    done = _tune(run / "oof.npz", tmp_path / "gt.csv", tmp_path / "pp.json")
    assert_one_line_error(done, "tune", "--skip-bad")
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "skip_bad": True}))
    done = _tune(run / "oof.npz", tmp_path / "gt.csv", tmp_path / "pp.json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipped 1 of" in done.stderr and "beyond their essay's words" in done.stderr


def test_score_skips_the_rows_training_skipped(corpus_dir: Path, tmp_path: Path):
    """With --skip-bad a Kaggle folder's train.csv keeps exactly the rows training kept: a row whose words lie
    beyond its essay (or of a missing essay) counted as a miss in score, so a perfect submission scored < 1."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "train").symlink_to(corpus_dir / "train")
    gt = pd.read_csv(corpus_dir / "train.csv", dtype=str, keep_default_na=False)
    extra = gt.iloc[:2].assign(discourse_id=["x1", "x2"], discourse_type="Claim", predictionstring="90000 90001")
    extra.loc[extra.index[1], "id"] = "NO_SUCH_ESSAY"
    pd.concat([gt, extra]).to_csv(data / "train.csv", index=False)
    sub = gt[["id", "discourse_type", "predictionstring"]].rename(columns={"discourse_type": "class"})
    sub.to_csv(tmp_path / "sub.csv", index=False)
    done = run_cli("feedback_ner.score", "--gt", str(data / "train.csv"), "--pred", str(tmp_path / "sub.csv"),
                   "--skip-bad")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"skipped 2 of {len(gt) + 2} rows as training does with skip_bad" in done.stderr
    assert done.stdout.strip().splitlines()[-1].split()[-1] == "1.0000"


def test_rescore_replaces_its_own_earlier_output(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    """A folder holding only what rescore writes (an earlier run, even one stopped before rescorer.json) is
    replaced; anything else in it is the user's and refuses the folder."""
    out = tmp_path / "rescore"
    out.mkdir()
    (out / "model.txt").write_text("tree\nversion=v4\n")  # an interrupted run's first model, no rescorer.json
    (out / ".rescorer.4242.tmp.json").write_text("{")  # and the temporary file of the write it was killed in
    args = ["--oof", str(bert_run / "oof.npz"), "--data", str(corpus_dir), "--out", str(out), "--tune-trials", "2",
            "--no-nested"]
    done = run_cli("feedback_ner.rescore", *args, timeout=600)
    assert done.returncode == 0 and (out / "rescorer.json").is_file(), done.stderr[-2000:]
    (out / "inner_folds.csv").write_text("id,fold\n")
    done = run_cli("feedback_ner.rescore", *args, timeout=600)
    assert_one_line_error(done, "rescore", "--out", "files rescore does not write (inner_folds.csv)")
