"""Probabilities and rescorers stay with the models that made them, and one command's outputs never overwrite
each other.

Found by probing the commands from outside: ``predict --out s.csv --probs-out s.csv`` (and ``ensemble --out e.json
--oof-submission e.json``) said it wrote both and left one; an ``oof.npz`` copied into another run's folder was
tuned, ensembled and inspected as that run's; a rescorer trained on one run's probabilities replaced another run's
rescorer, decoded another run's checkpoints and went into another run's ensemble without a word; ``rescore --out``
replaced a user's ``model.txt`` that only shared a name with its own files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

from feedback_ner.probs import load_meta, load_word_probs, save_word_probs

OTHER = "0123456789abcdef"  # the fingerprint of "another run"


def test_two_outputs_of_one_command_may_not_be_the_same_file(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    same = tmp_path / "s.csv"
    done = run_cli("feedback_ner.predict", "--model", str(bert_run), "--texts", str(corpus_dir / "test"), "--out",
                   str(same), "--probs-out", str(same), timeout=300)
    assert_one_line_error(done, "predict", "out and probs_out are the same file", "s.csv")
    assert not same.exists()
    done = run_cli("feedback_ner.ensemble", "--oof", str(bert_run / "oof.npz"), "--gt", str(corpus_dir / "train.csv"),
                   "--out", str(tmp_path / "e.json"), "--oof-submission", str(tmp_path / "e.json"), "--trials", "2",
                   timeout=300)
    assert_one_line_error(done, "ensemble", "--out and --oof-submission are the same file")
    assert not (tmp_path / "e.json").exists()


def test_a_file_of_the_same_format_but_not_this_commands_output_is_not_replaced(bert_run: Path, tmp_path: Path):
    """Found probing from outside: any zip passed for an npz output (`predict --probs-out` over the Kaggle download
    feedback-prize-2021.zip), any JSON object for a JSON output (`tune --out` over a model's config.json) and a run's
    own oof.npz were replaced. Now only a file of the kind the command writes is: a predict probabilities file, an
    ensemble's out-of-fold file, a JSON with the command's own key."""
    import zipfile

    from feedback_ner.files import check_output

    (tmp_path / "kaggle").mkdir()
    (tmp_path / "kaggle" / "train.csv").write_text("id\n")
    shutil.make_archive(str(tmp_path / "feedback-prize-2021"), "zip", tmp_path / "kaggle")
    assert zipfile.is_zipfile(tmp_path / "feedback-prize-2021.zip")
    probs = load_word_probs(bert_run / "oof.npz")
    save_word_probs(tmp_path / "test_probs.npz", probs, meta={"models": ["m"], "weights": [1.0]})  # predict's
    save_word_probs(tmp_path / "ens_oof.npz", probs, meta={"ensemble_of": [str(bert_run / "oof.npz")]})
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    (tmp_path / "pp.json").write_text(json.dumps({"min_words": {}, "proba_thresh": {}}))
    (tmp_path / "ens.json").write_text(json.dumps({"models": [], "weights": []}))
    refused = [("feedback-prize-2021.zip", "npz:probs"), (bert_run / "oof.npz", "npz:probs"),
               (bert_run / "fold_0" / "oof.npz", "npz:probs"), ("ens_oof.npz", "npz:probs"),
               (bert_run / "oof.npz", "npz:ensemble-oof"), ("test_probs.npz", "npz:ensemble-oof"),
               ("config.json", "json:min_words"), ("config.json", "json:models"), ("ens.json", "json:min_words"),
               ("pp.json", "json:models")]
    for name, kind in refused:
        with pytest.raises(Exception, match="exists and is not a .* file this command wrote; it would be lost"):
            check_output(tmp_path / name, "--out", kind=kind)
    for name, kind in [("test_probs.npz", "npz:probs"), ("ens_oof.npz", "npz:ensemble-oof"),
                       ("pp.json", "json:min_words"), ("ens.json", "json:models")]:
        assert check_output(tmp_path / name, "--out", kind=kind) == tmp_path / name
    before = (bert_run / "oof.npz").read_bytes()
    done = run_cli("feedback_ner.predict", "--model", str(bert_run), "--texts", str(tmp_path / "kaggle"), "--out",
                   str(tmp_path / "s.csv"), "--probs-out", str(bert_run / "oof.npz"), timeout=300)
    assert_one_line_error(done, "predict", "oof.npz", "not a word-probabilities .npz file this command wrote")
    assert (bert_run / "oof.npz").read_bytes() == before


def _retag(run: Path, fingerprint: str, oof_only: bool = False) -> Path:
    """The run's files saying they belong to a run of another fingerprint: only its oof.npz (a file copied in from
    another run), or every file (another run of other settings)."""
    meta = load_meta(run / "oof.npz")
    save_word_probs(run / "oof.npz", load_word_probs(run / "oof.npz"),
                    meta={**meta, "fingerprint": fingerprint, "run_dir": "/elsewhere/other_run"})
    if not oof_only:
        (run / "fingerprint.txt").write_text(fingerprint + "\n")
        for cfg in run.glob("fold_*/model/feedback_ner.json"):
            data = json.loads(cfg.read_text())
            data["extra"]["fingerprint"] = fingerprint
            cfg.write_text(json.dumps(data))
    return run


def test_an_oof_copied_into_another_runs_folder_is_refused(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    run = _retag(Path(shutil.copytree(bert_run, tmp_path / "run")), OTHER, oof_only=True)
    oof, gt = str(run / "oof.npz"), str(corpus_dir / "train.csv")
    needles = ("oof.npz", "probabilities of another run", "/elsewhere/other_run", OTHER)
    for cmd, args in [
        ("tune", ["--oof", oof, "--gt", gt, "--trials", "2", "--rounds", "1", "--no-cross-fit"]),
        ("ensemble", ["--oof", oof, str(bert_run / "oof.npz"), "--gt", gt, "--out", str(tmp_path / "e.json")]),
        ("inspect", [str(run), "--data", str(corpus_dir), "--out", str(tmp_path / "r.html")]),
        ("rescore", ["--oof", oof, "--data", str(corpus_dir), "--out", str(tmp_path / "rs")]),
    ]:
        done = run_cli(f"feedback_ner.{cmd}", *args, timeout=300)
        assert_one_line_error(done, cmd, *needles)
    assert not (run / "postprocess.json").exists() and not (tmp_path / "e.json").exists()


@pytest.mark.slow
def test_a_rescorer_is_used_only_with_the_models_it_learned_from(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    out = tmp_path / "rescore"
    rescore = ["--data", str(corpus_dir), "--out", str(out), "--tune-trials", "2", "--no-nested"]
    done = run_cli("feedback_ner.rescore", "--oof", str(bert_run / "oof.npz"), *rescore, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    fingerprint = (bert_run / "fingerprint.txt").read_text().strip()
    trained_on = json.loads((out / "rescorer.json").read_text())["trained_on"]
    assert trained_on["fingerprints"] == [fingerprint]
    assert json.loads((out / "folds" / "fold_0" / "rescorer.json").read_text())["trained_on"] == trained_on
    other = _retag(Path(shutil.copytree(bert_run, tmp_path / "other")), OTHER)
    before = (out / "rescorer.json").read_bytes()
    done = run_cli("feedback_ner.rescore", "--oof", str(other / "oof.npz"), *rescore, timeout=600)
    assert_one_line_error(done, "rescore", "--out", "holds a rescorer trained on another run's probabilities",
                          fingerprint)
    assert (out / "rescorer.json").read_bytes() == before
    texts = ["--texts", str(corpus_dir / "test"), "--out", str(tmp_path / "s.csv"), "--rescore", str(out)]
    done = run_cli("feedback_ner.predict", "--model", str(other), *texts, timeout=300)
    assert_one_line_error(done, "predict", f"rescorer trained on the out-of-fold probabilities of run(s) {fingerprint}",
                          f"not on those of these checkpoints ({OTHER})", "rescore --oof RUN/oof.npz")
    done = run_cli("feedback_ner.ensemble", "--oof", str(other / "oof.npz"), "--gt", str(corpus_dir / "train.csv"),
                   "--out", str(tmp_path / "e.json"), "--rescore", str(out), timeout=300)
    assert_one_line_error(done, "ensemble", "--rescore", "not on those of these runs")
    done = run_cli("feedback_ner.ensemble", "--oof", str(bert_run / "oof.npz"), str(other / "oof.npz"), "--gt",
                   str(corpus_dir / "train.csv"), "--out", str(tmp_path / "e.json"), "--rescore", str(out), timeout=300)
    assert_one_line_error(done, "ensemble", "--rescore", "--oof-out ens/oof.npz, then feedback_ner.rescore")
    done = run_cli("feedback_ner.predict", "--model", str(bert_run), *texts, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_rescore_never_replaces_a_users_file_that_shares_a_name(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "model.txt").write_text("my notes\n")
    (out / "report.csv").write_text("week,hours\n1,3\n")
    done = run_cli("feedback_ner.rescore", "--oof", str(bert_run / "oof.npz"), "--data", str(corpus_dir), "--out",
                   str(out), "--tune-trials", "2", "--no-nested", timeout=300)
    assert_one_line_error(done, "rescore", "--out", "files rescore does not write", "model.txt", "report.csv")
    assert (out / "model.txt").read_text() == "my notes\n"


def test_an_ensemble_decoded_with_one_runs_tuning_says_it_favours_that_run(bert_run: Path, corpus_dir: Path,
                                                                            tmp_path: Path):
    """The first --oof run's tuned postprocess.json decodes every row: in-sample for that run, its single-run row
    (0.2698 against its CV's 0.1978 in a probe) and weight change with the order of --oof, without a word."""
    from feedback_ner.postprocess import PostprocessConfig

    a = _retag(Path(shutil.copytree(bert_run, tmp_path / "a")), OTHER)
    PostprocessConfig.zeros().save(a / "postprocess.json")
    done = run_cli("feedback_ner.ensemble", "--oof", str(a / "oof.npz"), str(bert_run / "oof.npz"), "--gt",
                   str(corpus_dir / "train.csv"), "--out", str(tmp_path / "e.json"), "--trials", "2", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "was tuned on a's own out-of-fold essays: in-sample for it" in done.stderr
    done = run_cli("feedback_ner.ensemble", "--oof", str(bert_run / "oof.npz"), str(a / "oof.npz"), "--gt",
                   str(corpus_dir / "train.csv"), "--out", str(tmp_path / "f.json"), "--trials", "2", timeout=300)
    assert done.returncode == 0 and "in-sample for it" not in done.stderr  # the first run's own: no tuned file
