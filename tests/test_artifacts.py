"""Saved artifacts without a model (issues 12 and 17): the post-processing precedence, written once; the run
identity of oof.npz and the matching of checkpoint patterns to runs; the ensemble file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from feedback_ner.artifacts import (
    EnsembleSpec,
    InferenceConfig,
    choose_postprocess,
    load_ensemble,
    run_dir_of,
    save_ensemble,
)
from feedback_ner.errors import FeedbackError
from feedback_ner.labels import CLASSES, NUM_LABELS
from feedback_ner.oofruns import match_models, oof_run, run_meta
from feedback_ner.postprocess import PostprocessConfig
from feedback_ner.probs import load_meta, save_word_probs


def make_run(root: Path, name: str, folds=(0, 1), fingerprint: str | None = None, post=None) -> Path:
    """A run folder as train leaves it: config.yaml, fold checkpoints' feedback_ner.json and the run oof.npz."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"learning_rate": 1e-5}))
    if fingerprint:
        (run_dir / "fingerprint.txt").write_text(fingerprint + "\n")
    for k in folds:
        extra = {"fold": k, **({"fingerprint": fingerprint} if fingerprint else {})}
        InferenceConfig(postprocess=post, extra=extra).save(run_dir / f"fold_{k}" / "model")
    probs = {"e1": np.full((3, NUM_LABELS), 1 / NUM_LABELS, dtype=np.float32)}
    save_word_probs(run_dir / "oof.npz", probs, meta=run_meta(run_dir, list(folds)))
    return run_dir


def test_postprocess_precedence(tmp_path):
    """Issue 12 item 4 / issue 17: explicit > ensemble file > run's tuned postprocess.json > checkpoint > defaults."""
    at = {name: PostprocessConfig(min_words={c: i + 1 for c in CLASSES})
          for i, name in enumerate(["explicit", "ensemble", "tuned", "checkpoint"])}
    run_dir = make_run(tmp_path, "run", post=at["checkpoint"].to_dict())
    ckpt = run_dir / "fold_0" / "model"
    assert run_dir_of(ckpt) == run_dir and run_dir_of(tmp_path / "model") is None
    at["tuned"].save(run_dir / "postprocess.json")
    spec = EnsembleSpec([ckpt], [1.0], at["ensemble"].to_dict(), source="ens.json")
    explicit = at["explicit"].save(tmp_path / "explicit.json")

    def chosen(*args):
        c = choose_postprocess(*args)
        return next(k for k, v in at.items() if v == c.config), c.source

    assert chosen(explicit, spec, run_dir, ckpt) == ("explicit", f"explicit ({explicit})")
    assert chosen(None, spec, run_dir, ckpt) == ("ensemble", "ensemble file (ens.json)")
    assert chosen(None, None, run_dir, ckpt)[0] == "tuned"
    assert "postprocess.json" in chosen(None, None, run_dir, ckpt)[1]
    (run_dir / "postprocess.json").unlink()
    assert chosen(None, None, run_dir, ckpt) == ("checkpoint", f"checkpoint {ckpt}")
    InferenceConfig().save(ckpt)
    default = choose_postprocess(None, None, run_dir, ckpt)
    assert default.config == PostprocessConfig() and default.source == "defaults"


def test_run_meta_and_matching(tmp_path):
    """Issue 12 item 3: models are matched to OOF files by run, in any order, or refused."""
    a, b = make_run(tmp_path, "a"), make_run(tmp_path, "b", folds=(0, 2))
    meta = load_meta(a / "oof.npz")
    assert meta == {"folds": [0, 1], "run_dir": str(a.resolve()), "fingerprint": None,
                    "models": ["fold_0/model", "fold_1/model"]}
    runs = [oof_run(p, load_meta(p)) for p in (a / "oof.npz", b / "oof.npz")]
    expected = [[a / "fold_0/model", a / "fold_1/model"], [b / "fold_0/model", b / "fold_2/model"]]
    assert match_models(runs, None) == expected
    assert match_models(runs, [str(a / "fold_*" / "model"), str(b)]) == expected
    assert match_models(runs, [str(b / "fold_*" / "model"), str(a)]) == expected  # any order
    assert match_models(runs, [str(b / "fold_2" / "model"), str(a)])[1] == [b / "fold_2/model"]  # a subset
    with pytest.raises(FeedbackError, match="belong to none of the --oof runs"):
        match_models(runs[:1], [str(b)])
    with pytest.raises(FeedbackError, match="a second pattern"):
        match_models(runs, [str(a), str(a)])
    with pytest.raises(FeedbackError, match=r"--oof has 2 file\(s\) but --models 1"):
        match_models(runs, [str(a)])
    # a moved run still finds its checkpoints (the run folder is the oof file's folder)
    moved = tmp_path / "moved" / "a"
    shutil.copytree(a, moved)
    run = oof_run(moved / "oof.npz", load_meta(moved / "oof.npz"))
    assert match_models([run], None) == [[moved / "fold_0/model", moved / "fold_1/model"]]
    shutil.rmtree(moved / "fold_1")
    with pytest.raises(FeedbackError, match="fold_1/model does not exist"):
        match_models([run], None)
    with pytest.raises(FeedbackError, match="names no run"):
        oof_run(tmp_path / "x.npz", {})


def test_fingerprints_recognise_copies_and_refuse_strangers(tmp_path):
    a = make_run(tmp_path, "a", fingerprint="f-a")
    b = make_run(tmp_path, "b", fingerprint="f-b")
    assert load_meta(a / "oof.npz")["fingerprint"] == "f-a"
    copy = tmp_path / "kaggle" / "a-models"
    shutil.copytree(a, copy)
    runs = [oof_run(p, load_meta(p)) for p in (a / "oof.npz", b / "oof.npz")]
    assert match_models(runs, [str(b), str(copy / "fold_*" / "model")])[0] == sorted(copy.glob("fold_*/model"))
    # a's folder with b's settings (re-trained in place): refused
    InferenceConfig(extra={"fingerprint": "f-b"}).save(a / "fold_0" / "model")
    with pytest.raises(FeedbackError, match="belong to none"):
        match_models(runs, [str(a), str(b)])


def test_ensemble_file_round_trip_and_errors(tmp_path):
    run_dir = make_run(tmp_path, "run")
    spec = EnsembleSpec(sorted(run_dir.glob("fold_*/model")), [0.5, 0.5], PostprocessConfig().to_dict(),
                        extra={"scores": {"tuned": 0.5}})
    path = save_ensemble(tmp_path / "ens.json", spec)
    assert json.loads(path.read_text())["models"] == ["run/fold_0/model", "run/fold_1/model"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # written atomically
    back = load_ensemble(path)
    assert back.models == spec.models and back.weights == spec.weights and back.extra == spec.extra
    bad = tmp_path / "bad.json"
    for text, message in [("{oops", "corrupt JSON"), ('{"models": [], "weights": []}', "non-empty list"),
                          ('{"models": ["m"], "weights": [1], "thresholds": 1}', "unknown key"),
                          ('{"models": ["m"], "weights": [1], "postprocess": {"min_word": {}}}', "min_word")]:
        bad.write_text(text)
        with pytest.raises(FeedbackError, match=message):
            load_ensemble(bad)
