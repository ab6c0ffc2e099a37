"""Prediction and ensembles (issue 7): one code path with training-time evaluation, word-level ensembles of different
tokenizers, awkward essays, broken checkpoints, post-processing files and the CLIs."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_predict_reproduces_oof, small_config

from feedback_ner import ensemble as ensemble_cli
from feedback_ner import predict as predict_cli
from feedback_ner.artifacts import InferenceConfig, load_ensemble
from feedback_ner.config import parse_config
from feedback_ner.corpus import load_train
from feedback_ner.ensemble_weights import ensemble_f1, shared_probs, tune_weights
from feedback_ner.errors import FeedbackError
from feedback_ner.kfold import run
from feedback_ner.labels import CLASSES, NUM_LABELS, parse_predictionstring
from feedback_ner.metric import score
from feedback_ner.postprocess import PostprocessConfig, candidate_spans, submission_from_probs
from feedback_ner.predict import predict
from feedback_ner.probs import load_meta, load_word_probs
from feedback_ner.synthetic.corpus import write_corpus
from feedback_ner.texts import load_texts
from feedback_ner.wordtable import build_word_table

ARCHS = ("longformer", "deberta-v2")  # byte-level BPE vs Unigram: different tokenizers, different word splits


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus_dir, tiny_models) -> dict[str, Path]:
    """One 2-fold run per architecture, on the same essays and folds."""
    root = tmp_path_factory.mktemp("predict-runs")
    # no span filtering in evaluation: barely trained models still predict spans, so every comparison has rows
    keep_all = PostprocessConfig.zeros().save(root / "keep_all.json")
    out = {}
    for arch in ARCHS:
        cfg = small_config(corpus_dir, tiny_models(arch), root / arch, postprocess=str(keep_all), max_essays=32)
        run(*parse_config(None, overrides=cfg))
        out[arch] = root / arch
    return out


@pytest.fixture(scope="module")
def gt(corpus_dir) -> pd.DataFrame:
    return pd.read_csv(corpus_dir / "train.csv")


def folds_of(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("fold_*/model"))


def assert_valid_submission(sub: pd.DataFrame, texts: dict[str, str]) -> None:
    assert list(sub.columns) == ["id", "class", "predictionstring"]
    assert set(sub["id"]) <= set(texts)
    assert set(sub["class"]) <= set(CLASSES)
    for essay_id, ps in zip(sub["id"], sub["predictionstring"], strict=True):
        idx = parse_predictionstring(ps)
        assert idx and idx == list(range(idx[0], idx[-1] + 1))
        assert 0 <= idx[0] and idx[-1] < len(texts[essay_id].split())


def test_predicts_the_test_essays_into_a_valid_submission(runs, corpus_dir, tmp_path):
    texts = load_texts(corpus_dir / "test")
    models = folds_of(runs["longformer"])
    out, probs_out = tmp_path / "sub" / "submission.csv", tmp_path / "probs.npz"
    timings: dict[str, float] = {}
    sub = predict(models, corpus_dir / "test", out=out, probs_out=probs_out, timings=timings)
    assert_valid_submission(sub, texts)
    pd.testing.assert_frame_equal(pd.read_csv(out, dtype=str), sub.astype(str), check_dtype=False)
    probs = load_word_probs(probs_out)
    assert list(probs) == sorted(texts)
    for essay_id, p in probs.items():
        assert p.shape == (len(texts[essay_id].split()), NUM_LABELS)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    # the submission is the checkpoint's post-processing of exactly those probabilities
    post = PostprocessConfig.from_dict(InferenceConfig.load(models[0]).postprocess)
    pd.testing.assert_frame_equal(sub, submission_from_probs(probs, post))
    assert timings["forward_s"] > 0 and timings["total_s"] >= timings["forward_s"]


@pytest.mark.parametrize("arch", ARCHS)
def test_fold_checkpoint_reproduces_its_out_of_fold_f1(runs, corpus_dir, gt, tmp_path, arch):
    """The one-code-path guarantee: predict() on a fold's held-out essays == that fold's evaluation."""
    run_dir = runs[arch]
    texts = load_texts(corpus_dir / "train")
    cv = pd.read_csv(run_dir / "cv.csv", index_col=0)
    for fold in (0, 1):
        fold_dir = run_dir / f"fold_{fold}"
        oof = load_word_probs(fold_dir / "oof.npz")
        held_out = pd.DataFrame({"id": list(oof), "text": [texts[k] for k in oof]})
        sub = predict([fold_dir / "model"], held_out, probs_out=tmp_path / f"{fold}.npz")
        probs = load_word_probs(tmp_path / f"{fold}.npz")
        for k in oof:
            np.testing.assert_allclose(probs[k], oof[k], atol=1e-5)
        f1 = score(sub, gt[gt["id"].isin(set(oof))]).f1
        metrics = json.loads((fold_dir / "metrics.json").read_text())
        assert f1 == pytest.approx(metrics["eval_f1"], abs=1e-6)
        assert f1 == pytest.approx(cv.loc["macro", f"fold_{fold}"], abs=1e-6)


def test_a_run_on_essays_with_other_line_ends_is_reproduced_by_predict(tmp_path, tiny_models):
    """Found by probing: a Longformer (byte-level BPE) reads ``\\r\\n`` as other tokens than ``\\n``; training kept
    the essays' own line ends while ``predict`` turned them into ``\\n``, so CRLF essays got probabilities up to 1e-2
    away from their out-of-fold ones. The tokenizer now reads every line end as ``\\n`` on both paths: a run on
    essays mixing ``\\n``, ``\\r\\n`` and ``\\r`` is reproduced by ``predict``, and the same essays with ``\\n``
    predict the same probabilities."""
    data = write_corpus(tmp_path / "mixed", n=24, seed=3, n_test=0, line_endings="mixed")
    cfg = small_config(data, tiny_models("longformer"), tmp_path / "run", folds=[0],
                       postprocess=str(PostprocessConfig.zeros().save(tmp_path / "keep_all.json")))
    run(*parse_config(None, overrides=cfg))
    oof, held_out = assert_predict_reproduces_oof(tmp_path / "run" / "fold_0", data, tmp_path)
    assert held_out["text"].str.contains("\r\n").any()
    lf = {k: t.replace("\r\n", "\n").replace("\r", "\n") for k, t in zip(held_out["id"], held_out["text"])}
    predict([tmp_path / "run" / "fold_0" / "model"], lf, probs_out=tmp_path / "lf.npz")
    for k, probs in load_word_probs(tmp_path / "lf.npz").items():
        np.testing.assert_allclose(probs, oof[k], atol=1e-5)


def test_weighted_mean_of_checkpoints(runs, corpus_dir, tmp_path):
    folds = folds_of(runs["longformer"])
    single = []
    for i, f in enumerate(folds):
        predict([f], corpus_dir / "test", probs_out=tmp_path / f"{i}.npz")
        single.append(load_word_probs(tmp_path / f"{i}.npz"))
    predict(folds, corpus_dir / "test", weights=[3, 1], probs_out=tmp_path / "w.npz")
    mixed = load_word_probs(tmp_path / "w.npz")
    for k in mixed:
        np.testing.assert_allclose(mixed[k], 0.75 * single[0][k] + 0.25 * single[1][k], atol=1e-6)
    with pytest.raises(ValueError, match="one weight per checkpoint"):
        predict(folds, corpus_dir / "test", weights=[1.0])


def test_ensemble_of_two_tokenizers(runs, corpus_dir, gt, tmp_path, capsys):
    """BPE Longformer + Unigram DeBERTa: weights tuned on OOF words, one JSON, predict() reads it."""
    out = runs["longformer"].parent / "ensemble.json"
    code = ensemble_cli.main([
        "--oof", str(runs["longformer"] / "oof.npz"), str(runs["deberta-v2"] / "oof.npz"),
        "--gt", str(corpus_dir / "train.csv"),
        "--models", str(runs["longformer"] / "fold_*" / "model"), str(runs["deberta-v2"]),
        "--out", str(out), "--trials", "12",
    ])
    printed = capsys.readouterr().out
    assert code == 0
    for row in ("longformer alone", "deberta-v2 alone", "equal weights", "tuned"):
        assert row in printed
    spec = load_ensemble(out)
    assert len(spec.models) == 4 and all((m / "feedback_ner.json").is_file() for m in spec.models)
    assert sum(spec.weights) == pytest.approx(1.0)
    run_w = [spec.weights[0] + spec.weights[1], spec.weights[2] + spec.weights[3]]
    assert spec.weights[0] == pytest.approx(spec.weights[1]) and spec.weights[2] == pytest.approx(spec.weights[3])

    # the tuned weights score at least as well on the OOF data as the better run alone
    oofs = [load_word_probs(runs[a] / "oof.npz") for a in ARCHS]
    shared = shared_probs(oofs)
    post = PostprocessConfig.from_dict(spec.postprocess)
    alone = [ensemble_f1(shared, w, gt, post) for w in ([1, 0], [0, 1])]
    tuned = ensemble_f1(shared, run_w, gt, post)
    assert tuned >= max(alone) - 1e-12
    assert json.loads(out.read_text())["scores"]["tuned"] == pytest.approx(tuned, abs=1e-9)

    # predict() with the file == the weighted mean of each run's fold average (words, not tokens, are averaged)
    sub = predict(None, corpus_dir / "test", ensemble=out, probs_out=tmp_path / "ens.npz")
    assert_valid_submission(sub, load_texts(corpus_dir / "test"))
    ens = load_word_probs(tmp_path / "ens.npz")
    per_run = []
    for a in ARCHS:
        predict(folds_of(runs[a]), corpus_dir / "test", probs_out=tmp_path / f"{a}.npz")
        per_run.append(load_word_probs(tmp_path / f"{a}.npz"))
    for k in ens:
        np.testing.assert_allclose(ens[k], run_w[0] * per_run[0][k] + run_w[1] * per_run[1][k], atol=1e-5)

    # the file moves with the runs (e.g. to a Kaggle dataset): its folders are written relative to it
    assert json.loads(out.read_text())["models"][0] == str(Path("longformer") / "fold_0" / "model")
    moved = tmp_path / "moved"
    shutil.copytree(out.parent, moved, ignore=shutil.ignore_patterns("*.npz", "*.png", "checkpoint-*"))
    moved_spec = load_ensemble(moved / "ensemble.json")
    assert [m.relative_to(moved) for m in moved_spec.models] == [m.relative_to(out.parent) for m in spec.models]


def test_weight_search_prefers_the_better_run(corpus_dir, gt):
    """On OOF probabilities where one run is informative and the other is noise, the search leans on the first."""
    table = build_word_table(load_train(corpus_dir))
    rng = np.random.default_rng(0)
    good, noise = {}, {}
    for essay_id, labels in zip(table["id"], table["labels"], strict=True):
        onehot = np.eye(NUM_LABELS, dtype=np.float32)[np.asarray(labels)]
        good[essay_id] = 0.5 * onehot + 0.5 * rng.dirichlet(np.ones(NUM_LABELS), size=len(labels)).astype(np.float32)
        noise[essay_id] = rng.dirichlet(np.full(NUM_LABELS, 0.3), size=len(labels)).astype(np.float32)
    result = tune_weights([noise, good], gt, PostprocessConfig.zeros(), trials=10, seed=0, names=["noise", "good"])
    f1 = result.table["F1"]
    assert list(f1.index) == ["noise alone", "good alone", "equal weights", "tuned"]
    assert f1["good alone"] > f1["noise alone"] + 0.5
    assert result.weights[1] > result.weights[0] and sum(result.weights) == pytest.approx(1.0)
    assert f1["tuned"] == result.f1 >= max(f1["good alone"], f1["equal weights"])
    # seeded: the same search gives the same weights
    again = tune_weights([noise, good], gt, PostprocessConfig.zeros(), trials=10, seed=0, names=["noise", "good"])
    assert again.weights == result.weights


def _edge_texts() -> dict[str, str]:
    rng = np.random.default_rng(0)
    vocab = np.array("the a students should school because phones it is we they think that".split())
    long_words = rng.choice(vocab, size=20_000)
    long_text = " ".join(w + ("." if i % 17 == 16 else "") for i, w in enumerate(long_words))
    return {
        "empty": "",
        "blank": "  \n\t \r\n  ",
        "long": long_text,
        "cr_only": "Phones are useful.\rStudents should have them.\r\rIn conclusion, yes.",
        "non_ascii": "Ésta es mi opinión — 学生は携帯電話を使うべきです。 Ελληνικά κείμενα 🙂🙂🙂 naïve café "
        "\u00a0نص عربي\u3000ещё текст ﬁnal\u200b word",
    }


@pytest.mark.parametrize("arch", ARCHS)
def test_awkward_essays_give_valid_rows(runs, tmp_path, arch):
    texts = _edge_texts()
    post = PostprocessConfig.zeros()  # keep every decoded span, so the rows are really looked at
    sub = predict(folds_of(runs[arch])[:1], texts, postprocess=post, probs_out=tmp_path / "p.npz", batch_size=32)
    assert_valid_submission(sub, texts)
    probs = load_word_probs(tmp_path / "p.npz")
    assert list(probs) == list(texts)
    for essay_id, text in texts.items():
        assert probs[essay_id].shape == (len(text.split()), NUM_LABELS)
        assert np.isfinite(probs[essay_id]).all()
    assert not sub["id"].isin(["empty", "blank"]).any()
    assert sub.loc[sub["id"] == "long", "predictionstring"].map(lambda s: int(s.split()[-1])).max() > 10_000


def test_broken_checkpoints_give_a_clear_error(runs, corpus_dir, tmp_path):
    good = folds_of(runs["longformer"])[0]
    texts = {"a": "Phones should be allowed in school."}
    with pytest.raises(FileNotFoundError, match=r"nowhere/model: no such checkpoint folder"):
        predict([tmp_path / "nowhere" / "model"], texts)
    with pytest.raises(FileNotFoundError, match=r"matches no checkpoint folder"):
        predict([str(tmp_path / "none_*")], texts)

    def broken(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(good, dst)
        return dst

    no_json = broken("no_json")
    (no_json / "feedback_ner.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"no_json/feedback_ner.json: not a feedback_ner checkpoint"):
        predict([no_json], texts)
    bad_json = broken("bad_json")
    (bad_json / "feedback_ner.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad_json/feedback_ner.json: corrupt JSON"):
        predict([bad_json], texts)
    no_weights = broken("no_weights")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"no_weights: no model weights"):
        predict([no_weights], texts)
    no_tok = broken("no_tok")
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"no_tok: no tokenizer.json"):
        predict([no_tok], texts)
    truncated = broken("truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"truncated: cannot load the model \(.*\); re-copy the model folder") as e:
        predict([truncated], texts)
    assert "\n" not in str(e.value)
    # a broken folder later in the list fails before any model runs
    with pytest.raises(FileNotFoundError, match="no_json"):
        predict([good, no_json], texts, timings=(t := {}))
    assert "forward_s" not in t


def test_tuned_postprocess_json_is_read_back(runs, corpus_dir, tmp_path):
    models = folds_of(runs["longformer"])[:1]
    assert InferenceConfig.load(models[0]).postprocess == PostprocessConfig.zeros().to_dict()
    as_trained = predict(models, corpus_dir / "test", probs_out=tmp_path / "p.npz")
    probs = load_word_probs(tmp_path / "p.npz")
    tuned_config = PostprocessConfig(min_words={c: 4 for c in CLASSES}, one_per_essay=["Lead", "Position"])
    tuned_json = tuned_config.save(tmp_path / "tuned.json")
    tuned = predict(models, corpus_dir / "test", postprocess=tuned_json)
    pd.testing.assert_frame_equal(tuned, submission_from_probs(probs, tuned_config))
    assert len(as_trained) > len(tuned)  # the checkpoint's own config filters nothing; the tuned one does
    strict = PostprocessConfig(proba_thresh={c: 1.0 for c in CLASSES}, min_words={c: 10**6 for c in CLASSES})
    strict_json = strict.save(tmp_path / "strict.json")
    empty = predict(models, corpus_dir / "test", postprocess=strict_json, out=tmp_path / "empty.csv")
    assert len(empty) == 0 and (tmp_path / "empty.csv").read_text().strip() == "id,class,predictionstring"
    # an ensemble file's post-processing is used unless one is passed explicitly
    ens = tmp_path / "ens.json"
    ens.write_text(json.dumps({"models": [str(m) for m in models], "weights": [1],
                               "postprocess": tuned_config.to_dict()}))
    pd.testing.assert_frame_equal(predict(None, corpus_dir / "test", ensemble=ens), tuned)
    assert len(predict(None, corpus_dir / "test", ensemble=ens, postprocess=strict_json)) == 0
    (tmp_path / "typo.json").write_text(json.dumps({"proba_tresh": {}}))
    with pytest.raises(ValueError, match="proba_tresh"):
        predict(models, corpus_dir / "test", postprocess=tmp_path / "typo.json")


def test_no_network_is_attempted(runs, corpus_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    sub = predict(folds_of(runs["deberta-v2"])[:1], corpus_dir / "test")
    assert list(sub.columns) == ["id", "class", "predictionstring"]
    assert "HF_HUB_OFFLINE" not in os.environ, "the offline switch is restored after the call"


def test_cli_help_and_run(runs, corpus_dir, tmp_path, capsys):
    for module, flags in ((predict_cli, ("--model", "--texts", "--ensemble", "--probs-out")),
                          (ensemble_cli, ("--oof", "--gt", "--models", "--trials"))):
        with pytest.raises(SystemExit) as e:
            module.main(["--help"])
        assert e.value.code == 0
        text = capsys.readouterr().out
        assert all(f in text for f in flags)
    out = tmp_path / "submission.csv"
    code = predict_cli.main(["--model", str(runs["longformer"] / "fold_*" / "model"), "--texts",
                             str(corpus_dir / "test"), "--out", str(out), "--batch-size", "4"])
    assert code == 0 and out.is_file()
    assert f"wrote {out}" in capsys.readouterr().out
    code = predict_cli.main(["--model", str(tmp_path / "missing"), "--texts", str(corpus_dir / "test")])
    err = capsys.readouterr().err
    assert code == 2 and "missing: no such checkpoint folder" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------- issue 12 / 17


def test_run_oof_names_its_run(runs):
    """Issue 12 item 3: the run-level oof.npz says which run (folder, folds, fold checkpoints) it belongs to."""
    meta = load_meta(runs["longformer"] / "oof.npz")
    assert meta["folds"] == [0, 1]
    assert Path(meta["run_dir"]) == runs["longformer"].resolve()
    assert meta["models"] == ["fold_0/model", "fold_1/model"]
    assert "fingerprint" in meta


def _ensemble(args: list[str], capsys) -> tuple[int, str, str]:
    code = ensemble_cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ensemble_matches_models_to_oof_by_run(runs, corpus_dir, tmp_path, capsys):
    """Issue 12 item 3: --models in any order (or left out) pair with the right OOF; a foreign pattern is refused."""
    lf, deb = runs["longformer"], runs["deberta-v2"]
    base = ["--oof", str(lf / "oof.npz"), str(deb / "oof.npz"), "--gt", str(corpus_dir / "train.csv"),
            "--trials", "4"]
    specs = {}
    for name, models in {
        "ordered": ["--models", str(lf / "fold_*" / "model"), str(deb)],
        "swapped": ["--models", str(deb / "fold_*" / "model"), str(lf)],
        "found": [],
    }.items():
        out = tmp_path / f"{name}.json"
        code, _, err = _ensemble([*base, *models, "--out", str(out)], capsys)
        assert code == 0, err
        specs[name] = load_ensemble(out)
    for spec in specs.values():
        assert [m.resolve() for m in spec.models] == [m.resolve() for m in folds_of(lf) + folds_of(deb)]
        assert spec.weights == specs["ordered"].weights
    # the deberta checkpoints given twice, or for the longformer OOF: refused with one line
    code, _, err = _ensemble([*base, "--models", str(deb), str(deb), "--out", str(tmp_path / "x.json")], capsys)
    assert code == 2 and "a second pattern for the run" in err and len(err.strip().splitlines()) == 1
    code, _, err = _ensemble(["--oof", str(lf / "oof.npz"), "--gt", str(corpus_dir / "train.csv"), "--models",
                              str(deb / "fold_*" / "model"), "--out", str(tmp_path / "y.json")], capsys)
    assert code == 2 and "belong to none of the --oof runs" in err
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "y.json").exists()


def test_tuned_postprocess_of_the_run_is_used_by_default(runs, corpus_dir, tmp_path, capsys, caplog):
    """Issue 12 item 4: the README/demo flow (train -> tune -> ensemble -> predict --ensemble) keeps the tuned
    post-processing without --postprocess, and each command says which one it used."""
    src = runs["longformer"]
    run_dir = tmp_path / "runs" / "lf"
    shutil.copytree(src, run_dir, ignore=shutil.ignore_patterns("checkpoint-*"))
    # a tuned config that keeps about half of the spans the checkpoint's own (keep-all) config keeps
    keep_all = predict(folds_of(run_dir), corpus_dir / "test", postprocess=PostprocessConfig.zeros(),
                       probs_out=tmp_path / "all.npz")
    scores = candidate_spans(load_word_probs(tmp_path / "all.npz"))["score"]
    median = float(scores.median())
    tuned = PostprocessConfig(min_words={c: 1 for c in CLASSES}, proba_thresh={c: median for c in CLASSES})
    checkpoint_post = PostprocessConfig.from_dict(InferenceConfig.load(folds_of(run_dir)[0]).postprocess)
    assert tuned != checkpoint_post
    tuned.save(run_dir / "postprocess.json")  # where `tune --out RUN/postprocess.json` puts it
    ens = tmp_path / "ensemble.json"
    oof_sub = tmp_path / "oof_submission.csv"
    code, out, err = _ensemble(["--oof", str(run_dir / "oof.npz"), "--gt", str(corpus_dir / "train.csv"),
                                "--out", str(ens), "--oof-submission", str(oof_sub), "--trials", "2"], capsys)
    assert code == 0, err
    assert "post-processing: run's tuned" in out and "postprocess.json" in out
    assert PostprocessConfig.from_dict(load_ensemble(ens).postprocess) == tuned
    oof = load_word_probs(run_dir / "oof.npz")
    rows = sorted(map(tuple, pd.read_csv(oof_sub, dtype=str).itertuples(index=False)))
    assert rows == sorted(map(tuple, submission_from_probs(oof, tuned).astype(str).itertuples(index=False)))
    caplog.clear()
    with caplog.at_level("INFO", logger="feedback_ner"):
        via_ensemble = predict(None, corpus_dir / "test", ensemble=ens, probs_out=tmp_path / "p.npz")
        direct = predict(folds_of(run_dir), corpus_dir / "test")
    sources = [r.getMessage() for r in caplog.records if r.getMessage().startswith("post-processing:")]
    assert sources[0].startswith("post-processing: ensemble file") and "run's tuned" in sources[1]
    expected = submission_from_probs(load_word_probs(tmp_path / "p.npz"), tuned)
    pd.testing.assert_frame_equal(via_ensemble, expected)
    pd.testing.assert_frame_equal(direct, expected)
    assert 0 < len(direct) < len(keep_all)


def _edited_copy(src: Path, dst: Path, edit) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    weights = load_file(dst / "model.safetensors")
    edit(weights)
    save_file(weights, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def test_corrupt_weights_fail_naming_the_checkpoint(runs, corpus_dir, tmp_path, capsys):
    """Issue 12 item 6: NaN (e.g. bit-flipped) weights used to give "0 spans in 0 essays" and exit 0."""
    good = folds_of(runs["longformer"])[0]

    def poison(weights):
        name = next(k for k in weights if k.endswith("classifier.weight"))
        bits = weights[name].view(torch.int32)
        bits |= 0x7F800001  # all exponent bits set and a mantissa bit: every value becomes NaN
        weights[name] = bits.view(torch.float32)

    broken = _edited_copy(good, tmp_path / "flipped", poison)
    with pytest.raises(ValueError, match=r"flipped: the model computes non-finite logits"):
        predict([broken], corpus_dir / "test")
    out = tmp_path / "sub.csv"
    code = predict_cli.main(["--model", str(broken), "--texts", str(corpus_dir / "test"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "feedback-ner predict: error: " in err and str(broken) in err and "Traceback" not in err
    assert not out.exists()


def test_a_checkpoint_that_predicts_no_span_is_reported(runs, corpus_dir, tmp_path, caplog):
    """Issue 12 item 6: a checkpoint whose argmax is O everywhere gets a warning naming it."""
    good = folds_of(runs["longformer"])[0]

    def all_o(weights):
        name = next(k for k in weights if k.endswith("classifier.bias"))
        bias = torch.full_like(weights[name], -50.0)
        bias[0] = 50.0  # label 0 is O
        weights[name] = bias

    silent = _edited_copy(good, tmp_path / "silent", all_o)
    with caplog.at_level("WARNING", logger="feedback_ner"):
        sub = predict([silent], corpus_dir / "test")
    assert len(sub) == 0
    assert any("silent predicts no span at all" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="feedback_ner"):
        predict([good], corpus_dir / "test")
    assert not any("predicts no span" in r.getMessage() for r in caplog.records)
    # found by probing: one short essay without a span said nothing about the checkpoint, yet got the warning
    caplog.clear()
    with caplog.at_level("WARNING", logger="feedback_ner"):
        predict([silent], {"one": "Hello."})
    assert not any("predicts no span" in r.getMessage() for r in caplog.records)


def test_a_rescorer_of_two_runs_is_refused_for_one_of_them_by_weights(runs, corpus_dir, gt, tmp_path):
    """Found by probing: a rescorer fitted on an ensemble of runs b and c is refused for b's checkpoints alone, but
    given all four folds with weights 1, 1, 0, 0 it decoded b's probabilities alone, silently. The checkpoints that
    make the probabilities are those with a weight above 0."""
    from conftest import quick_rescorer

    from feedback_ner.rescore import trained_on
    from feedback_ner.rescoring import Rescorer

    oof = tmp_path / "ens" / "oof.npz"
    code = ensemble_cli.main(["--oof", str(runs["longformer"] / "oof.npz"), str(runs["deberta-v2"] / "oof.npz"),
                              "--gt", str(corpus_dir / "train.csv"), "--out", str(tmp_path / "ens" / "ensemble.json"),
                              "--trials", "2", "--oof-out", str(oof)])
    assert code == 0
    folder = quick_rescorer(oof, corpus_dir, tmp_path / "rescorer")
    rescorer = Rescorer.load(folder)
    rescorer.trained_on = trained_on(oof)
    rescorer.save(folder)
    models = folds_of(runs["longformer"]) + folds_of(runs["deberta-v2"])
    assert len(predict(models, corpus_dir / "test", rescore=folder).columns) == 3  # both runs: it fits
    with pytest.raises(FeedbackError, match="a rescorer trained on the out-of-fold probabilities of run"):
        predict(models, corpus_dir / "test", weights=[1, 1, 0, 0], rescore=folder)
