"""The offline Kaggle notebook (issue 7): installed from a local wheels folder, run on local checkpoints and essays,
decoding with a span rescorer (issue 13) given as its RESCORE_DIR parameter."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import quick_rescorer
from nbclient import NotebookClient

from feedback_ner.artifacts import EnsembleSpec, save_ensemble
from feedback_ner.config import parse_config
from feedback_ner.kfold import run
from feedback_ner.labels import CLASSES
from feedback_ner.postprocess import PostprocessConfig
from feedback_ner.predict import predict
from feedback_ner.wheels import build_wheels

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "kaggle_inference.ipynb"
KERNEL = "feedback-ner-test"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, corpus_dir, tiny_models) -> Path:
    """The models folder a competitor uploads: one fold of a tiny training run."""
    root = tmp_path_factory.mktemp("nb-models")
    out = root / "models" / "runs" / "tiny"
    # no span filtering in evaluation: a barely trained model still predicts spans
    keep_all = PostprocessConfig.zeros().save(root / "keep_all.json")
    cfg = dict(
        postprocess=str(keep_all), data_dir=str(corpus_dir), cache_dir=str(corpus_dir / ".cache-tests"),
        model_name_or_path=str(tiny_models("longformer")), output_dir=str(out), num_folds=2, folds=[0],
        max_length=128, stride=32, learning_rate=3e-3, num_train_epochs=1, per_device_train_batch_size=8,
        use_cpu=True, seed=7, max_essays=24, disable_tqdm=True, report_to="none",
    )
    run(*parse_config(None, overrides=cfg))
    return out.parent.parent


@pytest.fixture(scope="module")
def rescorer(checkpoints, corpus_dir) -> Path:
    """A span rescorer trained on the run's out-of-fold probabilities, uploaded beside the models."""
    return quick_rescorer(checkpoints / "runs" / "tiny" / "oof.npz", corpus_dir, checkpoints / "rescore",
                          threshold=0.2)


def _kernelspec(root: Path) -> Path:
    """A kernelspec running this interpreter (the venv's), found through JUPYTER_PATH."""
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "feedback_ner test", "language": "python",
    }))
    return root


def test_notebook_installs_from_wheels_and_writes_the_submission(tmp_path, monkeypatch, checkpoints, corpus_dir,
                                                                  rescorer):
    wheels = tmp_path / "wheels"
    built = build_wheels(wheels, no_deps=True)  # the dependencies are in this venv already
    assert [w.name.split("-")[0] for w in built] == ["feedback_ner"]
    target = tmp_path / "site"
    output = tmp_path / "working" / "submission.csv"
    tuned = PostprocessConfig(min_words={c: 2 for c in CLASSES}, proba_thresh={c: 0.0 for c in CLASSES})
    env = {
        "FEEDBACK_NER_WHEELS": wheels, "FEEDBACK_NER_MODELS": checkpoints, "FEEDBACK_NER_TEXTS": corpus_dir / "test",
        "FEEDBACK_NER_OUTPUT": output, "FEEDBACK_NER_POSTPROCESS": tuned.save(tmp_path / "tuned.json"),
        "FEEDBACK_NER_RESCORE": rescorer,  # decodes instead of the post-processing above
        # next to the editable checkout, never over it: a folder first on sys.path, dependencies from the venv
        "FEEDBACK_NER_INSTALL_TARGET": target, "FEEDBACK_NER_INSTALL_DEPS": "0",
        "JUPYTER_PATH": _kernelspec(tmp_path / "jupyter"), "PYTHONPATH": "",
        "OMP_NUM_THREADS": "1",  # a tiny model; spare the shared CPU cores
    }
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    output.parent.mkdir()
    # an ensemble file one folder down in the models dataset (runs/ensemble.json, where `ensemble --out` put it):
    # found, not silently passed over for every checkpoint at equal weight. It was written on the training machine,
    # whose folders are not in the dataset: the notebook relocates it to the checkpoints found (found by probing:
    # it passed no models, and predict named a folder the notebook user cannot give)
    training = tmp_path / "training-machine"
    shutil.copytree(checkpoints / "runs", training / "runs")
    ensemble = checkpoints / "runs" / "ensemble.json"
    save_ensemble(ensemble, EnsembleSpec(sorted(training.rglob("fold_*/model")), [1.0]))
    shutil.rmtree(training)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert "parameters" in nb.cells[1].metadata.get("tags", [])
    work = tmp_path / "kernel-cwd"  # not the repository root, whose feedback_ner/ would shadow the install
    work.mkdir()
    NotebookClient(nb, kernel_name=KERNEL, timeout=300, resources={"metadata": {"path": str(work)}}).execute()

    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert f"feedback_ner from {target / 'feedback_ner' / '__init__.py'}" in printed
    assert (target / "feedback_ner" / "predict.py").is_file()
    assert "1 checkpoint(s)" in printed and f"ensemble: {ensemble}" in printed
    assert "names folders that are not here: using the 1 checkpoint(s) found instead" in printed
    assert f"post-processing: span rescorer {rescorer} (explicit)" in printed

    written = pd.read_csv(output, dtype=str)
    assert list(written.columns) == ["id", "class", "predictionstring"]
    assert len(written) > 0
    test_ids = {p.stem for p in (corpus_dir / "test").glob("*.txt")}
    assert set(written["id"]) <= test_ids
    expected = predict(sorted(checkpoints.rglob("fold_*/model")), corpus_dir / "test", rescore=rescorer)
    pd.testing.assert_frame_equal(written, expected.astype(str), check_dtype=False)
