"""Shared fixtures: a small generated corpus in the Kaggle layout and tiny local models built from it.

Everything is made by the package itself, offline; session-scoped so each is built once per test run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models gain nothing from a second thread, and two OpenMP threads per process on a busy 2-core machine are
# ~10x slower; subprocesses (train CLI, accelerate workers) inherit this too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ARCHS = ("longformer", "bigbird", "deberta-v2", "bert")


def small_config(corpus_dir: Path, model_dir: Path, out: Path, **extra) -> dict:
    """A flat training config that runs in seconds on the test corpus: 2 folds, short windows, one epoch.

    Tests pass what they need on top (``folds=[0]``, ``num_train_epochs=3``, ...). Import it with
    ``from conftest import small_config``.
    """
    values = dict(
        data_dir=str(corpus_dir),
        cache_dir=str(corpus_dir / ".cache-tests"),
        model_name_or_path=str(model_dir),
        output_dir=str(out),
        num_folds=2,
        max_length=128,
        stride=32,
        learning_rate=3e-3,
        num_train_epochs=1,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        use_cpu=True,
        seed=7,
        logging_steps=50,
        max_essays=40,
        disable_tqdm=True,
        report_to="none",
    )
    values.update(extra)
    return values


def quick_rescorer(oof: Path, data_dir: Path, out: Path, threshold: float = 0.5) -> Path:
    """A span rescorer folder as ``feedback_ner.rescore --out`` writes it, trained in seconds (no cross-fitting) on
    a run's out-of-fold probabilities, with one score threshold for every class. Import it with
    ``from conftest import quick_rescorer``; for tests that need a rescorer, not for its figures."""
    import pandas as pd

    from feedback_ner import rescoring
    from feedback_ner.labels import CLASSES
    from feedback_ner.probs import load_word_probs
    from feedback_ner.span_features import fit_candidate_config, span_length_limits, stack_words
    from feedback_ner.texts import load_texts

    probs = load_word_probs(oof)
    train = pd.read_csv(Path(data_dir) / "train.csv", dtype={"id": str})
    gt = train[train["id"].isin(set(probs))].reset_index(drop=True)
    texts = load_texts([Path(data_dir) / "train" / f"{i}.txt" for i in probs])
    config = fit_candidate_config(stack_words(probs), gt, span_length_limits(train))
    data = rescoring.build_set(probs, config, texts, gt)
    rescoring.fit_rescorer(data, config, {c: threshold for c in CLASSES}).save(out)
    return Path(out)


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for a module of tiny-model tests, restored after: tiny models gain nothing from
    intra-op threads, and on a shared 2-core machine oversubscribed OpenMP threads make every forward several times
    slower. A module asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def assert_predict_reproduces_oof(fold_dir: Path, corpus_dir: Path, out: Path):
    """Predicts a trained fold's held-out essays with its checkpoint (``fold_dir/model``) and asserts that the word
    probabilities (atol 1e-5) and the macro F1 (1e-6) are those of the fold's out-of-fold evaluation. Returns the
    out-of-fold probabilities and the held-out essays (``id``, ``text``). Writes ``out/p.npz``."""
    import json

    import numpy as np
    import pandas as pd

    from feedback_ner.metric import score
    from feedback_ner.predict import predict
    from feedback_ner.probs import load_word_probs
    from feedback_ner.texts import load_texts

    oof = load_word_probs(fold_dir / "oof.npz")
    texts = load_texts(corpus_dir / "train")
    held_out = pd.DataFrame({"id": list(oof), "text": [texts[k] for k in oof]})
    sub = predict([fold_dir / "model"], held_out, probs_out=out / "p.npz")
    probs = load_word_probs(out / "p.npz")
    for k in oof:
        np.testing.assert_allclose(probs[k], oof[k], atol=1e-5)
    gt = pd.read_csv(corpus_dir / "train.csv")
    metrics = json.loads((fold_dir / "metrics.json").read_text())
    assert score(sub, gt[gt["id"].isin(set(oof))]).f1 == pytest.approx(metrics["eval_f1"], abs=1e-6)
    return oof, held_out


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sample corpus (80 train essays, 10 test essays), Kaggle layout."""
    from feedback_ner.synthetic.corpus import write_corpus

    out = tmp_path_factory.mktemp("corpus")
    write_corpus(out, n=80, seed=0, n_test=10)
    return out


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path):
    """Factory: ``tiny_models(arch)`` builds (once) and returns the folder of a tiny local model."""
    from feedback_ner.synthetic.models import build_tiny

    root = tmp_path_factory.mktemp("tiny")
    built: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in built:
            built[arch] = build_tiny(arch, corpus_dir, root / arch, seed=0)
        return built[arch]

    return get


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None):
    """Run ``python -m feedback_ner.<args>`` as a subprocess (text output captured)."""
    import subprocess
    import sys

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=full_env
    )


def assert_one_line_error(done, command: str, *needles: str) -> str:
    """A user's mistake: exit code 2, no traceback, one ``feedback-ner <command>: error: ...`` line naming
    each of ``needles`` (file, field, value). Returns that line."""
    err = done.stderr
    assert done.returncode == 2, f"exit {done.returncode}, stderr:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n{err[-3000:]}"
    line = lines[0]
    assert line.startswith(f"feedback-ner {command}: error: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


@pytest.fixture(scope="session")
def bert_run(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, tiny_models) -> Path:
    """A trained run (2 folds of a tiny BERT, 6 epochs: long enough to predict spans), built once per session.

    Read it as it is; a test that writes into a run folder takes a copy (``shutil.copytree``)."""
    from feedback_ner.config import parse_config
    from feedback_ner.kfold import run

    out = tmp_path_factory.mktemp("bert_run") / "run"
    config = small_config(corpus_dir, tiny_models("bert"), out, learning_rate=1e-3, num_train_epochs=6,
                          per_device_train_batch_size=4)
    run(*parse_config(None, overrides=config))
    return out
