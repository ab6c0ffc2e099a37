"""Issue 12: every mistake made on `predict`, `ensemble` and `score` is one line naming the file/field/value, exit
code 2, no traceback. Each case runs the command as a subprocess."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, run_cli

from feedback_ner.artifacts import InferenceConfig
from feedback_ner.labels import NUM_LABELS
from feedback_ner.oofruns import run_meta
from feedback_ner.probs import save_word_probs


def _fake_run(root: Path, name: str) -> Path:
    """A run folder with one fold checkpoint's settings file and a run-level oof.npz naming it."""
    run_dir = root / name
    InferenceConfig().save(run_dir / "fold_0" / "model")
    probs = {"e1": np.full((3, NUM_LABELS), 1 / NUM_LABELS, dtype=np.float32)}
    save_word_probs(run_dir / "oof.npz", probs, meta=run_meta(run_dir, [0]))
    return run_dir


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_models, corpus_dir) -> dict[str, str]:
    root = tmp_path_factory.mktemp("errors-predict")
    ckpt = root / "ckpt"
    shutil.copytree(tiny_models("longformer"), ckpt)  # an untrained but complete checkpoint
    InferenceConfig(max_length=128, stride=32).save(ckpt)
    no_json = root / "no_json"
    shutil.copytree(ckpt, no_json)
    (no_json / "feedback_ner.json").unlink()
    bad_json = root / "bad_json"
    shutil.copytree(ckpt, bad_json)
    (bad_json / "feedback_ner.json").write_text("{not json")
    truncated = root / "truncated"
    shutil.copytree(ckpt, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    (root / "folder.csv").mkdir()
    (root / "corrupt.npz").write_bytes(b"PK\x03\x04 not a zip")
    save_word_probs(root / "nometa.npz", {"e1": np.full((3, NUM_LABELS), 1 / NUM_LABELS, dtype=np.float32)})
    run_a, run_b = _fake_run(root, "run_a"), _fake_run(root, "run_b")
    (root / "typo.json").write_text('{"proba_tresh": {}}')
    (root / "nocols.csv").write_text("id,label\na,Claim\n")
    (root / "binary.csv").write_bytes(b"id,class,predictionstring\n\xff\xfe\xfa,\x00\x81,1 2\n")
    (root / "other.csv").write_text("id,class,predictionstring\nnot_an_essay,Claim,1 2 3\n")
    return {
        "root": str(root), "ckpt": str(ckpt), "no_json": str(no_json), "bad_json": str(bad_json),
        "truncated": str(truncated), "texts": str(corpus_dir / "test"), "gt": str(corpus_dir / "train.csv"),
        "run_a": str(run_a), "run_b": str(run_b),
    }


CASES = [
    # (id, command, argv, needles): {name} is replaced by paths[name]
    ("predict-out-is-a-folder", "predict", ["--model", "{ckpt}", "--texts", "{texts}", "--out", "{root}/folder.csv"],
     ["{root}/folder.csv", "is a folder"]),
    ("predict-out-under-a-file", "predict",
     ["--model", "{ckpt}", "--texts", "{texts}", "--out", "{gt}/submission.csv"], ["train.csv", "is a file"]),
    ("predict-device-not-a-device", "predict", ["--model", "{ckpt}", "--texts", "{texts}", "--device", "gpu9"],
     ["'gpu9'", "not a torch device"]),
    ("predict-missing-checkpoint", "predict", ["--model", "{root}/nowhere", "--texts", "{texts}"],
     ["{root}/nowhere", "no such checkpoint folder"]),
    ("predict-pattern-matches-nothing", "predict", ["--model", "{root}/none_*", "--texts", "{texts}"],
     ["none_*", "matches no checkpoint"]),
    ("predict-no-settings-file", "predict", ["--model", "{no_json}", "--texts", "{texts}"],
     ["no_json/feedback_ner.json", "not a feedback_ner checkpoint"]),
    ("predict-corrupt-settings-file", "predict", ["--model", "{bad_json}", "--texts", "{texts}"],
     ["bad_json/feedback_ner.json", "corrupt JSON"]),
    ("predict-truncated-weights", "predict", ["--model", "{truncated}", "--texts", "{texts}"],
     ["truncated", "cannot load the model"]),
    ("predict-missing-texts", "predict", ["--model", "{ckpt}", "--texts", "{root}/no_texts"], ["{root}/no_texts"]),
    ("predict-weights-count", "predict", ["--model", "{ckpt}", "--texts", "{texts}", "--weights", "1", "2"],
     ["2 weight(s) for 1 checkpoint(s)"]),
    ("predict-missing-ensemble", "predict", ["--ensemble", "{root}/nothing.json", "--texts", "{texts}"],
     ["{root}/nothing.json", "no such ensemble file"]),
    ("predict-postprocess-typo", "predict", ["--model", "{ckpt}", "--texts", "{texts}", "--postprocess",
                                             "{root}/typo.json"], ["typo.json", "proba_tresh"]),
    # found by probing: a folder given as --gt was "no such file"
    ("score-gt-is-a-folder", "score", ["--gt", "{root}", "--pred", "{root}/other.csv"], ["{root}: is a folder"]),
    ("ensemble-missing-oof", "ensemble", ["--oof", "{root}/nothing.npz", "--gt", "{gt}"],
     ["{root}/nothing.npz", "no such word-probabilities file"]),
    ("ensemble-corrupt-oof", "ensemble", ["--oof", "{root}/corrupt.npz", "--gt", "{gt}"], ["corrupt.npz"]),
    ("ensemble-oof-without-run", "ensemble", ["--oof", "{root}/nometa.npz", "--gt", "{gt}"],
     ["nometa.npz", "names no run"]),
    ("ensemble-models-of-another-run", "ensemble",
     ["--oof", "{run_a}/oof.npz", "--gt", "{gt}", "--models", "{run_b}/fold_*/model"],
     ["{run_b}/fold_*/model", "belong to none of the --oof runs"]),
    ("ensemble-models-count", "ensemble",
     ["--oof", "{run_a}/oof.npz", "--gt", "{gt}", "--models", "{run_a}", "{run_b}"],
     ["--oof has 1 file(s) but --models 2"]),
    ("ensemble-missing-gt", "ensemble", ["--oof", "{run_a}/oof.npz", "--gt", "{root}/no.csv"], ["{root}/no.csv"]),
    ("ensemble-out-is-a-folder", "ensemble", ["--oof", "{run_a}/oof.npz", "--gt", "{gt}", "--out", "{root}/folder.csv"],
     ["{root}/folder.csv", "is a folder"]),
    ("score-missing-gt", "score", ["--gt", "{root}/no.csv", "--pred", "{root}/other.csv"],
     ["--gt", "{root}/no.csv", "no such file"]),
    ("score-missing-pred", "score", ["--gt", "{gt}", "--pred", "{root}/no.csv"], ["--pred", "{root}/no.csv"]),
    ("score-missing-columns", "score", ["--gt", "{gt}", "--pred", "{root}/nocols.csv"],
     ["nocols.csv", "class, predictionstring"]),
    ("score-unreadable", "score", ["--gt", "{gt}", "--pred", "{root}/binary.csv"], ["binary.csv", "not a readable"]),
    ("score-nothing-predicted-is-in-gt", "score", ["--gt", "{gt}", "--pred", "{root}/other.csv",
                                                   "--only-predicted-essays"], ["other.csv", "no essay"]),
]


@pytest.mark.parametrize(("command", "argv", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_line_error(paths, command, argv, needles):
    done = run_cli(f"feedback_ner.{command}", *[a.format(**paths) for a in argv], cwd=Path(paths["root"]))
    assert_one_line_error(done, command, *[n.format(**paths) for n in needles])


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda(paths):
    done = run_cli("feedback_ner.predict", "--model", paths["ckpt"], "--texts", paths["texts"], "--device", "cuda",
                   "--out", f"{paths['root']}/never.csv")
    assert_one_line_error(done, "predict", "'cuda'", "CUDA is not available")
    assert not Path(paths["root"], "never.csv").exists()
