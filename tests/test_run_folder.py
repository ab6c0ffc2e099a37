"""A run folder holds one configuration and everything derived from it, and nothing a user has is lost.

Found by probing ``train`` from outside: an attempt that stopped before training (a model name that cannot load)
locked its folder against the corrected command; ``--folds 0`` on a finished two-fold run rewrote the run's CV
table and ``oof.npz`` with fold 0 alone; ``overwrite_output_dir`` left the old run's tuned ``postprocess.json`` and
rescorer behind, and ``predict`` decoded the new run with them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import assert_one_line_error, run_cli, small_config

from feedback_ner.config import fingerprint, parse_config, to_flat_dict
from feedback_ner.kfold import run
from feedback_ner.preflight import check_run_dir
from feedback_ner.probs import load_word_probs


def test_an_attempt_that_trained_nothing_does_not_lock_the_folder(tmp_path: Path, corpus_dir: Path, tiny_models):
    """The first command fails after writing its settings (the model cannot be loaded); the corrected one runs."""
    out = tmp_path / "run"
    good = small_config(corpus_dir, tiny_models("bert"), out, folds=[0], tune_trials=0)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**good, "model_name_or_path": "no-such-org/no-such-model"}))
    done = run_cli("feedback_ner.train", "--config", str(tmp_path / "bad.yaml"), timeout=300,
                   env={"HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2, done.stderr[-3000:]
    assert (out / "fingerprint.txt").is_file()  # the failed attempt got that far: the case this test is about
    cv = run(*parse_config(None, overrides=good))
    assert "fold_0" in cv.columns and (out / "fold_0" / "metrics.json").is_file()


def test_a_run_with_results_still_refuses_other_settings(tmp_path: Path, bert_run: Path, corpus_dir: Path,
                                                          tiny_models):
    config = small_config(corpus_dir, tiny_models("bert"), bert_run, learning_rate=5e-4, num_train_epochs=6,
                          per_device_train_batch_size=4)
    with pytest.raises(Exception, match="holds a run with other settings.*learning_rate"):
        run(*parse_config(None, overrides=config))


def test_training_some_folds_keeps_every_finished_fold_in_the_run_files(tmp_path: Path, bert_run: Path,
                                                                         corpus_dir: Path, tiny_models):
    """``--folds 0`` on a finished two-fold run trains nothing and leaves the CV table and oof.npz whole."""
    copy = Path(shutil.copytree(bert_run, tmp_path / "run"))
    before = pd.read_csv(copy / "cv.csv", index_col=0)
    config = small_config(corpus_dir, tiny_models("bert"), copy, learning_rate=1e-3, num_train_epochs=6,
                          per_device_train_batch_size=4, folds=[0])
    cv = run(*parse_config(None, overrides=config))
    assert {"fold_0", "fold_1", "overall"} <= set(cv.columns)
    after = pd.read_csv(copy / "cv.csv", index_col=0)
    assert list(after.columns) == list(before.columns)
    np.testing.assert_allclose(after["overall"].to_numpy(), before["overall"].to_numpy(), equal_nan=True)
    assert len(load_word_probs(copy / "oof.npz")) == len(load_word_probs(bert_run / "oof.npz"))


def test_overwrite_deletes_everything_derived_from_the_old_run(tmp_path: Path, bert_run: Path, corpus_dir: Path,
                                                                tiny_models):
    """Found probing from outside (2026-12-01, later): every subfolder holding a rescorer.json went, rescorers of
    other runs and of ensembles kept in the folder too. Only those trained on this run's probabilities go."""
    import json

    copy = Path(shutil.copytree(bert_run, tmp_path / "run"))
    (copy / "postprocess.json").write_text("{}\n")  # what tune writes beside the run, where predict finds it
    (copy / "postprocess.optuna.db").write_bytes(b"")
    mine = (copy / "fingerprint.txt").read_text().strip()
    rescorers = {"rescore": {"oof": "/elsewhere/oof.npz", "fingerprints": [mine]},  # this run's, moved since
                 "rescore_v1": {"oof": str(copy / "oof.npz")},  # this run's, no fingerprint recorded
                 "from_run_a": {"oof": "/runs/a/oof.npz", "fingerprints": ["0123456789abcdef"]},
                 "ensemble": {"oof": "/ens/oof.npz", "fingerprints": sorted([mine, "0123456789abcdef"])}}
    for name, trained_on in rescorers.items():
        (copy / name).mkdir()
        (copy / name / "rescorer.json").write_text(json.dumps({"trained_on": trained_on}) + "\n")
    (copy / "report.html").write_text("<html></html>\n")
    (copy / "my-notes.txt").write_text("the user's own file\n")
    (copy / "my-folder").mkdir()
    config = small_config(corpus_dir, tiny_models("bert"), copy, learning_rate=5e-4)
    flat = to_flat_dict(*parse_config(None, overrides=config))
    check_run_dir(copy, fingerprint(flat), flat, overwrite=True)
    assert sorted(p.name for p in copy.iterdir()) == ["ensemble", "from_run_a", "my-folder", "my-notes.txt"]


def test_output_dir_that_is_a_file_is_one_line(tmp_path: Path, corpus_dir: Path, tiny_models):
    (tmp_path / "afile").write_text("x\n")
    config = small_config(corpus_dir, tiny_models("bert"), tmp_path / "afile")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    done = run_cli("feedback_ner.train", "--config", str(tmp_path / "c.yaml"), timeout=300)
    assert_one_line_error(done, "train", "afile", "is a file")


def test_the_rescorer_file_name_is_one_name():
    """``artifacts`` names the rescorer's file without importing LightGBM; it must be the name rescoring writes."""
    from feedback_ner.artifacts import RESCORER_FILE
    from feedback_ner.rescoring import CONFIG_FILE

    assert RESCORER_FILE == CONFIG_FILE


def test_overwrite_leaves_a_folder_that_is_not_a_run_alone(tmp_path: Path):
    """``output_dir: .`` with overwrite in a project folder: its README.md and config.yaml are the user's, neither
    deleted nor (since the run would write its own) used: the folder is refused."""
    (tmp_path / "README.md").write_text("my project\n")
    (tmp_path / "config.yaml").write_text("mine: true\n")
    with pytest.raises(Exception, match="not a run folder"):
        check_run_dir(tmp_path, "abc", {}, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.yaml"]


def test_runs_scores_tuned_figures_on_the_rows_training_read(tmp_path: Path, bert_run: Path, corpus_dir: Path):
    """``runs`` read train.csv raw: a class written " Claim " became an extra macro class (F1 0), halving the tuned
    and rescored columns that tune and rescore had printed right."""
    from feedback_ner.corpus import load_train
    from feedback_ner.metric import score
    from feedback_ner.postprocess import PostprocessConfig, submission_from_probs
    from feedback_ner.runtable import load_runs

    data = Path(shutil.copytree(corpus_dir, tmp_path / "corpus"))
    df = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    df["discourse_type"] = [f" {c} " if i % 7 == 0 else c for i, c in enumerate(df["discourse_type"])]
    df.to_csv(data / "train.csv", index=False)
    run = Path(shutil.copytree(bert_run, tmp_path / "runs" / "r"))
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "data_dir": str(data)}))
    PostprocessConfig().save(run / "postprocess.json")
    [loaded] = load_runs([tmp_path / "runs"])
    probs = load_word_probs(run / "oof.npz")
    gt = load_train(corpus_dir).elements
    expected = score(submission_from_probs(probs, PostprocessConfig()), gt[gt["id"].isin(set(probs))]).f1
    assert loaded.tuned_file == pytest.approx(expected)


# Found probing from outside: two trains into one folder interleaved their folds and files (a fold of one settings
# in the other's CV table, the folder labelled with the second's settings); a kill while a checkpoint was saved left
# a fold that every re-run tried to resume from and failed on.

def test_a_second_train_on_a_folder_in_use_stops_in_one_line(tmp_path: Path, corpus_dir: Path, tiny_models):
    """While one train holds a run folder (here this test process holds it, as a running train does), another stops
    before any work; a lock left by a process that is gone is taken over."""
    import subprocess
    import sys

    from feedback_ner.files import LOCK_FILE, folder_lock

    out = tmp_path / "run"
    out.mkdir()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(small_config(corpus_dir, tiny_models("bert"), out, folds=[0], tune_trials=0)))
    with folder_lock(out, "train"):
        done = run_cli("feedback_ner.train", "--config", str(config))
    assert_one_line_error(done, "train", str(out), "in use by another train", "wait for it")
    assert not (out / "fold_0").exists() and not (out / LOCK_FILE).exists()

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import json
    import socket

    (out / LOCK_FILE).write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname(),
                                             "command": "train", "since": "earlier"}))
    done = run_cli("feedback_ner.train", "--config", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "which is gone; taken over" in done.stderr
    assert (out / "fold_0" / "metrics.json").is_file() and not (out / LOCK_FILE).exists()


def test_a_finished_fold_of_other_settings_is_refused(tmp_path: Path, bert_run: Path, corpus_dir: Path,
                                                       tiny_models):
    import json

    copy = Path(shutil.copytree(bert_run, tmp_path / "run"))
    meta = copy / "fold_1" / "model" / "feedback_ner.json"
    data = json.loads(meta.read_text())
    data["extra"]["fingerprint"] = "0123456789abcdef"  # what a fold trained by another command's settings holds
    meta.write_text(json.dumps(data))
    config = small_config(corpus_dir, tiny_models("bert"), copy, learning_rate=1e-3, num_train_epochs=6,
                          per_device_train_batch_size=4, folds=[0])
    with pytest.raises(Exception, match=r"fold_1 was trained with other settings.*0123456789abcdef.*delete"):
        run(*parse_config(None, overrides=config))


def test_an_incomplete_checkpoint_is_not_resumed_from(tmp_path: Path, corpus_dir: Path, tiny_models):
    """A checkpoint left by a kill while it was saved (an empty optimizer.pt, no trainer_state.json) is skipped with
    a warning and the fold trains; before, every re-run tried to resume from it and stopped."""
    out = tmp_path / "run"
    broken = out / "fold_0" / "checkpoint-3"
    broken.mkdir(parents=True)
    (broken / "optimizer.pt").write_bytes(b"")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(small_config(corpus_dir, tiny_models("bert"), out, folds=[0], tune_trials=0)))
    done = run_cli("feedback_ner.train", "--config", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checkpoint-3 is incomplete (no trainer_state.json" in done.stderr
    assert (out / "fold_0" / "metrics.json").is_file()


def test_checkpoint_problems_name_truncated_weights(tmp_path: Path):
    import json

    import torch
    from safetensors.torch import save_file

    from feedback_ner.preflight import checkpoint_problem

    ckpt = tmp_path / "checkpoint-9"
    ckpt.mkdir()
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 9}))
    save_file({"w": torch.zeros(64, 64)}, str(ckpt / "model.safetensors"))
    assert checkpoint_problem(ckpt) is None
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert "model.safetensors: truncated" in checkpoint_problem(ckpt)
    (ckpt / "model.safetensors").write_bytes(data[:5])
    assert "model.safetensors" in checkpoint_problem(ckpt)
    (ckpt / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00[]")  # a header, not a dict
    assert checkpoint_problem(ckpt) == "model.safetensors: unreadable header"
    (ckpt / "model.safetensors").unlink()  # weights elsewhere (DeepSpeed's global_step*/): trainer_state decides
    assert checkpoint_problem(ckpt) is None
    (ckpt / "trainer_state.json").unlink()
    assert checkpoint_problem(ckpt) == "no trainer_state.json"


def test_a_fold_stopped_after_training_resumes_without_training_again(tmp_path: Path, corpus_dir: Path,
                                                                       tiny_models):
    """A fold that stops after its last epoch but before its results are written (here: a file stands where its
    model folder goes; a kill does the same) keeps its last checkpoint, so the corrected re-run trains no epoch
    again: it resumes at the last step and reloads the best epoch. Before, transformers deleted the last
    checkpoint at the end of ``train()`` (``save_total_limit`` 1) and the re-run repeated every epoch after the best.
    """
    out = tmp_path / "run"
    # greater_is_better false: the best epoch is an early one (ties keep the first), so best != last
    values = small_config(corpus_dir, tiny_models("bert"), out, folds=[0], tune_trials=0, num_train_epochs=3,
                          greater_is_better=False)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(values))
    (out / "fold_0").mkdir(parents=True)
    (out / "fold_0" / "model").write_text("in the way")
    first = run_cli("feedback_ner.train", "--config", str(config))
    assert first.returncode == 2, first.stderr[-3000:]
    assert "fold_0/model" in first.stderr.strip().splitlines()[-1]
    steps = sorted(int(p.name.split("-")[1]) for p in (out / "fold_0").glob("checkpoint-*"))
    assert len(steps) == 2, steps  # the best epoch's and the last's (which transformers deleted before)
    (out / "fold_0" / "model").unlink()
    second = run_cli("feedback_ner.train", "--config", str(config))
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from {out / 'fold_0' / f'checkpoint-{steps[-1]}'}" in second.stderr
    assert " epoch " not in second.stderr.split("resuming from")[1].split("best checkpoint reloaded")[0]
    assert (out / "fold_0" / "metrics.json").is_file() and not list((out / "fold_0").glob("checkpoint-*"))


@pytest.mark.parametrize(("best", "kept"), [(24, [24]), (8, [8, 24]), (None, [24])])
def test_the_checkpoint_rotation_keeps_the_best_and_the_newest_only(tmp_path: Path, best, kept):
    """What save_total_limit 1 keeps while training, one checkpoint when the newest is the best (a limit of 2 kept
    the one before it too: a whole model and optimizer state more on disk for the rest of the fold)."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from feedback_ner.trainer import KeepBestAndLastCallback

    for step in (8, 16, 24):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "model").mkdir()
    state = TrainerState(best_model_checkpoint=str(tmp_path / f"checkpoint-{best}") if best else None)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    KeepBestAndLastCallback().on_save(args, state, TrainerControl())
    assert sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("checkpoint-*")) == kept
    assert (tmp_path / "model").is_dir()


def test_a_tuned_postprocess_of_fewer_folds_is_said_to_be_stale(tmp_path: Path, bert_run: Path, corpus_dir: Path,
                                                                 tiny_models, caplog):
    """tune on a one-fold run wrote postprocess.json (predict decodes with it); training another fold rewrote
    oof.npz and said nothing: the tuned thresholds then fitted one fold of two."""
    import logging

    from feedback_ner.probs import load_meta, save_word_probs

    copy = Path(shutil.copytree(bert_run, tmp_path / "run"))
    meta = load_meta(copy / "oof.npz")  # the state after `train --folds 0` and `tune`
    save_word_probs(copy / "oof.npz", load_word_probs(copy / "fold_0" / "oof.npz"),
                    meta={**meta, "folds": [0], "models": ["fold_0/model"]})
    (copy / "postprocess.json").write_text("{}\n")
    (copy / "report.html").write_text("<html>the inspect page of fold 0</html>\n")
    config = small_config(corpus_dir, tiny_models("bert"), copy, learning_rate=1e-3, num_train_epochs=6,
                          per_device_train_batch_size=4, tune_trials=0)
    with caplog.at_level(logging.WARNING, logger="feedback_ner.kfold"):
        run(*parse_config(None, overrides=config))
    assert "postprocess.json" in caplog.text and "report.html" in caplog.text
    assert "made from the out-of-fold probabilities of folds [0]; the run now has folds [0, 1]" in caplog.text
    assert (copy / "postprocess.json").read_text() == "{}\n"  # kept: the user's file, said, not removed


def test_a_run_whose_data_changed_since_is_refused(tmp_path: Path, corpus_dir: Path, tiny_models):
    """Finished folds were skipped and the CV table rebuilt against an edited train.csv: models and best epochs
    chosen on the old labels, scored on the new ones, and the table looked current."""
    data = Path(shutil.copytree(corpus_dir, tmp_path / "data", ignore=shutil.ignore_patterns(".cache*")))
    config = small_config(data, tiny_models("bert"), tmp_path / "run", folds=[0], tune_trials=0,
                          cache_dir=str(tmp_path / "cache"))
    run(*parse_config(None, overrides=config))
    assert (tmp_path / "run" / "data.txt").is_file()
    run(*parse_config(None, overrides=config))  # the same data: resumes (nothing to train)
    gt = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    gt[gt["discourse_type"] != "Evidence"].to_csv(data / "train.csv", index=False)
    with pytest.raises(Exception, match=r"its folds were trained on other data .*data_dir changed since"):
        run(*parse_config(None, overrides=config))
    cv = run(*parse_config(None, overrides={**config, "overwrite_output_dir": True}))  # trains again on it
    assert "Evidence" not in set(cv.dropna(how="all").index) or np.isnan(cv.loc["Evidence", "fold_0"])


def test_a_run_whose_postprocess_file_changed_since_is_refused(tmp_path: Path, corpus_dir: Path, tiny_models):
    """Found probing from outside: with ``postprocess: my.json``, fold 0 trained, my.json edited, then fold 1 trained
    with the new thresholds, and one CV table mixed folds whose best epochs were chosen with different decoders
    (the fingerprint holds the path, not the content). The file's content is now checked against each fold's."""
    from feedback_ner.postprocess import PostprocessConfig

    pp = tmp_path / "my.json"
    PostprocessConfig().save(pp)
    config = small_config(corpus_dir, tiny_models("bert"), tmp_path / "run", folds=[0], tune_trials=0,
                          postprocess=str(pp), cache_dir=str(tmp_path / "cache"))
    run(*parse_config(None, overrides=config))
    run(*parse_config(None, overrides=config))  # unchanged: resumes (nothing to train)
    PostprocessConfig(min_words={c: 1 for c in PostprocessConfig().min_words}).save(pp)
    with pytest.raises(Exception, match=r"fold_0 was evaluated .* with another post-processing than .*my.json "
                                        r"holds now: the file changed since"):
        run(*parse_config(None, overrides={**config, "folds": [1]}))
    assert not (tmp_path / "run" / "fold_1").exists()


def test_a_folder_with_a_users_files_is_not_a_run_folder(tmp_path: Path, corpus_dir: Path, tiny_models):
    """output_dir a folder of the user's (a project folder, '.'): its README.md and config.yaml were replaced by
    the run's model card and settings without a word."""
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "README.md").write_text("# my notes\n")
    (mine / "config.yaml").write_text("mine: true\n")
    config = small_config(corpus_dir, tiny_models("bert"), mine, folds=[0], tune_trials=0)
    with pytest.raises(Exception, match=r"not a run folder \(no fingerprint.txt\) and holds files a run writes "
                                        r"\(config.yaml, README.md\)"):
        run(*parse_config(None, overrides=config))
    assert (mine / "README.md").read_text() == "# my notes\n" and sorted(p.name for p in mine.iterdir()) == [
        "README.md", "config.yaml"]


def test_a_tuned_postprocess_records_its_folds_and_is_flagged_once_they_change(tmp_path: Path, bert_run: Path,
                                                                                corpus_dir: Path, caplog):
    """train's warning came once, when the fold was added; runs went on showing the stale tuned_file figure and
    predict decoding with it silently. tune now records the folds it was tuned on. SpanPredictor, which decodes
    with the same file, said nothing (the warning sat in predict alone)."""
    import json
    import logging

    from feedback_ner.inference import predict
    from feedback_ner.pipeline import SpanPredictor
    from feedback_ner.probs import load_meta, save_word_probs
    from feedback_ner.runtable import load_run

    copy = Path(shutil.copytree(bert_run, tmp_path / "run"))
    done = run_cli("feedback_ner.tune", "--oof", str(copy / "oof.npz"), "--gt", str(corpus_dir / "train.csv"),
                   "--trials", "2", "--rounds", "1", "--no-cross-fit", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((copy / "postprocess.tuned_on.json").read_text())["folds"] == [0, 1]
    gt = pd.read_csv(corpus_dir / "train.csv", dtype={"id": str})
    assert load_run(copy, gt).tuned_file is not None  # it fits the run: shown
    meta = load_meta(copy / "oof.npz")  # the run's folds change (here: one fold of the two)
    save_word_probs(copy / "oof.npz", load_word_probs(copy / "fold_0" / "oof.npz"),
                    meta={**meta, "folds": [0], "models": ["fold_0/model"]})
    text = next(iter(sorted((corpus_dir / "test").glob("*.txt")))).read_text(encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="feedback_ner"):
        assert load_run(copy, gt).tuned_file is None
        predict(copy / "fold_0" / "model", {"e": text})
        SpanPredictor(copy / "fold_0" / "model")  # the Python API decodes with the same file: it says so too
    assert caplog.text.count("was tuned on folds [0, 1]; the run now has folds [0]") == 3
    check_run_dir(copy, "other", {}, overwrite=True)  # the record goes with the run's other tuned files
    assert not (copy / "postprocess.tuned_on.json").exists()


def test_a_run_whose_model_folder_was_replaced_is_refused(tmp_path: Path, corpus_dir: Path, tiny_models):
    """Found by probing: the model folder replaced in place (another tokenizer and weights at the same path) between
    `train --folds 0` and `--folds 1` gave one CV table over two models, without a word."""
    model = Path(shutil.copytree(tiny_models("bert"), tmp_path / "encoder"))
    config = small_config(corpus_dir, model, tmp_path / "run", folds=[0], tune_trials=0)
    run(*parse_config(None, overrides=config))
    assert (tmp_path / "run" / "model.txt").is_file()
    run(*parse_config(None, overrides={**config, "folds": [0]}))  # the same model: resumes (nothing to train)
    shutil.rmtree(model)
    shutil.copytree(tiny_models("deberta-v2"), model)
    with pytest.raises(Exception, match=r"its folds started from another model .*the model folder changed since"):
        run(*parse_config(None, overrides={**config, "folds": [1]}))
    # review: a fold not finished (it would resume from its files) counts too; a README is not the model
    (tmp_path / "run" / "fold_0" / "metrics.json").unlink()
    with pytest.raises(Exception, match=r"its folds started from another model"):
        run(*parse_config(None, overrides=config))
    shutil.rmtree(model)
    shutil.copytree(tiny_models("bert"), model)
    (model / "README.md").write_text("notes of mine\n")
    run(*parse_config(None, overrides=config))  # the first model again: fold 0 trains and finishes


def test_a_field_an_older_run_did_not_record_is_named(tmp_path: Path):
    """Review: a config.yaml written before a field was recorded gave another fingerprint and a refusal naming
    nothing; the field is named."""
    import yaml

    from feedback_ner.config import fingerprint
    from feedback_ner.errors import FeedbackError
    from feedback_ner.preflight import check_run_dir

    old, new = {"learning_rate": 2e-5}, {"learning_rate": 2e-5, "label_smoothing_factor": 0.0}
    (tmp_path / "fold_0").mkdir()
    (tmp_path / "fold_0" / "metrics.json").write_text("{}")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    (tmp_path / "fingerprint.txt").write_text(fingerprint(old))
    with pytest.raises(FeedbackError, match=r"label_smoothing_factor not recorded by the run \(an older version\)"):
        check_run_dir(tmp_path, fingerprint(new), new, False)
