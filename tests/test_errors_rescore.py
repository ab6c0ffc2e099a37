"""Issue 13 item 3: a span rescorer folder that is missing or corrupt, given to `ensemble --rescore` or named by an
ensemble file that `predict --ensemble` reads, is one line naming the folder (and the file), exit code 2, no
traceback, and nothing is written. Each case runs the command as a subprocess."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from feedback_ner.artifacts import InferenceConfig
from feedback_ner.labels import NUM_LABELS
from feedback_ner.oofruns import run_meta
from feedback_ner.probs import save_word_probs
from feedback_ner.rescoring import CONFIG_FILE, FORMAT_VERSION
from feedback_ner.span_features import FEATURES, CandidateConfig


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_models, corpus_dir) -> dict[str, str]:
    root = tmp_path_factory.mktemp("errors-rescore")
    ckpt = root / "run" / "fold_0" / "model"
    shutil.copytree(tiny_models("bert"), ckpt)  # an untrained but complete checkpoint
    InferenceConfig(max_length=128, stride=32).save(ckpt)
    save_word_probs(root / "run" / "oof.npz", {"e1": np.full((3, NUM_LABELS), 1 / NUM_LABELS, dtype=np.float32)},
                    meta=run_meta(root / "run", [0]))
    (root / "corrupt").mkdir()
    (root / "corrupt" / CONFIG_FILE).write_text("{")
    (root / "no_model").mkdir()  # settings that name a model file that is not there
    (root / "no_model" / CONFIG_FILE).write_text(json.dumps({
        "version": FORMAT_VERSION, "models": {"all": {"file": "model.txt"}}, "thresholds": {}, "overlap": 0.15,
        "candidates": CandidateConfig().to_dict(), "uses_texts": True, "features": list(FEATURES)}))
    for name, rescore in [("ens_missing", "missing"), ("ens_corrupt", "corrupt"), ("ens_no_model", "no_model"),
                          ("ens_number", 3)]:
        (root / f"{name}.json").write_text(json.dumps(
            {"models": [str(ckpt)], "weights": [1.0], "postprocess": None, "rescore": rescore}))
    return {"root": str(root), "oof": str(root / "run" / "oof.npz"), "gt": str(corpus_dir / "train.csv"),
            "texts": str(corpus_dir / "test")}


CASES = [
    # (id, command, argv, needles): {name} is replaced by paths[name]
    ("ensemble-rescore-missing", "ensemble",
     ["--oof", "{oof}", "--gt", "{gt}", "--out", "{root}/out.json", "--rescore", "{root}/missing"],
     ["--rescore", "{root}/missing", "no such rescorer folder"]),
    # found by probing: a run folder given as the rescorer was "incomplete"
    ("ensemble-rescore-run-folder", "ensemble",
     ["--oof", "{oof}", "--gt", "{gt}", "--out", "{root}/out.json", "--rescore", "{root}/run"],
     ["{root}/run: not a rescorer folder", "run feedback_ner.rescore on its oof.npz"]),
    ("ensemble-rescore-corrupt", "ensemble",
     ["--oof", "{oof}", "--gt", "{gt}", "--out", "{root}/out.json", "--rescore", "{root}/corrupt"],
     ["--rescore", "{root}/corrupt/rescorer.json", "corrupt rescorer settings"]),
    ("predict-ensemble-rescore-missing", "predict",
     ["--ensemble", "{root}/ens_missing.json", "--texts", "{texts}", "--out", "{root}/out.csv"],
     ["{root}/ens_missing.json", "'rescore'", "{root}/missing", "no such rescorer folder"]),
    ("predict-ensemble-rescore-corrupt", "predict",
     ["--ensemble", "{root}/ens_corrupt.json", "--texts", "{texts}", "--out", "{root}/out.csv"],
     ["{root}/ens_corrupt.json", "{root}/corrupt/rescorer.json", "corrupt rescorer settings"]),
    ("predict-ensemble-rescore-no-model", "predict",
     ["--ensemble", "{root}/ens_no_model.json", "--texts", "{texts}", "--out", "{root}/out.csv"],
     ["{root}/ens_no_model.json", "{root}/no_model/model.txt", "missing model file"]),
    ("predict-ensemble-rescore-not-a-path", "predict",
     ["--ensemble", "{root}/ens_number.json", "--texts", "{texts}", "--out", "{root}/out.csv"],
     ["{root}/ens_number.json", "'rescore' must be the path of a rescorer folder"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_rescorer_is_one_line_error(case, paths):
    _, cmd, argv, needles = case
    done = run_cli(f"feedback_ner.{cmd}", *[a.format(**paths) for a in argv])
    assert_one_line_error(done, cmd, *[n.format(**paths) for n in needles])
    assert not any((Path(paths["root"]) / name).exists() for name in ("out.json", "out.csv"))
