"""Issue 12: every expected mistake with the data commands (prepare, sample, tiny) is one line and exit code 2.

Each case runs the command as a subprocess, as a user would, and checks: exit code 2, no traceback, one
``feedback-ner <cmd>: error: ...`` line naming the file, option or value.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> dict[str, str]:
    """The paths the cases refer to: a file, an empty folder, a model folder, copies of the sample corpus."""
    tmp_path = tmp_path_factory.mktemp("errors_data")
    (tmp_path / "a_file.txt").write_text("not a folder\n")
    (tmp_path / "empty").mkdir()
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}\n")
    no_csv = tmp_path / "no_csv"
    shutil.copytree(corpus_dir / "train", no_csv / "train")
    bad = Path(shutil.copytree(corpus_dir, tmp_path / "bad_class"))
    df = pd.read_csv(bad / "train.csv", dtype=str, keep_default_na=False)
    df.loc[2, "discourse_type"] = "Thesis"
    df.to_csv(bad / "train.csv", index=False)
    latin1 = tmp_path / "latin1"
    (latin1 / "train").mkdir(parents=True)
    (latin1 / "train" / "ESSAY1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    other = tmp_path / "other_corpus"
    (other / "train").mkdir(parents=True)
    (other / "train" / "NOT_THIS_ONE.txt").write_text("an essay of another corpus\n")
    return {
        "CORPUS": str(corpus_dir), "FILE": str(tmp_path / "a_file.txt"), "EMPTY": str(tmp_path / "empty"),
        "MODEL": str(model), "NO_CSV": str(no_csv), "BAD": str(bad), "LATIN1": str(latin1), "OTHER": str(other),
        "MISSING": str(tmp_path / "no_such_folder"), "OUT": str(tmp_path / "out"),
    }


# (command, arguments with {PLACEHOLDERS}, needles the error line must hold)
CASES: list[tuple[str, list[str], list[str]]] = [
    ("prepare", ["--data", "{MISSING}", "--out", "{OUT}"], ["{MISSING}", "no such folder"]),
    ("prepare", ["--data", "{NO_CSV}", "--out", "{OUT}"], ["{NO_CSV}", "no train.csv"]),
    ("prepare", ["--data", "{CORPUS}", "--out", "{FILE}"], ["--out", "{FILE}", "not a folder"]),
    ("prepare", ["--data", "{CORPUS}", "--out", "{OUT}", "--folds", "3"], ["--folds is now --num-folds"]),
    ("prepare", ["--data", "{CORPUS}", "--out", "{OUT}", "--num-folds", "1"], ["num_folds=1", "at least 2"]),
    ("prepare", ["--data", "{CORPUS}", "--out", "{OUT}", "--num-folds", "500"], ["num_folds=500", "only 80 essays"]),
    ("prepare", ["--data", "{CORPUS}", "--out", "{OUT}", "--num-folds", "abc"], ["--num-folds", "'abc'"]),
    ("prepare", ["--data", "{CORPUS}", "--out", "{OUT}", "--seed", "-1"], ["--seed -1"]),
    ("prepare", ["--data", "{BAD}", "--out", "{OUT}"], ["train.csv", "'Thesis'", "--skip-bad"]),
    ("prepare", ["--out", "{OUT}"], ["--data"]),
    ("sample", ["--out", "{FILE}", "--n", "3"], ["--out", "{FILE}", "not a folder"]),
    ("sample", ["--out", "{OUT}", "--n", "0"], ["--n 0"]),
    ("sample", ["--out", "{OUT}", "--n-test", "-1"], ["--n-test -1"]),
    ("sample", ["--out", "{OUT}", "--n", "many"], ["--n", "'many'"]),
    ("sample", ["--out", "{OUT}", "--line-endings", "crlf"], ["--line-endings", "'crlf'"]),
    ("sample", ["--out", "{OTHER}", "--n", "3"], ["{OTHER}", "another corpus"]),
    ("sample", ["--n", "3"], ["--out"]),
    ("tiny", ["--arch", "bert", "--corpus", "{CORPUS}", "--out", "{MODEL}"], ["--out", "{MODEL}", "--overwrite"]),
    ("tiny", ["--arch", "bert", "--corpus", "{CORPUS}", "--out", "{NO_CSV}", "--overwrite"], ["{NO_CSV}", "no model"]),
    ("tiny", ["--arch", "bert", "--corpus", "{CORPUS}", "--out", "{FILE}"], ["--out", "{FILE}", "not a folder"]),
    ("tiny", ["--arch", "bert", "--corpus", "{EMPTY}", "--out", "{OUT}"], ["{EMPTY}", "no essays found"]),
    ("tiny", ["--arch", "bert", "--corpus", "{MISSING}", "--out", "{OUT}"], ["{MISSING}", "no essays found"]),
    ("tiny", ["--arch", "bert", "--corpus", "{LATIN1}", "--out", "{OUT}"], ["ESSAY1.txt", "not valid UTF-8"]),
    ("tiny", ["--arch", "gpt2", "--corpus", "{CORPUS}", "--out", "{OUT}"], ["--arch", "'gpt2'"]),
    ("tiny", ["--arch", "longformer", "--corpus", "{CORPUS}", "--out", "{OUT}", "--vocab-size", "10"],
     ["--vocab-size 10"]),
]


@pytest.mark.parametrize(("cmd", "args", "needles"), CASES, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_data_command_mistakes_are_one_line(cmd, args, needles, paths: dict[str, str]):
    done = run_cli(f"feedback_ner.{cmd}", *(a.format(**paths) for a in args), timeout=300)
    assert_one_line_error(done, cmd, *(n.format(**paths) for n in needles))
    assert not Path(paths["OUT"]).exists()  # nothing written by a refused command


def test_tiny_overwrite_replaces_a_model(tmp_path: Path, corpus_dir: Path):
    """Issue 12: ``tiny --out`` refuses a folder that holds a model; ``--overwrite`` replaces it."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}\n")
    (model / "stale.txt").write_text("a file of the old model\n")
    done = run_cli("feedback_ner.tiny", "--arch", "bert", "--corpus", str(corpus_dir), "--out", str(model),
                   "--overwrite", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (model / "model.safetensors").is_file() and (model / "config.json").read_text() != "{}\n"
    assert not (model / "stale.txt").exists() and not list(tmp_path.glob(".model*"))
