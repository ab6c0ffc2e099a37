"""The span rescorer recorded in an ensemble file (issue 13 item 3): ``ensemble --rescore DIR`` writes it, relative
to the file; ``predict --ensemble`` decodes with it as ``predict --rescore DIR`` does with the same models; an explicit
rescorer or post-processing overrides it; files without it decode with thresholds as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_one_line_error, quick_rescorer, run_cli

from feedback_ner import ensemble as ensemble_cli
from feedback_ner.artifacts import EnsembleSpec, choose_decoder, load_ensemble, save_ensemble
from feedback_ner.postprocess import PostprocessConfig
from feedback_ner.predict import predict

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, bert_run, corpus_dir) -> dict[str, Path]:
    """The session's trained run, two rescorers trained on its OOF probabilities (a low and a high threshold) and
    an ensemble file written by the command with the first one recorded."""
    root = tmp_path_factory.mktemp("rescore-ensemble")
    low = quick_rescorer(bert_run / "oof.npz", corpus_dir, root / "rescorers" / "low", threshold=0.2)
    high = quick_rescorer(bert_run / "oof.npz", corpus_dir, root / "rescorers" / "high", threshold=0.6)
    ens = root / "kaggle" / "ensemble.json"
    code = ensemble_cli.main(["--oof", str(bert_run / "oof.npz"), "--gt", str(corpus_dir / "train.csv"),
                              "--out", str(ens), "--trials", "2", "--rescore", str(low)])
    assert code == 0
    return {"root": root, "low": low, "high": high, "ensemble": ens, "folds": sorted(bert_run.glob("fold_*/model"))}


def test_ensemble_file_records_the_rescorer_relative_to_itself(setup):
    data = json.loads(setup["ensemble"].read_text())
    assert data["rescore"] == str(Path("..") / "rescorers" / "low")
    assert load_ensemble(setup["ensemble"]).rescore == setup["ensemble"].parent / ".." / "rescorers" / "low"
    # they move together: copied elsewhere with the rescorer beside it, the file still finds it
    moved = setup["root"] / "moved"
    shutil.copytree(setup["ensemble"].parent, moved / "kaggle")
    shutil.copytree(setup["low"], moved / "rescorers" / "low")
    found = load_ensemble(moved / "kaggle" / "ensemble.json").rescore
    assert found.resolve() == (moved / "rescorers" / "low").resolve()
    # a file written without a rescorer has no key at all (and reads as before)
    plain = save_ensemble(setup["root"] / "plain.json", EnsembleSpec(setup["folds"], [0.5, 0.5]))
    assert "rescore" not in json.loads(plain.read_text()) and load_ensemble(plain).rescore is None


def test_predict_ensemble_decodes_with_its_rescorer_like_predict_rescore(setup, corpus_dir, tmp_path):
    """Issue 13 item 3: `predict --ensemble FILE` (the file records DIR) writes the same submission as
    `predict --rescore DIR` with the same models, and says which decoder it used."""
    texts = str(corpus_dir / "test")
    via_file = run_cli("feedback_ner.predict", "--ensemble", str(setup["ensemble"]), "--texts", texts,
                       "--out", str(tmp_path / "ens.csv"))
    assert via_file.returncode == 0, via_file.stderr[-3000:]
    direct = run_cli("feedback_ner.predict", "--model", *map(str, setup["folds"]), "--texts", texts,
                     "--rescore", str(setup["low"]), "--out", str(tmp_path / "direct.csv"))
    assert direct.returncode == 0, direct.stderr[-3000:]
    line = next(x for x in via_file.stderr.splitlines() if x.startswith("post-processing:"))
    assert line.startswith("post-processing: span rescorer") and f"ensemble file {setup['ensemble']}" in line
    assert "(explicit)" in next(x for x in direct.stderr.splitlines() if x.startswith("post-processing:"))
    ens, ref = pd.read_csv(tmp_path / "ens.csv"), pd.read_csv(tmp_path / "direct.csv")
    assert len(ref) > 0
    pd.testing.assert_frame_equal(ens, ref)


def test_explicit_choices_override_the_files_rescorer(setup, corpus_dir):
    texts = corpus_dir / "test"
    folds, ens = setup["folds"], setup["ensemble"]
    own = predict(folds, texts, rescore=setup["low"])
    # an explicit rescorer wins over the file's
    high = predict(None, texts, ensemble=ens, rescore=setup["high"])
    pd.testing.assert_frame_equal(high, predict(folds, texts, rescore=setup["high"]))
    assert len(high) < len(own)
    # an explicit post-processing asks for the threshold decoder
    post = PostprocessConfig.zeros()
    pd.testing.assert_frame_equal(predict(None, texts, ensemble=ens, postprocess=post),
                                  predict(folds, texts, postprocess=post))


def test_decoder_precedence(setup):
    """explicit rescorer > explicit post-processing > the ensemble file's rescorer > thresholds."""
    spec = load_ensemble(setup["ensemble"])
    post = PostprocessConfig.zeros()
    assert choose_decoder(setup["high"], post, spec).rescore == setup["high"]
    chosen = choose_decoder(None, post, spec)
    assert chosen.rescore is None and chosen.postprocess.config == post
    assert "threshold decoder" in chosen.describe()
    assert choose_decoder(None, None, spec).rescore == spec.rescore
    old = EnsembleSpec(spec.models, spec.weights, spec.postprocess)
    assert choose_decoder(None, None, old).rescore is None and choose_decoder().rescore is None


def test_ensemble_oof_out_feeds_rescore_with_the_runs_folds(setup, bert_run, corpus_dir):
    """Issue 13: ``rescore`` also takes an ensemble's OOF file: ``ensemble --oof-out`` writes the weighted mean of the
    runs' out-of-fold probabilities and, beside it, each essay's fold, which ``rescore`` finds without --folds."""
    import numpy as np

    from feedback_ner.probs import load_word_probs
    from feedback_ner.tuning import essay_folds, folds_file_of

    out = setup["root"] / "oof-out"
    oof = out / "ensemble_oof.npz"
    code = ensemble_cli.main(["--oof", str(bert_run / "oof.npz"), "--gt", str(corpus_dir / "train.csv"),
                              "--out", str(out / "ensemble.json"), "--trials", "2", "--oof-out", str(oof)])
    assert code == 0
    mine, runs = load_word_probs(oof), load_word_probs(bert_run / "oof.npz")
    assert sorted(mine) == sorted(runs)
    for essay_id, p in runs.items():  # one run: its weight is 1, the mean is its own probabilities
        np.testing.assert_allclose(mine[essay_id], p, atol=1e-6)
    assert folds_file_of(oof).is_file()
    ids = list(mine)
    assert essay_folds(oof, ids) == essay_folds(bert_run / "oof.npz", ids)


def test_ensemble_oof_out_must_be_npz(setup, bert_run, corpus_dir, tmp_path):
    done = run_cli("feedback_ner.ensemble", "--oof", str(bert_run / "oof.npz"), "--gt", str(corpus_dir / "train.csv"),
                   "--out", str(tmp_path / "e.json"), "--oof-out", str(tmp_path / "oof.csv"))
    assert_one_line_error(done, "ensemble", "--oof-out", ".npz")


@pytest.fixture(scope="module")
def lenient_ensemble_oof(setup, bert_run, corpus_dir) -> tuple[Path, PostprocessConfig]:
    """An ensemble's OOF file (``ensemble --oof-out``) made with a post-processing of its own, far from the
    defaults (every class from 1 word at probability 0.2), and that post-processing."""
    out = setup["root"] / "oof-pp"
    out.mkdir(parents=True, exist_ok=True)
    post = PostprocessConfig(min_words={c: 1 for c in PostprocessConfig().min_words},
                             proba_thresh={c: 0.2 for c in PostprocessConfig().proba_thresh})
    post.save(out / "pp.json")
    oof = out / "ens_oof.npz"
    assert ensemble_cli.main(["--oof", str(bert_run / "oof.npz"), "--gt", str(corpus_dir / "train.csv"),
                              "--out", str(out / "ensemble.json"), "--trials", "2", "--postprocess",
                              str(out / "pp.json"), "--oof-out", str(oof)]) == 0
    return oof, post


def test_rescore_on_an_ensemble_oof_starts_from_the_ensembles_post_processing(lenient_ensemble_oof, corpus_dir):
    """Found probing from outside: on an ensemble's OOF file rescore's "default" route decoded with the package
    defaults, not the ensemble's post-processing that predict --ensemble uses, so its verdict compared the
    rescorer with a route nobody runs. ``--oof-out`` now records it and rescore starts from it."""
    import pandas as pd

    from feedback_ner.metric import score
    from feedback_ner.postprocess import PostprocessConfig, submission_from_probs
    from feedback_ner.probs import load_meta, load_word_probs

    oof, post = lenient_ensemble_oof
    out = oof.parent
    assert load_meta(oof)["postprocess"] == post.to_dict()
    done = run_cli("feedback_ner.rescore", "--oof", str(oof), "--data", str(corpus_dir), "--out", str(out / "rs"),
                   "--tune-trials", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the ensemble's, recorded in" in done.stderr
    probs = load_word_probs(oof)
    gt = pd.read_csv(corpus_dir / "train.csv")
    gt = gt[gt["id"].isin(set(probs))]
    report = pd.read_csv(out / "rs" / "report.csv", index_col="class")
    ensembles = score(submission_from_probs(probs, post), gt).f1
    assert report.loc["macro", "default"] == pytest.approx(ensembles, abs=1e-9)
    assert ensembles != pytest.approx(score(submission_from_probs(probs, PostprocessConfig()), gt).f1, abs=1e-6)


def test_inspect_on_an_ensemble_oof_decodes_as_tune_and_rescore_do(lenient_ensemble_oof, corpus_dir):
    """Reading the code: ``inspect`` decoded an ensemble's OOF file with the package defaults (its own rule: the
    first checkpoint beside the file, else the defaults) while ``tune``, ``rescore`` and ``predict --ensemble``
    decode it with the post-processing the ensemble recorded; the page's F1 was then not the ensemble's. One rule
    (``oofruns.oof_postprocess``) now serves all of them."""
    from feedback_ner.errorpage import load_predictions
    from feedback_ner.postprocess import submission_from_probs
    from feedback_ner.probs import load_word_probs

    oof, post = lenient_ensemble_oof
    seen = load_predictions(oof, data_dir=corpus_dir)
    assert seen.postprocess.startswith("the ensemble's, recorded in")
    expected = submission_from_probs(load_word_probs(oof), post)
    got = seen.pred[["id", "class", "predictionstring"]]
    key = ["id", "class", "predictionstring"]
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True),
                                  expected[key].sort_values(key).reset_index(drop=True), check_dtype=False)
    assert len(expected) != len(submission_from_probs(load_word_probs(oof), PostprocessConfig()))


def test_score_essays_of_reproduces_the_ensembles_out_of_fold_f1(bert_run, corpus_dir, tmp_path):
    """Found probing from outside: the README scored an ensemble's out-of-fold submission with
    --only-predicted-essays, which drops the essays whose spans were all filtered out, and their missed elements
    with them (0.0580 printed where ensemble had printed 0.0309). ``--essays-of`` with the runs' oof.npz scores the
    essays ensemble scored; ensemble prints that command."""
    import re

    PostprocessConfig().save(tmp_path / "pp.json")  # the public table: the session's run has essays left spanless
    sub = tmp_path / "oof_sub.csv"
    done = run_cli("feedback_ner.ensemble", "--oof", str(bert_run / "oof.npz"), "--gt", str(corpus_dir / "train.csv"),
                   "--out", str(tmp_path / "ens.json"), "--trials", "2", "--postprocess", str(tmp_path / "pp.json"),
                   "--oof-submission", str(sub), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = float(re.search(r"OOF macro F1 ([0-9.]+)", done.stdout).group(1))
    covered, with_span = map(int, re.search(r"\((\d+) essays; (\d+) with a span\)", done.stdout).groups())
    assert with_span < covered  # essays left without a span: the case --only-predicted-essays gets wrong
    assert f"--essays-of {bert_run / 'oof.npz'}" in done.stdout

    def scored(*option: str) -> float:
        result = run_cli("feedback_ner.score", "--gt", str(corpus_dir / "train.csv"), "--pred", str(sub), *option,
                         timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return float(result.stdout.strip().splitlines()[-1].split()[-1])

    assert scored("--essays-of", str(bert_run / "oof.npz")) == pytest.approx(printed, abs=1e-4)
    assert scored("--only-predicted-essays") > printed  # the dropped essays' elements were missed
    both = run_cli("feedback_ner.score", "--gt", str(corpus_dir / "train.csv"), "--pred", str(sub),
                   "--essays-of", str(bert_run / "oof.npz"), "--only-predicted-essays", timeout=300)
    assert_one_line_error(both, "score", "--only-predicted-essays and --essays-of")
